// End-to-end: reloading (and unloading) the auth provider at runtime while
// a Matrix login waits for UVS. Prosody 0.12 and 13 allow both for an auth
// provider (core/modulemanager.lua: reload = save, unload, load, restore;
// core/usermanager.lua swaps host.users on item-removed/item-added
// "auth-provider", to a null provider in between). The waiting login must
// be answered at once (temporary-auth-failure, "the authentication module
// was unloaded; please retry", REQUEST_COMPLETE reason:module_unloaded),
// the event loop must keep running, the reloaded module must verify new
// logins with its own native thread, and the old thread must go away.
// The reload itself is done by tests/prosody/mod_test_reload.lua (HTTP).

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { after, beforeEach, describe } from 'node:test';

import { connect, stopAll, tryConnect } from './lib/client.js';
import { scenario, uniqueRoom, useProsody } from './lib/harness.js';
import { now, sign } from './lib/jwt.js';
import { offendingEntries } from './lib/log_check.js';
import {
  jitsiRoomOf,
  matrixToken,
  requestCompleteCodes,
  requirePlugins,
  roomJidOfMatrix,
  sleep,
  uniqueMatrixRoomId,
  uniqueOpenid,
  until,
} from './lib/matrix.js';
import { MUC_DOMAIN } from './lib/prosody.js';
import { startUvs } from './lib/uvs_server.js';

const APP_ID = 'e2e-reload-app';
const APP_SECRET = `e2e-reload-secret-${crypto.randomBytes(12).toString('hex')}`;
const UVS_TOKEN = `e2e-reload-uvs-${crypto.randomBytes(12).toString('hex')}`;
const AUTH_MODULE = 'auth_matrix_user_verification';

// UVS holds the slow login's answer this long (uvs_timeout is 5 s).
const UVS_LATENCY_MS = 3000;
// "At once" and "the loop did not stall": a third of the UVS latency, so a
// slow CI machine passes but a login that waited for UVS (or a loop blocked
// until UVS answered) does not.
const PROMPT_MS = UVS_LATENCY_MS / 3;

const UNLOADED = { condition: 'temporary-auth-failure', text: 'the authentication module was unloaded; please retry' };

/** Threads of a process (Linux). */
const threadCount = (pid) => fs.readdirSync(`/proc/${pid}/task`).length;

/** POST /test_reload/<action> (reload, unload, load): { ok, error, loaded } and how long it took. */
async function control(s, action, module = AUTH_MODULE) {
  const started = performance.now();
  const res = await fetch(`${s.httpUrl}/test_reload/${action}?module=${module}`, {
    method: action === 'status' ? 'GET' : 'POST',
    signal: AbortSignal.timeout(5000),
  });
  const body = await res.json();
  return { status: res.status, ms: performance.now() - started, ...body };
}

/** A Matrix user known to `uvs`, member of a fresh room: its token, Jitsi room, OpenID token. */
function matrixUser(uvs) {
  const roomId = uniqueMatrixRoomId('reload');
  const openid = uniqueOpenid();
  uvs.setUser(openid, { user_id: `@${openid.slice(-8)}:example.org`, rooms: { [roomId]: 0 } });
  return {
    openid,
    roomId,
    room: jitsiRoomOf(roomId),
    roomJid: roomJidOfMatrix(roomId),
    token: matrixToken({ iss: APP_ID, openid, roomId }),
  };
}

/** A standard (HS256) token for `room`. */
function standardToken(room) {
  const t = now();
  return sign(
    { iss: APP_ID, aud: 'jitsi', sub: 'localhost', room, iat: t - 5, exp: t + 300, context: { user: { name: 'pinger' } } },
    { alg: 'HS256', key: APP_SECRET },
  );
}

/** Ping from `client` back to back until stop(); every RTT with when it started. */
function pinger(client) {
  const rtts = [];
  let running = true;
  const done = (async () => {
    while (running) {
      const at = performance.now();
      rtts.push({ at, ms: await client.ping() });
      await sleep(20);
    }
  })();
  return {
    rtts,
    async stop() {
      running = false;
      await done;
      return rtts;
    },
  };
}

/** Start a Matrix login that UVS holds for UVS_LATENCY_MS; resolves once UVS got its request. */
async function slowLogin(uvs, s) {
  const u = matrixUser(uvs);
  uvs.setBehaviour({ perToken: { [u.openid]: { latencyMs: UVS_LATENCY_MS } } });
  const started = performance.now();
  const login = tryConnect(s.wsUrl(u.room, u.token)).then((res) => ({ ...res, at: performance.now() }));
  await until(() => assert.ok(uvs.requests.some((r) => r.body?.token === u.openid), 'UVS got the slow request'), 5000);
  return { u, login, started };
}

