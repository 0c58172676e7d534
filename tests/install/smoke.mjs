// Smoke test of the INSTALLED package: each example config (as shipped in
// /usr/share/doc/jitsi-prosody-security/examples/) runs on the system's
// Prosody, adapted to loopback, and real XMPP clients log in over WebSocket.
//
//   node --experimental-websocket tests/install/smoke.mjs EXAMPLE.cfg.lua...
//
// What is tested is the example as written: it is Included verbatim by a
// generated wrapper config that only overrides what a test machine needs
// (free 127.0.0.1 ports, a temp dir, foreground, no s2s, no jicofo) and
// leaves out the jitsi-meet-prosody modules that are not installed here
// (never ours: a module of this package that is missing fails the test).
// jitsi-meet's lobby modules are replaced by the test-only stand-in
// tests/prosody/mod_test_lobby.lua. The example's own plugin_paths are kept
// (ours must be first: docs/migrating.md), with tests/prosody appended;
// jitsi_security.so comes only from Lua's default cpath (LUA_CPATH* are
// removed from the server's environment).
//
// Every example must give at least one login scenario (a VirtualHost with
// our auth provider and app_secret or uvs_base_url): an example this script
// cannot read fails instead of registering nothing.
//
// Environment:
//   SMOKE_PID_DIR    write each server's PID there (run.sh kills leftovers)
//   SMOKE_KEEP_TMP   keep the temp dirs (configs, logs) for a look
//   PROSODY_BIN      the server (default: prosody from PATH)
//   SMOKE_PLUGIN_DIR where the package put the plugins (default below)
//   SMOKE_SO_PATH    where the package put jitsi_security.so (default: Lua
//                    5.4's cpath of the host's multiarch tuple)

import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { connect, stopAll, tryConnect } from '../e2e/lib/client.js';
import { now, sign } from '../e2e/lib/jwt.js';
import { jitsiRoomOf, matrixToken, uniqueMatrixRoomId, uniqueOpenid } from '../e2e/lib/matrix.js';
import { freePorts, REPO_ROOT } from '../e2e/lib/prosody.js';
import { startUvs } from '../e2e/lib/uvs_server.js';

const PROSODY_BIN = process.env.PROSODY_BIN || 'prosody';
const PLUGIN_DIR = (process.env.SMOKE_PLUGIN_DIR || '/usr/share/jitsi-prosody-security/prosody-plugins').replace(/\/+$/, '');
const SO_PATH =
  process.env.SMOKE_SO_PATH ||
  `/usr/lib/${execFileSync('dpkg-architecture', ['-qDEB_HOST_MULTIARCH'], { encoding: 'utf8' }).trim()}/lua/5.4/jitsi_security.so`;
const PROSODY_MODULES = '/usr/lib/prosody/modules';
const TEST_MODULES = path.join(REPO_ROOT, 'tests', 'prosody');
const START_TIMEOUT_MS = 15000;
const STOP_TIMEOUT_MS = 5000;

const OUR_AUTH = new Set(['matrix_user_verification', 'hybrid_matrix_token']);
const JITSI_LOBBY_MODULES = new Set(['muc_lobby_rooms', 'persistent_lobby']);
// The modules this package ships (lua/mod_*.lua): never left out.
const OUR_MODULES = new Set(
  fs
    .readdirSync(path.join(REPO_ROOT, 'lua'))
    .filter((f) => /^mod_.*\.lua$/.test(f))
    .map((f) => f.slice(4, -4)),
);

// ---------------------------------------------------------------------------
// Reading an example: sections, simple options, modules_enabled lists.
// Enough Lua for configs written like jitsi-meet's (one option per line).

/** Lua source without `--` comments (the examples have no "--" inside strings). */
function stripComments(text) {
  return text
    .replace(/--\[(=*)\[[\s\S]*?\]\1\]/g, '')
    .split('\n')
    .map((line) => line.replace(/--.*$/, ''))
    .join('\n');
}

