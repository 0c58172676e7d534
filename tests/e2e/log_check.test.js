// The log check that runs after the suite (check_logs.js): what it flags and
// what it lets through. Real lines from Prosody 0.12 and 13.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { offendingEntries, parseLog } from './lib/log_check.js';

const T = 'Nov 23 15:49:49';
const line = (source, level, msg) => `${T} ${source}\t${level}\t${msg}`;

test('refusals at info, debug lines and other modules\' warnings are clean', () => {
  const log = [
    line('startup', 'info', 'Hello and welcome to Prosody version 13.0.1'),
    line('localhost:auth_matrix_user_verification', 'info', 'REQUEST_COMPLETE reason:invalid_auth_token session:c2s1 token has expired'),
    line('localhost:auth_matrix_user_verification', 'info', 'login refused for session c2s1 (not-authorized): error in token'),
    line('conference.localhost:matrix_power_sync', 'info', 'refusing owner of r@conference.localhost to u@localhost: no Matrix power in this room'),
    line('conference.localhost:matrix_power_sync', 'debug', 'u@localhost in r@conference.localhost: keeps its affiliation'),
    line('mod_posix', 'warn', 'Received SIGTERM'),
    line('startup', 'warn', 'Received SIGTERM'),
  ].join('\n');
  assert.deepEqual(offendingEntries(log), []);
});

test('warn and error lines of each of our plugins are flagged', () => {
  for (const mod of ['auth_matrix_user_verification', 'auth_hybrid_matrix_token', 'token_security_ondemand', 'matrix_power_sync']) {
    for (const level of ['warn', 'error']) {
      const found = offendingEntries(line(`localhost:${mod}`, level, 'something went wrong'));
      assert.equal(found.length, 1, `${mod} ${level}`);
    }
  }
});

test('module loading errors that name our plugins or jitsi_security are flagged', () => {
  const log = [
    line('conference.localhost:muc', 'error', "Error initializing module 'matrix_power_sync' on 'conference.localhost': x"),
    line('modulemanager', 'error', "Unable to load module 'mod_token_security_ondemand': module 'jitsi_security' not found:"),
  ].join('\n');
  assert.equal(offendingEntries(log).length, 2);
});

test("Prosody 13's legacy is_admin() warning (a traceback from usermanager) is flagged", () => {
  const log = [
    line('usermanager', 'warn', 'Usage of legacy is_admin() API, which will be disabled in a future build: stack traceback:'),
    '\t/usr/lib/prosody/core/usermanager.lua:308: in function \'is_admin\'',
    '\t/work/main/lua/mod_matrix_power_sync.lua:26: in upvalue \'owner_input\'',
    line('usermanager', 'warn', 'See https://prosody.im/doc/developers/permissions about the new permissions API'),
  ].join('\n');
  const found = offendingEntries(log);
  assert.equal(found.length, 1);
  assert.equal(found[0].why, 'traceback');
  assert.match(found[0].text, /mod_matrix_power_sync\.lua:26/, 'continuation lines belong to the entry');
});

test('a Lua error in any module is flagged, whatever its level', () => {
  const log = line('c2s55', 'error', 'Traceback[c2s]: /x/mod_test_observer.lua:3: attempt to index a nil value');
  assert.equal(offendingEntries(log).length, 1);
  assert.equal(offendingEntries('', { stdout: 'lua5.4: x.lua:1: boom\nstack traceback:\n\t[C]: in ?' }).length, 1);
});

test("a test's declared lines are exempt for that server, never a traceback", () => {
  const warn = line('localhost:auth_matrix_user_verification', 'error', 'every token login will be refused: app_id is required');
  assert.equal(offendingEntries(warn, { expected: [/every token login will be refused: app_id is required/] }).length, 0);
  assert.equal(offendingEntries(warn, { expected: [/something else/] }).length, 1);
  const tb = line('localhost:auth_matrix_user_verification', 'error', 'Traceback[c2s]: boom');
  assert.equal(offendingEntries(tb, { expected: [/boom/] }).length, 1);
});

test('parseLog keeps level and source', () => {
  const [e] = parseLog(line('localhost:auth_matrix_user_verification', 'warn', 'x\ty'));
  assert.equal(e.source, 'localhost:auth_matrix_user_verification');
  assert.equal(e.level, 'warn');
});
