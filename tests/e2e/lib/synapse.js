// Start a real Synapse homeserver for a test: fresh temp dir, sqlite, one
// plain-HTTP listener on 127.0.0.1 (client + federation + openid resources),
// shared-secret registration, no rate limits, no federation to the outside.
// Install it first with `make deps-synapse` (tests/synapse/install.sh).
//
//   const hs = await startSynapse();
//   const admin = await hs.registerUser('admin', { admin: true });
//   const alice = await hs.registerUser('alice');
//   const roomId = await hs.createRoom(alice.accessToken, { roomVersion: '11' });
//   const openid = await hs.openidToken(alice.accessToken, alice.userId);
//   await hs.openidUserinfo(openid)          // { sub: '@alice:<serverName>' }
//   await hs.adminRoomState(admin.accessToken, roomId)   // { state: [events] }
//   await hs.purgeRoom(admin.accessToken, roomId)        // the room is gone (404 M_NOT_FOUND)
//   hs.pause(); hs.resume(); await hs.kill(); await hs.stop();
//
// Every helper throws on a non-2xx answer (err.status, err.body); use
// hs.request(...) for the raw { status, body, text }.

import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';

import { REPO_ROOT, freePorts } from './prosody.js';

export const SYNAPSE_VENV = process.env.SYNAPSE_VENV || path.join(REPO_ROOT, 'build', 'synapse-venv');
export const SYNAPSE_PYTHON = process.env.SYNAPSE_PYTHON || path.join(SYNAPSE_VENV, 'bin', 'python');

const START_TIMEOUT_MS = 60000;
const STOP_TIMEOUT_MS = 5000;
const REQUEST_TIMEOUT_MS = 10000;

/** True when the Synapse venv exists (tests/synapse/install.sh ran). */
export function synapseAvailable() {
  return fs.existsSync(SYNAPSE_PYTHON);
}

// Every running Synapse (child -> its temp dir): killed when the test process
// exits, whatever the outcome. (prosody.js turns SIGINT/SIGTERM into exit.)
// `pending` holds temp dirs whose server is not spawned yet.
const live = new Map();
const pending = new Set();
process.on('exit', () => {
  for (const [child, dir] of live) {
    if (child.pid > 0) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    if (!process.env.E2E_KEEP_TMP) fs.rmSync(dir, { recursive: true, force: true });
  }
  if (!process.env.E2E_KEEP_TMP) for (const dir of pending) fs.rmSync(dir, { recursive: true, force: true });
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

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

/** Run a command to completion; resolves { code, output }. */
function run(cmd, args, { cwd, input, env } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, output }));
    child.stdin.end(input ?? '');
  });
}

const LIMIT = { per_second: 100000, burst_count: 100000 };

/** Config keys that switch the rate limiters off (in effect) for tests. */
export const NO_RATE_LIMITS = {
  rc_message: LIMIT,
  rc_registration: LIMIT,
  rc_registration_token_validity: LIMIT,
  rc_login: { address: LIMIT, account: LIMIT, failed_attempts: LIMIT },
  rc_admin_redaction: LIMIT,
  rc_joins: { local: LIMIT, remote: LIMIT },
  rc_joins_per_room: LIMIT,
  rc_key_requests: LIMIT,
  rc_3pid_validation: LIMIT,
  rc_invites: { per_room: LIMIT, per_user: LIMIT, per_issuer: LIMIT },
  rc_third_party_invite: LIMIT,
  rc_media_create: LIMIT,
  rc_presence: { per_user: LIMIT },
  rc_delayed_event_mgmt: LIMIT,
  rc_room_creation: LIMIT,
  rc_reports: LIMIT,
  rc_user_directory: LIMIT,
  rc_profile: LIMIT,
  rc_federation: { window_size: 1000, sleep_limit: 100000, sleep_delay: 500, reject_limit: 100000, concurrent: 1000 },
};

