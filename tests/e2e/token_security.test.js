// End-to-end: our auth provider (mod_auth_matrix_user_verification, standard
// Jitsi tokens) and mod_token_security_ondemand on a real Prosody, driven by
// real XMPP clients over WebSocket. Behaviour under test: docs/design.md
// sections 2, 3 and 8. Lobby events are served by tests/prosody/mod_test_lobby.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe } from 'node:test';

import { connect, stopAll, tryConnect } from './lib/client.js';
import { scenario, uniqueRoom, useProsody } from './lib/harness.js';
import { ecKeyPair, now, rsaKeyPair, sign, writeKeyFile } from './lib/jwt.js';
import { roomState } from './lib/observer.js';
import { LOBBY_DOMAIN, MUC_DOMAIN, PLUGIN_PATHS, REPO_ROOT, luaCpath } from './lib/prosody.js';

const APP_ID = 'e2e-app';
const SECRET = `e2e-secret-${crypto.randomBytes(12).toString('hex')}`;

const PLUGINS = ['mod_auth_matrix_user_verification.lua', 'mod_token_security_ondemand.lua'];

/** Fail early and clearly when the product under test is not built. */
function requireProduct() {
  const missing = PLUGINS.filter((f) => !PLUGIN_PATHS.some((dir) => fs.existsSync(path.join(dir, f)))).map((f) =>
    path.join(REPO_ROOT, 'lua', f),
  );
  if (!process.env.JITSI_SECURITY_CPATH) {
    const so = path.join(REPO_ROOT, 'build', 'lua', 'jitsi_security.so');
    if (!fs.existsSync(so)) missing.push(`${so} (run \`make build\` in ${REPO_ROOT})`);
  }
  if (missing.length) throw new Error(`product under test is missing:\n  ${missing.join('\n  ')}\n(cpath ${luaCpath()})`);
}

/** Standard Jitsi claims for `room`, valid for 5 minutes. */
function claims(room, { roomCtx, user = {}, ...extra } = {}) {
  const t = now();
  const context = { user: { name: 'e2e user', ...user } };
  if (roomCtx !== undefined) context.room = roomCtx;
  return { iss: APP_ID, aud: 'jitsi', sub: 'localhost', room, iat: t - 5, exp: t + 300, context, ...extra };
}

const hs = (payload, key = SECRET) => sign(payload, { alg: 'HS256', key });

const roomJidOf = (room) => `${room}@${MUC_DOMAIN}`;

