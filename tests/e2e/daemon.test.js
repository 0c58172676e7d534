// A daemonized Prosody (README "Installing from the .deb"; SECURITY.md "Availability"):
// `prosodyctl start` and Debian's init script run `prosody -D`, which forks
// after the modules are loaded (mod_posix, on server-started). The child
// must still answer Matrix logins (UVS mode and direct mode against a real
// Synapse), fetch keys by kid and keep the live resync going: the native
// background threads start in the process that serves, not in the one that
// loaded the modules.
//
// Each server is started with -D and a pidfile (lib/prosody.js
// `daemonize: true`) and stopped by the PID in that pidfile in after(),
// pass or fail.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import { after, before, describe } from 'node:test';

import { connect, stopAll, tryConnect } from './lib/client.js';
import { scenario, useProsody } from './lib/harness.js';
import { now, rsaKeyPair, sign } from './lib/jwt.js';
import {
  jitsiRoomOf,
  matrixToken,
  requestCompleteCodes,
  requirePlugins,
  roomJidOfMatrix,
  uniqueMatrixRoomId,
  uniqueOpenid,
} from './lib/matrix.js';
import { DOMAIN } from './lib/prosody.js';
import { recordSecret } from './lib/secrets.js';
import { startSynapse } from './lib/synapse.js';
import { startUvs } from './lib/uvs_server.js';

const APP_ID = 'e2e-daemon-app';
const UVS_TOKEN = `e2e-uvs-bearer-${crypto.randomBytes(12).toString('hex')}`;
const AUTH_PLUGIN = 'mod_auth_matrix_user_verification.lua';
const SYNC_PLUGIN = 'mod_matrix_power_sync.lua';
const NS_MUC_USER = 'http://jabber.org/protocol/muc#user';
const KID = 'daemon-kid';
const sha256hex = (s) => crypto.createHash('sha256').update(s).digest('hex');

/** Log in; on success disconnect at once. Resolves tryConnect's result. */
async function login(url) {
  const r = await tryConnect(url);
  if (r.ok) await stopAll(r.client);
  return r;
}

/** The daemon serves, not the process that was started. */
function assertDaemonized(s) {
  assert.equal(s.daemonized, true);
  assert.ok(Number.isInteger(s.pid) && s.pid > 0, `daemon pid ${s.pid}`);
  assert.match(s.logText(), new RegExp(`Successfully daemonized to PID ${s.pid}`), 'mod_posix forked');
}

describe('daemonized Prosody (-D): UVS mode and keys by kid', () => {
  const rsa = rsaKeyPair();
  let uvs;
  let keys;
  let keyHits = 0;
  const server = useProsody(async () => {
    requirePlugins([AUTH_PLUGIN]);
    uvs = await startUvs({ authToken: UVS_TOKEN });
    keys = http.createServer((req, res) => {
      keyHits += 1;
      if (req.url === `/${sha256hex(KID)}.pem`) {
        res.writeHead(200, { 'content-type': 'application/x-pem-file' });
        res.end(rsa.publicKey);
      } else {
        res.writeHead(404);
        res.end();
      }
    });
    await new Promise((resolve) => keys.listen(0, '127.0.0.1', resolve));
    return {
      daemonize: true,
      vhost: {
        authentication: 'matrix_user_verification',
        app_id: APP_ID,
        uvs_base_url: uvs.url,
        uvs_auth_token: UVS_TOKEN,
        uvs_timeout: 5,
        asap_key_server: `http://127.0.0.1:${keys.address().port}`,
      },
    };
  });
  after(async () => {
    await uvs?.stop();
    keys?.closeAllConnections?.();
    if (keys) await new Promise((resolve) => keys.close(resolve));
  });

  scenario('a Matrix login checked by UVS succeeds', server, async (t, s) => {
    assertDaemonized(s);
    const openid = uniqueOpenid();
    recordSecret(openid);
    const roomId = uniqueMatrixRoomId();
    uvs.setUser(openid, { user_id: '@daemon:example.org', rooms: { [roomId]: 0 } });
    const mark = s.logMark();
    const r = await login(s.wsUrl(jitsiRoomOf(roomId), matrixToken({ iss: APP_ID, openid, roomId })));
    assert.equal(r.ok, true, `${r.condition}: ${r.text}`);
    assert.deepEqual(requestCompleteCodes(s.logSince(mark)), ['ok']);
    assert.equal(uvs.requests.filter((q) => q.body?.token === openid).length, 1, 'UVS was asked');
  });

  scenario('a key fetch by kid (asap_key_server) completes', server, async (t, s) => {
    const claims = { iss: APP_ID, aud: 'jitsi', sub: DOMAIN, room: '*', exp: now() + 600 };
    const mark = s.logMark();
    const r = await login(s.wsUrl('r1', sign(claims, { alg: 'RS256', key: rsa.privateKey, header: { kid: KID } })));
    assert.equal(r.ok, true, `${r.condition}: ${r.text}`);
    assert.deepEqual(requestCompleteCodes(s.logSince(mark)), ['ok']);
    assert.equal(keyHits, 1, 'the key was fetched once');
  });
});