function logConfig(file) {
  // JSON is YAML. A plain FileHandler: lines are on disk as soon as logged.
  return JSON.stringify(
    {
      version: 1,
      formatters: {
        precise: { format: '%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - %(request)s - %(message)s' },
      },
      handlers: { file: { class: 'logging.FileHandler', formatter: 'precise', filename: file, encoding: 'utf8' } },
      loggers: { 'synapse.storage.SQL': { level: 'INFO' } },
      root: { level: 'INFO', handlers: ['file'] },
      disable_existing_loggers: false,
    },
    null,
    2,
  );
}

// Merge the JSON overrides (stdin) into the generated YAML config, in place.
const REWRITE_PY = `
import json, sys, yaml
path = sys.argv[1]
with open(path) as f:
    cfg = yaml.safe_load(f)
cfg.update(json.load(sys.stdin))
cfg = {k: v for k, v in cfg.items() if v is not None}
with open(path, "w") as f:
    yaml.safe_dump(cfg, f, default_flow_style=False, sort_keys=True)
`;

/**
 * Start Synapse. Options:
 *   serverName  the homeserver's server_name (default synapse-<hex>.localhost)
 *   config      top-level config keys merged over ours (null removes a key)
 *   env         extra environment for the server
 * Resolves with the server object described at the top of this file.
 */
