// Soak: one Prosody (hybrid host: app_secret + our UVS test server, with
// token_security_ondemand and the test lobby on the MUC) and many mixed
// login cycles over plain WebSocket XMPP, SOAK_CONCURRENCY at a time.
// Prints Prosody's RSS, open fds and threads at the start, the middle and
// the end, the count of each outcome and the cycles per second; fails on
// any unexpected outcome, a Lua traceback in the log, or fds/threads that
// did not come back down once every client left.
//
//   make soak            (node --experimental-websocket tests/soak/soak.mjs)
//   SOAK_CYCLES=10000 SOAK_CONCURRENCY=20 SOAK_SECONDS=600 SOAK_UVS_LATENCY_MS=5
//   SOAK_LOG_LEVEL=info  (debug: Prosody logs every stanza, much slower)
//   PROSODY_BIN=...      (e.g. build/prosody13/prosody)
//   SOAK_KINDS=std_good,garbage   only these cycle kinds
//   SOAK_C2S_TIMEOUT=5   Prosody's c2s_timeout (see below)
//
// Cycle kinds (in a fixed rotation of 10):
//   std_good      standard token (HS256, app_secret) login, join, leave (about one
//                 in 4 with lobby=true in its context.room, so lobbies come and go)
//   std_bad       standard token signed with the wrong key       -> not-authorized
//   mx_good       Matrix token, UVS member, login, join, leave
//   mx_nonmember  Matrix token, UVS user not in the room         -> not-authorized
//   garbage       a token that is no JWT                          -> not-authorized
//   bad_utf8_room Matrix token, room name with invalid UTF-8     -> refused

import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { tryConnect } from '../e2e/lib/client.js';
import { now, sign } from '../e2e/lib/jwt.js';
import { offendingEntries } from '../e2e/lib/log_check.js';
import { jitsiRoomOf, matrixToken, requestCompleteCodes, roomJidOfMatrix } from '../e2e/lib/matrix.js';
import { MUC_DOMAIN, REPO_ROOT, startProsody } from '../e2e/lib/prosody.js';
import { startUvs } from '../e2e/lib/uvs_server.js';
import { envNumber } from '../bench/common.mjs';

const num = envNumber;
const CYCLES = Math.floor(num('SOAK_CYCLES', 10000));
const CONCURRENCY = Math.max(1, Math.floor(num('SOAK_CONCURRENCY', 20)));
const MAX_SECONDS = Math.min(600, num('SOAK_SECONDS', 600));
const UVS_LATENCY_MS = num('SOAK_UVS_LATENCY_MS', 5);
const LOG_LEVEL = process.env.SOAK_LOG_LEVEL || 'info';
// Prosody 0.12/13 mod_c2s keeps every connection's session reachable from a
// c2s_timeout timer (default 300 s), closed or not: the Lua heap grows with
// the connection rate for the first 5 minutes. A small value shows the rest.
const C2S_TIMEOUT = process.env.SOAK_C2S_TIMEOUT ? num('SOAK_C2S_TIMEOUT', 300) : undefined;
const OP_TIMEOUT_MS = 15000;

const APP_ID = 'soak-app';
const APP_SECRET = `soak-secret-${crypto.randomBytes(16).toString('hex')}`;
const WRONG_SECRET = `soak-wrong-${crypto.randomBytes(16).toString('hex')}`;
const UVS_TOKEN = `soak-uvs-${crypto.randomBytes(16).toString('hex')}`;

const ALL_KINDS = [
  'std_good',
  'mx_good',
  'std_bad',
  'std_good',
  'mx_nonmember',
  'mx_good',
  'garbage',
  'std_good',
  'bad_utf8_room',
  'mx_good',
];
// SOAK_KINDS=std_good,garbage keeps only those kinds (to find what a figure comes from).
const ROTATION = process.env.SOAK_KINDS ? ALL_KINDS.filter((k) => process.env.SOAK_KINDS.split(',').includes(k)) : ALL_KINDS;
if (ROTATION.length === 0) throw new Error(`SOAK_KINDS=${process.env.SOAK_KINDS} names no cycle kind`);
// What each kind must end with: "joined" or "refused:<SASL condition>".
const EXPECTED = {
  std_good: ['joined'],
  mx_good: ['joined'],
  std_bad: ['refused:not-authorized'],
  mx_nonmember: ['refused:not-authorized'],
  garbage: ['refused:not-authorized'],
  bad_utf8_room: ['refused:bad-request', 'refused:not-allowed'],
};

