// End-to-end: hostile and broken input against a real Prosody with our
// plugins on a hybrid host (standard tokens with app_secret AND Matrix
// tokens checked by our UVS, lib/uvs_server.js), token_security_ondemand and
// the test lobby on the MUC. docs/design.md, sections 2 to 6.
//
// Every case checks, besides its own expectation:
//   - no line with "traceback" (any case) and no error-level line in the
//     Prosody log written during the case;
//   - no forged log line: "REQUEST_COMPLETE reason:ok session:forged" only
//     ever appears escaped (after a literal \x0a or \x0d), and the case's
//     log holds no raw control character;
//   - Prosody is still running, and a valid login (plus a ping) works next.
//
// Expected refusal texts come from src/error.rs and the escaping rule of
// docs/design.md, "Trust rules" (untrusted values shown as '...' with \xNN escapes, at most 64
// bytes, then "..."). Raw HTTP/WebSocket/BOSH clients: lib/raw.js.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, describe, test } from 'node:test';

import { connect, stopAll, tryConnect } from './lib/client.js';
import { uniqueRoom, useProsody } from './lib/harness.js';
import { b64url, now, rsaKeyPair, sign } from './lib/jwt.js';
import {
  jitsiRoomOf,
  matrixClaims,
  matrixToken,
  requirePlugins,
  roomJidOfMatrix,
  sessionFields,
  sessionProbePlugin,
  sleep,
  uniqueMatrixRoomId,
  uniqueOpenid,
  until,
} from './lib/matrix.js';
import { roomState } from './lib/observer.js';
import { LOBBY_DOMAIN, MUC_DOMAIN, freePorts, prosodyVersion } from './lib/prosody.js';
import { boshLogin, wsLogin } from './lib/raw.js';
import { REDIRECT_PREFIX, startUvs } from './lib/uvs_server.js';

const APP_ID = 'e2e-bad-input-app';
const SECRET = `e2e-bad-secret-${crypto.randomBytes(12).toString('hex')}`;
const UVS_TOKEN = `e2e-bad-uvs-${crypto.randomBytes(12).toString('hex')}`;
const UVS_TIMEOUT_S = 2;
const PLUGINS = ['mod_auth_matrix_user_verification.lua', 'mod_token_security_ondemand.lua'];

const FORGED = 'REQUEST_COMPLETE reason:ok session:forged';
const NL_FORGED = `\n${FORGED}`;
const ESC_FORGED = `\\x0a${FORGED}`; // what docs/design.md, "Trust rules" escaping shows

const MALFORMED = 'token is malformed: ';

// ---------------------------------------------------------------------------
// Tokens

/** Standard Jitsi claims for `room`, valid for 5 minutes. */
function claims(room, { roomCtx, user = {}, tenant, sub = 'localhost', ...extra } = {}) {
  const t = now();
  const context = { user: { name: 'e2e user', ...user } };
  if (roomCtx !== undefined) context.room = roomCtx;
  if (tenant !== undefined) context.tenant = tenant;
  return { iss: APP_ID, aud: 'jitsi', sub, room, iat: t - 5, exp: t + 300, context, ...extra };
}

const hs = (payload, opts = {}) => sign(payload, { alg: 'HS256', key: SECRET, ...opts });
const stdToken = (room, opts) => hs(claims(room, opts));

/** A compact JWS from raw segment texts (no signing): for structure cases. */
const rawJws = (header, payload, sig = 'c2ln') => `${b64url(header)}.${b64url(payload)}.${sig}`;

/** HMAC-SHA256 over `header.payload` given as objects or raw strings, with SECRET. */
function hsRaw(header, payload, key = SECRET) {
  const h = b64url(typeof header === 'string' ? header : JSON.stringify(header));
  const p = b64url(typeof payload === 'string' ? payload : JSON.stringify(payload));
  const sig = crypto.createHmac('sha256', key).update(`${h}.${p}`).digest();
  return `${h}.${p}.${b64url(sig)}`;
}

/** docs/design.md, "Trust rules": how an untrusted value appears in a SASL text or a log line. */
function shown(value) {
  const bytes = Buffer.isBuffer(value) ? value : Buffer.from(String(value), 'utf8');
  let out = "'";
  for (const b of bytes.subarray(0, 64)) {
    if (b === 0x27) out += "\\'";
    else if (b === 0x5c) out += '\\\\';
    else if (b >= 0x20 && b <= 0x7e) out += String.fromCharCode(b);
    else out += `\\x${b.toString(16).padStart(2, '0')}`;
  }
  return `${out}'${bytes.length > 64 ? '...' : ''}`;
}

// ---------------------------------------------------------------------------
// Log: byte offsets (the log may hold any bytes) and the cleanliness checks.

const logPath = (s) => path.join(s.dir, 'prosody.log');
function logBytes(s) {
  try {
    return fs.readFileSync(logPath(s));
  } catch {
    return Buffer.alloc(0);
  }
}
const markOf = (s) => logBytes(s).length;
const logSince = (s, mark) => logBytes(s).subarray(mark);

const ENTRY = /^([A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) (\S+)\t(\w+)\t/;

/** Problems in a slice of the log (a Buffer): [] when clean. */
function logProblems(slice) {
  const problems = [];
  const text = slice.toString('latin1');
  const lines = text.split('\n');
  for (const line of lines) {
    if (/traceback/i.test(line)) problems.push(`traceback: ${line}`);
    const m = ENTRY.exec(line);
    if (m && m[3] === 'error') problems.push(`error line: ${line}`);
    // eslint-disable-next-line no-control-regex
    const ctl = /[\x00-\x08\x0b-\x1f\x7f]/.exec(line);
    if (ctl) problems.push(`raw control character 0x${ctl[0].charCodeAt(0).toString(16)} in: ${JSON.stringify(line)}`);
    let at = line.indexOf(FORGED);
    while (at >= 0) {
      const before = line.slice(Math.max(0, at - 4), at);
      if (before !== '\\x0a' && before !== '\\x0d') problems.push(`forged/unescaped line: ${JSON.stringify(line)}`);
      at = line.indexOf(FORGED, at + 1);
    }
  }
  return problems;
}

/** Lines of the log that are a forged REQUEST_COMPLETE (the message itself, or a line starting with it). */
function forgedLines(text) {
  return text.split('\n').filter((l) => l.startsWith(FORGED) || new RegExp(`^\\S+ [ \\d]\\d \\S+ \\S+\\t\\w+\\t${FORGED}`).test(l));
}

/**
 * The codes of the REQUEST_COMPLETE lines in `text`: lines whose message
 * starts with it (an escaped copy inside another message does not count).
 */
function completeCodes(text) {
  const out = [];
  for (const line of text.split('\n')) {
    const m = /^\S+ [ \d]\d \S+ \S+\t\w+\tREQUEST_COMPLETE reason:([A-Za-z_]+)/.exec(line);
    if (m) out.push(m[1]);
  }
  return out;
}

/** The REQUEST_COMPLETE codes logged since `mark`, waiting (up to 2 s) for at least `n`. */
async function codesSince(s, mark, n = 1) {
  try {
    return await until(() => {
      const codes = completeCodes(logSince(s, mark).toString('latin1'));
      assert.ok(codes.length >= n);
      return codes;
    }, 2000);
  } catch {
    return completeCodes(logSince(s, mark).toString('latin1'));
  }
}

// ---------------------------------------------------------------------------
// Outcomes: tryConnect (@xmpp/client over WebSocket) or lib/raw.js results,
// normalised to { kind: 'success'|'failure'|'http'|'closed'|'timeout'|'error', ... }.

async function viaClient(url) {
  const started = performance.now();
  try {
    const r = await tryConnect(url);
    const elapsed = performance.now() - started;
    if (r.ok) {
      await r.client.stop();
      return { kind: 'success', elapsed, jid: r.client.jid };
    }
    return { kind: 'failure', condition: r.condition, text: r.text, elapsed };
  } catch (err) {
    return { kind: 'error', detail: String(err?.message || err), elapsed: performance.now() - started };
  }
}

const wsBase = (s) => `ws://127.0.0.1:${s.httpPort}/xmpp-websocket`;
/** A WebSocket URL with a query string given verbatim (percent-escapes and all). */
const wsRaw = (s, qs) => `${wsBase(s)}${qs ? `?${qs}` : ''}`;
const enc = encodeURIComponent;

/** A RegExp matching `text` literally (for escaped fragments of a refusal text). */
const literally = (text) => new RegExp(text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));

/**
 * Assert a refusal: `want` = { condition, keyword (RegExp), code }. E2E tests
 * assert what admins see: the SASL condition and the REQUEST_COMPLETE reason
 * code, plus one stable keyword of the text (or the escaped form of the
 * untrusted value it shows); exact texts are pinned once, in Rust unit tests.
 * `code` is required: every refusal logs one.
 */
