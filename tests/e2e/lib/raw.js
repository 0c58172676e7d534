// Raw clients for hostile-input tests: every byte of the HTTP request is
// ours (query strings and header values that are not UTF-8, heads far over
// any limit), over a plain TCP socket. Two XMPP logins (SASL ANONYMOUS):
//
//   await wsLogin(port, { query: '?token=%FF', headers: [['Authorization', Buffer.from('Bearer \xff', 'latin1')]] })
//   await boshLogin(port, { query: '?room=x&token=y' })
//
// Both resolve (never reject) with one of
//   { kind: 'success' }                          SASL success
//   { kind: 'failure', condition, text }         SASL failure
//   { kind: 'http', status, body }               HTTP answer instead of a stream
//   { kind: 'closed', detail }                   connection closed/reset, no answer
//   { kind: 'timeout', detail }                  nothing conclusive within timeoutMs
// plus `elapsed` (ms) and `transcript` (what the server sent, for messages).

import crypto from 'node:crypto';
import net from 'node:net';

import { DOMAIN } from './prosody.js';

const NS_SASL = 'urn:ietf:params:xml:ns:xmpp-sasl';
const NS_FRAMING = 'urn:ietf:params:xml:ns:xmpp-framing';
const NS_BOSH = 'http://jabber.org/protocol/httpbind';

/** XML character data back to text (the five entities and numeric references). */
export function xmlUnescape(s) {
  return s.replace(/&(#x[0-9a-fA-F]+|#\d+|amp|lt|gt|quot|apos);/g, (m, e) => {
    switch (e) {
      case 'amp':
        return '&';
      case 'lt':
        return '<';
      case 'gt':
        return '>';
      case 'quot':
        return '"';
      case 'apos':
        return "'";
      default:
        return String.fromCodePoint(e[1] === 'x' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10));
    }
  });
}

/** The SASL outcome in `xml`, if it holds one. */
export function saslOutcome(xml) {
  if (/<success[\s/>]/.test(xml)) return { kind: 'success' };
  const m = /<failure[^>]*xmlns=['"]urn:ietf:params:xml:ns:xmpp-sasl['"][^>]*>([\s\S]*?)<\/failure>/.exec(xml) ||
    /<failure[^>]*\/>/.exec(xml);
  if (!m) return null;
  const inner = m[1] || '';
  const cond = /<([a-z-]+)(?:\s[^>]*)?\/?>/.exec(inner.replace(/<text[\s\S]*?<\/text>|<text[^>]*\/>/g, ''));
  const text = /<text[^>]*>([\s\S]*?)<\/text>/.exec(inner);
  return { kind: 'failure', condition: cond ? cond[1] : '', text: text ? xmlUnescape(text[1]) : '' };
}

function headerLines(headers) {
  const list = Array.isArray(headers) ? headers : Object.entries(headers || {});
  return list.map(([k, v]) => Buffer.concat([Buffer.from(`${k}: `, 'latin1'), Buffer.isBuffer(v) ? v : Buffer.from(String(v), 'latin1'), Buffer.from('\r\n')]));
}

/** One HTTP/1.1 request head (+ body) as bytes; `target` is path + query, any bytes. */
function requestBytes(method, target, host, headers, body) {
  const t = Buffer.isBuffer(target) ? target : Buffer.from(target, 'latin1');
  const parts = [Buffer.from(`${method} `), t, Buffer.from(` HTTP/1.1\r\nHost: ${host}\r\n`), ...headerLines(headers)];
  if (body !== undefined) parts.push(Buffer.from(`Content-Length: ${Buffer.byteLength(body)}\r\n`));
  parts.push(Buffer.from('\r\n'));
  if (body !== undefined) parts.push(Buffer.from(body));
  return Buffer.concat(parts);
}

/** Parse "HTTP/1.1 200 OK\r\nk: v\r\n..." (no body). */
function parseHead(text) {
  const [statusLine, ...lines] = text.split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
  const headers = {};
  for (const l of lines) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  return { status: m ? Number(m[1]) : 0, statusLine, headers };
}

/**
 * Send one raw HTTP request and read one answer (Connection: close).
 * Resolves { status, headers, body } or { closed, detail } or { timeout }.
 */
export function rawHttp(port, { method = 'GET', target = '/', headers = [], body, timeoutMs = 10000 } = {}) {
  return new Promise((resolve) => {
    const started = performance.now();
    const sock = net.connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    let done = false;
    const finish = (v) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ ...v, elapsed: performance.now() - started });
    };
    const timer = setTimeout(() => finish({ timeout: true, detail: `no complete answer within ${timeoutMs} ms` }), timeoutMs);
    const tryParse = (ended) => {
      const i = buf.indexOf('\r\n\r\n');
      if (i < 0) {
        if (ended) finish({ closed: true, detail: buf.length ? `partial head: ${buf.toString('latin1').slice(0, 200)}` : 'closed without answer' });
        return;
      }
      const head = parseHead(buf.subarray(0, i).toString('latin1'));
      const rest = buf.subarray(i + 4);
      const len = head.headers['content-length'] !== undefined ? Number(head.headers['content-length']) : null;
      if (len !== null && rest.length >= len) finish({ ...head, body: rest.subarray(0, len).toString('utf8') });
      else if (ended) finish({ ...head, body: rest.toString('utf8') });
    };
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      tryParse(false);
    });
    sock.on('end', () => tryParse(true));
    sock.on('close', () => tryParse(true));
    sock.on('error', (err) => (buf.length ? tryParse(true) : finish({ closed: true, detail: String(err.code || err.message) })));
    sock.on('connect', () => {
      const hs = [['Connection', 'close'], ...(Array.isArray(headers) ? headers : Object.entries(headers))];
      sock.write(requestBytes(method, target, `127.0.0.1:${port}`, hs, body), () => {});
    });
  });
}