// --- Prosody process figures (Linux /proc) ---------------------------------
/** TCP sockets by inode: { local port, remote port, listening } from /proc/net/tcp{,6}. */
function tcpSockets() {
  const out = new Map();
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = fs.readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 10) continue;
      const port = (addr) => parseInt(addr.split(':')[1], 16);
      out.set(cols[9], { local: port(cols[1]), remote: port(cols[2]), listening: cols[3] === '0A' });
    }
  }
  return out;
}
let tcpCache = null;
function socketKind(inode, ports) {
  const t = tcpCache?.get(inode);
  if (!t) return 'socket(other)';
  if (t.listening) return 'tcp listening';
  if (t.remote === ports.uvs) return 'tcp to UVS';
  if (t.local === ports.http) return 'tcp from clients';
  return 'tcp other';
}

function procStats(pid, ports = {}) {
  tcpCache = tcpSockets();
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssKb = Number(/^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1] ?? NaN);
  const fdKinds = {};
  const fds = fs.readdirSync(`/proc/${pid}/fd`);
  for (const fd of fds) {
    let target = 'gone';
    try {
      target = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      /* closed meanwhile */
    }
    let kind = target.startsWith('/') ? 'file' : target.replace(/:.*$/, '').replace(/^anon_inode$/, target);
    if (kind === 'socket') kind = socketKind(target.slice('socket:['.length, -1), ports);
    fdKinds[kind] = (fdKinds[kind] || 0) + 1;
  }
  return {
    rssMiB: rssKb / 1024,
    fds: fds.length,
    fdKinds,
    threads: fs.readdirSync(`/proc/${pid}/task`).length,
  };
}
const fmtStats = (s) =>
  `RSS ${s.rssMiB.toFixed(1)} MiB, ${s.fds} open fds (${Object.entries(s.fdKinds)
    .sort()
    .map(([k, n]) => `${k} ${n}`)
    .join(', ')}), ${s.threads} threads`;

/** Lua heap (KB, after a full GC with `collect`) and live MUC rooms, from mod_test_reload. */
async function luaMemory(server, collect = false) {
  try {
    const res = await fetch(`${server.httpUrl}/test_reload/memory${collect ? '?collect=1' : ''}`, { signal: AbortSignal.timeout(5000) });
    return await res.json();
  } catch (err) {
    return { error: String(err) };
  }
}
const fmtMemory = (m) =>
  m.error
    ? `Lua heap: ${m.error}`
    : `Lua heap ${(m.lua_kb / 1024).toFixed(1)} MiB${m.lua_kb_after_gc !== undefined ? ` (${(m.lua_kb_after_gc / 1024).toFixed(1)} MiB after a full GC)` : ''}, live rooms ${JSON.stringify(m.rooms)}`;

// --- cycles ----------------------------------------------------------------
let seq = 0;
const unique = (p) => `${p}-${process.pid}-${(seq += 1)}-${crypto.randomBytes(4).toString('hex')}`;

function standardToken(room, key, roomCtx) {
  const t = now();
  const context = { user: { name: 'soak user' } };
  if (roomCtx) context.room = roomCtx;
  return sign({ iss: APP_ID, aud: 'jitsi', sub: 'localhost', room, iat: t - 5, exp: t + 600, context }, { alg: 'HS256', key });
}

function matrixUser(uvs, { member = true } = {}) {
  const roomId = `!${unique('soak')}:example.org`;
  const openid = unique('openid');
  uvs.setUser(openid, { user_id: `@${openid.slice(-8)}:example.org`, rooms: member ? { [roomId]: 0 } : {} });
  return { roomId, openid, token: matrixToken({ iss: APP_ID, openid, roomId }) };
}

/** Log in, then (on success) join `roomJid` and leave. Resolves the outcome string. */
async function loginJoinLeave(url, roomJid, cleanup) {
  let res;
  try {
    res = await tryConnect(url, { timeout: OP_TIMEOUT_MS });
  } catch (err) {
    return `error:${String(err.message || err).split(':')[0]}`;
  }
  if (!res.ok) return `refused:${res.condition}`;
  const c = res.client;
  try {
    if (!roomJid) return 'logged_in';
    const joined = await c.joinMuc(roomJid, 'soak', { timeout: OP_TIMEOUT_MS });
    if (!joined.ok) return `join_refused:${joined.condition}`;
    await c.leaveMuc(roomJid, 'soak', { timeout: OP_TIMEOUT_MS });
    return 'joined';
  } catch (err) {
    return `error:${String(err.message || err).split(':')[0]}`;
  } finally {
    await c.stop();
    cleanup?.();
  }
}

