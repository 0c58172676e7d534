// End-to-end, against a real Synapse: live Matrix membership in direct
// homeserver mode (matrix_homeserver_url + matrix_admin_token). While a Jitsi
// room has occupants verified for its Matrix room, mod_matrix_power_sync
// re-reads that room's state every matrix_resync_interval seconds (1 s here):
// occupants kicked/banned in Matrix are kicked from the MUC (status 307),
// owners follow power levels, homeserver outages change nothing (one warn
// line per outage), and rooms without Matrix occupants cost no request.
// CONTRACT.md sections 3, 4b, 7; lua/mod_matrix_power_sync.lua; src/resync.rs.
//
// One Synapse for the file, one Prosody per describe.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, before, describe } from 'node:test';

import { connect, stopAll } from './lib/client.js';
import { scenario, useProsody } from './lib/harness.js';
import { sign } from './lib/jwt.js';
import {
  eventuallyRoom,
  jitsiRoomOf,
  matrixToken,
  requirePlugins,
  roomJidOfMatrix,
  sessionProbePlugin,
  sleep,
  until,
} from './lib/matrix.js';
import { roomState } from './lib/observer.js';
import { startSynapse } from './lib/synapse.js';

const APP_ID = 'e2e-resync-app';
const APP_SECRET = `e2e-resync-secret-${crypto.randomBytes(12).toString('hex')}`;
const PLUGINS = ['mod_auth_matrix_user_verification.lua', 'mod_matrix_power_sync.lua'];
const INTERVAL_S = 1;
const UVS_TIMEOUT_S = 2;
const NS_MUC_USER = 'http://jabber.org/protocol/muc#user';
// A kick/owner change must reach the client within one interval (plus
// jitter) and a request: interval + 2 s.
const DEADLINE_MS = INTERVAL_S * 1000 + 2000;

const OUTAGE_WARN = /the homeserver .*Matrix membership is not re-checked until it answers \(nobody is removed meanwhile\)/;
const RECOVERED = /the homeserver answers again/;

// ---------------------------------------------------------------------------
// One Synapse for the whole file.

let hs;
let admin;
let alice;
let bob;

before(async () => {
  requirePlugins(PLUGINS);
  hs = await startSynapse();
  admin = await hs.registerUser('admin', { admin: true });
  alice = await hs.registerUser('alice', { displayname: 'Alice' });
  bob = await hs.registerUser('bob', { displayname: 'Bob' });
});

after(async () => {
  if (hs) await hs.stop();
});

/** A Matrix room created by alice (public, bob joins it in Matrix). */
async function matrixRoom(roomVersion, { withBob = true } = {}) {
  const roomId = await hs.createRoom(alice.accessToken, { roomVersion, preset: 'public_chat' });
  if (withBob) await hs.join(bob.accessToken, roomId);
  return roomId;
}

/** Log `user` in with an Element-style token for `roomId` (real OpenID token) and join its Jitsi room. */
async function loginAndJoin(s, user, roomId, nick) {
  const openid = await hs.openidToken(user.accessToken, user.userId);
  const token = matrixToken({ iss: APP_ID, openid, roomId, name: nick });
  const c = await connect(s.wsUrl(jitsiRoomOf(roomId), token));
  const joined = await c.joinMuc(roomJidOfMatrix(roomId), nick);
  assert.equal(joined.ok, true, `${nick} joins the Jitsi room of ${roomId}: ${JSON.stringify(joined)}`);
  return { c, joined };
}

/** The muc#user parts of a presence: { type, from, codes, affiliation, role, reason }. */
function mucPresence(stanza) {
  const x = stanza.getChild('x', NS_MUC_USER);
  const item = x?.getChild('item');
  return {
    type: stanza.attrs.type || 'available',
    from: stanza.attrs.from,
    codes: (x?.getChildren('status') || []).map((st) => Number(st.attrs.code)),
    affiliation: item?.attrs.affiliation,
    role: item?.attrs.role,
    reason: item?.getChildText('reason') ?? null,
  };
}

