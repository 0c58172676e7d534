// Secret hygiene, checked last (node --test runs the files in name order):
// no secret that any earlier test file handed to a server (JWTs and their
// signatures, Matrix OpenID tokens, app_secret, uvs_auth_token,
// matrix_admin_token...) may appear in any Prosody log of the run. The
// whole suite runs with debug logging (prosody.js), so this covers debug
// lines too. Secrets are recorded by the common helpers (lib/secrets.js);
// the logs are the ones prosody.js saves in E2E_LOG_DIR for check_logs.js.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';

import { sign } from './lib/jwt.js';
import { SECRETS_FILE, findSecretsInLogs, findSecretsInText, logFiles, mask, recordSecret, recordedSecrets } from './lib/secrets.js';

const LOG_DIR = process.env.E2E_LOG_DIR;

describe('lib/secrets.js', () => {
  test('finds a secret in a log with its line, masked; ignores short strings', () => {
    const secret = 'tok-0123456789abcdef';
    const text = ['a\tinfo\tnothing here', `b\tdebug\tAuthorization: Bearer ${secret}`, 'c\tinfo\tabc'].join('\n');
    assert.deepEqual(findSecretsInText(text, [secret, 'abc']), [{ line: 2, masked: 'tok-…(20 chars)' }]);
    assert.ok(!mask(secret).includes(secret.slice(4)), 'the mask hides the secret');
  });

  test('records into E2E_LOG_DIR: sign() the token and its signature, and reads them back', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'e2e-secrets-'));
    const saved = process.env.E2E_LOG_DIR;
    try {
      process.env.E2E_LOG_DIR = dir;
      const token = sign({ iss: 'x', n: dir }, { alg: 'HS256', key: 'k' });
      recordSecret('short');
      const got = recordedSecrets(dir);
      assert.ok(got.includes(token), 'the whole token');
      assert.ok(got.includes(token.split('.')[2]), 'its signature');
      assert.ok(!got.includes('short'), 'shorter than 8 characters: ignored');
      fs.writeFileSync(path.join(dir, 'x.log'), `l1\nl2 ${token.split('.')[2]}\n`);
      const hits = findSecretsInLogs(dir, got);
      assert.equal(hits.length, 1, JSON.stringify(hits));
      assert.equal(hits[0].line, 2);
    } finally {
      if (saved === undefined) delete process.env.E2E_LOG_DIR;
      else process.env.E2E_LOG_DIR = saved;
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('secret hygiene of the whole run', () => {
  test('no recorded secret appears in any Prosody log of this run', { skip: LOG_DIR ? false : 'E2E_LOG_DIR is not set (make test-e2e sets it)' }, () => {
    const secrets = recordedSecrets(LOG_DIR);
    const logs = logFiles(LOG_DIR);
    assert.ok(logs.length > 0, `no Prosody log saved in ${LOG_DIR}: run the whole suite (make test-e2e)`);
    assert.ok(secrets.length > 0, `no secret recorded in ${path.join(LOG_DIR, SECRETS_FILE)}: run the whole suite (make test-e2e)`);
    const hits = findSecretsInLogs(LOG_DIR, secrets);
    const bytes = logs.reduce((n, f) => n + fs.statSync(f).size, 0);
    console.log(`secret hygiene: ${secrets.length} secrets, ${logs.length} log files (${bytes} bytes): ${hits.length} hits`);
    if (hits.length) {
      const shown = hits.slice(0, 50).map((h) => `  ${path.relative(LOG_DIR, h.file)}:${h.line}: ${h.masked}`);
      assert.fail(
        `${hits.length} secret(s) found in the Prosody logs of ${LOG_DIR}:\n${shown.join('\n')}` +
          (hits.length > 50 ? `\n  ... and ${hits.length - 50} more` : ''),
      );
    }
  });
});
