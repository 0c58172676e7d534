// What the benchmarks (make bench, tests/bench/run.sh) and the soak share:
// numbers from the environment, and one section of BENCHMARKS.md written by
// the benchmark that measured it.

import fs from 'node:fs';
import path from 'node:path';

const REPO_ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');

/** A number from the environment variable `name` (`dflt` when unset); never negative. */
export function envNumber(name, dflt) {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name} must be a number, got ${v}`);
  return n;
}

/**
 * Replace section `title` ("## ...") of BENCHMARKS.md up to the next "## "
 * heading, or append it; BENCH_NO_WRITE=1 leaves the file alone.
 * Returns the file, or null.
 */
export function writeSection(title, text) {
  if (process.env.BENCH_NO_WRITE === '1') return null;
  const file = path.join(REPO_ROOT, 'BENCHMARKS.md');
  const section = `${title}\n\n${text}\n`;
  const old = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '# Benchmarks\n';
  const lines = old.split('\n');
  const start = lines.indexOf(title);
  let out;
  if (start < 0) {
    out = `${old.replace(/\n*$/, '')}\n\n${section}`;
  } else {
    let end = lines.findIndex((l, i) => i > start && l.startsWith('## '));
    if (end < 0) end = lines.length;
    const after = lines.slice(end).join('\n');
    out = `${lines.slice(0, start).join('\n')}\n${section}${after ? `\n${after}` : ''}`;
  }
  fs.writeFileSync(file, out);
  return file;
}