/**
 * Start waiting for a presence from `from` (room/nick, case-insensitive)
 * matching `pred(parsed)`; resolves { p (parsed), at (performance.now()) }.
 */
function watchPresence(c, from, pred, ms = 15000) {
  const full = from.toLowerCase();
  return c
    .waitFor(
      (st) => st.is('presence') && (st.attrs.from || '').toLowerCase() === full && pred(mucPresence(st)),
      ms,
      `presence from ${full}`,
    )
    .then((st) => ({ p: mucPresence(st), at: performance.now() }));
}

/** Every presence `c` receives from `roomJid` from now on (for "nothing happened" checks). */
function recordPresences(c, roomJid) {
  const seen = [];
  const prefix = `${roomJid.toLowerCase()}/`;
  const handler = (st) => {
    if (st.is('presence') && (st.attrs.from || '').toLowerCase().startsWith(prefix)) seen.push(mucPresence(st));
  };
  c.xmpp.on('stanza', handler);
  return { seen, stop: () => c.xmpp.removeListener('stanza', handler) };
}

/** Synapse access-log lines of admin room-state requests (resyncs and direct-mode logins). */
function adminRoomRequests(text, roomId) {
  const lines = text.split('\n').filter((l) => /synapse\.access\.http/.test(l) && /"GET \/_synapse\/admin\/v1\/rooms\//.test(l));
  if (!roomId) return lines;
  return lines.filter((l) => {
    const m = /"GET (\S+) HTTP/.exec(l);
    let p = m ? m[1] : '';
    try {
      p = decodeURIComponent(p);
    } catch {
      /* keep it raw */
    }
    return p.startsWith(`/_synapse/admin/v1/rooms/${roomId}/`);
  });
}

/** Matching lines of a Prosody log excerpt. */
const linesOf = (text, re) => text.split('\n').filter((l) => re.test(l));

/** The Prosody options of a direct-mode host with live resync. */
function directModeOptions({ vhost = {}, expectLog } = {}) {
  return {
    vhost: {
      authentication: 'matrix_user_verification',
      app_id: APP_ID,
      matrix_homeserver_url: hs.url,
      matrix_admin_token: admin.accessToken,
      uvs_sync_power_levels: true,
      matrix_cache_ttl: 0,
      matrix_resync_interval: INTERVAL_S,
      uvs_timeout: UVS_TIMEOUT_S,
      ...vhost,
    },
    vhostModules: ['test_observer', sessionProbePlugin().module],
    mucModules: ['matrix_power_sync'],
    ...(expectLog ? { expectLog } : {}),
  };
}

/** Kick-in-Matrix scenario body shared by kick and ban. */
async function expectRemovedAfter(t, s, { what, membership, act }) {
  const roomId = await matrixRoom('11');
  const roomJid = roomJidOfMatrix(roomId);
  let a, b;
  try {
    ({ c: a } = await loginAndJoin(s, alice, roomId, 'alice'));
    ({ c: b } = await loginAndJoin(s, bob, roomId, 'bob'));
    await eventuallyRoom(s.httpPort, roomJid, (st) => assert.equal(st.occupants.length, 2, 'alice and bob are in'));

    const mark = s.logMark();
    const bobKicked = watchPresence(b, `${roomJid}/bob`, (p) => p.type === 'unavailable');
    const aliceSees = watchPresence(a, `${roomJid}/bob`, (p) => p.type === 'unavailable');
    const tCall = performance.now();
    await act(roomId);
    const t0 = performance.now();
    const { p, at } = await bobKicked;
    const latency = Math.round(at - t0);
    t.diagnostic(`${what}: MUC kick reached bob ${latency} ms after the Matrix ${what} returned (interval ${INTERVAL_S} s; the Matrix call itself took ${Math.round(t0 - tCall)} ms)`);

    assert.ok(p.codes.includes(307), `bob's unavailable presence has status 307: ${JSON.stringify(p)}`);
    assert.equal(p.role, 'none', `role none: ${JSON.stringify(p)}`);
    assert.ok(
      typeof p.reason === 'string' && p.reason.startsWith(`no longer in the Matrix room (${membership})`),
      `reason names the membership ${membership}: ${JSON.stringify(p)}`,
    );
    assert.ok(latency <= DEADLINE_MS, `kick within interval + 2 s (${DEADLINE_MS} ms), took ${latency} ms`);

    const seen = (await aliceSees).p;
    assert.ok(seen.codes.includes(307), `alice sees bob kicked (307): ${JSON.stringify(seen)}`);

    // alice (still joined in Matrix) stays; bob is gone.
    const st = await roomState(s.httpPort, roomJid);
    assert.deepEqual(
      st.occupants.map((o) => o.jid),
      [a.bareJid],
      `only alice is left: ${JSON.stringify(st.occupants)}`,
    );
    const removed = linesOf(s.logSince(mark), /\tinfo\tremoving .* \(Matrix user @bob:.*\) from .*: no longer in the Matrix room \(/);
    assert.equal(removed.length, 1, `one "removing" info line: ${JSON.stringify(removed)}`);
    assert.ok(removed[0].includes(`(${membership})`), removed[0]);

    // Bob's XMPP session survives the MUC kick.
    await b.ping();
  } finally {
    await stopAll(a, b);
  }
}

// ---------------------------------------------------------------------------
describe('live resync with Synapse: Matrix kicks, bans and power changes reach the MUC', { timeout: 60000 }, () => {
  const server = useProsody(() => directModeOptions());

  scenario('bob kicked in Matrix is kicked from the MUC (307, reason "no longer in the Matrix room (leave)")', server, (t, s) =>
    expectRemovedAfter(t, s, {
      what: 'kick',
      membership: 'leave',
      act: (roomId) => hs.kick(alice.accessToken, roomId, bob.userId, 'e2e kick'),
    }),
  );

  scenario('bob banned in Matrix is kicked from the MUC (307, reason mentions ban)', server, (t, s) =>
    expectRemovedAfter(t, s, {
      what: 'ban',
      membership: 'ban',
      act: (roomId) => hs.ban(alice.accessToken, roomId, bob.userId, 'e2e ban'),
    }),
  );

  scenario('bob raised to power 50 becomes owner without logging in again', server, async (t, s) => {
    const roomId = await matrixRoom('12');
    const roomJid = roomJidOfMatrix(roomId);
    let a, b;
    try {
      ({ c: a } = await loginAndJoin(s, alice, roomId, 'alice'));
      ({ c: b } = await loginAndJoin(s, bob, roomId, 'bob'));
      await eventuallyRoom(s.httpPort, roomJid, (st) => {
        assert.equal(st.affiliations[a.bareJid], 'owner', 'v12 creator alice is owner');
        assert.equal(st.affiliations[b.bareJid], 'member', 'bob (power 0) is member');
      });
      // A resync or two with nothing to change: bob stays member.
      await sleep(1500);
      assert.equal((await roomState(s.httpPort, roomJid)).affiliations[b.bareJid], 'member', 'bob still member');

      const mark = s.logMark();
      const promoted = watchPresence(b, `${roomJid}/bob`, (p) => p.type === 'available' && p.affiliation === 'owner');
      const tCall = performance.now();
      await hs.setPowerLevel(alice.accessToken, roomId, bob.userId, 50);
      const t0 = performance.now();
      const { p, at } = await promoted;
      const latency = Math.round(at - t0);
      t.diagnostic(`power 0 -> 50: bob's owner presence arrived ${latency} ms after the power change returned (the Matrix call itself took ${Math.round(t0 - tCall)} ms)`);
      assert.ok(p.codes.includes(110), `self-presence: ${JSON.stringify(p)}`);
      assert.ok(latency <= DEADLINE_MS, `owner within interval + 2 s (${DEADLINE_MS} ms), took ${latency} ms`);

      const st = await roomState(s.httpPort, roomJid);
      assert.equal(st.affiliations[b.bareJid], 'owner', `observer: bob is owner: ${JSON.stringify(st)}`);
      assert.equal(st.affiliations[a.bareJid], 'owner', 'alice still owner');
      assert.equal(st.occupants.length, 2, 'nobody kicked');
      const lines = linesOf(s.logSince(mark), /becomes owner of .* after a Matrix power change/);
      assert.ok(lines.some((l) => l.includes(b.bareJid)), `"becomes owner ... after a Matrix power change" for bob: ${JSON.stringify(lines)}`);
    } finally {
      await stopAll(a, b);
    }
  });

  scenario('alice (v11 creator, power 100) lowered to 0 becomes member', server, async (t, s) => {
    const roomId = await matrixRoom('11', { withBob: false });
    const roomJid = roomJidOfMatrix(roomId);
    let a;
    try {
      ({ c: a } = await loginAndJoin(s, alice, roomId, 'alice'));
      await eventuallyRoom(s.httpPort, roomJid, (st) => assert.equal(st.affiliations[a.bareJid], 'owner', 'alice (100) is owner'));

      const mark = s.logMark();
      const demoted = watchPresence(a, `${roomJid}/alice`, (p) => p.type === 'available' && p.affiliation === 'member');
      const tCall = performance.now();
      await hs.setPowerLevel(alice.accessToken, roomId, alice.userId, 0);
      const t0 = performance.now();
      const { p, at } = await demoted;
      const latency = Math.round(at - t0);
      t.diagnostic(`power 100 -> 0 (v11 creator): alice's member presence arrived ${latency} ms after the power change returned (the Matrix call itself took ${Math.round(t0 - tCall)} ms)`);
      assert.ok(latency <= DEADLINE_MS, `member within interval + 2 s (${DEADLINE_MS} ms), took ${latency} ms`);
      assert.notEqual(p.role, 'none', `alice stays in the room: ${JSON.stringify(p)}`);

      const st = await roomState(s.httpPort, roomJid);
      assert.equal(st.affiliations[a.bareJid], 'member', `observer: alice is member: ${JSON.stringify(st)}`);
      assert.equal(st.occupants.length, 1, 'alice is still an occupant');
      const lines = linesOf(s.logSince(mark), /becomes member of .* after a Matrix power change/);
      assert.ok(lines.some((l) => l.includes(a.bareJid)), `"becomes member ... after a Matrix power change": ${JSON.stringify(lines)}`);
    } finally {
      await stopAll(a);
    }
  });

  scenario('alice (v12 creator, not in power_levels.users) stays owner across resyncs', server, async (t, s) => {
    const roomId = await matrixRoom('12');
    const roomJid = roomJidOfMatrix(roomId);
    let a, b;
    try {
      ({ c: a } = await loginAndJoin(s, alice, roomId, 'alice'));
      ({ c: b } = await loginAndJoin(s, bob, roomId, 'bob'));
      await eventuallyRoom(s.httpPort, roomJid, (st) => assert.equal(st.affiliations[a.bareJid], 'owner', 'alice is owner'));
      const pl = await hs.getState(alice.accessToken, roomId, 'm.room.power_levels');
      assert.equal(pl.users?.[alice.userId], undefined, `v12: the creator is not in users: ${JSON.stringify(pl)}`);

      await a.ping();
      await b.ping();
      const hsMark = hs.logMark();
      const mark = s.logMark();
      const watch = recordPresences(a, roomJid);
      await sleep(4000);
      watch.stop();
      const resyncs = adminRoomRequests(hs.logSince(hsMark), roomId).length;
      t.diagnostic(`v12 creator: ${resyncs} state requests for the room in 4 s`);
      assert.ok(resyncs >= 2, `the room was re-read (${resyncs} requests)`);

      const st = await roomState(s.httpPort, roomJid);
      assert.equal(st.affiliations[a.bareJid], 'owner', `alice still owner: ${JSON.stringify(st)}`);
      assert.equal(st.affiliations[b.bareJid], 'member', 'bob still member');
      assert.equal(st.occupants.length, 2);
      assert.deepEqual(watch.seen, [], 'no presence change broadcast (no affiliation change)');
      assert.deepEqual(linesOf(s.logSince(mark), /after a Matrix power change|removing /), [], 'no change logged');
    } finally {
      await stopAll(a, b);
    }
  });
});

// ---------------------------------------------------------------------------
describe('live resync with Synapse: a hung homeserver removes nobody', { timeout: 60000 }, () => {
  const server = useProsody(() => directModeOptions({ expectLog: [OUTAGE_WARN] }));

  scenario('SIGSTOPped Synapse for 6 s: no kick, one warn; after resume re-checks continue', server, async (t, s) => {
    const roomId = await matrixRoom('11');
    const roomJid = roomJidOfMatrix(roomId);
    let a, b;
    try {
      ({ c: a } = await loginAndJoin(s, alice, roomId, 'alice'));
      ({ c: b } = await loginAndJoin(s, bob, roomId, 'bob'));
      await eventuallyRoom(s.httpPort, roomJid, (st) => assert.equal(st.occupants.length, 2));
      await a.ping(); // the join presences have arrived
      await b.ping();

      const mark = s.logMark();
      const hsMark = hs.logMark();
      const watchA = recordPresences(a, roomJid);
      const watchB = recordPresences(b, roomJid);
      hs.pause();
      let outage;
      try {
        // Every request hangs until uvs_timeout (2 s): at least two failed resyncs.
        await sleep(6000);
        outage = s.logSince(mark);
        const st = await roomState(s.httpPort, roomJid);
        assert.equal(st.occupants.length, 2, `nobody removed during the outage: ${JSON.stringify(st.occupants)}`);
      } finally {
        hs.resume();
      }
      watchA.stop();
      watchB.stop();
      assert.deepEqual(watchA.seen, [], `alice saw no presence during the outage: ${JSON.stringify(watchA.seen)}`);
      assert.deepEqual(watchB.seen, [], `bob saw no presence during the outage: ${JSON.stringify(watchB.seen)}`);
      const warns = linesOf(outage, /\twarn\t/);
      t.diagnostic(`outage warn line: ${warns[0] ?? '(none)'}`);
      assert.equal(warns.length, 1, `exactly one warn line in 6 s of failed resyncs: ${JSON.stringify(warns)}`);
      assert.match(warns[0], OUTAGE_WARN);
      assert.match(warns[0], /matrix_power_sync/);
      assert.deepEqual(linesOf(outage, /removing /), [], 'no removal logged');

      // Recovery is noticed at the next resync.
      await until(() => assert.equal(linesOf(s.logSince(mark), RECOVERED).length, 1, 'one "answers again" line'), 6000, 100);
      assert.match(linesOf(s.logSince(mark), RECOVERED)[0], /\tinfo\t/);
      // Requests of the outage reach Synapse once it runs again (their clients gave up).
      t.diagnostic(`Synapse saw ${adminRoomRequests(hs.logSince(hsMark), roomId).length} state requests from the pause to recovery`);

      // And membership checks go on: a Matrix kick now reaches the MUC.
      const kicked = watchPresence(b, `${roomJid}/bob`, (p) => p.type === 'unavailable');
      const tCall = performance.now();
      await hs.kick(alice.accessToken, roomId, bob.userId);
      const t0 = performance.now();
      const { p, at } = await kicked;
      const latency = Math.round(at - t0);
      t.diagnostic(`after the outage: kick reached bob ${latency} ms after the Matrix kick returned (the Matrix call itself took ${Math.round(t0 - tCall)} ms)`);
      assert.ok(p.codes.includes(307), `307 after recovery: ${JSON.stringify(p)}`);
      assert.ok(p.reason?.startsWith('no longer in the Matrix room (leave)'), JSON.stringify(p));
      assert.ok(latency <= DEADLINE_MS, `kick within ${DEADLINE_MS} ms, took ${latency} ms`);
      assert.equal(linesOf(s.logSince(mark), /\twarn\t/).length, 1, 'still one warn line for the whole outage');
      const st = await roomState(s.httpPort, roomJid);
      assert.deepEqual(st.occupants.map((o) => o.jid), [a.bareJid], 'alice stays');
    } finally {
      hs.resume();
      await stopAll(a, b);
    }
  });
});

// ---------------------------------------------------------------------------
describe('live resync with Synapse: request budget', { timeout: 60000 }, () => {
  // Hybrid host: standard HS256 tokens beside Matrix ones.
  const server = useProsody(() => directModeOptions({ vhost: { app_secret: APP_SECRET } }));

  scenario('no Matrix occupant: no state request; two Matrix occupants: about one request per interval', server, async (t, s) => {
    const roomId = await matrixRoom('11');
    const room = jitsiRoomOf(roomId);
    const roomJid = roomJidOfMatrix(roomId);
    const now = Math.floor(Date.now() / 1000);
    const stdToken = sign(
      { iss: APP_ID, aud: 'jitsi', sub: 'localhost', room, iat: now - 5, exp: now + 300, context: { user: { name: 'std' } } },
      { alg: 'HS256', key: APP_SECRET },
    );
    let std, a, b;
    try {
      // 1. Only a standard-token occupant in the Jitsi room of a real Matrix room.
      std = await connect(s.wsUrl(room, stdToken));
      const joined = await std.joinMuc(roomJid, 'std');
      assert.equal(joined.ok, true, `standard-token user joins: ${JSON.stringify(joined)}`);
      await std.ping();
      let mark = hs.logMark();
      let t0 = performance.now();
      await sleep(4 * INTERVAL_S * 1000 + 300);
      const idle = adminRoomRequests(hs.logSince(mark));
      t.diagnostic(`no Matrix occupant: ${idle.length} admin room requests in ${Math.round(performance.now() - t0)} ms`);
      assert.deepEqual(idle, [], 'no /_synapse/admin/v1/rooms/ request without Matrix occupants');

      // 2. Two Matrix occupants of the same Matrix room: one request per interval, not per occupant.
      ({ c: a } = await loginAndJoin(s, alice, roomId, 'alice'));
      ({ c: b } = await loginAndJoin(s, bob, roomId, 'bob'));
      await b.ping();
      mark = hs.logMark(); // after the logins' own state reads
      t0 = performance.now();
      await sleep(5000);
      const elapsed = (performance.now() - t0) / 1000;
      const busy = adminRoomRequests(hs.logSince(mark));
      const forRoom = adminRoomRequests(hs.logSince(mark), roomId);
      t.diagnostic(
        `two Matrix occupants: ${forRoom.length} state requests in ${elapsed.toFixed(2)} s ` +
          `(interval ${INTERVAL_S} s, jitter 0.8-1.2x)`,
      );
      assert.equal(busy.length, forRoom.length, `only this room is read: ${JSON.stringify(busy)}`);
      assert.ok(forRoom.length >= 1, 'at least one resync');
      assert.ok(forRoom.length <= (2 * elapsed) / INTERVAL_S, `at most 2 * elapsed / interval: ${forRoom.length}`);
      // Tighter: the shortest jittered interval is 0.8 s, so per room at most
      // elapsed / 0.8 + 1 requests; per occupant would be about twice one per interval.
      assert.ok(
        forRoom.length <= Math.floor(elapsed / (0.8 * INTERVAL_S)) + 1,
        `one request per interval for the room, not per occupant: ${forRoom.length} in ${elapsed.toFixed(2)} s`,
      );
      for (const l of forRoom) assert.match(l, /\/state /, `a state request: ${l}`);
    } finally {
      await stopAll(std, a, b);
    }
  });
});