// ---------------------------------------------------------------------------
// WebSocket (RFC 6455 client side, RFC 7395 XMPP framing)

function wsFrame(text, opcode = 0x1) {
  const payload = Buffer.from(text, 'utf8');
  const mask = crypto.randomBytes(4);
  let head;
  if (payload.length < 126) {
    head = Buffer.from([0x80 | opcode, 0x80 | payload.length]);
  } else if (payload.length < 65536) {
    head = Buffer.alloc(4);
    head[0] = 0x80 | opcode;
    head[1] = 0x80 | 126;
    head.writeUInt16BE(payload.length, 2);
  } else {
    head = Buffer.alloc(10);
    head[0] = 0x80 | opcode;
    head[1] = 0x80 | 127;
    head.writeBigUInt64BE(BigInt(payload.length), 2);
  }
  const masked = Buffer.alloc(payload.length);
  for (let i = 0; i < payload.length; i++) masked[i] = payload[i] ^ mask[i % 4];
  return Buffer.concat([head, mask, masked]);
}

/** Parse complete server frames from `buf`; returns { frames, rest }. */
function wsParse(buf) {
  const frames = [];
  let off = 0;
  for (;;) {
    if (buf.length - off < 2) break;
    const b0 = buf[off];
    const b1 = buf[off + 1];
    let len = b1 & 0x7f;
    let p = off + 2;
    if (len === 126) {
      if (buf.length - off < 4) break;
      len = buf.readUInt16BE(off + 2);
      p = off + 4;
    } else if (len === 127) {
      if (buf.length - off < 10) break;
      len = Number(buf.readBigUInt64BE(off + 2));
      p = off + 10;
    }
    if (b1 & 0x80) p += 4; // servers do not mask, but be tolerant
    if (buf.length < p + len) break;
    frames.push({ opcode: b0 & 0x0f, data: buf.subarray(p, p + len) });
    off = p + len;
  }
  return { frames, rest: buf.subarray(off) };
}

/**
 * XMPP-over-WebSocket login with SASL ANONYMOUS on a raw socket.
 * `query`: raw query string ('?room=..&token=..', any bytes via %XX or a Buffer);
 * `headers`: [[name, value(string|Buffer)], ...] added to the upgrade request.
 */
