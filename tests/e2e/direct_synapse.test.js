// End-to-end: the direct homeserver mode of mod_auth_matrix_user_verification
// (README "UVS or the homeserver") against a REAL Synapse (lib/synapse.js,
// `make deps-synapse`), a real Prosody with our plugins (auth on the
// VirtualHost, mod_matrix_power_sync on the MUC) and real XMPP clients.
//
// One Synapse for the whole file; one Prosody per describe:
//   A. Synapse behind a small counting HTTP proxy (so every request Prosody
//      makes is seen and attributed), default matrix_cache_ttl (60 s),
//      matrix_state_ttl 30 (so that nothing here waits for it), server name
//      learnt from whoami: membership, power, v11/v12 creators, refusals,
//      the cache; what a login costs: logins into one room share one state
//      read, refusals of one token are kept, a user who just joined the
//      Matrix room is read again; secrets in the log.
//   E. The counting proxy, matrix_state_ttl 1: a ban and a power raise in
//      Matrix reach fresh logins (waited for with a deadline).
//   B. Synapse directly, uvs_timeout 2, matrix_cache_ttl 0: Synapse paused
//      (SIGSTOP) -> fail closed within the deadline; resumed -> logins again.
//   C. matrix_homeserver_url on a closed port: fail closed, quickly.
//
// Requests are counted with the counting proxy of lib/synapse.js rather
// than from Synapse's log: the proxy sees exactly the requests Prosody
// sends (nothing else goes through it), with no dependence on Synapse's
// log format or flushing.

import assert from 'node:assert/strict';
import { after, before, describe } from 'node:test';

import { connect, stopAll, tryConnect } from './lib/client.js';
import { scenario, useProsody } from './lib/harness.js';
import {
  eventuallyRoom,
  jitsiRoomOf,
  matrixToken,
  requestCompleteCodes,
  requirePlugins,
  roomJidOfMatrix,
  sessionFields,
  sessionProbePlugin,
  sleep,
  until,
} from './lib/matrix.js';
import { roomState } from './lib/observer.js';
import { freePorts } from './lib/prosody.js';
import { startCountingProxy, startSynapse } from './lib/synapse.js';

const APP_ID = 'e2e-direct-app';
const PLUGINS = ['mod_auth_matrix_user_verification.lua', 'mod_matrix_power_sync.lua'];
const TIMEOUT_S = 2; // uvs_timeout of the failure-mode servers
const SLACK_MS = 1500; // a refusal must come within uvs_timeout + this

// ---------------------------------------------------------------------------
// The homeserver, its users and rooms (file-wide).

let hs;
let admin; // Synapse server admin: its access token is matrix_admin_token
const U = {}; // alice, bob, carol, dave, erin, frank
let room11; // v11, created by alice (users[alice] = 100); bob, carol, erin, frank joined
let room12; // v12, created by alice (a creator, not in users); bob joined

// Every secret handed to a Prosody: none may ever show up in its log.
const openidsUsed = new Set();

before(async () => {
  requirePlugins(PLUGINS);
  // bcrypt_rounds 4: registration is not what this file measures.
  hs = await startSynapse({ config: { bcrypt_rounds: 4 } });
  const names = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank'];
  const [a, ...users] = await Promise.all([
    hs.registerUser('admin', { admin: true }),
    ...names.map((n) => hs.registerUser(n, { displayname: n })),
  ]);
  admin = a;
  names.forEach((n, i) => (U[n] = users[i]));
  room11 = await hs.createRoom(U.alice.accessToken, { roomVersion: '11', preset: 'public_chat' });
  room12 = await hs.createRoom(U.alice.accessToken, { roomVersion: '12', preset: 'public_chat' });
  await Promise.all([
    hs.join(U.bob.accessToken, room11),
    hs.join(U.carol.accessToken, room11),
    hs.join(U.erin.accessToken, room11),
    hs.join(U.frank.accessToken, room11),
    hs.join(U.bob.accessToken, room12),
  ]);
  await hs.setPowerLevel(U.alice.accessToken, room11, U.carol.userId, 100);
  console.log(`# synapse ${hs.serverName} at ${hs.url}: startup ${JSON.stringify(hs.startupMs)} ms`);
});

after(async () => {
  if (hs) await hs.stop();
});

// ---------------------------------------------------------------------------
// Helpers.

