// End-to-end: mod_matrix_power_sync on the MUC component with the Matrix
// auth on the VirtualHost: owners are exactly the users UVS reported as
// powerful (user power >= state_default, default 50) in the Matrix room the
// Jitsi room stands for; everyone else is a member; owner and admin grants
// by anyone else are refused, and an admin without Matrix power is made
// member when they join. README "Room owners from Matrix power levels".

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, describe } from 'node:test';

import { xml } from '@xmpp/client';

import { connect, stopAll } from './lib/client.js';
import { scenario, useProsody } from './lib/harness.js';
import {
  eventuallyRoom,
  jitsiRoomOf,
  matrixToken,
  requirePlugins,
  roomJidOfMatrix,
  sessionFields,
  sessionProbePlugin,
  uniqueMatrixRoomId,
  uniqueOpenid,
} from './lib/matrix.js';
import { roomState } from './lib/observer.js';
import { startUvs } from './lib/uvs_server.js';

const APP_ID = 'e2e-power-app';
const UVS_TOKEN = `e2e-uvs-bearer-${crypto.randomBytes(12).toString('hex')}`;
const PLUGINS = ['mod_auth_matrix_user_verification.lua', 'mod_matrix_power_sync.lua'];
const NS_MUC_ADMIN = 'http://jabber.org/protocol/muc#admin';

/** Register a Matrix user on `uvs`; token bound to `roomId` (the room its login verifies). */
function matrixUser(uvs, { roomId = uniqueMatrixRoomId('ps'), power = 0, rooms, state_default } = {}) {
  const openid = uniqueOpenid();
  uvs.setUser(openid, { user_id: `@${openid.slice(-8)}:example.org`, rooms: rooms ?? { [roomId]: power }, state_default });
  return {
    openid,
    roomId,
    room: jitsiRoomOf(roomId),
    roomJid: roomJidOfMatrix(roomId),
    token: matrixToken({ iss: APP_ID, openid, roomId }),
  };
}

/** Log in as `u` (the login verifies u.roomId) and join `roomJid` (default: u's own room). */
async function loginAndJoin(s, u, nick, roomJid = u.roomJid) {
  const c = await connect(s.wsUrl(u.room, u.token));
  const joined = await c.joinMuc(roomJid, nick);
  assert.equal(joined.ok, true, `${nick} joins ${roomJid}: ${JSON.stringify(joined)}`);
  return { c, joined };
}

/** The affiliation of `bareJid` must settle to `expected` and stay there. */
async function expectAffiliation(s, roomJid, client, expected, what) {
  await client.ping('localhost'); // a round trip: hooks of the join have run
  const st = await eventuallyRoom(s.httpPort, roomJid, (st) =>
    assert.equal(st.affiliations[client.bareJid], expected, `${what}: affiliation of ${client.bareJid}`),
  );
  // Still so a moment later (nothing upgrades it behind our back).
  await client.ping('localhost');
  const again = await roomState(s.httpPort, roomJid);
  assert.equal(again.affiliations[client.bareJid], expected, `${what}: affiliation later; state ${JSON.stringify(again)}`);
  const occ = again.occupants.find((o) => o.jid === client.bareJid);
  assert.ok(occ, `${what}: occupant present in ${JSON.stringify(again.occupants)}`);
  assert.equal(occ.affiliation, expected, `${what}: occupant affiliation`);
  return st;
}

/**
 * One Prosody (Matrix auth + power sync) and one UVS for the enclosing suite;
 * `onUvs` receives the UVS once started. Both are stopped after the suite.
 */
function usePowerSyncProsody(vhostExtra, onUvs, extraModules = []) {
  let uvs;
  const server = useProsody(async () => {
    requirePlugins(PLUGINS);
    uvs = await startUvs({ authToken: UVS_TOKEN });
    onUvs(uvs);
    return {
      vhost: {
        authentication: 'matrix_user_verification',
        app_id: APP_ID,
        uvs_base_url: uvs.url,
        uvs_auth_token: UVS_TOKEN,
        ...vhostExtra,
      },
      vhostModules: ['test_observer', sessionProbePlugin().module, ...extraModules],
      mucModules: ['matrix_power_sync'],
    };
  });
  after(async () => {
    await uvs?.stop();
  });
  return server;
}

/** `granter` asks to set `jid`'s affiliation in `roomJid`: { ok: true } or { ok: false, condition }. */
async function requestAffiliation(granter, roomJid, jid, affiliation) {
  const iq = xml('iq', { type: 'set', to: roomJid }, xml('query', { xmlns: NS_MUC_ADMIN }, xml('item', { affiliation, jid })));
  try {
    await granter.xmpp.iqCaller.request(iq, 5000);
    return { ok: true };
  } catch (err) {
    assert.equal(err.name, 'StanzaError', `an IQ result or error stanza, not a timeout: ${err}`);
    return { ok: false, condition: err.condition };
  }
}

