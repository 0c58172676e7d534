// End-to-end: Matrix tokens on mod_auth_matrix_user_verification (and its
// alias mod_auth_hybrid_matrix_token), checked against our own UVS
// (lib/uvs_server.js) on a real Prosody with real XMPP clients.
// Behaviour under test: docs/design.md, "Matrix tokens" and "Verifying Matrix users", seeds/auth_matrix_user_verification.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, beforeEach, describe, test } from 'node:test';

import { connect, stopAll, tryConnect } from './lib/client.js';
import { scenario, uniqueRoom, useProsody } from './lib/harness.js';
import { sign } from './lib/jwt.js';
import {
  base32,
  jitsiRoomOf,
  matrixToken,
  requestCompleteCodes,
  requirePlugins,
  roomJidOfMatrix,
  sessionFields,
  sessionProbePlugin,
  sleep,
  uniqueMatrixRoomId,
  uniqueOpenid,
  until,
} from './lib/matrix.js';
import { MUC_DOMAIN, freePorts } from './lib/prosody.js';
import { startUvs } from './lib/uvs_server.js';

const APP_ID = 'e2e-matrix-app';
const APP_SECRET = `e2e-app-secret-${crypto.randomBytes(12).toString('hex')}`;
const UVS_TOKEN = `e2e-uvs-bearer-${crypto.randomBytes(12).toString('hex')}`;
const AUTH_PLUGIN = 'mod_auth_matrix_user_verification.lua';

// Every OpenID token handed to a server: none may ever show up in its log.
const openidsUsed = new Set();

/** Register a Matrix user on `uvs` and build its token and Jitsi room. */
function matrixUser(uvs, { roomId = uniqueMatrixRoomId(), power = 0, rooms, state_default, iss = APP_ID, tokenOpts = {}, key } = {}) {
  const openid = uniqueOpenid();
  openidsUsed.add(openid);
  const userId = `@${openid.slice(-8)}:example.org`;
  uvs.setUser(openid, { user_id: userId, rooms: rooms ?? { [roomId]: power }, state_default });
  return {
    openid,
    userId,
    roomId,
    room: jitsiRoomOf(roomId),
    roomJid: roomJidOfMatrix(roomId),
    token: matrixToken({ iss, openid, roomId, ...tokenOpts }, key),
  };
}

/**
 * Login must fail with this SASL condition and a text matching `keyword`
 * (one stable word: exact texts are pinned in Rust unit tests); returns the result.
 */
async function expectRefused(url, condition, keyword, what) {
  assert.ok(condition && keyword instanceof RegExp, `${what}: a case names its condition and keyword`);
  const res = await tryConnect(url);
  if (res.ok) {
    await res.client.stop();
    assert.fail(`${what}: login succeeded (jid ${res.client.jid}), expected ${condition}`);
  }
  assert.equal(res.condition, condition, `${what}: SASL failure ${JSON.stringify(res)}`);
  assert.match(res.text, keyword, `${what}: SASL failure text ${JSON.stringify(res)}`);
  return res;
}

/** The REQUEST_COMPLETE codes logged since `mark`, waiting until there are `n` of them. */
async function codesSince(s, mark, n = 1) {
  try {
    return await until(() => {
      const codes = requestCompleteCodes(s.logSince(mark));
      assert.ok(codes.length >= n, `expected ${n} REQUEST_COMPLETE line(s), got ${JSON.stringify(codes)}`);
      return codes;
    }, 2000);
  } catch (err) {
    return requestCompleteCodes(s.logSince(mark));
  }
}

async function expectCode(s, mark, code) {
  const codes = await codesSince(s, mark, 1);
  assert.deepEqual(codes, [code], `one "REQUEST_COMPLETE reason:${code}" line for this attempt, got ${JSON.stringify(codes)}`);
}

const uvsRequestsFor = (uvs, openid) => uvs.requests.filter((r) => r.body && typeof r.body === 'object' && r.body.token === openid);

// ---------------------------------------------------------------------------
describe('lib/matrix.js base32 (RFC 4648 vectors, no padding)', () => {
  test('encodes the RFC 4648 test vectors', () => {
    const vectors = { '': '', f: 'MY', fo: 'MZXQ', foo: 'MZXW6', foob: 'MZXW6YQ', fooba: 'MZXW6YTB', foobar: 'MZXW6YTBOI' };
    for (const [input, out] of Object.entries(vectors)) assert.equal(base32(input), out, input);
    assert.equal(jitsiRoomOf('!abc:example.org'), base32('!abc:example.org').toLowerCase());
  });
});