/** A fresh OpenID token for a user (remembered for the log scan). */
async function openidOf(user) {
  const openid = await hs.openidToken(user.accessToken, user.userId);
  openidsUsed.add(openid);
  return openid;
}

/** Element's token for `user` and `roomId`; a fresh OpenID token unless one is given. */
async function tokenFor(user, roomId, openid) {
  const o = openid ?? (await openidOf(user));
  return { openid: o, token: matrixToken({ iss: APP_ID, openid: o, roomId, serverName: hs.serverName, name: user.userId }) };
}

/** Log in (must succeed); resolves { c, elapsed, openid }. */
async function login(s, user, roomId, openid) {
  const t = await tokenFor(user, roomId, openid);
  const started = performance.now();
  const c = await connect(s.wsUrl(jitsiRoomOf(roomId), t.token));
  return { c, elapsed: performance.now() - started, openid: t.openid };
}

/** Login must fail with `condition` and a text matching `text`; resolves { condition, text, elapsed }. */
async function expectRefused(url, condition, text, what) {
  const started = performance.now();
  const res = await tryConnect(url);
  const elapsed = performance.now() - started;
  if (res.ok) {
    await res.client.stop();
    assert.fail(`${what}: login succeeded (jid ${res.client.jid}), expected ${condition}`);
  }
  assert.equal(res.condition, condition, `${what}: SASL failure ${JSON.stringify(res)}`);
  assert.match(res.text || '', text, `${what}: SASL failure text ${JSON.stringify(res)}`);
  return { ...res, elapsed };
}

/** The REQUEST_COMPLETE codes logged since `mark`, once there are `n`. */
async function codesSince(s, mark, n = 1) {
  try {
    return await until(() => {
      const codes = requestCompleteCodes(s.logSince(mark));
      assert.ok(codes.length >= n);
      return codes;
    }, 2000);
  } catch {
    return requestCompleteCodes(s.logSince(mark));
  }
}

async function expectCodes(s, mark, expected, what) {
  const codes = await codesSince(s, mark, expected.length);
  assert.deepEqual(codes, expected, `${what}: REQUEST_COMPLETE codes`);
}

/** The affiliation of `client` in `roomJid` settles to `expected` and stays there. */
async function expectAffiliation(s, roomJid, client, expected, what) {
  await client.ping('localhost');
  await eventuallyRoom(s.httpPort, roomJid, (st) =>
    assert.equal(st.affiliations[client.bareJid], expected, `${what}: affiliation of ${client.bareJid}`),
  );
  await client.ping('localhost');
  const again = await roomState(s.httpPort, roomJid);
  assert.equal(again.affiliations[client.bareJid], expected, `${what}: affiliation later; ${JSON.stringify(again)}`);
  const occ = again.occupants.find((o) => o.jid === client.bareJid);
  assert.ok(occ, `${what}: occupant present in ${JSON.stringify(again.occupants)}`);
  assert.equal(occ.affiliation, expected, `${what}: occupant affiliation`);
}

/** Session fields: verified user id and owner flag. */
async function expectSession(s, c, user, isOwner, what) {
  const f = await sessionFields(s.httpPort, c.jid);
  assert.equal(f.found, true, `${what}: session found`);
  assert.equal(f.jitsi_meet_context_user?.id, user.userId, `${what}: context user id ${JSON.stringify(f)}`);
  assert.equal(f.auth_matrix_user_verification_is_owner, isOwner, `${what}: is_owner ${JSON.stringify(f)}`);
  return f;
}

/** Join the MUC room of `roomId`; must succeed. */
async function joinRoom(c, roomId, nick) {
  const j = await c.joinMuc(roomJidOfMatrix(roomId), nick);
  assert.equal(j.ok, true, `${nick} joins: ${JSON.stringify(j)}`);
  return j;
}

/** No OpenID token, admin token or Matrix access token in the whole Prosody log. */
function assertNoSecrets(t, s, minOpenids) {
  const log = s.logText();
  assert.ok(log.includes('REQUEST_COMPLETE'), 'sanity: the log holds the logins');
  const used = [...openidsUsed];
  assert.ok(used.length >= minOpenids, `sanity: ${used.length} OpenID tokens used`);
  assert.deepEqual(
    used.filter((o) => log.includes(o)),
    [],
    'OpenID tokens found in the Prosody log',
  );
  assert.ok(!log.includes(admin.accessToken), 'matrix_admin_token found in the Prosody log');
  const leakedAccess = Object.entries(U).filter(([, u]) => log.includes(u.accessToken));
  assert.deepEqual(leakedAccess.map(([n]) => n), [], 'Matrix access tokens found in the Prosody log');
  t.diagnostic(`scanned ${log.length} bytes of Prosody log for ${used.length} OpenID tokens and the admin token: clean`);
}

