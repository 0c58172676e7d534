// A daemonized Prosody (README "Installing from the .deb"; SECURITY.md "Availability"):
// `prosodyctl start` and Debian's init script run `prosody -D`, which forks
// after the modules are loaded (mod_posix, on server-started). The child
// must still answer Matrix logins (UVS mode and direct mode against a real
// Synapse) and fetch keys by kid: the native background thread starts in
// the process that serves, not in the one that loaded the module.
//
// Each server is started with -D and a pidfile (lib/prosody.js
// `daemonize: true`) and stopped by the PID in that pidfile in after(),
// pass or fail.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import { after, before, describe } from 'node:test';

import { stopAll, tryConnect } from './lib/client.js';
import { scenario, useProsody } from './lib/harness.js';
import { now, rsaKeyPair, sign } from './lib/jwt.js';
import { jitsiRoomOf, matrixToken, requestCompleteCodes, requirePlugins, uniqueMatrixRoomId, uniqueOpenid } from './lib/matrix.js';
import { DOMAIN } from './lib/prosody.js';
import { recordSecret } from './lib/secrets.js';
import { startSynapse } from './lib/synapse.js';
import { startUvs } from './lib/uvs_server.js';

const APP_ID = 'e2e-daemon-app';
const UVS_TOKEN = `e2e-uvs-bearer-${crypto.randomBytes(12).toString('hex')}`;
const AUTH_PLUGIN = 'mod_auth_matrix_user_verification.lua';
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
  let roomId;
  before(async () => {
    requirePlugins([AUTH_PLUGIN]);
    hs = await startSynapse({ config: { bcrypt_rounds: 4 } });
    [admin, alice] = await Promise.all([hs.registerUser('admin', { admin: true }), hs.registerUser('alice')]);
    roomId = await hs.createRoom(alice.accessToken, { roomVersion: '11' });
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
    },
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
});
