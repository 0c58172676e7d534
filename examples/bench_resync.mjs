// Resync of a 1,000-member Matrix room on a real Synapse (part of `make
// bench` when build/synapse-venv exists): prints numbers, never asserts
// timings. examples/bench.rs times the decision on our side (parse,
// RoomView, standing per occupant); this times the request it follows.
//
//   node examples/bench_resync.mjs
//
// 1. Start Synapse (tests/e2e/lib/synapse.js), register MEMBERS (1000)
//    users by shared-secret admin registration, CONCURRENCY (8) at a time,
//    for at most REGISTER_BUDGET_S (180) s: past that, the rate is printed
//    and the users registered so far are used.
// 2. The first user creates a public version-12 room whose power_levels
//    name POWERED (50) other users; every other user joins (same
//    concurrency, at most JOIN_BUDGET_S (300) s, the same way).
// 3. REQUESTS (10) sequential `GET /_synapse/admin/v1/rooms/{id}/state`
//    with the admin token, as a resync does: latency p50/max, body size.
// Synapse is stopped (by its PID) whether this passes or fails. The
// figures go to stdout and to BENCHMARKS.md under SECTION (only that
// section is replaced; BENCH_NO_WRITE=1 leaves the file alone).
//
// Environment: BENCH_RESYNC_MEMBERS, BENCH_RESYNC_CONCURRENCY,
// BENCH_RESYNC_REGISTER_BUDGET_S, BENCH_RESYNC_JOIN_BUDGET_S,
// BENCH_RESYNC_REQUESTS, BENCH_RESYNC_BCRYPT_ROUNDS (4: password hashing
// is setup cost here, not what is measured; Synapse's default is 12).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';

import { envNumber, writeSection } from '../tests/bench/common.mjs';
import { startSynapse, synapseAvailable, SYNAPSE_PYTHON } from '../tests/e2e/lib/synapse.js';

const SECTION = '## Room state read on a real Synapse (make bench)';
const REPO_ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');


function synapseVersion() {
  try {
    return execFileSync(SYNAPSE_PYTHON, ['-c', 'import synapse; print(synapse.__version__)'], { encoding: 'utf8' }).trim();
  } catch {
    return '?';
  }
}

const num = envNumber;

const MEMBERS = Math.max(2, Math.floor(num('BENCH_RESYNC_MEMBERS', 1000)));
const CONCURRENCY = Math.max(1, Math.floor(num('BENCH_RESYNC_CONCURRENCY', 8)));
const REGISTER_BUDGET_S = num('BENCH_RESYNC_REGISTER_BUDGET_S', 180);
const JOIN_BUDGET_S = num('BENCH_RESYNC_JOIN_BUDGET_S', 300);
const REQUESTS = Math.max(1, Math.floor(num('BENCH_RESYNC_REQUESTS', 10)));
const POWERED = 50;
const BCRYPT_ROUNDS = Math.max(4, Math.floor(num('BENCH_RESYNC_BCRYPT_ROUNDS', 4)));

/**
 * Run fn(i) for i in [0, n), `concurrency` at a time, starting no new call
 * after `budgetMs`. Resolves { done: [results of the calls that succeeded,
 * by index], ms, stopped (budget ran out) }; the first error rejects.
 */