/** A Matrix login (UVS answers at once) that must succeed and join its room. */
async function goodLogin(uvs, s, what) {
  const u = matrixUser(uvs);
  const c = await connect(s.wsUrl(u.room, u.token));
  try {
    const joined = await c.joinMuc(u.roomJid, 'after');
    assert.equal(joined.ok, true, `${what}: join ${JSON.stringify(joined)}`);
  } finally {
    await c.stop();
  }
}

function assertUnloadedAnswer(res, what) {
  if (res.ok) {
    res.client.stop();
    assert.fail(`${what}: the waiting login succeeded`);
  }
  assert.equal(res.condition, UNLOADED.condition, `${what}: ${JSON.stringify(res)}`);
  assert.equal(res.text, UNLOADED.text, `${what}: ${JSON.stringify(res)}`);
}

/** No traceback, no warn/error from our plugins, in the log since `mark`. */
function assertCleanLog(s, mark, what) {
  const bad = offendingEntries(s.logSince(mark));
  assert.deepEqual(bad, [], `${what}: the Prosody log must be clean`);
}

function summary(rtts) {
  const ms = rtts.map((r) => r.ms);
  return `${ms.length} pings, max ${Math.max(...ms).toFixed(1)} ms, median ${ms.sort((a, b) => a - b)[ms.length >> 1].toFixed(1)} ms`;
}

