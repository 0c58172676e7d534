// Helpers for Matrix-token end-to-end tests (docs/design.md, "Matrix tokens", "Verifying Matrix users", "Lobby, password, owners").
//
//   const roomId = uniqueMatrixRoomId('pw');       // "!pw-...:example.org"
//   const room = jitsiRoomOf(roomId);               // lower-case base32, no padding
//   const token = matrixToken({ iss: APP_ID, openid: 'tok-1', roomId });
//   server.wsUrl(room, token)
//
//   const probe = sessionProbePlugin();             // tests/prosody/mod_test_session_probe.lua
//   startProsody({ global: { plugin_paths: probe.pluginPaths }, vhostModules: [probe.module] })
//   await sessionFields(server.httpPort, client.jid)

import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { sign } from './jwt.js';
import { roomState } from './observer.js';
import { MUC_DOMAIN, PLUGIN_PATHS, REPO_ROOT, luaCpath } from './prosody.js';
import { recordSecret } from './secrets.js';

const B32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** RFC 4648 base32 of the UTF-8 bytes of `text`, without padding (upper case). */
export function base32(text) {
  let out = '';
  let acc = 0;
  let bits = 0;
  for (const byte of Buffer.from(String(text), 'utf8')) {
    acc = ((acc << 8) | byte) & 0xffff;
    bits += 8;
    while (bits >= 5) {
      out += B32[(acc >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += B32[(acc << (5 - bits)) & 31];
  return out;
}

/** The Jitsi room name of a Matrix room id: lower-case base32, as Jitsi uses it. */
export const jitsiRoomOf = (roomId) => base32(roomId).toLowerCase();

/** The MUC room jid of a Matrix room id. */
export const roomJidOfMatrix = (roomId) => `${jitsiRoomOf(roomId)}@${MUC_DOMAIN}`;

let seq = 0;
/** A fresh Matrix room id, unique per run and per call. */
export function uniqueMatrixRoomId(prefix = 'r', server = 'example.org') {
  seq += 1;
  return `!${prefix}${process.pid}x${Date.now().toString(36)}x${seq}:${server}`;
}

/** A fresh, unguessable Matrix OpenID token. */
export function uniqueOpenid(prefix = 'openid') {
  const openid = `${prefix}-${crypto.randomBytes(12).toString('hex')}`;
  recordSecret(openid); // secret hygiene: lib/secrets.js
  return openid;
}

/**
 * Claims of an Element-style Matrix token. `matrix` entries override/extend
 * context.matrix (pass `room_id: undefined` to drop it); `extra` overrides
 * top-level claims.
 */
export function matrixClaims({
  iss,
  openid,
  roomId,
  serverName,
  name = 'matrix user',
  avatar,
  matrix = {},
  context = {},
  extra = {},
}) {
  const m = { token: openid, room_id: roomId };
  if (serverName !== undefined) m.server_name = serverName;
  Object.assign(m, matrix);
  recordSecret(m.token); // an OpenID token must never be logged (lib/secrets.js)
  for (const k of Object.keys(m)) if (m[k] === undefined) delete m[k];
  const user = { name };
  if (avatar !== undefined) user.avatar = avatar;
  return { iss, aud: 'jitsi', sub: 'localhost', room: '*', context: { user, matrix: m, ...context }, ...extra };
}

/** A Matrix token, HS256 with `key` (Element signs with the literal "notused"). */
export function matrixToken(opts, key = 'notused') {
  return sign(matrixClaims(opts), { alg: 'HS256', key });
}

// ---------------------------------------------------------------------------
// Session probe: tests/prosody/mod_test_session_probe.lua answers
// GET /test_session_probe/session?jid=<full jid> with the Matrix/Jitsi fields
// of that c2s session as JSON ({ found: false } when there is none).

const PROBE_MODULE = 'test_session_probe';

/** The probe module to load on the VirtualHost. Returns { module, pluginPaths, cleanup }. */
export function sessionProbePlugin() {
  return { module: PROBE_MODULE, pluginPaths: PLUGIN_PATHS, cleanup: () => {} };
}

/** Session fields of a logged-in client (its full jid), via the probe module. */
export async function sessionFields(httpPort, fullJid) {
  const url = `http://127.0.0.1:${httpPort}/${PROBE_MODULE}/session?jid=${encodeURIComponent(fullJid)}`;
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  const body = await res.text();
  if (res.status !== 200) throw new Error(`session probe ${url}: HTTP ${res.status}: ${body}`);
  const out = JSON.parse(body);
  if (Array.isArray(out.present)) out.present = {};
  return out;
}

// ---------------------------------------------------------------------------
// Small test utilities shared by the Matrix test files.

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Fail early and clearly when the plugins under test (or the .so) are missing. */
export function requirePlugins(files) {
  const missing = files
    .filter((f) => !PLUGIN_PATHS.some((dir) => fs.existsSync(path.join(dir, f))))
    .map((f) => path.join(REPO_ROOT, 'lua', f));
  if (!process.env.JITSI_SECURITY_CPATH) {
    const so = path.join(REPO_ROOT, 'build', 'lua', 'jitsi_security.so');
    if (!fs.existsSync(so)) missing.push(`${so} (run \`make build\` in ${REPO_ROOT})`);
  }
  if (missing.length) throw new Error(`product under test is missing:\n  ${missing.join('\n  ')}\n(cpath ${luaCpath()})`);
}

/** Poll until `check()` (async allowed) stops throwing; rethrows the last error after `ms`. */
export async function until(check, ms = 3000, step = 25) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > deadline) throw err;
    }
    await sleep(step);
  }
}

/** Poll the observer until `check(state)` stops throwing; the error carries the last state. */
export async function eventuallyRoom(httpPort, roomJid, check, ms = 3000) {
  let last;
  try {
    return await until(async () => {
      last = await roomState(httpPort, roomJid);
      check(last);
      return last;
    }, ms, 50);
  } catch (err) {
    err.message += `\nroom state: ${JSON.stringify(last)}`;
    throw err;
  }
}

/** Every `REQUEST_COMPLETE reason:<code>` code in `text`, in order. */
export function requestCompleteCodes(text) {
  return [...text.matchAll(/REQUEST_COMPLETE reason:([A-Za-z_]+)/g)].map((m) => m[1]);
}
