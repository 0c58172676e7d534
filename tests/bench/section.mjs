// One section of BENCHMARKS.md, written by the benchmark that measured it
// (make bench, tests/bench/run.sh): replaces `title` up to the next "## "
// heading, or appends it. BENCH_NO_WRITE=1 leaves the file alone.

import fs from 'node:fs';
import path from 'node:path';

const REPO_ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');

/** Replace (or append) section `title` ("## ...") of BENCHMARKS.md with `text`; returns the file, or null. */
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