function luaStrings(text) {
  return [...text.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => m[1]);
}

/** Parse one section's body: { options: {name: raw}, modules: [..] | null }. */
function parseBody(body) {
  const options = {};
  let modules = null;
  const mods = body.match(/^\s*modules_enabled\s*=\s*\{([^}]*)\}/m);
  if (mods) modules = luaStrings(mods[1]);
  for (const m of body.matchAll(/^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.+?)\s*;?\s*$/gm)) {
    options[m[1]] = m[2];
  }
  return { options, modules };
}

/** A string option's value, or an array option's strings, or a boolean. */
function optString(section, name) {
  const raw = section.options[name];
  if (raw === undefined) return undefined;
  const s = luaStrings(raw);
  return s.length ? s[0] : undefined;
}
function optStrings(section, name) {
  const raw = section.options[name];
  return raw === undefined ? undefined : luaStrings(raw);
}
function optBool(section, name) {
  const raw = section.options[name];
  return raw === undefined ? undefined : raw.trim() === 'true';
}

export function parseExample(file) {
  const text = stripComments(fs.readFileSync(file, 'utf8'));
  const header = /^\s*(VirtualHost|Component)\s+"([^"]+)"(?:\s+"([^"]+)")?\s*$/gm;
  const marks = [...text.matchAll(header)];
  const sections = [];
  const globalEnd = marks.length ? marks[0].index : text.length;
  const global = { kind: 'global', name: '*', ...parseBody(text.slice(0, globalEnd)) };
  marks.forEach((m, i) => {
    const end = i + 1 < marks.length ? marks[i + 1].index : text.length;
    sections.push({
      kind: m[1],
      name: m[2],
      module: m[1] === 'Component' ? m[3] || 'component' : null,
      ...parseBody(text.slice(m.index + m[0].length, end)),
    });
  });
  return { file, global, sections };
}

// ---------------------------------------------------------------------------
// What a test machine has.

function moduleAvailable(name, pluginPaths) {
  for (const dir of [...pluginPaths, PROSODY_MODULES]) {
    for (const rel of [`mod_${name}.lua`, path.join(`mod_${name}`, `mod_${name}.lua`), path.join(name, `mod_${name}.lua`)]) {
      if (fs.existsSync(path.join(dir, rel))) return true;
    }
  }
  return false;
}

const lua = (s) => JSON.stringify(String(s)); // ASCII test values only
const luaList = (list) => `{ ${list.map(lua).join(', ')} }`;

/**
 * The plan for one example: which scenarios apply, and the wrapper config.
 */
export function planFor(example) {
  const vhost = example.sections.find((s) => s.kind === 'VirtualHost' && OUR_AUTH.has(optString(s, 'authentication')));
  assert.ok(vhost, `${example.file}: no VirtualHost with authentication = "matrix_user_verification" or "hybrid_matrix_token"`);
  const domain = vhost.name;
  const mucName = optString(vhost, 'main_muc') || `conference.${domain}`;
  const muc = example.sections.find((s) => s.kind === 'Component' && s.name === mucName);
  assert.ok(muc, `${example.file}: no Component "${mucName}" (main_muc)`);
  const mucModules = muc.modules || [];
  const vhostModules = vhost.modules || [];
  const lobbyMuc = optString(vhost, 'lobby_muc') || `lobby.${domain}`;

  const standard = optString(vhost, 'app_secret') !== undefined;
  const matrix = optString(vhost, 'uvs_base_url') !== undefined;
  const appId = optString(vhost, 'app_id');
  assert.ok(
    standard || matrix,
    `${example.file}: VirtualHost "${domain}" has neither app_secret nor uvs_base_url that this script can read: no login scenario to run`,
  );
  const pluginPaths = (optStrings(example.global, 'plugin_paths') || []).map((p) => p.replace(/\/+$/, ''));
  assert.equal(pluginPaths[0], PLUGIN_DIR, `${example.file}: plugin_paths must list ${PLUGIN_DIR}/ first (got ${JSON.stringify(pluginPaths)})`);
  return {
    domain,
    pluginPaths,
    mucName,
    lobbyMuc,
    vhost,
    muc,
    appId,
    standard,
    appSecret: optString(vhost, 'app_secret'),
    matrix,
    matrixIssuer: (optStrings(vhost, 'uvs_issuer') || [appId])[0],
    uvsAuthToken: optString(vhost, 'uvs_auth_token'),
    powerSync: optBool(vhost, 'uvs_sync_power_levels') === true && mucModules.includes('matrix_power_sync'),
    security: mucModules.includes('token_security_ondemand'),
    lobby: [...vhostModules, ...mucModules].some((m) => JITSI_LOBBY_MODULES.has(m)),
  };
}