// ---------------------------------------------------------------------------
describe('power sync: uvs_sync_power_levels = true', () => {
  let uvs;
  const server = usePowerSyncProsody({ uvs_sync_power_levels: true }, (u) => {
    uvs = u;
  });

  const levels = [
    ['power 100, no state_default', { power: 100 }, 'owner', true],
    ['power 50, no state_default (>= 50)', { power: 50 }, 'owner', true],
    ['power 49, no state_default', { power: 49 }, 'member', false],
    ['power 60, state_default 75', { power: 60, state_default: 75 }, 'member', false],
    ['power 75, state_default 75', { power: 75, state_default: 75 }, 'owner', true],
    ['power 0, state_default 0', { power: 0, state_default: 0 }, 'owner', true],
  ];
  for (const [name, opts, expected, isOwner] of levels) {
    scenario(`${name} -> ${expected} (joining a room an unprivileged member created)`, server, async (t, s) => {
      // The creator joins first so that Prosody's creator-owner rule is out of the picture.
      const roomId = uniqueMatrixRoomId('lvl');
      const creator = matrixUser(uvs, { roomId, power: 0 });
      const u = matrixUser(uvs, { roomId, ...opts });
      let k, c;
      try {
        ({ c: k } = await loginAndJoin(s, creator, 'creator'));
        ({ c } = await loginAndJoin(s, u, 'user'));
        const f = await sessionFields(s.httpPort, c.jid);
        assert.equal(f.auth_matrix_user_verification_is_owner, isOwner, `session is_owner: ${JSON.stringify(f)}`);
        await expectAffiliation(s, u.roomJid, c, expected, name);
        const st = await roomState(s.httpPort, u.roomJid);
        assert.equal(st.affiliations[k.bareJid], 'member', `unprivileged creator: ${JSON.stringify(st)}`);
      } finally {
        await stopAll(k, c);
      }
    });
  }

  scenario('an unprivileged first joiner (creator) ends up member; a privileged joiner after them is owner', server, async (t, s) => {
    const roomId = uniqueMatrixRoomId('creator');
    const low = matrixUser(uvs, { roomId, power: 0 });
    const high = matrixUser(uvs, { roomId, power: 100 });
    let a, b;
    try {
      ({ c: a } = await loginAndJoin(s, low, 'low'));
      await expectAffiliation(s, low.roomJid, a, 'member', 'unprivileged creator');
      ({ c: b } = await loginAndJoin(s, high, 'high'));
      await expectAffiliation(s, high.roomJid, b, 'owner', 'privileged second joiner');
      const st = await roomState(s.httpPort, low.roomJid);
      assert.equal(st.affiliations[a.bareJid], 'member', `creator still member: ${JSON.stringify(st)}`);
    } finally {
      await stopAll(a, b);
    }
  });

  scenario('an owner granting owner to an unprivileged member gets an IQ error; the member stays member', server, async (t, s) => {
    const roomId = uniqueMatrixRoomId('grant');
    const boss = matrixUser(uvs, { roomId, power: 100 });
    const pleb = matrixUser(uvs, { roomId, power: 10 });
    let o, m;
    try {
      ({ c: o } = await loginAndJoin(s, boss, 'boss'));
      await expectAffiliation(s, boss.roomJid, o, 'owner', 'privileged user');
      ({ c: m } = await loginAndJoin(s, pleb, 'pleb'));
      await expectAffiliation(s, pleb.roomJid, m, 'member', 'unprivileged user');

      const iq = xml(
        'iq',
        { type: 'set', to: boss.roomJid },
        xml('query', { xmlns: NS_MUC_ADMIN }, xml('item', { affiliation: 'owner', jid: m.bareJid })),
      );
      let answer = null;
      let error = null;
      try {
        answer = await o.xmpp.iqCaller.request(iq, 5000);
      } catch (err) {
        error = err;
      }
      assert.ok(error, `owner grant must be refused, got result ${answer}`);
      assert.equal(error.name, 'StanzaError', `an IQ error stanza, not a timeout: ${error}`);
      t.diagnostic(`owner grant refused with ${error.condition}${error.text ? ` (${error.text})` : ''}`);

      await expectAffiliation(s, pleb.roomJid, m, 'member', 'member after the refused grant');
      const st = await roomState(s.httpPort, boss.roomJid);
      assert.equal(st.affiliations[o.bareJid], 'owner', 'the granter is still owner');
    } finally {
      await stopAll(o, m);
    }
  });

  scenario('an owner granting admin to an unprivileged member (a guest) is refused; the member stays member', server, async (t, s) => {
    const roomId = uniqueMatrixRoomId('admgrant');
    const boss = matrixUser(uvs, { roomId, power: 100 });
    const guest = matrixUser(uvs, { roomId, power: 0 });
    let o, g;
    try {
      ({ c: o } = await loginAndJoin(s, boss, 'boss'));
      await expectAffiliation(s, boss.roomJid, o, 'owner', 'privileged user');
      ({ c: g } = await loginAndJoin(s, guest, 'guest'));
      await expectAffiliation(s, guest.roomJid, g, 'member', 'guest');

      const mark = s.logMark();
      const answer = await requestAffiliation(o, boss.roomJid, g.bareJid, 'admin');
      assert.equal(answer.ok, false, 'the admin grant is refused');
      t.diagnostic(`admin grant refused with ${answer.condition}`);
      assert.match(s.logSince(mark), /refusing admin of .* no Matrix power in this room/);
      await expectAffiliation(s, guest.roomJid, g, 'member', 'guest after the refused admin grant');
    } finally {
      await stopAll(o, g);
    }
  });

  scenario('a session verified for room A (power 100) is not owner in room B', server, async (t, s) => {
    const roomA = uniqueMatrixRoomId('a');
    const roomB = uniqueMatrixRoomId('b');
    const user = matrixUser(uvs, { roomId: roomA, power: 100 });
    const other = matrixUser(uvs, { roomId: roomB, power: 0 });
    let u, v;
    try {
      ({ c: u } = await loginAndJoin(s, user, 'crossA'));
      await expectAffiliation(s, user.roomJid, u, 'owner', 'owner in the verified room A');

      // Room B, created by one of its own (unprivileged) members.
      ({ c: v } = await loginAndJoin(s, other, 'memberB'));
      await expectAffiliation(s, other.roomJid, v, 'member', 'unprivileged creator of B');

      // Same session (bound to room A) walks into room B.
      const joined = await u.joinMuc(roomJidOfMatrix(roomB), 'crossA');
      // Power sync alone (no room door here: door_matrix.test.js refuses
      // this join): the session gets in, but never as owner.
      assert.equal(joined.ok, true, `power sync alone does not refuse the join: ${JSON.stringify(joined)}`);
      await expectAffiliation(s, roomJidOfMatrix(roomB), u, 'member', 'room-A session in room B');
    } finally {
      await stopAll(u, v);
    }
  });

  scenario('a room-A session creating room B (first joiner) is not owner there', server, async (t, s) => {
    const roomA = uniqueMatrixRoomId('a2');
    const roomB = uniqueMatrixRoomId('b2');
    const user = matrixUser(uvs, { roomId: roomA, power: 100 });
    let u;
    try {
      u = await connect(s.wsUrl(user.room, user.token));
      const joined = await u.joinMuc(roomJidOfMatrix(roomB), 'creatorB');
      // Power sync alone (no room door here: door_matrix.test.js refuses
      // this join): the session gets in, but never as owner.
      assert.equal(joined.ok, true, `power sync alone does not refuse the join: ${JSON.stringify(joined)}`);
      await expectAffiliation(s, roomJidOfMatrix(roomB), u, 'member', 'room-A session creating room B');
    } finally {
      await stopAll(u);
    }
  });
});