/** Log in `users` into `roomId` all at once; every login must succeed. */
async function loginAll(s, users, roomId) {
  const tokens = await Promise.all(users.map((u) => tokenFor(u, roomId)));
  const results = await Promise.allSettled(tokens.map((t) => connect(s.wsUrl(jitsiRoomOf(roomId), t.token))));
  const clients = results.filter((r) => r.status === 'fulfilled').map((r) => r.value);
  const failed = results.filter((r) => r.status === 'rejected').map((r) => String(r.reason?.message || r.reason));
  if (failed.length) {
    await stopAll(...clients);
    assert.fail(`${failed.length} of ${users.length} logins failed: ${failed.join('; ')}`);
  }
  return clients;
}

/** A fresh room created by alice with `members` joined. */
async function freshRoom(members) {
  const roomId = await hs.createRoom(U.alice.accessToken, { roomVersion: '11', preset: 'public_chat' });
  await Promise.all(members.map((u) => hs.join(u.accessToken, roomId)));
  return roomId;
}

function vhostFor(homeserverUrl, extra = {}) {
  return {
    authentication: 'matrix_user_verification',
    app_id: APP_ID,
    matrix_homeserver_url: homeserverUrl,
    matrix_admin_token: admin.accessToken,
    uvs_sync_power_levels: true,
    ...extra,
  };
}

const ms = (x) => `${x.toFixed(0)} ms`;