function wrapperConfig(example, plan, dirs, ports, uvsUrl) {
  const pluginPaths = [...plan.pluginPaths, TEST_MODULES];
  const out = [
    '-- Generated by tests/install/smoke.mjs: the example, verbatim, then what',
    '-- a test machine needs instead (loopback, temp dir, no jicofo).',
    `Include ${lua(example.file)}`,
    '',
    'run_as_root = true',
    'daemonize = false',
    `pidfile = ${lua(path.join(dirs.root, 'prosody.pid'))}`,
    `data_path = ${lua(dirs.data)}`,
    `certificates = ${lua(dirs.certs)}`,
    `plugin_paths = ${luaList(pluginPaths)}`,
    'interfaces = { "127.0.0.1" }',
    'local_interfaces = { "127.0.0.1" }',
    `c2s_ports = { ${ports.c2s} }`,
    'c2s_interfaces = { "127.0.0.1" }',
    'c2s_direct_tls_ports = { }',
    'legacy_ssl_ports = { }',
    's2s_ports = { }',
    'component_ports = { }',
    `http_ports = { ${ports.http} }`,
    'http_interfaces = { "127.0.0.1" }',
    'https_ports = { }',
    'https_interfaces = { }',
    `http_default_host = ${lua(plan.domain)}`,
    'modules_enabled = { "saslauth", "disco", "ping", "http", "http_openmetrics" }',
    'modules_disabled = { "s2s" }',
    'consider_websocket_secure = true',
    'cross_domain_websocket = true',
    'statistics = "internal"',
    'statistics_interval = "manual"',
    `log = { { levels = { min = "debug" }, to = "file", filename = ${lua(dirs.log)} } }`,
  ];
  const dropped = [];
  for (const s of example.sections) {
    const lines = [];
    if (s.kind === 'Component' && s.module !== 'muc' && s.module !== 'component' && !moduleAvailable(s.module, pluginPaths)) {
      lines.push('    enabled = false -- its module is part of jitsi-meet-prosody, not installed here');
      dropped.push(`${s.name} (${s.module})`);
    } else {
      if (s.modules) {
        const keep = s.modules.filter((m) => OUR_MODULES.has(m) || moduleAvailable(m, pluginPaths));
        const gone = s.modules.filter((m) => !keep.includes(m));
        if (s === plan.muc && plan.lobby && !moduleAvailable('muc_lobby_rooms', pluginPaths)) keep.push('test_lobby');
        if (gone.length || keep.length !== s.modules.length) {
          lines.push(`    modules_enabled = ${luaList(keep)} -- not installed here: ${gone.join(', ') || '-'}`);
          dropped.push(...gone.map((m) => `${s.name}: ${m}`));
        }
      }
      if (s === plan.muc) {
        // No jicofo creates rooms here; the lobby stand-in reads lobby_muc on the MUC.
        lines.push('    restrict_room_creation = false');
        lines.push(`    lobby_muc = ${lua(plan.lobbyMuc)}`);
      }
      if (s === plan.vhost && plan.matrix) lines.push(`    uvs_base_url = ${lua(uvsUrl)}`);
    }
    if (lines.length) {
      const head = s.kind === 'Component' ? `Component ${lua(s.name)} ${lua(s.module)}` : `VirtualHost ${lua(s.name)}`;
      out.push('', head, ...lines);
    }
  }
  return { text: `${out.join('\n')}\n`, dropped };
}