async function runCycle(kind, server, uvs) {
  switch (kind) {
    case 'std_good': {
      const room = unique('std');
      const lobby = seq % 4 === 0;
      const token = standardToken(room, APP_SECRET, lobby ? { lobby: true } : undefined);
      return loginJoinLeave(server.wsUrl(room, token), `${room}@${MUC_DOMAIN}`);
    }
    case 'std_bad': {
      const room = unique('bad');
      return loginJoinLeave(server.wsUrl(room, standardToken(room, WRONG_SECRET)), null);
    }
    case 'mx_good': {
      const u = matrixUser(uvs);
      return loginJoinLeave(server.wsUrl(jitsiRoomOf(u.roomId), u.token), roomJidOfMatrix(u.roomId), () => uvs.removeUser(u.openid));
    }
    case 'mx_nonmember': {
      const u = matrixUser(uvs, { member: false });
      const out = await loginJoinLeave(server.wsUrl(jitsiRoomOf(u.roomId), u.token), null);
      uvs.removeUser(u.openid);
      return out;
    }
    case 'garbage': {
      const room = unique('garbage');
      return loginJoinLeave(server.wsUrl(room, `garbage.${crypto.randomBytes(24).toString('base64url')}`), null);
    }
    case 'bad_utf8_room': {
      const u = matrixUser(uvs);
      // Raw bytes the URL encoder would never produce: invalid UTF-8.
      const url = `${server.wsUrl(null, u.token)}&room=%FF%FE%C3%28soak`;
      const out = await loginJoinLeave(url, null);
      uvs.removeUser(u.openid);
      return out;
    }
    default:
      throw new Error(`unknown cycle kind ${kind}`);
  }
}