// ---------------------------------------------------------------------------
describe('direct homeserver: real Synapse (counting proxy, matrix_cache_ttl default 60 s, matrix_state_ttl 30)', () => {
  let proxy;
  const server = useProsody(async () => {
    proxy = await startCountingProxy(hs.url);
    return {
      vhost: vhostFor(proxy.url, { uvs_timeout: 5, matrix_state_ttl: 30 }),
      vhostModules: ['test_observer', sessionProbePlugin().module],
      mucModules: ['matrix_power_sync'],
    };
  });
  after(async () => {
    await proxy?.stop();
  });

  scenario('v11 members: power 100 -> owner, power 0 -> member; user id from the homeserver', server, async (t, s) => {
    const mark = s.logMark();
    const before = proxy.requests.length;
    let b, c;
    try {
      // The power-0 member joins the MUC room first (Prosody's creator rule out of the picture).
      const lb = await login(s, U.bob, room11);
      b = lb.c;
      const bobReqs = proxy.requests.slice(before);
      assert.equal(bobReqs.filter((r) => r.kind === 'userinfo' && r.openid === lb.openid).length, 1, 'one userinfo request');
      assert.equal(bobReqs.filter((r) => r.kind === 'state' && r.roomId === room11).length, 1, 'one room state request');
      await expectSession(s, b, U.bob, false, 'bob (power 0)');
      await joinRoom(b, room11, 'bob');
      await expectAffiliation(s, roomJidOfMatrix(room11), b, 'member', 'bob (power 0)');

      const lc = await login(s, U.carol, room11);
      c = lc.c;
      await expectSession(s, c, U.carol, true, 'carol (power 100)');
      await joinRoom(c, room11, 'carol');
      await expectAffiliation(s, roomJidOfMatrix(room11), c, 'owner', 'carol (power 100)');
      const st = await roomState(s.httpPort, roomJidOfMatrix(room11));
      assert.equal(st.affiliations[b.bareJid], 'member', `bob still member: ${JSON.stringify(st)}`);
      await expectCodes(s, mark, ['ok', 'ok'], 'two members');
      const whoami = proxy.count((r) => r.kind === 'whoami');
      t.diagnostic(
        `member login latency (uncached, userinfo + admin room state through the proxy): ` +
          `bob ${ms(lb.elapsed)}, carol ${ms(lc.elapsed)}; whoami requests so far: ${whoami}`,
      );
    } finally {
      await stopAll(b, c);
    }
  });

  scenario('a user of the server who is not in the room: not-authorized, not_in_room', server, async (t, s) => {
    const mark = s.logMark();
    const { openid, token } = await tokenFor(U.dave, room11);
    const res = await expectRefused(s.wsUrl(jitsiRoomOf(room11), token), 'not-authorized', /not a member/i, 'non-member');
    await expectCodes(s, mark, ['not_in_room'], 'non-member');
    assert.equal(proxy.count((r) => r.kind === 'userinfo' && r.openid === openid), 1, 'the OpenID token was checked');
    t.diagnostic(`non-member refused after ${ms(res.elapsed)}: ${res.condition} (${res.text})`);
  });

  scenario('an OpenID token Synapse does not know: not-authorized, invalid_token, no room state read', server, async (t, s) => {
    const mark = s.logMark();
    const bogus = `bogus${Date.now().toString(36)}OpenIdTokenXyz`;
    openidsUsed.add(bogus);
    const beforeState = proxy.count((r) => r.kind === 'state');
    const { token } = await tokenFor(U.bob, room11, bogus);
    const res = await expectRefused(
      s.wsUrl(jitsiRoomOf(room11), token),
      'not-authorized',
      /^Matrix OpenID token was refused by the homeserver/,
      'invalid OpenID token',
    );
    await expectCodes(s, mark, ['invalid_token'], 'invalid OpenID token');
    assert.equal(proxy.count((r) => r.kind === 'userinfo' && r.openid === bogus), 1, 'the homeserver was asked');
    assert.equal(proxy.count((r) => r.kind === 'state'), beforeState, 'no room state read for a refused token');
    t.diagnostic(`invalid token refused after ${ms(res.elapsed)}: ${res.condition} (${res.text})`);
  });

  scenario('v12 room: the creator (not in users) is owner, a joined non-creator with power 0 is member', server, async (t, s) => {
    const state = await hs.adminRoomState(admin.accessToken, room12);
    const create = state.state.find((e) => e.type === 'm.room.create');
    const pl = state.state.find((e) => e.type === 'm.room.power_levels');
    assert.equal(create.content.room_version, '12');
    assert.equal(create.sender, U.alice.userId);
    assert.equal(pl.content.users?.[U.alice.userId], undefined, 'sanity: a v12 creator is not in users');
    const mark = s.logMark();
    let b, a;
    try {
      ({ c: b } = await login(s, U.bob, room12));
      await expectSession(s, b, U.bob, false, 'bob in v12');
      await joinRoom(b, room12, 'bob');
      await expectAffiliation(s, roomJidOfMatrix(room12), b, 'member', 'v12 non-creator');

      ({ c: a } = await login(s, U.alice, room12));
      await expectSession(s, a, U.alice, true, 'alice, v12 creator');
      await joinRoom(a, room12, 'alice');
      await expectAffiliation(s, roomJidOfMatrix(room12), a, 'owner', 'v12 creator');
      await expectCodes(s, mark, ['ok', 'ok'], 'v12 logins');
    } finally {
      await stopAll(b, a);
    }
  });

  scenario('v11 room: the creator (users[creator] = 100) is owner', server, async (t, s) => {
    const pl = await hs.getState(U.alice.accessToken, room11, 'm.room.power_levels');
    assert.equal(pl.users[U.alice.userId], 100, 'sanity: the v11 creator is at 100 in users');
    let b, a;
    try {
      ({ c: b } = await login(s, U.bob, room11));
      await joinRoom(b, room11, 'bob');
      await expectAffiliation(s, roomJidOfMatrix(room11), b, 'member', 'bob (power 0)');
      ({ c: a } = await login(s, U.alice, room11));
      await expectSession(s, a, U.alice, true, 'alice, v11 creator');
      await joinRoom(a, room11, 'alice');
      await expectAffiliation(s, roomJidOfMatrix(room11), a, 'owner', 'v11 creator');
    } finally {
      await stopAll(b, a);
    }
  });

  scenario('logins of different members into one room at the same moment share one room-state read', server, async (t, s) => {
    const members = [U.bob, U.carol, U.erin, U.frank];
    const roomId = await freshRoom(members);
    const mark = s.logMark();
    const before = proxy.requests.length;
    const clients = await loginAll(s, [U.alice, ...members], roomId);
    try {
      const reqs = proxy.requests.slice(before);
      assert.equal(reqs.filter((r) => r.kind === 'state' && r.roomId === roomId).length, 1, 'one room state read for 5 logins');
      assert.equal(reqs.filter((r) => r.kind === 'userinfo').length, 5, 'one userinfo request per OpenID token');
      await expectCodes(s, mark, ['ok', 'ok', 'ok', 'ok', 'ok'], 'five members at once');
      for (const [i, u] of [U.alice, ...members].entries()) {
        const f = await sessionFields(s.httpPort, clients[i].jid);
        assert.equal(f.jitsi_meet_context_user?.id, u.userId, `login ${i}: ${JSON.stringify(f)}`);
      }
    } finally {
      await stopAll(...clients);
    }
  });

  scenario('5 refused logins with one invalid OpenID token cost one userinfo request and no room state read', server, async (t, s) => {
    const mark = s.logMark();
    const bogus = `bogus${Date.now().toString(36)}FiveTimesXyz`;
    openidsUsed.add(bogus);
    const beforeState = proxy.count((r) => r.kind === 'state');
    const { token } = await tokenFor(U.bob, room11, bogus);
    const url = s.wsUrl(jitsiRoomOf(room11), token);
    // One, then four at once: the refusal is kept for the next ones.
    await expectRefused(url, 'not-authorized', /OpenID token was refused/, 'invalid OpenID token, login 1');
    await Promise.all([2, 3, 4, 5].map((n) => expectRefused(url, 'not-authorized', /OpenID token was refused/, `login ${n}`)));
    await expectCodes(s, mark, Array(5).fill('invalid_token'), 'five refusals');
    assert.equal(proxy.count((r) => r.kind === 'userinfo' && r.openid === bogus), 1, 'one userinfo request for five logins');
    assert.equal(proxy.count((r) => r.kind === 'state'), beforeState, 'no room state read');
  });

  scenario('a user who joins the Matrix room and logs in at once is let in (kept state without them is read again)', server, async (t, s) => {
    const roomId = await freshRoom([U.bob]);
    let b, d;
    try {
      ({ c: b } = await login(s, U.bob, roomId)); // the room's state is now kept, without dave
      const reads = () => proxy.count((r) => r.kind === 'state' && r.roomId === roomId);
      assert.equal(reads(), 1, 'bob: one state read');
      await hs.join(U.dave.accessToken, roomId);
      const mark = s.logMark();
      ({ c: d } = await login(s, U.dave, roomId));
      await expectSession(s, d, U.dave, false, 'dave, just joined');
      await expectCodes(s, mark, ['ok'], 'dave');
      assert.equal(reads(), 2, 'the kept state lacked dave: read again');
      await joinRoom(d, roomId, 'dave');
    } finally {
      await stopAll(b, d);
    }
  });

  scenario('a cached verification makes no second request (same OpenID token and room within the TTL)', server, async (t, s) => {
    const mark = s.logMark();
    const openid = await openidOf(U.frank);
    let c1, c2;
    try {
      const first = await login(s, U.frank, room11, openid);
      c1 = first.c;
      await expectSession(s, c1, U.frank, false, 'frank, first login');
      await stopAll(c1);
      assert.equal(proxy.count((r) => r.kind === 'userinfo' && r.openid === openid), 1, 'first login: one userinfo request');

      const n = proxy.requests.length;
      const second = await login(s, U.frank, room11, openid);
      c2 = second.c;
      await expectSession(s, c2, U.frank, false, 'frank, second login (cached)');
      await sleep(100);
      assert.deepEqual(
        proxy.requests.slice(n).map((r) => `${r.method} ${r.path}`),
        [],
        'the second login made no HTTP request to the homeserver',
      );
      assert.equal(proxy.count((r) => r.kind === 'userinfo' && r.openid === openid), 1, 'still one userinfo request');
      await expectCodes(s, mark, ['ok', 'ok'], 'two logins');
      t.diagnostic(`login latency: uncached ${ms(first.elapsed)}, cached ${ms(second.elapsed)}`);
    } finally {
      await stopAll(c1, c2);
    }
  });

  scenario('the admin token travels only in Authorization; no secret in the Prosody log', server, async (t, s) => {
    const byKind = {};
    for (const r of proxy.requests) byKind[r.kind] = (byKind[r.kind] || 0) + 1;
    t.diagnostic(`requests seen by the proxy: ${JSON.stringify(byKind)}`);
    assert.ok(byKind.state >= 1 && byKind.userinfo >= 1, 'sanity: the proxy saw the checks');
    for (const r of proxy.requests) {
      assert.ok(!r.url.includes(admin.accessToken), `admin token in a URL: ${r.path}`);
      if (r.kind === 'state' || r.kind === 'whoami') {
        assert.equal(r.authorization, `Bearer ${admin.accessToken}`, `${r.kind} request carries the admin token`);
      } else {
        assert.equal(r.authorization, null, `${r.kind} request (${r.path}) carries no Authorization header`);
      }
    }
    assertNoSecrets(t, s, 10);
  });
});

