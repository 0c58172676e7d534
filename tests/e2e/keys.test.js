// Keys chosen by the token's kid (README "Standard Jitsi tokens"): an ASAP key server
// (GET <server>/<hex(sha256(kid))>.pem, LRU, failing kids not refetched in
// a tight loop, unknown kids fetched at a bounded rate, timeouts never
// remembered) and cache_keys_url (a JWKS or a kid -> PEM map, refreshed
// by Cache-Control max-age (capped), dropped keys still accepted, keys not
// for signatures or too weak skipped). Both served by small HTTP servers on
// loopback; a real Prosody verifies.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import { after, before, describe } from 'node:test';

import { stopAll, tryConnect } from './lib/client.js';
import { scenario, useProsody } from './lib/harness.js';
import { ecKeyPair, now, rsaKeyPair, sign } from './lib/jwt.js';
import { requestCompleteCodes, sleep } from './lib/matrix.js';
import { DOMAIN } from './lib/prosody.js';
import { wsLogin } from './lib/raw.js';

const APP_ID = 'e2e-keys-app';

function claims() {
  return { iss: APP_ID, aud: 'jitsi', sub: DOMAIN, room: '*', exp: now() + 600 };
}

/** A tiny HTTP server: `routes(path)` -> { status, body, headers } | undefined (404). Counts requests by path. */
async function startServer(routes, { delayMs = 0 } = {}) {
  const hits = new Map();
  const srv = http.createServer(async (req, res) => {
    hits.set(req.url, (hits.get(req.url) || 0) + 1);
    if (delayMs) await sleep(delayMs);
    const r = routes(req.url);
    if (!r) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found');
      return;
    }
    res.writeHead(r.status || 200, { 'content-type': 'application/octet-stream', ...(r.headers || {}) });
    res.end(r.body);
  });
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${srv.address().port}`,
    hits: (p) => hits.get(p) || 0,
    total: () => [...hits.values()].reduce((a, b) => a + b, 0),
    stop: () => {
      srv.closeAllConnections?.();
      return new Promise((resolve) => srv.close(resolve));
    },
  };
}

const sha256hex = (s) => crypto.createHash('sha256').update(s).digest('hex');

async function login(s, token) {
  const r = await tryConnect(s.wsUrl('r1', token));
  if (r.ok) await stopAll(r.client);
  return r;
}

describe('asap_key_server: the key of the token\'s kid, fetched and cached', () => {
  const rsa = rsaKeyPair();
  const ec = ecKeyPair();
  const pems = new Map([['kid-rsa', rsa.publicKey], ['kid-ec', ec.publicKey]]);
  let keys;
  before(async () => {
    keys = await startServer((p) => {
      for (const [kid, pem] of pems) if (p === `/${sha256hex(kid)}.pem`) return { body: pem };
      return undefined;
    });
  });
  after(async () => keys?.stop());
  const server = useProsody(() => ({
    vhost: { authentication: 'matrix_user_verification', app_id: APP_ID, asap_key_server: `${keys.url}/` },
  }));

  scenario('RS256 and ES256 tokens verify with the key of their kid; the key is fetched once', server, async (t, s) => {
    const r1 = await login(s, sign(claims(), { alg: 'RS256', key: rsa.privateKey, header: { kid: 'kid-rsa' } }));
    assert.equal(r1.ok, true, r1.text);
    const r2 = await login(s, sign(claims(), { alg: 'RS256', key: rsa.privateKey, header: { kid: 'kid-rsa' } }));
    assert.equal(r2.ok, true, r2.text);
    assert.equal(keys.hits(`/${sha256hex('kid-rsa')}.pem`), 1, 'cached after the first fetch');
    const e = await login(s, sign(claims(), { alg: 'ES256', key: ec.privateKey, header: { kid: 'kid-ec' } }));
    assert.equal(e.ok, true, e.text);
  });

  scenario('a token signed with another key under a known kid is refused', server, async (t, s) => {
    const other = rsaKeyPair();
    const r = await login(s, sign(claims(), { alg: 'RS256', key: other.privateKey, header: { kid: 'kid-rsa' } }));
    assert.deepEqual([r.ok, r.condition, r.text], [false, 'not-authorized', 'token signature is invalid']);
  });

  scenario('an unknown kid is refused, and not fetched again for 30 s', server, async (t, s) => {
    const token = sign(claims(), { alg: 'RS256', key: rsa.privateKey, header: { kid: 'kid-unknown' } });
    const r = await login(s, token);
    assert.equal(r.ok, false);
    assert.equal(r.condition, 'not-authorized');
    assert.equal(r.text, "no public key for this token: the key of kid 'kid-unknown' could not be fetched: HTTP 404");
    const again = await login(s, token);
    assert.equal(again.text, "no public key for this token: the key of kid 'kid-unknown' could not be fetched recently");
    assert.equal(keys.hits(`/${sha256hex('kid-unknown')}.pem`), 1, 'no second fetch within 30 s');
  });

  scenario('a token without kid is refused', server, async (t, s) => {
    const r = await login(s, sign(claims(), { alg: 'RS256', key: rsa.privateKey }));
    assert.deepEqual([r.ok, r.text], [false, 'token header has no kid (keys are chosen by kid here)']);
  });
});

describe('cache_keys_url: a JWKS refreshed by max-age, dropped keys still accepted', () => {
  const rsa = rsaKeyPair();
  const ec = ecKeyPair();
  const later = rsaKeyPair();
  const jwk = (pem, kid) => ({ ...crypto.createPublicKey(pem).export({ format: 'jwk' }), kid });
  let set = [jwk(rsa.publicKey, 'j-rsa'), jwk(ec.publicKey, 'j-ec')];
  let keys;
  before(async () => {
    keys = await startServer((p) => (p === '/jwks' ? { body: JSON.stringify({ keys: set }), headers: { 'cache-control': 'public, max-age=1' } } : undefined));
  });
  after(async () => keys?.stop());
  const server = useProsody(() => ({
    vhost: { authentication: 'matrix_user_verification', app_id: APP_ID, cache_keys_url: `${keys.url}/jwks` },
  }));

  scenario('RSA and EC keys of the set verify; an unknown kid is refused', server, async (t, s) => {
    const r = await login(s, sign(claims(), { alg: 'RS256', key: rsa.privateKey, header: { kid: 'j-rsa' } }));
    assert.equal(r.ok, true, r.text);
    const e = await login(s, sign(claims(), { alg: 'ES256', key: ec.privateKey, header: { kid: 'j-ec' } }));
    assert.equal(e.ok, true, e.text);
    const u = await login(s, sign(claims(), { alg: 'RS256', key: rsa.privateKey, header: { kid: 'nope' } }));
    assert.deepEqual([u.ok, u.text], [false, "no public key for this token: no key for kid 'nope' in cache_keys_url"]);
  });

  scenario('after max-age the set is fetched again: a new key works, a dropped one is still accepted', server, async (t, s) => {
    const before = keys.hits('/jwks');
    set = [jwk(later.publicKey, 'j-later')];
    const token = sign(claims(), { alg: 'RS256', key: later.privateKey, header: { kid: 'j-later' } });
    let r;
    const deadline = Date.now() + 12000;
    do {
      await sleep(500);
      r = await login(s, token);
    } while (!r.ok && Date.now() < deadline);
    assert.equal(r.ok, true, `new key accepted after a refresh: ${r.text}`);
    assert.ok(keys.hits('/jwks') > before, 'fetched again');
    const dropped = await login(s, sign(claims(), { alg: 'RS256', key: rsa.privateKey, header: { kid: 'j-rsa' } }));
    assert.equal(dropped.ok, true, `a key dropped from the set is still accepted: ${dropped.text}`);
  });
});

describe('cache_keys_url as a kid -> PEM map', () => {
  const rsa = rsaKeyPair();
  let keys;
  before(async () => {
    keys = await startServer((p) => (p === '/pems' ? { body: JSON.stringify({ 'pem-1': rsa.publicKey }) } : undefined));
  });
  after(async () => keys?.stop());
  const server = useProsody(() => ({
    vhost: { authentication: 'matrix_user_verification', app_id: APP_ID, cache_keys_url: `${keys.url}/pems` },
  }));

  scenario('a token whose kid is in the map verifies', server, async (t, s) => {
    const r = await login(s, sign(claims(), { alg: 'RS256', key: rsa.privateKey, header: { kid: 'pem-1' } }));
    assert.equal(r.ok, true, r.text);
  });
});

describe('cache_keys_url answering Cache-Control: max-age=18446744073709551615', () => {
  const rsa = rsaKeyPair();
  const jwk = { ...crypto.createPublicKey(rsa.publicKey).export({ format: 'jwk' }), kid: 'huge-age', use: 'sig', alg: 'RS256' };
  let keys;
  before(async () => {
    keys = await startServer((p) =>
      p === '/jwks' ? { body: JSON.stringify({ keys: [jwk] }), headers: { 'cache-control': 'max-age=18446744073709551615' } } : undefined,
    );
  });
  after(async () => keys?.stop());
  const server = useProsody(() => ({
    vhost: { authentication: 'matrix_user_verification', app_id: APP_ID, cache_keys_url: `${keys.url}/jwks` },
  }));

  scenario('the set loads (its age capped, no panic, no error line) and its key verifies', server, async (t, s) => {
    const mark = s.logMark();
    const r = await login(s, sign(claims(), { alg: 'RS256', key: rsa.privateKey, header: { kid: 'huge-age' } }));
    assert.equal(r.ok, true, r.text);
    const again = await login(s, sign(claims(), { alg: 'RS256', key: rsa.privateKey, header: { kid: 'huge-age' } }));
    assert.equal(again.ok, true, again.text);
    assert.equal(keys.hits('/jwks'), 1, 'fetched once: the next refresh is at most a day away, not now');
    const bad = s.logSince(mark).split('\n').filter((l) => /\t(error|warn)\t|panick|overflow/i.test(l));
    assert.deepEqual(bad, [], 'no error, warning or panic in the log');
    assert.deepEqual(requestCompleteCodes(s.logSince(mark)), ['ok', 'ok']);
  });
});

describe('cache_keys_url: keys not for signatures, with another alg, or too weak are skipped', () => {
  const good = rsaKeyPair();
  const enc = rsaKeyPair();
  const weak = rsaKeyPair(1024);
  const jwk = (pem, extra) => ({ ...crypto.createPublicKey(pem).export({ format: 'jwk' }), ...extra });
  let keys;
  before(async () => {
    const set = {
      keys: [
        jwk(good.publicKey, { kid: 'good', use: 'sig', alg: 'RS256' }),
        jwk(enc.publicKey, { kid: 'enc', use: 'enc' }),
        jwk(enc.publicKey, { kid: 'other-alg', alg: 'RS512' }),
        jwk(weak.publicKey, { kid: 'rsa-1024', use: 'sig', alg: 'RS256' }),
      ],
    };
    keys = await startServer((p) => (p === '/jwks' ? { body: JSON.stringify(set) } : undefined));
  });
  after(async () => keys?.stop());
  const server = useProsody(() => ({
    vhost: { authentication: 'matrix_user_verification', app_id: APP_ID, cache_keys_url: `${keys.url}/jwks` },
  }));

  scenario('only the signing key of at least 2048 bits is accepted', server, async (t, s) => {
    const mark = s.logMark();
    const ok = await login(s, sign(claims(), { alg: 'RS256', key: good.privateKey, header: { kid: 'good' } }));
    assert.equal(ok.ok, true, ok.text);
    for (const [kid, key] of [['enc', enc], ['other-alg', enc], ['rsa-1024', weak]]) {
      const r = await login(s, sign(claims(), { alg: 'RS256', key: key.privateKey, header: { kid } }));
      assert.deepEqual([r.ok, r.condition, r.text], [false, 'not-authorized', `no public key for this token: no key for kid '${kid}' in cache_keys_url`], kid);
    }
    assert.deepEqual(requestCompleteCodes(s.logSince(mark)), ['ok', 'invalid_auth_token', 'invalid_auth_token', 'invalid_auth_token']);
  });
});

describe('asap_key_server under a flood of forged kids (key server answering after 3 s)', () => {
  const rsa = rsaKeyPair();
  const REAL = 'kid-real';
  const SHARED = 'kid-shared';
  let keys;
  before(async () => {
    keys = await startServer((p) => ([REAL, SHARED].some((k) => p === `/${sha256hex(k)}.pem`) ? { body: rsa.publicKey } : undefined), {
      delayMs: 3000,
    });
  });
  after(async () => keys?.stop());
  const server = useProsody(() => ({
    vhost: { authentication: 'matrix_user_verification', app_id: APP_ID, asap_key_server: keys.url },
    // The key server's 404s for forged kids are logged, by design; so is a
    // fetch of the real kid that the flood slows past its 5 s deadline.
    expectLog: [/the key of kid 'forged-[0-9a-f]+' could not be fetched/, /the key of kid 'kid-real' could not be fetched: timed out after \d+ ms/],
  }));

  scenario('20 logins with the same new kid at once share one fetch', server, async (t, s) => {
    const token = sign(claims(), { alg: 'RS256', key: rsa.privateKey, header: { kid: SHARED } });
    const results = await Promise.all(Array.from({ length: 20 }, () => login(s, token)));
    assert.deepEqual(results.filter((r) => !r.ok).map((r) => r.text), [], 'all logged in');
    assert.equal(keys.hits(`/${sha256hex(SHARED)}.pem`), 1, 'one key-server request for all of them');
  });

  scenario('a kid over 256 bytes is refused before any fetch', server, async (t, s) => {
    const kid = 'k'.repeat(257);
    const before = keys.total();
    const mark = s.logMark();
    const r = await login(s, sign(claims(), { alg: 'RS256', key: rsa.privateKey, header: { kid } }));
    assert.deepEqual([r.ok, r.condition, r.text], [false, 'not-authorized', "token is malformed: the header's kid is longer than 256 bytes"]);
    assert.deepEqual(requestCompleteCodes(s.logSince(mark)), ['auth_token_decode_issue']);
    assert.equal(keys.total(), before, 'the key server was not asked');
  });

  scenario('2,000 random kids, the real one among the last: each answered cleanly, then the real kid logs in', server, async (t, s) => {
    const N = 2000;
    const CONCURRENCY = 200;
    const realAt = new Set([N - 150, N - 100, N - 50]);
    const tokens = Array.from({ length: N }, (_, i) =>
      realAt.has(i)
        ? sign(claims(), { alg: 'RS256', key: rsa.privateKey, header: { kid: REAL } })
        : sign(claims(), { alg: 'RS256', key: rsa.privateKey, header: { kid: `forged-${crypto.randomBytes(8).toString('hex')}` } }),
    );
    const mark = s.logMark();
    const results = new Array(N);
    let next = 0;
    const worker = async () => {
      while (next < N) {
        const i = next++;
        results[i] = await wsLogin(s.httpPort, { query: `?room=r1&token=${tokens[i]}`, timeoutMs: 30000 });
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    // The flood is over: the real kid is not locked out (no remembered
    // timeout or full queue), whatever its attempts during the flood got.
    const final = await login(s, sign(claims(), { alg: 'RS256', key: rsa.privateKey, header: { kid: REAL } }));
    assert.equal(final.ok, true, `the real kid after the flood: ${final.text}`);
    const unclean = results.map((r, i) => [i, r]).filter(([i, r]) => !realAt.has(i) && (r.kind !== 'failure' || r.condition !== (r.text.startsWith('the key of this token') ? 'temporary-auth-failure' : 'not-authorized')));
    assert.deepEqual(unclean.slice(0, 5), [], 'every forged kid is refused with a SASL failure');
    const codes = requestCompleteCodes(s.logSince(mark)).slice(0, N);
    assert.equal(codes.length, N, 'one REQUEST_COMPLETE line per attempt');
    const allowed = new Set(['invalid_auth_token', 'key_fetch_busy', 'key_fetch_failed', 'ok']);
    assert.deepEqual(codes.filter((c) => !allowed.has(c)), [], 'only clean refusal codes');
    assert.ok(codes.includes('key_fetch_busy'), 'unknown kids beyond the rate are refused at once');
  }, { timeout: 240000 });
});