// ---------------------------------------------------------------------------
describe('reloading mod_auth_matrix_user_verification while a Matrix login waits for UVS', () => {
  let uvs;
  const server = useProsody(async () => {
    requirePlugins(['mod_auth_matrix_user_verification.lua', 'mod_test_reload.lua']);
    uvs = await startUvs({ authToken: UVS_TOKEN });
    return {
      vhost: {
        authentication: 'matrix_user_verification',
        app_id: APP_ID,
        app_secret: APP_SECRET,
        uvs_base_url: uvs.url,
        uvs_auth_token: UVS_TOKEN,
        uvs_timeout: 5,
      },
      vhostModules: ['test_reload'],
    };
  });
  after(async () => {
    await uvs?.stop();
  });
  beforeEach(() => uvs?.setBehaviour({}));

  scenario('reload: the waiting login is refused at once (module_unloaded), pings keep flowing, a new login works', server, async (t, s) => {
    const mark = s.logMark();
    const room = uniqueRoom('pinger');
    const other = await connect(s.wsUrl(room, standardToken(room)));
    try {
      assert.equal((await other.joinMuc(`${room}@${MUC_DOMAIN}`, 'pinger')).ok, true, 'the pinging client is in a room');
      const slow = await slowLogin(uvs, s);
      const pings = pinger(other);
      await sleep(100);

      const reloadAt = performance.now();
      const reload = await control(s, 'reload');
      assert.equal(reload.ok, true, `reload: ${JSON.stringify(reload)}`);
      assert.equal(reload.loaded, true, 'loaded again after the reload');
      const res = await slow.login;
      await sleep(200);
      const rtts = await pings.stop();

      const answeredAfter = res.at - reloadAt;
      const around = rtts.filter((r) => r.at >= reloadAt - 150 && r.at <= res.at + 50);
      t.diagnostic(`reload took ${reload.ms.toFixed(1)} ms; waiting login answered ${answeredAfter.toFixed(1)} ms after the reload started (${(res.at - slow.started).toFixed(0)} ms after it began; UVS holds answers ${UVS_LATENCY_MS} ms)`);
      t.diagnostic(`ping RTT of another client around the reload: ${around.map((r) => r.ms.toFixed(1)).join(', ')} ms; whole window ${summary(rtts)}`);
      console.log(`reload: login answered ${answeredAfter.toFixed(1)} ms after reload; ping RTTs around it ${around.map((r) => r.ms.toFixed(1)).join(', ')} ms (${summary(rtts)})`);

      assertUnloadedAnswer(res, 'the login waiting for UVS during the reload');
      assert.ok(answeredAfter < PROMPT_MS, `answered ${answeredAfter.toFixed(0)} ms after the reload, expected < ${PROMPT_MS} ms (UVS answers after ${UVS_LATENCY_MS} ms)`);
      assert.ok(res.at - slow.started < UVS_LATENCY_MS, 'answered before UVS did');
      assert.ok(around.length >= 1, 'at least one ping around the reload');
      const worst = Math.max(...rtts.map((r) => r.ms));
      assert.ok(worst < PROMPT_MS, `event loop stalled: a ping took ${worst.toFixed(0)} ms (UVS latency ${UVS_LATENCY_MS} ms)`);
      const codes = requestCompleteCodes(s.logSince(mark));
      assert.ok(codes.includes('module_unloaded'), `REQUEST_COMPLETE reason:module_unloaded logged: ${JSON.stringify(codes)}`);

      // The reloaded module verifies new Matrix logins (its own native thread).
      const okMark = s.logMark();
      await goodLogin(uvs, s, 'a Matrix login after the reload');
      assert.deepEqual(requestCompleteCodes(s.logSince(okMark)), ['ok']);
      // The client logged in before the reload is still served.
      await other.ping();

      // Let UVS answer the abandoned request: nothing may break when it does.
      await sleep(Math.max(0, slow.started + UVS_LATENCY_MS + 300 - performance.now()));
      await other.ping();
      assertCleanLog(s, mark, 'reload');
    } finally {
      await stopAll(other);
    }
  });

  scenario('unload then load: the waiting login is refused at once; no login while unloaded; logins work after load', server, async (t, s) => {
    const mark = s.logMark();
    const slow = await slowLogin(uvs, s);
    const unloadAt = performance.now();
    const unload = await control(s, 'unload');
    assert.equal(unload.ok, true, `unload: ${JSON.stringify(unload)}`);
    assert.equal(unload.loaded, false);
    try {
      const res = await slow.login;
      const answeredAfter = res.at - unloadAt;
      t.diagnostic(`unload: waiting login answered ${answeredAfter.toFixed(1)} ms after the unload started`);
      assertUnloadedAnswer(res, 'the login waiting for UVS during the unload');
      assert.ok(answeredAfter < PROMPT_MS, `answered ${answeredAfter.toFixed(0)} ms after the unload, expected < ${PROMPT_MS} ms`);
      assert.ok(requestCompleteCodes(s.logSince(mark)).includes('module_unloaded'));

      // Without the provider the host has Prosody's null provider: nobody gets in.
      const u = matrixUser(uvs);
      let refused;
      try {
        refused = await tryConnect(s.wsUrl(u.room, u.token), { timeout: 3000 });
      } catch (err) {
        refused = { ok: false, error: String(err).replace(/token=[^&\s"]+/g, 'token=…') };
      }
      if (refused.ok) await refused.client.stop();
      assert.equal(refused.ok, false, 'no login while the auth module is unloaded');
      t.diagnostic(`login while unloaded: ${JSON.stringify(refused)}`);
    } finally {
      const load = await control(s, 'load');
      assert.equal(load.loaded, true, `load: ${JSON.stringify(load)}`);
    }
    const okMark = s.logMark();
    await goodLogin(uvs, s, 'a Matrix login after unload + load');
    assert.deepEqual(requestCompleteCodes(s.logSince(okMark)), ['ok']);
    await sleep(Math.max(0, slow.started + UVS_LATENCY_MS + 300 - performance.now()));
    assertCleanLog(s, mark, 'unload + load');
  });

  scenario('several reloads do not leave a native thread behind each', server, async (t, s) => {
    const mark = s.logMark();
    const RELOADS = 8;
    await goodLogin(uvs, s, 'before the reloads');
    const before = threadCount(s.pid);
    for (let i = 0; i < RELOADS; i++) {
      // A login waiting for UVS during every other reload: its request is
      // in flight on the thread that has to go.
      const slow = i % 2 === 0 ? await slowLogin(uvs, s) : null;
      const reload = await control(s, 'reload');
      assert.equal(reload.ok, true, `reload ${i + 1}: ${JSON.stringify(reload)}`);
      if (slow) assertUnloadedAnswer(await slow.login, `reload ${i + 1}`);
      uvs.setBehaviour({});
      await goodLogin(uvs, s, `after reload ${i + 1}`);
    }
    await sleep(1000);
    const afterReloads = threadCount(s.pid);
    t.diagnostic(`Prosody threads: ${before} before, ${afterReloads} one second after ${RELOADS} reloads`);
    console.log(`threads: ${before} before, ${afterReloads} one second after ${RELOADS} reloads`);
    assert.ok(afterReloads <= before + 1, `threads grew from ${before} to ${afterReloads} over ${RELOADS} reloads`);
    await sleep(UVS_LATENCY_MS);
    assertCleanLog(s, mark, 'reloads');
  });
});
