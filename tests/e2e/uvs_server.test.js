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
  const contentType = res.headers.get('content-type') || '';
  const location = res.headers.get('location');
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, text, json, contentType, location };
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

  test('unknown token: the real UVS shape (user false, room_membership null, nulls)', async () => {
    const r = await post(uvs, '/verify/user_in_room', { token: 'nope', room_id: ROOM });
    assert.equal(r.status, 200);
    assert.match(r.contentType, /^application\/json/);
    assert.equal(r.text, '{"results":{"user":false,"room_membership":null},"user_id":null,"power_levels":null}');
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

  test('bad requests as Express answers them: unknown path or GET 404 html; not JSON or missing fields 400 plain text', async () => {
    const nope = await post(uvs, '/nope', { token: 't' });
    assert.equal(nope.status, 404);
    assert.match(nope.contentType, /^text\/html/);
    assert.match(nope.text, /Cannot POST \/nope/);
    const get = await fetch(`${uvs.url}/verify/user`);
    assert.match(await get.text(), /Cannot GET \/verify\/user/);
    assert.equal(get.status, 404);
    const notJson = await post(uvs, '/verify/user', 'not json');
    assert.equal(notJson.status, 400);
    assert.match(notJson.contentType, /^text\/plain/);
    const noToken = await post(uvs, '/verify/user', {});
    assert.equal(noToken.status, 400);
    assert.equal(noToken.text, 'Invalid request: token not found or with empty value in the JSON payload.');
    const noRoom = await post(uvs, '/verify/user_in_room', { token: 't' });
    assert.equal(noRoom.status, 400);
    assert.match(noRoom.contentType, /^text\/plain/);
    assert.equal(noRoom.text, 'Invalid request: room_id not found or with empty value in the JSON payload.');
    assert.equal((await post(uvs, '/verify/user_in_room', { token: '', room_id: ROOM })).status, 400, 'empty token');
    assert.equal(uvs.requests.at(-2).body.token, 't');
    assert.equal(uvs.requests[2].body, 'not json', 'unparsable body recorded raw');
  });
});

