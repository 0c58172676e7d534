// Our own Matrix User Verification Service (UVS) for tests (docs/design.md,
// "Verifying Matrix users"), on 127.0.0.1 with a free port, no dependencies. It answers
// as the real UVS (matrix-org, 3.0) does, and can misbehave on demand.
//
//   const uvs = await startUvs({ authToken: 'secret' });
//   uvs.setUser('openid-1', { user_id: '@alice:x', rooms: { '!r:x': 100 }, state_default: 50 });
//   uvs.setBehaviour({ latencyMs: 200, perToken: { 'openid-2': { status: 500 } } });
//   ... uvs.url is the uvs_base_url (no trailing slash); uvs.requests lists what arrived
//   await uvs.stop();
//
// Options of startUvs:
//   authToken    requests must carry "Authorization: Bearer <authToken>";
//                otherwise 403 with the body {} (what the real UVS answers)
//   multiServer  UVS serves several homeservers (UVS_OPENID_VERIFY_ANY_HOMESERVER):
//                `matrix_server_name` is required (400, plain text, without it)
//                and the user's server must be that server
//
// Answers of the real UVS (matrix-org, 3.0), reproduced here:
//   invalid OpenID token, /verify/user_in_room:
//     200 {"results":{"user":false,"room_membership":null},"user_id":null,"power_levels":null}
//   invalid OpenID token, /verify/user: 200 {"results":{"user":false},"user_id":null}
//   valid user, not a member:
//     200 {"results":{"user":true,"room_membership":false},"user_id":"@u:x","power_levels":null}
//   member: 200 {"results":{"user":true,"room_membership":true},"user_id":"@u:x",
//                "power_levels":{"room":{...without users},"user":<int>}}
//   wrong or missing bearer: 403 {}
//   missing token / room_id / (multiServer) matrix_server_name, or an empty one:
//     400 text/plain "Invalid request: <field> not found or with empty value in the JSON payload."
//   body that is not JSON: 400 text/plain "Invalid request: no JSON content found in body."
//   unknown path or method: 404 text/html "Cannot POST /x" (Express)
//
// Users (keyed by Matrix OpenID token):
//   rooms: { roomId: powerLevel | true }   true = member at power level 0
//   state_default: number | null           omitted: the room has none (UVS clients use 50)
//   power_levels_null: true                members get "power_levels": null
//
// Behaviour (setBehaviour replaces the previous one; setBehaviour({}) is normal).
// perToken { openidToken: {...} } replaces the whole behaviour for requests
// whose JSON body has that token. Behaviours apply before the Bearer check.
//   latencyMs       wait before answering (any of the answers below)
//   status, body    answer with this status and raw body (status defaults to 200,
//                   body to {"error":"forced status N"}); contentType sets the type
//   drop            destroy the socket without answering
//   forbidden       answer 403 {} (what a wrong bearer gets)
//   invalidToken    answer the real invalid-token shape, whoever the user is
//   multiServer     this request is checked as by a multi-server UVS
//   hugeBody        200, a valid member answer padded to 10 MB (true), or
//                   { bytes, chunked }: chunked = no content-length
//   drip            200 headers at once, then one space every 100 ms (true) or
//                   { intervalMs, totalMs } (default 60 s), then the real answer
//   noAnswer        read the request and never answer (until stop or the client leaves)
//   html            200 text/html (a web server's page instead of UVS)
//   stringBooleans  the normal answer with "true"/"false" strings as results
//   hugeNumbers     a member answer with numbers out of range: 'float' (user 1e400),
//                   'int' (user 99999999999999999999999), true (both: user 1e400,
//                   state_default 99999999999999999999999)
//   redirect        302 to <url>/redirected<path> (true) or { location, status };
//                   /redirected/... answers "member" for any token (a client
//                   that follows redirects would log the user in)
//   truncated       200 with content-length 4096, a piece of the answer, then close
//   userId          replace user_id in the normal answer with this raw value

import http from 'node:http';

const PATH_USER_IN_ROOM = '/verify/user_in_room';
const PATH_USER = '/verify/user';
export const REDIRECT_PREFIX = '/redirected';
const MAX_BODY = 1 << 20;
const HUGE_BODY_BYTES = 10 * 1024 * 1024;

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

/** The real UVS's answers that do not depend on a user. */
export const INVALID_TOKEN_IN_ROOM = Object.freeze({
  results: { user: false, room_membership: null },
  user_id: null,
  power_levels: null,
});
export const INVALID_TOKEN_USER = Object.freeze({ results: { user: false }, user_id: null });

function send(res, status, text, contentType = 'application/json', extra = {}) {
  if (res.headersSent || res.writableEnded) return;
  res.writeHead(status, {
    'content-type': contentType,
    'content-length': Buffer.byteLength(text),
    ...extra,
  });
  res.end(text);
}

