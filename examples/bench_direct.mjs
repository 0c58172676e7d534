// Direct homeserver mode: what a burst of Matrix logins costs the
// homeserver (part of `make bench` when build/synapse-venv exists). Prints
// request counts (and, for the record, walls); never asserts anything.
//
//   node --experimental-websocket examples/bench_direct.mjs
//
// 1. A real Synapse (tests/e2e/lib/synapse.js); USERS (200) users
//    registered by shared-secret admin registration, CONCURRENCY (8) at a
//    time; the first creates a public v11 room, every other one joins it;
//    one OpenID token each.
// 2. A real Prosody with mod_auth_matrix_user_verification in direct mode
//    (matrix_homeserver_url + matrix_admin_token, every other option at its
//    default: matrix_state_ttl 5, matrix_cache_ttl 60), talking to Synapse
//    through the counting proxy of tests/e2e/lib/synapse.js, which
//    attributes every request Prosody makes.
// 3. Burst A: USERS logins of different members into the one room, all
//    started at once: room state reads (target: at most 2), userinfo
//    requests, logins ok.
// 4. Burst B: USERS logins with random (unknown) OpenID tokens into the
//    same room, all at once: room state reads (target: 0), userinfo
//    requests, refusals.
// Synapse, the proxy and Prosody are stopped (by PID) whether this passes
// or fails.
//
// Environment: BENCH_DIRECT_USERS (200), BENCH_DIRECT_CONCURRENCY (8),
// BENCH_DIRECT_BCRYPT_ROUNDS (4: registration is setup, not measured),
// PROSODY_BIN.

import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { connect, stopAll } from '../tests/e2e/lib/client.js';
import { jitsiRoomOf, matrixToken, requestCompleteCodes } from '../tests/e2e/lib/matrix.js';
import { REPO_ROOT, startProsody } from '../tests/e2e/lib/prosody.js';
import { SYNAPSE_PYTHON, startCountingProxy, startSynapse, synapseAvailable } from '../tests/e2e/lib/synapse.js';
import { envNumber, writeSection } from '../tests/bench/common.mjs';

const num = envNumber;

const USERS = Math.max(2, Math.floor(num('BENCH_DIRECT_USERS', 200)));
const CONCURRENCY = Math.max(1, Math.floor(num('BENCH_DIRECT_CONCURRENCY', 8)));
const BCRYPT_ROUNDS = Math.max(4, Math.floor(num('BENCH_DIRECT_BCRYPT_ROUNDS', 4)));
const LOGIN_TIMEOUT_MS = 60000;
const APP_ID = 'bench-direct-app';
const TARGET_MEMBER_READS = 2;
const TARGET_RANDOM_READS = 0;

