// End-to-end: the room door (mod_token_verification) for Matrix-verified
// sessions, checked against our UVS (lib/uvs_server.js) on a real Prosody
// with real XMPP clients. A session verified for Matrix room A opens the
// Jitsi room base32(A), A's lobby and A's breakout rooms, nothing else
// (SECURITY.md "What a claim grants, and where"; issue 15 item 1).
// Server admins and allowlisted JIDs pass. Breakout rooms come from the
// test-only tests/prosody/mod_muc_breakout_rooms.lua (jitsi-meet's contract).

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, describe } from 'node:test';

import { connect, stopAll } from './lib/client.js';
import { breakoutComponent, breakoutVhostOptions, createBreakoutRoom, expectDoorOpened, expectDoorRefused } from './lib/door.js';
import { scenario, useProsody } from './lib/harness.js';
import { jitsiRoomOf, matrixToken, requirePlugins, roomJidOfMatrix, uniqueMatrixRoomId, uniqueOpenid } from './lib/matrix.js';
import { fireLobbyEvent, roomState } from './lib/observer.js';
import { DOMAIN, LOBBY_DOMAIN, MUC_DOMAIN } from './lib/prosody.js';
import { startUvs } from './lib/uvs_server.js';

const APP_ID = 'e2e-door-matrix-app';
const UVS_TOKEN = `e2e-uvs-bearer-${crypto.randomBytes(12).toString('hex')}`;
const PLUGINS = ['mod_auth_matrix_user_verification.lua', 'mod_token_verification.lua'];
// Matrix user -> fixed XMPP username (tests/prosody/mod_test_fixed_username.lua).
const ADMIN = { matrix: '@door-admin:example.org', username: 'e2e-door-admin' };
const LISTED = { matrix: '@door-listed:example.org', username: 'e2e-door-listed' };

/** A Matrix member of `roomId` on `uvs` and its token (optionally with a fixed Matrix id). */
function member(uvs, roomId, { userId } = {}) {
  const openid = uniqueOpenid();
  uvs.setUser(openid, { user_id: userId ?? `@${openid.slice(-8)}:example.org`, rooms: { [roomId]: 0 } });
  return { roomId, room: jitsiRoomOf(roomId), roomJid: roomJidOfMatrix(roomId), token: matrixToken({ iss: APP_ID, openid, roomId }) };
}

/** Log in as `u` (the connection's ?room= is its own room). */
const login = (s, u) => connect(s.wsUrl(u.room, u.token));

async function expectOpens(s, client, roomJid, nick, what) {
  const mark = s.logMark();
  expectDoorOpened(s, mark, await client.joinMuc(roomJid, nick), what);
}

async function expectShut(s, client, roomJid, nick, code, what) {
  const mark = s.logMark();
  await expectDoorRefused(s, mark, await client.joinMuc(roomJid, nick), code, what);
}

/** A Matrix room with its first member logged in and in the call (owner, so moderator). */
async function openRoom(s, uvs, prefix) {
  const roomId = uniqueMatrixRoomId(prefix);
  const creator = member(uvs, roomId);
  const c = await login(s, creator);
  try {
    await expectOpens(s, c, creator.roomJid, 'creator', `creator of ${roomId}`);
  } catch (err) {
    await stopAll(c);
    throw err;
  }
  return { roomId, roomJid: creator.roomJid, room: creator.room, client: c };
}

/**
 * A name that decodes to the same bytes as `name` under a lenient base32
 * decoder but is not its canonical encoding: the unused low bits of the
 * last character set. Returns null when `name` has no unused bits.
 */
function nonCanonical(name) {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567';
  if ((name.length * 5) % 8 === 0) return null;
  const last = alphabet.indexOf(name.at(-1));
  return name.slice(0, -1) + alphabet[last ^ 1];
}

