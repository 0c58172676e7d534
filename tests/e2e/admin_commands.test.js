// The admin commands (lua/mod_jitsi_security_admin.lua) run through the
// real prosodyctl of the Prosody under test (0.12, or 13 with PROSODY_BIN),
// reading the real config of a running test server's VirtualHost.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { now, sign } from './lib/jwt.js';
import { base32, matrixToken, uniqueMatrixRoomId, uniqueOpenid } from './lib/matrix.js';
import { DOMAIN, freePorts, luaCpath, startProsody } from './lib/prosody.js';
import { startUvs } from './lib/uvs_server.js';

const APP_ID = 'e2e-admin-app';
const APP_SECRET = `e2e-admin-secret-${crypto.randomBytes(12).toString('hex')}`;
const UVS_TOKEN = `e2e-admin-uvs-${crypto.randomBytes(12).toString('hex')}`;

/** prosodyctl beside PROSODY_BIN (the 13 launcher), else the system's. */
function prosodyctl() {
  const bin = process.env.PROSODY_BIN;
  if (bin && bin.includes('/')) {
    const ctl = path.join(path.dirname(bin), 'prosodyctl');
    if (fs.existsSync(ctl)) return ctl;
  }
  return 'prosodyctl';
}

/** Run a command; async, so that our UVS test server (this process) can answer it. */
function run(server, ...args) {
  return runWithInput(server, null, ...args);
}

