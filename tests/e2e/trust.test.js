// End-to-end: a valid login gets only what it proved (docs/design.md,
// "Trust rules"; SECURITY.md). Each case is an attack that worked before:
// - a JWS header with `crit` was accepted;
// - a token's grants (security_bypass, room settings) outlived its `exp`;
// - an unsigned Matrix token chose its own context.user.id and bypass.
// Real Prosody, real XMPP clients; Matrix users checked by lib/uvs_server.js.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, describe } from 'node:test';

import { connect, stopAll, tryConnect } from './lib/client.js';
import { scenario, uniqueRoom, useProsody } from './lib/harness.js';
import { now, sign } from './lib/jwt.js';
import {
  jitsiRoomOf,
  matrixToken,
  requestCompleteCodes,
  requirePlugins,
  sessionFields,
  sessionProbePlugin,
  sleep,
  uniqueMatrixRoomId,
  uniqueOpenid,
  until,
} from './lib/matrix.js';
import { roomState } from './lib/observer.js';
import { MUC_DOMAIN } from './lib/prosody.js';
import { startUvs } from './lib/uvs_server.js';

const APP_ID = 'e2e-trust-app';
const SECRET = `e2e-trust-secret-${crypto.randomBytes(12).toString('hex')}`;
const PLUGINS = ['mod_auth_matrix_user_verification.lua', 'mod_token_security_ondemand.lua', 'mod_token_verification.lua'];

const hs = (payload, header = {}) => sign(payload, { alg: 'HS256', key: SECRET, header });
const roomJidOf = (room) => `${room}@${MUC_DOMAIN}`;

function claims(room, { roomCtx, user = {}, ttl = 300 } = {}) {
  const t = now();
  const context = { user: { name: 'trust user', ...user } };
  if (roomCtx !== undefined) context.room = roomCtx;
  return { iss: APP_ID, aud: 'jitsi', sub: 'localhost', room, iat: t - 5, exp: t + ttl, context };
}

/** The REQUEST_COMPLETE codes logged since `mark`, once there is one. */
async function codesSince(s, mark) {
  return until(() => {
    const codes = requestCompleteCodes(s.logSince(mark));
    assert.ok(codes.length >= 1, 'a REQUEST_COMPLETE line');
    return codes;
  }, 5000);
}

describe('trust: crit headers and expired grants (standard tokens, the door and security on demand)', () => {
  const server = useProsody(() => {
    requirePlugins(PLUGINS);
    return {
      vhost: { authentication: 'matrix_user_verification', app_id: APP_ID, app_secret: SECRET },
      vhostModules: ['test_observer', sessionProbePlugin().module],
      mucModules: ['token_verification', 'token_security_ondemand', 'test_lobby'],
    };
  });

  scenario('a token whose header lists critical extensions is refused', server, async (t, s) => {
    const room = uniqueRoom('crit');
    const mark = s.logMark();
    const res = await tryConnect(s.wsUrl(room, hs(claims(room), { crit: ['exp'] })));
    if (res.ok) await res.client.stop();
    assert.equal(res.ok, false, 'login with a crit header must fail');
    assert.equal(res.condition, 'not-authorized');
    assert.match(res.text, /critical/);
    assert.deepEqual(await codesSince(s, mark), ['invalid_auth_token']);
    // The same token without crit logs in (the refusal was the header).
    const ok = await connect(s.wsUrl(room, hs(claims(room))));
    await ok.stop();
  });

  scenario('grants lapse with the token: no bypass, no room settings after exp', server, async (t, s) => {
    const room = uniqueRoom('expiry');
    const roomJid = roomJidOf(room);
    let owner, late;
    try {
      owner = await connect(s.wsUrl(room, hs(claims(room, { roomCtx: { password: 'p4ss' } }))));
      assert.equal((await owner.joinMuc(roomJid, 'owner')).ok, true, 'the owner joins and sets the password');
      await until(async () => assert.equal((await roomState(s.httpPort, roomJid)).password, 'p4ss'), 5000);

      // Logs in with a bypass and a password wish, valid for 2 seconds.
      const exp = now() + 2;
      late = await connect(s.wsUrl(room, hs({ ...claims(room, { roomCtx: { password: 'hijack' }, user: { security_bypass: true } }), exp })));
      const before = await sessionFields(s.httpPort, late.jid);
      assert.equal(before.jitsi_meet_context_user.security_bypass, true, 'the grant is there at login');
      while (now() <= exp) await sleep(200);

      const mark = s.logMark();
      const joined = await late.joinMuc(roomJid, 'late');
      assert.equal(joined.ok, false, `an expired bypass must not pass the password: ${JSON.stringify(joined)}`);
      assert.equal(joined.condition, 'not-authorized', 'the room asks for its password');
      assert.match(s.logSince(mark), /its grants lapse/);
      const st = await roomState(s.httpPort, roomJid);
      assert.equal(st.password, 'p4ss', 'the expired token did not change the password');
      const after = await sessionFields(s.httpPort, late.jid);
      assert.equal(after.jitsi_meet_context_user.security_bypass, undefined, 'the bypass is gone from the session');
      assert.equal(after.jitsi_meet_context_user.name, 'trust user', 'display data stays');
    } finally {
      await stopAll(owner, late);
    }
  });
});