// ---------------------------------------------------------------------------
describe('direct homeserver: Matrix changes reach new logins (counting proxy, matrix_state_ttl 1)', () => {
  let proxy;
  const server = useProsody(async () => {
    proxy = await startCountingProxy(hs.url);
    return {
      vhost: vhostFor(proxy.url, { uvs_timeout: 5, matrix_state_ttl: 1 }),
      vhostModules: ['test_observer', sessionProbePlugin().module],
      mucModules: ['matrix_power_sync'],
    };
  });
  after(async () => {
    await proxy?.stop();
  });

  scenario('a user banned in Matrix is refused on a fresh login after matrix_state_ttl', server, async (t, s) => {
    const victim = await hs.registerUser(`banned${Date.now().toString(36)}`);
    const roomId = await freshRoom([U.bob, victim]);
    const first = await login(s, victim, roomId);
    await expectSession(s, first.c, victim, false, 'before the ban');
    await stopAll(first.c);
    await hs.ban(U.alice.accessToken, roomId, victim.userId, 'e2e');
    // Logins with the same OpenID token (as Element reuses it) until the
    // ban shows; kept state may admit it for up to matrix_state_ttl.
    const { token } = await tokenFor(victim, roomId, first.openid);
    const url = s.wsUrl(jitsiRoomOf(roomId), token);
    let tries = 0;
    const refused = await until(async () => {
      tries++;
      const res = await tryConnect(url);
      if (res.ok) {
        await res.client.stop();
        throw new Error('still admitted');
      }
      return res;
    }, 20000, 100);
    assert.equal(refused.condition, 'not-authorized', JSON.stringify(refused));
    assert.match(refused.text || '', /not a member/i);
    const mark = s.logMark();
    await expectRefused(url, 'not-authorized', /not a member/i, 'banned, again');
    await expectCodes(s, mark, ['not_in_room'], 'banned user');
    // Another member is not affected.
    const b = await login(s, U.bob, roomId);
    await stopAll(b.c);
    t.diagnostic(`banned user refused after ${tries} login(s) after the ban`);
  });

  scenario('a member raised to 50 in Matrix is owner on a fresh login within matrix_state_ttl', server, async (t, s) => {
    let e1, e2, b, e3;
    try {
      // The MUC room has a non-owner creator so that ownership comes from power only.
      ({ c: b } = await login(s, U.bob, room11));
      await joinRoom(b, room11, 'bob');
      const first = await login(s, U.erin, room11);
      e1 = first.c;
      await expectSession(s, e1, U.erin, false, 'erin at power 0');
      await joinRoom(e1, room11, 'erin1');
      await expectAffiliation(s, roomJidOfMatrix(room11), e1, 'member', 'erin at power 0');
      await stopAll(e1);

      await hs.setPowerLevel(U.alice.accessToken, room11, U.erin.userId, 50);
      const pl = await hs.getState(U.alice.accessToken, room11, 'm.room.power_levels');
      assert.equal(pl.users[U.erin.userId], 50, 'sanity: erin is at 50');

      // Fresh logins until the raise shows (kept state may be up to
      // matrix_state_ttl old).
      const beforeState = proxy.count((r) => r.kind === 'state' && r.roomId === room11);
      await until(async () => {
        const l = await login(s, U.erin, room11);
        const f = await sessionFields(s.httpPort, l.c.jid);
        if (f.auth_matrix_user_verification_is_owner !== true) {
          await stopAll(l.c);
          throw new Error(`not owner yet: ${JSON.stringify(f)}`);
        }
        e2 = l.c;
      }, 20000, 100);
      assert.ok(proxy.count((r) => r.kind === 'state' && r.roomId === room11) > beforeState, 'room state read again');
      await expectSession(s, e2, U.erin, true, 'erin at power 50 (state_default 50)');
      await joinRoom(e2, room11, 'erin2');
      await expectAffiliation(s, roomJidOfMatrix(room11), e2, 'owner', 'erin at power 50');

      // The first OpenID token (its user id kept by matrix_cache_ttl) sees the raise too: no whole verdict is kept.
      ({ c: e3 } = await login(s, U.erin, room11, first.openid));
      await expectSession(s, e3, U.erin, true, 'erin, first OpenID token again');
    } finally {
      await stopAll(e1, e2, e3, b);
    }
  });

  scenario('no secret in the Prosody log', server, async (t, s) => {
    assertNoSecrets(t, s, 2);
  });
});