/** Poll the observer until `check(state)` stops throwing (hooks may run just after the join answer). */
async function eventually(httpPort, roomJid, check, ms = 3000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const state = await roomState(httpPort, roomJid);
    try {
      check(state);
      return state;
    } catch (err) {
      if (Date.now() > deadline) {
        err.message += `\nroom state: ${JSON.stringify(state)}`;
        throw err;
      }
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

function assertJoined(result, what) {
  assert.equal(result.ok, true, `${what} should have joined, got ${JSON.stringify(result)}`);
}

function assertRefused(result, condition, what) {
  assert.equal(result.ok, false, `${what} should have been refused, got ${JSON.stringify(result)}`);
  assert.equal(result.condition, condition, `${what}: ${JSON.stringify(result)}`);
}

const lobbyOn = (s, roomJid) => ({ lobbyroom: `${roomJid.split('@')[0]}@${LOBBY_DOMAIN}` });

// ---------------------------------------------------------------------------
describe('token_security_ondemand: lobby and password from the token', () => {
  const server = useProsody(() => {
    requireProduct();
    return {
      vhost: {
        authentication: 'matrix_user_verification',
        app_id: APP_ID,
        app_secret: SECRET,
        allow_empty_token: true,
      },
      vhostModules: ['test_observer'],
      mucModules: ['token_security_ondemand', 'test_lobby'],
    };
  });

  scenario('lobby=true makes the room members-only with a lobby; an unaffiliated token-less user is refused', server, async (t, s) => {
    const room = uniqueRoom('lobby-on');
    const roomJid = roomJidOf(room);
    let owner, stranger;
    try {
      owner = await connect(s.wsUrl(room, hs(claims(room, { roomCtx: { lobby: true } }))));
      assertJoined(await owner.joinMuc(roomJid, 'owner'), 'lobby=true token user');

      const expected = lobbyOn(s, roomJid);
      await eventually(s.httpPort, roomJid, (st) => {
        assert.equal(st.members_only, true, 'members-only');
        assert.equal(st.lobbyroom, expected.lobbyroom, 'lobbyroom');
        assert.equal(st.lobbyroom_exists, true, 'lobby room exists on the lobby component');
      });

      stranger = await connect(s.wsUrl(room));
      assertRefused(await stranger.joinMuc(roomJid, 'stranger'), 'registration-required', 'token-less stranger');
    } finally {
      await stopAll(owner, stranger);
    }
  });

  scenario('a later lobby=false token removes the lobby and then others get in', server, async (t, s) => {
    const room = uniqueRoom('lobby-off');
    const roomJid = roomJidOf(room);
    let owner, opener, stranger;
    try {
      owner = await connect(s.wsUrl(room, hs(claims(room, { roomCtx: { lobby: true } }))));
      assertJoined(await owner.joinMuc(roomJid, 'owner'), 'lobby=true token user');
      await eventually(s.httpPort, roomJid, (st) => assert.notEqual(st.lobbyroom, null, 'lobby enabled'));

      stranger = await connect(s.wsUrl(room));
      assertRefused(await stranger.joinMuc(roomJid, 'stranger'), 'registration-required', 'stranger while lobby is on');

      opener = await connect(s.wsUrl(room, hs(claims(room, { roomCtx: { lobby: false } }))));
      assertJoined(await opener.joinMuc(roomJid, 'opener'), 'lobby=false token user (authoritative)');
      const st = await eventually(s.httpPort, roomJid, (st) => {
        assert.equal(st.members_only, false, 'members-only off');
        assert.equal(st.lobbyroom, null, 'lobbyroom cleared');
        assert.equal(st.lobbyroom_exists, false, 'lobby room destroyed');
      });
      assert.equal(st.password, null);

      assertJoined(await stranger.joinMuc(roomJid, 'stranger'), 'token-less stranger after lobby off');
    } finally {
      await stopAll(owner, opener, stranger);
    }
  });

  scenario('password token protects the room; password "" clears it', server, async (t, s) => {
    const room = uniqueRoom('password');
    const roomJid = roomJidOf(room);
    let setter, guest, clearer, late;
    try {
      setter = await connect(s.wsUrl(room, hs(claims(room, { roomCtx: { password: 's3cret' } }))));
      assertJoined(await setter.joinMuc(roomJid, 'setter'), 'password token user');
      await eventually(s.httpPort, roomJid, (st) => {
        assert.equal(st.password, 's3cret');
        assert.equal(st.members_only, false);
        assert.equal(st.lobbyroom, null);
      });

      guest = await connect(s.wsUrl(room));
      assertRefused(await guest.joinMuc(roomJid, 'guest'), 'not-authorized', 'token-less guest without password');
      assertRefused(await guest.joinMuc(roomJid, 'guest', { password: 'wrong' }), 'not-authorized', 'guest with wrong password');
      assertJoined(await guest.joinMuc(roomJid, 'guest', { password: 's3cret' }), 'guest with the password');

      clearer = await connect(s.wsUrl(room, hs(claims(room, { roomCtx: { password: '' } }))));
      assertJoined(await clearer.joinMuc(roomJid, 'clearer'), 'password="" token user (authoritative)');
      await eventually(s.httpPort, roomJid, (st) => assert.equal(st.password, null, 'password cleared'));

      late = await connect(s.wsUrl(room));
      assertJoined(await late.joinMuc(roomJid, 'late'), 'token-less user after the password was cleared');
    } finally {
      await stopAll(setter, guest, clearer, late);
    }
  });

  scenario('security_bypass user enters a room with lobby and password without the password and is made member', server, async (t, s) => {
    const room = uniqueRoom('bypass');
    const roomJid = roomJidOf(room);
    let owner, vip, stranger;
    try {
      owner = await connect(s.wsUrl(room, hs(claims(room, { roomCtx: { lobby: true, password: 'pw-1' } }))));
      assertJoined(await owner.joinMuc(roomJid, 'owner'), 'lobby+password token user');
      await eventually(s.httpPort, roomJid, (st) => {
        assert.equal(st.members_only, true);
        assert.notEqual(st.lobbyroom, null);
        assert.equal(st.password, 'pw-1');
      });

      stranger = await connect(s.wsUrl(room));
      assertRefused(await stranger.joinMuc(roomJid, 'stranger', { password: 'pw-1' }), 'registration-required', 'stranger with password but no affiliation');

      vip = await connect(s.wsUrl(room, hs(claims(room, { user: { security_bypass: true } }))));
      const joined = await vip.joinMuc(roomJid, 'vip');
      assertJoined(joined, 'security_bypass user without password');
      assert.equal(joined.affiliation, 'member', `bypass user affiliation: ${JSON.stringify(joined)}`);
      assert.equal(joined.role, 'participant', `bypass user role: ${JSON.stringify(joined)}`);

      const st = await roomState(s.httpPort, roomJid);
      assert.equal(st.affiliations[vip.bareJid], 'member');
      // The bypass changes nobody else's view of the room.
      assert.equal(st.members_only, true);
      assert.notEqual(st.lobbyroom, null);
      assert.equal(st.password, 'pw-1');
    } finally {
      await stopAll(owner, vip, stranger);
    }
  });

  scenario('an authoritative lobby=false token enters a room locked by lobby and password, and unlocks the lobby', server, async (t, s) => {
    const room = uniqueRoom('unlock');
    const roomJid = roomJidOf(room);
    let owner, opener, guest;
    try {
      owner = await connect(s.wsUrl(room, hs(claims(room, { roomCtx: { lobby: true, password: 'pw-2' } }))));
      assertJoined(await owner.joinMuc(roomJid, 'owner'), 'lobby+password token user');
      await eventually(s.httpPort, roomJid, (st) => {
        assert.equal(st.members_only, true);
        assert.notEqual(st.lobbyroom, null);
        assert.equal(st.password, 'pw-2');
      });

      opener = await connect(s.wsUrl(room, hs(claims(room, { roomCtx: { lobby: false } }))));
      assertJoined(await opener.joinMuc(roomJid, 'opener'), 'lobby=false token user, no password given');
      await eventually(s.httpPort, roomJid, (st) => {
        assert.equal(st.members_only, false, 'members-only off');
        assert.equal(st.lobbyroom, null, 'lobby gone');
        assert.equal(st.password, 'pw-2', 'the token said nothing about the password: unchanged');
      });

      guest = await connect(s.wsUrl(room));
      assertRefused(await guest.joinMuc(roomJid, 'guest'), 'not-authorized', 'guest without the password');
      assertJoined(await guest.joinMuc(roomJid, 'guest', { password: 'pw-2' }), 'guest with the password');
    } finally {
      await stopAll(owner, opener, guest);
    }
  });

  scenario('token-less sessions change nothing', server, async (t, s) => {
    const room = uniqueRoom('tokenless');
    const roomJid = roomJidOf(room);
    let first, second, setter;
    try {
      first = await connect(s.wsUrl(room));
      assertJoined(await first.joinMuc(roomJid, 'first'), 'token-less creator');
      let st = await roomState(s.httpPort, roomJid);
      assert.deepEqual([st.members_only, st.password, st.lobbyroom], [false, null, null]);

      setter = await connect(s.wsUrl(room, hs(claims(room, { roomCtx: { password: 'pw-3' } }))));
      assertJoined(await setter.joinMuc(roomJid, 'setter'), 'password token user');
      await eventually(s.httpPort, roomJid, (st) => assert.equal(st.password, 'pw-3'));

      second = await connect(s.wsUrl(room));
      assertJoined(await second.joinMuc(roomJid, 'second', { password: 'pw-3' }), 'token-less user with the password');
      st = await roomState(s.httpPort, roomJid);
      assert.deepEqual([st.members_only, st.password, st.lobbyroom], [false, 'pw-3', null], JSON.stringify(st));
      assert.equal(st.affiliations[second.bareJid], undefined, 'token-less user got no affiliation');
    } finally {
      await stopAll(first, second, setter);
    }
  });

  scenario('a token without context.room changes nothing and does not bypass the password', server, async (t, s) => {
    const room = uniqueRoom('plain-token');
    const roomJid = roomJidOf(room);
    let setter, plain;
    try {
      setter = await connect(s.wsUrl(room, hs(claims(room, { roomCtx: { password: 'pw-4' } }))));
      assertJoined(await setter.joinMuc(roomJid, 'setter'), 'password token user');
      await eventually(s.httpPort, roomJid, (st) => assert.equal(st.password, 'pw-4'));

      plain = await connect(s.wsUrl(room, hs(claims(room))));
      assertRefused(await plain.joinMuc(roomJid, 'plain'), 'not-authorized', 'plain token user without password');
      assertJoined(await plain.joinMuc(roomJid, 'plain', { password: 'pw-4' }), 'plain token user with password');
      const st = await roomState(s.httpPort, roomJid);
      assert.deepEqual([st.members_only, st.password, st.lobbyroom], [false, 'pw-4', null], JSON.stringify(st));
    } finally {
      await stopAll(setter, plain);
    }
  });

  scenario('a token for another room neither unlocks nor bypasses this room', server, async (t, s) => {
    const room = uniqueRoom('claim');
    const roomJid = roomJidOf(room);
    let owner, intruder, vip;
    try {
      owner = await connect(s.wsUrl(room, hs(claims(room, { roomCtx: { lobby: true, password: 'pw-6' } }))));
      assertJoined(await owner.joinMuc(roomJid, 'owner'), 'lobby+password token user');
      await eventually(s.httpPort, roomJid, (st) => assert.notEqual(st.lobbyroom, null));

      // Valid tokens, but their room claim names another room.
      intruder = await connect(s.wsUrl(room, hs(claims('elsewhere', { roomCtx: { lobby: false, password: '' } }))));
      assertRefused(await intruder.joinMuc(roomJid, 'intruder'), 'registration-required', 'lobby=false token for another room');
      vip = await connect(s.wsUrl(room, hs(claims('elsewhere', { user: { security_bypass: true } }))));
      assertRefused(await vip.joinMuc(roomJid, 'vip'), 'registration-required', 'bypass token for another room');

      const st = await roomState(s.httpPort, roomJid);
      assert.deepEqual([st.members_only, st.password], [true, 'pw-6'], JSON.stringify(st));
      assert.notEqual(st.lobbyroom, null);
    } finally {
      await stopAll(owner, intruder, vip);
    }
  });

  scenario('the password injected for a bypass user is not echoed to other occupants', server, async (t, s) => {
    const room = uniqueRoom('echo');
    const roomJid = roomJidOf(room);
    let owner, vip;
    try {
      owner = await connect(s.wsUrl(room, hs(claims(room, { roomCtx: { password: 'pw-secret-7' } }))));
      assertJoined(await owner.joinMuc(roomJid, 'owner'), 'password token user');
      await eventually(s.httpPort, roomJid, (st) => assert.equal(st.password, 'pw-secret-7'));

      const seen = owner.waitFor((p) => p.is('presence') && (p.attrs.from || '').endsWith('/vip'), 5000, 'vip presence');
      vip = await connect(s.wsUrl(room, hs(claims(room, { user: { security_bypass: true } }))));
      assertJoined(await vip.joinMuc(roomJid, 'vip'), 'bypass user');
      const presence = await seen;
      assert.ok(!presence.toString().includes('pw-secret-7'), `presence leaks the password: ${presence}`);
    } finally {
      await stopAll(owner, vip);
    }
  });

  scenario('healthcheck rooms are never touched', server, async (t, s) => {
    const room = `__jicofo-health-check-${crypto.randomUUID()}`;
    const roomJid = roomJidOf(room);
    let a, b;
    try {
      a = await connect(s.wsUrl(room, hs(claims(room, { roomCtx: { lobby: true, password: 'pw-hc' } }))));
      assertJoined(await a.joinMuc(roomJid, 'jicofo'), 'token user in healthcheck room');
      // Give a misbehaving hook the chance to act before looking.
      await a.ping('localhost');
      const st = await roomState(s.httpPort, roomJid);
      assert.equal(st.exists, true);
      assert.deepEqual([st.members_only, st.password, st.lobbyroom], [false, null, null], JSON.stringify(st));

      b = await connect(s.wsUrl(room));
      assertJoined(await b.joinMuc(roomJid, 'other'), 'token-less user, no password, in healthcheck room');
    } finally {
      await stopAll(a, b);
    }
  });
});

// ---------------------------------------------------------------------------
/** Each bad token fails SASL with a condition and a text; the next good login works. */
async function assertLoginRefused(s, room, token, { condition = 'not-authorized', text } = {}) {
  const res = await tryConnect(s.wsUrl(room, token));
  if (res.ok) {
    await res.client.stop();
    assert.fail(`login with a bad token succeeded (jid ${res.client.jid})`);
  }
  if (condition) assert.equal(res.condition, condition, `SASL failure: ${JSON.stringify(res)}`);
  else assert.ok(res.condition, `SASL failure has a condition: ${JSON.stringify(res)}`);
  assert.ok(res.text && res.text.trim().length > 0, `SASL failure has a text: ${JSON.stringify(res)}`);
  if (text) assert.match(res.text, text, `SASL failure text: ${JSON.stringify(res)}`);
  return res;
}

async function assertLoginWorks(s, room, token) {
  let c;
  try {
    c = await connect(s.wsUrl(room, token));
    assert.match(c.jid, /@localhost\//);
    const joined = await c.joinMuc(roomJidOf(room), 'good');
    assertJoined(joined, 'good token user');
  } finally {
    await stopAll(c);
  }
}

describe('standard token verification (HS256)', () => {
  const server = useProsody(() => {
    requireProduct();
    return {
      vhost: { authentication: 'matrix_user_verification', app_id: APP_ID, app_secret: SECRET },
      vhostModules: ['test_observer'],
      mucModules: ['token_security_ondemand', 'test_lobby'],
    };
  });

  const t0 = () => now();
  const cases = [
    ['wrong signature', (room) => hs(claims(room), 'not-the-secret'), /signature/i],
    [
      'payload altered after signing',
      (room) => {
        const [h, , sig] = hs(claims(room)).split('.');
        const forged = Buffer.from(JSON.stringify(claims(room, { iss: APP_ID, extra: 'x' }))).toString('base64url');
        return `${h}.${forged}.${sig}`;
      },
      /signature/i,
    ],
    ['alg none', (room) => sign(claims(room), { alg: 'none' }), /alg/i],
    ['HS384 when HS256 is configured', (room) => sign(claims(room), { alg: 'HS384', key: SECRET }), /alg/i],
    ['expired', (room) => hs(claims(room, { exp: t0() - 3600, iat: t0() - 7200 })), /expired/i],
    ['not yet valid', (room) => hs(claims(room, { nbf: t0() + 3600 })), /not yet valid/i],
    ['wrong iss', (room) => hs(claims(room, { iss: 'someone-else' })), /issuer/i],
    [
      'missing room claim',
      (room) => {
        const c = claims(room);
        delete c.room;
        return hs(c);
      },
      /room/i,
    ],
    ['garbage', () => 'this-is-not.a.jwt!', null],
  ];

  for (const [name, make, text] of cases) {
    scenario(`refuses ${name}, then a good token still logs in`, server, async (t, s) => {
      const room = uniqueRoom('badtoken');
      await assertLoginRefused(s, room, make(room), { text, condition: 'not-authorized' });
      await assertLoginWorks(s, room, hs(claims(room)));
    });
  }

  scenario('refuses a token-less connection (allow_empty_token is false), then a good token still logs in', server, async (t, s) => {
    // The contract names no condition for this one: any SASL condition with a text.
    const room = uniqueRoom('empty');
    await assertLoginRefused(s, room, undefined, { condition: null });
    await assertLoginWorks(s, room, hs(claims(room)));
  });
});

// ---------------------------------------------------------------------------
describe('RS256 server (jwt_public_key_file)', () => {
  const rsa = rsaKeyPair();
  let keyFile;
  const server = useProsody(() => {
    requireProduct();
    keyFile = writeKeyFile(rsa.publicKey, 'rsa_public.pem');
    return {
      vhost: {
        authentication: 'matrix_user_verification',
        app_id: APP_ID,
        signature_algorithm: 'RS256',
        jwt_public_key_file: keyFile.path,
      },
      vhostModules: ['test_observer'],
      mucModules: ['token_security_ondemand', 'test_lobby'],
    };
  });
  after(() => keyFile?.cleanup());

  scenario('accepts a properly signed RS256 token', server, async (t, s) => {
    const room = uniqueRoom('rs256');
    await assertLoginWorks(s, room, sign(claims(room), { alg: 'RS256', key: rsa.privateKey }));
  });

  scenario('refuses HS256 signed with the RSA public key PEM as secret (HS/RS confusion)', server, async (t, s) => {
    const room = uniqueRoom('confusion');
    await assertLoginRefused(s, room, sign(claims(room), { alg: 'HS256', key: rsa.publicKey }), {
      text: /alg|signature/i,
    });
    // Same MAC but the header claims RS256: the signature cannot verify.
    await assertLoginRefused(
      s,
      room,
      sign(claims(room), { alg: 'HS256', key: rsa.publicKey, header: { alg: 'RS256' } }),
      { text: /signature|malformed|invalid/i },
    );
    await assertLoginWorks(s, room, sign(claims(room), { alg: 'RS256', key: rsa.privateKey }));
  });

  scenario('refuses alg none and a token signed by another RSA key', server, async (t, s) => {
    const room = uniqueRoom('rs256-bad');
    await assertLoginRefused(s, room, sign(claims(room), { alg: 'none' }), { text: /alg/i });
    const other = rsaKeyPair();
    await assertLoginRefused(s, room, sign(claims(room), { alg: 'RS256', key: other.privateKey }), {
      text: /signature/i,
    });
    await assertLoginWorks(s, room, sign(claims(room), { alg: 'RS256', key: rsa.privateKey }));
  });
});

// ---------------------------------------------------------------------------
describe('ES256 server (jwt_public_key_file)', () => {
  const ec = ecKeyPair();
  let keyFile;
  const server = useProsody(() => {
    requireProduct();
    keyFile = writeKeyFile(ec.publicKey, 'ec_public.pem');
    return {
      vhost: {
        authentication: 'matrix_user_verification',
        app_id: APP_ID,
        signature_algorithm: 'ES256',
        jwt_public_key_file: keyFile.path,
      },
      vhostModules: ['test_observer'],
      mucModules: ['token_security_ondemand', 'test_lobby'],
    };
  });
  after(() => keyFile?.cleanup());

  scenario('accepts a properly signed ES256 token and refuses one signed by another key', server, async (t, s) => {
    const room = uniqueRoom('es256');
    await assertLoginWorks(s, room, sign(claims(room), { alg: 'ES256', key: ec.privateKey }));
    const other = ecKeyPair();
    await assertLoginRefused(s, room, sign(claims(room), { alg: 'ES256', key: other.privateKey }), {
      text: /signature/i,
    });
    await assertLoginWorks(s, room, sign(claims(room), { alg: 'ES256', key: ec.privateKey }));
  });
});

// ---------------------------------------------------------------------------
describe('our ANONYMOUS mechanism beside a guest host with Prosody\'s anonymous auth', () => {
  const server = useProsody(() => {
    requireProduct();
    return {
      vhost: { authentication: 'matrix_user_verification', app_id: APP_ID, app_secret: SECRET },
      extraConfig: 'VirtualHost "guest.localhost"\n    authentication = "anonymous"\n',
    };
  });

  scenario('a guest on the anonymous host still gets a username, and token users still log in', server, async (t, s) => {
    const room = uniqueRoom('guest');
    let guest, member;
    try {
      guest = await connect(s.wsUrl(room), { domain: 'guest.localhost' });
      assert.match(guest.jid, /^[^@]+@guest\.localhost\//, `guest jid: ${guest.jid}`);
      member = await connect(s.wsUrl(room, hs(claims(room))));
      assert.match(member.jid, /^[0-9a-f-]{36}@localhost\//, `token user jid: ${member.jid}`);
    } finally {
      await stopAll(guest, member);
    }
  });
});