/** fn(i) for i in [0, n), `concurrency` at a time; resolves the results by index. */
async function bounded(n, concurrency, fn) {
  const out = new Array(n);
  let next = 0;
  async function worker() {
    for (let i = next++; i < n; i = next++) out[i] = await fn(i);
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
  return out;
}

/** Start every login at once; resolves { ok, refused: {condition: n}, failed, wall, clients }. */
async function burst(server, roomId, tokens) {
  const url = (token) => server.wsUrl(jitsiRoomOf(roomId), token);
  const started = performance.now();
  const results = await Promise.allSettled(tokens.map((t) => connect(url(t), { timeout: LOGIN_TIMEOUT_MS })));
  const wall = performance.now() - started;
  const clients = results.filter((r) => r.status === 'fulfilled').map((r) => r.value);
  const refused = {};
  const failed = [];
  for (const r of results) {
    if (r.status !== 'rejected') continue;
    if (r.reason?.condition) refused[r.reason.condition] = (refused[r.reason.condition] || 0) + 1;
    else failed.push(String(r.reason?.message || r.reason));
  }
  return { ok: clients.length, refused, failed, wall, clients };
}

function codes(logFile) {
  const counts = {};
  for (const code of requestCompleteCodes(fs.readFileSync(logFile, 'utf8'))) counts[code] = (counts[code] || 0) + 1;
  return counts;
}

async function main() {
  if (!synapseAvailable()) {
    console.log(`bench_direct: skipped (${SYNAPSE_PYTHON} missing: make deps-synapse)`);
    return;
  }
  const load = os.loadavg().map((l) => l.toFixed(1)).join(' ');
  console.log(`== direct homeserver mode: ${USERS} logins into one Matrix room (load average ${load})`);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-direct-'));
  // Prosody loads a private copy of the module (a `make build` elsewhere
  // rewrites build/lua/jitsi_security.so in place).
  if (!process.env.JITSI_SECURITY_CPATH) {
    const so = path.join(REPO_ROOT, 'build', 'lua', 'jitsi_security.so');
    if (!fs.existsSync(so)) throw new Error(`${so} is missing: run \`make build\``);
    fs.copyFileSync(so, path.join(tmp, 'jitsi_security.so'));
    process.env.JITSI_SECURITY_CPATH = tmp;
  }
  let hs;
  let proxy;
  let server;
  const clients = [];
  try {
    hs = await startSynapse({ config: { bcrypt_rounds: BCRYPT_ROUNDS } });
    console.log(`synapse pid ${hs.pid} at ${hs.url}, up in ${hs.startupMs.total} ms`);
    let t = Date.now();
    const admin = await hs.registerUser('benchadmin', { admin: true });
    const users = await bounded(USERS, CONCURRENCY, (i) => hs.registerUser(`member${String(i).padStart(4, '0')}`));
    const [creator, ...others] = users;
    const roomId = await hs.createRoom(creator.accessToken, { roomVersion: '11', preset: 'public_chat' });
    const warmRoom = await hs.createRoom(creator.accessToken, { roomVersion: '11', preset: 'public_chat' });
    await bounded(others.length, CONCURRENCY, (i) => hs.join(others[i].accessToken, roomId));
    const openids = await bounded(USERS, CONCURRENCY, (i) => hs.openidToken(users[i].accessToken, users[i].userId));
    console.log(`setup: ${USERS} users joined to ${roomId}, one OpenID token each, in ${((Date.now() - t) / 1000).toFixed(1)} s`);

    proxy = await startCountingProxy(hs.url);
    const logFile = path.join(tmp, 'prosody.log');
    server = await startProsody({
      vhost: {
        authentication: 'matrix_user_verification',
        app_id: APP_ID,
        matrix_homeserver_url: proxy.url,
        matrix_admin_token: admin.accessToken,
        uvs_sync_power_levels: true,
        uvs_timeout: 30,
      },
      // 200 connections at once: more than Prosody's default listen backlog.
      global: { network_settings: { tcp_backlog: 512 } },
      extraConfig: `log = { { levels = { min = "info" }, to = "file", filename = ${JSON.stringify(logFile)} } }`,
    });
    const token = (openid) => matrixToken({ iss: APP_ID, openid, roomId, serverName: hs.serverName, name: 'bench' });

    // Warm-up in another room (whoami, connections), not counted.
    const warm = await connect(
      server.wsUrl(jitsiRoomOf(warmRoom), matrixToken({ iss: APP_ID, openid: openids[0], roomId: warmRoom, serverName: hs.serverName })),
      { timeout: LOGIN_TIMEOUT_MS },
    );
    await stopAll(warm);

    const reads = () => proxy.count((r) => r.kind === 'state' && r.roomId === roomId);
    const userinfo = () => proxy.count((r) => r.kind === 'userinfo');

    // Burst A: members.
    let [r0, u0] = [reads(), userinfo()];
    const a = await burst(server, roomId, openids.map(token));
    clients.push(...a.clients);
    const aReads = reads() - r0;
    const aUserinfo = userinfo() - u0;
    await stopAll(...a.clients);
    clients.length = 0;

    // Burst B: random OpenID tokens.
    [r0, u0] = [reads(), userinfo()];
    const randoms = Array.from({ length: USERS }, () => `bench${crypto.randomBytes(18).toString('hex')}`);
    const b = await burst(server, roomId, randoms.map(token));
    clients.push(...b.clients);
    const bReads = reads() - r0;
    const bUserinfo = userinfo() - u0;

    const refusedText = (x) => Object.entries(x.refused).map(([k, v]) => `${k} ${v}`).join(', ') || 'none';
    const failedText = (x) => (x.failed.length ? `; ${x.failed.length} failed otherwise (first: ${x.failed[0]})` : '');
    const met = (n, target) => (n <= target ? 'met' : 'NOT met');
    const rows = [
      '| case | room state reads | target | userinfo requests | logins ok | refused | wall s |',
      '|---|---:|---|---:|---:|---|---:|',
      `| A. ${USERS} members of one room at once | ${aReads} | <= ${TARGET_MEMBER_READS}: ${met(aReads, TARGET_MEMBER_READS)} | ${aUserinfo} | ${a.ok} | ${refusedText(a)} | ${(a.wall / 1000).toFixed(2)} |`,
      `| B. ${USERS} random OpenID tokens at once | ${bReads} | ${TARGET_RANDOM_READS}: ${met(bReads, TARGET_RANDOM_READS)} | ${bUserinfo} | ${b.ok} | ${refusedText(b)} | ${(b.wall / 1000).toFixed(2)} |`,
    ];
    console.log(
      `A. ${USERS} members at once: room state reads ${aReads} (target <= ${TARGET_MEMBER_READS}: ${met(aReads, TARGET_MEMBER_READS)}), ` +
        `userinfo ${aUserinfo}, logins ok ${a.ok}, refused ${refusedText(a)}${failedText(a)}, wall ${(a.wall / 1000).toFixed(2)} s`,
    );
    console.log(
      `B. ${USERS} random OpenID tokens at once: room state reads ${bReads} (target ${TARGET_RANDOM_READS}: ${met(bReads, TARGET_RANDOM_READS)}), ` +
        `userinfo ${bUserinfo}, logins ok ${b.ok}, refused ${refusedText(b)}${failedText(b)}, wall ${(b.wall / 1000).toFixed(2)} s`,
    );
    console.log(`Prosody log: REQUEST_COMPLETE ${JSON.stringify(codes(logFile))} (the warm-up login included)`);
    const note =
      `Prosody ${process.env.PROSODY_BIN || 'prosody'}, direct mode with matrix_state_ttl 5 and matrix_cache_ttl 60 (defaults), ` +
      `uvs_timeout 30; ${os.cpus().length} CPUs; command: node --experimental-websocket examples/bench_direct.mjs (make bench).`;
    console.log(note);
    const text = `${rows.join('\n')}\n\nRequests counted by a proxy in front of a real Synapse; load average ${load} at the start. ${note}`;
    const written = writeSection('## Direct mode: homeserver requests per room (make bench)', text);
    if (written) console.log(`(written to ${written})`);
  } finally {
    await stopAll(...clients).catch(() => {});
    if (server) await server.stop();
    if (proxy) await proxy.stop();
    if (hs) await hs.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(`bench_direct: FAILED: ${err?.stack || err}`);
    process.exit(1);
  },
);
