#!/usr/bin/env node
// Companion of `make demo` (examples/demo.sh).
//
//   node examples/demo-client.mjs token '<claims JSON>'
//       Print an HS256 Jitsi token for those claims, signed with $DEMO_SECRET
//       (default "demo-secret-change-me"). iat and exp (24 h) are added when
//       missing.
//
//   node --experimental-websocket examples/demo-client.mjs run <wsBase> <moderatorToken>
//       Walk through the lobby and password of room "demo" with real XMPP
//       clients, printing each step. Exit 0 when every step behaved as
//       expected, 1 otherwise.
//
//   node examples/demo-client.mjs free-ports <n> [exclude]
//       Print n free TCP ports on 127.0.0.1 (used by demo.sh).

import crypto from 'node:crypto';
import net from 'node:net';

const DOMAIN = 'localhost';
const MUC_DOMAIN = 'conference.localhost';
const ROOM = 'demo';
const ROOM_JID = `${ROOM}@${MUC_DOMAIN}`;
const APP_ID = 'demo-app';
const SECRET = process.env.DEMO_SECRET || 'demo-secret-change-me';
const STEP_TIMEOUT_MS = Number(process.env.DEMO_STEP_TIMEOUT_MS || 10000);

const NS_MUC = 'http://jabber.org/protocol/muc';
const NS_MUC_USER = 'http://jabber.org/protocol/muc#user';
const NS_DISCO_INFO = 'http://jabber.org/protocol/disco#info';
const NS_STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas';

// ---------------------------------------------------------------------------
// Tokens

const now = () => Math.floor(Date.now() / 1000);
const b64url = (data) => Buffer.from(data).toString('base64url');

function signHS256(payload, secret = SECRET) {
  const input = `${b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${b64url(JSON.stringify(payload))}`;
  return `${input}.${crypto.createHmac('sha256', secret).update(input).digest('base64url')}`;
}

function withTimes(claims) {
  const t = now();
  return { iat: t, exp: t + 24 * 3600, ...claims };
}

/** Standard Jitsi claims for the demo room. */
function demoClaims(context) {
  return withTimes({ iss: APP_ID, aud: 'jitsi', sub: DOMAIN, room: ROOM, context });
}

// ---------------------------------------------------------------------------
// XMPP helpers (on @xmpp/client, installed in tests/e2e/node_modules)