export function wsLogin(port, { path = '/xmpp-websocket', query = '', headers = [], timeoutMs = 10000, domain = DOMAIN } = {}) {
  return new Promise((resolve) => {
    const started = performance.now();
    const sock = net.connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    let upgraded = false;
    let stage = 'handshake';
    let transcript = '';
    let done = false;
    const finish = (v) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      try {
        if (upgraded) {
          sock.write(wsFrame(`<close xmlns="${NS_FRAMING}"/>`));
          sock.write(wsFrame('', 0x8));
        }
      } catch {
        /* gone */
      }
      sock.end();
      setTimeout(() => sock.destroy(), 200);
      resolve({ ...v, elapsed: performance.now() - started, transcript });
    };
    const timer = setTimeout(() => finish({ kind: 'timeout', detail: `stage ${stage} after ${timeoutMs} ms` }), timeoutMs);

    const onMessage = (text) => {
      transcript += text;
      const outcome = saslOutcome(transcript);
      if (outcome) return finish(outcome);
      if (stage === 'open' && /<(?:stream:)?features[\s>]/.test(transcript) && /mechanisms/.test(transcript)) {
        if (!/<mechanism>ANONYMOUS<\/mechanism>/.test(transcript)) return finish({ kind: 'failure', condition: 'no-anonymous', text: 'ANONYMOUS not offered' });
        stage = 'auth';
        sock.write(wsFrame(`<auth xmlns="${NS_SASL}" mechanism="ANONYMOUS"/>`));
      }
      return undefined;
    };

    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (!upgraded) {
        const i = buf.indexOf('\r\n\r\n');
        if (i < 0) return;
        const head = parseHead(buf.subarray(0, i).toString('latin1'));
        if (head.status !== 101) {
          // Not upgraded: an HTTP answer. Read the body as far as it came.
          const rest = buf.subarray(i + 4);
          const len = Number(head.headers['content-length'] ?? NaN);
          if (Number.isFinite(len) && rest.length < len) return;
          finish({ kind: 'http', status: head.status, body: rest.toString('utf8') });
          return;
        }
        upgraded = true;
        buf = buf.subarray(i + 4);
        stage = 'open';
        sock.write(wsFrame(`<open xmlns="${NS_FRAMING}" to="${domain}" version="1.0"/>`));
      }
      const { frames, rest } = wsParse(buf);
      buf = rest;
      for (const f of frames) {
        if (done) return;
        if (f.opcode === 0x1 || f.opcode === 0x0) onMessage(f.data.toString('utf8'));
        else if (f.opcode === 0x9) sock.write(wsFrame(f.data.toString('latin1'), 0xa));
        else if (f.opcode === 0x8) finish({ kind: 'closed', detail: `websocket close frame ${f.data.length >= 2 ? f.data.readUInt16BE(0) : ''} at stage ${stage}` });
      }
    });
    const closed = (why) => {
      if (done) return;
      if (!upgraded && buf.indexOf('\r\n\r\n') >= 0) {
        const i = buf.indexOf('\r\n\r\n');
        const head = parseHead(buf.subarray(0, i).toString('latin1'));
        finish({ kind: 'http', status: head.status, body: buf.subarray(i + 4).toString('utf8') });
        return;
      }
      finish({ kind: 'closed', detail: `${why} at stage ${stage}` });
    };
    sock.on('end', () => closed('connection ended'));
    sock.on('close', () => closed('connection closed'));
    sock.on('error', (err) => closed(`socket error ${err.code || err.message}`));
    sock.on('connect', () => {
      const key = crypto.randomBytes(16).toString('base64');
      const hs = [
        ['Upgrade', 'websocket'],
        ['Connection', 'Upgrade'],
        ['Sec-WebSocket-Key', key],
        ['Sec-WebSocket-Version', '13'],
        ['Sec-WebSocket-Protocol', 'xmpp'],
        ...headers,
      ];
      const target = Buffer.concat([Buffer.from(path), Buffer.isBuffer(query) ? query : Buffer.from(query, 'latin1')]);
      sock.write(requestBytes('GET', target, `127.0.0.1:${port}`, hs), () => {});
    });
  });
}