export async function startSynapse(opts = {}) {
  if (!synapseAvailable()) {
    throw new Error(`Synapse is not installed (${SYNAPSE_PYTHON} missing): run \`make deps-synapse\` in ${REPO_ROOT}`);
  }
  const started = Date.now();
  const serverName = opts.serverName || `synapse-${crypto.randomBytes(3).toString('hex')}.localhost`;
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'e2e-synapse-'));
  const files = {
    config: path.join(root, 'homeserver.yaml'),
    logConfig: path.join(root, 'log.config.yaml'),
    log: path.join(root, 'homeserver.log'),
    output: path.join(root, 'stdout.log'),
    db: path.join(root, 'homeserver.db'),
    media: path.join(root, 'media_store'),
    pid: path.join(root, 'homeserver.pid'),
  };
  pending.add(root);
  const cleanupPlaceholder = () => pending.delete(root);

  const gen = await run(
    SYNAPSE_PYTHON,
    [
      '-m', 'synapse.app.homeserver',
      '--server-name', serverName,
      '--config-path', files.config,
      '--data-directory', root,
      '--generate-config',
      '--report-stats=no',
    ],
    { cwd: root },
  );
  if (gen.code !== 0) {
    cleanupPlaceholder();
    if (!process.env.E2E_KEEP_TMP) fs.rmSync(root, { recursive: true, force: true });
    throw new Error(`synapse --generate-config failed (exit ${gen.code}):\n${gen.output}`);
  }

  const [port] = await freePorts(1);
  const sharedSecret = crypto.randomBytes(24).toString('hex');
  fs.writeFileSync(files.logConfig, logConfig(files.log));
  const overrides = {
    server_name: serverName,
    pid_file: files.pid,
    listeners: [
      {
        port,
        bind_addresses: ['127.0.0.1'],
        type: 'http',
        tls: false,
        x_forwarded: false,
        resources: [{ names: ['client', 'federation', 'openid'], compress: false }],
      },
    ],
    database: { name: 'sqlite3', args: { database: files.db } },
    log_config: files.logConfig,
    media_store_path: files.media,
    registration_shared_secret: sharedSecret,
    enable_registration: false,
    report_stats: false,
    suppress_key_server_warning: true,
    trusted_key_servers: [],
    federation_domain_whitelist: [],
    presence: { enabled: false },
    enable_metrics: false,
    ...NO_RATE_LIMITS,
    ...(opts.config || {}),
  };
  const rw = await run(SYNAPSE_PYTHON, ['-c', REWRITE_PY, files.config], { input: JSON.stringify(overrides) });
  if (rw.code !== 0) {
    cleanupPlaceholder();
    if (!process.env.E2E_KEEP_TMP) fs.rmSync(root, { recursive: true, force: true });
    throw new Error(`rewriting ${files.config} failed (exit ${rw.code}):\n${rw.output}`);
  }
  const generatedMs = Date.now() - started;

  const out = fs.openSync(files.output, 'a');
  const child = spawn(SYNAPSE_PYTHON, ['-m', 'synapse.app.homeserver', '--config-path', files.config], {
    cwd: root,
    env: { ...process.env, ...(opts.env || {}) },
    stdio: ['ignore', out, out],
  });
  fs.closeSync(out);
  cleanupPlaceholder();
  if (child.pid) live.set(child, root);

  let exited = null;
  const exitPromise = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      live.delete(child);
      resolve(exited);
    });
    child.once('error', (err) => {
      exited = { code: null, signal: null, error: String(err) };
      live.delete(child);
      resolve(exited);
    });
  });

  const url = `http://127.0.0.1:${port}`;
  const logText = () => readOr(files.log);
  const logTail = (lines = 60) =>
    `--- synapse log (${files.log}), last ${lines} lines ---\n${tail(logText(), lines)}\n` +
    `--- synapse stdout/stderr ---\n${tail(readOr(files.output), 30)}`;

  let paused = false;
  const signal = (sig) => {
    try {
      process.kill(child.pid, sig);
      return true;
    } catch {
      return false;
    }
  };

  /** SIGKILL, as a crashed or unplugged homeserver; the temp dir stays until stop(). */
  async function kill() {
    if (!exited) signal('SIGKILL');
    paused = false;
    return exitPromise;
  }

  let stopped = false;
  async function stop() {
    if (stopped) return exitPromise;
    stopped = true;
    if (!exited) {
      if (paused) {
        signal('SIGKILL'); // a stopped process would not act on SIGTERM
      } else {
        signal('SIGTERM');
      }
      const timer = setTimeout(() => signal('SIGKILL'), STOP_TIMEOUT_MS);
      await exitPromise;
      clearTimeout(timer);
    }
    if (!process.env.E2E_KEEP_TMP) fs.rmSync(root, { recursive: true, force: true });
    return exited;
  }

  /**
   * Raw HTTP call: resolves { status, body (parsed JSON or null), text }.
   * `path` starts with "/"; `token` goes into Authorization: Bearer.
   */
  async function request(method, urlPath, { token, body, query, timeoutMs = REQUEST_TIMEOUT_MS } = {}) {
    const qs = query ? `?${new URLSearchParams(query)}` : '';
    const headers = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${url}${urlPath}${qs}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    let parsed = null;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      parsed = null;
    }
    return { status: res.status, body: parsed, text };
  }

  /** Like request(), but throws unless 2xx; resolves the parsed body. */
  async function call(method, urlPath, opts2 = {}) {
    const res = await request(method, urlPath, opts2);
    if (res.status < 200 || res.status > 299) {
      const err = new Error(`synapse ${method} ${urlPath}: HTTP ${res.status}: ${res.text}`);
      err.status = res.status;
      err.body = res.body;
      throw err;
    }
    return res.body;
  }

  const enc = encodeURIComponent;
  const C = '/_matrix/client/v3';

  const server = {
    url,
    port,
    serverName,
    pid: child.pid,
    dir: root,
    configPath: files.config,
    logPath: files.log,
    sharedSecret,
    /** Milliseconds spent: { generate (config+keys), total (until /health answered) }. */
    startupMs: null,
    logText,
    logTail,
    logMark: () => logText().length,
    logSince: (mark) => logText().slice(mark),
    exited: () => exited,
    isPaused: () => paused,
    request,
    call,
    userId: (localpart) => `@${localpart}:${serverName}`,

    /** Shared-secret registration (/_synapse/admin/v1/register, HMAC-SHA1 over nonce/user/password/admin). */
    async registerUser(localpart, { admin = false, password, displayname } = {}) {
      const pw = password || crypto.randomBytes(12).toString('hex');
      const { nonce } = await call('GET', '/_synapse/admin/v1/register');
      const mac = crypto
        .createHmac('sha1', sharedSecret)
        .update(`${nonce}\0${localpart}\0${pw}\0${admin ? 'admin' : 'notadmin'}`)
        .digest('hex');
      const body = { nonce, username: localpart, password: pw, admin: !!admin, mac };
      if (displayname !== undefined) body.displayname = displayname;
      const ans = await call('POST', '/_synapse/admin/v1/register', { body });
      return { userId: ans.user_id, accessToken: ans.access_token, deviceId: ans.device_id, password: pw };
    },

    /** Password login: a new device and access token for an existing user. */
    async login(localpart, password) {
      const ans = await call('POST', `${C}/login`, {
        body: { type: 'm.login.password', identifier: { type: 'm.id.user', user: localpart }, password },
      });
      return { userId: ans.user_id, accessToken: ans.access_token, deviceId: ans.device_id };
    },

    whoami: (token) => call('GET', `${C}/account/whoami`, { token }),

    /**
     * Create a room; resolves its id. `roomVersion` ('11', '12', ...) maps to
     * room_version; every other option is passed to /createRoom as is
     * (preset, invite, power_level_content_override, name, initial_state, ...).
     */
    async createRoom(token, { roomVersion, ...rest } = {}) {
      const body = { ...rest };
      if (roomVersion !== undefined) body.room_version = String(roomVersion);
      const ans = await call('POST', `${C}/createRoom`, { token, body });
      return ans.room_id;
    },

    join: (token, roomId) => call('POST', `${C}/rooms/${enc(roomId)}/join`, { token, body: {} }),
    leave: (token, roomId) => call('POST', `${C}/rooms/${enc(roomId)}/leave`, { token, body: {} }),
    invite: (token, roomId, userId) => call('POST', `${C}/rooms/${enc(roomId)}/invite`, { token, body: { user_id: userId } }),
    kick: (token, roomId, userId, reason) =>
      call('POST', `${C}/rooms/${enc(roomId)}/kick`, { token, body: { user_id: userId, ...(reason ? { reason } : {}) } }),
    ban: (token, roomId, userId, reason) =>
      call('POST', `${C}/rooms/${enc(roomId)}/ban`, { token, body: { user_id: userId, ...(reason ? { reason } : {}) } }),
    unban: (token, roomId, userId) => call('POST', `${C}/rooms/${enc(roomId)}/unban`, { token, body: { user_id: userId } }),

    /** One state event's content (client API, as a member). */
    getState: (token, roomId, type, stateKey = '') =>
      call('GET', `${C}/rooms/${enc(roomId)}/state/${enc(type)}/${enc(stateKey)}`, { token }),
    /** Send a state event; resolves { event_id }. */
    putState: (token, roomId, type, content, stateKey = '') =>
      call('PUT', `${C}/rooms/${enc(roomId)}/state/${enc(type)}/${enc(stateKey)}`, { token, body: content }),

    /** Read-modify-write m.room.power_levels: users[userId] = level (null removes the entry). */
    async setPowerLevel(token, roomId, userId, level) {
      const pl = await server.getState(token, roomId, 'm.room.power_levels');
      const users = { ...(pl.users || {}) };
      if (level === null || level === undefined) delete users[userId];
      else users[userId] = level;
      return server.putState(token, roomId, 'm.room.power_levels', { ...pl, users });
    },

    /** A Matrix OpenID token for the user (the string Element puts in context.matrix.token). */
    async openidToken(token, userId) {
      const ans = await call('POST', `${C}/user/${enc(userId)}/openid/request_token`, { token, body: {} });
      return ans.access_token;
    },
    /** The full request_token answer ({ access_token, token_type, matrix_server_name, expires_in }). */
    openidTokenFull: (token, userId) => call('POST', `${C}/user/${enc(userId)}/openid/request_token`, { token, body: {} }),
    /** GET /_matrix/federation/v1/openid/userinfo; throws on 401 (unknown token). */
    openidUserinfo: (openid) => call('GET', '/_matrix/federation/v1/openid/userinfo', { query: { access_token: openid } }),

    /** Admin API: { state: [events] } of a room. */
    adminRoomState: (adminToken, roomId) => call('GET', `/_synapse/admin/v1/rooms/${enc(roomId)}/state`, { token: adminToken }),
    /** Admin API: { members: [userIds], total }. */
    adminRoomMembers: (adminToken, roomId) =>
      call('GET', `/_synapse/admin/v1/rooms/${enc(roomId)}/members`, { token: adminToken }),
    /** Admin API: room details. */
    adminRoom: (adminToken, roomId) => call('GET', `/_synapse/admin/v1/rooms/${enc(roomId)}`, { token: adminToken }),
    /**
     * Admin API: shut a room down and purge it from the database
     * (`DELETE /_synapse/admin/v1/rooms/{roomId}` with `{"purge": true}`,
     * which answers once the purge is done); resolves Synapse's answer
     * ({ kicked_users, failed_to_kick_users, local_aliases, new_room_id }).
     * Afterwards the admin API answers 404 M_NOT_FOUND for the room.
     */
    purgeRoom: (adminToken, roomId) =>
      call('DELETE', `/_synapse/admin/v1/rooms/${enc(roomId)}`, { token: adminToken, body: { purge: true }, timeoutMs: 60000 }),

    /** SIGSTOP: the port still accepts connections, nothing answers (a hung homeserver). */
    pause() {
      if (!exited && signal('SIGSTOP')) paused = true;
    },
    /** SIGCONT after pause(). */
    resume() {
      if (!exited && signal('SIGCONT')) paused = false;
    },
    kill,
    stop,
  };

  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (exited) {
      const msg = `synapse exited during startup (${JSON.stringify(exited)})\n${logTail()}`;
      await stop();
      throw new Error(msg);
    }
    try {
      const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.status === 200) break;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) {
      const msg = `synapse did not answer ${url}/health within ${START_TIMEOUT_MS} ms\n${logTail()}`;
      await stop();
      throw new Error(msg);
    }
    await sleep(100);
  }
  server.startupMs = { generate: generatedMs, total: Date.now() - started };
  return server;
}