// --- main --------------------------------------------------------------------
async function main() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'soak-'));
  // Run a private copy of the native module: `make build` elsewhere copies
  // the new .so over build/lua/jitsi_security.so in place, and a process
  // that has the old one mapped dies of SIGBUS.
  if (!process.env.JITSI_SECURITY_CPATH) {
    const so = path.join(REPO_ROOT, 'build', 'lua', 'jitsi_security.so');
    if (!fs.existsSync(so)) throw new Error(`${so} is missing: run make build`);
    fs.copyFileSync(so, path.join(tmp, 'jitsi_security.so'));
    process.env.JITSI_SECURITY_CPATH = tmp;
  }
  const logFile = path.join(tmp, 'prosody.log');
  const uvs = await startUvs({ authToken: UVS_TOKEN });
  uvs.setBehaviour({ latencyMs: UVS_LATENCY_MS });
  let server;
  const failures = [];
  try {
    server = await startProsody({
      vhost: {
        authentication: 'matrix_user_verification',
        app_id: APP_ID,
        app_secret: APP_SECRET,
        uvs_base_url: uvs.url,
        uvs_auth_token: UVS_TOKEN,
        uvs_timeout: 5,
      },
      global: C2S_TIMEOUT === undefined ? {} : { c2s_timeout: C2S_TIMEOUT },
      mucModules: ['token_security_ondemand', 'test_lobby'],
      vhostModules: ['test_reload'], // GET /test_reload/memory: Lua heap and live rooms
      // The suite logs at debug; a soak at info, like a production server.
      extraConfig: `log = { { levels = { min = ${JSON.stringify(LOG_LEVEL)} }, to = "file", filename = ${JSON.stringify(logFile)} } }`,
    });
    const readLog = () => (fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : '');
    console.log(`soak: Prosody pid ${server.pid} (${process.env.PROSODY_BIN || 'prosody'}), log ${logFile} at ${LOG_LEVEL}`);
    console.log(`soak: ${CYCLES} cycles, concurrency ${CONCURRENCY}, at most ${MAX_SECONDS} s, UVS latency ${UVS_LATENCY_MS} ms, c2s_timeout ${C2S_TIMEOUT ?? "Prosody's default (300 s)"}`);
    const startupProblems = readLog()
      .split('\n')
      .filter((l) => /Error initializing module|Unable to load module|\terror\t/.test(l));
    if (startupProblems.length) throw new Error(`Prosody started with errors:\n${startupProblems.join('\n')}`);

    const ports = { uvs: uvs.port, http: server.httpPort };
    const stats = { start: procStats(server.pid, ports) };
    console.log(`start:  ${fmtStats(stats.start)}; ${fmtMemory(await luaMemory(server))}`);

    const outcomes = new Map(); // "kind outcome" -> count
    const unexpected = new Map();
    let next = 0;
    let done = 0;
    let timedOut = false;
    const started = performance.now();
    const deadline = started + MAX_SECONDS * 1000;
    const middle = Math.floor(CYCLES / 2);

    async function worker() {
      for (;;) {
        if (performance.now() > deadline) {
          timedOut = true;
          return;
        }
        if (server.exited()) throw new Error(`Prosody exited: ${JSON.stringify(server.exited())}`);
        const i = next;
        if (i >= CYCLES) return;
        next += 1;
        const kind = ROTATION[i % ROTATION.length];
        const outcome = await runCycle(kind, server, uvs);
        const key = `${kind} ${outcome}`;
        outcomes.set(key, (outcomes.get(key) || 0) + 1);
        if (!EXPECTED[kind].includes(outcome)) {
          unexpected.set(key, (unexpected.get(key) || 0) + 1);
          if (unexpected.size <= 5 && unexpected.get(key) === 1) console.log(`unexpected: cycle ${i} ${key}`);
        }
        done += 1;
        if (done === middle) {
          stats.middle = procStats(server.pid, ports);
          const mem = await luaMemory(server);
          console.log(`middle: ${fmtStats(stats.middle)}; ${fmtMemory(mem)} after ${middle} cycles (${CONCURRENCY} clients busy)`);
        }
        if (done % 1000 === 0) {
          const s = (performance.now() - started) / 1000;
          console.log(`  ${done} cycles in ${s.toFixed(1)} s (${(done / s).toFixed(1)}/s)`);
        }
      }
    }
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    const seconds = (performance.now() - started) / 1000;

    // Let the server close the last connections before the end figures.
    await new Promise((r) => setTimeout(r, 2000));
    stats.end = procStats(server.pid, ports);
    stats.middle ??= stats.end;
    console.log(`end:    ${fmtStats(stats.end)}; ${fmtMemory(await luaMemory(server))} (2 s after the last cycle, no client connected)`);
    const gc = await luaMemory(server, true);
    await new Promise((r) => setTimeout(r, 200));
    console.log(`        after a full Lua GC: ${fmtMemory(gc)}, RSS ${procStats(server.pid, ports).rssMiB.toFixed(1)} MiB`);

    console.log(`\n${done} cycles in ${seconds.toFixed(1)} s: ${(done / seconds).toFixed(1)} cycles/s${timedOut ? ` (stopped at the ${MAX_SECONDS} s limit)` : ''}`);
    console.log('outcomes:');
    for (const [key, n] of [...outcomes].sort()) {
      const [kind, outcome] = key.split(' ');
      console.log(`  ${kind.padEnd(14)} ${outcome.padEnd(32)} ${String(n).padStart(6)}${EXPECTED[kind].includes(outcome) ? '' : '  UNEXPECTED'}`);
    }
    const log = readLog();
    const codes = new Map();
    for (const c of requestCompleteCodes(log)) codes.set(c, (codes.get(c) || 0) + 1);
    console.log(`REQUEST_COMPLETE codes in the log: ${JSON.stringify(Object.fromEntries([...codes].sort()))}`);
    console.log(`UVS requests: ${uvs.requests.length}; Prosody log ${(log.length / 1e6).toFixed(1)} MB`);

    for (const [key, n] of unexpected) failures.push(`${n} x unexpected outcome: ${key}`);
    const bad = offendingEntries(log);
    if (bad.length) failures.push(`${bad.length} offending log entries, first:\n${bad[0].text}`);
    if (stats.end.threads > stats.start.threads) failures.push(`threads grew: ${stats.start.threads} -> ${stats.end.threads}`);
    // Idle keep-alive connections to UVS are a bounded pool (the native
    // HTTP client's); any other fd still open with no client connected is a leak.
    const notPool = (st) => st.fds - (st.fdKinds['tcp to UVS'] || 0);
    if (notPool(stats.end) > notPool(stats.start) + 5) {
      failures.push(`open fds (without the UVS pool) grew: ${notPool(stats.start)} -> ${notPool(stats.end)}`);
    }
    if (server.exited()) failures.push(`Prosody exited: ${JSON.stringify(server.exited())}`);
  } finally {
    const pid = server?.pid;
    await server?.stop(); // SIGTERM by pid, SIGKILL after 5 s
    await uvs.stop();
    if (pid) console.log(`Prosody pid ${pid} stopped`);
    if (!process.env.E2E_KEEP_TMP) fs.rmSync(tmp, { recursive: true, force: true });
  }
  if (failures.length) {
    console.error(`\nsoak FAILED:\n  ${failures.join('\n  ')}`);
    process.exitCode = 1;
  } else {
    console.log('\nsoak passed');
  }
}

main().catch((err) => {
  console.error(`soak FAILED: ${err.stack || err}`);
  process.exitCode = 1;
});