// ---------------------------------------------------------------------------
// One server per example.

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const readOr = (file) => {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
};

const live = new Set();
process.on('exit', () => {
  for (const pid of live) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
});

async function startServer(example, plan) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), `install-smoke-${path.basename(example.file, '.cfg.lua')}-`));
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

  let uvs = null;
  if (plan.matrix) uvs = await startUvs({ authToken: plan.uvsAuthToken });
  const [c2s, http] = await freePorts(2);
  const { text, dropped } = wrapperConfig(example, plan, dirs, { c2s, http }, uvs?.url);
  fs.writeFileSync(dirs.config, text);

  // No LUA_CPATH override: jitsi_security.so must come from the package.
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (/^LUA_C?PATH/.test(k)) delete env[k];
  const out = fs.openSync(dirs.output, 'a');
  const child = spawn(PROSODY_BIN, ['--config', dirs.config, '-F'], { cwd: root, env, stdio: ['ignore', out, out] });
  fs.closeSync(out);
  live.add(child.pid);
  const pidFile = process.env.SMOKE_PID_DIR ? path.join(process.env.SMOKE_PID_DIR, `prosody-${child.pid}.pid`) : null;
  if (pidFile) fs.writeFileSync(pidFile, `${child.pid}\n`);

  let exited = null;
  const exitPromise = new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve((exited = { code, signal })));
    child.once('error', (error) => resolve((exited = { error: String(error) })));
  });
  const logText = () => readOr(dirs.log);
  const logTail = (n = 60) =>
    `--- ${dirs.log} (last ${n} lines) ---\n${logText().split('\n').slice(-n).join('\n')}\n` +
    `--- stdout/stderr ---\n${readOr(dirs.output).split('\n').slice(-20).join('\n')}\n` +
    `--- config ${dirs.config} ---\n${text}`;

  let stopped = false;
  async function stop() {
    if (stopped) return;
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
    live.delete(child.pid);
    if (pidFile) fs.rmSync(pidFile, { force: true });
    await uvs?.stop();
    if (!process.env.SMOKE_KEEP_TMP) fs.rmSync(root, { recursive: true, force: true });
  }

  const server = {
    pid: child.pid,
    dir: root,
    uvs,
    dropped,
    httpPort: http,
    logText,
    logTail,
    logMark: () => logText().length,
    logSince: (mark) => logText().slice(mark),
    wsUrl(room, token) {
      const q = new URLSearchParams();
      if (room) q.set('room', room);
      if (token) q.set('token', token);
      return `ws://127.0.0.1:${http}/xmpp-websocket?${q}`;
    },
    stop,
  };

  try {
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      if (exited) throw new Error(`prosody exited during startup (${JSON.stringify(exited)})`);
      try {
        const res = await fetch(`http://127.0.0.1:${http}/`, { signal: AbortSignal.timeout(1000) });
        await res.arrayBuffer();
        break;
      } catch {
        /* not yet */
      }
      if (Date.now() > deadline) throw new Error(`prosody did not answer on port ${http} within ${START_TIMEOUT_MS} ms`);
      await sleep(50);
    }
    const bad = logText()
      .split('\n')
      .filter((l) => /\terror\t/.test(l) || /Unable to load module|Failed to load module|Error initializing module/i.test(l));
    if (bad.length) throw new Error(`prosody started with errors:\n${bad.join('\n')}`);
  } catch (err) {
    err.message += `\n${logTail()}`;
    await stop();
    throw err;
  }
  return server;
}

// ---------------------------------------------------------------------------
// Scenarios.

let seq = 0;
const uniqueRoom = (prefix) => `${prefix}-${process.pid}-${Date.now().toString(36)}-${++seq}`;

