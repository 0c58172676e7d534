// End-to-end, against a real Synapse: live Matrix membership in direct
// homeserver mode (matrix_homeserver_url + matrix_admin_token). While a Jitsi
// room has occupants verified for its Matrix room, mod_matrix_power_sync
// re-reads that room's state every matrix_resync_interval seconds (1 s here):
// occupants kicked/banned in Matrix are kicked from the MUC (status 307),
// owners follow power levels, homeserver outages change nothing (one warn
// line per outage), and rooms without Matrix occupants cost no request.
// Occupants are followed by their session (real JID), not their nick: a
// nick change, a module reload or a purged Matrix room does not let anyone
// stay. README "Live Matrix membership" and "Room owners from Matrix power
// levels"; lua/mod_matrix_power_sync.lua; src/matrix/resync.rs.
//
// One Synapse for the file, one Prosody per describe.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, before, describe } from 'node:test';

import { xml } from '@xmpp/client';

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
const NS_MUC_ADMIN = 'http://jabber.org/protocol/muc#admin';

const OUTAGE_WARN = /Matrix room '.*': the homeserver .*Matrix membership is not re-checked until it answers/;
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

    // Bob's XMPP session survives the MUC kick, but its Matrix proof is
    // spent: it may not come back without a new login.
    await b.ping();
    const again = await b.joinMuc(roomJid, 'bob');
    assert.deepEqual(
      { ok: again.ok, condition: again.condition },
      { ok: false, condition: 'not-allowed' },
      `bob's session may not rejoin: ${JSON.stringify(again)}`,
    );
    assert.match(again.text, /log in again/);
    assert.deepEqual((await roomState(s.httpPort, roomJid)).occupants.map((o) => o.jid), [a.bareJid], 'still only alice');
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
// The person, not the nick: occupants are followed by their session's real
// JID (src/matrix/resync.rs), so a nick change, a reload of the module or a purged
// Matrix room leaves nobody in the call who should not be.

/**
 * Change `c`'s nick in `roomJid` to `newNick` the way XMPP clients do: a
 * presence to the new nick without <x xmlns='http://jabber.org/protocol/muc'/>
 * (Prosody then fires muc-occupant-left for the old nick and no
 * muc-occupant-joined for the new one). Resolves once the self-presence of
 * the new nick arrived and the observer lists it.
 */
async function changeNick(s, c, roomJid, oldNick, newNick) {
  const self = watchPresence(c, `${roomJid}/${newNick}`, (p) => p.type === 'available' && p.codes.includes(110));
  await c.xmpp.send(xml('presence', { to: `${roomJid}/${newNick}` }));
  await self;
  await eventuallyRoom(s.httpPort, roomJid, (st) => {
    const nicks = st.occupants.filter((o) => o.jid === c.bareJid).map((o) => o.nick);
    assert.deepEqual(nicks, [newNick], `${oldNick} is now ${newNick}: ${JSON.stringify(st.occupants)}`);
  });
}

/** POST /test_observer/reload: reload a module of the MUC component (tests/prosody/mod_test_observer.lua). */
async function reloadMucModule(s, name) {
  const res = await fetch(`${s.httpUrl}/test_observer/reload?module=${encodeURIComponent(name)}`, {
    method: 'POST',
    signal: AbortSignal.timeout(10000),
  });
  const body = await res.json();
  assert.equal(res.status, 200, `reload ${name}: ${JSON.stringify(body)}`);
  assert.deepEqual({ ok: body.ok, loaded: body.loaded }, { ok: true, loaded: true }, `reload ${name}: ${JSON.stringify(body)}`);
}

/** An owner's muc#admin request setting `jid`'s affiliation; resolves { ok } or { ok: false, condition }. */
async function setAffiliation(c, roomJid, jid, affiliation) {
  const iq = xml('iq', { type: 'set', to: roomJid }, xml('query', { xmlns: NS_MUC_ADMIN }, xml('item', { affiliation, jid })));
  try {
    await c.xmpp.iqCaller.request(iq, 10000);
    return { ok: true };
  } catch (err) {
    if (err.name !== 'StanzaError') throw err;
    return { ok: false, condition: err.condition };
  }
}

