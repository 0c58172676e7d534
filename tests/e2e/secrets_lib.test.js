// lib/secrets.js, the secret-hygiene helpers. The check of the whole run
// (no recorded secret in any saved Prosody log) runs after the suite, in
// check_logs.js, so that it depends on no file order.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';

import { sign } from './lib/jwt.js';
import { findSecretsInLogs, findSecretsInText, mask, recordSecret, recordedSecrets } from './lib/secrets.js';

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
