// Start a real Prosody for a test: fresh temp dir, free loopback ports,
// generated config, foreground process killed by PID when the test is done
// (or, with `daemonize: true`, started with -D as `prosodyctl start` does:
// the server forks after loading the modules and is stopped by the PID in
// its pidfile).
//
//   const server = await startProsody({ vhost: { app_id: 'x' }, mucModules: ['token_security_ondemand'] });
//   server.wsUrl('room1', token)  // ws://127.0.0.1:PORT/xmpp-websocket?room=room1&token=...
//   await server.stop();

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { luaOptions, luaValue } from './lua.js';
import { recordSecret } from './secrets.js';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
// E2E_PLUGIN_PATHS (':'-separated) is searched first, e.g. to run the suite
// against plugins installed elsewhere.
export const PLUGIN_PATHS = [
  ...(process.env.E2E_PLUGIN_PATHS || '').split(':').filter(Boolean),
  path.join(REPO_ROOT, 'lua'),
  path.join(REPO_ROOT, 'tests', 'prosody'),
];

export const DOMAIN = 'localhost';
export const MUC_DOMAIN = 'conference.localhost';
export const LOBBY_DOMAIN = 'lobby.localhost';

const PROSODY_BIN = process.env.PROSODY_BIN || 'prosody';

/**
 * The version of the Prosody under test ("0.12.3", "13.0.1"), read from
 * prosody.version in its source dir (the launcher's CFG_SOURCEDIR); never by
 * running `prosody --version`, which starts a server.
 */
export function prosodyVersion() {
  let sourceDir = '/usr/lib/prosody';
  try {
    const launcher = fs.readFileSync(PROSODY_BIN.includes('/') ? PROSODY_BIN : '/usr/bin/prosody', 'utf8');
    const m = launcher.match(/^CFG_SOURCEDIR='([^']+)'/m);
    if (m) sourceDir = m[1];
  } catch {
    /* the default */
  }
  try {
    return fs.readFileSync(path.join(sourceDir, 'prosody.version'), 'utf8').trim();
  } catch {
    return 'unknown';
  }
}
const START_TIMEOUT_MS = 15000;
const STOP_TIMEOUT_MS = 5000;

/** LUA_CPATH_5_4 for the server: our build dir first, then Lua's defaults (";;"). */
export function luaCpath() {
  const override = process.env.JITSI_SECURITY_CPATH;
  if (override) {
    // Either a full cpath ("/x/?.so;;") or just the directory holding jitsi_security.so.
    return override.includes('?') ? override : `${path.join(override, '?.so')};;`;
  }
  return `${path.join(REPO_ROOT, 'build', 'lua', '?.so')};;`;
}

