// After the e2e suite: every Prosody log it saved (E2E_LOG_DIR) must be
// clean: no Lua traceback, no warn/error line from our plugins or about
// jitsi_security (lib/log_check.js). Lines a test provokes on purpose are
// declared by that test (startProsody's expectLog).
//
//   node check_logs.js <dir>   (make test-e2e / test-e2e-13 run it)

import { scanLogDir } from './lib/log_check.js';

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
if (problems.length) {
  console.error(`check_logs: ${problems.length} offending log entries in ${dir}:`);
  for (const p of problems) console.error(`--- ${p.why} (${p.testFile}, ${p.file})\n${p.text}`);
  process.exit(1);
}
console.log(`check_logs: ${servers} Prosody logs in ${dir}: no traceback, no warn/error from our plugins`);
