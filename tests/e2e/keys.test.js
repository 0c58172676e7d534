// Keys chosen by the token's kid (CONTRACT 2): an ASAP key server
// (GET <server>/<hex(sha256(kid))>.pem, LRU, failing kids not refetched in
// a tight loop) and cache_keys_url (a JWKS or a kid -> PEM map, refreshed
// by Cache-Control max-age, dropped keys still accepted). Both served by
// small HTTP servers on loopback; a real Prosody verifies.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import { after, before, describe } from 'node:test';

import { stopAll, tryConnect } from './lib/client.js';
import { scenario, useProsody } from './lib/harness.js';
import { ecKeyPair, now, rsaKeyPair, sign } from './lib/jwt.js';
import { sleep } from './lib/matrix.js';
import { DOMAIN } from './lib/prosody.js';

const APP_ID = 'e2e-keys-app';

function claims() {
  return { iss: APP_ID, aud: 'jitsi', sub: DOMAIN, room: '*', exp: now() + 600 };
}

/** A tiny HTTP server: `routes(path)` -> { status, body, headers } | undefined (404). Counts requests by path. */
async function startServer(routes) {
  const hits = new Map();
  const srv = http.createServer((req, res) => {
    hits.set(req.url, (hits.get(req.url) || 0) + 1);
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
    stop: () => new Promise((resolve) => srv.close(resolve)),
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