/** Free TCP ports on 127.0.0.1, all held open together so they are distinct. */
export async function freePorts(n) {
  const servers = [];
  try {
    for (let i = 0; i < n; i++) {
      const srv = net.createServer();
      await new Promise((resolve, reject) => {
        srv.once('error', reject);
        srv.listen(0, '127.0.0.1', resolve);
      });
      servers.push(srv);
    }
    return servers.map((s) => s.address().port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  }
}

// With E2E_LOG_DIR set, every server's log (and stdout/stderr) is copied
// there when it stops, with a .json beside it naming the test file and the
// log lines that test expects (`expectLog`); check_logs.js scans them after
// the suite (make test-e2e).
let savedLogs = 0;
function saveLog(dir, expectLog) {
  const into = process.env.E2E_LOG_DIR;
  if (!into) return;
  try {
    fs.mkdirSync(into, { recursive: true });
    savedLogs += 1;
    const testFile = path.basename(process.argv[1] || 'unknown');
    const base = path.join(into, `${testFile}-${process.pid}-${savedLogs}`);
    fs.writeFileSync(`${base}.log`, readOr(path.join(dir, 'prosody.log')));
    fs.writeFileSync(`${base}.stdout.log`, readOr(path.join(dir, 'stdout.log')));
    const meta = { testFile, prosody: PROSODY_BIN, expectLog: (expectLog || []).map((re) => re.source) };
    fs.writeFileSync(`${base}.json`, `${JSON.stringify(meta, null, 2)}\n`);
  } catch (err) {
    console.error(`could not save the prosody log of ${dir} in ${into}: ${err}`);
  }
}

// Every running server (child -> its temp dir and expected log lines), so
// that a crashing or interrupted test run still kills them and cleans up.
// A daemonized server is keyed by { pid } of its daemon (read from its
// pidfile), once known.
const live = new Map();
process.on('exit', () => {
  for (const [child, { dir, expectLog }] of live) {
    try {
      if (child.pid) process.kill(child.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
    saveLog(dir, expectLog);
    if (!process.env.E2E_KEEP_TMP) fs.rmSync(dir, { recursive: true, force: true });
  }
});
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => process.exit(130));
}

function section(title, body) {
  return body ? `${title}\n${body}\n` : `${title}\n`;
}

export function renderConfig(opts, dirs, ports) {
  const globalModules = unique([
    'saslauth',
    'disco',
    'ping',
    'websocket',
    'bosh',
    'http',
    ...(opts.globalModules || []),
  ]);
  const vhostModules = unique([...(opts.vhostModules || [])]);
  const mucModules = unique([...(opts.mucModules || [])]);
  const lobbyModules = unique([...(opts.lobbyModules || [])]);

  const global = {
    run_as_root: true,
    daemonize: false,
    pidfile: path.join(dirs.root, 'prosody.pid'),
    data_path: dirs.data,
    certificates: dirs.certs,
    plugin_paths: PLUGIN_PATHS,
    interfaces: ['127.0.0.1'],
    local_interfaces: ['127.0.0.1'],
    c2s_ports: [ports.c2s],
    c2s_interfaces: ['127.0.0.1'],
    c2s_direct_tls_ports: [],
    legacy_ssl_ports: [],
    s2s_ports: [],
    component_ports: [],
    http_ports: [ports.http],
    http_interfaces: ['127.0.0.1'],
    https_ports: [],
    https_interfaces: [],
    http_default_host: DOMAIN,
    modules_enabled: globalModules,
    modules_disabled: ['s2s'],
    consider_websocket_secure: true,
    consider_bosh_secure: true,
    c2s_require_encryption: false,
    cross_domain_websocket: true,
    storage: 'memory',
    ...(opts.global || {}),
  };

  const vhost = {
    authentication: 'matrix_user_verification',
    modules_enabled: vhostModules,
    ...(opts.vhost || {}),
  };
  const muc = {
    modules_enabled: mucModules,
    muc_room_locking: false,
    lobby_muc: LOBBY_DOMAIN,
    ...(opts.muc || {}),
  };
  const lobby = {
    modules_enabled: lobbyModules,
    muc_room_locking: false,
    ...(opts.lobby || {}),
  };

  return [
    '-- Generated by tests/e2e/lib/prosody.js; do not edit.',
    luaOptions(global),
    `log = ${luaValue([{ levels: { min: 'debug' }, to: 'file', filename: dirs.log }])}`,
    opts.extraConfig ? `\n-- extraConfig\n${opts.extraConfig}\n` : '',
    section(`VirtualHost ${luaValue(DOMAIN)}`, luaOptions(vhost, '    ')),
    section(`Component ${luaValue(MUC_DOMAIN)} "muc"`, luaOptions(muc, '    ')),
    section(`Component ${luaValue(LOBBY_DOMAIN)} "muc"`, luaOptions(lobby, '    ')),
  ].join('\n');
}

function unique(list) {
  return [...new Set(list)];
}

function readOr(file, fallback = '') {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return fallback;
  }
}

function tail(text, lines) {
  const all = text.split('\n');
  return all.slice(Math.max(0, all.length - lines - 1)).join('\n');
}