// ---------------------------------------------------------------------------
describe('power sync: uvs_sync_power_levels = false', () => {
  let uvs;
  const server = usePowerSyncProsody({ uvs_sync_power_levels: false }, (u) => {
    uvs = u;
  });

  scenario('power 100 -> member (creator and second joiner alike)', server, async (t, s) => {
    const roomId = uniqueMatrixRoomId('nosync');
    const first = matrixUser(uvs, { roomId, power: 100 });
    const second = matrixUser(uvs, { roomId, power: 100 });
    let a, b;
    try {
      ({ c: a } = await loginAndJoin(s, first, 'first'));
      const f = await sessionFields(s.httpPort, a.jid);
      assert.equal(f.auth_matrix_user_verification_is_owner, false, `session is_owner: ${JSON.stringify(f)}`);
      await expectAffiliation(s, first.roomJid, a, 'member', 'power 100 creator, sync off');
      ({ c: b } = await loginAndJoin(s, second, 'second'));
      await expectAffiliation(s, second.roomJid, b, 'member', 'power 100 second joiner, sync off');
    } finally {
      await stopAll(a, b);
    }
  });
});

// ---------------------------------------------------------------------------
describe('power sync: uvs_disable_membership_verification = true', () => {
  let uvs;
  const server = usePowerSyncProsody(
    { uvs_sync_power_levels: true, uvs_disable_membership_verification: true },
    (u) => {
      uvs = u;
    },
  );

  scenario('/verify/user is used; a non-member logs in; nobody becomes owner', server, async (t, s) => {
    const roomId = uniqueMatrixRoomId('nomember');
    const admin = matrixUser(uvs, { roomId, power: 100 });
    const outsider = matrixUser(uvs, { roomId, rooms: {} });
    let a, b;
    try {
      ({ c: a } = await loginAndJoin(s, admin, 'powerful'));
      const reqs = uvs.requests.filter((r) => r.body?.token === admin.openid);
      assert.equal(reqs.length, 1, JSON.stringify(reqs));
      assert.equal(reqs[0].path, '/verify/user');
      assert.equal(reqs[0].headers.authorization, `Bearer ${UVS_TOKEN}`);
      await expectAffiliation(s, admin.roomJid, a, 'member', 'power 100 without membership verification');

      ({ c: b } = await loginAndJoin(s, outsider, 'outsider'));
      await expectAffiliation(s, outsider.roomJid, b, 'member', 'non-member without membership verification');
    } finally {
      await stopAll(a, b);
    }
  });

  scenario('an unknown OpenID token is still refused', server, async (t, s) => {
    const roomId = uniqueMatrixRoomId('nomember-bad');
    const token = matrixToken({ iss: APP_ID, openid: uniqueOpenid('unknown'), roomId });
    let c;
    try {
      c = await connect(s.wsUrl(jitsiRoomOf(roomId), token));
      assert.fail(`login with an unknown OpenID token succeeded (${c.jid})`);
    } catch (err) {
      if (err.name === 'AssertionError') throw err;
      assert.equal(err.condition, 'not-authorized', `${err}`);
    } finally {
      await stopAll(c);
    }
  });
});