/** Bob is gone from the room: his own unavailable presence `p` has 307 and `reason`; only `stay` remain. */
async function assertKicked(s, roomJid, p, reasonStart, stay) {
  assert.ok(p.codes.includes(307), `307: ${JSON.stringify(p)}`);
  assert.equal(p.role, 'none', `role none: ${JSON.stringify(p)}`);
  assert.ok(typeof p.reason === 'string' && p.reason.startsWith(reasonStart), `reason starts with "${reasonStart}": ${JSON.stringify(p)}`);
  const st = await roomState(s.httpPort, roomJid);
  assert.deepEqual(
    st.occupants.map((o) => o.jid).sort(),
    stay.map((c) => c.bareJid).sort(),
    `who is left: ${JSON.stringify(st.occupants)}`,
  );
}

describe('live resync with Synapse: the person, not the nick', { timeout: 90000 }, () => {
  // uvs_timeout 10 s: the purge test stops Prosody for a while, and a state
  // read in flight then must not time out (that would be an outage warning).
  const server = useProsody(() => directModeOptions({ vhost: { uvs_timeout: 10 } }));

  scenario('bob changes his nick, then is banned in Matrix: kicked under his new nick (307, "ban")', server, async (t, s) => {
    const roomId = await matrixRoom('11');
    const roomJid = roomJidOfMatrix(roomId);
    let a, b;
    try {
      ({ c: a } = await loginAndJoin(s, alice, roomId, 'alice'));
      ({ c: b } = await loginAndJoin(s, bob, roomId, 'bob'));
      await changeNick(s, b, roomJid, 'bob', 'bobby');
      // A resync or two with bob under his new nick: nothing happens to him.
      await sleep(1500);
      assert.equal((await roomState(s.httpPort, roomJid)).occupants.length, 2, 'both still in');

      const mark = s.logMark();
      const kicked = watchPresence(b, `${roomJid}/bobby`, (p) => p.type === 'unavailable');
      await hs.ban(alice.accessToken, roomId, bob.userId, 'e2e ban after a nick change');
      const { p } = await kicked;
      await assertKicked(s, roomJid, p, 'no longer in the Matrix room (ban)', [a]);
      const removed = linesOf(s.logSince(mark), /\tinfo\tremoving .*\/bobby \(Matrix user @bob:/);
      assert.equal(removed.length, 1, `one "removing ...bobby" line: ${JSON.stringify(removed)}`);
    } finally {
      await stopAll(a, b);
    }
  });

  scenario('alice (v11 creator, power 100) changes her nick, then her power drops to 0: she becomes member', server, async (t, s) => {
    // bob stays in the room: a sole occupant's nick change empties the room
    // for Prosody, which then forgets it (mod_muc destroys empty rooms).
    const roomId = await matrixRoom('11');
    const roomJid = roomJidOfMatrix(roomId);
    let a, b;
    try {
      ({ c: a } = await loginAndJoin(s, alice, roomId, 'alice'));
      ({ c: b } = await loginAndJoin(s, bob, roomId, 'bob'));
      await eventuallyRoom(s.httpPort, roomJid, (st) => assert.equal(st.affiliations[a.bareJid], 'owner', 'alice (100) is owner'));
      await changeNick(s, a, roomJid, 'alice', 'alice-renamed');

      const mark = s.logMark();
      const demoted = watchPresence(a, `${roomJid}/alice-renamed`, (p) => p.type === 'available' && p.affiliation === 'member');
      await hs.setPowerLevel(alice.accessToken, roomId, alice.userId, 0);
      const { p } = await demoted;
      assert.notEqual(p.role, 'none', `alice stays in the room: ${JSON.stringify(p)}`);
      const st = await roomState(s.httpPort, roomJid);
      assert.equal(st.affiliations[a.bareJid], 'member', `observer: alice is member: ${JSON.stringify(st)}`);
      assert.deepEqual(st.occupants.map((o) => o.nick).sort(), ['alice-renamed', 'bob'], 'alice is still in, under her new nick');
      const lines = linesOf(s.logSince(mark), /becomes member of .* after a Matrix power change/);
      assert.ok(lines.some((l) => l.includes(a.bareJid)), `"becomes member ... after a Matrix power change": ${JSON.stringify(lines)}`);
    } finally {
      await stopAll(a, b);
    }
  });

  scenario('matrix_power_sync reloaded while alice and bob are in: a later Matrix ban still kicks bob', server, async (t, s) => {
    const roomId = await matrixRoom('11');
    const roomJid = roomJidOfMatrix(roomId);
    let a, b;
    try {
      ({ c: a } = await loginAndJoin(s, alice, roomId, 'alice'));
      ({ c: b } = await loginAndJoin(s, bob, roomId, 'bob'));
      await eventuallyRoom(s.httpPort, roomJid, (st) => assert.equal(st.occupants.length, 2, 'alice and bob are in'));

      await reloadMucModule(s, 'matrix_power_sync');
      // The reloaded module re-reads the room: wait for a request of its own.
      const hsMark = hs.logMark();
      await until(() => assert.ok(adminRoomRequests(hs.logSince(hsMark), roomId).length >= 1, 'the room is re-read after the reload'), 10000, 100);

      const kicked = watchPresence(b, `${roomJid}/bob`, (p) => p.type === 'unavailable');
      await hs.ban(alice.accessToken, roomId, bob.userId, 'e2e ban after a reload');
      const { p } = await kicked;
      await assertKicked(s, roomJid, p, 'no longer in the Matrix room (ban)', [a]);
    } finally {
      await stopAll(a, b);
    }
  });

  scenario('the Matrix room is purged in Synapse: its Matrix-verified occupants are removed ("no longer exists")', server, async (t, s) => {
    const roomId = await matrixRoom('11');
    const roomJid = roomJidOfMatrix(roomId);
    let a, b;
    try {
      ({ c: a } = await loginAndJoin(s, alice, roomId, 'alice'));
      ({ c: b } = await loginAndJoin(s, bob, roomId, 'bob'));
      await eventuallyRoom(s.httpPort, roomJid, (st) => assert.equal(st.occupants.length, 2, 'alice and bob are in'));

      // A purge first makes every member leave, then deletes the room. Prosody
      // is stopped meanwhile so that no resync sees the "leave" in between:
      // what it sees next is only the room that does not exist.
      const mark = s.logMark();
      const aliceGone = watchPresence(a, `${roomJid}/alice`, (p) => p.type === 'unavailable');
      const bobGone = watchPresence(b, `${roomJid}/bob`, (p) => p.type === 'unavailable');
      process.kill(s.pid, 'SIGSTOP');
      const stopped = performance.now();
      try {
        await sleep(500); // a state read sent just before the stop is answered first
        await hs.purgeRoom(admin.accessToken, roomId);
      } finally {
        process.kill(s.pid, 'SIGCONT');
      }
      t.diagnostic(`Prosody stopped for ${Math.round(performance.now() - stopped)} ms around the purge`);
      const gone = await hs.request('GET', `/_synapse/admin/v1/rooms/${encodeURIComponent(roomId)}/state`, { token: admin.accessToken });
      assert.equal(gone.status, 404, `Synapse: the purged room does not exist: ${gone.text}`);
      assert.equal(gone.body?.errcode, 'M_NOT_FOUND', gone.text);

      const gonePresences = (await Promise.all([aliceGone, bobGone])).map((g) => g.p);
      for (const p of gonePresences) await assertKicked(s, roomJid, p, 'the Matrix room no longer exists', []);
      const removed = linesOf(s.logSince(mark), /\tinfo\tremoving /);
      assert.equal(removed.length, 2, `two "removing" lines: ${JSON.stringify(removed)}`);
      for (const l of removed) assert.match(l, /: the Matrix room no longer exists$/);
      await a.ping();
      await b.ping();
    } finally {
      await stopAll(a, b);
    }
  });

  scenario('bob (power 50, owner) made admin by alice loses admin when his Matrix power drops', server, async (t, s) => {
    const roomId = await matrixRoom('12');
    const roomJid = roomJidOfMatrix(roomId);
    await hs.setPowerLevel(alice.accessToken, roomId, bob.userId, 50);
    let a, b;
    try {
      ({ c: a } = await loginAndJoin(s, alice, roomId, 'alice'));
      ({ c: b } = await loginAndJoin(s, bob, roomId, 'bob'));
      await eventuallyRoom(s.httpPort, roomJid, (st) => assert.equal(st.affiliations[b.bareJid], 'owner', 'bob (power 50) is owner'));

      const granted = await setAffiliation(a, roomJid, b.bareJid, 'admin');
      assert.deepEqual(granted, { ok: true }, 'admin may be granted to someone the Matrix rule allows');
      await eventuallyRoom(s.httpPort, roomJid, (st) => assert.equal(st.affiliations[b.bareJid], 'admin', 'bob is admin'));

      const demoted = watchPresence(b, `${roomJid}/bob`, (p) => p.type === 'available' && p.affiliation === 'member');
      await hs.setPowerLevel(alice.accessToken, roomId, bob.userId, 0);
      await demoted;
      const st = await roomState(s.httpPort, roomJid);
      assert.equal(st.affiliations[b.bareJid], 'member', `bob is member, neither admin nor owner: ${JSON.stringify(st)}`);
      assert.equal(st.affiliations[a.bareJid], 'owner', 'alice (v12 creator) stays owner');
      assert.equal(st.occupants.length, 2, 'nobody kicked');
    } finally {
      await stopAll(a, b);
    }
  });
});

// ---------------------------------------------------------------------------
describe('live resync with Synapse: breakout rooms', { timeout: 60000 }, () => {
  // A breakout component as jitsi-meet configures it (main_muc names the
  // main MUC); mod_test_observer links breakout rooms to their main room as
  // jitsi-meet's mod_muc_breakout_rooms does.
  const BREAKOUT_DOMAIN = 'breakout.localhost';
  const server = useProsody(() => {
    const opts = directModeOptions();
    opts.vhost.main_muc = 'conference.localhost';
    opts.extraConfig = `Component "${BREAKOUT_DOMAIN}" "muc"\n    modules_enabled = { "matrix_power_sync" }\n    muc_room_locking = false\n`;
    return opts;
  });

  async function observer(s, path, method = 'GET') {
    const res = await fetch(`${s.httpUrl}/test_observer/${path}`, { method, signal: AbortSignal.timeout(5000) });
    const body = await res.json();
    assert.equal(res.status, 200, JSON.stringify(body));
    if (Array.isArray(body.affiliations)) body.affiliations = {};
    if (!Array.isArray(body.occupants)) body.occupants = [];
    return body;
  }

  scenario('bob moves to a breakout room of the call, then is banned in Matrix: kicked from the breakout room', server, async (t, s) => {
    const roomId = await matrixRoom('11');
    const roomJid = roomJidOfMatrix(roomId);
    let a, b;
    try {
      ({ c: a } = await loginAndJoin(s, alice, roomId, 'alice'));
      ({ c: b } = await loginAndJoin(s, bob, roomId, 'bob'));
      const { breakout } = await observer(s, `breakout?jid=${encodeURIComponent(roomJid)}`, 'POST');
      assert.ok(breakout.endsWith(`@${BREAKOUT_DOMAIN}`), breakout);

      // As Jitsi moves a participant: leave the main room, join the breakout room.
      await b.leaveMuc(roomJid, 'bob');
      const joined = await b.joinMuc(breakout, 'bob');
      assert.equal(joined.ok, true, `bob joins the breakout room: ${JSON.stringify(joined)}`);
      await until(async () => {
        const st = await observer(s, `breakout_room?jid=${encodeURIComponent(breakout)}`);
        assert.deepEqual(st.occupants.map((o) => [o.jid, o.affiliation]), [[b.bareJid, 'member']], JSON.stringify(st));
      }, 5000, 100);

      const kicked = watchPresence(b, `${breakout}/bob`, (p) => p.type === 'unavailable');
      await hs.ban(alice.accessToken, roomId, bob.userId, 'e2e ban in a breakout room');
      const { p } = await kicked;
      assert.ok(p.codes.includes(307), `307: ${JSON.stringify(p)}`);
      assert.ok(p.reason?.startsWith('no longer in the Matrix room (ban)'), JSON.stringify(p));
      const st = await observer(s, `breakout_room?jid=${encodeURIComponent(breakout)}`);
      assert.deepEqual(st.occupants, [], `the breakout room is empty: ${JSON.stringify(st)}`);
      assert.deepEqual((await roomState(s.httpPort, roomJid)).occupants.map((o) => o.jid), [a.bareJid], 'alice stays in the main room');
    } finally {
      await stopAll(a, b);
    }
  });
});

// ---------------------------------------------------------------------------
describe('live resync with Synapse: a refused change is logged, not counted, and tried again', { timeout: 60000 }, () => {
  const REFUSED = /could not make .* owner of .*: cancel not-allowed \(tried again at the next resync\)/;
  const server = useProsody(() => ({
    ...directModeOptions({ expectLog: [REFUSED] }),
    // The counters, read the way admins do (docs/troubleshooting.md).
    global: { statistics: 'internal', statistics_interval: 'manual' },
    globalModules: ['http_openmetrics'],
  }));

  /** resync_owner_changes of the MUC host, from /metrics (must be exported). */
  async function ownerChanges(s) {
    const res = await fetch(`${s.httpUrl}/metrics`, { signal: AbortSignal.timeout(5000) });
    const text = await res.text();
    assert.equal(res.status, 200, text);
    const m = /^prosody_mod_matrix_power_sync__resync_owner_changes_total\{host="conference\.localhost"\} (\d+)/m.exec(text);
    assert.ok(m, `the counter is exported:\n${text.split('\n').filter((l) => /matrix_power_sync/.test(l)).join('\n')}`);
    return Number(m[1]);
  }

  /** POST /test_observer/veto: refuse (on) or allow again every affiliation change of `jid`. */
  async function veto(s, jid, on) {
    const res = await fetch(`${s.httpUrl}/test_observer/veto?jid=${encodeURIComponent(jid)}&on=${on ? 1 : 0}`, {
      method: 'POST',
      signal: AbortSignal.timeout(5000),
    });
    assert.deepEqual(await res.json(), { jid, vetoed: on });
  }

  scenario('bob raised to power 50 while another module refuses his affiliation changes: warn, no count, owner once allowed', server, async (t, s) => {
    const roomId = await matrixRoom('12');
    const roomJid = roomJidOfMatrix(roomId);
    let a, b;
    try {
      ({ c: a } = await loginAndJoin(s, alice, roomId, 'alice'));
      ({ c: b } = await loginAndJoin(s, bob, roomId, 'bob'));
      await eventuallyRoom(s.httpPort, roomJid, (st) => assert.equal(st.affiliations[b.bareJid], 'member', 'bob (power 0) is member'));
      assert.equal(await ownerChanges(s), 0, 'no owner change yet');

      await veto(s, b.bareJid, true);
      const mark = s.logMark();
      await hs.setPowerLevel(alice.accessToken, roomId, bob.userId, 50);
      await until(() => assert.ok(linesOf(s.logSince(mark), REFUSED).some((l) => l.includes(b.bareJid)), 'the refused change is logged'), 10000, 100);
      const refused = linesOf(s.logSince(mark), REFUSED);
      assert.match(refused[0], /\twarn\t/);
      assert.equal(await ownerChanges(s), 0, 'a refused change is not counted');
      assert.equal((await roomState(s.httpPort, roomJid)).affiliations[b.bareJid], 'member', 'bob is still member');

      const promoted = watchPresence(b, `${roomJid}/bob`, (p) => p.type === 'available' && p.affiliation === 'owner');
      await veto(s, b.bareJid, false);
      await promoted;
      assert.equal((await roomState(s.httpPort, roomJid)).affiliations[b.bareJid], 'owner', 'bob is owner at the next resync');
      assert.equal(await ownerChanges(s), 1, 'the change that was made is counted once');
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
      assert.equal(linesOf(s.logSince(mark), /\twarn\t/).length, 1, 'still one warn line for the whole outage');
      const st = await roomState(s.httpPort, roomJid);
      assert.deepEqual(st.occupants.map((o) => o.jid), [a.bareJid], 'alice stays');
    } finally {
      hs.resume();
      await stopAll(a, b);
    }
  });

  scenario('an outage is per Matrix room: two watched rooms, one warn and one recovery line for each', server, async (t, s) => {
    const roomIds = [await matrixRoom('11', { withBob: false }), await matrixRoom('11', { withBob: false })];
    const clients = [];
    try {
      for (const [i, roomId] of roomIds.entries()) clients.push((await loginAndJoin(s, alice, roomId, `alice${i}`)).c);
      for (const c of clients) await c.ping();

      const mark = s.logMark();
      hs.pause();
      try {
        // uvs_timeout is 2 s: several failed resyncs of each room.
        await until(() => assert.equal(linesOf(s.logSince(mark), /\twarn\t/).length, 2, 'two warn lines'), 10000, 100);
        await sleep(3000);
      } finally {
        hs.resume();
      }
      const warns = linesOf(s.logSince(mark), /\twarn\t/);
      assert.equal(warns.length, 2, `exactly one warn line per room for the whole outage: ${JSON.stringify(warns)}`);
      for (const roomId of roomIds) {
        assert.equal(warns.filter((l) => l.includes(`Matrix room '${roomId}'`)).length, 1, `one warn names ${roomId}: ${JSON.stringify(warns)}`);
      }
      await until(() => assert.equal(linesOf(s.logSince(mark), RECOVERED).length, 2, 'one "answers again" line per room'), 10000, 100);
      for (const roomId of roomIds) {
        assert.equal(linesOf(s.logSince(mark), RECOVERED).filter((l) => l.includes(`Matrix room '${roomId}'`)).length, 1, roomId);
      }
      for (const [i, roomId] of roomIds.entries()) {
        const st = await roomState(s.httpPort, roomJidOfMatrix(roomId));
        assert.deepEqual(st.occupants.map((o) => o.nick), [`alice${i}`], `nobody removed from ${roomId}`);
      }
    } finally {
      hs.resume();
      await stopAll(...clients);
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
