// What a clean Prosody log means for this project: no Lua traceback at all,
// and no warn or error line from our plugins or about jitsi_security.
// Used by check_logs.js on the logs prosody.js saves (E2E_LOG_DIR).

import fs from 'node:fs';
import path from 'node:path';

/** Our plugins (module names as Prosody logs them, without "mod_"). */
export const OUR_MODULES = [
  'auth_matrix_user_verification',
  'auth_hybrid_matrix_token',
  'token_security_ondemand',
  'matrix_power_sync',
  'token_verification',
];

const OURS = new RegExp(`\\b(?:mod_)?(?:${OUR_MODULES.join('|')})\\b|jitsi_security`);
// util.debug / debug.traceback ("stack traceback:") and Prosody's error
// handlers ("Traceback[c2s]: ...").
const TRACEBACK = /stack traceback:|Traceback\[/;
// "Nov 23 15:49:49 localhost:auth_matrix_user_verification\twarn\tmessage"
const ENTRY = /^([A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) (\S+)\t(\w+)\t(.*)$/;

/**
 * Split a Prosody log into entries; the continuation lines of a multi-line
 * message (a traceback) belong to the entry before them.
 */
export function parseLog(text) {
  const entries = [];
  for (const line of text.split('\n')) {
    const m = ENTRY.exec(line);
    if (m) {
      entries.push({ source: m[2], level: m[3], text: line });
    } else if (entries.length) {
      if (line !== '') entries[entries.length - 1].text += `\n${line}`;
    } else if (line.trim() !== '') {
      entries.push({ source: '', level: '', text: line });
    }
  }
  return entries;
}

/** Why this entry is not allowed in a clean log, or null. */
export function offence(entry) {
  if (TRACEBACK.test(entry.text)) return 'traceback';
  if ((entry.level === 'warn' || entry.level === 'error') && (OURS.test(entry.source) || OURS.test(entry.text))) {
    return `${entry.level} from our plugins`;
  }
  return null;
}

/**
 * The offending entries of one server's log. `expected` are RegExps of lines
 * the test provoked on purpose (prosody.js `expectLog`); they never excuse a
 * traceback. `stdout` is what the server printed outside its log.
 */
export function offendingEntries(logText, { expected = [], stdout = '' } = {}) {
  const found = [];
  for (const entry of parseLog(logText)) {
    const why = offence(entry);
    if (!why) continue;
    if (why !== 'traceback' && expected.some((re) => re.test(entry.text))) continue;
    found.push({ why, text: entry.text });
  }
  if (TRACEBACK.test(stdout)) {
    found.push({ why: 'Lua error on stdout/stderr', text: stdout.trim() });
  }
  return found;
}

/** Scan every saved log in `dir`: { servers, problems: [{ file, testFile, why, text }] }. */
export function scanLogDir(dir) {
  const metas = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.json')).sort() : [];
  const problems = [];
  for (const metaFile of metas) {
    const base = path.join(dir, metaFile.slice(0, -'.json'.length));
    const meta = JSON.parse(fs.readFileSync(path.join(dir, metaFile), 'utf8'));
    const read = (f) => (fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : '');
    const expected = (meta.expectLog || []).map((src) => new RegExp(src));
    for (const p of offendingEntries(read(`${base}.log`), { expected, stdout: read(`${base}.stdout.log`) })) {
      problems.push({ file: `${base}.log`, testFile: meta.testFile, ...p });
    }
  }
  return { servers: metas.length, problems };
}