// ---------------------------------------------------------------------------
describe('power sync: admin by the Matrix rule lasts only while the Matrix power does', () => {
  // A fixed XMPP username (tests/prosody/mod_test_fixed_username.lua) so that
  // a new login of the same Matrix user is the same account, whose
  // affiliation Prosody kept.
  const REJOINER = '@e2e-rejoiner:example.org';
  let uvs;
  const server = usePowerSyncProsody(
    { uvs_sync_power_levels: true, test_fixed_usernames: { [REJOINER]: 'e2e-rejoiner' } },
    (u) => {
      uvs = u;
    },
    ['test_fixed_username'],
  );

  /** A login of REJOINER into `roomId` with `power` there (a fresh OpenID token, so nothing cached). */
  function rejoiner(roomId, power) {
    const openid = uniqueOpenid();
    uvs.setUser(openid, { user_id: REJOINER, rooms: { [roomId]: power } });
    return { room: jitsiRoomOf(roomId), roomJid: roomJidOfMatrix(roomId), token: matrixToken({ iss: APP_ID, openid, roomId }) };
  }

  scenario('made admin while powerful, then power drops: member again on the next join (not admin, not owner)', server, async (t, s) => {
    const roomId = uniqueMatrixRoomId('rejoin');
    const boss = matrixUser(uvs, { roomId, power: 100 });
    let o, u, again;
    try {
      ({ c: o } = await loginAndJoin(s, boss, 'boss'));
      await expectAffiliation(s, boss.roomJid, o, 'owner', 'boss');
      ({ c: u } = await loginAndJoin(s, rejoiner(roomId, 100), 'rejoiner'));
      assert.equal(u.bareJid, 'e2e-rejoiner@localhost', 'the fixed username');
      await expectAffiliation(s, boss.roomJid, u, 'owner', 'powerful rejoiner');
      const granted = await requestAffiliation(o, boss.roomJid, u.bareJid, 'admin');
      assert.deepEqual(granted, { ok: true }, 'admin may be granted to someone the Matrix rule allows');
      await expectAffiliation(s, boss.roomJid, u, 'admin', 'rejoiner made admin');
      await u.stop();
      u = null;

      // Power dropped in Matrix; the same account logs in again and joins.
      ({ c: again } = await loginAndJoin(s, rejoiner(roomId, 0), 'rejoiner'));
      assert.equal(again.bareJid, 'e2e-rejoiner@localhost', 'the same account');
      await expectAffiliation(s, boss.roomJid, again, 'member', 'rejoiner without power');
    } finally {
      await stopAll(o, u, again);
    }
  });
});
