// Matrix login burst benchmark (part of `make bench`): prints numbers,
// never asserts timings. A real Prosody with our plugins, our UVS test
// server and real XMPP clients over WebSocket (tests/e2e/lib).
//
//   node --experimental-websocket examples/bench_burst.mjs
//   (make bench runs it after the Rust micro-benchmarks)
//
// 1. Burst, slow UVS: BURST (200) Matrix logins of distinct users, each a
//    member of its own room, all started at once; UVS answers each after
//    UVS_LATENCY_MS (200). Wall time (first connect start to last login
//    done), login p50/p95, and the ping round trip (p50/p99) of an
//    unrelated client, logged in before, that pings every 10 ms during the
//    burst (open loop, from its own worker thread).
// 2. The same burst with a UVS that answers at once, on the same Prosody;
//    the difference of the walls is what waiting on UVS costs. Both bursts
//    run ROUNDS (3) times, alternating which goes first; walls are medians.
// 3. Cache: BURST logins of ONE user to ONE room with the same token, on a
//    second Prosody with every plugin option at its default, sequential
//    then (another user) all at once: how many UVS requests they made.
// Then a table on stdout, also written to BENCHMARKS.md under
// "## Matrix login burst (make bench)" (only that section is replaced).
//
// The UVS test server and the pinger run in worker threads, so the 200
// clients of the main thread delay neither UVS's answers nor the pings.
//
// Environment: BENCH_BURST (200), BENCH_ROUNDS (3), BENCH_UVS_LATENCY_MS
// (200), BENCH_UVS_MAX_IN_FLIGHT (unset: plugin default) for the burst's
// Prosody, BENCH_LOG_LEVEL (info), BENCH_TCP_BACKLOG (512),
// BENCH_KEEP_LOGS=1 (keep the Prosody logs), BENCH_NO_WRITE=1 (leave
// BENCHMARKS.md alone), PROSODY_BIN; BENCH_IMMEDIATE_NEXTTICK=1 is a
// diagnosis (see IMMEDIATE_TICK below), never written to BENCHMARKS.md.

import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

import { connect, withTimeout } from '../tests/e2e/lib/client.js';
import { now as nowSecs, sign } from '../tests/e2e/lib/jwt.js';
import { jitsiRoomOf, matrixToken, requestCompleteCodes, sleep, uniqueMatrixRoomId, uniqueOpenid } from '../tests/e2e/lib/matrix.js';
import { DOMAIN, PLUGIN_PATHS, REPO_ROOT, startProsody } from '../tests/e2e/lib/prosody.js';
import { startUvs } from '../tests/e2e/lib/uvs_server.js';
import { envNumber, writeSection } from '../tests/bench/common.mjs';

const num = envNumber;

const BURST = Math.max(1, Math.floor(num('BENCH_BURST', 200)));
const ROUNDS = Math.max(1, Math.floor(num('BENCH_ROUNDS', 3)));
const UVS_LATENCY_MS = num('BENCH_UVS_LATENCY_MS', 200);
const MAX_IN_FLIGHT = process.env.BENCH_UVS_MAX_IN_FLIGHT ? Math.floor(num('BENCH_UVS_MAX_IN_FLIGHT', 128)) : undefined;
const PING_EVERY_MS = 10;
const LOG_LEVEL = process.env.BENCH_LOG_LEVEL || 'info';
const TCP_BACKLOG = Math.floor(num('BENCH_TCP_BACKLOG', 512));
const LOGIN_TIMEOUT_MS = 30000;
const TARGET_WAIT_COST_S = 0.3;
const TARGET_PING_P99_MS = 20;
const APP_ID = 'bench-app';
const APP_SECRET = `bench-secret-${crypto.randomBytes(16).toString('hex')}`;
const SECTION = '## Matrix login burst (make bench)';

const nowAbs = () => performance.timeOrigin + performance.now(); // ~ Date.now(), sub-ms

// @xmpp/client as installed for the e2e suite (make deps-npm). The burst's
// clients are made here rather than with lib/client.js connect(), which
// keeps the library's 2 s limit per stream step: on a loaded 2-core machine
// 200 clients sharing the CPU with Prosody exceed it without anything being
// wrong. These get LOGIN_TIMEOUT_MS per step and stamp each step.
const { client: xmppClient } = await import(
  pathToFileURL(path.join(REPO_ROOT, 'tests', 'e2e', 'node_modules', '@xmpp', 'client', 'index.js')).href
);

// ---------------------------------------------------------------------------
// Worker threads.

