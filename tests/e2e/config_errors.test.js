// Configuration mistakes on a real Prosody (0.12, or 13 with PROSODY_BIN):
// an option of the wrong type or range (README "Standard Jitsi tokens",
// types paragraph) is one clean `configuration error: <option> ...` line
// at load, no traceback, the server keeps serving, and every login on that
// host is refused with the SASL condition temporary-auth-failure, the log
// code REQUEST_COMPLETE reason:config_error and the login_config_error
// metric. A MUC module with a bad option logs one error line and grants
// nothing (README "Room owners from Matrix power levels").

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { describe, test } from 'node:test';

import { connect, stopAll, tryConnect } from './lib/client.js';
import { now, sign } from './lib/jwt.js';
import {
  eventuallyRoom,
  jitsiRoomOf,
  matrixToken,
  requestCompleteCodes,
  requirePlugins,
  roomJidOfMatrix,
  uniqueMatrixRoomId,
  uniqueOpenid,
  until,
} from './lib/matrix.js';
import { DOMAIN, startProsody } from './lib/prosody.js';
import { startUvs } from './lib/uvs_server.js';

const APP_ID = 'e2e-config-app';
const APP_SECRET = `e2e-config-secret-${crypto.randomBytes(12).toString('hex')}`;

const errorLines = (text) => text.split('\n').filter((l) => /\terror\t/.test(l));
const tracebacks = (text) => text.split('\n').filter((l) => /traceback/i.test(l));

/** The value of `prosody_<metric>_total{host="localhost"}` in /metrics (0 when absent). */
async function metric(server, name) {
  const res = await fetch(`${server.httpUrl}/metrics`, { signal: AbortSignal.timeout(5000) });
  const body = await res.text();
  assert.equal(res.status, 200, body);
  const prefix = `prosody_${name}_total{host="${DOMAIN}"} `;
  const line = body.split('\n').find((l) => l.startsWith(prefix));
  return line ? Number(line.slice(prefix.length)) : 0;
}

const METRICS = {
  globalModules: ['http_openmetrics'],
  global: { statistics: 'internal', statistics_interval: 'manual', openmetrics_allow_ips: ['127.0.0.1'] },
};

const MISTAKES = [
  ['token_leeway = 1.5', { token_leeway: 1.5 }, 'token_leeway'],
  ['token_leeway = -1', { token_leeway: -1 }, 'token_leeway'],
  ['uvs_timeout = "5"', { uvs_timeout: '5' }, 'uvs_timeout'],
  ['matrix_token_secret = "notused"', { matrix_token_secret: 'notused' }, 'matrix_token_secret'],
];