const sendJson = (res, status, value) => send(res, status, JSON.stringify(value));
const sendText = (res, status, text) => send(res, status, text, 'text/plain; charset=utf-8');
const sendHtml = (res, status, text) => send(res, status, text, 'text/html; charset=utf-8');

function parseJson(text) {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false, value: undefined };
  }
}

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const missing = (v) => v === undefined || v === null || (typeof v === 'string' && v.length === 0);
const serverOf = (userId) => (typeof userId === 'string' && userId.includes(':') ? userId.slice(userId.indexOf(':') + 1) : null);

function expressNotFound(method, path) {
  const esc = String(path).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  return (
    '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>Error</title>\n</head>\n' +
    `<body>\n<pre>Cannot ${method} ${esc}</pre>\n</body>\n</html>\n`
  );
}

/**
 * Start a UVS. `authToken`: when set, requests must carry
 * `Authorization: Bearer <authToken>` (else 403 {}). `multiServer`: see above.
 */
export async function startUvs({ authToken, multiServer = false } = {}) {
  const users = new Map();
  let behaviour = {};
  const requests = [];
  const sockets = new Set();
  const timers = new Set();
  const held = new Set(); // responses held open (noAnswer, drip)
  let delayed = 0; // answers waiting for their latencyMs
  let stopped = false;
  let baseUrl = '';

  function later(ms, fn) {
    const timer = setTimeout(() => {
      timers.delete(timer);
      fn();
    }, ms);
    timers.add(timer);
    return timer;
  }

  /** The normal answer body (an object) for `path` and request `body`. */
  function userAnswer(path, body, { multi = false } = {}) {
    let user = typeof body.token === 'string' ? users.get(body.token) : undefined;
    // A multi-server UVS asks the named server: a user of another server is unknown there.
    if (user && multi && serverOf(user.user_id) !== body.matrix_server_name) user = undefined;
    if (path === PATH_USER) {
      return user ? { results: { user: true }, user_id: user.user_id } : { ...INVALID_TOKEN_USER, results: { user: false } };
    }
    if (!user) return { results: { user: false, room_membership: null }, user_id: null, power_levels: null };
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

  /** A member answer for `body` whoever the user is (faults that carry a "success"). */
  function memberAnswer(body) {
    const user = typeof body?.token === 'string' ? users.get(body.token) : undefined;
    return {
      results: { user: true, room_membership: true },
      user_id: user?.user_id ?? '@someone:example.org',
      power_levels: { room: { ...ROOM_POWER_LEVELS, state_default: 50 }, user: 100 },
    };
  }

  /** Request checks of the real UVS, in its order: 400 text or null. */
  function sanity(path, parsed, multi) {
    if (!parsed.ok || !isObject(parsed.value)) return 'Invalid request: no JSON content found in body.';
    const fields = path === PATH_USER_IN_ROOM ? ['token', 'room_id'] : ['token'];
    if (multi) fields.push('matrix_server_name');
    for (const field of fields) {
      if (missing(parsed.value[field])) return `Invalid request: ${field} not found or with empty value in the JSON payload.`;
    }
    return null;
  }

  function hold(req, res) {
    const entry = { req, res };
    held.add(entry);
    const release = () => held.delete(entry);
    res.on('close', release);
    req.socket.on('close', release);
    return entry;
  }

  function hugeBody(res, record, opts) {
    const bytes = Number(opts?.bytes) || HUGE_BODY_BYTES;
    const head = JSON.stringify(memberAnswer(record.body)).slice(0, -1) + ',"padding":"';
    const tail = '"}';
    const padLen = Math.max(0, bytes - Buffer.byteLength(head) - tail.length);
    const headers = { 'content-type': 'application/json' };
    if (!opts?.chunked) headers['content-length'] = Buffer.byteLength(head) + padLen + tail.length;
    res.writeHead(200, headers);
    res.on('error', () => {});
    res.write(head);
    const chunk = 'x'.repeat(64 * 1024);
    let left = padLen;
    const pump = () => {
      while (left > 0) {
        if (stopped || res.destroyed) return;
        const n = Math.min(left, chunk.length);
        left -= n;
        if (!res.write(n === chunk.length ? chunk : chunk.slice(0, n))) {
          res.once('drain', pump);
          return;
        }
      }
      if (!res.destroyed) res.end(tail);
    };
    pump();
  }

  function drip(req, res, record, opts) {
    const intervalMs = Number(opts?.intervalMs) || 100;
    const totalMs = Number(opts?.totalMs) || 60_000;
    hold(req, res);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.on('error', () => {});
    res.flushHeaders?.();
    const started = Date.now();
    const tick = () => {
      if (stopped || res.destroyed || res.writableEnded) return;
      if (Date.now() - started >= totalMs) {
        res.end(JSON.stringify(userAnswer(record.path, isObject(record.body) ? record.body : {})));
        return;
      }
      res.write(' ');
      later(intervalMs, tick);
    };
    tick();
  }

  function hugeNumbersBody(record, mode) {
    const a = memberAnswer(record.body);
    const userId = JSON.stringify(a.user_id);
    const user = mode === 'int' ? '99999999999999999999999' : '1e400';
    const stateDefault = mode === true ? '99999999999999999999999' : '50';
    return (
      `{"results":{"user":true,"room_membership":true},"user_id":${userId},` +
      `"power_levels":{"room":{"ban":50,"events":{},"events_default":0,"invite":0,"kick":50,"redact":50,` +
      `"users_default":0,"state_default":${stateDefault}},"user":${user}}}`
    );
  }

  function answer(req, res, record) {
    const parsed = parseJson(record.rawBody);
    const token = parsed.ok && isObject(parsed.value) ? parsed.value.token : undefined;
    const perToken = (typeof token === 'string' && behaviour.perToken?.[token]) || null;
    const b = perToken || behaviour;
    const multi = multiServer || Boolean(b.multiServer);

    if (record.path.startsWith(`${REDIRECT_PREFIX}/`)) {
      // The redirect target: "success" for anyone, no behaviour, no bearer
      // check. A client that follows redirects would log the user in.
      sendJson(res, 200, memberAnswer(parsed.ok ? parsed.value : {}));
      return;
    }

    const respond = () => {
      if (stopped || res.writableEnded || req.socket.destroyed) return;
      if (b.drop) {
        req.socket.destroy();
        return;
      }
      if (b.noAnswer) {
        hold(req, res);
        return;
      }
      if (b.status !== undefined || b.body !== undefined) {
        const status = b.status ?? 200;
        const text = b.body !== undefined ? String(b.body) : JSON.stringify({ error: `forced status ${status}` });
        send(res, status, text, b.contentType || 'application/json');
        return;
      }
      if (b.forbidden) {
        sendJson(res, 403, {});
        return;
      }
      if (b.hugeBody) {
        hugeBody(res, record, b.hugeBody);
        return;
      }
      if (b.drip) {
        drip(req, res, record, b.drip);
        return;
      }
      if (b.html) {
        sendHtml(res, 200, '<!DOCTYPE html>\n<html><head><title>Welcome to nginx!</title></head>\n<body><h1>Welcome to nginx!</h1></body></html>\n');
        return;
      }
      if (b.hugeNumbers) {
        send(res, 200, hugeNumbersBody(record, b.hugeNumbers));
        return;
      }
      if (b.redirect) {
        const location = b.redirect.location || `${baseUrl}${REDIRECT_PREFIX}${record.path}`;
        send(res, b.redirect.status || 302, '', 'text/plain; charset=utf-8', { location });
        return;
      }
      if (b.truncated) {
        const text = JSON.stringify(memberAnswer(record.body));
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': 4096 });
        res.write(text.slice(0, Math.floor(text.length / 2)));
        later(50, () => req.socket.destroy());
        return;
      }
      normal();
    };

    const normal = () => {
      if (authToken !== undefined && authToken !== null && req.headers.authorization !== `Bearer ${authToken}`) {
        sendJson(res, 403, {});
        return;
      }
      if (req.method !== 'POST' || (record.path !== PATH_USER_IN_ROOM && record.path !== PATH_USER)) {
        sendHtml(res, 404, expressNotFound(req.method, record.path));
        return;
      }
      const bad = sanity(record.path, parsed, multi);
      if (bad) {
        sendText(res, 400, bad);
        return;
      }
      let out = userAnswer(record.path, parsed.value, { multi });
      if (b.invalidToken) out = record.path === PATH_USER ? { ...INVALID_TOKEN_USER } : { ...INVALID_TOKEN_IN_ROOM };
      if (b.stringBooleans) {
        const results = {};
        for (const [k, v] of Object.entries(out.results)) results[k] = v === null ? null : String(v);
        out = { ...out, results };
      }
      if (Object.hasOwn(b, 'userId')) out = { ...out, user_id: b.userId };
      sendJson(res, 200, out);
    };

    const latency = Number(b.latencyMs) || 0;
    if (latency > 0) {
      delayed += 1;
      later(latency, () => {
        delayed -= 1;
        respond();
      });
    } else respond();
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
        at: Date.now(),
      };
      requests.push(record);
      answer(req, res, record);
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
  });
  server.on('clientError', (err, socket) => socket.destroy());

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address();
  baseUrl = `http://127.0.0.1:${port}`;

  return {
    url: baseUrl,
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
    /** Every request received, oldest first: { method, path, headers, body, rawBody, at }. */
    requests,
    /** Connections currently open to this UVS (idle keep-alive ones included). */
    openConnections: () => sockets.size,
    /** Requests held open by noAnswer/drip whose client has not gone away yet. */
    heldOpen: () => held.size,
    /** Answers still waiting for their `latencyMs` (not sent yet). */
    delayedAnswers: () => delayed,
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
      held.clear();
      const closed = new Promise((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      server.closeAllConnections?.();
      await closed;
    },
  };
}
