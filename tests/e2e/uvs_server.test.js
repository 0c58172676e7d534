// Self-test of the test UVS (lib/uvs_server.js) with plain fetch: a failure
// here is the test server, not the product.
//
//   node --test uvs_server.test.js

import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';

import { startUvs } from './lib/uvs_server.js';

const ROOM = '!room:matrix.example';
const OTHER_ROOM = '!other:matrix.example';

async function post(uvs, path, body, headers = {}) {
  const res = await fetch(`${uvs.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, text, json };
}

describe('uvs server: /verify/user_in_room', () => {
  let uvs;
  before(async () => {
    uvs = await startUvs();
  });
  after(async () => {
    await uvs.stop();
  });
  beforeEach(() => uvs.reset());

  test('binds 127.0.0.1 on a free port, url without trailing slash', () => {
    assert.match(uvs.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.ok(uvs.port > 0);
    assert.equal(uvs.url, `http://127.0.0.1:${uvs.port}`);
  });

  test('unknown token: user false, membership false, nulls', async () => {
    const r = await post(uvs, '/verify/user_in_room', { token: 'nope', room_id: ROOM });
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, {
      results: { user: false, room_membership: false },
      user_id: null,
      power_levels: null,
    });
  });

  test('known user not in the room: user true, membership false', async () => {
    uvs.setUser('t1', { user_id: '@alice:x', rooms: { [OTHER_ROOM]: 100 } });
    const r = await post(uvs, '/verify/user_in_room', { token: 't1', room_id: ROOM });
    assert.deepEqual(r.json, {
      results: { user: true, room_membership: false },
      user_id: '@alice:x',
      power_levels: null,
    });
  });

  test('member: both true, power levels with state_default when set', async () => {
    uvs.setUser('t1', { user_id: '@alice:x', rooms: { [ROOM]: 100 }, state_default: 75 });
    const r = await post(uvs, '/verify/user_in_room', { token: 't1', room_id: ROOM, matrix_server_name: 'x' });
    assert.equal(r.status, 200);
    assert.deepEqual(r.json.results, { user: true, room_membership: true });
    assert.equal(r.json.user_id, '@alice:x');
    assert.equal(r.json.power_levels.user, 100);
    assert.equal(r.json.power_levels.room.state_default, 75);
    assert.equal(r.json.power_levels.room.users, undefined, 'room content has no users');
  });

  test('member without state_default: the key is absent', async () => {
    uvs.setUser('t1', { user_id: '@alice:x', rooms: { [ROOM]: 50 } });
    const r = await post(uvs, '/verify/user_in_room', { token: 't1', room_id: ROOM });
    assert.equal(r.json.power_levels.user, 50);
    assert.equal(Object.hasOwn(r.json.power_levels.room, 'state_default'), false);
  });

  test('member given as true has power level 0', async () => {
    uvs.setUser('t1', { user_id: '@bob:x', rooms: { [ROOM]: true } });
    const r = await post(uvs, '/verify/user_in_room', { token: 't1', room_id: ROOM });
    assert.deepEqual(r.json.results, { user: true, room_membership: true });
    assert.equal(r.json.power_levels.user, 0);
  });

  test('power_levels_null: member with power_levels null', async () => {
    uvs.setUser('t1', { user_id: '@bob:x', rooms: { [ROOM]: 100 }, power_levels_null: true });
    const r = await post(uvs, '/verify/user_in_room', { token: 't1', room_id: ROOM });
    assert.deepEqual(r.json, {
      results: { user: true, room_membership: true },
      user_id: '@bob:x',
      power_levels: null,
    });
  });

  test('removeUser makes the token unknown', async () => {
    uvs.setUser('t1', { user_id: '@bob:x', rooms: { [ROOM]: 100 } });
    uvs.removeUser('t1');
    const r = await post(uvs, '/verify/user_in_room', { token: 't1', room_id: ROOM });
    assert.equal(r.json.results.user, false);
  });

  test('records method, path, headers and parsed body', async () => {
    await post(uvs, '/verify/user_in_room', { token: 't9', room_id: ROOM }, { authorization: 'Bearer abc' });
    assert.equal(uvs.requests.length, 1);
    const [rec] = uvs.requests;
    assert.equal(rec.method, 'POST');
    assert.equal(rec.path, '/verify/user_in_room');
    assert.equal(rec.headers.authorization, 'Bearer abc');
    assert.deepEqual(rec.body, { token: 't9', room_id: ROOM });
  });

  test('bad requests: unknown path 404, GET 405, not JSON 400, missing fields 400', async () => {
    assert.equal((await post(uvs, '/nope', { token: 't' })).status, 404);
    const get = await fetch(`${uvs.url}/verify/user`);
    await get.text();
    assert.equal(get.status, 405);
    assert.equal((await post(uvs, '/verify/user', 'not json')).status, 400);
    assert.equal((await post(uvs, '/verify/user', {})).status, 400);
    assert.equal((await post(uvs, '/verify/user_in_room', { token: 't' })).status, 400);
    assert.equal(uvs.requests.at(-1).body.token, 't');
    assert.equal(uvs.requests[2].body, 'not json', 'unparsable body recorded raw');
  });
});