describe('a wrong option on the VirtualHost: clean error at load, logins refused with config_error', () => {
  for (const [name, bad, option] of MISTAKES) {
    test(name, async () => {
      requirePlugins(['mod_auth_matrix_user_verification.lua']);
      const uvs = await startUvs();
      const expected = new RegExp(`configuration error: ${option} `);
      let server;
      try {
        server = await startProsody({
          ...METRICS,
          vhost: {
            authentication: 'matrix_user_verification',
            app_id: APP_ID,
            app_secret: APP_SECRET,
            uvs_base_url: uvs.url,
            ...bad,
          },
          allowModuleErrors: true,
          expectLog: [expected],
        });
        // Exactly one error line, naming the option; no traceback.
        const atLoad = server.logText();
        const errors = errorLines(atLoad);
        assert.equal(errors.length, 1, `one error line at load:\n${errors.join('\n')}`);
        assert.match(errors[0], expected);
        assert.deepEqual(tracebacks(atLoad), []);

        // The server keeps serving; a good standard token and a Matrix token are refused.
        const mark = server.logMark();
        const token = sign({ iss: APP_ID, aud: 'jitsi', sub: DOMAIN, room: 'r1', exp: now() + 600 }, { key: APP_SECRET });
        const roomId = uniqueMatrixRoomId('cfg');
        const openid = uniqueOpenid();
        uvs.setUser(openid, { user_id: '@cfg:example.org', rooms: { [roomId]: 0 } });
        const logins = [
          [server.wsUrl('r1', token), 'standard token'],
          [server.wsUrl(jitsiRoomOf(roomId), matrixToken({ iss: APP_ID, openid, roomId })), 'Matrix token'],
          [server.wsUrl('r1'), 'no token'],
        ];
        for (const [url, what] of logins) {
          const r = await tryConnect(url);
          if (r.ok) await stopAll(r.client);
          assert.equal(r.ok, false, `${what}: refused`);
          assert.equal(r.condition, 'temporary-auth-failure', `${what}: ${JSON.stringify(r)}`);
          assert.match(r.text, /configuration error/, what);
        }
        await until(() => assert.deepEqual(requestCompleteCodes(server.logSince(mark)), ['config_error', 'config_error', 'config_error']), 5000);
        assert.equal(uvs.requests.length, 0, 'UVS never asked');
        await until(async () => assert.equal(await metric(server, 'mod_auth_matrix_user_verification__login_config_error'), 3), 5000);
        assert.deepEqual(tracebacks(server.logText()), []);
        assert.equal(errorLines(server.logText()).length, 1, 'no further error line');
      } finally {
        await server?.stop();
        await uvs.stop();
      }
    });
  }

  test('a single string where a list is expected keeps working (uvs_issuer = "...")', async () => {
    requirePlugins(['mod_auth_matrix_user_verification.lua']);
    const uvs = await startUvs();
    let server;
    let c;
    try {
      server = await startProsody({
        vhost: { authentication: 'matrix_user_verification', app_id: APP_ID, uvs_base_url: uvs.url, uvs_issuer: 'element-iss' },
      });
      const roomId = uniqueMatrixRoomId('iss');
      const openid = uniqueOpenid();
      uvs.setUser(openid, { user_id: '@iss:example.org', rooms: { [roomId]: 0 } });
      c = await connect(server.wsUrl(jitsiRoomOf(roomId), matrixToken({ iss: 'element-iss', openid, roomId })));
      const other = await tryConnect(server.wsUrl(jitsiRoomOf(roomId), matrixToken({ iss: APP_ID, openid, roomId })));
      if (other.ok) await stopAll(other.client);
      assert.equal(other.ok, false, 'app_id is not accepted once uvs_issuer lists the issuers');
    } finally {
      await stopAll(c);
      await server?.stop();
      await uvs.stop();
    }
  });
});

describe('a wrong option on MUC modules: one error line each, nothing granted', () => {
  test('matrix_power_sync and token_security_ondemand with bad options', async () => {
    requirePlugins(['mod_auth_matrix_user_verification.lua', 'mod_matrix_power_sync.lua', 'mod_token_security_ondemand.lua']);
    const uvs = await startUvs();
    const expected = [/configuration error: matrix_resync_interval /, /configuration error: muc_mapper_domain_base /];
    let server;
    let c;
    try {
      server = await startProsody({
        vhost: { authentication: 'matrix_user_verification', app_id: APP_ID, uvs_base_url: uvs.url, uvs_sync_power_levels: true },
        vhostModules: ['test_observer'],
        mucModules: ['matrix_power_sync', 'token_security_ondemand'],
        muc: { matrix_resync_interval: '30', muc_mapper_domain_base: 5 },
        allowModuleErrors: true,
        expectLog: expected,
      });
      const errors = errorLines(server.logText());
      assert.equal(errors.length, 2, `one error line per module:\n${errors.join('\n')}`);
      for (const re of expected) assert.equal(errors.filter((l) => re.test(l)).length, 1, `${re}:\n${errors.join('\n')}`);
      assert.deepEqual(tracebacks(server.logText()), []);

      // A Matrix user with power 100 (an owner when the module works) logs
      // in (the VirtualHost is fine) and stays a member: fail closed.
      const roomId = uniqueMatrixRoomId('muc');
      const openid = uniqueOpenid();
      uvs.setUser(openid, { user_id: '@boss:example.org', rooms: { [roomId]: 100 } });
      c = await connect(server.wsUrl(jitsiRoomOf(roomId), matrixToken({ iss: APP_ID, openid, roomId })));
      const joined = await c.joinMuc(roomJidOfMatrix(roomId), 'boss');
      assert.equal(joined.ok, true, JSON.stringify(joined));
      await c.ping(DOMAIN);
      await eventuallyRoom(server.httpPort, roomJidOfMatrix(roomId), (st) =>
        assert.notEqual(st.affiliations[c.bareJid], 'owner', 'no Matrix power makes an owner'),
      );
      assert.deepEqual(tracebacks(server.logText()), []);
    } finally {
      await stopAll(c);
      await server?.stop();
      await uvs.stop();
    }
  });
});