// ---------------------------------------------------------------------------
describe(`direct homeserver: Synapse paused (uvs_timeout ${TIMEOUT_S}, matrix_cache_ttl 0)`, () => {
  const server = useProsody(() => ({
    vhost: vhostFor(hs.url, { uvs_timeout: TIMEOUT_S, matrix_cache_ttl: 0 }),
    vhostModules: ['test_observer', sessionProbePlugin().module],
  }));

  scenario(`a hung homeserver fails closed within uvs_timeout + ${SLACK_MS / 1000} s; logins work again after resume`, server, async (t, s) => {
    // A login first: the server name (whoami) is known, the pool is warm.
    const warm = await login(s, U.bob, room11);
    await expectSession(s, warm.c, U.bob, false, 'bob before the pause');
    await stopAll(warm.c);

    const { token } = await tokenFor(U.carol, room11); // fetched while Synapse answers
    const mark = s.logMark();
    let res;
    hs.pause();
    try {
      res = await expectRefused(
        s.wsUrl(jitsiRoomOf(room11), token),
        'temporary-auth-failure',
        /^could not verify the Matrix user: the homeserver /,
        'paused homeserver',
      );
    } finally {
      hs.resume();
    }
    await expectCodes(s, mark, ['invalid_response'], 'paused homeserver');
    t.diagnostic(`paused homeserver: refused after ${ms(res.elapsed)} (uvs_timeout ${TIMEOUT_S} s): ${res.text}`);
    assert.ok(res.elapsed < TIMEOUT_S * 1000 + SLACK_MS, `refused after ${ms(res.elapsed)}`);
    assert.ok(res.elapsed >= TIMEOUT_S * 1000 - 250, `waited for the homeserver (${ms(res.elapsed)})`);

    // Same token again, Synapse back: verified (nothing cached, nothing stuck).
    const started = performance.now();
    const again = await connect(s.wsUrl(jitsiRoomOf(room11), token));
    try {
      await expectSession(s, again, U.carol, true, 'carol after resume');
    } finally {
      await stopAll(again);
    }
    t.diagnostic(`login after resume: ${ms(performance.now() - started)}; before the pause: ${ms(warm.elapsed)}`);
  });

  scenario('no secret in the Prosody log', server, async (t, s) => {
    assertNoSecrets(t, s, 2);
  });
});