async function expectRefusal(s, mark, res, want, what) {
  assert.ok(want.keyword instanceof RegExp && want.condition, `${what}: a case names its condition and keyword`);
  assert.equal(res.kind, 'failure', `${what}: expected a SASL failure, got ${JSON.stringify(res).slice(0, 600)}`);
  assert.equal(res.condition, want.condition, `${what}: SASL condition (text ${JSON.stringify(res.text)})`);
  assert.match(res.text, want.keyword, `${what}: SASL text`);
  // A text is always shown escaped: nothing outside printable ASCII.
  // eslint-disable-next-line no-control-regex
  assert.doesNotMatch(res.text, /[^\x20-\x7e]/, `${what}: SASL text has raw bytes: ${JSON.stringify(res.text)}`);
  if (want.code !== undefined || mark !== null) {
    assert.ok(want.code, `${what}: a case names its reason code`);
    const codes = await codesSince(s, mark, 1);
    assert.deepEqual(codes, [want.code], `${what}: REQUEST_COMPLETE codes of this attempt`);
  }
}

/** A clean outcome of an unusable request: SASL failure with condition and text, or HTTP 4xx, or (allowClosed) a closed connection. */
function expectClean(res, what, { allowClosed = false } = {}) {
  const ok =
    (res.kind === 'failure' && res.condition && res.text) ||
    (res.kind === 'http' && res.status >= 400 && res.status < 500) ||
    (allowClosed && res.kind === 'closed');
  assert.ok(ok, `${what}: expected a clean refusal (SASL failure or HTTP 4xx${allowClosed ? ' or a close' : ''}), got ${JSON.stringify(res).slice(0, 600)}`);
}

// ---------------------------------------------------------------------------
// One case: the body, then the health checks of every case.

function requireProduct() {
  requirePlugins(PLUGINS);
}

function hybridConfig(uvsUrl, extra = {}) {
  return {
    vhost: {
      authentication: 'matrix_user_verification',
      app_id: APP_ID,
      app_secret: SECRET,
      uvs_base_url: uvsUrl,
      uvs_auth_token: UVS_TOKEN,
      uvs_timeout: UVS_TIMEOUT_S,
      ...extra,
    },
    vhostModules: ['test_observer', sessionProbePlugin().module],
    mucModules: ['token_security_ondemand', 'test_lobby'],
  };
}

/** A Matrix user known to `uvs`, with its token and Jitsi room. */
function matrixUser(uvs, { roomId = uniqueMatrixRoomId('bad'), power = 0, rooms, tokenOpts = {}, iss = APP_ID, server = 'example.org' } = {}) {
  const openid = uniqueOpenid('bad');
  const userId = `@u${openid.slice(-8)}:${server}`;
  uvs.setUser(openid, { user_id: userId, rooms: rooms ?? { [roomId]: power } });
  return {
    openid,
    userId,
    roomId,
    room: jitsiRoomOf(roomId),
    roomJid: roomJidOfMatrix(roomId),
    token: matrixToken({ iss, openid, roomId, ...tokenOpts }),
  };
}

/** Prosody is alive and a valid login (standard, and Matrix when `uvs` is given) works, with a ping. */
async function assertHealthy(s, uvs) {
  assert.equal(s.exited(), null, `prosody exited: ${JSON.stringify(s.exited())}`);
  const room = uniqueRoom('health');
  let c;
  try {
    c = await connect(s.wsUrl(room, stdToken(room)));
    await c.ping();
  } catch (err) {
    throw new Error(`the next valid standard login failed: ${err.message}`);
  } finally {
    await stopAll(c);
  }
  if (uvs) {
    const u = matrixUser(uvs);
    let m;
    try {
      m = await connect(s.wsUrl(u.room, u.token));
      await m.ping();
    } catch (err) {
      throw new Error(`the next valid Matrix login failed: ${err.message}`);
    } finally {
      await stopAll(m);
    }
  }
}

/**
 * A test with the checks every case gets. `getUvs` (optional): the suite's
 * UVS, for the Matrix health login.
 */
function bad(name, getServer, fn, { getUvs, timeout = 30000, todo } = {}) {
  return test(name, { timeout, todo }, async (t) => {
    const s = getServer();
    const mark = markOf(s);
    try {
      await fn(t, s, mark);
      // Let late lines (a UVS answer after the refusal, a hook after a join) land.
      await sleep(50);
      await assertHealthy(s, getUvs?.());
      const slice = logSince(s, mark);
      const problems = logProblems(slice);
      assert.deepEqual(problems, [], 'the Prosody log of this case is clean');
      assert.deepEqual(forgedLines(slice.toString('latin1')), [], 'no forged REQUEST_COMPLETE line');
    } catch (err) {
      const lines = logSince(s, mark).toString('latin1').trimEnd().split('\n');
      const note = `\n--- prosody log during this case (last ${Math.min(60, lines.length)} of ${lines.length} lines) ---\n${lines.slice(-60).join('\n')}`;
      try {
        err.message = `${err.message}${note}`;
      } catch {
        /* read-only */
      }
      throw err;
    }
  });
}

// ---------------------------------------------------------------------------
// Room helpers

const roomJidOf = (node) => `${node}@${MUC_DOMAIN}`;