describe('daemonized Prosody (-D): direct mode against a real Synapse', () => {
  let hs;
  let admin;
  let alice;
  let bob;
  let roomId;
  before(async () => {
    requirePlugins([AUTH_PLUGIN, SYNC_PLUGIN]);
    hs = await startSynapse({ config: { bcrypt_rounds: 4 } });
    [admin, alice, bob] = await Promise.all([
      hs.registerUser('admin', { admin: true }),
      hs.registerUser('alice'),
      hs.registerUser('bob'),
    ]);
    roomId = await hs.createRoom(alice.accessToken, { roomVersion: '11', preset: 'public_chat' });
    await hs.join(bob.accessToken, roomId);
  });
  after(async () => {
    if (hs) await hs.stop();
  });
  const server = useProsody(() => ({
    daemonize: true,
    vhost: {
      authentication: 'matrix_user_verification',
      app_id: APP_ID,
      matrix_homeserver_url: hs.url,
      matrix_admin_token: admin.accessToken,
      uvs_timeout: 5,
      matrix_resync_interval: 1,
    },
    mucModules: ['matrix_power_sync'],
  }));

  scenario('a member of the Matrix room logs in', server, async (t, s) => {
    assertDaemonized(s);
    const openid = await hs.openidToken(alice.accessToken, alice.userId);
    recordSecret(openid);
    const mark = s.logMark();
    const token = matrixToken({ iss: APP_ID, openid, roomId, serverName: hs.serverName });
    const r = await login(s.wsUrl(jitsiRoomOf(roomId), token));
    assert.equal(r.ok, true, `${r.condition}: ${r.text}`);
    assert.deepEqual(requestCompleteCodes(s.logSince(mark)), ['ok']);
  });

  scenario('the live resync runs in the daemon: bob kicked in Matrix is kicked from the MUC', server, async (t, s) => {
    const openid = await hs.openidToken(bob.accessToken, bob.userId);
    recordSecret(openid);
    const roomJid = roomJidOfMatrix(roomId);
    let c;
    try {
      c = await connect(s.wsUrl(jitsiRoomOf(roomId), matrixToken({ iss: APP_ID, openid, roomId, serverName: hs.serverName })));
      const joined = await c.joinMuc(roomJid, 'bob');
      assert.equal(joined.ok, true, JSON.stringify(joined));
      const self = `${roomJid}/bob`.toLowerCase();
      const kicked = c.waitFor(
        (st) => st.is('presence') && st.attrs.type === 'unavailable' && (st.attrs.from || '').toLowerCase() === self,
        20000,
        'bob kicked from the MUC',
      );
      await hs.kick(alice.accessToken, roomId, bob.userId, 'e2e daemon kick');
      const st = await kicked;
      const codes = (st.getChild('x', NS_MUC_USER)?.getChildren('status') || []).map((x) => Number(x.attrs.code));
      assert.ok(codes.includes(307), `a kick (307): ${st.toString()}`);
    } finally {
      await stopAll(c);
    }
  });
});
