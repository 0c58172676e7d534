// Secret hygiene for the e2e suite: every secret a test hands to a server
// (JWTs and their signatures, Matrix OpenID tokens, app_secret,
// uvs_auth_token, matrix_admin_token...) is recorded in the run's log dir
// (E2E_LOG_DIR, the dir where prosody.js saves the Prosody logs), and
// check_logs.js, which runs after the suite, checks that none of them shows up in
// any Prosody log of the run.
//
// The common helpers record automatically: jwt.js sign(), matrix.js
// (OpenID tokens), prosody.js startProsody() (options named *secret*,
// *token*, *password*). Without E2E_LOG_DIR recording does nothing.
//
//   recordSecret(s)                  // s: string (others ignored)
//   recordedSecrets(dir)             // every secret recorded in dir
//   findSecretsInLogs(dir, secrets)  // [{ file, line, masked }]

import fs from 'node:fs';
import path from 'node:path';

export const SECRETS_FILE = 'secrets.jsonl';
/** Shorter strings are too likely to occur by chance to count as a leak. */
export const MIN_SECRET_LENGTH = 8;

const seen = new Set();

/** Record a secret of this run (a no-op without E2E_LOG_DIR or for short/non-strings). */
export function recordSecret(secret) {
  const dir = process.env.E2E_LOG_DIR;
  if (!dir || typeof secret !== 'string' || secret.length < MIN_SECRET_LENGTH || seen.has(secret)) return;
  seen.add(secret);
  try {
    fs.mkdirSync(dir, { recursive: true });
    fs.appendFileSync(path.join(dir, SECRETS_FILE), `${JSON.stringify(secret)}\n`);
  } catch (err) {
    console.error(`could not record a secret in ${dir}: ${err}`);
  }
}

/** Every secret recorded in `dir` (deduplicated, at least MIN_SECRET_LENGTH long). */
export function recordedSecrets(dir) {
  const file = path.join(dir, SECRETS_FILE);
  if (!fs.existsSync(file)) return [];
  const out = new Set();
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (!line) continue;
    try {
      const s = JSON.parse(line);
      if (typeof s === 'string' && s.length >= MIN_SECRET_LENGTH) out.add(s);
    } catch {
      /* a torn line: ignore */
    }
  }
  return [...out];
}

/** "abcd…(40 chars)": enough to find the secret, not enough to use it. */
export function mask(secret) {
  return `${secret.slice(0, 4)}…(${secret.length} chars)`;
}

/** The Prosody logs saved in `dir` (server logs and their stdout/stderr). */
export function logFiles(dir) {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.log'))
    .sort()
    .map((f) => path.join(dir, f));
}

/**
 * Where a secret occurs in a text: [{ line, masked }] (1-based line numbers,
 * one entry per secret and line).
 */
export function findSecretsInText(text, secrets) {
  const found = [];
  let lineStarts = null;
  const lineOf = (index) => {
    if (!lineStarts) {
      lineStarts = [0];
      for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) lineStarts.push(i + 1);
    }
    let lo = 0;
    let hi = lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (lineStarts[mid] <= index) lo = mid;
      else hi = mid - 1;
    }
    return lo + 1;
  };
  for (const secret of secrets) {
    if (typeof secret !== 'string' || secret.length < MIN_SECRET_LENGTH) continue;
    let lastLine = 0;
    for (let i = text.indexOf(secret); i !== -1; i = text.indexOf(secret, i + 1)) {
      const line = lineOf(i);
      if (line !== lastLine) found.push({ line, masked: mask(secret) });
      lastLine = line;
    }
  }
  return found.sort((a, b) => a.line - b.line);
}

/** Every occurrence of a secret in the logs of `dir`: [{ file, line, masked }]. */
export function findSecretsInLogs(dir, secrets) {
  const found = [];
  for (const file of logFiles(dir)) {
    const text = fs.readFileSync(file, 'utf8');
    for (const hit of findSecretsInText(text, secrets)) found.push({ file, ...hit });
  }
  return found;
}