describe('door: Matrix-verified sessions (UVS)', () => {
  let uvs;
  const server = useProsody(async () => {
    requirePlugins(PLUGINS);
    uvs = await startUvs({ authToken: UVS_TOKEN });
    return {
      global: {
        admins: [`${ADMIN.username}@${DOMAIN}`],
        // Prosody 13: the legacy is_admin() answers false; roles must be used (0.12 ignores it).
        strict_deprecate_is_admin: true,
      },
      vhost: {
        authentication: 'matrix_user_verification',
        app_id: APP_ID,
        uvs_base_url: uvs.url,
        uvs_auth_token: UVS_TOKEN,
        test_fixed_usernames: { [ADMIN.matrix]: ADMIN.username, [LISTED.matrix]: LISTED.username },
        ...breakoutVhostOptions(),
      },
      vhostModules: ['test_observer', 'test_fixed_username', 'muc_breakout_rooms'],
      mucModules: ['token_verification', 'test_lobby'],
      muc: { token_verification_allowlist: [`${LISTED.username}@${DOMAIN}`] },
      lobbyModules: ['token_verification'],
      extraConfig: breakoutComponent({ modules: ['token_verification'] }),
    };
  });
  after(async () => {
    await uvs?.stop();
  });

  scenario('verified for A: A opens (also upper case); B stays shut, new or existing (matrix_room_mismatch)', server, async (t, s) => {
    let a, b, u, v;
    try {
      a = await openRoom(s, uvs, 'doorA');
      b = await openRoom(s, uvs, 'doorB');
      u = await login(s, member(uvs, a.roomId));
      await expectOpens(s, u, a.roomJid, 'u', 'A member into A');
      v = await login(s, member(uvs, a.roomId));
      await expectOpens(s, v, `${a.room.toUpperCase()}@${MUC_DOMAIN}`, 'v', 'A member into A written in upper case');

      await expectShut(s, u, b.roomJid, 'u', 'matrix_room_mismatch', 'A member into the existing room of B');
      const fresh = uniqueMatrixRoomId('doorC');
      await expectShut(s, u, roomJidOfMatrix(fresh), 'u', 'matrix_room_mismatch', 'A member creating the room of another Matrix room');
      assert.equal((await roomState(s.httpPort, roomJidOfMatrix(fresh))).exists, false, 'that room was not created');
      const st = await roomState(s.httpPort, b.roomJid);
      assert.equal(st.occupants.some((o) => o.jid === u.bareJid), false, `the A member is not in B: ${JSON.stringify(st)}`);
    } finally {
      await stopAll(u, v, a?.client, b?.client);
    }
  });

  scenario('verified for A: a name that is not A\'s canonical base32 stays shut', server, async (t, s) => {
    let roomId = uniqueMatrixRoomId('doorN');
    while (nonCanonical(jitsiRoomOf(roomId)) === null) roomId = uniqueMatrixRoomId('doorN');
    const odd = nonCanonical(jitsiRoomOf(roomId));
    let u;
    try {
      u = await login(s, member(uvs, roomId));
      await expectShut(s, u, `${odd}@${MUC_DOMAIN}`, 'u', 'matrix_room_mismatch', `A member into ${odd} (non-canonical base32 of A)`);
      await expectOpens(s, u, roomJidOfMatrix(roomId), 'u', 'A member into A');
    } finally {
      await stopAll(u);
    }
  });

  scenario('verified for A: A\'s lobby opens; B\'s lobby stays shut', server, async (t, s) => {
    let a, b, u;
    try {
      a = await openRoom(s, uvs, 'lobbyA');
      b = await openRoom(s, uvs, 'lobbyB');
      for (const r of [a, b]) {
        const st = await fireLobbyEvent(s.httpPort, r.roomJid, 'create');
        assert.equal(st.lobbyroom, `${r.room}@${LOBBY_DOMAIN}`, `lobby of ${r.roomId}: ${JSON.stringify(st)}`);
        assert.equal(st.lobbyroom_exists, true, `lobby room of ${r.roomId} exists: ${JSON.stringify(st)}`);
      }
      u = await login(s, member(uvs, a.roomId));
      await expectOpens(s, u, `${a.room}@${LOBBY_DOMAIN}`, 'u', 'A member into A\'s lobby');
      await expectShut(s, u, `${b.room}@${LOBBY_DOMAIN}`, 'u', 'matrix_room_mismatch', 'A member into B\'s lobby');
    } finally {
      await stopAll(u, a?.client, b?.client);
    }
  });

  scenario('verified for A: A\'s breakout room opens; B\'s stays shut; an unknown one is no_main_room', server, async (t, s) => {
    let a, b, u;
    try {
      a = await openRoom(s, uvs, 'boA');
      b = await openRoom(s, uvs, 'boB');
      const breakoutA = await createBreakoutRoom(a.client, { subject: 'A1' });
      const breakoutB = await createBreakoutRoom(b.client, { subject: 'B1' });
      u = await login(s, member(uvs, a.roomId));
      await expectOpens(s, u, breakoutA, 'u', 'A member into A\'s breakout room');
      await expectShut(s, u, breakoutB, 'u', 'matrix_room_mismatch', 'A member into B\'s breakout room');
      await expectOpens(s, b.client, breakoutB, 'creator', 'B member into B\'s breakout room');
      await expectShut(s, u, `${crypto.randomUUID()}@${breakoutA.split('@')[1]}`, 'u', 'no_main_room', 'an unknown breakout room');
    } finally {
      await stopAll(u, a?.client, b?.client);
    }
  });

  scenario('a server admin verified for A passes the door of B', server, async (t, s) => {
    let a, b, admin;
    try {
      a = await openRoom(s, uvs, 'admA');
      b = await openRoom(s, uvs, 'admB');
      admin = await login(s, member(uvs, a.roomId, { userId: ADMIN.matrix }));
      assert.equal(admin.bareJid, `${ADMIN.username}@${DOMAIN}`, 'the admin logged in under its fixed username');
      await expectOpens(s, admin, b.roomJid, 'admin', 'server admin verified for A into B');
      await expectOpens(s, admin, `${jitsiRoomOf(uniqueMatrixRoomId('admC'))}@${MUC_DOMAIN}`, 'admin', 'server admin creating another room');
    } finally {
      await stopAll(admin, a?.client, b?.client);
    }
  });

  scenario('an allowlisted JID verified for A passes the door of B; the same Matrix room\'s other members do not', server, async (t, s) => {
    let a, b, listed, other;
    try {
      a = await openRoom(s, uvs, 'lstA');
      b = await openRoom(s, uvs, 'lstB');
      listed = await login(s, member(uvs, a.roomId, { userId: LISTED.matrix }));
      assert.equal(listed.bareJid, `${LISTED.username}@${DOMAIN}`, 'the listed user logged in under its fixed username');
      await expectOpens(s, listed, b.roomJid, 'listed', 'allowlisted JID verified for A into B');
      other = await login(s, member(uvs, a.roomId));
      await expectShut(s, other, b.roomJid, 'other', 'matrix_room_mismatch', 'a JID that is not allowlisted, verified for A, into B');
    } finally {
      await stopAll(listed, other, a?.client, b?.client);
    }
  });
});