let xmppLib;
async function loadXmpp() {
  if (xmppLib) return xmppLib;
  const url = new URL('../tests/e2e/node_modules/@xmpp/client/index.js', import.meta.url);
  try {
    xmppLib = await import(url.href);
  } catch (err) {
    throw new Error(
      `cannot load @xmpp/client (${err.message}).\n` +
        'Install it first: (cd tests/e2e && npm ci --no-audit --no-fund)',
    );
  }
  return xmppLib;
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms (${what})`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

class LoginRefused extends Error {
  constructor(condition, text) {
    super(`login refused: ${condition}${text ? ` (${text})` : ''}`);
    this.condition = condition;
    this.text = text;
  }
}

function stanzaError(stanza) {
  const error = stanza.getChild('error');
  if (!error) return { condition: 'unknown', text: '' };
  const cond = error.children.find((c) => typeof c !== 'string' && c.attrs.xmlns === NS_STANZAS && c.name !== 'text');
  const text = error.getChild('text', NS_STANZAS);
  return { condition: cond ? cond.name : 'unknown', text: text ? text.text() : '' };
}

async function hardStop(xmpp) {
  try {
    xmpp.reconnect?.stop();
  } catch {
    /* ignore */
  }
  try {
    await withTimeout(xmpp.stop(), 3000, 'disconnect');
  } catch {
    try {
      xmpp.socket?.socket?.close?.();
    } catch {
      /* ignore */
    }
  }
}

function wsUrl(base, token) {
  const url = new URL(base);
  url.searchParams.set('room', ROOM);
  if (token) url.searchParams.set('token', token);
  return url.toString();
}

/** Log in anonymously with a token. Rejects with LoginRefused when SASL fails. */
async function connect(base, token) {
  const { client, xml } = await loadXmpp();
  const xmpp = client({ service: wsUrl(base, token), domain: DOMAIN });
  xmpp.reconnect.stop();
  const errors = [];
  xmpp.on('error', (err) => errors.push(err));
  try {
    await withTimeout(xmpp.start(), STEP_TIMEOUT_MS, `connect to ${base}`);
  } catch (err) {
    await hardStop(xmpp);
    const sasl = err?.name === 'SASLError' ? err : errors.find((e) => e?.name === 'SASLError');
    if (sasl) throw new LoginRefused(sasl.condition, sasl.text || '');
    throw err;
  }

  function waitFor(pred, what) {
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
    return withTimeout(p, STEP_TIMEOUT_MS, what).finally(() => xmpp.removeListener('stanza', handler));
  }

  let stopped = false;
  return {
    jid: xmpp.jid.toString(),
    /** Join the demo room: { ok, affiliation, role } or { ok: false, condition, text }. */
    async join(nick) {
      const full = `${ROOM_JID}/${nick}`.toLowerCase();
      const answer = waitFor((s) => s.is('presence') && (s.attrs.from || '').toLowerCase() === full, `join as ${nick}`);
      await xmpp.send(xml('presence', { to: `${ROOM_JID}/${nick}` }, xml('x', { xmlns: NS_MUC })));
      const stanza = await answer;
      if (stanza.attrs.type === 'error') return { ok: false, ...stanzaError(stanza) };
      const item = stanza.getChild('x', NS_MUC_USER)?.getChild('item');
      return { ok: true, affiliation: item?.attrs.affiliation, role: item?.attrs.role };
    },
    /** disco#info of the demo room: the set of feature vars. */
    async roomFeatures() {
      const reply = await xmpp.iqCaller.request(
        xml('iq', { type: 'get', to: ROOM_JID }, xml('query', { xmlns: NS_DISCO_INFO })),
        STEP_TIMEOUT_MS,
      );
      const query = reply.getChild('query', NS_DISCO_INFO);
      return new Set((query?.getChildren('feature') || []).map((f) => f.attrs.var));
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await hardStop(xmpp);
    },
  };
}

// ---------------------------------------------------------------------------
// The walkthrough

const describeFeatures = (f) =>
  `lobby: ${f.has('muc_membersonly') ? 'on' : 'off'}, password: ${f.has('muc_passwordprotected') ? 'on' : 'off'}`;

/** Ask the room for its features until `want` holds (the token's effect lands right after the join). */
async function featuresUntil(client, want, ms = 3000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const f = await client.roomFeatures();
    if (want(f) || Date.now() > deadline) return f;
    await new Promise((r) => setTimeout(r, 100));
  }
}

const refusalMeaning = {
  'registration-required': 'stopped by the lobby',
  'not-authorized': 'wrong or missing room password',
  forbidden: 'banned from the room',
};

async function run(base, moderatorToken) {
  if (!base || !moderatorToken) {
    usage();
    return 2;
  }
  await loadXmpp();
  const clients = [];
  const results = [];
  let step = 0;

  async function check(title, fn) {
    step += 1;
    console.log(`\n[${step}] ${title}`);
    let ok = false;
    try {
      ok = await fn();
    } catch (err) {
      console.log(`    -> ERROR: ${err.message}`);
      ok = false;
    }
    console.log(ok ? '    => as expected' : '    => NOT as expected');
    results.push({ title, ok });
    return ok;
  }

  async function login(who, token) {
    const c = await connect(base, token);
    clients.push(c);
    console.log(`    ${who} logged in as ${c.jid}`);
    return c;
  }

  const watchdog = setTimeout(() => {
    console.log('\nThe demo took too long; giving up.');
    process.exit(1);
  }, 20 * STEP_TIMEOUT_MS);
  watchdog.unref();

  const guestToken = signHS256(demoClaims({ user: { name: 'Guest' } }));
  const vipToken = signHS256(demoClaims({ user: { name: 'VIP', security_bypass: true } }));
  const openerToken = signHS256(demoClaims({ user: { name: 'Moderator 2' }, room: { lobby: false, password: '' } }));

  let moderator, guest;
  try {
    console.log(`Server: ${base}   room: ${ROOM_JID}`);

    const moderatorIn = await check('Moderator joins with the token from the banner (context.room: lobby on, password "demo-pass")', async () => {
      moderator = await login('Moderator', moderatorToken);
      const r = await moderator.join('moderator');
      if (!r.ok) {
        console.log(`    -> refused: ${r.condition}${r.text ? ` (${r.text})` : ''}`);
        return false;
      }
      console.log(`    -> joined ${ROOM_JID} (affiliation ${r.affiliation}, role ${r.role})`);
      return true;
    });
    if (!moderatorIn) {
      console.log('\nThe moderator could not join, so the rest of the walkthrough has nothing to show: stopping here.');
      console.log('Is this the token printed by `make demo`, and is its Prosody still running at this address?');
      return summary(results);
    }

    await check('The room\'s settings, as any XMPP client sees them (disco#info)', async () => {
      if (!moderator) throw new Error('no moderator connection');
      const f = await featuresUntil(moderator, (x) => x.has('muc_membersonly') && x.has('muc_passwordprotected'));
      console.log(`    -> ${describeFeatures(f)}`);
      return f.has('muc_membersonly') && f.has('muc_passwordprotected');
    });

    await check('A guest with a plain token (no context.room) tries to join', async () => {
      guest = await login('Guest', guestToken);
      const r = await guest.join('guest');
      if (r.ok) {
        console.log('    -> got in, but the lobby should have stopped the guest');
        return false;
      }
      const meaning = refusalMeaning[r.condition] || 'refused';
      console.log(`    -> refused: ${r.condition}: ${meaning}`);
      return r.condition === 'registration-required';
    });

    await check('A guest whose token has context.user.security_bypass = true joins, without the password', async () => {
      const vip = await login('VIP', vipToken);
      const r = await vip.join('vip');
      if (!r.ok) {
        console.log(`    -> refused: ${r.condition}${r.text ? ` (${r.text})` : ''}`);
        return false;
      }
      console.log(`    -> joined past the lobby and the password (affiliation ${r.affiliation}, role ${r.role})`);
      return true;
    });

    await check('A second moderator joins with context.room {lobby: false, password: ""}', async () => {
      const opener = await login('Moderator 2', openerToken);
      const r = await opener.join('moderator2');
      if (!r.ok) {
        console.log(`    -> refused: ${r.condition}${r.text ? ` (${r.text})` : ''}`);
        return false;
      }
      console.log(`    -> joined (affiliation ${r.affiliation}, role ${r.role})`);
      const f = await featuresUntil(opener, (x) => !x.has('muc_membersonly') && !x.has('muc_passwordprotected'));
      console.log(`    -> room now: ${describeFeatures(f)}`);
      return !f.has('muc_membersonly') && !f.has('muc_passwordprotected');
    });

    await check('The plain guest tries again', async () => {
      if (!guest) guest = await login('Guest', guestToken);
      const r = await guest.join('guest');
      if (!r.ok) {
        console.log(`    -> refused: ${r.condition}: ${refusalMeaning[r.condition] || r.text || 'refused'}`);
        return false;
      }
      console.log(`    -> joined (affiliation ${r.affiliation ?? 'none'}, role ${r.role})`);
      return true;
    });
  } catch (err) {
    if (err instanceof LoginRefused) console.log(`    -> ${err.message}`);
    else throw err;
  } finally {
    await Promise.all(clients.map((c) => c.stop().catch(() => {})));
    clearTimeout(watchdog);
  }

  return summary(results);
}

const STEPS = 6;

function summary(results) {
  const passed = results.filter((r) => r.ok).length;
  console.log('');
  if (passed === STEPS && results.length === STEPS) {
    console.log(`SUMMARY: all ${STEPS} steps behaved as expected.`);
    return 0;
  }
  const bad = results.map((r, i) => (r.ok ? null : i + 1)).filter(Boolean);
  const notRun = STEPS - results.length;
  console.log(
    `SUMMARY: ${passed} of ${STEPS} steps behaved as expected` +
      (bad.length ? `; not as expected: step ${bad.join(', ')}` : '') +
      (notRun ? `; ${notRun} not run` : '') +
      '.',
  );
  return 1;
}

// ---------------------------------------------------------------------------
// Other subcommands

function token(json) {
  if (!json) {
    usage();
    return 2;
  }
  let claims;
  try {
    claims = JSON.parse(json);
  } catch (err) {
    console.error(`claims are not valid JSON: ${err.message}`);
    return 2;
  }
  if (!claims || typeof claims !== 'object' || Array.isArray(claims)) {
    console.error('claims must be a JSON object');
    return 2;
  }
  console.log(signHS256(withTimes(claims)));
  return 0;
}

async function freePorts(n, exclude) {
  const servers = [];
  const ports = [];
  try {
    while (ports.length < n) {
      const srv = net.createServer();
      await new Promise((resolve, reject) => {
        srv.once('error', reject);
        srv.listen(0, '127.0.0.1', resolve);
      });
      servers.push(srv);
      const p = srv.address().port;
      if (p !== exclude) ports.push(p);
    }
  } finally {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  }
  console.log(ports.join(' '));
  return 0;
}

function usage() {
  console.error(
    'usage:\n' +
      "  node examples/demo-client.mjs token '<claims JSON>'\n" +
      '  node --experimental-websocket examples/demo-client.mjs run <ws://host:port/xmpp-websocket> <moderator token>\n' +
      '  node examples/demo-client.mjs free-ports <n> [exclude]',
  );
}

async function main(argv) {
  const [cmd, ...args] = argv;
  switch (cmd) {
    case 'token':
      return token(args[0]);
    case 'run':
      if (typeof WebSocket === 'undefined') {
        console.error('This Node has no WebSocket: run it as `node --experimental-websocket examples/demo-client.mjs run ...`');
        return 2;
      }
      return run(args[0], args[1]);
    case 'free-ports':
      return freePorts(Number(args[0] || 1), Number(args[1] || 0));
    default:
      usage();
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(err?.stack || String(err));
    process.exit(1);
  },
);
