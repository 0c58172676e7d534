// Glue for node:test files: one Prosody per file (or per describe block),
// started in before() and killed in after(), pass or fail, and the server's
// log tail appended to the error of a failing test.

import { after, before, test } from 'node:test';

import { startProsody } from './prosody.js';

let counter = 0;

/** Unique room name per test (lower case: Jitsi lower-cases room names). */
export function uniqueRoom(prefix = 'room') {
  counter += 1;
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${counter}`.toLowerCase();
}

/**
 * Start one Prosody for the enclosing file/suite. Returns a getter; call it
 * inside tests. `optsOrFn` may be a function (async allowed) returning options.
 */
export function useProsody(optsOrFn) {
  let server = null;
  before(async () => {
    const opts = typeof optsOrFn === 'function' ? await optsOrFn() : optsOrFn;
    server = await startProsody(opts);
  });
  after(async () => {
    if (server) await server.stop();
  });
  return () => {
    if (!server) throw new Error('prosody is not running (did before() fail?)');
    return server;
  };
}

/**
 * test(), but on failure the error message gets the tail of the server log
 * lines written while the test ran.
 */
export function scenario(name, getServer, fn, options = {}) {
  return test(name, options, async (t) => {
    const server = getServer();
    const mark = server.logMark();
    try {
      await fn(t, server);
      // A Lua error in a hook is a bug even when the client saw a clean answer.
      const tracebacks = server
        .logSince(mark)
        .split('\n')
        .filter((l) => /\terror\t.*Traceback/.test(l));
      if (tracebacks.length) throw new Error(`Lua error(s) in the server log:\n${tracebacks.join('\n')}`);
    } catch (err) {
      const lines = server.logSince(mark).trimEnd().split('\n');
      const shown = lines.slice(-80).join('\n');
      const note = `\n--- prosody log during this test (last ${Math.min(80, lines.length)} of ${lines.length} lines) ---\n${shown}`;
      if (err && typeof err === 'object') {
        try {
          err.message = `${err.message}${note}`;
        } catch {
          /* read-only message */
        }
      }
      throw err;
    }
  });
}