/** run(), with `input` written to the command's standard input. */
function runWithInput(server, input, ...args) {
  return new Promise((resolve, reject) => {
    const child = spawn(prosodyctl(), ['--config', server.configPath, 'mod_jitsi_security_admin', ...args], {
      env: { ...process.env, LUA_CPATH_5_4: luaCpath() },
    });
    child.stdin.end(input ?? '');
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), 30000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

function checkLine(out, name) {
  const line = out.split('\n').find((l) => l.startsWith(name));
  assert.ok(line, `a "${name}" line in:\n${out}`);
  return line;
}

describe('admin commands through prosodyctl', () => {
  let server;
  let uvs;

  before(async () => {
    uvs = await startUvs({ authToken: UVS_TOKEN });
    server = await startProsody({
      vhost: {
        authentication: 'matrix_user_verification',
        app_id: APP_ID,
        app_secret: APP_SECRET,
        uvs_base_url: uvs.url,
        uvs_auth_token: UVS_TOKEN,
      },
      vhostModules: [],
    });
  });

  after(async () => {
    if (server) await server.stop();
    if (uvs) await uvs.stop();
  });

  test('room-name and room-id convert both ways (v11 and v12 ids)', async () => {
    for (const id of [uniqueMatrixRoomId(), '!AbCdEfGhIjKlMnOp']) {
      const name = await run(server, 'room-name', id);
      assert.equal(name.code, 0, name.out);
      assert.equal(name.out.trim(), base32(id).toLowerCase());
      const back = await run(server, 'room-id', name.out.trim());
      assert.equal(back.code, 0, back.out);
      assert.equal(back.out.trim(), id);
    }
    const bad = await run(server, 'room-id', 'not-base32!');
    assert.equal(bad.code, 1, bad.out);
    assert.match(bad.out, /is not a base32 encoded Matrix room id/);
  });

  test('check-token: a good token passes every check and its signature is never printed', async () => {
    const token = sign({ iss: APP_ID, aud: 'jitsi', sub: DOMAIN, room: 'r1', exp: now() + 600, context: { user: { name: 'A' } } },
      { key: APP_SECRET });
    const r = await run(server, 'check-token', DOMAIN, token);
    assert.equal(r.code, 0, r.out);
    for (const check of ['format', 'kind', 'header (alg)', 'signature', 'time (exp, nbf)', 'issuer', 'audience', 'room claim']) {
      assert.match(checkLine(r.out, check), /\bpass\b/, check);
    }
    assert.match(r.out, /"room": "r1"/);
    assert.ok(!r.out.includes(token.split('.')[2]), 'signature printed');
    assert.ok(!r.out.includes(APP_SECRET), 'secret printed');
  });

  test('check-token <token> <room>: says whether the room door opens that room', async () => {
    const token = sign({ iss: APP_ID, aud: 'jitsi', sub: DOMAIN, room: 'rooma', exp: now() + 600 }, { key: APP_SECRET });
    const own = await run(server, 'check-token', DOMAIN, token, 'rooma');
    assert.equal(own.code, 0, own.out);
    assert.match(checkLine(own.out, 'room door'), /\bpass\b/);
    const other = await run(server, 'check-token', DOMAIN, token, 'roomb');
    assert.equal(other.code, 1, other.out);
    assert.match(checkLine(other.out, 'room door'), /FAIL.*room_not_covered/);
    const tenant = sign({ iss: APP_ID, aud: 'jitsi', sub: 't1', room: '*', exp: now() + 600 }, { key: APP_SECRET });
    const boardroom = await run(server, 'check-token', DOMAIN, tenant, 'boardroom');
    assert.equal(boardroom.code, 1, boardroom.out);
    assert.match(checkLine(boardroom.out, 'room door'), /FAIL.*tenant_mismatch/);
  });

  test('check-token: a bad token names each failing check and exits 1', async () => {
    const token = sign({ iss: 'someone-else', aud: 'jitsi', room: 'r1', exp: now() - 5 }, { key: 'wrong-key' });
    const r = await run(server, 'check-token', DOMAIN, token);
    assert.equal(r.code, 1, r.out);
    assert.match(checkLine(r.out, 'signature'), /FAIL\s+token signature is invalid/);
    assert.match(checkLine(r.out, 'time (exp, nbf)'), /FAIL\s+token has expired/);
    assert.match(checkLine(r.out, 'issuer'), /FAIL\s+token issuer 'someone-else' is not accepted/);
    assert.match(checkLine(r.out, 'audience'), /pass/);
    const garbage = await run(server, 'check-token', DOMAIN, 'x.y');
    assert.equal(garbage.code, 1);
    assert.match(checkLine(garbage.out, 'format'), /FAIL\s+token is malformed/);
  });

  test('check-token: a Matrix token is checked against its room; the OpenID token is redacted', async () => {
    const roomId = uniqueMatrixRoomId();
    const openid = uniqueOpenid();
    const token = matrixToken({ iss: APP_ID, openid, roomId });
    const ok = await run(server, 'check-token', DOMAIN, token, base32(roomId).toLowerCase());
    assert.equal(ok.code, 0, ok.out);
    assert.match(checkLine(ok.out, 'kind'), /Matrix/);
    assert.ok(!ok.out.includes(openid), 'OpenID token printed');
    const wrong = await run(server, 'check-token', DOMAIN, token, base32('!other:example.org').toLowerCase());
    assert.equal(wrong.code, 1, wrong.out);
    assert.match(wrong.out, /does not match Matrix room id/);
  });

  test('check-matrix: UVS reachable, auth accepted, latency; a wrong bearer and a closed port are reported', async () => {
    const r = await run(server, 'check-matrix', DOMAIN);
    assert.equal(r.code, 0, r.out);
    assert.match(checkLine(r.out, 'UVS: reachable'), /pass\s+answered in [\d.]+ ms/);
    assert.match(checkLine(r.out, 'UVS: credentials'), /pass/);
    assert.ok(!r.out.includes(UVS_TOKEN), 'uvs_auth_token printed');

    const [closed] = await freePorts(1);
    const other = await startProsody({
      vhost: { authentication: 'matrix_user_verification', app_id: APP_ID, uvs_base_url: uvs.url, uvs_auth_token: 'wrong-bearer-1234' },
      muc: { uvs_base_url: `http://127.0.0.1:${closed}` },
    });
    try {
      const wrong = await run(other, 'check-matrix', DOMAIN);
      assert.equal(wrong.code, 1, wrong.out);
      assert.match(checkLine(wrong.out, 'UVS: credentials'), /FAIL\s+UVS refused uvs_auth_token \(HTTP 40[13]\)/);
      const down = await run(other, 'check-matrix', 'conference.localhost');
      assert.equal(down.code, 1, down.out);
      assert.match(checkLine(down.out, 'UVS: reachable'), /FAIL\s+connection failed/);
    } finally {
      await other.stop();
    }
  });

  test('check-config: a good host and its components pass (exit 0), with or without the host argument', async () => {
    for (const args of [['check-config', DOMAIN], ['check-config']]) {
      const r = await run(server, ...args);
      assert.equal(r.code, 0, r.out);
      assert.match(r.out, /^localhost \(auth_matrix_user_verification\)\n {2}ok\b/m);
      assert.doesNotMatch(r.out, /FAIL|traceback/i);
    }
  });

  test('check-config: each wrong option of the host and of its MUC components, with its fix (exit 1); no traceback anywhere', async () => {
    const broken = await startProsody({
      vhost: {
        authentication: 'matrix_user_verification',
        app_id: APP_ID,
        uvs_base_url: uvs.url,
        uvs_issuer: 'meet.example.com', // a single string: accepted
        uvs_timeout: '10',
        token_leeway: 1.5,
      },
      mucModules: ['matrix_power_sync'],
      muc: { matrix_resync_interval: 'often' },
      allowModuleErrors: true,
      // auth: "configuration error: token_leeway ...; uvs_timeout ...";
      // power sync: "configuration error: uvs_timeout ...; matrix_resync_interval ..."
      expectLog: [/configuration error: token_leeway /, /configuration error: uvs_timeout /],
    });
    try {
      const r = await run(broken, 'check-config', DOMAIN);
      assert.equal(r.code, 1, r.out);
      assert.match(r.out, /^ {2}FAIL {2}token_leeway is 1\.5, not a whole number/m);
      assert.match(r.out, /^ {2}FAIL {2}uvs_timeout is the string '10', not a number of seconds/m);
      assert.match(r.out, /^ {8}fix: write uvs_timeout = 5 /m);
      // The component reads uvs_timeout from its VirtualHost (as the running
      // module does), so it reports that one too.
      const component = r.out.slice(r.out.indexOf('conference.localhost (matrix_power_sync)\n'));
      assert.match(component, /^conference\.localhost/, r.out);
      assert.match(component, /^ {2}FAIL {2}uvs_timeout is the string '10'/m);
      assert.match(component, /^ {2}FAIL {2}matrix_resync_interval is the string 'often'/m);
      assert.doesNotMatch(r.out, /uvs_issuer/, 'a single-string uvs_issuer is fine');
      assert.match(r.out, /check-config: 4 problems/);
      for (const args of [['check-matrix', DOMAIN], ['check-token', DOMAIN, 'x.y'], ['check-config']]) {
        const o = await run(broken, ...args);
        assert.equal(o.code, 1, `${args.join(' ')}:\n${o.out}`);
        assert.match(o.out, /uvs_timeout is the string '10'/, args.join(' '));
        assert.doesNotMatch(o.out, /traceback|internal error/i, args.join(' '));
      }
    } finally {
      await broken.stop();
    }
  });

  test('check-matrix runs check-config first: a host without app_id fails (exit 1)', async () => {
    const noApp = await startProsody({
      vhost: { authentication: 'matrix_user_verification', uvs_base_url: uvs.url, uvs_auth_token: UVS_TOKEN, uvs_issuer: 'meet.example.com' },
      allowModuleErrors: true,
      expectLog: [/configuration error: app_id is not set/],
    });
    try {
      const r = await run(noApp, 'check-matrix', DOMAIN);
      assert.equal(r.code, 1, r.out);
      assert.match(r.out, /^ {2}FAIL {2}app_id is not set/m);
      assert.match(r.out, /^ {8}fix: set app_id /m);
      assert.doesNotMatch(r.out, /traceback|internal error/i);
    } finally {
      await noApp.stop();
    }
  });

  test('check-token -: the token from standard input; the room password is never printed; one row per check', async () => {
    const password = `pw-${crypto.randomBytes(8).toString('hex')}`;
    const token = sign({ iss: APP_ID, aud: 'jitsi', sub: DOMAIN, room: 'r1', exp: now() + 600,
      context: { user: { name: 'A' }, room: { password, lobby: true } } }, { key: APP_SECRET });
    const r = await runWithInput(server, `${token}\n`, 'check-token', DOMAIN, '-');
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /"room": "r1"/);
    assert.match(r.out, /"password": "<redacted>"/);
    assert.ok(!r.out.includes(password), `room password printed:\n${r.out}`);
    assert.ok(!r.out.includes(token.split('.')[2]), 'signature printed');
    for (const check of ['format', 'kind', 'signature', 'issuer']) {
      assert.equal(r.out.split('\n').filter((l) => l.startsWith(`${check} `)).length, 1, `one "${check}" row:\n${r.out}`);
    }
    assert.doesNotMatch(r.out, /pass\s+pass/);
    const empty = await runWithInput(server, '', 'check-token', DOMAIN, '-');
    assert.equal(empty.code, 1, empty.out);
    assert.match(checkLine(empty.out, 'format'), /FAIL/);
  });

  test('unknown host and unknown command', async () => {
    const r = await run(server, 'check-matrix', 'no.such.host');
    assert.equal(r.code, 1);
    assert.match(r.out, /no host no\.such\.host/);
    const u = await run(server, 'frobnicate');
    assert.equal(u.code, 2);
    assert.match(u.out, /usage: prosodyctl mod_jitsi_security_admin/);
  });
});
