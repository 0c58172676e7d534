// Our own Matrix User Verification Service (UVS) for tests: CONTRACT
// section 4, on 127.0.0.1 with a free port, no dependencies.
//
//   const uvs = await startUvs({ authToken: 'secret' });
//   uvs.setUser('openid-1', { user_id: '@alice:x', rooms: { '!r:x': 100 }, state_default: 50 });
//   uvs.setBehaviour({ latencyMs: 200, perToken: { 'openid-2': { status: 500 } } });
//   ... uvs.url is the uvs_base_url (no trailing slash); uvs.requests lists what arrived
//   await uvs.stop();
//
// Users (keyed by Matrix OpenID token):
//   rooms: { roomId: powerLevel | true }   true = member at power level 0
//   state_default: number | null           omitted: the room has none (UVS clients use 50)
//   power_levels_null: true                members get "power_levels": null
//
// Behaviour (setBehaviour replaces the previous one; setBehaviour({}) is normal):
//   latencyMs  wait before answering
//   status     answer with this status (body defaults to {"error":"..."})
//   body       answer with this raw string (status defaults to 200)
//   drop       destroy the socket without answering (after latencyMs)
//   perToken   { openidToken: { latencyMs, status, body, drop } } replaces the
//              above for requests whose JSON body has that token
// Overrides apply before the Bearer check; the normal answer checks it first
// (401 when authToken is set and the header is not exactly "Bearer <authToken>").

import http from 'node:http';

const PATH_USER_IN_ROOM = '/verify/user_in_room';
const PATH_USER = '/verify/user';
const MAX_BODY = 1 << 20;

/** A typical m.room.power_levels content without users (state_default added per user). */
const ROOM_POWER_LEVELS = {
  ban: 50,
  events: {},
  events_default: 0,
  invite: 0,
  kick: 50,
  redact: 50,
  users_default: 0,
};

function sendJson(res, status, value) {
  const text = JSON.stringify(value);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

function sendRaw(res, status, text) {
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

function parseJson(text) {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false, value: undefined };
  }
}

/**
 * Start a UVS. `authToken`: when set, requests must carry
 * `Authorization: Bearer <authToken>`.
 */
export async function startUvs({ authToken } = {}) {
  const users = new Map();
  let behaviour = {};
  const requests = [];
  const sockets = new Set();
  const timers = new Set();
  let stopped = false;

  function userAnswer(path, body) {
    const user = typeof body.token === 'string' ? users.get(body.token) : undefined;
    if (path === PATH_USER) {
      return user
        ? { results: { user: true }, user_id: user.user_id }
        : { results: { user: false }, user_id: null };
    }
    if (!user) {
      return { results: { user: false, room_membership: false }, user_id: null, power_levels: null };
    }
    const rooms = user.rooms || {};
    if (typeof body.room_id !== 'string' || !Object.hasOwn(rooms, body.room_id)) {
      return { results: { user: true, room_membership: false }, user_id: user.user_id, power_levels: null };
    }
    let powerLevels = null;
    if (!user.power_levels_null) {
      const level = rooms[body.room_id] === true ? 0 : rooms[body.room_id];
      const room = { ...ROOM_POWER_LEVELS };
      if (user.state_default !== undefined) room.state_default = user.state_default;
      powerLevels = { room, user: level };
    }
    return { results: { user: true, room_membership: true }, user_id: user.user_id, power_levels: powerLevels };
  }

  function answer(req, res, record) {
    const parsed = parseJson(record.rawBody);
    const token = parsed.ok && parsed.value && typeof parsed.value === 'object' ? parsed.value.token : undefined;
    const perToken = (typeof token === 'string' && behaviour.perToken?.[token]) || null;
    const b = perToken || behaviour;

    const respond = () => {
      if (stopped || res.writableEnded || req.socket.destroyed) return;
      if (b.drop) {
        req.socket.destroy();
        return;
      }
      if (b.status !== undefined || b.body !== undefined) {
        const status = b.status ?? 200;
        const text = b.body !== undefined ? String(b.body) : JSON.stringify({ error: `forced status ${status}` });
        sendRaw(res, status, text);
        return;
      }
      if (authToken !== undefined && authToken !== null && req.headers.authorization !== `Bearer ${authToken}`) {
        sendJson(res, 401, { error: 'unauthorized' });
        return;
      }
      if (record.path !== PATH_USER_IN_ROOM && record.path !== PATH_USER) {
        sendJson(res, 404, { error: 'not found' });
        return;
      }
      if (req.method !== 'POST') {
        res.setHeader('allow', 'POST');
        sendJson(res, 405, { error: 'method not allowed' });
        return;
      }
      if (!parsed.ok || !parsed.value || typeof parsed.value !== 'object' || Array.isArray(parsed.value)) {
        sendJson(res, 400, { error: 'body is not a JSON object' });
        return;
      }
      if (typeof parsed.value.token !== 'string') {
        sendJson(res, 400, { error: 'missing token' });
        return;
      }
      if (record.path === PATH_USER_IN_ROOM && typeof parsed.value.room_id !== 'string') {
        sendJson(res, 400, { error: 'missing room_id' });
        return;
      }
      sendJson(res, 200, userAnswer(record.path, parsed.value));
    };

    const latency = Number(b.latencyMs) || 0;
    if (latency > 0) {
      const timer = setTimeout(() => {
        timers.delete(timer);
        respond();
      }, latency);
      timers.add(timer);
    } else {
      respond();
    }
  }

  const server = http.createServer((req, res) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        req.socket.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      const rawBody = Buffer.concat(chunks).toString('utf8');
      const parsed = parseJson(rawBody);
      const record = {
        method: req.method,
        path: (req.url || '').split('?')[0],
        headers: { ...req.headers },
        body: parsed.ok ? parsed.value : rawBody,
        rawBody,
      };
      requests.push(record);
      answer(req, res, record);
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address();

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    /** Register (or replace) the user behind an OpenID token. */
    setUser(openidToken, { user_id, rooms = {}, state_default, power_levels_null = false } = {}) {
      users.set(openidToken, { user_id, rooms: { ...rooms }, state_default, power_levels_null });
    },
    /** Forget the user behind an OpenID token (it becomes an unknown token). */
    removeUser(openidToken) {
      users.delete(openidToken);
    },
    /** Replace the failure/latency behaviour; `{}` restores normal answers. */
    setBehaviour(next = {}) {
      behaviour = { ...next };
    },
    /** Every request received, oldest first: { method, path, headers, body, rawBody }. */
    requests,
    /** Forget users, behaviour and recorded requests. */
    reset() {
      users.clear();
      behaviour = {};
      requests.length = 0;
    },
    /** Close the server, answer nothing still pending, drop every connection. */
    async stop() {
      if (stopped) return;
      stopped = true;
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      const closed = new Promise((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      server.closeAllConnections?.();
      await closed;
    },
  };
}