async function httpAnswers(port) {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(1000) });
    await res.arrayBuffer();
    return true;
  } catch {
    return false;
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Log lines that mean a module of the config did not load: the server would
// run, but without the behaviour under test.
const MODULE_ERROR = /Error initializing module|Unable to load module|Failed to load module|error loading module/i;

// Secret hygiene (lib/secrets.js): the value of every option whose name
// says it is a secret (app_secret, uvs_auth_token, matrix_admin_token,
// matrix_token_secret...) must never show up in a log.
// Options whose values are secrets (app_secret, uvs_auth_token,
// matrix_admin_token, matrix_token_secret...); the room door's
// token_verification_* options hold domains and flags, not secrets.
const SECRET_OPTION = /secret|token|password/i;
const NOT_SECRET_OPTION = /^(token_verification_|allow_empty_token$)/;
function recordConfigSecrets(opts) {
  for (const section of ['global', 'vhost', 'muc', 'lobby']) {
    for (const [name, value] of Object.entries(opts[section] || {})) {
      if (!SECRET_OPTION.test(name) || NOT_SECRET_OPTION.test(name)) continue;
      for (const v of Array.isArray(value) ? value : [value]) recordSecret(v);
    }
  }
}

/** What every started server offers a test, however it was started: ports, URLs, its log. */
function serverApi({ dir, configPath, c2s, http, logText, logTail }) {
  return {
    dir,
    configPath,
    c2sPort: c2s,
    httpPort: http,
    httpUrl: `http://127.0.0.1:${http}`,
    wsUrl(room, token, extra = {}) {
      const q = new URLSearchParams();
      if (room !== undefined && room !== null) q.set('room', room);
      if (token !== undefined && token !== null) q.set('token', token);
      for (const [k, v] of Object.entries(extra)) q.set(k, v);
      const qs = q.toString();
      return `ws://127.0.0.1:${http}/xmpp-websocket${qs ? `?${qs}` : ''}`;
    },
    logText,
    logTail,
    /** Log lines added since `mark` (a length returned by logMark()). */
    logMark: () => logText().length,
    logSince: (mark) => logText().slice(mark),
  };
}

/**
 * Start Prosody. Options:
 *   vhost, muc, lobby, global: option tables for those sections
 *   vhostModules, mucModules, lobbyModules, globalModules: modules_enabled
 *   extraConfig: Lua text appended to the global section
 *   env: extra environment for the server
 *   allowModuleErrors: don't fail when a module fails to load
 *   expectLog: RegExps of warn/error lines this test provokes on purpose
 *     (exempt from check_logs.js for this server only; keep them narrow)
 *   daemonize: start with -D (the server forks after loading its modules,
 *     as with `prosodyctl start` or Debian's init script); the daemon's PID
 *     is read from the pidfile and stop() kills that PID, pass or fail
 */
export async function startProsody(opts = {}) {
  recordConfigSecrets(opts);
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'e2e-prosody-'));
  const dirs = {
    root,
    data: path.join(root, 'data'),
    certs: path.join(root, 'certs'),
    log: path.join(root, 'prosody.log'),
    output: path.join(root, 'stdout.log'),
    config: path.join(root, 'prosody.cfg.lua'),
  };
  fs.mkdirSync(dirs.data);
  fs.mkdirSync(dirs.certs);
  const [c2s, http] = await freePorts(2);
  const ports = { c2s, http };
  fs.writeFileSync(dirs.config, renderConfig(opts, dirs, ports));

  if (opts.daemonize) return startDaemon(opts, dirs, ports);

  const out = fs.openSync(dirs.output, 'a');
  const child = spawn(PROSODY_BIN, ['--config', dirs.config, '-F'], {
    cwd: root,
    env: { ...process.env, LUA_CPATH_5_4: luaCpath(), ...(opts.env || {}) },
    stdio: ['ignore', out, out],
  });
  fs.closeSync(out);
  live.set(child, { dir: root, expectLog: opts.expectLog });

  let exited = null;
  const exitPromise = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      live.delete(child);
      resolve(exited);
    });
    child.once('error', (err) => {
      exited = { code: null, signal: null, error: err };
      live.delete(child);
      resolve(exited);
    });
  });

  const logText = () => readOr(dirs.log);
  const outputText = () => readOr(dirs.output);
  const logTail = (lines = 60) =>
    `--- prosody log (${dirs.log}), last ${lines} lines ---\n${tail(logText(), lines)}\n` +
    `--- prosody stdout/stderr ---\n${tail(outputText(), 20)}`;

  let stopped = false;
  async function stop() {
    if (stopped) return exitPromise;
    stopped = true;
    if (!exited) {
      try {
        process.kill(child.pid, 'SIGTERM');
      } catch {
        /* gone */
      }
      const timer = setTimeout(() => {
        try {
          process.kill(child.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }, STOP_TIMEOUT_MS);
      await exitPromise;
      clearTimeout(timer);
    }
    saveLog(root, opts.expectLog);
    if (!process.env.E2E_KEEP_TMP) fs.rmSync(root, { recursive: true, force: true });
    return exited;
  }

  const server = {
    pid: child.pid,
    ...serverApi({ dir: root, configPath: dirs.config, c2s, http, logText, logTail }),
    exited: () => exited,
    stop,
  };

  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (exited) {
      await stop();
      throw new Error(
        `prosody exited during startup (${JSON.stringify(exited)})\n` +
          `config:\n${readOr(dirs.config)}\n${logTail()}`,
      );
    }
    if (await httpAnswers(http)) break;
    if (Date.now() > deadline) {
      const msg = `prosody did not answer on http port ${http} within ${START_TIMEOUT_MS} ms\n${logTail()}`;
      await stop();
      throw new Error(msg);
    }
    await sleep(50);
  }

  if (!opts.allowModuleErrors) {
    const bad = logText()
      .split('\n')
      .filter((l) => MODULE_ERROR.test(l) || /\terror\t/.test(l));
    if (bad.length) {
      const msg = `prosody started with errors:\n${bad.join('\n')}\n${logTail(40)}`;
      await stop();
      throw new Error(msg);
    }
  }
  return server;
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === 'EPERM';
  }
}