function standardToken(plan, room, context = {}, { key = plan.appSecret, ...extra } = {}) {
  const t = now();
  const payload = {
    iss: plan.appId,
    aud: 'jitsi',
    sub: plan.domain,
    room,
    iat: t - 5,
    exp: t + 300,
    context: { user: { name: 'smoke user' }, ...context },
    ...extra,
  };
  return sign(payload, { alg: 'HS256', key });
}

async function expectRefused(url, condition, textRe, domain, what) {
  const res = await tryConnect(url, { domain });
  if (res.ok) {
    await res.client.stop();
    assert.fail(`${what}: the login succeeded, expected a SASL failure (${condition})`);
  }
  assert.equal(res.condition, condition, `${what}: ${JSON.stringify(res)}`);
  if (textRe) assert.match(res.text || '', textRe, `${what}: ${JSON.stringify(res)}`);
}

function assertJoined(r, what) {
  assert.equal(r.ok, true, `${what} should have joined: ${JSON.stringify(r)}`);
}
function assertRefusedJoin(r, condition, what) {
  assert.equal(r.ok, false, `${what} should have been refused: ${JSON.stringify(r)}`);
  assert.equal(r.condition, condition, `${what}: ${JSON.stringify(r)}`);
}

async function waitFor(fn, ms = 3000) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(50);
    }
  }
}

/** The affiliations in the presences `c` gets about itself as `fullJid`, as they arrive. */
function ownPresences(c, fullJid) {
  const seen = [];
  c.xmpp.on('stanza', (st) => {
    if (!st.is('presence') || (st.attrs.from || '').toLowerCase() !== fullJid.toLowerCase()) return;
    const item = st.getChild('x', 'http://jabber.org/protocol/muc#user')?.getChild('item');
    if (item) seen.push(item.attrs.affiliation);
  });
  return seen;
}

/** The Prosody log must show this REQUEST_COMPLETE reason since `mark`. */
async function expectReason(s, mark, code) {
  await waitFor(() => assert.match(s.logSince(mark), new RegExp(`REQUEST_COMPLETE reason:${code} `)));
}

function scenario(name, getServer, fn) {
  test(name, async () => {
    const s = getServer();
    const mark = s.logMark();
    try {
      await fn(s);
      const tracebacks = s
        .logSince(mark)
        .split('\n')
        .filter((l) => /\terror\t/.test(l));
      assert.deepEqual(tracebacks, [], 'errors in the Prosody log');
    } catch (err) {
      err.message += `\n--- prosody log during this test ---\n${s.logSince(mark).split('\n').slice(-60).join('\n')}`;
      throw err;
    }
  });
}