// ---------------------------------------------------------------------------
// A counting HTTP proxy in front of Synapse: hand its url to Prosody as
// matrix_homeserver_url, and every request Prosody makes is seen and
// attributed (no dependence on Synapse's log format or flushing).

/**
 * Forward every request to `target` (http://127.0.0.1:PORT) and record it:
 * { method, path (no query), kind, openid (userinfo's access_token), roomId
 * (state), authorization, url }. `requests` only grows.
 */
export async function startCountingProxy(target) {
  const upstream = new URL(target);
  const agent = new http.Agent({ keepAlive: true });
  const requests = [];
  const server = http.createServer((req, res) => {
    const u = new URL(req.url, 'http://proxy');
    let kind = 'other';
    let roomId = null;
    const st = /^\/_synapse\/admin\/v1\/rooms\/([^/]+)\/state$/.exec(u.pathname);
    if (u.pathname === '/_matrix/federation/v1/openid/userinfo') kind = 'userinfo';
    else if (st) {
      kind = 'state';
      roomId = decodeURIComponent(st[1]);
    } else if (u.pathname === '/_matrix/client/v3/account/whoami') kind = 'whoami';
    requests.push({
      method: req.method,
      path: u.pathname,
      kind,
      openid: u.searchParams.get('access_token'),
      roomId,
      authorization: req.headers.authorization || null,
      url: req.url,
    });
    const up = http.request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers, agent },
      (ur) => {
        res.writeHead(ur.statusCode, ur.headers);
        ur.pipe(res);
      },
    );
    up.on('error', (err) => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`proxy: ${err.message}`);
    });
    req.pipe(up);
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    requests,
    count: (pred) => requests.filter(pred).length,
    async stop() {
      server.closeAllConnections?.();
      await new Promise((r) => server.close(r));
      agent.destroy();
    },
  };
}