/** Pinger: logs in, then pings every `everyMs` whatever is outstanding; reports [sentAt, rtt] samples. */
async function pingerThread() {
  const { url, everyMs } = workerData;
  const c = await connect(url, { timeout: LOGIN_TIMEOUT_MS });
  const samples = [];
  const failed = [];
  const outstanding = new Set();
  const timer = setInterval(() => {
    const at = nowAbs();
    const p = c
      .ping(DOMAIN, { timeout: 10000 })
      .then(
        (rtt) => samples.push([at, rtt]),
        () => failed.push(at),
      )
      .finally(() => outstanding.delete(p));
    outstanding.add(p);
  }, everyMs);
  parentPort.on('message', async (m) => {
    if (m !== 'stop') return;
    clearInterval(timer);
    await Promise.all([...outstanding]);
    await c.stop();
    parentPort.postMessage({ type: 'samples', samples, failed });
  });
  parentPort.postMessage({ type: 'ready' });
}

/** UVS: lib/uvs_server.js, driven by messages { id, op, arg }. */
async function uvsThread() {
  const uvs = await startUvs({ authToken: workerData.authToken });
  parentPort.on('message', async ({ id, op, arg }) => {
    let result;
    if (op === 'setUsers') for (const [token, spec] of arg) uvs.setUser(token, spec);
    else if (op === 'setBehaviour') uvs.setBehaviour(arg);
    else if (op === 'arrivals') {
      // [token, arrival (Date.now())] of every request for these OpenID tokens.
      const want = new Set(arg);
      result = uvs.requests.filter((r) => want.has(r.body?.token)).map((r) => [r.body.token, r.at]);
    } else if (op === 'stop') await uvs.stop();
    parentPort.postMessage({ id, result });
  });
  parentPort.postMessage({ type: 'ready', url: uvs.url });
}

function startWorker(data) {
  const worker = new Worker(new URL(import.meta.url), { workerData: data });
  let failure = null;
  worker.on('error', (err) => {
    failure = err;
  });
  const ready = new Promise((resolve, reject) => {
    worker.once('error', reject);
    worker.on('message', (m) => m?.type === 'ready' && resolve(m));
  });
  return { worker, ready, failed: () => failure };
}

async function startUvsWorker(authToken) {
  const { worker, ready } = startWorker({ role: 'uvs', authToken });
  const { url } = await ready;
  let seq = 0;
  const call = (op, arg) =>
    new Promise((resolve) => {
      const id = (seq += 1);
      const onMessage = (m) => {
        if (m?.id !== id) return;
        worker.off('message', onMessage);
        resolve(m.result);
      };
      worker.on('message', onMessage);
      worker.postMessage({ id, op, arg });
    });
  return {
    url,
    setUsers: (list) => call('setUsers', list),
    setBehaviour: (b) => call('setBehaviour', b),
    arrivals: (tokens) => call('arrivals', [...tokens]),
    async stop() {
      await call('stop');
      await worker.terminate();
    },
  };
}

async function startPinger(url) {
  const { worker, ready } = startWorker({ role: 'pinger', url, everyMs: PING_EVERY_MS });
  await ready;
  return {
    async stop() {
      const got = new Promise((resolve) => worker.on('message', (m) => m?.type === 'samples' && resolve(m)));
      worker.postMessage('stop');
      const out = await got;
      await worker.terminate();
      return out;
    },
  };
}

// ---------------------------------------------------------------------------
// Figures.
function pct(values, p) {
  if (!values.length) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}
const median = (values) => pct(values, 50);
const ms = (v) => (Number.isFinite(v) ? v.toFixed(0) : '-');
const ms1 = (v) => (Number.isFinite(v) ? v.toFixed(1) : '-');
const secs = (v) => (Number.isFinite(v) ? (v / 1000).toFixed(2) : '-');

