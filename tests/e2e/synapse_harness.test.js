// Self-test of the real-Synapse harness (lib/synapse.js): nothing here
// touches our plugins, so a failure is the harness or the Synapse install
// (`make deps-synapse`), not the product.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { startSynapse } from './lib/synapse.js';

/** The events of an admin-API state answer, by "type|state_key". */
function stateMap(answer) {
  assert.ok(Array.isArray(answer.state), `admin state answer has a state array: ${JSON.stringify(answer)}`);
  return new Map(answer.state.map((e) => [`${e.type}|${e.state_key}`, e]));
}

describe('synapse harness', { timeout: 90000 }, () => {
  let hs;
  let admin;
  let alice;
  let bob;
  let room11;
  let room12;

  before(async () => {
    hs = await startSynapse();
    admin = await hs.registerUser('admin', { admin: true });
    alice = await hs.registerUser('alice', { displayname: 'Alice' });
    bob = await hs.registerUser('bob');
  });

  after(async () => {
    if (hs) await hs.stop();
  });

  test('starts, registers users on its server name', async (t) => {
    t.diagnostic(`synapse ${hs.serverName} at ${hs.url}: startup ${JSON.stringify(hs.startupMs)} ms`);
    assert.match(hs.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(admin.userId, `@admin:${hs.serverName}`);
    assert.equal(alice.userId, hs.userId('alice'));
    assert.ok(alice.accessToken && bob.accessToken);
    const who = await hs.whoami(admin.accessToken);
    assert.equal(who.user_id, admin.userId);
    // Not an admin: the admin API refuses.
    const res = await hs.request('GET', `/_synapse/admin/v2/users/${encodeURIComponent(bob.userId)}`, {
      token: bob.accessToken,
    });
    assert.equal(res.status, 403);
  });

  test('creates v11 and v12 rooms; members join', async () => {
    room11 = await hs.createRoom(alice.accessToken, { roomVersion: '11', preset: 'public_chat' });
    room12 = await hs.createRoom(alice.accessToken, { roomVersion: '12', preset: 'public_chat' });
    assert.match(room11, /^![^:]+:/, 'v11 room id has a server part');
    assert.equal(room11.split(':')[1], hs.serverName);
    assert.ok(room12.startsWith('!') && !room12.includes(':'), `v12 room id has no server part: ${room12}`);
    await hs.join(bob.accessToken, room11);
    await hs.join(bob.accessToken, room12);
    for (const roomId of [room11, room12]) {
      const { members } = await hs.adminRoomMembers(admin.accessToken, roomId);
      assert.deepEqual([...members].sort(), [alice.userId, bob.userId].sort());
    }
  });

  test('OpenID token resolves through the federation userinfo endpoint (plain HTTP)', async () => {
    const full = await hs.openidTokenFull(bob.accessToken, bob.userId);
    assert.equal(full.matrix_server_name, hs.serverName);
    assert.equal(typeof full.access_token, 'string');
    const openid = await hs.openidToken(alice.accessToken, alice.userId);
    assert.deepEqual(await hs.openidUserinfo(openid), { sub: alice.userId });
    assert.deepEqual(await hs.openidUserinfo(full.access_token), { sub: bob.userId });
    // An unknown token, and a client access token (not an OpenID token), are 401.
    for (const bad of ['not-a-token', alice.accessToken]) {
      const res = await hs.request('GET', '/_matrix/federation/v1/openid/userinfo', { query: { access_token: bad } });
      assert.equal(res.status, 401);
      assert.equal(res.body.errcode, 'M_UNKNOWN_TOKEN');
    }
  });

  test('admin state API: membership, power levels, v11 vs v12 creators', async () => {
    const s11 = stateMap(await hs.adminRoomState(admin.accessToken, room11));
    const s12 = stateMap(await hs.adminRoomState(admin.accessToken, room12));
    for (const s of [s11, s12]) {
      assert.equal(s.get(`m.room.member|${bob.userId}`).content.membership, 'join');
      assert.equal(s.get(`m.room.member|${alice.userId}`).content.membership, 'join');
      assert.equal(s.get(`m.room.member|${alice.userId}`).content.displayname, 'Alice');
      assert.equal(s.get('m.room.create|').sender, alice.userId);
      const pl = s.get('m.room.power_levels|').content;
      assert.equal(pl.state_default, 50);
      assert.equal(pl.users_default, 0);
      assert.equal(pl.users[bob.userId], undefined);
    }
    assert.equal(s11.get('m.room.create|').content.room_version, '11');
    assert.equal(s12.get('m.room.create|').content.room_version, '12');
    // v11: the creator is listed at 100. v12: creators are not in users at all.
    assert.equal(s11.get('m.room.power_levels|').content.users[alice.userId], 100);
    assert.deepEqual(s12.get('m.room.power_levels|').content.users, {});
  });

  test('setPowerLevel, kick, ban', async () => {
    await hs.setPowerLevel(alice.accessToken, room12, bob.userId, 50);
    await hs.setPowerLevel(alice.accessToken, room11, bob.userId, 75);
    let s12 = stateMap(await hs.adminRoomState(admin.accessToken, room12));
    let s11 = stateMap(await hs.adminRoomState(admin.accessToken, room11));
    assert.equal(s12.get('m.room.power_levels|').content.users[bob.userId], 50);
    assert.equal(s11.get('m.room.power_levels|').content.users[bob.userId], 75);
    assert.equal(s11.get('m.room.power_levels|').content.users[alice.userId], 100, 'read-modify-write kept the rest');
    assert.equal((await hs.getState(bob.accessToken, room12, 'm.room.power_levels')).users[bob.userId], 50);

    await hs.kick(alice.accessToken, room11, bob.userId, 'test kick');
    await hs.ban(alice.accessToken, room12, bob.userId, 'test ban');
    s11 = stateMap(await hs.adminRoomState(admin.accessToken, room11));
    s12 = stateMap(await hs.adminRoomState(admin.accessToken, room12));
    assert.equal(s11.get(`m.room.member|${bob.userId}`).content.membership, 'leave');
    assert.equal(s12.get(`m.room.member|${bob.userId}`).content.membership, 'ban');
    assert.deepEqual((await hs.adminRoomMembers(admin.accessToken, room11)).members, [alice.userId]);

    // Kicked: may join again (public room). Banned: may not.
    await hs.join(bob.accessToken, room11);
    await assert.rejects(hs.join(bob.accessToken, room12), (err) => err.status === 403);
    await hs.unban(alice.accessToken, room12, bob.userId);
    await hs.join(bob.accessToken, room12);

    // Power level back to the default.
    await hs.setPowerLevel(alice.accessToken, room12, bob.userId, null);
    s12 = stateMap(await hs.adminRoomState(admin.accessToken, room12));
    assert.deepEqual(s12.get('m.room.power_levels|').content.users, {});
  });

  test('pause() hangs the homeserver, resume() brings it back', async () => {
    const openid = await hs.openidToken(bob.accessToken, bob.userId);
    hs.pause();
    assert.equal(hs.isPaused(), true);
    const t0 = Date.now();
    await assert.rejects(
      hs.request('GET', '/_matrix/federation/v1/openid/userinfo', { query: { access_token: openid }, timeoutMs: 1000 }),
      (err) => err.name === 'TimeoutError',
    );
    assert.ok(Date.now() - t0 >= 900, 'the request hung until its timeout');
    hs.resume();
    assert.equal(hs.isPaused(), false);
    assert.deepEqual(await hs.openidUserinfo(openid), { sub: bob.userId });
  });

  test('kill() takes the homeserver down: connection refused', async () => {
    const exit = await hs.kill();
    assert.equal(exit.signal, 'SIGKILL');
    await assert.rejects(hs.request('GET', '/health', { timeoutMs: 2000 }), (err) => err.name === 'TypeError');
  });
});