describe('trust: an unsigned Matrix token proves membership, nothing else', () => {
  let uvs;
  const server = useProsody(async () => {
    requirePlugins(PLUGINS);
    uvs = await startUvs({});
    return {
      vhost: { authentication: 'matrix_user_verification', app_id: APP_ID, app_secret: SECRET, uvs_base_url: uvs.url },
      vhostModules: ['test_observer', sessionProbePlugin().module],
      mucModules: ['token_verification', 'token_security_ondemand', 'test_lobby'],
    };
  });
  after(async () => {
    await uvs?.stop();
  });

  scenario('a foreign context.user.id and security_bypass in a Matrix token are dropped', server, async (t, s) => {
    const roomId = uniqueMatrixRoomId();
    const room = jitsiRoomOf(roomId);
    const roomJid = roomJidOf(room);
    const openid = uniqueOpenid();
    const userId = `@${openid.slice(-8)}:example.org`;
    uvs.setUser(openid, { user_id: userId, rooms: { [roomId]: 0 } });
    let owner, member;
    try {
      owner = await connect(s.wsUrl(room, hs(claims(room, { roomCtx: { password: 'm4trix' } }))));
      assert.equal((await owner.joinMuc(roomJid, 'owner')).ok, true, 'a standard token for the same room sets a password');
      await until(async () => assert.equal((await roomState(s.httpPort, roomJid)).password, 'm4trix'), 5000);

      const forged = matrixToken({
        iss: APP_ID,
        openid,
        roomId,
        context: { user: { id: '@ceo:example.org', name: 'CEO', security_bypass: true, moderator: true } },
      });
      member = await connect(s.wsUrl(room, forged));
      const f = await sessionFields(s.httpPort, member.jid);
      assert.equal(f.jitsi_meet_context_user.id, userId, 'the id is the verified Matrix user');
      assert.equal(f.jitsi_meet_context_user.security_bypass, undefined, 'no bypass from an unsigned token');
      assert.equal(f.jitsi_meet_context_user.moderator, undefined, 'no moderator from an unsigned token');
      const joined = await member.joinMuc(roomJid, 'member');
      assert.equal(joined.ok, false, `no bypass of the password: ${JSON.stringify(joined)}`);
      assert.equal(joined.condition, 'not-authorized');
    } finally {
      await stopAll(owner, member);
    }
  });
});

describe('trust: a Matrix token signed with a real matrix_token_secret', () => {
  let uvs;
  const MATRIX_SECRET = `e2e-matrix-token-secret-${crypto.randomBytes(16).toString('hex')}`;
  const server = useProsody(async () => {
    requirePlugins(PLUGINS);
    uvs = await startUvs({});
    return {
      vhost: {
        authentication: 'matrix_user_verification',
        app_id: APP_ID,
        uvs_base_url: uvs.url,
        matrix_token_secret: MATRIX_SECRET,
      },
      vhostModules: ['test_observer', sessionProbePlugin().module],
      mucModules: ['token_verification', 'token_security_ondemand', 'test_lobby'],
    };
  });
  after(async () => {
    await uvs?.stop();
  });

  scenario('keeps its grants in its own room, but the user is always the verified Matrix user', server, async (t, s) => {
    const roomId = uniqueMatrixRoomId();
    const room = jitsiRoomOf(roomId);
    const openid = uniqueOpenid();
    const userId = `@${openid.slice(-8)}:example.org`;
    uvs.setUser(openid, { user_id: userId, rooms: { [roomId]: 0 } });
    let member;
    try {
      const signed = matrixToken(
        { iss: APP_ID, openid, roomId, context: { user: { id: '@ceo:example.org', name: 'CEO', security_bypass: true } } },
        MATRIX_SECRET,
      );
      member = await connect(s.wsUrl(room, signed));
      const f = await sessionFields(s.httpPort, member.jid);
      assert.equal(f.jitsi_meet_context_user.id, userId, 'the JWT cannot name another user');
      assert.equal(f.jitsi_meet_context_user.name, 'CEO', 'display data stays');
      assert.equal(f.jitsi_meet_context_user.security_bypass, true, 'a truly signed token keeps its grants');
      assert.equal(f.jitsi_meet_room, room, 'for its own Matrix room only');
    } finally {
      await stopAll(member);
    }
  });
});