async function eventually(httpPort, roomJid, check, ms = 3000) {
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

/**
 * Lock the MUC room `node` with a lobby and `password` by a standard token
 * (room claim `claimRoom`, tenant options `opts`). Returns the owner client
 * (keep it connected: an empty room is destroyed).
 */
async function lockRoom(s, node, password, { claimRoom = node, ...opts } = {}) {
  const owner = await connect(s.wsUrl(node, stdToken(claimRoom, { roomCtx: { lobby: true, password }, ...opts })));
  const j = await owner.joinMuc(roomJidOf(node), 'owner');
  assert.equal(j.ok, true, `owner joins ${node}: ${JSON.stringify(j)}`);
  await eventually(s.httpPort, roomJidOf(node), (st) => {
    assert.equal(st.members_only, true, 'locked: members-only');
    assert.notEqual(st.lobbyroom, null, 'locked: lobby');
    assert.equal(st.password, password, 'locked: password');
  });
  return owner;
}

/** The room is still exactly as lockRoom left it and `bareJid` got no affiliation. */
async function assertStillLocked(s, node, password, bareJid) {
  await sleep(100);
  const st = await roomState(s.httpPort, roomJidOf(node));
  assert.equal(st.members_only, true, `${node} still members-only: ${JSON.stringify(st)}`);
  assert.equal(st.lobbyroom, `${node}@${LOBBY_DOMAIN}`, `${node} still has its lobby: ${JSON.stringify(st)}`);
  assert.equal(st.password, password, `${node} password unchanged: ${JSON.stringify(st)}`);
  if (bareJid) assert.equal(st.affiliations[bareJid], undefined, `${bareJid} was given no affiliation: ${JSON.stringify(st.affiliations)}`);
}

function assertJoinRefused(res, condition, what) {
  assert.equal(res.ok, false, `${what}: should be refused, got ${JSON.stringify(res)}`);
  assert.equal(res.condition, condition, `${what}: ${JSON.stringify(res)}`);
}

// ===========================================================================
describe('bad input: helpers of this file (no server)', () => {
  test('shown() follows the escaping rule of docs/design.md, "Trust rules"', () => {
    assert.equal(shown('ab\0cd'), "'ab\\x00cd'");
    assert.equal(shown(Buffer.from([0xff, 0x41])), "'\\xffA'");
    assert.equal(shown("it's\\"), "'it\\'s\\\\'");
    assert.equal(shown('é'), "'\\xc3\\xa9'");
    assert.equal(shown('a'.repeat(65)), `'${'a'.repeat(64)}'...`);
    assert.equal(shown('a'.repeat(64)), `'${'a'.repeat(64)}'`);
  });

  test('logProblems() finds tracebacks, error lines, raw control characters and unescaped forgeries', () => {
    const ok = 'Nov 23 15:49:49 localhost:auth_matrix_user_verification\tinfo\tREQUEST_COMPLETE reason:x session:y token algorithm \'\\x0aREQUEST_COMPLETE reason:ok session:forged\' is not accepted\n';
    assert.deepEqual(logProblems(Buffer.from(ok)), []);
    assert.deepEqual(completeCodes(ok), ['x']);
    assert.deepEqual(forgedLines(ok), []);
    const forged = 'Nov 23 15:49:49 localhost:auth\tinfo\tREQUEST_COMPLETE reason:x token \'\nREQUEST_COMPLETE reason:ok session:forged\'\n';
    assert.equal(logProblems(Buffer.from(forged)).length, 1);
    assert.deepEqual(forgedLines(forged), ['REQUEST_COMPLETE reason:ok session:forged\'']);
    assert.equal(logProblems(Buffer.from('Nov  3 15:49:49 x\terror\tboom\n')).length, 1);
    assert.equal(logProblems(Buffer.from('Nov 23 15:49:49 x\tinfo\tstack traceback:\n')).length, 1);
    assert.equal(logProblems(Buffer.from('Nov 23 15:49:49 x\tinfo\ta\x00b\n')).length, 1);
    assert.equal(logProblems(Buffer.from('Nov 23 15:49:49 x\tinfo\tREQUEST_COMPLETE reason:ok session:forged\n')).length, 1);
  });
});

// ===========================================================================
describe('bad input 1+2: claims grant nothing outside their room and tenant', () => {
  let uvs;
  const server = useProsody(async () => {
    requireProduct();
    uvs = await startUvs({ authToken: UVS_TOKEN });
    return hybridConfig(uvs.url);
  });
  after(async () => {
    await uvs?.stop();
  });
  const opts = { getUvs: () => uvs };

  const GRANTS = {
    user: { security_bypass: true, moderator: true, affiliation: 'owner' },
    room: { lobby: true, password: 'mx-pw' },
    features: { recording: true, 'screen-sharing': true },
    group: 'evil-group',
  };
  /** A Matrix member of its own room whose unsigned token carries every granting claim. */
  function grantingMatrixUser() {
    const u = matrixUser(uvs, { roomId: uniqueMatrixRoomId('grant') });
    const c = matrixClaims({
      iss: APP_ID,
      openid: u.openid,
      roomId: u.roomId,
      name: 'Mallory',
      avatar: 'https://example.org/m.png',
      context: { room: GRANTS.room, features: GRANTS.features, group: GRANTS.group, tenant: 't1' },
      extra: { moderator: true },
    });
    c.context.user = { ...c.context.user, ...GRANTS.user };
    return { ...u, token: sign(c, { alg: 'HS256', key: 'notused' }) };
  }

  bad('1.1 unsigned Matrix token with granting claims: session keeps only name, avatar and the verified id', server, async (t, s) => {
    const u = grantingMatrixUser();
    let c;
    try {
      c = await connect(s.wsUrl(u.room, u.token));
      const f = await sessionFields(s.httpPort, c.jid);
      assert.equal(f.found, true);
      assert.deepEqual(f.jitsi_meet_context_user, { name: 'Mallory', avatar: 'https://example.org/m.png', id: u.userId });
      assert.equal(f.jitsi_meet_context_features, undefined, 'no features from an unsigned token');
      assert.equal(f.jitsi_meet_context_group, undefined, 'no group from an unsigned token');
      assert.equal(f.jitsi_meet_context_room, undefined, 'no room settings from an unsigned token');
      assert.equal(f.auth_matrix_user_verification_is_owner, false);
    } finally {
      await stopAll(c);
    }
  }, opts);

  bad('1.2 unsigned Matrix token: lobby/password claims do nothing in its own room', server, async (t, s) => {
    const u = grantingMatrixUser();
    let c;
    try {
      c = await connect(s.wsUrl(u.room, u.token));
      const j = await c.joinMuc(u.roomJid, 'mallory');
      assert.equal(j.ok, true, JSON.stringify(j));
      await sleep(150);
      const st = await roomState(s.httpPort, u.roomJid);
      assert.equal(st.lobbyroom, null, `no lobby: ${JSON.stringify(st)}`);
      assert.equal(st.members_only, false);
      assert.equal(st.password, null, 'no password');
    } finally {
      await stopAll(c);
    }
  }, opts);

  bad('1.3 unsigned Matrix token with security_bypass: refused in its own room once locked (no bypass), not made member', server, async (t, s) => {
    const u = grantingMatrixUser();
    let owner, c;
    try {
      owner = await lockRoom(s, u.room, 'own-pw');
      c = await connect(s.wsUrl(u.room, u.token));
      assertJoinRefused(await c.joinMuc(u.roomJid, 'mallory'), 'registration-required', 'bypass claim from an unsigned token');
      assertJoinRefused(await c.joinMuc(u.roomJid, 'mallory', { password: 'own-pw' }), 'registration-required', 'even with the password');
      await assertStillLocked(s, u.room, 'own-pw', c.bareJid);
    } finally {
      await stopAll(owner, c);
    }
  }, opts);

  bad('1.4 Matrix user with security_bypass/lobby/password claims cannot enter ANOTHER locked room', server, async (t, s) => {
    const u = grantingMatrixUser();
    const other = uniqueRoom('mx-other');
    let owner, c;
    try {
      owner = await lockRoom(s, other, 'other-pw');
      c = await connect(s.wsUrl(u.room, u.token));
      assertJoinRefused(await c.joinMuc(roomJidOf(other), 'mallory'), 'registration-required', 'cross-room bypass');
      assertJoinRefused(await c.joinMuc(roomJidOf(other), 'mallory', { password: 'wrong' }), 'registration-required', 'cross-room, wrong password');
      await assertStillLocked(s, other, 'other-pw', c.bareJid);
    } finally {
      await stopAll(owner, c);
    }
  }, opts);

  bad('1.5 Matrix token with lobby:false and password:"" does not unlock another room', server, async (t, s) => {
    const roomId = uniqueMatrixRoomId('unlock');
    const u = matrixUser(uvs, { roomId, tokenOpts: { context: { room: { lobby: false, password: '' } } } });
    const other = uniqueRoom('mx-unlock');
    let owner, c;
    try {
      owner = await lockRoom(s, other, 'keep-pw');
      c = await connect(s.wsUrl(u.room, u.token));
      assertJoinRefused(await c.joinMuc(roomJidOf(other), 'opener'), 'registration-required', 'unlock claim from an unsigned token');
      await assertStillLocked(s, other, 'keep-pw', c.bareJid);
    } finally {
      await stopAll(owner, c);
    }
  }, opts);

  bad('1.6 standard signed token for "abc" with security_bypass does not bypass in "abd"', server, async (t, s) => {
    const base = uniqueRoom('x');
    const abc = `${base}abc`;
    const abd = `${base}abd`;
    let owner, vip;
    try {
      owner = await lockRoom(s, abd, 'abd-pw');
      vip = await connect(s.wsUrl(abc, stdToken(abc, { user: { security_bypass: true } })));
      assertJoinRefused(await vip.joinMuc(roomJidOf(abd), 'vip'), 'registration-required', 'bypass token of abc in abd');
      assertJoinRefused(await vip.joinMuc(roomJidOf(abd), 'vip', { password: 'abd-pw' }), 'registration-required', 'with the password, no affiliation');
      await assertStillLocked(s, abd, 'abd-pw', vip.bareJid);
    } finally {
      await stopAll(owner, vip);
    }
  }, opts);

  bad('1.7 control: the same bypass token works in its own room "abc" (member)', server, async (t, s) => {
    const abc = `${uniqueRoom('x')}abc`;
    let owner, vip;
    try {
      owner = await lockRoom(s, abc, 'abc-pw');
      vip = await connect(s.wsUrl(abc, stdToken(abc, { user: { security_bypass: true } })));
      const j = await vip.joinMuc(roomJidOf(abc), 'vip');
      assert.equal(j.ok, true, JSON.stringify(j));
      assert.equal(j.affiliation, 'member');
    } finally {
      await stopAll(owner, vip);
    }
  }, opts);

  bad('1.8 standard token for "abc" with lobby:false/password:"" does not unlock "abd"', server, async (t, s) => {
    const base = uniqueRoom('x');
    const abc = `${base}abc`;
    const abd = `${base}abd`;
    let owner, opener;
    try {
      owner = await lockRoom(s, abd, 'abd-pw');
      opener = await connect(s.wsUrl(abc, stdToken(abc, { roomCtx: { lobby: false, password: '' } })));
      assertJoinRefused(await opener.joinMuc(roomJidOf(abd), 'opener'), 'registration-required', 'settings token of abc in abd');
      await assertStillLocked(s, abd, 'abd-pw', opener.bareJid);
    } finally {
      await stopAll(owner, opener);
    }
  }, opts);

  bad('1.9 standard token for "abc" with password/lobby does not change an open "abd"', server, async (t, s) => {
    const base = uniqueRoom('x');
    const abc = `${base}abc`;
    const abd = `${base}abd`;
    let first, evil;
    try {
      first = await connect(s.wsUrl(abd, stdToken(abd)));
      assert.equal((await first.joinMuc(roomJidOf(abd), 'first')).ok, true);
      evil = await connect(s.wsUrl(abc, stdToken(abc, { roomCtx: { lobby: true, password: 'evil' } })));
      assert.equal((await evil.joinMuc(roomJidOf(abd), 'evil')).ok, true, 'an open room lets anyone in');
      await sleep(150);
      const st = await roomState(s.httpPort, roomJidOf(abd));
      assert.equal(st.password, null, `abd password unchanged: ${JSON.stringify(st)}`);
      assert.equal(st.lobbyroom, null, 'no lobby in abd');
      assert.equal(st.members_only, false);
    } finally {
      await stopAll(first, evil);
    }
  }, opts);

  // ---- tenants ----
  bad('2.1 tenant t1 token (room abc, bypass) is refused in a locked [t2]abc and not made member', server, async (t, s) => {
    const abc = `${uniqueRoom('t')}abc`;
    const t2 = `[t2]${abc}`;
    let owner, vip;
    try {
      owner = await lockRoom(s, t2, 't2-pw', { claimRoom: abc, tenant: 't2' });
      vip = await connect(s.wsUrl(abc, stdToken(abc, { tenant: 't1', user: { security_bypass: true } })));
      assertJoinRefused(await vip.joinMuc(roomJidOf(t2), 'vip'), 'registration-required', 't1 bypass in [t2]');
      await assertStillLocked(s, t2, 't2-pw', vip.bareJid);
    } finally {
      await stopAll(owner, vip);
    }
  }, opts);

  bad('2.2 tenant t1 token (room abc, password) does not set the password of an open [t2]abc', server, async (t, s) => {
    const abc = `${uniqueRoom('t')}abc`;
    const t2 = `[t2]${abc}`;
    let first, evil;
    try {
      first = await connect(s.wsUrl(abc, stdToken(abc, { tenant: 't2' })));
      assert.equal((await first.joinMuc(roomJidOf(t2), 'first')).ok, true);
      evil = await connect(s.wsUrl(abc, stdToken(abc, { tenant: 't1', roomCtx: { password: 't1-pw', lobby: true } })));
      assert.equal((await evil.joinMuc(roomJidOf(t2), 'evil')).ok, true);
      await sleep(150);
      const st = await roomState(s.httpPort, roomJidOf(t2));
      assert.equal(st.password, null, `[t2] password unchanged: ${JSON.stringify(st)}`);
      assert.equal(st.lobbyroom, null, '[t2] no lobby');
    } finally {
      await stopAll(first, evil);
    }
  }, opts);

  bad('2.3 the same tenant t1 token works in [t1]abc: sets the password; bypass passes a locked [t1]abc', server, async (t, s) => {
    const abc = `${uniqueRoom('t')}abc`;
    const t1 = `[t1]${abc}`;
    const abc2 = `${uniqueRoom('t')}abc`;
    const t1b = `[t1]${abc2}`;
    let setter, owner, vip;
    try {
      setter = await connect(s.wsUrl(abc, stdToken(abc, { tenant: 't1', roomCtx: { password: 't1-pw' } })));
      assert.equal((await setter.joinMuc(roomJidOf(t1), 'setter')).ok, true);
      await eventually(s.httpPort, roomJidOf(t1), (st) => assert.equal(st.password, 't1-pw'));

      owner = await lockRoom(s, t1b, 'lock-pw', { claimRoom: abc2, tenant: 't1' });
      vip = await connect(s.wsUrl(abc2, stdToken(abc2, { tenant: 't1', user: { security_bypass: true } })));
      const j = await vip.joinMuc(roomJidOf(t1b), 'vip');
      assert.equal(j.ok, true, JSON.stringify(j));
      assert.equal(j.affiliation, 'member');
    } finally {
      await stopAll(setter, owner, vip);
    }
  }, opts);

  bad('2.4 room "*" with tenant t1: bypass works in [t1]anything, not in [t2]x', server, async (t, s) => {
    const any = `[t1]${uniqueRoom('any')}`;
    const x = uniqueRoom('x');
    const t2 = `[t2]${x}`;
    let o1, o2, vip;
    try {
      o1 = await lockRoom(s, any, 'p1', { claimRoom: '*', tenant: 't1' });
      o2 = await lockRoom(s, t2, 'p2', { claimRoom: x, tenant: 't2' });
      vip = await connect(s.wsUrl('whatever', stdToken('*', { tenant: 't1', user: { security_bypass: true } })));
      const j = await vip.joinMuc(roomJidOf(any), 'vip');
      assert.equal(j.ok, true, `[t1] room: ${JSON.stringify(j)}`);
      assert.equal(j.affiliation, 'member');
      assertJoinRefused(await vip.joinMuc(roomJidOf(t2), 'vip'), 'registration-required', 'room * of t1 in [t2]');
      await assertStillLocked(s, t2, 'p2', vip.bareJid);
    } finally {
      await stopAll(o1, o2, vip);
    }
  }, opts);

  bad('2.5 without context.tenant, sub is the tenant: sub t1 bypasses in [t1]abc, not in [t2]abc', server, async (t, s) => {
    const abc = `${uniqueRoom('sub')}abc`;
    let o1, o2, vip;
    try {
      o1 = await lockRoom(s, `[t1]${abc}`, 'p1', { claimRoom: abc, sub: 't1' });
      o2 = await lockRoom(s, `[t2]${abc}`, 'p2', { claimRoom: abc, sub: 't2' });
      vip = await connect(s.wsUrl(abc, stdToken(abc, { sub: 't1', user: { security_bypass: true } })));
      const j = await vip.joinMuc(roomJidOf(`[t1]${abc}`), 'vip');
      assert.equal(j.ok, true, `[t1]: ${JSON.stringify(j)}`);
      assert.equal(j.affiliation, 'member');
      assertJoinRefused(await vip.joinMuc(roomJidOf(`[t2]${abc}`), 'vip'), 'registration-required', 'sub t1 in [t2]');
      await assertStillLocked(s, `[t2]${abc}`, 'p2', vip.bareJid);
    } finally {
      await stopAll(o1, o2, vip);
    }
  }, opts);

  bad('2.6 a token without tenant (sub localhost) for "abc" does not bypass in [t1]abc', server, async (t, s) => {
    const abc = `${uniqueRoom('nt')}abc`;
    let owner, vip;
    try {
      owner = await lockRoom(s, `[t1]${abc}`, 'p1', { claimRoom: abc, tenant: 't1' });
      vip = await connect(s.wsUrl(abc, stdToken(abc, { user: { security_bypass: true } })));
      assertJoinRefused(await vip.joinMuc(roomJidOf(`[t1]${abc}`), 'vip'), 'registration-required', 'no tenant in [t1]');
      await assertStillLocked(s, `[t1]${abc}`, 'p1', vip.bareJid);
    } finally {
      await stopAll(owner, vip);
    }
  }, opts);
});

// ===========================================================================
describe('bad input 3-6: malformed tokens, hostile bytes, log forgery', () => {
  let uvs;
  const server = useProsody(async () => {
    requireProduct();
    uvs = await startUvs({ authToken: UVS_TOKEN });
    return hybridConfig(uvs.url);
  });
  after(async () => {
    await uvs?.stop();
  });
  const opts = { getUvs: () => uvs };
  const mx = (o) => matrixUser(uvs, o);

  // ---- 6. token structure (standard path, over WebSocket ?token=) ----
  const good = () => stdToken('struct-room');
  const [gh, gp, gs] = (() => stdToken('struct-room').split('.'))();
  const hdr = { alg: 'HS256', typ: 'JWT' };
  const deep = (n) => `{"x":${'['.repeat(n)}${']'.repeat(n)}}`;
  const structure = [
    ['one segment', () => 'abcdef', /segments/],
    ['two segments', () => `${gh}.${gp}`, /segments/],
    ['four segments', () => `${good()}.x`, /segments/],
    ['only dots "..."', () => '...', /segments/],
    ['empty segments ".."', () => '..', /header/],
    ['empty header segment', () => `.${gp}.${gs}`, /header/],
    ['"+" and "/" (base64, not base64url)', () => `${gh}.${gp}.ab+c/d`, /base64url/],
    ['a space inside', () => `${gh}.${gp} .${gs}`, /base64url/],
    ['"%" characters', () => '%%%.e30.sig', /base64url/],
    ['header of invalid base64url length', () => `a.${gp}.${gs}`, /header/],
    ['payload of invalid base64url length', () => `${gh}.a.${gs}`, /payload/],
    ['header not JSON', () => rawJws('not json', '{}'), /header/],
    ['payload not JSON', () => rawJws(JSON.stringify(hdr), '{"iss":'), /payload/],
    ['payload a JSON array', () => rawJws(JSON.stringify(hdr), '[1,2,3]'), /payload/],
    ['payload a JSON string', () => rawJws(JSON.stringify(hdr), '"abc"'), /payload/],
    ['payload a JSON number', () => rawJws(JSON.stringify(hdr), '42'), /payload/],
    ['payload JSON null', () => rawJws(JSON.stringify(hdr), 'null'), /payload/],
    ['header a JSON array', () => rawJws('["HS256"]', '{}'), /header/],
    ['payload with 3000 nested arrays (the deepest a 10 KB request head carries)', () => rawJws(JSON.stringify(hdr), deep(3000)), /payload/],
    ['header with 3000 nested arrays', () => rawJws(deep(3000), '{}'), /header/],
    ['payload with a number out of range (exp 1e400)', () => rawJws(JSON.stringify(hdr), '{"iss":"x","exp":1e400}'), /payload/],
  ];
  for (const [what, make, reason] of structure) {
    bad(`6.s ${what}: not-authorized (${reason.source}), auth_token_decode_issue`, server, async (t, s, mark) => {
      const res = await viaClient(wsRaw(s, `room=struct-room&token=${enc(make())}`));
      await expectRefusal(s, mark, res, { condition: 'not-authorized', keyword: reason, code: 'auth_token_decode_issue' }, what);
    }, opts);
  }

  bad('6.s base64 with "=" padding in every segment: refused as malformed (JWS segments have no padding)', server, async (t, s, mark) => {
    const pad = (seg) => seg + '='.repeat((4 - (seg.length % 4)) % 4);
    const tok = good().split('.').map(pad).join('.');
    assert.match(tok, /=/, 'sanity: the token has padding');
    const res = await viaClient(wsRaw(s, `room=struct-room&token=${enc(tok)}`));
    await expectRefusal(s, mark, res, {
      condition: 'not-authorized', keyword: /base64url/, code: 'auth_token_decode_issue',
    }, 'padded');
  }, opts);

  bad('6.s empty signature segment: not-authorized "token signature is invalid"', server, async (t, s, mark) => {
    const res = await viaClient(wsRaw(s, `room=r&token=${enc(`${gh}.${gp}.`)}`));
    await expectRefusal(s, mark, res, { condition: 'not-authorized', keyword: /signature/, code: 'invalid_auth_token' }, 'no signature');
  }, opts);

  // ---- 6. claims of the wrong type (correctly signed standard tokens) ----
  const typed = [
    ['exp a string', { exp: 'later' }, /'exp'/],
    ['nbf a string', { nbf: 'soon' }, /'nbf'/],
    ['iss a number', { iss: 5 }, /'iss'/],
    ['iss missing', { iss: undefined }, /'iss'/],
    ['aud an object', { aud: { a: 1 } }, /'aud'/],
    ['aud an array with a number', { aud: ['jitsi', 7] }, /'aud'/],
    ['room a number', { room: 5 }, /'room'/],
    ['room missing', { room: undefined }, /'room'/],
    // UNSURE: a string context is refused here as a claim of the wrong type (not silently ignored).
    ['context a string', { context: 'not an object' }, /'context'/],
    ['expired (exp = now - 1)', { exp: now() - 1 }, /expired/],
    ['nbf in the future', { nbf: now() + 600 }, /nbf/],
  ];
  for (const [what, patch, keyword] of typed) {
    bad(`6.c standard token, ${what}: not-authorized (${keyword.source}), invalid_auth_token`, server, async (t, s, mark) => {
      const c = { ...claims('typed-room'), ...patch };
      for (const k of Object.keys(patch)) if (patch[k] === undefined) delete c[k];
      const res = await viaClient(s.wsUrl('typed-room', hs(c)));
      await expectRefusal(s, mark, res, { condition: 'not-authorized', keyword, code: 'invalid_auth_token' }, what);
    }, opts);
  }

  // ---- 6. algorithm variants ----
  const rsa = rsaKeyPair();
  const algs = [
    ['alg none, empty signature', () => sign(claims('alg-room'), { alg: 'none' }), "'none'"],
    ['alg None', () => `${b64url(JSON.stringify({ alg: 'None', typ: 'JWT' }))}.${b64url(JSON.stringify(claims('alg-room')))}.`, "'None'"],
    ['alg NONE', () => `${b64url(JSON.stringify({ alg: 'NONE', typ: 'JWT' }))}.${b64url(JSON.stringify(claims('alg-room')))}.`, "'NONE'"],
    ['alg hs256 (lower case)', () => hsRaw({ alg: 'hs256', typ: 'JWT' }, claims('alg-room')), "'hs256'"],
    ['HS384 signed with the secret', () => sign(claims('alg-room'), { alg: 'HS384', key: SECRET }), "'HS384'"],
    ['HS/RS confusion: RS256 header, HMAC-SHA256 with the secret', () => hsRaw({ alg: 'RS256', typ: 'JWT' }, claims('alg-room')), "'RS256'"],
    ['RS256 signed with an unknown RSA key', () => sign(claims('alg-room'), { alg: 'RS256', key: rsa.privateKey }), "'RS256'"],
    // UNSURE: how an absent alg is named in the text; the value shown follows the current code.
    ['alg missing', () => hsRaw({ typ: 'JWT' }, claims('alg-room')), "'(missing)'"],
  ];
  for (const [what, make, got] of algs) {
    bad(`6.a ${what}: not-authorized, the text names algorithm ${got}, invalid_auth_token`, server, async (t, s, mark) => {
      const res = await viaClient(s.wsUrl('alg-room', make()));
      await expectRefusal(s, mark, res, { condition: 'not-authorized', keyword: literally(`algorithm ${got}`), code: 'invalid_auth_token' }, what);
    }, opts);
  }

  bad('6.a typ "JWS": not-authorized "token type \'JWS\' is not JWT"', server, async (t, s, mark) => {
    const res = await viaClient(s.wsUrl('typ-room', hsRaw({ alg: 'HS256', typ: 'JWS' }, claims('typ-room'))));
    await expectRefusal(s, mark, res, { condition: 'not-authorized', keyword: /'JWS'/, code: 'invalid_auth_token' }, 'typ JWS');
  }, opts);

  // ---- 6. Matrix fields missing or of the wrong type ----
  const matrixFields = [
    ['context.matrix a string', { matrix: 'x' }, 'bad-request', /context\.matrix\b/, 'missing_matrix_room_id'],
    ['context.matrix an array', { matrix: [] }, 'bad-request', /context\.matrix\b/, 'missing_matrix_room_id'],
    ['room_id a number', { room_id: 42 }, 'bad-request', /room_id/, 'missing_matrix_room_id'],
    ['room_id missing', { room_id: undefined }, 'bad-request', /room_id/, 'missing_matrix_room_id'],
    ['room_id empty', { room_id: '' }, 'bad-request', /room_id/, 'missing_matrix_room_id'],
    ['OpenID token missing', { token: undefined }, 'bad-request', /OpenID/, 'missing_matrix_room_id'],
    ['OpenID token a number', { token: 12345 }, 'bad-request', /OpenID/, 'missing_matrix_room_id'],
  ];
  for (const [what, patch, condition, keyword, code] of matrixFields) {
    bad(`6.m Matrix token, ${what}: ${condition} (${keyword.source}), ${code}`, server, async (t, s, mark) => {
      const roomId = uniqueMatrixRoomId('mf');
      const c = matrixClaims({ iss: APP_ID, openid: uniqueOpenid('mf'), roomId });
      if (Object.hasOwn(patch, 'matrix')) c.context.matrix = patch.matrix;
      else for (const [k, v] of Object.entries(patch)) if (v === undefined) delete c.context.matrix[k]; else c.context.matrix[k] = v;
      const res = await viaClient(s.wsUrl(jitsiRoomOf(roomId), sign(c, { alg: 'HS256', key: 'notused' })));
      await expectRefusal(s, mark, res, { condition, keyword, code }, what);
    }, opts);
  }

  const matrixIss = [
    ['iss a number', { iss: 7 }, /'iss'/],
    ['iss missing', { iss: undefined }, /'iss'/],
    ['iss of another app', { iss: 'another-app' }, /'another-app'/],
    ['expired', { exp: now() - 10 }, /expired/],
    ['nbf in the future', { nbf: now() + 600 }, /nbf/],
  ];
  for (const [what, patch, keyword] of matrixIss) {
    bad(`6.m Matrix token, ${what}: not-authorized (${keyword.source}), invalid_auth_token`, server, async (t, s, mark) => {
      const u = mx();
      const c = matrixClaims({ iss: APP_ID, openid: u.openid, roomId: u.roomId, extra: patch });
      for (const k of Object.keys(patch)) if (patch[k] === undefined) delete c[k];
      const res = await viaClient(s.wsUrl(u.room, sign(c, { alg: 'HS256', key: 'notused' })));
      await expectRefusal(s, mark, res, { condition: 'not-authorized', keyword, code: 'invalid_auth_token' }, what);
    }, opts);
  }

  bad('6.m Matrix token without ?room=: bad-request "no room name was given"', server, async (t, s, mark) => {
    const u = mx();
    const res = await viaClient(s.wsUrl(undefined, u.token));
    await expectRefusal(s, mark, res, { condition: 'bad-request', keyword: /room/, code: 'missing_matrix_room_id' }, 'no room');
  }, opts);

  bad('6.m Matrix token whose context.user is a string: logs in with no display name (nothing breaks)', server, async (t, s) => {
    const u = mx();
    const c = matrixClaims({ iss: APP_ID, openid: u.openid, roomId: u.roomId });
    c.context.user = 'not an object';
    let cl;
    try {
      cl = await connect(s.wsUrl(u.room, sign(c, { alg: 'HS256', key: 'notused' })));
      const f = await sessionFields(s.httpPort, cl.jid);
      assert.deepEqual(f.jitsi_meet_context_user, { id: u.userId });
    } finally {
      await stopAll(cl);
    }
  }, opts);

  // ---- 6. repeated parameters, query vs Bearer ----
  bad('6.q ?token=garbage&token=garbage2: not-authorized malformed', server, async (t, s, mark) => {
    const res = await viaClient(wsRaw(s, 'room=r&token=abc&token=def'));
    await expectRefusal(s, mark, res, { condition: 'not-authorized', keyword: /segments/, code: 'auth_token_decode_issue' }, 'two garbage tokens');
  }, opts);

  // Prosody's formdecode keeps the last value of a repeated parameter
  // (docs/design.md, "How a token arrives"): the last token and room count.
  bad('6.q ?token=<valid>&token=<garbage>: the last one counts, refused as malformed', server, async (t, s, mark) => {
    const res = await viaClient(wsRaw(s, `room=qq&token=${enc(stdToken('qq'))}&token=garbage`));
    await expectRefusal(s, mark, res, { condition: 'not-authorized', keyword: /segments/, code: 'auth_token_decode_issue' }, 'valid then garbage');
  }, opts);

  bad('6.q ?token=<garbage>&token=<valid>: the last one counts, logs in', server, async (t, s) => {
    const res = await viaClient(wsRaw(s, `room=qq&token=garbage&token=${enc(stdToken('qq'))}`));
    assert.equal(res.kind, 'success', JSON.stringify(res));
  }, opts);

  bad('6.q ?room=a&room=b with a Matrix token for b: the last room counts, logs in', server, async (t, s) => {
    const u = mx();
    const res = await viaClient(wsRaw(s, `room=nonsense&room=${u.room}&token=${enc(u.token)}`));
    assert.equal(res.kind, 'success', JSON.stringify(res));
  }, opts);

  bad('6.q ?room=b&room=a with a Matrix token for b: the last room counts, refused', server, async (t, s, mark) => {
    const u = mx();
    const res = await viaClient(wsRaw(s, `room=${u.room}&room=nonsense&token=${enc(u.token)}`));
    await expectRefusal(s, mark, res, { condition: 'bad-request', keyword: literally("'nonsense'"), code: 'jitsi_and_matrix_room_mismatch' }, 'room then nonsense');
  }, opts);

  const bearer = (v) => [['Authorization', Buffer.isBuffer(v) ? Buffer.concat([Buffer.from('Bearer '), v]) : `Bearer ${v}`]];

  bad('6.q Bearer header alone (raw WebSocket): logs in', server, async (t, s) => {
    const res = await wsLogin(s.httpPort, { query: '?room=br', headers: bearer(stdToken('br')) });
    assert.equal(res.kind, 'success', JSON.stringify(res).slice(0, 500));
  }, opts);

  bad('6.q "bearer" in lower case: logs in', server, async (t, s) => {
    const res = await wsLogin(s.httpPort, { query: '?room=br', headers: [['Authorization', `bearer ${stdToken('br')}`]] });
    assert.equal(res.kind, 'success', JSON.stringify(res).slice(0, 500));
  }, opts);

  bad('6.q bad ?token= and a good Bearer: the query wins, refused', server, async (t, s, mark) => {
    const res = await wsLogin(s.httpPort, { query: '?room=br&token=garbage', headers: bearer(stdToken('br')) });
    await expectRefusal(s, mark, res, { condition: 'not-authorized', keyword: /segments/, code: 'auth_token_decode_issue' }, 'query wins');
  }, opts);

  bad('6.q empty ?token= and a good Bearer: the Bearer is used, logs in', server, async (t, s) => {
    const res = await wsLogin(s.httpPort, { query: '?room=br&token=', headers: bearer(stdToken('br')) });
    assert.equal(res.kind, 'success', JSON.stringify(res).slice(0, 500));
  }, opts);

  bad('6.q Authorization: Basic (no token): not-authorized "no token was presented"', server, async (t, s) => {
    const res = await wsLogin(s.httpPort, { query: '?room=br', headers: [['Authorization', 'Basic dXNlcjpwYXNz']] });
    await expectRefusal(s, null, res, { condition: 'not-authorized', keyword: /no token/ }, 'basic');
  }, opts);

  bad('6.q query string without "=" (?%FF): no token, not-authorized "no token was presented"', server, async (t, s) => {
    const res = await viaClient(wsRaw(s, '%FF'));
    await expectRefusal(s, null, res, { condition: 'not-authorized', keyword: /no token/ }, 'no =');
  }, opts);

  // ---- 3. invalid UTF-8 over WebSocket and BOSH ----
  const notB64 = /base64url/;
  bad('3.1 WebSocket ?token=%FF: not-authorized malformed', server, async (t, s, mark) => {
    const res = await viaClient(wsRaw(s, 'room=u8&token=%FF'));
    await expectRefusal(s, mark, res, { condition: 'not-authorized', keyword: notB64, code: 'auth_token_decode_issue' }, 'ws %FF');
  }, opts);

  bad('3.2 WebSocket ?token=%C3%A9 (UTF-8, not ASCII): not-authorized malformed', server, async (t, s, mark) => {
    const res = await viaClient(wsRaw(s, 'room=u8&token=%C3%A9'));
    await expectRefusal(s, mark, res, { condition: 'not-authorized', keyword: notB64, code: 'auth_token_decode_issue' }, 'ws é');
  }, opts);

  bad('3.3 WebSocket ?room=%FF with a Matrix token: bad-request "room name \'\\xff\' is not a base32 ..."', server, async (t, s, mark) => {
    const u = mx();
    const res = await viaClient(wsRaw(s, `room=%FF&token=${enc(u.token)}`));
    await expectRefusal(s, mark, res, { condition: 'bad-request', keyword: literally("'\\xff'"), code: 'jitsi_and_matrix_room_mismatch' }, 'ws room %FF');
  }, opts);

  bad('3.4 WebSocket Authorization: Bearer \\xff\\xfe (raw upgrade): not-authorized malformed', server, async (t, s, mark) => {
    const res = await wsLogin(s.httpPort, { query: '?room=u8', headers: bearer(Buffer.from([0xff, 0xfe, 0x41])) });
    await expectRefusal(s, mark, res, { condition: 'not-authorized', keyword: notB64, code: 'auth_token_decode_issue' }, 'ws bearer \\xff');
  }, opts);

  bad('3.5 WebSocket ?room=%FF with a standard token: logs in (the room name is not the standard token\'s business)', server, async (t, s) => {
    const res = await viaClient(wsRaw(s, `room=%FF&token=${enc(stdToken('u8'))}`));
    assert.equal(res.kind, 'success', JSON.stringify(res));
  }, opts);

  bad('3.6 BOSH ?token=%FF: not-authorized malformed', server, async (t, s, mark) => {
    const res = await boshLogin(s.httpPort, { query: '?room=u8&token=%FF' });
    await expectRefusal(s, mark, res, { condition: 'not-authorized', keyword: notB64, code: 'auth_token_decode_issue' }, 'bosh %FF');
  }, opts);

  bad('3.7 BOSH ?room=%FF with a Matrix token: bad-request room name \'\\xff\'', server, async (t, s, mark) => {
    const u = mx();
    const res = await boshLogin(s.httpPort, { query: `?room=%FF&token=${enc(u.token)}` });
    await expectRefusal(s, mark, res, { condition: 'bad-request', keyword: literally("'\\xff'"), code: 'jitsi_and_matrix_room_mismatch' }, 'bosh room %FF');
  }, opts);

  bad('3.8 BOSH Authorization: Bearer \\xff\\xfe: not-authorized malformed', server, async (t, s, mark) => {
    const res = await boshLogin(s.httpPort, { query: '?room=u8', headers: bearer(Buffer.from([0xff, 0xfe, 0x41])) });
    await expectRefusal(s, mark, res, { condition: 'not-authorized', keyword: notB64, code: 'auth_token_decode_issue' }, 'bosh bearer \\xff');
  }, opts);

  bad('3.9 BOSH control: a valid Matrix login over BOSH succeeds', server, async (t, s) => {
    const u = mx();
    const res = await boshLogin(s.httpPort, { query: `?room=${u.room}&token=${enc(u.token)}` });
    assert.equal(res.kind, 'success', JSON.stringify(res).slice(0, 500));
  }, opts);

  // ---- 4. control characters in the room name (Matrix token) ----
  const roomNames = [
    ['NUL', 'ab%00cd', Buffer.from('ab\0cd')],
    ['newline', 'ab%0Acd', Buffer.from('ab\ncd')],
    ['CR, DEL and tab', 'a%0D%7F%09b', Buffer.from('a\r\x7f\tb')],
    ['quote and backslash', "it's%5C", Buffer.from("it's\\")],
    ['200 bytes (cut at 64)', 'z'.repeat(200), Buffer.from('z'.repeat(200))],
    ['100 NUL bytes (cut at 64)', '%00'.repeat(100), Buffer.alloc(100)],
  ];
  for (const [what, q, bytes] of roomNames) {
    bad(`4. room name with ${what}: bad-request, the text shows ${shown(bytes).slice(0, 40)}`, server, async (t, s, mark) => {
      const u = mx();
      const res = await viaClient(wsRaw(s, `room=${q}&token=${enc(u.token)}`));
      await expectRefusal(
        s,
        mark,
        res,
        { condition: 'bad-request', keyword: literally(shown(bytes)), code: 'jitsi_and_matrix_room_mismatch' },
        what,
      );
    }, opts);
  }

  bad('4. Matrix room id with a NUL (room name its base32): UVS says not a member, the id shown escaped', server, async (t, s, mark) => {
    const roomId = '!a\0b:example.org';
    const u = mx({ roomId, rooms: { '!other:example.org': 0 } });
    const res = await viaClient(s.wsUrl(u.room, u.token));
    await expectRefusal(s, mark, res, { condition: 'not-authorized', keyword: literally(shown(roomId)), code: 'not_in_room' }, 'NUL room id');
  }, opts);

  // ---- 5. log forgery ----
  bad('5.1 header alg with a newline + forged REQUEST_COMPLETE: refused, text escaped, no forged line', server, async (t, s, mark) => {
    const res = await viaClient(s.wsUrl('forge', hsRaw({ alg: NL_FORGED, typ: 'JWT' }, claims('forge'))));
    await expectRefusal(s, mark, res, { condition: 'not-authorized', keyword: literally(`'${ESC_FORGED}'`), code: 'invalid_auth_token' }, 'alg');
  }, opts);

  bad('5.2 header alg with a CR + forged REQUEST_COMPLETE', server, async (t, s, mark) => {
    const res = await viaClient(s.wsUrl('forge', hsRaw({ alg: `\r${FORGED}`, typ: 'JWT' }, claims('forge'))));
    await expectRefusal(s, mark, res, { condition: 'not-authorized', keyword: literally(`'\\x0d${FORGED}'`), code: 'invalid_auth_token' }, 'alg CR');
  }, opts);

  bad('5.3 header typ with a newline + forged REQUEST_COMPLETE', server, async (t, s, mark) => {
    const res = await viaClient(s.wsUrl('forge', hsRaw({ alg: 'HS256', typ: NL_FORGED }, claims('forge'))));
    await expectRefusal(s, mark, res, { condition: 'not-authorized', keyword: literally(`'${ESC_FORGED}'`), code: 'invalid_auth_token' }, 'typ');
  }, opts);

  bad('5.4 Matrix token iss with a newline + forged REQUEST_COMPLETE', server, async (t, s, mark) => {
    const u = mx({ iss: NL_FORGED });
    const res = await viaClient(s.wsUrl(u.room, u.token));
    await expectRefusal(s, mark, res, { condition: 'not-authorized', keyword: literally(`'${ESC_FORGED}'`), code: 'invalid_auth_token' }, 'matrix iss');
  }, opts);

  bad('5.5 signed standard token iss with a newline + forged REQUEST_COMPLETE', server, async (t, s, mark) => {
    const res = await viaClient(s.wsUrl('forge', hs({ ...claims('forge'), iss: NL_FORGED })));
    await expectRefusal(s, mark, res, { condition: 'not-authorized', keyword: literally(`'${ESC_FORGED}'`), code: 'invalid_auth_token' }, 'std iss');
  }, opts);

  bad('5.6 context.matrix.room_id forged, room name of another room: not-allowed, both escaped', server, async (t, s, mark) => {
    const openid = uniqueOpenid('forge');
    const other = jitsiRoomOf(uniqueMatrixRoomId('forge-other'));
    const tok = matrixToken({ iss: APP_ID, openid, roomId: NL_FORGED });
    const res = await viaClient(s.wsUrl(other, tok));
    await expectRefusal(s, mark, res, { condition: 'not-allowed', keyword: literally(`'${ESC_FORGED}'`), code: 'jitsi_and_matrix_room_mismatch' }, 'room_id mismatch');
  }, opts);

  bad('5.7 context.matrix.room_id forged and the room name its base32: UVS asked, not a member, escaped', server, async (t, s, mark) => {
    const u = mx({ roomId: NL_FORGED, rooms: { '!x:example.org': 0 } });
    const res = await viaClient(s.wsUrl(u.room, u.token));
    await expectRefusal(s, mark, res, { condition: 'not-authorized', keyword: literally(`'${ESC_FORGED}'`), code: 'not_in_room' }, 'room_id');
  }, opts);

  bad('5.8 room name with a newline + forged REQUEST_COMPLETE (Matrix token)', server, async (t, s, mark) => {
    const u = mx();
    const res = await viaClient(wsRaw(s, `room=${enc(NL_FORGED)}&token=${enc(u.token)}`));
    await expectRefusal(s, mark, res, { condition: 'bad-request', keyword: literally(`'${ESC_FORGED}'`), code: 'jitsi_and_matrix_room_mismatch' }, 'room name');
  }, opts);

  bad('5.9 UVS answers a user_id with a newline + forged REQUEST_COMPLETE: clean outcome, no forged line', server, async (t, s) => {
    const u = mx();
    uvs.setBehaviour({ perToken: { [u.openid]: { userId: `@x:example.org${NL_FORGED}` } } });
    try {
      const res = await viaClient(s.wsUrl(u.room, u.token));
      assert.ok(res.kind === 'success' || (res.kind === 'failure' && res.condition && res.text), JSON.stringify(res));
    } finally {
      uvs.setBehaviour({});
    }
  }, opts);

  bad('5.10 the whole log of this server holds no forged REQUEST_COMPLETE line', server, async (t, s) => {
    const all = logBytes(s).toString('latin1');
    assert.ok(all.includes('REQUEST_COMPLETE'), 'sanity: attempts were logged');
    assert.deepEqual(forgedLines(all), []);
    const unescaped = all.split('\n').filter((l) => l.includes(FORGED) && !/\\x0[ad]REQUEST_COMPLETE reason:ok session:forged/.test(l));
    assert.deepEqual(unescaped, [], 'every occurrence of the forged text is escaped');
  }, opts);

  // ---- 6. oversize requests ----
  // Prosody 0.12's HTTP server (net.http.parser) looks for the end of a request
  // head in its first 10 KB and otherwise waits for more, up to
  // http_max_buffer_size: such a request never reaches our plugins, and the
  // connection is held until the client gives up. Nothing we load can
  // answer it; a reverse proxy in front (Jitsi's nginx limits request heads
  // to 8 KB by default, large_client_header_buffers) refuses it first.
  // Kept as todo so the day Prosody answers them, they show as passing.
  // Prosody 13 answers them (these pass there).
  const OVERSIZE_TODO = prosodyVersion().startsWith('0.12')
    ? "Prosody 0.12's HTTP parser holds request heads over 10 KB open (not reachable by plugins; see SECURITY.md)"
    : undefined;
  bad('6.o 100 KB token in the query (over Prosody\'s 10 KB request head): a clean refusal or close, no hang', server, async (t, s) => {
    const res = await wsLogin(s.httpPort, { query: `?room=big&token=${'a'.repeat(100 * 1024)}`, timeoutMs: 6000 });
    expectClean(res, '100 KB query', { allowClosed: true });
  }, { ...opts, todo: OVERSIZE_TODO });

  bad('6.o 1 MB query string: a clean refusal or close, no hang', server, async (t, s) => {
    const res = await wsLogin(s.httpPort, { query: `?room=big&token=${'a.b'.repeat(350 * 1024)}`, timeoutMs: 6000 });
    expectClean(res, '1 MB query', { allowClosed: true });
  }, { ...opts, todo: OVERSIZE_TODO });

  bad('6.o 100 KB Bearer header: a clean refusal or close, no hang', server, async (t, s) => {
    const res = await wsLogin(s.httpPort, { query: '?room=big', headers: bearer('a'.repeat(100 * 1024)), timeoutMs: 6000 });
    expectClean(res, '100 KB header', { allowClosed: true });
  }, { ...opts, todo: OVERSIZE_TODO });

  bad('6.o BOSH with a 100 KB query: a clean refusal or close, no hang', server, async (t, s) => {
    const res = await boshLogin(s.httpPort, { query: `?room=big&token=${'a'.repeat(100 * 1024)}`, timeoutMs: 6000 });
    expectClean(res, 'bosh 100 KB query', { allowClosed: true });
  }, { ...opts, todo: OVERSIZE_TODO });

  bad('6.o 9 KB garbage token (fits the request head): not-authorized malformed', server, async (t, s, mark) => {
    const res = await viaClient(wsRaw(s, `room=big&token=${'a'.repeat(9000)}.b.c`));
    await expectRefusal(s, mark, res, { condition: 'not-authorized', keyword: /header/, code: 'auth_token_decode_issue' }, '9 KB');
  }, opts);
});

// ===========================================================================
describe(`bad input 7: every UVS fault (uvs_timeout ${UVS_TIMEOUT_S})`, () => {
  let uvs;
  const server = useProsody(async () => {
    requireProduct();
    uvs = await startUvs({ authToken: UVS_TOKEN });
    return hybridConfig(uvs.url);
  });
  after(async () => {
    await uvs?.stop();
  });
  const opts = { getUvs: () => uvs };

  const faults = [
    ['a 10 MB body (content-length)', { hugeBody: true }, /larger than/],
    ['a 10 MB body (chunked)', { hugeBody: { chunked: true } }, /larger than/],
    ['a slow drip past uvs_timeout (one byte every 100 ms)', { drip: { intervalMs: 100 } }, /timed out/],
    ['no answer at all', { noAnswer: true }, /timed out/],
    ['HTML (200 text/html)', { html: true }, /not valid JSON/],
    ['string booleans ("true")', { stringBooleans: true }, /malformed results/],
    ['power level 1e400', { hugeNumbers: 'float' }, /not valid JSON/],
    ['power level 1e400 and state_default 99999999999999999999999', { hugeNumbers: true }, /not valid JSON/],
    ['a 302 redirect to a path that answers success', { redirect: true }, /302/],
    ['a 307 redirect', { redirect: { status: 307 } }, /307/],
    ['403 {} (what a wrong bearer gets)', { forbidden: true }, /403/],
    ['400 plain text (matrix_server_name required by a multi-server UVS)', { multiServer: true }, /400/],
    ['500', { status: 500 }, /500/],
    ['502 with an HTML body', { status: 502, body: '<html><body>Bad Gateway</body></html>', contentType: 'text/html' }, /502/],
    ['a reset connection', { drop: true }, /connection failed/],
    ['a truncated body', { truncated: true }, /connection failed/],
    ['an empty 200 body', { body: '' }, /not valid JSON/],
    ['200 JSON null', { body: 'null' }, /not a JSON object/],
    ['200 JSON array', { body: '[{"results":{"user":true,"room_membership":true}}]' }, /not a JSON object/],
    ['results null', { body: '{"results":null,"user_id":"@a:example.org"}' }, /results/],
    ['results an array', { body: '{"results":[true,true],"user_id":"@a:example.org"}' }, /results/],
  ];
  bad('7. UVS answers power level 99999999999999999999999: logged in, not owner (a power level that is not an integer in range counts as absent)', server, async (t, s, mark) => {
    const u = matrixUser(uvs, { power: 100 });
    uvs.setBehaviour({ perToken: { [u.openid]: { hugeNumbers: 'int' } } });
    try {
      const res = await viaClient(s.wsUrl(u.room, u.token));
      assert.equal(res.kind, 'success', JSON.stringify({ kind: res.kind, condition: res.condition, text: res.text }));
      await until(() => assert.ok(logSince(s, mark).toString('latin1').includes('REQUEST_COMPLETE reason:ok')), 3000, 25);
    } finally {
      uvs.setBehaviour({});
    }
  }, opts);

  for (const [what, behaviour, hint] of faults) {
    bad(`7. UVS answers ${what}: temporary-auth-failure, invalid_response (${hint.source})`, server, async (t, s, mark) => {
      const u = matrixUser(uvs);
      uvs.setBehaviour({ perToken: { [u.openid]: behaviour } });
      try {
        const res = await viaClient(s.wsUrl(u.room, u.token));
        t.diagnostic(`${what}: ${res.kind} after ${res.elapsed.toFixed(0)} ms: ${res.condition} ${JSON.stringify(res.text)}`);
        await expectRefusal(s, mark, res, { condition: 'temporary-auth-failure', keyword: hint, code: 'invalid_response' }, what);
        assert.ok(uvs.requests.some((r) => r.body?.token === u.openid), 'UVS was asked');
        if (behaviour.redirect) {
          assert.deepEqual(uvs.requests.filter((r) => r.path.startsWith(REDIRECT_PREFIX)), [], 'the redirect was not followed');
        }
      } finally {
        uvs.setBehaviour({});
      }
    }, opts);
  }

  bad('7. the real invalid-token shape (user false, room_membership null): not-authorized, invalid_token', server, async (t, s, mark) => {
    const roomId = uniqueMatrixRoomId('inv');
    const tok = matrixToken({ iss: APP_ID, openid: uniqueOpenid('unknown'), roomId });
    const res = await viaClient(s.wsUrl(jitsiRoomOf(roomId), tok));
    await expectRefusal(s, mark, res, { condition: 'not-authorized', keyword: /OpenID/, code: 'invalid_token' }, 'invalid token');
  }, opts);

  bad('7. invalidToken behaviour for a known user: not-authorized, invalid_token', server, async (t, s, mark) => {
    const u = matrixUser(uvs);
    uvs.setBehaviour({ perToken: { [u.openid]: { invalidToken: true } } });
    try {
      const res = await viaClient(s.wsUrl(u.room, u.token));
      await expectRefusal(s, mark, res, { condition: 'not-authorized', keyword: /OpenID/, code: 'invalid_token' }, 'invalid token');
    } finally {
      uvs.setBehaviour({});
    }
  }, opts);

  bad('7. the real non-member shape: not-authorized "user is not a member of Matrix room \'...\'", not_in_room', server, async (t, s, mark) => {
    const u = matrixUser(uvs, { rooms: { [uniqueMatrixRoomId('elsewhere')]: 100 } });
    const res = await viaClient(s.wsUrl(u.room, u.token));
    await expectRefusal(s, mark, res, { condition: 'not-authorized', keyword: literally(shown(u.roomId)), code: 'not_in_room' }, 'non-member');
  }, opts);

  bad('7. multi-server UVS with matrix_server_name given: logs in (control)', server, async (t, s, mark) => {
    const u = matrixUser(uvs, { tokenOpts: { serverName: 'example.org' } });
    uvs.setBehaviour({ perToken: { [u.openid]: { multiServer: true } } });
    let c;
    try {
      c = await connect(s.wsUrl(u.room, u.token));
      assert.deepEqual(await codesSince(s, mark, 1), ['ok']);
    } finally {
      uvs.setBehaviour({});
      await stopAll(c);
    }
  }, opts);

  bad('7. UVS slower than usual but within uvs_timeout (1.2 s): logs in (control)', server, async (t, s) => {
    const u = matrixUser(uvs);
    uvs.setBehaviour({ perToken: { [u.openid]: { latencyMs: 1200 } } });
    let c;
    try {
      c = await connect(s.wsUrl(u.room, u.token));
    } finally {
      uvs.setBehaviour({});
      await stopAll(c);
    }
  }, opts);

  bad('7. no UVS connection is left hanging after the timeouts', server, async (t, s) => {
    // drip/noAnswer cases above: Prosody must have dropped its side.
    await until(() => assert.equal(uvs.heldOpen(), 0, 'requests held open by noAnswer/drip'), 5000, 100);
  }, opts);
});

// ===========================================================================
describe('bad input 7: UVS on a closed port (connection refused)', () => {
  let uvs; // user table only: Prosody points at a closed port
  const server = useProsody(async () => {
    requireProduct();
    uvs = await startUvs();
    const [closed] = await freePorts(1);
    return hybridConfig(`http://127.0.0.1:${closed}`);
  });
  after(async () => {
    await uvs?.stop();
  });

  bad('7. connection refused: temporary-auth-failure "could not verify the Matrix user: ...", invalid_response, fast', server, async (t, s, mark) => {
    const u = matrixUser(uvs);
    const res = await viaClient(s.wsUrl(u.room, u.token));
    await expectRefusal(s, mark, res, { condition: 'temporary-auth-failure', keyword: /connection failed/, code: 'invalid_response' }, 'closed port');
  });
});
