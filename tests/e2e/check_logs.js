// After the e2e suite: every Prosody log it saved (E2E_LOG_DIR) must be
// clean: no Lua traceback, no warn/error line from our plugins or about
// jitsi_security (lib/log_check.js; lines a test provokes on purpose are
// declared by that test, startProsody's expectLog), and no secret any test
// handed to a server (JWTs and their signatures, OpenID tokens, app_secret,
// uvs_auth_token, matrix_admin_token..., recorded by lib/secrets.js) in any
// line. The suite logs at debug level, so debug lines are covered too.
//
//   node check_logs.js <dir>   (make test-e2e / test-e2e-13 run it)

import path from 'node:path';

import { scanLogDir } from './lib/log_check.js';
import { SECRETS_FILE, findSecretsInLogs, recordedSecrets } from './lib/secrets.js';

const dir = process.argv[2];
if (!dir) {
  console.error('usage: node check_logs.js <E2E_LOG_DIR>');
  process.exit(2);
}
const { servers, problems } = scanLogDir(dir);
if (servers === 0) {
  console.error(`check_logs: no Prosody log saved in ${dir} (was the suite run with E2E_LOG_DIR=${dir}?)`);
  process.exit(1);
}
const secrets = recordedSecrets(dir);
if (secrets.length === 0) {
  console.error(`check_logs: no secret recorded in ${path.join(dir, SECRETS_FILE)}: the secret check would prove nothing`);
  process.exit(1);
}
const hits = findSecretsInLogs(dir, secrets);
for (const h of hits.slice(0, 50)) problems.push({ why: 'a secret in a log', testFile: '', file: path.relative(dir, h.file), text: `line ${h.line}: ${h.masked}` });
if (problems.length) {
  console.error(`check_logs: ${problems.length} offending log entries in ${dir}:`);
  for (const p of problems) console.error(`--- ${p.why} (${p.testFile}, ${p.file})\n${p.text}`);
  process.exit(1);
}
console.log(`check_logs: ${servers} Prosody logs in ${dir}: no traceback, no warn/error from our plugins, none of ${secrets.length} secrets`);