describe('uvs server: /verify/user', () => {
  let uvs;
  before(async () => {
    uvs = await startUvs();
  });
  after(async () => {
    await uvs.stop();
  });

  test('checks the user only', async () => {
    uvs.setUser('t1', { user_id: '@alice:x', rooms: {} });
    assert.deepEqual((await post(uvs, '/verify/user', { token: 't1' })).json, {
      results: { user: true },
      user_id: '@alice:x',
    });
    assert.deepEqual((await post(uvs, '/verify/user', { token: 'nope' })).json, {
      results: { user: false },
      user_id: null,
    });
  });
});

describe('uvs server: bearer auth', () => {
  let uvs;
  before(async () => {
    uvs = await startUvs({ authToken: 's3cret' });
    uvs.setUser('t1', { user_id: '@alice:x', rooms: { [ROOM]: 100 } });
  });
  after(async () => {
    await uvs.stop();
  });

  const cases = [
    ['missing header', {}, 401],
    ['wrong token', { authorization: 'Bearer wrong' }, 401],
    ['wrong scheme', { authorization: 'Basic s3cret' }, 401],
    ['right token', { authorization: 'Bearer s3cret' }, 200],
  ];
  for (const [name, headers, status] of cases) {
    test(`${name} -> ${status}`, async () => {
      for (const path of ['/verify/user_in_room', '/verify/user']) {
        const r = await post(uvs, path, { token: 't1', room_id: ROOM }, headers);
        assert.equal(r.status, status, path);
      }
    });
  }

  test('without authToken any header is accepted', async () => {
    const open = await startUvs();
    try {
      assert.equal((await post(open, '/verify/user', { token: 'x' })).status, 200);
      assert.equal((await post(open, '/verify/user', { token: 'x' }, { authorization: 'Bearer z' })).status, 200);
    } finally {
      await open.stop();
    }
  });
});

describe('uvs server: behaviour', () => {
  let uvs;
  before(async () => {
    uvs = await startUvs();
  });
  after(async () => {
    await uvs.stop();
  });
  beforeEach(() => {
    uvs.reset();
    uvs.setUser('t1', { user_id: '@alice:x', rooms: { [ROOM]: 100 } });
    uvs.setUser('t2', { user_id: '@bob:x', rooms: { [ROOM]: 0 } });
  });

  test('forced status with default error body', async () => {
    uvs.setBehaviour({ status: 500 });
    const r = await post(uvs, '/verify/user_in_room', { token: 't1', room_id: ROOM });
    assert.equal(r.status, 500);
    assert.ok(r.json.error);
  });

  test('raw body with status 200 by default', async () => {
    uvs.setBehaviour({ body: '{"user_id":"@alice:x"}' });
    const r = await post(uvs, '/verify/user_in_room', { token: 't1', room_id: ROOM });
    assert.equal(r.status, 200);
    assert.equal(r.text, '{"user_id":"@alice:x"}');
    uvs.setBehaviour({ body: 'not json at all', status: 200 });
    assert.equal((await post(uvs, '/verify/user', { token: 't1' })).text, 'not json at all');
  });

  test('latency delays the answer', async () => {
    uvs.setBehaviour({ latencyMs: 300 });
    const start = Date.now();
    const r = await post(uvs, '/verify/user_in_room', { token: 't1', room_id: ROOM });
    assert.ok(Date.now() - start >= 280, `answered after ${Date.now() - start} ms`);
    assert.equal(r.json.results.room_membership, true);
  });

  test('drop destroys the connection without an answer', async () => {
    uvs.setBehaviour({ drop: true });
    await assert.rejects(post(uvs, '/verify/user_in_room', { token: 't1', room_id: ROOM }));
    assert.equal(uvs.requests.length, 1, 'the dropped request is still recorded');
  });

  test('perToken replaces the behaviour for that token only', async () => {
    uvs.setBehaviour({ perToken: { t2: { status: 503 } } });
    assert.equal((await post(uvs, '/verify/user_in_room', { token: 't1', room_id: ROOM })).status, 200);
    assert.equal((await post(uvs, '/verify/user_in_room', { token: 't2', room_id: ROOM })).status, 503);
    uvs.setBehaviour({ status: 500, perToken: { t2: { latencyMs: 10 } } });
    assert.equal((await post(uvs, '/verify/user_in_room', { token: 't1', room_id: ROOM })).status, 500);
    assert.equal((await post(uvs, '/verify/user_in_room', { token: 't2', room_id: ROOM })).status, 200);
  });

  test('setBehaviour({}) restores normal answers', async () => {
    uvs.setBehaviour({ status: 500 });
    uvs.setBehaviour({});
    assert.equal((await post(uvs, '/verify/user', { token: 't1' })).status, 200);
  });
});

describe('uvs server: stop', () => {
  test('stop while a slow answer is pending does not hang, then refuses', async () => {
    const uvs = await startUvs();
    uvs.setBehaviour({ latencyMs: 60_000 });
    const pending = post(uvs, '/verify/user', { token: 'x' });
    while (uvs.requests.length === 0) await new Promise((r) => setTimeout(r, 10));
    const start = Date.now();
    await uvs.stop();
    assert.ok(Date.now() - start < 5000);
    await assert.rejects(pending);
    await assert.rejects(post(uvs, '/verify/user', { token: 'x' }));
    await uvs.stop(); // idempotent
  });
});