function exampleSuite(file) {
  const example = parseExample(file);
  const plan = planFor(example);
  const name = path.basename(file);
  const D = plan.domain;
  const mucJid = (room) => `${room.toLowerCase()}@${plan.mucName}`;

  describe(`${name} (${[plan.standard && 'standard tokens', plan.security && 'lobby/password', plan.matrix && 'Matrix/UVS', plan.powerSync && 'power sync'].filter(Boolean).join(', ')})`, () => {
    let server = null;
    before(async () => {
      server = await startServer(example, plan);
      if (server.dropped.length) console.log(`# ${name}: left out (not installed here): ${server.dropped.join('; ')}`);
    });
    after(async () => {
      await server?.stop();
    });
    const s = () => {
      if (!server) throw new Error('prosody is not running (before() failed)');
      return server;
    };

    test('jitsi_security.so is loaded from the package location, plugins from the package dir', async () => {
      const maps = fs.readFileSync(`/proc/${s().pid}/maps`, 'utf8');
      const sos = [...new Set(maps.split('\n').filter((l) => l.includes('jitsi_security')).map((l) => l.split(/\s+/).pop()))];
      assert.deepEqual(sos, [SO_PATH], `jitsi_security.so mapped by prosody ${s().pid}`);
      for (const f of [...OUR_MODULES].map((m) => `mod_${m}.lua`)) {
        assert.ok(fs.existsSync(path.join(PLUGIN_DIR, f)), `${PLUGIN_DIR}/${f}`);
      }
    });

    if (plan.standard) {
      scenario('a standard token logs in over WebSocket and joins a room', s, async (srv) => {
        const room = uniqueRoom('std');
        const mark = srv.logMark();
        const c = await connect(srv.wsUrl(room, standardToken(plan, room)), { domain: D });
        try {
          assertJoined(await c.joinMuc(mucJid(room), 'alice'), 'standard-token user');
        } finally {
          await c.stop();
        }
        await expectReason(srv, mark, 'ok');
      });

      scenario('a token with a bad signature, or expired, is refused with a SASL failure', s, async (srv) => {
        const room = uniqueRoom('bad');
        const mark = srv.logMark();
        const forged = standardToken(plan, room, {}, { key: `not-${plan.appSecret}` });
        await expectRefused(srv.wsUrl(room, forged), 'not-authorized', /signature/, D, 'forged token');
        const t = now();
        const expired = standardToken(plan, room, {}, { iat: t - 600, exp: t - 300 });
        await expectRefused(srv.wsUrl(room, expired), 'not-authorized', /expired/, D, 'expired token');
        await expectRefused(srv.wsUrl(room), 'not-authorized', null, D, 'no token');
        await expectReason(srv, mark, 'invalid_auth_token');
      });
    }

    if (plan.standard && plan.security) {
      scenario('a token with context.room.password sets the room password', s, async (srv) => {
        const room = uniqueRoom('pw');
        const password = `pw-${crypto.randomBytes(4).toString('hex')}`;
        let owner, guest, guest2, vip;
        try {
          owner = await connect(srv.wsUrl(room, standardToken(plan, room, { room: { password } })), { domain: D });
          assertJoined(await owner.joinMuc(mucJid(room), 'owner'), 'password-token holder');
          guest = await connect(srv.wsUrl(room, standardToken(plan, room)), { domain: D });
          await waitFor(async () => assertRefusedJoin(await guest.joinMuc(mucJid(room), 'guest'), 'not-authorized', 'guest without password'));
          guest2 = await connect(srv.wsUrl(room, standardToken(plan, room)), { domain: D });
          assertJoined(await guest2.joinMuc(mucJid(room), 'guest2', { password }), 'guest with the password');
          vip = await connect(srv.wsUrl(room, standardToken(plan, room, { user: { name: 'vip', security_bypass: true } })), { domain: D });
          assertJoined(await vip.joinMuc(mucJid(room), 'vip'), 'security_bypass user without password');
        } finally {
          await stopAll(owner, guest, guest2, vip);
        }
      });

      if (plan.lobby) {
        scenario('a token with context.room.lobby = true turns the lobby on', s, async (srv) => {
          const room = uniqueRoom('lobby');
          let owner, guest, vip;
          try {
            owner = await connect(srv.wsUrl(room, standardToken(plan, room, { room: { lobby: true } })), { domain: D });
            assertJoined(await owner.joinMuc(mucJid(room), 'owner'), 'lobby-token holder');
            guest = await connect(srv.wsUrl(room, standardToken(plan, room)), { domain: D });
            await waitFor(async () =>
              assertRefusedJoin(await guest.joinMuc(mucJid(room), 'guest'), 'registration-required', 'guest while the lobby is on'),
            );
            vip = await connect(srv.wsUrl(room, standardToken(plan, room, { user: { name: 'vip', security_bypass: true } })), { domain: D });
            assertJoined(await vip.joinMuc(mucJid(room), 'vip'), 'security_bypass user past the lobby');
          } finally {
            await stopAll(owner, guest, vip);
          }
        });
      }
    }

    if (plan.matrix) {
      scenario('a Matrix (Element) token logs in through UVS and joins its room', s, async (srv) => {
        const roomId = uniqueMatrixRoomId('smoke');
        const room = jitsiRoomOf(roomId);
        const mod = uniqueOpenid('mod');
        const user = uniqueOpenid('user');
        srv.uvs.setUser(mod, { user_id: '@mod:example.org', rooms: { [roomId]: 100 }, state_default: 50 });
        srv.uvs.setUser(user, { user_id: '@user:example.org', rooms: { [roomId]: 0 }, state_default: 50 });
        const token = (openid) => matrixToken({ iss: plan.matrixIssuer, openid, roomId, extra: { sub: D } });
        const mark = srv.logMark();
        let a, b;
        try {
          a = await connect(srv.wsUrl(room, token(mod)), { domain: D });
          const seenA = ownPresences(a, `${mucJid(room)}/moderator`);
          assertJoined(await a.joinMuc(mucJid(room), 'moderator'), 'Matrix moderator');
          b = await connect(srv.wsUrl(room, token(user)), { domain: D });
          const seenB = ownPresences(b, `${mucJid(room)}/member`);
          assertJoined(await b.joinMuc(mucJid(room), 'member'), 'Matrix member');
          if (plan.powerSync) {
            // power sync sets the affiliation just after the join
            await waitFor(() => assert.equal(seenA.at(-1), 'owner', 'power 100 >= state_default 50: owner'));
            await waitFor(() => assert.equal(seenB.at(-1), 'member', 'power 0: member'));
          }
        } finally {
          await stopAll(a, b);
        }
        await expectReason(srv, mark, 'ok');
        const seen = srv.uvs.requests.filter((r) => r.body?.token === mod);
        assert.ok(seen.length >= 1, 'UVS was asked');
        assert.equal(seen[0].path, '/verify/user_in_room');
        if (plan.uvsAuthToken) assert.equal(seen[0].headers.authorization, `Bearer ${plan.uvsAuthToken}`);
      });

      scenario('a Matrix token UVS does not know, or for another room, is refused', s, async (srv) => {
        const roomId = uniqueMatrixRoomId('smoke');
        const other = uniqueMatrixRoomId('other');
        const known = uniqueOpenid('known');
        srv.uvs.setUser(known, { user_id: '@known:example.org', rooms: { [other]: 0 } });
        const mark = srv.logMark();
        const url = (openid) => srv.wsUrl(jitsiRoomOf(roomId), matrixToken({ iss: plan.matrixIssuer, openid, roomId, extra: { sub: D } }));
        await expectRefused(url(uniqueOpenid('unknown')), 'not-authorized', null, D, 'unknown OpenID token');
        await expectReason(srv, mark, 'invalid_token');
        await expectRefused(url(known), 'not-authorized', null, D, 'user not in the room');
        await expectReason(srv, mark, 'not_in_room');
      });
    }

    test('login metrics are served by mod_http_openmetrics', async () => {
      const res = await fetch(`http://127.0.0.1:${s().httpPort}/metrics`, { signal: AbortSignal.timeout(5000) });
      const body = await res.text();
      assert.equal(res.status, 200, body);
      const lines = body.split('\n').filter((l) => /login_/.test(l) && !l.startsWith('#'));
      // module:measure("login_ok", "rate") of the auth module the host loads
      const auth = optString(plan.vhost, 'authentication');
      const okLine = `prosody_mod_auth_${auth}__login_ok_total{host="${D}"} `;
      const sample = lines.find((l) => l.startsWith(okLine));
      assert.ok(sample && Number(sample.slice(okLine.length)) > 0, `"${okLine}<n>" with n > 0 in /metrics:\n${lines.join('\n')}`);
      console.log(`# ${name}: /metrics login lines:\n${lines.map((l) => `#   ${l}`).join('\n')}`);
    });
  });
}

const files = process.argv.slice(2);
if (!files.length) {
  console.error('usage: node --experimental-websocket tests/install/smoke.mjs EXAMPLE.cfg.lua...');
  process.exit(2);
}
for (const f of files) {
  try {
    exampleSuite(path.resolve(f));
  } catch (err) {
    // An example this script cannot read is a failure, not an empty suite.
    test(`${path.basename(f)}: the example can be read and has a login scenario`, () => {
      throw err;
    });
  }
}