async function bounded(n, concurrency, budgetMs, fn, label) {
  const start = Date.now();
  const done = new Array(n);
  let next = 0;
  let count = 0;
  let stopped = false;
  let lastReport = start;
  async function worker() {
    for (;;) {
      if (Date.now() - start > budgetMs) {
        stopped = true;
        return;
      }
      const i = next++;
      if (i >= n) return;
      done[i] = await fn(i);
      count++;
      if (Date.now() - lastReport > 15000) {
        lastReport = Date.now();
        const s = (lastReport - start) / 1000;
        console.log(`  ${label}: ${count}/${n} after ${s.toFixed(0)} s (${(count / s).toFixed(1)}/s)`);
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
  return { done, count, ms: Date.now() - start, stopped: stopped && count < n };
}

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

async function main() {
  if (!synapseAvailable()) {
    console.log(`bench_resync: skipped (${SYNAPSE_PYTHON} missing: make deps-synapse)`);
    return;
  }
  console.log('== resync of a 1,000-member room on a real Synapse');
  const hs = await startSynapse({ config: { bcrypt_rounds: BCRYPT_ROUNDS } });
  console.log(`synapse pid ${hs.pid} at ${hs.url}, up in ${hs.startupMs.total} ms (bcrypt_rounds ${BCRYPT_ROUNDS})`);
  try {
    const admin = await hs.registerUser('benchadmin', { admin: true });

    const reg = await bounded(
      MEMBERS,
      CONCURRENCY,
      REGISTER_BUDGET_S * 1000,
      (i) => {
        const localpart = `user${String(i).padStart(4, '0')}`;
        return hs.registerUser(localpart, { displayname: `User number ${i}` });
      },
      'registered',
    );
    const users = reg.done.filter(Boolean);
    const regRate = reg.count / (reg.ms / 1000);
    console.log(
      `registered ${reg.count}/${MEMBERS} users in ${(reg.ms / 1000).toFixed(1)} s ` +
        `(${regRate.toFixed(1)}/s, ${CONCURRENCY} at a time)` +
        (reg.stopped ? ` -- STOPPED at the ${REGISTER_BUDGET_S} s budget: the room has ${users.length} members, not ${MEMBERS}` : ''),
    );

    const [creator, ...others] = users;
    const levels = {};
    others.slice(0, POWERED).forEach((u, i) => (levels[u.userId] = i % 5 === 0 ? 50 : 10));
    let t = Date.now();
    const roomId = await hs.createRoom(creator.accessToken, {
      roomVersion: '12',
      preset: 'public_chat',
      name: 'A large call',
      power_level_content_override: { users: levels },
    });
    console.log(`created room ${roomId} (v12, ${Object.keys(levels).length} users in power_levels) in ${Date.now() - t} ms`);

    const joins = await bounded(
      others.length,
      CONCURRENCY,
      JOIN_BUDGET_S * 1000,
      (i) => hs.join(others[i].accessToken, roomId).then(() => true),
      'joined',
    );
    const joinRate = joins.count / (joins.ms / 1000);
    console.log(
      `${joins.count}/${others.length} joins in ${(joins.ms / 1000).toFixed(1)} s (${joinRate.toFixed(1)}/s, ${CONCURRENCY} at a time)` +
        (joins.stopped ? ` -- STOPPED at the ${JOIN_BUDGET_S} s budget` : ''),
    );

    const path = `/_synapse/admin/v1/rooms/${encodeURIComponent(roomId)}/state`;
    const lat = [];
    let bytes = 0;
    let events = 0;
    let joined = 0;
    for (let i = 0; i < REQUESTS; i++) {
      t = process.hrtime.bigint();
      const res = await fetch(`${hs.url}${path}`, {
        headers: { authorization: `Bearer ${admin.accessToken}` },
        signal: AbortSignal.timeout(30000),
      });
      const body = Buffer.from(await res.arrayBuffer());
      const ms = Number(process.hrtime.bigint() - t) / 1e6;
      if (res.status !== 200) throw new Error(`GET ${path}: HTTP ${res.status}: ${body.toString().slice(0, 300)}`);
      lat.push(ms);
      if (i === 0) {
        bytes = body.length;
        const state = JSON.parse(body.toString()).state;
        events = state.length;
        joined = state.filter((e) => e.type === 'm.room.member' && e.content?.membership === 'join').length;
      }
    }
    const sorted = [...lat].sort((a, b) => a - b);
    console.log(`state: ${events} events, ${joined} joined members, ${bytes} bytes (${(bytes / 1024).toFixed(0)} KiB)`);
    console.log(
      `GET admin room state x${REQUESTS} (sequential, admin token): p50 ${pct(sorted, 50).toFixed(1)} ms, ` +
        `max ${sorted[sorted.length - 1].toFixed(1)} ms, min ${sorted[0].toFixed(1)} ms, first ${lat[0].toFixed(1)} ms`,
    );
    console.log(`  each (ms): ${lat.map((x) => x.toFixed(1)).join(' ')}`);
    const text = [
      '| step | figure |',
      '|---|---:|',
      `| users registered (shared-secret admin API, ${CONCURRENCY} at a time) | ${reg.count}/${MEMBERS} in ${(reg.ms / 1000).toFixed(1)} s |`,
      `| joins of one public v12 room | ${joins.count}/${others.length} in ${(joins.ms / 1000).toFixed(1)} s |`,
      `| admin room state: events, joined members, size | ${events}, ${joined}, ${(bytes / 1024).toFixed(0)} KiB |`,
      `| GET admin room state x${REQUESTS}, sequential: p50 | ${pct(sorted, 50).toFixed(1)} ms |`,
      `| the same: min / max / first | ${sorted[0].toFixed(1)} / ${sorted[sorted.length - 1].toFixed(1)} / ${lat[0].toFixed(1)} ms |`,
      '',
      `Synapse ${synapseVersion()} (build/synapse-venv, SQLite, bcrypt_rounds ${BCRYPT_ROUNDS}), wall-clock times of the request a ` +
        `resync makes (examples/bench.rs times the decision that follows it); load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')} ` +
        `at the end; ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC; command: node examples/bench_resync.mjs (make bench).`,
    ].join('\n');
    if (!process.env.BENCH_NO_WRITE) console.log(`(written to ${writeSection(SECTION, text)})`);
  } finally {
    const exited = await hs.stop();
    console.log(`synapse pid ${hs.pid} stopped (${JSON.stringify(exited)})`);
  }
}

main().catch((err) => {
  console.error(`bench_resync: FAILED: ${err.stack || err}`);
  process.exitCode = 1;
});