/** startProsody({ daemonize: true, ... }): `prosody -D`, stopped by the PID of its pidfile. */
async function startDaemon(opts, dirs, ports) {
  const { c2s, http } = ports;
  const pidfile = path.join(dirs.root, 'prosody.pid');
  const out = fs.openSync(dirs.output, 'a');
  const launcher = spawn(PROSODY_BIN, ['--config', dirs.config, '-D'], {
    cwd: dirs.root,
    env: { ...process.env, LUA_CPATH_5_4: luaCpath(), ...(opts.env || {}) },
    stdio: ['ignore', out, out],
  });
  fs.closeSync(out);
  // Until the daemon's PID is known, the launcher is what the exit handler kills.
  const record = { pid: launcher.pid };
  live.set(record, { dir: dirs.root, expectLog: opts.expectLog });
  const launched = new Promise((resolve) => {
    launcher.once('exit', (code, signal) => resolve({ code, signal }));
    launcher.once('error', (error) => resolve({ code: null, signal: null, error }));
  });

  const logText = () => readOr(dirs.log);
  const outputText = () => readOr(dirs.output);
  const logTail = (lines = 60) =>
    `--- prosody log (${dirs.log}), last ${lines} lines ---\n${tail(logText(), lines)}\n` +
    `--- prosody stdout/stderr (before it detached) ---\n${tail(outputText(), 20)}`;

  let daemonPid = null;
  let stopped = false;
  async function stop() {
    if (stopped) return null;
    stopped = true;
    const pid = daemonPid || Number.parseInt(readOr(pidfile).trim(), 10) || null;
    for (const p of [pid, launcher.pid]) {
      if (!p || !alive(p)) continue;
      try {
        process.kill(p, 'SIGTERM');
      } catch {
        /* gone */
      }
      const deadline = Date.now() + STOP_TIMEOUT_MS;
      while (alive(p) && Date.now() < deadline) await sleep(50);
      if (alive(p)) {
        try {
          process.kill(p, 'SIGKILL');
        } catch {
          /* gone */
        }
        while (alive(p)) await sleep(20);
      }
    }
    live.delete(record);
    saveLog(dirs.root, opts.expectLog);
    if (!process.env.E2E_KEEP_TMP) fs.rmSync(dirs.root, { recursive: true, force: true });
    return { pid };
  }

  const server = {
    get pid() {
      return daemonPid;
    },
    daemonized: true,
    ...serverApi({ dir: dirs.root, configPath: dirs.config, c2s, http, logText, logTail }),
    exited: () => (daemonPid && !alive(daemonPid) ? { pid: daemonPid } : null),
    stop,
  };

  const fail = async (msg) => {
    await stop();
    throw new Error(`${msg}\nconfig:\n${readOr(dirs.config)}\n${logTail()}`);
  };
  const deadline = Date.now() + START_TIMEOUT_MS;
  // The launcher forks and exits 0 once the modules are loaded.
  const launch = await Promise.race([launched, sleep(START_TIMEOUT_MS).then(() => null)]);
  if (!launch || launch.code !== 0) await fail(`prosody -D did not detach cleanly (${JSON.stringify(launch)})`);
  for (;;) {
    const pid = Number.parseInt(readOr(pidfile).trim(), 10);
    if (pid && pid !== launcher.pid) {
      daemonPid = pid;
      record.pid = pid;
      break;
    }
    if (Date.now() > deadline) await fail(`prosody -D wrote no pidfile (${pidfile}) within ${START_TIMEOUT_MS} ms`);
    await sleep(50);
  }
  for (;;) {
    if (!alive(daemonPid)) await fail(`the daemon (pid ${daemonPid}) exited during startup`);
    if (await httpAnswers(http)) break;
    if (Date.now() > deadline) await fail(`the daemon did not answer on http port ${http} within ${START_TIMEOUT_MS} ms`);
    await sleep(50);
  }
  if (!opts.allowModuleErrors) {
    const bad = logText()
      .split('\n')
      .filter((l) => MODULE_ERROR.test(l) || /\terror\t/.test(l));
    if (bad.length) await fail(`prosody started with errors:\n${bad.join('\n')}`);
  }
  return server;
}