// ---------------------------------------------------------------------------
describe(`direct homeserver: matrix_homeserver_url on a closed port (uvs_timeout ${TIMEOUT_S})`, () => {
  const server = useProsody(async () => {
    const [closed] = await freePorts(1);
    return {
      vhost: vhostFor(`http://127.0.0.1:${closed}`, { uvs_timeout: TIMEOUT_S, matrix_server_name: hs.serverName }),
      vhostModules: ['test_observer', sessionProbePlugin().module],
    };
  });

  scenario(`a homeserver that is down fails closed within uvs_timeout + ${SLACK_MS / 1000} s`, server, async (t, s) => {
    const mark = s.logMark();
    const { token } = await tokenFor(U.carol, room11);
    const res = await expectRefused(
      s.wsUrl(jitsiRoomOf(room11), token),
      'temporary-auth-failure',
      /^could not verify the Matrix user: the homeserver /,
      'homeserver down',
    );
    await expectCodes(s, mark, ['invalid_response'], 'homeserver down');
    t.diagnostic(`homeserver down: refused after ${ms(res.elapsed)}: ${res.text}`);
    assert.ok(res.elapsed < TIMEOUT_S * 1000 + SLACK_MS, `refused after ${ms(res.elapsed)}`);
  });

  scenario('no secret in the Prosody log', server, async (t, s) => {
    assertNoSecrets(t, s, 1);
  });
});
