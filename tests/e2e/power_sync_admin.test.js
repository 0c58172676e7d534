// End-to-end: server admins are room owners under mod_matrix_power_sync,
// whatever their Matrix power, on Prosody 0.12 (usermanager.is_admin) and
// 13 (roles: module:could), with or without 13's
// component_admins_as_room_owners. docs/design.md, "Lobby, password, owners"; README, "Server admins".
// A test-only module gives the admin's Matrix login a fixed username, so
// that it can be listed in `admins`.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, describe } from 'node:test';

import { connect, stopAll } from './lib/client.js';
import { scenario, useProsody } from './lib/harness.js';
import { eventuallyRoom, jitsiRoomOf, matrixToken, requirePlugins, roomJidOfMatrix, uniqueMatrixRoomId, uniqueOpenid } from './lib/matrix.js';
import { roomState } from './lib/observer.js';
import { DOMAIN } from './lib/prosody.js';
import { startUvs } from './lib/uvs_server.js';

const APP_ID = 'e2e-admin-app';
const UVS_TOKEN = `e2e-uvs-bearer-${crypto.randomBytes(12).toString('hex')}`;
const PLUGINS = ['mod_auth_matrix_user_verification.lua', 'mod_matrix_power_sync.lua'];
// Matrix user -> XMPP username (mod_test_fixed_username); these are admins.
const ADMINS = { '@admin1:example.org': 'e2e-admin1', '@admin2:example.org': 'e2e-admin2' };

/** A Matrix user on `uvs` with `power` in `roomId` (optionally with a fixed Matrix id). */
function matrixUser(uvs, roomId, { power = 0, userId } = {}) {
  const openid = uniqueOpenid();
  uvs.setUser(openid, { user_id: userId ?? `@${openid.slice(-8)}:example.org`, rooms: { [roomId]: power } });
  return { room: jitsiRoomOf(roomId), roomJid: roomJidOfMatrix(roomId), token: matrixToken({ iss: APP_ID, openid, roomId }) };
}

async function loginAndJoin(s, u, nick) {
  const c = await connect(s.wsUrl(u.room, u.token));
  const joined = await c.joinMuc(u.roomJid, nick);
  assert.equal(joined.ok, true, `${nick} joins ${u.roomJid}: ${JSON.stringify(joined)}`);
  return c;
}

/**
 * The affiliation Prosody answers for the occupant (room:get_affiliation)
 * must settle to `expected` and stay. For admins it may come from MUC's own
 * component_admins_as_room_owners (then nothing is stored) or from our
 * module (a stored affiliation): both count.
 */
async function expectAffiliation(s, roomJid, client, expected, what) {
  const effective = (st) => st.occupants.find((o) => o.jid === client.bareJid)?.affiliation;
  await client.ping(DOMAIN); // a round trip: hooks of the join have run
  await eventuallyRoom(s.httpPort, roomJid, (st) =>
    assert.equal(effective(st), expected, `${what}: affiliation of ${client.bareJid}`),
  );
  await client.ping(DOMAIN);
  const again = await roomState(s.httpPort, roomJid);
  assert.equal(effective(again), expected, `${what}: later; state ${JSON.stringify(again)}`);
  return again;
}

function adminSuite(title, muc) {
  describe(title, () => {
    let uvs;
    const server = useProsody(async () => {
      requirePlugins(PLUGINS);
      uvs = await startUvs({ authToken: UVS_TOKEN });
      return {
        global: {
          admins: Object.values(ADMINS).map((u) => `${u}@${DOMAIN}`),
          // Prosody 13: the legacy is_admin() answers false (0.12 ignores it).
          strict_deprecate_is_admin: true,
        },
        vhost: {
          authentication: 'matrix_user_verification',
          app_id: APP_ID,
          uvs_base_url: uvs.url,
          uvs_auth_token: UVS_TOKEN,
          uvs_sync_power_levels: true,
          test_fixed_usernames: ADMINS,
        },
        vhostModules: ['test_observer', 'test_fixed_username'],
        mucModules: ['matrix_power_sync'],
        muc,
      };
    });
    after(async () => {
      await uvs?.stop();
    });

    scenario('an admin without Matrix power joining a member\'s room is owner; the member stays member', server, async (t, s) => {
      const roomId = uniqueMatrixRoomId('adm');
      const creator = matrixUser(uvs, roomId, { power: 0 });
      const admin = matrixUser(uvs, roomId, { power: 0, userId: '@admin1:example.org' });
      let k, a;
      try {
        k = await loginAndJoin(s, creator, 'creator');
        await expectAffiliation(s, creator.roomJid, k, 'member', 'unprivileged creator');
        a = await loginAndJoin(s, admin, 'admin');
        assert.equal(a.bareJid, `e2e-admin1@${DOMAIN}`, 'the admin logged in under its fixed username');
        await expectAffiliation(s, admin.roomJid, a, 'owner', 'server admin');
        const st = await expectAffiliation(s, creator.roomJid, k, 'member', 'unprivileged creator, later');
        assert.equal(st.affiliations[k.bareJid], 'member', `creator still member: ${JSON.stringify(st)}`);
      } finally {
        await stopAll(k, a);
      }
    });

    scenario('an admin creating a room is owner', server, async (t, s) => {
      const roomId = uniqueMatrixRoomId('admc');
      const admin = matrixUser(uvs, roomId, { power: 0, userId: '@admin2:example.org' });
      let a;
      try {
        a = await loginAndJoin(s, admin, 'admin');
        assert.equal(a.bareJid, `e2e-admin2@${DOMAIN}`);
        await expectAffiliation(s, admin.roomJid, a, 'owner', 'server admin creator');
      } finally {
        await stopAll(a);
      }
    });

    scenario('no legacy is_admin() deprecation in the log (Prosody 13)', server, async (t, s) => {
      assert.doesNotMatch(s.logText(), /legacy is_admin\(\) API|deprecated is_admin\(\) API/);
    });
  });
}

// MUC's own component_admins_as_room_owners defaults to true on 0.12 and to
// false on 13; whichever way it is set, admins must end up owners.
adminSuite('power sync: server admins are owners (MUC default)', {});
adminSuite('power sync: server admins are owners (component_admins_as_room_owners = true)', {
  component_admins_as_room_owners: true,
});
adminSuite('power sync: server admins are owners (component_admins_as_room_owners = false)', {
  component_admins_as_room_owners: false,
});
