// Real XMPP clients over WebSocket (@xmpp/client, SASL ANONYMOUS), with a
// timeout on every operation so a hang fails the test instead of the suite.
//
//   const c = await connect(server.wsUrl(room, token));
//   try { const r = await c.joinMuc(`${room}@conference.localhost`, 'alice'); } finally { await c.stop(); }

import { client, xml } from '@xmpp/client';

import { DOMAIN } from './prosody.js';

export const OP_TIMEOUT_MS = Number(process.env.E2E_OP_TIMEOUT_MS || 10000);

const NS_MUC = 'http://jabber.org/protocol/muc';
const NS_MUC_USER = 'http://jabber.org/protocol/muc#user';
const NS_STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas';
const NS_PING = 'urn:xmpp:ping';

/** A failed login: the SASL <failure/> condition and text sent by the server. */
export class LoginError extends Error {
  constructor(condition, text, cause) {
    super(`login failed: ${condition}${text ? ` (${text})` : ''}`);
    this.name = 'LoginError';
    this.condition = condition;
    this.text = text;
    if (cause) this.cause = cause;
  }
}

export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function hardStop(xmpp) {
  try {
    xmpp.reconnect?.stop();
  } catch {
    /* ignore */
  }
  try {
    await withTimeout(xmpp.stop(), 3000, 'xmpp.stop()');
  } catch {
    // Closing politely failed (stream already broken): drop the socket.
    try {
      xmpp.socket?.socket?.close?.();
    } catch {
      /* ignore */
    }
  }
}

/**
 * Connect and log in anonymously. Resolves with a client wrapper; rejects with
 * a LoginError ({condition, text}) when the server refuses SASL, or with an
 * Error on timeout or connection failure.
 */
export async function connect(wsUrl, { timeout = OP_TIMEOUT_MS, domain = DOMAIN } = {}) {
  const xmpp = client({ service: wsUrl, domain });
  xmpp.reconnect.stop(); // a refused login must stay refused
  const errors = [];
  xmpp.on('error', (err) => errors.push(err));

  try {
    await withTimeout(xmpp.start(), timeout, `connect ${wsUrl}`);
  } catch (err) {
    await hardStop(xmpp);
    const sasl = err?.name === 'SASLError' ? err : errors.find((e) => e?.name === 'SASLError');
    if (sasl) throw new LoginError(sasl.condition, sasl.text || '', sasl);
    throw err;
  }
  return wrap(xmpp);
}

/**
 * Like connect(), but never rejects for a SASL refusal:
 * resolves { ok: true, client } or { ok: false, condition, text }.
 */
export async function tryConnect(wsUrl, opts) {
  try {
    return { ok: true, client: await connect(wsUrl, opts) };
  } catch (err) {
    if (err instanceof LoginError) return { ok: false, condition: err.condition, text: err.text };
    throw err;
  }
}

function stanzaError(stanza) {
  const error = stanza.getChild('error');
  if (!error) return { condition: 'unknown', text: '' };
  const cond = error.children.find((c) => typeof c !== 'string' && c.attrs.xmlns === NS_STANZAS && c.name !== 'text');
  const text = error.getChild('text', NS_STANZAS);
  return { condition: cond ? cond.name : 'unknown', text: text ? text.text() : '', type: error.attrs.type };
}

function wrap(xmpp) {
  const jid = xmpp.jid.toString();
  let stopped = false;

  /** Resolve with the first stanza matching `pred`, or reject after `ms`. */
  function waitFor(pred, ms, what) {
    let handler;
    const p = new Promise((resolve) => {
      handler = (stanza) => {
        try {
          if (pred(stanza)) resolve(stanza);
        } catch {
          /* not ours */
        }
      };
      xmpp.on('stanza', handler);
    });
    return withTimeout(p, ms, what).finally(() => xmpp.removeListener('stanza', handler));
  }

  return {
    xmpp,
    jid,
    bareJid: jid.split('/')[0],

    /**
     * Join a MUC room. Resolves { ok: true, affiliation, role, statusCodes }
     * for our self-presence, or { ok: false, condition, text } for an error
     * presence.
     */
    async joinMuc(roomJid, nick, { password, timeout = OP_TIMEOUT_MS } = {}) {
      const full = `${roomJid}/${nick}`.toLowerCase();
      const x = xml('x', { xmlns: NS_MUC });
      if (password !== undefined && password !== null) x.append(xml('password', {}, password));
      const answer = waitFor(
        (s) => s.is('presence') && (s.attrs.from || '').toLowerCase() === full,
        timeout,
        `join ${full}`,
      );
      await xmpp.send(xml('presence', { to: `${roomJid}/${nick}` }, x));
      const stanza = await answer;
      if (stanza.attrs.type === 'error') return { ok: false, ...stanzaError(stanza) };
      const ux = stanza.getChild('x', NS_MUC_USER);
      const item = ux?.getChild('item');
      const statusCodes = (ux?.getChildren('status') || []).map((s) => Number(s.attrs.code));
      return {
        ok: true,
        affiliation: item?.attrs.affiliation,
        role: item?.attrs.role,
        statusCodes,
      };
    },

    /** Leave a room (unavailable presence), waiting for the server's answer. */
    async leaveMuc(roomJid, nick, { timeout = OP_TIMEOUT_MS } = {}) {
      const full = `${roomJid}/${nick}`.toLowerCase();
      const answer = waitFor(
        (s) => s.is('presence') && s.attrs.type === 'unavailable' && (s.attrs.from || '').toLowerCase() === full,
        timeout,
        `leave ${full}`,
      );
      await xmpp.send(xml('presence', { to: `${roomJid}/${nick}`, type: 'unavailable' }));
      await answer;
    },

    /** XEP-0199 ping; resolves with the round trip in ms. */
    async ping(to = DOMAIN, { timeout = OP_TIMEOUT_MS } = {}) {
      const started = performance.now();
      await xmpp.iqCaller.request(xml('iq', { type: 'get', to }, xml('ping', { xmlns: NS_PING })), timeout);
      return performance.now() - started;
    },

    waitFor,

    async stop() {
      if (stopped) return;
      stopped = true;
      await hardStop(xmpp);
    },
  };
}

/** Stop every client given (nulls ignored), never throwing. */
export async function stopAll(...clients) {
  await Promise.all(clients.flat().filter(Boolean).map((c) => c.stop().catch(() => {})));
}
