// Standard Jitsi tokens at parity with jitsi's token auth (docs/design.md, "Standard Jitsi tokens"):
// the user_id fallback, token-less guests through jitsi's events, a key
// handed over by a fetch-key handler (session.public_key), the
// jitsi-authentication-token-verified event, and aud as an array. jitsi's
// own modules around authentication are stood in for by
// tests/prosody/mod_test_jitsi_events.lua.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, describe } from 'node:test';

import { connect, stopAll, tryConnect } from './lib/client.js';
import { scenario, useProsody } from './lib/harness.js';
import { now, rsaKeyPair, sign, writeKeyFile } from './lib/jwt.js';
import { sessionFields, sessionProbePlugin } from './lib/matrix.js';
import { DOMAIN } from './lib/prosody.js';

const APP_ID = 'e2e-parity-app';
const APP_SECRET = `e2e-parity-secret-${crypto.randomBytes(12).toString('hex')}`;

function claims(extra = {}) {
  return { iss: APP_ID, aud: 'jitsi', sub: DOMAIN, room: '*', exp: now() + 600, ...extra };
}

async function events(s) {
  const res = await fetch(`${s.httpUrl}/test_jitsi_events/verified`, { signal: AbortSignal.timeout(5000) });
  assert.equal(res.status, 200);
  return res.json();
}

function vhost(extra = {}) {
  return {
    authentication: 'matrix_user_verification',
    app_id: APP_ID,
    app_secret: APP_SECRET,
    asap_accepted_audiences: ['jitsi'],
    ...extra,
  };
}

describe('standard tokens: user_id, aud arrays, token-verified event, token-less guests', () => {
  const probe = sessionProbePlugin();
  const server = useProsody({
    vhost: vhost({ allow_empty_token: true, test_banned_room: 'banned-room', test_custom_username: 'fixed-guest-name' }),
    vhostModules: ['test_jitsi_events', probe.module],
  });

  scenario('a token without context but with user_id gives jitsi_meet_context_user = { id }', server, async (t, s) => {
    const c = await connect(s.wsUrl('r1', sign(claims({ user_id: 'user-42' }), { key: APP_SECRET })));
    try {
      const f = await sessionFields(s.httpPort, c.jid);
      assert.deepEqual(f.jitsi_meet_context_user, { id: 'user-42' });
    } finally {
      await stopAll(c);
    }
  });

  scenario('aud may be an array: one accepted audience is enough, none is refused', server, async (t, s) => {
    const ok = await tryConnect(s.wsUrl('r1', sign(claims({ aud: ['other', 'jitsi'] }), { key: APP_SECRET })));
    assert.equal(ok.ok, true, ok.text);
    await stopAll(ok.client);
    const no = await tryConnect(s.wsUrl('r1', sign(claims({ aud: ['other', 'another'] }), { key: APP_SECRET })));
    assert.deepEqual([no.ok, no.condition, no.text], [false, 'not-authorized', 'token audience is not accepted']);
  });

  scenario('jitsi-authentication-token-verified carries the session and the verified claims', server, async (t, s) => {
    const before = (await events(s)).verified.length;
    const c = await connect(s.wsUrl('r1', sign(claims({ context: { user: { name: 'Verified' } } }), { key: APP_SECRET })));
    try {
      const { verified } = await events(s);
      assert.equal(verified.length, before + 1);
      const last = verified[verified.length - 1];
      assert.equal(last.has_session, true);
      assert.equal(last.claims.iss, APP_ID);
      assert.equal(last.claims.context.user.name, 'Verified');
    } finally {
      await stopAll(c);
    }
    // A refused token fires nothing.
    await tryConnect(s.wsUrl('r1', sign(claims(), { key: 'wrong-key' })));
    assert.equal((await events(s)).verified.length, before + 1);
  });

  scenario('token-less guests go through the ban check, pre-jitsi-authentication and post-jitsi-authentication', server, async (t, s) => {
    const banned = await tryConnect(s.wsUrl('banned-room', null));
    assert.deepEqual([banned.ok, banned.condition, banned.text], [false, 'not-allowed', 'user is banned']);

    const c = await connect(s.wsUrl('custom-username', null));
    try {
      assert.match(c.jid, /^fixed-guest-name@/, 'the custom username of pre-jitsi-authentication');
    } finally {
      await stopAll(c);
    }
    const { post } = await events(s);
    assert.ok(post.some((p) => p.room === 'custom-username' && p.has_token === false), JSON.stringify(post));
  });
});

describe('session.public_key from a fetch-key handler overrides the configured key', () => {
  const rsa = rsaKeyPair();
  const keyFile = writeKeyFile(rsa.publicKey);
  after(() => keyFile.cleanup());
  const server = useProsody({
    vhost: vhost({ test_public_key_file: keyFile.path }),
    vhostModules: ['test_jitsi_events'],
  });

  scenario('an RS256 token signed for the session key logs in; an HS256 token with app_secret no longer does', server, async (t, s) => {
    const good = await tryConnect(s.wsUrl('r1', sign(claims(), { alg: 'RS256', key: rsa.privateKey })));
    assert.equal(good.ok, true, good.text);
    await stopAll(good.client);
    const hs = await tryConnect(s.wsUrl('r1', sign(claims(), { key: APP_SECRET })));
    assert.equal(hs.ok, false);
    assert.equal(hs.condition, 'not-authorized');
    assert.match(hs.text, /token algorithm 'HS256' is not accepted \(expected RS256\)/);
    const other = rsaKeyPair();
    const forged = await tryConnect(s.wsUrl('r1', sign(claims(), { alg: 'RS256', key: other.privateKey })));
    assert.deepEqual([forged.ok, forged.text], [false, 'token signature is invalid']);
  });
});