/** Soft "Max open files" of a process (Linux). */
function fdLimit(pid = 'self') {
  try {
    const line = fs.readFileSync(`/proc/${pid}/limits`, 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
    return line.trim().split(/\s+/)[3];
  } catch {
    return '?';
  }
}

/** TcpExt ListenOverflows + ListenDrops of this network namespace (an accept queue was full). */
function listenDrops() {
  try {
    const lines = fs.readFileSync('/proc/net/netstat', 'utf8').split('\n').filter((l) => l.startsWith('TcpExt:'));
    const names = lines[0].split(/\s+/);
    const vals = lines[1].split(/\s+/);
    return Number(vals[names.indexOf('ListenOverflows')]) + Number(vals[names.indexOf('ListenDrops')]);
  } catch {
    return NaN;
  }
}

/**
 * Seconds so far of Prosody's and node's main threads (their event loops):
 * on a CPU, and runnable but waiting for one (/proc/<pid>/task/<pid>/schedstat).
 */
function cpuNow(pid) {
  const sched = (p) => {
    try {
      const [run, wait] = fs.readFileSync(`/proc/${p}/task/${p}/schedstat`, 'utf8').trim().split(/\s+/).map(Number);
      return [run / 1e9, wait / 1e9];
    } catch {
      return [NaN, NaN];
    }
  };
  const [prosodyCpu, prosodyWait] = sched(pid);
  const [nodeCpu, nodeWait] = sched(process.pid);
  return { prosodyCpu, prosodyWait, nodeCpu, nodeWait };
}

function machine() {
  let model = '?';
  try {
    model = /^model name\s*:\s*(.*)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '?';
  } catch {
    /* not Linux */
  }
  return `nproc ${os.availableParallelism?.() ?? os.cpus().length}, ${model}`;
}

// ---------------------------------------------------------------------------
// Logins.

/** `n` Matrix users, each a member of its own room, registered on UVS. */
async function matrixUsers(uvs, prefix, n) {
  const users = Array.from({ length: n }, () => {
    const roomId = uniqueMatrixRoomId(prefix);
    const openid = uniqueOpenid(`bench-${prefix}`);
    return { openid, roomId, room: jitsiRoomOf(roomId), token: matrixToken({ iss: APP_ID, openid, roomId }) };
  });
  await uvs.setUsers(users.map((u) => [u.openid, { user_id: `@${u.openid.slice(-10)}:example.org`, rooms: { [u.roomId]: 0 } }]));
  return users;
}

async function stopXmpp(xmpp) {
  try {
    await withTimeout(xmpp.stop(), 5000, 'xmpp.stop()');
  } catch {
    try {
      xmpp.socket?.socket?.close?.();
    } catch {
      /* gone */
    }
  }
}

/**
 * One login (SASL ANONYMOUS, the token in the URL): { ok, ms, start, end,
 * steps: { connect, open1, success, online } (absolute ms), xmpp, error }.
 * `success`: the server's SASL success arrived (the stream restarts).
 */
async function timedLogin(url) {
  const start = nowAbs();
  const steps = {};
  const xmpp = xmppClient({ service: url, domain: DOMAIN, timeout: LOGIN_TIMEOUT_MS });
  xmpp.reconnect.stop();
  xmpp.on('error', () => {});
  let opens = 0;
  xmpp.on('status', (status) => {
    const t = nowAbs();
    if (status === 'connect') steps.connect = t;
    else if (status === 'open' && (opens += 1) === 1) steps.open1 = t;
    else if (status === 'opening' && opens === 1 && !steps.success) steps.success = t;
    else if (status === 'online') steps.online = t;
  });
  try {
    await withTimeout(xmpp.start(), LOGIN_TIMEOUT_MS, 'login');
    const end = nowAbs();
    return { ok: true, ms: end - start, start, end, steps, xmpp };
  } catch (err) {
    const end = nowAbs();
    await stopXmpp(xmpp);
    return { ok: false, ms: end - start, start, end, steps, error: `${err?.name}: ${err?.condition || err?.message || err}` };
  }
}

const closeAll = (results) => Promise.all(results.filter((r) => r.xmpp).map((r) => stopXmpp(r.xmpp)));

function failures(results, label) {
  const bad = results.filter((r) => !r.ok);
  if (bad.length) console.log(`  ${label}: ${bad.length} failed logins: ${[...new Set(bad.map((r) => r.error))].slice(0, 3).join(' | ')}`);
}

/** Peak of UVS requests open at once (each from its arrival to arrival + latency). */
function uvsPeak(arrivals, latencyMs) {
  const ev = [];
  for (const at of arrivals) ev.push([at, 1], [at + Math.max(latencyMs, 1), -1]);
  ev.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let cur = 0;
  let peak = 0;
  for (const [, d] of ev) {
    cur += d;
    peak = Math.max(peak, cur);
  }
  return peak;
}

/** BURST standard (HS256, app_secret) tokens, each for its own room: decided at once, no UVS. */
function standardUsers(n) {
  return Array.from({ length: n }, () => {
    const room = `std${crypto.randomBytes(6).toString('hex')}`;
    const t = nowSecs();
    const claims = { iss: APP_ID, aud: 'jitsi', sub: 'localhost', room, iat: t - 5, exp: t + 600, context: { user: { name: 'bench' } } };
    return { openid: null, room, token: sign(claims, { alg: 'HS256', key: APP_SECRET }) };
  });
}

/**
 * BURST logins of distinct users started at once, then every client closed.
 * kind: slow (Matrix, UVS answers after UVS_LATENCY_MS), fast (Matrix, UVS
 * answers at once), std (standard tokens: no UVS, the baseline).
 */
async function burst(server, uvs, kind) {
  const latencyMs = kind === 'slow' ? UVS_LATENCY_MS : 0;
  await uvs.setBehaviour(latencyMs > 0 ? { latencyMs } : {});
  const users = kind === 'std' ? standardUsers(BURST) : await matrixUsers(uvs, kind, BURST);
  const urls = users.map((u) => server.wsUrl(u.room, u.token));
  const drops0 = listenDrops();
  const cpu0 = cpuNow(server.pid);
  const t0 = nowAbs();
  const results = await Promise.all(urls.map((url) => timedLogin(url)));
  const cpu1 = cpuNow(server.pid);
  const drops = listenDrops() - drops0;
  failures(results, kind);
  const tEnd = Math.max(...results.map((r) => r.end));
  await closeAll(results);
  const arrivals = await uvs.arrivals(users.map((u) => u.openid).filter(Boolean));
  const atOf = new Map(arrivals);
  results.forEach((r, i) => {
    r.uvsAt = atOf.get(users[i].openid);
  });
  const rel = arrivals.map(([, at]) => at - t0);
  return {
    latencyMs,
    t0,
    tEnd,
    wall: tEnd - t0,
    results,
    uvsRequests: arrivals.length,
    uvsPeak: uvsPeak(arrivals.map(([, at]) => at), latencyMs),
    uvsFirst: rel.length ? Math.min(...rel) : NaN,
    uvsLast: rel.length ? Math.max(...rel) : NaN,
    listenDrops: drops,
    cpu: Object.fromEntries(Object.keys(cpu0).map((k) => [k, cpu1[k] - cpu0[k]])),
  };
}

/** The rounds of one kind of burst, pooled. */
function pool(runs, latencyMs, samples, failed) {
  const all = runs.flatMap((r) => r.results);
  const ok = all.filter((r) => r.ok);
  const inWindow = (at) => runs.some((r) => at >= r.t0 && at <= r.tEnd);
  const rtts = samples.filter(([at]) => inWindow(at)).map(([, rtt]) => rtt);
  // Where a login's time goes (medians): WebSocket up, first stream open,
  // <auth> sent -> UVS asked, UVS answered -> SASL success, restart + bind.
  const withUvs = latencyMs === null ? ok : ok.filter((r) => r.uvsAt);
  const med = (f) => median(withUvs.map(f).filter(Number.isFinite));
  return {
    walls: runs.map((r) => r.wall),
    wall: median(runs.map((r) => r.wall)),
    ok: ok.length,
    n: all.length,
    p50: pct(ok.map((r) => r.ms), 50),
    p95: pct(ok.map((r) => r.ms), 95),
    ping: { p50: pct(rtts, 50), p99: pct(rtts, 99), max: Math.max(...rtts), n: rtts.length, lost: failed.filter(inWindow).length },
    uvsRequests: runs.map((r) => r.uvsRequests),
    uvsPeak: Math.max(...runs.map((r) => r.uvsPeak)),
    listenDrops: runs.reduce((a, r) => a + r.listenDrops, 0),
    cpu: Object.fromEntries(Object.keys(runs[0].cpu).map((k) => [k, median(runs.map((r) => r.cpu[k]))])),
    phases: {
      ws: med((r) => r.steps.connect - r.start),
      open: med((r) => r.steps.open1 - r.steps.connect),
      toUvs: med((r) => r.uvsAt - r.steps.open1),
      uvsToSuccess: med((r) => r.steps.success - r.uvsAt - (latencyMs || 0)),
      bind: med((r) => r.steps.online - r.steps.success),
    },
  };
}

/** BURST logins of one user, one room, one token: sequential (each closed at once) or all at once. */
async function cacheRun(server, uvs, mode) {
  const [u] = await matrixUsers(uvs, `cache-${mode}`, 1);
  const url = server.wsUrl(u.room, u.token);
  const t0 = nowAbs();
  let results;
  if (mode === 'sequential') {
    results = [];
    for (let i = 0; i < BURST; i++) {
      const r = await timedLogin(url);
      await closeAll([r]);
      results.push(r);
    }
  } else {
    results = await Promise.all(Array.from({ length: BURST }, () => timedLogin(url)));
  }
  const wall = Math.max(...results.map((r) => r.end)) - t0;
  await closeAll(results);
  failures(results, `cache ${mode}`);
  const ok = results.filter((r) => r.ok);
  return {
    wall,
    ok: ok.length,
    n: results.length,
    p50: pct(ok.map((r) => r.ms), 50),
    p95: pct(ok.map((r) => r.ms), 95),
    uvsRequests: (await uvs.arrivals([u.openid])).length,
  };
}

// ---------------------------------------------------------------------------
// Server-side stamps: a small Prosody module written to the run's temp dir
// (not part of the product) logs, for each c2s session, when its WebSocket
// session began, when SASL began checking its token, when the token was
// verified (after UVS), SASL success and resource bind; and every time
// Prosody's event loop runs a 10 ms timer more than 5 ms late.
const TIMING_MODULE = 'bench_timing';
const TIMING_LUA = `-- Generated by examples/bench_burst.mjs (benchmark only).
local now = require "util.time".now;
local function stamp(kind, session)
	if session and session.id then module:log("info", "BENCHT %s %s %.6f", kind, session.id, now()); end
end
module:hook_global("websocket-session", function (event) stamp("ws", event.session); end, 100);
module:hook_global("pre-jitsi-authentication-fetch-key", function (session) stamp("sasl", session); end, 100);
module:hook_global("jitsi-access-ban-check", function (session) stamp("verified", session); end, 100);
module:hook("authentication-success", function (event) stamp("success", event.session); end, 100);
module:hook("stream-features", function (event) stamp("features", event.origin); end, 100);
module:hook("resource-bind", function (event) stamp("bound", event.session); end, 100);
local last = now();
module:add_timer(0.01, function ()
	local t = now();
	local late = t - last - 0.01;
	last = t;
	if late > 0.005 then module:log("info", "BENCHLAG %.6f %.6f", t, late); end
	return 0.01;
end);
`;

// Diagnosis only (BENCH_IMMEDIATE_NEXTTICK=1): util.async's next_tick runs
// at once instead of in a 0 s timer (Prosody's default), which Prosody's
// loop runs only once no socket is ready. A login resumed after waiting on
// UVS leaves its session's runner "waiting" (and mod_c2s keeps its
// connection paused) until that tick.
const IMMEDIATE_TICK = Boolean(process.env.BENCH_IMMEDIATE_NEXTTICK);
const IMMEDIATE_TICK_LUA = `require "util.async".set_nexttick(function (f) f(); end);
module:log("warn", "benchmark diagnosis: util.async next_tick runs at once");
`;

/** { sessions: Map(id -> { ws, sasl, verified, success, bound } ms), lags: [[at ms, late ms]] } from a log. */
function parseStamps(logFile) {
  const sessions = new Map();
  const lags = [];
  for (const line of fs.readFileSync(logFile, 'utf8').split('\n')) {
    let m = /BENCHT (\w+) (\S+) ([\d.]+)/.exec(line);
    if (m) {
      if (!sessions.has(m[2])) sessions.set(m[2], {});
      sessions.get(m[2])[m[1]] = Number(m[3]) * 1000;
      continue;
    }
    m = /BENCHLAG ([\d.]+) ([\d.]+)/.exec(line);
    if (m) lags.push([Number(m[1]) * 1000, Number(m[2]) * 1000]);
  }
  return { sessions, lags };
}

/** Server-side medians for the sessions that began in `runs`' windows, and the loop's late timers there. */
function serverSide(stamps, runs, latencyMs) {
  const inWindow = (at) => runs.some((r) => at >= r.t0 && at <= r.tEnd);
  const ss = [...stamps.sessions.values()].filter((x) => inWindow(x.ws));
  const med = (f) => median(ss.map(f).filter(Number.isFinite));
  const lags = stamps.lags.filter(([at]) => inWindow(at)).map(([, late]) => late);
  return {
    n: ss.length,
    toSasl: med((x) => x.sasl - x.ws),
    uvsWait: med((x) => x.verified - x.sasl - latencyMs),
    uvsWaitP95: pct(ss.map((x) => x.verified - x.sasl - latencyMs).filter(Number.isFinite), 95),
    toBound: med((x) => x.bound - x.verified),
    successToRestart: med((x) => x.features - x.success),
    late: lags.length,
    lateMax: lags.length ? Math.max(...lags) : 0,
    lateSum: lags.reduce((a, b) => a + b, 0),
  };
}

// ---------------------------------------------------------------------------
async function startServer(uvs, uvsToken, logFile, vhostExtra, extra = {}) {
  const server = await startProsody({
    ...extra,
    vhost: {
      authentication: 'matrix_user_verification',
      app_id: APP_ID,
      uvs_base_url: uvs.url,
      uvs_auth_token: uvsToken,
      ...vhostExtra,
    },
    // 200 connections arrive at once: with Prosody's default listen
    // backlog (128) the kernel may drop SYNs, which are retried after 1 s.
    global: { network_settings: { tcp_backlog: TCP_BACKLOG }, ...(extra.global || {}) },
    // The e2e suite logs at debug; a benchmark at info, like production.
    extraConfig: `log = { { levels = { min = ${JSON.stringify(LOG_LEVEL)} }, to = "file", filename = ${JSON.stringify(logFile)} } }`,
  });
  const bad = fs
    .readFileSync(logFile, 'utf8')
    .split('\n')
    .filter((l) => /Error initializing module|Unable to load module|\terror\t/.test(l));
  if (bad.length) {
    await server.stop();
    throw new Error(`Prosody started with errors:\n${bad.join('\n')}`);
  }
  return server;
}

function alive(server, what) {
  const gone = server.exited();
  if (gone) throw new Error(`Prosody exited during ${what}: ${JSON.stringify(gone)}\n${server.logTail(20)}`);
}

function countCodes(logFile) {
  const counts = {};
  for (const code of requestCompleteCodes(fs.readFileSync(logFile, 'utf8'))) counts[code] = (counts[code] || 0) + 1;
  return Object.entries(counts)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
}


async function main() {
  const command = `node --experimental-websocket examples/bench_burst.mjs`;
  const loadAtStart = os.loadavg().map((l) => l.toFixed(1)).join(' ');
  const uvsToken = `bench-uvs-${crypto.randomBytes(16).toString('hex')}`;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-burst-'));
  // Prosody loads a private copy of the module: a `make build` elsewhere
  // rewrites build/lua/jitsi_security.so in place, which crashes a Prosody
  // that has it mapped.
  if (!process.env.JITSI_SECURITY_CPATH) {
    const so = path.join(REPO_ROOT, 'build', 'lua', 'jitsi_security.so');
    if (!fs.existsSync(so)) throw new Error(`${so} is missing: run \`make build\``);
    fs.copyFileSync(so, path.join(tmp, 'jitsi_security.so'));
    process.env.JITSI_SECURITY_CPATH = tmp;
  }
  const uvs = await startUvsWorker(uvsToken);
  const servers = [];
  try {
    const inFlight = MAX_IN_FLIGHT === undefined ? 'default' : MAX_IN_FLIGHT;
    console.log(
      `== Matrix login burst: ${BURST} logins x ${ROUNDS} rounds, UVS ${UVS_LATENCY_MS} ms vs 0 ms, ` +
        `uvs_max_in_flight ${inFlight}, Prosody log at ${LOG_LEVEL}, load average ${loadAtStart}` +
        `${IMMEDIATE_TICK ? ' [diagnosis: util.async next_tick at once]' : ''}`,
    );

    // --- Prosody 1: the bursts (uvs_timeout 10) ------------------------------
    const burstLog = path.join(tmp, 'burst.log');
    fs.writeFileSync(path.join(tmp, `mod_${TIMING_MODULE}.lua`), TIMING_LUA + (IMMEDIATE_TICK ? IMMEDIATE_TICK_LUA : ''));
    const server = await startServer(
      uvs,
      uvsToken,
      burstLog,
      {
        app_secret: APP_SECRET, // for the baseline burst of standard tokens
        uvs_timeout: 10,
        ...(MAX_IN_FLIGHT !== undefined ? { uvs_max_in_flight: MAX_IN_FLIGHT } : {}),
      },
      { global: { plugin_paths: [...PLUGIN_PATHS, tmp] }, vhostModules: [TIMING_MODULE] },
    );
    servers.push(server);
    console.log(`  fd limits: node ${fdLimit()}, prosody ${fdLimit(server.pid)} (about ${2 * BURST + 50} needed by each)`);

    const [pingUser] = await matrixUsers(uvs, 'pinger', 1);
    const pinger = await startPinger(server.wsUrl(pingUser.room, pingUser.token));
    const idleFrom = nowAbs();
    await sleep(1000);
    const idleTo = nowAbs();

    // Warm up node and Prosody (not measured).
    const warmUsers = await matrixUsers(uvs, 'warm', 20);
    await closeAll(await Promise.all(warmUsers.map((u) => timedLogin(server.wsUrl(u.room, u.token)))));
    alive(server, 'the warm-up');
    await sleep(500);

    // Each round runs every kind once, in a rotating order.
    const KINDS = ['slow', 'fast', 'std'];
    const NAMES = { slow: `UVS ${UVS_LATENCY_MS} ms`, fast: 'UVS 0 ms', std: 'standard JWT' };
    const runs = { slow: [], fast: [], std: [] };
    for (let round = 0; round < ROUNDS; round++) {
      const order = KINDS.map((_, i) => KINDS[(i + round) % KINDS.length]);
      for (const kind of order) {
        const b = await burst(server, uvs, kind);
        alive(server, `a burst (${kind})`);
        runs[kind].push(b);
        const ok = b.results.filter((r) => r.ok).length;
        console.log(
          `  round ${round + 1}, ${NAMES[kind]}: wall ${secs(b.wall)} s, ${ok}/${BURST} ok, ` +
            (kind === 'std' ? '' : `UVS asked +${ms(b.uvsFirst)}..+${ms(b.uvsLast)} ms, peak ${b.uvsPeak} open; `) +
            `Prosody main thread on CPU ${b.cpu.prosodyCpu.toFixed(2)} s, waiting for a CPU ${b.cpu.prosodyWait.toFixed(2)} s`,
        );
        await sleep(1000);
      }
    }
    const { samples, failed } = await pinger.stop();
    const idleRtts = samples.filter(([at]) => at >= idleFrom && at <= idleTo).map(([, rtt]) => rtt);
    const idle = { p50: pct(idleRtts, 50), p99: pct(idleRtts, 99) };
    const slow = pool(runs.slow, UVS_LATENCY_MS, samples, failed);
    const fast = pool(runs.fast, 0, samples, failed);
    const std = pool(runs.std, null, samples, failed);
    const pooled = { slow, fast, std };
    for (const kind of KINDS) {
      const [name, b] = [NAMES[kind], pooled[kind]];
      const p = b.phases;
      console.log(
        `  ${name}: pings in the bursts ${b.ping.n} (lost ${b.ping.lost}, max ${ms1(b.ping.max)} ms); listen queue overflows ${b.listenDrops}; ` +
          `node main thread on CPU ${b.cpu.nodeCpu.toFixed(2)} s, waiting ${b.cpu.nodeWait.toFixed(2)} s (medians per burst)\n` +
          `    login step medians: WebSocket up ${ms(p.ws)} ms, stream open ${ms(p.open)} ms, auth -> UVS asked ${ms(p.toUvs)} ms, ` +
          `UVS answered -> SASL success ${ms(p.uvsToSuccess)} ms, restart + bind ${ms(p.bind)} ms`,
      );
    }
    console.log(`  burst Prosody log: REQUEST_COMPLETE ${countCodes(burstLog)}`);
    const stamps = parseStamps(burstLog);
    for (const kind of KINDS) {
      const b = pooled[kind];
      b.server = serverSide(stamps, runs[kind], kind === 'slow' ? UVS_LATENCY_MS : 0);
      const x = b.server;
      console.log(
        `  ${NAMES[kind]}, Prosody's stamps (${x.n} sessions): WebSocket session -> SASL ${ms(x.toSasl)} ms, ` +
          `SASL -> verified${kind === 'slow' ? ' minus UVS latency' : ''} p50 ${ms(x.uvsWait)} ms p95 ${ms(x.uvsWaitP95)} ms, ` +
          `verified -> bound ${ms(x.toBound)} ms (SASL success -> client's stream restart ${ms(x.successToRestart)} ms); ` +
          `event loop never idle (10 ms timer late) for up to ${ms(x.lateMax)} ms, ${x.late} times > 5 ms`,
      );
    }

    // --- Prosody 2: the cache (every plugin option at its default) ----------
    const cacheLog = path.join(tmp, 'cache.log');
    const server2 = await startServer(uvs, uvsToken, cacheLog, {});
    servers.push(server2);
    await uvs.setBehaviour(UVS_LATENCY_MS > 0 ? { latencyMs: UVS_LATENCY_MS } : {});
    const seq = await cacheRun(server2, uvs, 'sequential');
    const conc = await cacheRun(server2, uvs, 'concurrent');
    alive(server2, 'the cache runs');
    console.log(`  cache Prosody log: REQUEST_COMPLETE ${countCodes(cacheLog)}`);

    // --- table ------------------------------------------------------------------
    const cost = slow.wall - fast.wall;
    const pingP99 = Math.max(slow.ping.p99, fast.ping.p99);
    const row = (cells) => `| ${cells.join(' | ')} |`;
    const cpuCell = (b) => `${b.cpu.prosodyCpu.toFixed(2)} / ${b.cpu.prosodyWait.toFixed(2)}`;
    const table = [
      row(['case', 'logins ok', 'wall s', 'login p50 ms', 'login p95 ms', 'ping p50 ms', 'ping p99 ms', 'UVS requests', 'Prosody CPU / CPU wait s']),
      row(['---', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:']),
      row(['idle (pinger only, 1 s)', '-', '-', '-', '-', ms1(idle.p50), ms1(idle.p99), '-', '-']),
      row([`burst ${BURST}, UVS ${UVS_LATENCY_MS} ms`, `${slow.ok}/${slow.n}`, secs(slow.wall), ms(slow.p50), ms(slow.p95), ms1(slow.ping.p50), ms1(slow.ping.p99), `${slow.uvsRequests.join('+')} (peak ${slow.uvsPeak} open)`, cpuCell(slow)]),
      row([`burst ${BURST}, UVS 0 ms`, `${fast.ok}/${fast.n}`, secs(fast.wall), ms(fast.p50), ms(fast.p95), ms1(fast.ping.p50), ms1(fast.ping.p99), fast.uvsRequests.join('+'), cpuCell(fast)]),
      row([`burst ${BURST}, standard JWT (no UVS)`, `${std.ok}/${std.n}`, secs(std.wall), ms(std.p50), ms(std.p95), ms1(std.ping.p50), ms1(std.ping.p99), '-', cpuCell(std)]),
      row([`cache: 1 user x ${BURST}, sequential`, `${seq.ok}/${seq.n}`, secs(seq.wall), ms(seq.p50), ms(seq.p95), '-', '-', String(seq.uvsRequests), '-']),
      row([`cache: 1 user x ${BURST}, concurrent`, `${conc.ok}/${conc.n}`, secs(conc.wall), ms(conc.p50), ms(conc.p95), '-', '-', String(conc.uvsRequests), '-']),
      '',
      `Bursts: ${ROUNDS} rounds of each (walls ${slow.walls.map(secs).join(', ')} s / ${fast.walls.map(secs).join(', ')} s / ` +
        `${std.walls.map(secs).join(', ')} s; the table gives the median wall, logins and pings pooled, Prosody's main thread: median per burst). UVS wait cost = wall ${UVS_LATENCY_MS} ms - wall 0 ms = ` +
        `${(cost / 1000).toFixed(2)} s, target <= ${TARGET_WAIT_COST_S} s: ${cost / 1000 <= TARGET_WAIT_COST_S ? 'met' : 'not met'}; ` +
        `ping p99 during the bursts ${ms1(pingP99)} ms, target <= ${TARGET_PING_P99_MS} ms: ${pingP99 <= TARGET_PING_P99_MS ? 'met' : 'not met'}.`,
      `Client's view (medians, UVS ${UVS_LATENCY_MS} ms / 0 ms / standard JWT): WebSocket up ${ms(slow.phases.ws)} / ${ms(fast.phases.ws)} / ` +
        `${ms(std.phases.ws)} ms, auth -> UVS asked ${ms(slow.phases.toUvs)} / ${ms(fast.phases.toUvs)} ms, UVS answered -> SASL success ` +
        `${ms(slow.phases.uvsToSuccess)} / ${ms(fast.phases.uvsToSuccess)} ms, SASL success -> bound ${ms(slow.phases.bind)} / ${ms(fast.phases.bind)} / ${ms(std.phases.bind)} ms.`,
      `Prosody's view (medians, UVS ${UVS_LATENCY_MS} ms / 0 ms / standard JWT): WebSocket session -> SASL ${ms(slow.server.toSasl)} / ` +
        `${ms(fast.server.toSasl)} / ${ms(std.server.toSasl)} ms, SASL -> verified (minus UVS latency) ${ms(slow.server.uvsWait)} / ` +
        `${ms(fast.server.uvsWait)} / ${ms(std.server.uvsWait)} ms (p95 ${ms(slow.server.uvsWaitP95)} / ${ms(fast.server.uvsWaitP95)} / ` +
        `${ms(std.server.uvsWaitP95)}), verified -> bound ${ms(slow.server.toBound)} / ${ms(fast.server.toBound)} / ${ms(std.server.toBound)} ms; ` +
        `event loop never idle for up to ${ms(slow.server.lateMax)} / ${ms(fast.server.lateMax)} / ${ms(std.server.lateMax)} ms.`,
      `Prosody ${process.env.PROSODY_BIN || 'prosody'}: uvs_timeout 10 and uvs_max_in_flight ${inFlight} for the bursts, plugin defaults for the cache ` +
        `(uvs_max_in_flight 256, uvs_queue_limit 1024, matrix_cache_ttl 60 s, UVS answering after ${UVS_LATENCY_MS} ms); ` +
        `network_settings.tcp_backlog ${TCP_BACKLOG}; log level ${LOG_LEVEL}${IMMEDIATE_TICK ? '; DIAGNOSIS: util.async next_tick at once' : ''}.`,
      `Machine: ${machine()}, load average ${loadAtStart} at the start; ${new Date().toISOString().slice(0, 10)}; command: ${command} (make bench).`,
    ].join('\n');
    console.log(`\n${table}`);
    if (!process.env.BENCH_NO_WRITE && !IMMEDIATE_TICK) console.log(`\n(written to ${writeSection(SECTION, table)})`);
  } finally {
    for (const s of servers) await s.stop();
    await uvs.stop();
    if (process.env.BENCH_KEEP_LOGS) console.log(`Prosody logs kept in ${tmp}`);
    else fs.rmSync(tmp, { recursive: true, force: true });
  }
}

if (isMainThread) {
  main().then(
    () => process.exit(0),
    (err) => {
      console.error(err?.stack || err);
      process.exit(1);
    },
  );
} else if (workerData?.role === 'pinger') {
  pingerThread().catch((err) => {
    console.error(`pinger: ${err?.stack || err}`);
    process.exit(1);
  });
} else if (workerData?.role === 'uvs') {
  uvsThread().catch((err) => {
    console.error(`uvs: ${err?.stack || err}`);
    process.exit(1);
  });
}
