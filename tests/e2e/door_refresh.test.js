// End-to-end: the room door and refreshed claims (docs/design.md, "Room
// doors"). jitsi-meet's token auth fires jitsi-verify-session-rooms when a
// resumed session brings new claims; the door answers { res = false, room,
// error, reason } when they no longer cover the conference the session was
// let into (session.jitsi_meet_verified_room). Real Prosody; the refresh is
// driven by tests/prosody/mod_test_refresh_claims.lua.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { describe } from 'node:test';

import { connect, stopAll } from './lib/client.js';
import { scenario, uniqueRoom, useProsody } from './lib/harness.js';
import { now, sign } from './lib/jwt.js';
import { requestCompleteCodes, requirePlugins, sessionFields, sessionProbePlugin } from './lib/matrix.js';
import { MUC_DOMAIN } from './lib/prosody.js';

const APP_ID = 'e2e-refresh-app';
const SECRET = `e2e-refresh-secret-${crypto.randomBytes(12).toString('hex')}`;

const token = (room) => sign({ iss: APP_ID, aud: 'jitsi', sub: 'localhost', room, exp: now() + 300 }, { alg: 'HS256', key: SECRET });

async function refresh(httpPort, jid, room) {
  const url = `http://127.0.0.1:${httpPort}/test_refresh_claims/session?jid=${encodeURIComponent(jid)}&room=${encodeURIComponent(room)}`;
  const res = await fetch(url, { method: 'POST', signal: AbortSignal.timeout(5000) });
  assert.equal(res.status, 200, await res.clone().text());
  return res.json();
}

describe('room door: refreshed claims are checked against the conference the session is in', () => {
  const server = useProsody(() => {
    requirePlugins(['mod_auth_matrix_user_verification.lua', 'mod_token_verification.lua']);
    return {
      vhost: { authentication: 'matrix_user_verification', app_id: APP_ID, app_secret: SECRET },
      vhostModules: ['test_refresh_claims', sessionProbePlugin().module],
      mucModules: ['token_verification'],
    };
  });

  scenario('claims for another room are refused (res false), claims for the same room pass', server, async (t, s) => {
    const room = uniqueRoom('refresh');
    const roomJid = `${room}@${MUC_DOMAIN}`;
    let c;
    try {
      c = await connect(s.wsUrl(room, token(room)));
      assert.equal((await c.joinMuc(roomJid, 'u')).ok, true, 'the token opens its room');
      assert.equal((await sessionFields(s.httpPort, c.jid)).jitsi_meet_verified_room, roomJid, 'the door remembers the conference');

      const mark = s.logMark();
      const refused = await refresh(s.httpPort, c.jid, 'some-other-room');
      assert.equal(refused.found, true);
      assert.equal(refused.answer?.res, false, `new claims for another room: ${JSON.stringify(refused)}`);
      assert.equal(refused.answer.room, roomJid);
      assert.equal(refused.answer.error, 'not-allowed');
      assert.match(refused.answer.reason, /does not open room/);
      assert.deepEqual(requestCompleteCodes(s.logSince(mark)), ['room_not_covered']);

      const same = await refresh(s.httpPort, c.jid, room.toUpperCase());
      assert.deepEqual(same, { found: true }, 'claims for the same room: no objection');
    } finally {
      await stopAll(c);
    }
  });
});