// ---------------------------------------------------------------------------
describe('Matrix login on a hybrid host (app_secret + UVS with auth token, uvs_timeout 5)', () => {
  let uvs;
  const server = useProsody(async () => {
    requirePlugins([AUTH_PLUGIN]);
    uvs = await startUvs({ authToken: UVS_TOKEN });
    return {
      vhost: {
        authentication: 'matrix_user_verification',
        app_id: APP_ID,
        app_secret: APP_SECRET,
        uvs_base_url: uvs.url,
        uvs_auth_token: UVS_TOKEN,
        uvs_timeout: 5,
      },
      vhostModules: ['test_observer', sessionProbePlugin().module],
    };
  });
  after(async () => {
    await uvs?.stop();
  });
  beforeEach(() => uvs?.setBehaviour({}));

  scenario('a room member logs in and joins; UVS request, session fields (unsigned: name, avatar, verified id only) and REQUEST_COMPLETE ok', server, async (t, s) => {
    const u = matrixUser(uvs, {
      power: 100,
      tokenOpts: {
        serverName: 'example.org',
        name: 'Alice Matrix',
        avatar: 'https://example.org/a.png',
        context: { features: { 'screen-sharing': true }, group: 'grp-e2e' },
      },
    });
    const mark = s.logMark();
    let c;
    try {
      c = await connect(s.wsUrl(u.room, u.token));
      assert.match(c.jid, /@localhost\//);
      await expectCode(s, mark, 'ok');

      const reqs = uvsRequestsFor(uvs, u.openid);
      assert.equal(reqs.length, 1, `one UVS request for this login: ${JSON.stringify(reqs)}`);
      const [r] = reqs;
      assert.equal(r.method, 'POST');
      assert.equal(r.path, '/verify/user_in_room');
      assert.equal(r.headers.authorization, `Bearer ${UVS_TOKEN}`);
      assert.deepEqual(r.body, { token: u.openid, room_id: u.roomId, matrix_server_name: 'example.org' });

      const f = await sessionFields(s.httpPort, c.jid);
      assert.equal(f.found, true, `session of ${c.jid}`);
      assert.equal(f.auth_matrix_user_verification_is_owner, false, 'not owner: uvs_sync_power_levels is off');
      // docs/design.md, Matrix tokens: an unsigned Matrix token gives a name and an avatar;
      // the id is the Matrix user id the verifier proved.
      assert.deepEqual(f.jitsi_meet_context_user, { name: 'Alice Matrix', avatar: 'https://example.org/a.png', id: u.userId });
      assert.equal(f.jitsi_meet_context_matrix?.room_id, u.roomId, JSON.stringify(f.jitsi_meet_context_matrix));
      assert.equal(f.jitsi_meet_context_matrix?.server_name, 'example.org', JSON.stringify(f.jitsi_meet_context_matrix));
      assert.equal(f.jitsi_meet_context_matrix?.token, undefined, 'the OpenID token is not kept on the session');
      // auth_token keeps the token as presented, OpenID token inside: jitsi-meet's
      // modules read it (SECURITY.md, "What stays on the session"). Every
      // field we set is free of it.
      assert.equal(f.auth_token, u.token, 'auth_token is the token as presented');
      const ours = { ...f, auth_token: undefined };
      assert.ok(!JSON.stringify(ours).includes(u.openid), `OpenID token leaked into our session fields: ${JSON.stringify(ours)}`);
      assert.equal(f.jitsi_meet_context_features, undefined, 'features of an unsigned token grant nothing');
      assert.equal(f.jitsi_meet_context_group, undefined, 'group of an unsigned token grants nothing');

      const joined = await c.joinMuc(u.roomJid, 'alice');
      assert.equal(joined.ok, true, `join ${u.roomJid}: ${JSON.stringify(joined)}`);
    } finally {
      await stopAll(c);
    }
  });

  scenario('without server_name the UVS body has no matrix_server_name', server, async (t, s) => {
    const u = matrixUser(uvs);
    let c;
    try {
      c = await connect(s.wsUrl(u.room, u.token));
      const [r] = uvsRequestsFor(uvs, u.openid);
      assert.ok(r, 'UVS was asked');
      assert.equal(r.body.room_id, u.roomId);
      assert.ok(r.body.matrix_server_name === undefined || r.body.matrix_server_name === null, JSON.stringify(r.body));
    } finally {
      await stopAll(c);
    }
  });

  scenario('the base32 room name is decoded case-insensitively (upper case accepted)', server, async (t, s) => {
    const u = matrixUser(uvs);
    let c;
    try {
      c = await connect(s.wsUrl(u.room.toUpperCase(), u.token));
      assert.match(c.jid, /@localhost\//);
    } finally {
      await stopAll(c);
    }
  });

  scenario('not a member of the room: not-authorized "not a member", reason not_in_room', server, async (t, s) => {
    const u = matrixUser(uvs, { rooms: { [uniqueMatrixRoomId('other')]: 100 } });
    const mark = s.logMark();
    await expectRefused(s.wsUrl(u.room, u.token), 'not-authorized', /not a member/i, 'non-member');
    await expectCode(s, mark, 'not_in_room');
    assert.equal(uvsRequestsFor(uvs, u.openid).length, 1, 'UVS was asked once');
  });

  scenario('invalid OpenID token (UVS: user false): not-authorized "refused by UVS", reason invalid_token', server, async (t, s) => {
    const roomId = uniqueMatrixRoomId();
    const openid = uniqueOpenid('unknown');
    openidsUsed.add(openid);
    const mark = s.logMark();
    await expectRefused(
      s.wsUrl(jitsiRoomOf(roomId), matrixToken({ iss: APP_ID, openid, roomId })),
      'not-authorized',
      /refused by UVS/i,
      'unknown OpenID token',
    );
    await expectCode(s, mark, 'invalid_token');
  });

  scenario('room mismatch: not-allowed "does not match", reason jitsi_and_matrix_room_mismatch', server, async (t, s) => {
    const u = matrixUser(uvs, { power: 100 });
    const otherRoom = jitsiRoomOf(uniqueMatrixRoomId('elsewhere'));
    const mark = s.logMark();
    await expectRefused(s.wsUrl(otherRoom, u.token), 'not-allowed', /does not match/i, 'room mismatch');
    await expectCode(s, mark, 'jitsi_and_matrix_room_mismatch');
  });

  scenario('room name that is not base32: bad-request "base32"', server, async (t, s) => {
    const u = matrixUser(uvs);
    await expectRefused(s.wsUrl('hello-world', u.token), 'bad-request', /base32/i, 'non-base32 room');
  });

  scenario('no ?room=: bad-request "no room"', server, async (t, s) => {
    const u = matrixUser(uvs);
    await expectRefused(s.wsUrl(undefined, u.token), 'bad-request', /no room/i, 'missing room');
  });

  scenario('context.matrix without room_id: bad-request "room id", reason missing_matrix_room_id', server, async (t, s) => {
    const u = matrixUser(uvs, { tokenOpts: { matrix: { room_id: undefined } } });
    const mark = s.logMark();
    await expectRefused(s.wsUrl(u.room, u.token), 'bad-request', /room id/i, 'missing room_id');
    await expectCode(s, mark, 'missing_matrix_room_id');
  });

  scenario('Matrix token with a wrong iss: not-authorized "issuer"', server, async (t, s) => {
    const u = matrixUser(uvs, { iss: 'someone-else' });
    await expectRefused(s.wsUrl(u.room, u.token), 'not-authorized', /issuer/i, 'wrong iss');
  });

  const failures = [
    ['HTTP 500', { status: 500 }, 'invalid_response'],
    ['a non-JSON body', { body: 'this is <b>not</b> json' }, 'invalid_response'],
    ['a JSON body without results', { body: JSON.stringify({ user_id: '@x:example.org', power_levels: null }) }, 'invalid_response'],
    ['a dropped connection', { drop: true }, 'invalid_response'],
  ];
  for (const [name, behaviour, code] of failures) {
    scenario(`UVS answers ${name}: temporary-auth-failure "could not verify"; then the same user logs in`, server, async (t, s) => {
      const u = matrixUser(uvs, { power: 100 });
      uvs.setBehaviour({ perToken: { [u.openid]: behaviour } });
      const mark = s.logMark();
      await expectRefused(s.wsUrl(u.room, u.token), 'temporary-auth-failure', /could not verify/i, name);
      await expectCode(s, mark, code);
      assert.ok(uvsRequestsFor(uvs, u.openid).length >= 1, 'UVS was asked');

      uvs.setBehaviour({});
      let c;
      try {
        c = await connect(s.wsUrl(u.room, u.token));
        assert.match(c.jid, /@localhost\//);
      } finally {
        await stopAll(c);
      }
    });
  }

  scenario('hybrid: a standard HS256 token user and a Matrix user both log in and join their rooms', server, async (t, s) => {
    const stdRoom = uniqueRoom('std');
    const t0 = Math.floor(Date.now() / 1000);
    const stdToken = sign(
      { iss: APP_ID, aud: 'jitsi', sub: 'localhost', room: stdRoom, iat: t0 - 5, exp: t0 + 300, context: { user: { name: 'std' } } },
      { alg: 'HS256', key: APP_SECRET },
    );
    const u = matrixUser(uvs);
    let a, b;
    try {
      const before = uvs.requests.length;
      a = await connect(s.wsUrl(stdRoom, stdToken));
      const ja = await a.joinMuc(`${stdRoom}@${MUC_DOMAIN}`, 'std');
      assert.equal(ja.ok, true, `standard user join: ${JSON.stringify(ja)}`);
      assert.equal(uvs.requests.length, before, 'no UVS request for a standard token');

      b = await connect(s.wsUrl(u.room, u.token));
      const jb = await b.joinMuc(u.roomJid, 'mx');
      assert.equal(jb.ok, true, `Matrix user join: ${JSON.stringify(jb)}`);
    } finally {
      await stopAll(a, b);
    }
  });

  scenario('hybrid: a standard token (no context.matrix) with a bad signature is refused, not sent to UVS', server, async (t, s) => {
    const stdRoom = uniqueRoom('stdbad');
    const before = uvs.requests.length;
    const bad = sign({ iss: APP_ID, aud: 'jitsi', sub: 'localhost', room: stdRoom, context: { user: { name: 'x' } } }, {
      alg: 'HS256',
      key: 'not-the-app-secret',
    });
    await expectRefused(s.wsUrl(stdRoom, bad), 'not-authorized', /signature/i, 'standard token, wrong key');
    assert.equal(uvs.requests.length, before, 'no UVS request for a standard token');
  });

  scenario('non-blocking: a 2 s UVS stall delays neither pings nor a second login', server, async (t, s) => {
    const idle = matrixUser(uvs);
    const slow = matrixUser(uvs);
    const fast = matrixUser(uvs);
    let idleC, slowC, fastC;
    let slowErr = null;
    try {
      idleC = await connect(s.wsUrl(idle.room, idle.token));
      uvs.setBehaviour({ perToken: { [slow.openid]: { latencyMs: 2000 } } });

      const t0 = performance.now();
      let slowDone = null;
      const slowP = connect(s.wsUrl(slow.room, slow.token)).then(
        (c) => {
          slowDone = performance.now() - t0;
          slowC = c;
        },
        (err) => {
          slowDone = performance.now() - t0;
          slowErr = err;
        },
      );
      // The slow request is now held by the UVS.
      await until(() => assert.ok(uvsRequestsFor(uvs, slow.openid).length === 1, 'slow request reached the UVS'), 3000);
      const stalledAt = performance.now() - t0;

      const pingRtt = await idleC.ping('localhost');
      const pingDone = performance.now() - t0;
      const slowAtPing = slowDone;

      const fastStart = performance.now();
      fastC = await connect(s.wsUrl(fast.room, fast.token));
      const fastDone = performance.now() - t0;
      const fastLogin = performance.now() - fastStart;
      const slowAtFast = slowDone;
      const heldAtFast = uvs.delayedAnswers() > 0;

      await slowP;
      const numbers =
        `UVS holding the slow login from ${stalledAt.toFixed(0)} ms; ping RTT during the stall ${pingRtt.toFixed(1)} ms ` +
        `(answered at ${pingDone.toFixed(0)} ms); fast login took ${fastLogin.toFixed(0)} ms (done at ${fastDone.toFixed(0)} ms); ` +
        `slow login done at ${slowDone?.toFixed(0)} ms`;
      t.diagnostic(numbers);
      console.log(`# non-blocking: ${numbers}`);

      // Events, in order (no durations): while the UVS still held the slow
      // request, the ping was answered and the fast login completed. A
      // server that blocks while waiting would do neither before the slow
      // answer.
      assert.equal(slowErr, null, `slow login failed: ${slowErr}`);
      assert.equal(slowAtPing, null, 'the slow login was still waiting when the ping was answered');
      assert.equal(slowAtFast, null, 'the slow login was still waiting when the fast login completed');
      assert.equal(heldAtFast, true, 'the UVS still held the slow request when the fast login completed');

      const j = await slowC.joinMuc(slow.roomJid, 'slow');
      assert.equal(j.ok, true, `slow user joins: ${JSON.stringify(j)}`);
    } finally {
      uvs.setBehaviour({});
      await stopAll(idleC, slowC, fastC);
    }
  });

  scenario('neither an OpenID token nor the uvs_auth_token appears in the Prosody log', server, async (t, s) => {
    // Run after the others in this group: the log holds every attempt above.
    const u = matrixUser(uvs);
    let c;
    try {
      c = await connect(s.wsUrl(u.room, u.token));
    } finally {
      await stopAll(c);
    }
    await sleep(100);
    const log = s.logText();
    assert.ok(openidsUsed.size >= 10, `sanity: ${openidsUsed.size} OpenID tokens used`);
    const leaked = [...openidsUsed].filter((o) => log.includes(o));
    assert.deepEqual(leaked, [], 'OpenID tokens found in the Prosody log');
    assert.ok(!log.includes(UVS_TOKEN), 'uvs_auth_token found in the Prosody log');
  });
});

// ---------------------------------------------------------------------------
describe('UVS failure modes (uvs_timeout 2, wrong uvs_auth_token, UVS stopped)', () => {
  const TIMEOUT_S = 2;
  const WRONG = `e2e-wrong-bearer-${crypto.randomBytes(8).toString('hex')}`;
  let uvs;
  const server = useProsody(async () => {
    requirePlugins([AUTH_PLUGIN]);
    uvs = await startUvs({ authToken: UVS_TOKEN });
    return {
      vhost: {
        authentication: 'matrix_user_verification',
        app_id: APP_ID,
        uvs_base_url: uvs.url,
        uvs_auth_token: WRONG,
        uvs_timeout: TIMEOUT_S,
      },
      vhostModules: ['test_observer'],
    };
  });
  after(async () => {
    await uvs?.stop();
  });

  scenario('wrong uvs_auth_token (UVS answers 403 {}): temporary-auth-failure "could not verify"', server, async (t, s) => {
    const u = matrixUser(uvs, { power: 100 });
    const mark = s.logMark();
    await expectRefused(s.wsUrl(u.room, u.token), 'temporary-auth-failure', /could not verify/i, '401');
    const [r] = uvsRequestsFor(uvs, u.openid);
    assert.ok(r, 'UVS was asked');
    assert.equal(r.headers.authorization, `Bearer ${WRONG}`);
    const codes = await codesSince(s, mark, 1);
    assert.equal(codes.length, 1, `one REQUEST_COMPLETE line: ${JSON.stringify(codes)}`);
    assert.ok(!s.logText().includes(WRONG), 'uvs_auth_token found in the Prosody log');
  });

  scenario(`UVS slower than uvs_timeout (${TIMEOUT_S} s): temporary-auth-failure within timeout + 3 s`, server, async (t, s) => {
    const u = matrixUser(uvs, { power: 100 });
    uvs.setBehaviour({ perToken: { [u.openid]: { latencyMs: 6000 } } });
    try {
      // The UVS would answer "member" after 6 s: a refusal that names the
      // timeout shows that uvs_timeout (2 s) cut the wait.
      const mark = s.logMark();
      await expectRefused(s.wsUrl(u.room, u.token), 'temporary-auth-failure', /timed out/, 'timeout');
      await expectCode(s, mark, 'invalid_response');
    } finally {
      uvs.setBehaviour({});
    }
  });

  scenario('UVS stopped (connection refused): temporary-auth-failure "could not verify"', server, async (t, s) => {
    await uvs.stop();
    const u = matrixUser(uvs, { power: 100 });
    const mark = s.logMark();
    await expectRefused(s.wsUrl(u.room, u.token), 'temporary-auth-failure', /connection failed/, 'UVS down');
    await expectCode(s, mark, 'invalid_response');
  });
});

// ---------------------------------------------------------------------------
describe('UVS base URL on a closed port', () => {
  let uvs; // only for the user table; Prosody points elsewhere
  const server = useProsody(async () => {
    requirePlugins([AUTH_PLUGIN]);
    uvs = await startUvs();
    const [closed] = await freePorts(1);
    return {
      vhost: {
        authentication: 'matrix_user_verification',
        app_id: APP_ID,
        uvs_base_url: `http://127.0.0.1:${closed}`,
        uvs_timeout: 5,
      },
    };
  });
  after(async () => {
    await uvs?.stop();
  });

  scenario('port closed from the start: temporary-auth-failure "could not verify", quickly', server, async (t, s) => {
    const u = matrixUser(uvs, { power: 100 });
    const mark = s.logMark();
    await expectRefused(s.wsUrl(u.room, u.token), 'temporary-auth-failure', /connection failed/, 'closed port');
    await expectCode(s, mark, 'invalid_response');
  });
});

// ---------------------------------------------------------------------------
describe('mod_auth_hybrid_matrix_token alias', () => {
  let uvs;
  const server = useProsody(async () => {
    requirePlugins([AUTH_PLUGIN, 'mod_auth_hybrid_matrix_token.lua']);
    uvs = await startUvs({ authToken: UVS_TOKEN });
    return {
      vhost: {
        authentication: 'hybrid_matrix_token',
        app_id: APP_ID,
        app_secret: APP_SECRET,
        uvs_base_url: uvs.url,
        uvs_auth_token: UVS_TOKEN,
      },
      vhostModules: ['test_observer'],
    };
  });
  after(async () => {
    await uvs?.stop();
  });

  scenario('authentication = "hybrid_matrix_token" accepts a Matrix member, refuses a non-member', server, async (t, s) => {
    const u = matrixUser(uvs);
    const mark = s.logMark();
    let c;
    try {
      c = await connect(s.wsUrl(u.room, u.token));
      const j = await c.joinMuc(u.roomJid, 'alias');
      assert.equal(j.ok, true, `join: ${JSON.stringify(j)}`);
      await expectCode(s, mark, 'ok');
    } finally {
      await stopAll(c);
    }
    const stranger = matrixUser(uvs, { roomId: u.roomId, rooms: {} });
    await expectRefused(s.wsUrl(u.room, stranger.token), 'not-authorized', /not a member/i, 'non-member on the alias');
  });
});

// ---------------------------------------------------------------------------
describe('uvs_issuer list and matrix_token_secret', () => {
  const MTS = `e2e-mts-${crypto.randomBytes(16).toString('hex')}`;
  let uvs;
  const server = useProsody(async () => {
    requirePlugins([AUTH_PLUGIN]);
    uvs = await startUvs();
    return {
      vhost: {
        authentication: 'matrix_user_verification',
        app_id: APP_ID,
        uvs_issuer: ['iss-one', 'iss-two'],
        matrix_token_secret: MTS,
        uvs_base_url: uvs.url,
      },
    };
  });
  after(async () => {
    await uvs?.stop();
  });

  scenario('iss in uvs_issuer and signed with matrix_token_secret: logs in', server, async (t, s) => {
    const u = matrixUser(uvs, { iss: 'iss-two', key: MTS });
    let c;
    try {
      c = await connect(s.wsUrl(u.room, u.token));
      assert.match(c.jid, /@localhost\//);
    } finally {
      await stopAll(c);
    }
  });

  scenario('iss = app_id but not in uvs_issuer: not-authorized "issuer"', server, async (t, s) => {
    const u = matrixUser(uvs, { iss: APP_ID, key: MTS });
    await expectRefused(s.wsUrl(u.room, u.token), 'not-authorized', /issuer/i, 'iss outside uvs_issuer');
  });

  scenario('signed with "notused" while matrix_token_secret is set: refused', server, async (t, s) => {
    const u = matrixUser(uvs, { iss: 'iss-one' });
    const mark = s.logMark();
    await expectRefused(s.wsUrl(u.room, u.token), 'not-authorized', /signature/, 'wrong Matrix token signature');
    await expectCode(s, mark, 'invalid_auth_token');
  });
});