// ---------------------------------------------------------------------------
// BOSH (XEP-0124/0206)

/**
 * XMPP-over-BOSH login with SASL ANONYMOUS; each BOSH request on its own
 * connection. `query` and `headers` go on the session-creation request
 * (the one Prosody hands to `bosh-session`).
 */
export async function boshLogin(port, { path = '/http-bind', query = '', headers = [], timeoutMs = 10000, domain = DOMAIN } = {}) {
  const started = performance.now();
  const deadline = Date.now() + timeoutMs;
  const left = () => Math.max(1, deadline - Date.now());
  let rid = 1000 + Math.floor(Math.random() * 100000);
  let transcript = '';
  const out = (v) => ({ ...v, elapsed: performance.now() - started, transcript });
  const post = (target, body, extra = []) =>
    rawHttp(port, {
      method: 'POST',
      target,
      headers: [['Content-Type', 'text/xml; charset=utf-8'], ...extra],
      body,
      timeoutMs: left(),
    });
  const asResult = (r) => {
    if (r.timeout) return out({ kind: 'timeout', detail: r.detail });
    if (r.closed) return out({ kind: 'closed', detail: r.detail });
    if (r.status !== 200) return out({ kind: 'http', status: r.status, body: r.body });
    return null;
  };

  const target = Buffer.concat([Buffer.from(path), Buffer.isBuffer(query) ? query : Buffer.from(query, 'latin1')]);
  const create =
    `<body content='text/xml; charset=utf-8' hold='1' rid='${rid}' to='${domain}' ver='1.6' wait='10' ` +
    `xml:lang='en' xmpp:version='1.0' xmlns='${NS_BOSH}' xmlns:xmpp='urn:xmpp:xbosh'/>`;
  let r = await post(target, create, headers);
  const bad = asResult(r);
  if (bad) return bad;
  transcript += r.body;
  if (/type=['"]terminate['"]/.test(r.body)) return out({ kind: 'closed', detail: `terminated: ${r.body.slice(0, 300)}` });
  const sid = /sid=['"]([^'"]+)['"]/.exec(r.body)?.[1];
  if (!sid) return out({ kind: 'http', status: r.status, body: r.body });

  // Stream features may come with the creation answer or on the next poll.
  while (!/mechanisms/.test(transcript)) {
    if (Date.now() >= deadline) return out({ kind: 'timeout', detail: 'no stream features' });
    rid += 1;
    r = await post(path, `<body rid='${rid}' sid='${sid}' xmlns='${NS_BOSH}'/>`);
    const b = asResult(r);
    if (b) return b;
    transcript += r.body;
    if (/type=['"]terminate['"]/.test(r.body)) return out({ kind: 'closed', detail: `terminated: ${r.body.slice(0, 300)}` });
  }
  if (!/<mechanism>ANONYMOUS<\/mechanism>/.test(transcript)) return out({ kind: 'failure', condition: 'no-anonymous', text: 'ANONYMOUS not offered' });

  rid += 1;
  r = await post(path, `<body rid='${rid}' sid='${sid}' xmlns='${NS_BOSH}'><auth xmlns='${NS_SASL}' mechanism='ANONYMOUS'/></body>`);
  for (;;) {
    const b = asResult(r);
    if (b) return b;
    transcript += r.body;
    const outcome = saslOutcome(r.body);
    if (outcome) {
      rid += 1;
      rawHttp(port, {
        method: 'POST',
        target: path,
        headers: [['Content-Type', 'text/xml; charset=utf-8']],
        body: `<body rid='${rid}' sid='${sid}' type='terminate' xmlns='${NS_BOSH}'/>`,
        timeoutMs: 2000,
      }).catch(() => {});
      return out(outcome);
    }
    if (/type=['"]terminate['"]/.test(r.body)) return out({ kind: 'closed', detail: `terminated: ${r.body.slice(0, 300)}` });
    if (Date.now() >= deadline) return out({ kind: 'timeout', detail: 'no SASL answer' });
    rid += 1;
    r = await post(path, `<body rid='${rid}' sid='${sid}' xmlns='${NS_BOSH}'/>`);
  }
}