describe('uvs server: multiServer (UVS_OPENID_VERIFY_ANY_HOMESERVER)', () => {
  let uvs;
  before(async () => {
    uvs = await startUvs({ multiServer: true });
    uvs.setUser('t1', { user_id: '@alice:x', rooms: { [ROOM]: 100 } });
  });
  after(async () => {
    await uvs.stop();
  });

  test('without matrix_server_name: 400 plain text', async () => {
    for (const path of ['/verify/user_in_room', '/verify/user']) {
      const r = await post(uvs, path, { token: 't1', room_id: ROOM });
      assert.equal(r.status, 400, path);
      assert.match(r.contentType, /^text\/plain/, path);
      assert.equal(r.text, 'Invalid request: matrix_server_name not found or with empty value in the JSON payload.');
      assert.equal(r.json, undefined, 'not JSON');
    }
  });

  test("with the user's server: verified; with another server: invalid token", async () => {
    const ok = await post(uvs, '/verify/user_in_room', { token: 't1', room_id: ROOM, matrix_server_name: 'x' });
    assert.deepEqual(ok.json.results, { user: true, room_membership: true });
    const other = await post(uvs, '/verify/user_in_room', { token: 't1', room_id: ROOM, matrix_server_name: 'y' });
    assert.deepEqual(other.json, { results: { user: false, room_membership: null }, user_id: null, power_levels: null });
  });

  test('multiServer as a behaviour on a single-server UVS', async () => {
    const single = await startUvs();
    try {
      single.setUser('t1', { user_id: '@alice:x', rooms: { [ROOM]: 1 } });
      assert.equal((await post(single, '/verify/user_in_room', { token: 't1', room_id: ROOM })).status, 200);
      single.setBehaviour({ perToken: { t1: { multiServer: true } } });
      assert.equal((await post(single, '/verify/user_in_room', { token: 't1', room_id: ROOM })).status, 400);
    } finally {
      await single.stop();
    }
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
    ['missing header', {}, 403],
    ['wrong token', { authorization: 'Bearer wrong' }, 403],
    ['wrong scheme', { authorization: 'Basic s3cret' }, 403],
    ['right token', { authorization: 'Bearer s3cret' }, 200],
  ];
  for (const [name, headers, status] of cases) {
    test(`${name} -> ${status}${status === 403 ? ' {}' : ''}`, async () => {
      for (const path of ['/verify/user_in_room', '/verify/user']) {
        const r = await post(uvs, path, { token: 't1', room_id: ROOM }, headers);
        assert.equal(r.status, status, path);
        if (status === 403) assert.equal(r.text, '{}', path);
      }
    });
  }

  test('the bearer is checked before the request itself (403 before 400)', async () => {
    assert.equal((await post(uvs, '/verify/user_in_room', {}, { authorization: 'Bearer wrong' })).status, 403);
  });

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

describe('uvs server: faults', () => {
  let uvs;
  before(async () => {
    uvs = await startUvs({ authToken: 'b' });
  });
  after(async () => {
    await uvs.stop();
  });
  beforeEach(() => {
    uvs.reset();
    uvs.setUser('t1', { user_id: '@alice:x', rooms: { [ROOM]: 100 } });
  });
  const auth = { authorization: 'Bearer b' };
  const ask = (headers = auth) => post(uvs, '/verify/user_in_room', { token: 't1', room_id: ROOM }, headers);

  test('forbidden: 403 {} even with the right bearer', async () => {
    uvs.setBehaviour({ forbidden: true });
    const r = await ask();
    assert.equal(r.status, 403);
    assert.equal(r.text, '{}');
  });

  test('invalidToken: the real invalid-token shape for a known user', async () => {
    uvs.setBehaviour({ perToken: { t1: { invalidToken: true } } });
    assert.deepEqual((await ask()).json, { results: { user: false, room_membership: null }, user_id: null, power_levels: null });
  });

  test('hugeBody: 200, 10 MB of valid JSON with content-length; chunked variant', async () => {
    uvs.setBehaviour({ hugeBody: true });
    const res = await fetch(`${uvs.url}/verify/user_in_room`, { method: 'POST', headers: auth, body: JSON.stringify({ token: 't1', room_id: ROOM }) });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-length'), String(10 * 1024 * 1024));
    const body = await res.text();
    assert.equal(body.length, 10 * 1024 * 1024);
    assert.equal(JSON.parse(body).results.user, true);
    uvs.setBehaviour({ hugeBody: { bytes: 2 * 1024 * 1024, chunked: true } });
    const r2 = await fetch(`${uvs.url}/verify/user_in_room`, { method: 'POST', headers: auth, body: JSON.stringify({ token: 't1', room_id: ROOM }) });
    assert.equal(r2.headers.get('content-length'), null);
    assert.equal((await r2.text()).length, 2 * 1024 * 1024);
  });

  test('drip: headers at once, then a byte at a time, the answer only after totalMs', async () => {
    uvs.setBehaviour({ drip: { intervalMs: 20, totalMs: 400 } });
    const start = Date.now();
    const res = await fetch(`${uvs.url}/verify/user_in_room`, { method: 'POST', headers: auth, body: JSON.stringify({ token: 't1', room_id: ROOM }) });
    assert.ok(Date.now() - start < 300, 'headers come at once');
    assert.equal(res.status, 200);
    const text = await res.text();
    assert.ok(Date.now() - start >= 380, `body after totalMs (${Date.now() - start} ms)`);
    assert.match(text, /^ {5,}\{/);
    assert.equal(JSON.parse(text).results.room_membership, true);
  });

  test('noAnswer: no answer until the client gives up', async () => {
    uvs.setBehaviour({ noAnswer: true });
    await assert.rejects(
      fetch(`${uvs.url}/verify/user_in_room`, { method: 'POST', headers: auth, body: '{"token":"t1"}', signal: AbortSignal.timeout(300) }),
    );
    assert.equal(uvs.requests.length, 1);
  });

  test('html: 200 text/html', async () => {
    uvs.setBehaviour({ html: true });
    const r = await ask();
    assert.equal(r.status, 200);
    assert.match(r.contentType, /^text\/html/);
    assert.equal(r.json, undefined);
  });

  test('stringBooleans: results as strings', async () => {
    uvs.setBehaviour({ stringBooleans: true });
    assert.deepEqual((await ask()).json.results, { user: 'true', room_membership: 'true' });
  });

  test('hugeNumbers: numbers out of range in the power levels', async () => {
    uvs.setBehaviour({ hugeNumbers: 'float' });
    assert.match((await ask()).text, /"user":1e400\}\}$/);
    uvs.setBehaviour({ hugeNumbers: 'int' });
    assert.match((await ask()).text, /"user":99999999999999999999999\}\}$/);
    uvs.setBehaviour({ hugeNumbers: true });
    const both = (await ask()).text;
    assert.match(both, /"state_default":99999999999999999999999/);
    assert.match(both, /"user":1e400/);
  });

  test('redirect: 302 to /redirected/..., which answers member for anyone', async () => {
    uvs.setBehaviour({ redirect: true });
    const res = await fetch(`${uvs.url}/verify/user_in_room`, {
      method: 'POST',
      headers: auth,
      body: JSON.stringify({ token: 't1', room_id: ROOM }),
      redirect: 'manual',
    });
    await res.text();
    assert.equal(res.status, 302);
    assert.equal(res.headers.get('location'), `${uvs.url}/redirected/verify/user_in_room`);
    const followed = await post(uvs, '/redirected/verify/user_in_room', { token: 'anyone', room_id: ROOM });
    assert.deepEqual(followed.json.results, { user: true, room_membership: true });
  });

  test('truncated: the connection closes before content-length bytes', async () => {
    uvs.setBehaviour({ truncated: true });
    await assert.rejects(async () => {
      const res = await fetch(`${uvs.url}/verify/user_in_room`, { method: 'POST', headers: auth, body: '{"token":"t1","room_id":"x"}' });
      await res.text();
    });
  });

  test('userId replaces user_id; contentType for raw bodies', async () => {
    uvs.setBehaviour({ userId: '@a\nb:x' });
    assert.equal((await ask()).json.user_id, '@a\nb:x');
    uvs.setBehaviour({ status: 502, body: '<html>bad gateway</html>', contentType: 'text/html' });
    const r = await ask();
    assert.equal(r.status, 502);
    assert.match(r.contentType, /^text\/html/);
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

describe('uvs server: stop with held connections', () => {
  test('stop while noAnswer and drip hold connections does not hang', async () => {
    const uvs = await startUvs();
    uvs.setBehaviour({ perToken: { a: { noAnswer: true }, b: { drip: { intervalMs: 10 } } } });
    // Settle handlers attached at once: the drip request fails while we wait for stop().
    const outcome = (p) => p.then(() => 'answered', (err) => err);
    const a = outcome(post(uvs, '/verify/user', { token: 'a' }));
    const b = outcome(post(uvs, '/verify/user', { token: 'b' }));
    while (uvs.requests.length < 2) await new Promise((r) => setTimeout(r, 10));
    const start = Date.now();
    await uvs.stop();
    assert.ok(Date.now() - start < 5000);
    assert.ok((await a) instanceof Error, 'noAnswer request failed');
    assert.ok((await b) instanceof Error, 'drip request failed');
  });
});
