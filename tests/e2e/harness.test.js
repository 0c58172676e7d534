// Self-test of the harness on plain Prosody (anonymous auth): none of this
// depends on our plugins, so a failure here is the harness, not the product.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { describe, test } from 'node:test';

import { connect, stopAll } from './lib/client.js';
import { scenario, uniqueRoom, useProsody } from './lib/harness.js';
import { decode, ecKeyPair, rsaKeyPair, sign } from './lib/jwt.js';
import { luaValue } from './lib/lua.js';
import { fireLobbyEvent, roomState } from './lib/observer.js';
import { MUC_DOMAIN } from './lib/prosody.js';

describe('harness: lua rendering and jwt signer', () => {
  test('renders JS values as Lua', () => {
    assert.equal(luaValue('a"b\\c\n'), '"a\\"b\\\\c\\010"');
    assert.equal(luaValue(['x', 1, true]), '{ "x", 1, true }');
    assert.equal(luaValue({ a: { b: false }, skip: undefined }), '{ ["a"] = { ["b"] = false } }');
    assert.equal(luaValue([]), '{ }');
  });

  test('signs tokens node:crypto can verify', () => {
    const payload = { iss: 'x', n: 1 };
    const [h, p, s] = sign(payload, { alg: 'HS256', key: 'k' }).split('.');
    const mac = crypto.createHmac('sha256', 'k').update(`${h}.${p}`).digest('base64url');
    assert.equal(s, mac);

    const rsa = rsaKeyPair();
    const rs = sign(payload, { alg: 'RS256', key: rsa.privateKey }).split('.');
    assert.ok(crypto.verify('sha256', Buffer.from(`${rs[0]}.${rs[1]}`), rsa.publicKey, Buffer.from(rs[2], 'base64url')));

    const ec = ecKeyPair();
    const es = sign(payload, { alg: 'ES256', key: ec.privateKey }).split('.');
    const raw = Buffer.from(es[2], 'base64url');
    assert.equal(raw.length, 64, 'ES256 signature is raw r||s');
    assert.ok(
      crypto.verify('sha256', Buffer.from(`${es[0]}.${es[1]}`), { key: ec.publicKey, dsaEncoding: 'ieee-p1363' }, raw),
    );

    const none = sign(payload, { alg: 'none' });
    assert.ok(none.endsWith('.'));
    assert.deepEqual(decode(none), { header: { alg: 'none', typ: 'JWT' }, payload });
  });
});

describe('harness: plain prosody with anonymous auth', () => {
  const server = useProsody({
    vhost: { authentication: 'anonymous' },
    vhostModules: ['test_observer'],
    mucModules: ['test_lobby'],
  });

  scenario('connects over websocket, pings, joins a room and observes it', server, async (t, s) => {
    const room = uniqueRoom('harness');
    const roomJid = `${room}@${MUC_DOMAIN}`;
    let a, b;
    try {
      a = await connect(s.wsUrl(room));
      assert.match(a.jid, /@localhost\//);
      const rtt = await a.ping('localhost');
      assert.ok(rtt >= 0 && rtt < 5000, `ping rtt ${rtt}`);

      const ja = await a.joinMuc(roomJid, 'alice');
      assert.equal(ja.ok, true, JSON.stringify(ja));
      assert.equal(ja.affiliation, 'owner');
      assert.equal(ja.role, 'moderator');
      assert.ok(ja.statusCodes.includes(110), `self-presence has 110: ${ja.statusCodes}`);

      b = await connect(s.wsUrl(room));
      const jb = await b.joinMuc(roomJid, 'bob');
      assert.deepEqual([jb.ok, jb.affiliation, jb.role], [true, 'none', 'participant']);

      const state = await roomState(s.httpPort, roomJid);
      assert.equal(state.exists, true);
      assert.equal(state.members_only, false);
      assert.equal(state.password, null);
      assert.equal(state.lobbyroom, null);
      assert.equal(state.affiliations[a.bareJid], 'owner');
      assert.deepEqual(state.occupants.map((o) => o.nick).sort(), ['alice', 'bob']);

      const missing = await roomState(s.httpPort, `${uniqueRoom('nope')}@${MUC_DOMAIN}`);
      assert.equal(missing.exists, false);
    } finally {
      await stopAll(a, b);
    }
  });

  scenario('test_lobby implements create/destroy of the lobby room', server, async (t, s) => {
    const room = uniqueRoom('harness-lobby');
    const roomJid = `${room}@${MUC_DOMAIN}`;
    let a, b, c;
    try {
      a = await connect(s.wsUrl(room));
      assert.equal((await a.joinMuc(roomJid, 'owner')).ok, true);

      const created = await fireLobbyEvent(s.httpPort, roomJid, 'create');
      assert.equal(created.members_only, true);
      assert.equal(created.lobbyroom, `${room}@lobby.localhost`);
      assert.equal(created.lobbyroom_exists, true);

      b = await connect(s.wsUrl(room));
      const jb = await b.joinMuc(roomJid, 'stranger');
      assert.deepEqual([jb.ok, jb.condition], [false, 'registration-required']);

      const destroyed = await fireLobbyEvent(s.httpPort, roomJid, 'destroy');
      assert.equal(destroyed.lobbyroom, null);
      assert.equal(destroyed.lobbyroom_exists, false);
      // test_lobby only destroys; turning members-only off is the plugin's job.
      assert.equal(destroyed.members_only, true);
    } finally {
      await stopAll(a, b, c);
    }
  });
});
