// Helpers for the room-door tests (mod_token_verification; SECURITY.md
// "What a claim grants, and where"; issue 15 item 1).
//
//   startProsody({ ...,
//     vhost: { ...breakoutVhostOptions() }, vhostModules: ['muc_breakout_rooms'],
//     extraConfig: breakoutComponent({ modules: ['token_verification'] }) + guestHost() })
//   const breakoutJid = await createBreakoutRoom(moderatorClient);
//   const mark = s.logMark();
//   expectDoorRefused(s, mark, await c.joinMuc(jid, 'x'), 'room_not_covered', 'what');

import assert from 'node:assert/strict';

import { xml } from '@xmpp/client';

import { OP_TIMEOUT_MS } from './client.js';
import { luaOptions, luaValue } from './lua.js';
import { DOMAIN, MUC_DOMAIN } from './prosody.js';

export const BREAKOUT_DOMAIN = 'breakout.localhost';
export const GUEST_DOMAIN = 'guest.localhost';
export const NS_BREAKOUT = 'http://jitsi.org/protocol/breakout_rooms';
const NS_MUC_OWNER = 'http://jabber.org/protocol/muc#owner';
const NS_DATA = 'jabber:x:data';

/** VirtualHost options for tests/prosody/mod_muc_breakout_rooms.lua. */
export function breakoutVhostOptions() {
  return { breakout_rooms_muc: BREAKOUT_DOMAIN, main_muc: MUC_DOMAIN };
}

/**
 * Config text (for startProsody's extraConfig) of the breakout MUC component,
 * with `modules` enabled and `options` set on it.
 */
export function breakoutComponent({ modules = [], options = {} } = {}) {
  const section = { modules_enabled: modules, muc_room_locking: false, ...options };
  return `Component ${luaValue(BREAKOUT_DOMAIN)} "muc"\n${luaOptions(section, '    ')}\n`;
}

/** Config text of a second, anonymous VirtualHost (guests of another host). */
export function guestHost() {
  return `VirtualHost ${luaValue(GUEST_DOMAIN)}\n    authentication = "anonymous"\n`;
}

/**
 * Ask mod_muc_breakout_rooms for a breakout room of the main room where
 * `client` is a moderator. Resolves with the breakout room's jid; rejects
 * with the error condition when refused.
 */
export async function createBreakoutRoom(client, { subject = 'breakout', timeout = OP_TIMEOUT_MS } = {}) {
  const id = `breakout-${Math.random().toString(36).slice(2)}`;
  const answer = client.waitFor((s) => s.is('message') && s.attrs.id === id, timeout, 'breakout room answer');
  await client.xmpp.send(
    xml('message', { to: DOMAIN, id }, xml('breakout_rooms', { xmlns: NS_BREAKOUT, type: 'features/breakout-rooms/add', subject })),
  );
  const stanza = await answer;
  if (stanza.attrs.type === 'error') {
    const error = stanza.getChild('error');
    const cond = error?.children.find((c) => typeof c !== 'string' && c.name !== 'text');
    throw new Error(`breakout room refused: ${cond ? cond.name : 'unknown'} ${stanza}`);
  }
  const added = stanza.getChild('breakout_rooms', NS_BREAKOUT);
  assert.equal(added?.attrs.type, 'features/breakout-rooms/added', `breakout answer: ${stanza}`);
  assert.match(added.attrs.jid, new RegExp(`^[0-9a-f-]{36}@${BREAKOUT_DOMAIN.replace(/\./g, '\\.')}$`), `breakout jid: ${stanza}`);
  return added.attrs.jid;
}

/**
 * Submit an owner configuration form (muc#owner, a new room name) to a room.
 * Resolves { ok: true } or { ok: false, condition, type, text }.
 */
export async function setRoomConfig(client, roomJid, { timeout = OP_TIMEOUT_MS } = {}) {
  const field = (name, value) => xml('field', { var: name }, xml('value', {}, value));
  const form = xml(
    'x',
    { xmlns: NS_DATA, type: 'submit' },
    field('FORM_TYPE', 'http://jabber.org/protocol/muc#roomconfig'),
    field('muc#roomconfig_roomname', 'renamed by the test'),
  );
  try {
    await client.xmpp.iqCaller.request(xml('iq', { type: 'set', to: roomJid }, xml('query', { xmlns: NS_MUC_OWNER }, form)), timeout);
    return { ok: true };
  } catch (err) {
    if (err?.name === 'StanzaError') return { ok: false, condition: err.condition, type: err.type, text: err.text || '' };
    throw err;
  }
}

/**
 * The reason codes of the door's `REQUEST_COMPLETE reason:<code>` lines in
 * `text` (lines of the token_verification module only), in order.
 */
export function doorCodes(text) {
  const codes = [];
  for (const line of text.split('\n')) {
    if (!line.includes('token_verification')) continue;
    const m = /REQUEST_COMPLETE reason:([A-Za-z_]+)/.exec(line);
    if (m) codes.push(m[1]);
  }
  return codes;
}

/** The door's refusal codes (everything but `ok`) since `mark`. */
export function doorRefusalsSince(server, mark) {
  return doorCodes(server.logSince(mark)).filter((c) => c !== 'ok');
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * A join refused at the door: an error presence `cancel` / `not-allowed`
 * with a text, and exactly one door log line with `code` since `mark`.
 */
export async function expectDoorRefused(server, mark, result, code, what, { ms = 5000 } = {}) {
  assert.equal(result.ok, false, `${what}: should have been refused at the door, got ${JSON.stringify(result)}`);
  assert.equal(result.condition, 'not-allowed', `${what}: ${JSON.stringify(result)}`);
  assert.equal(result.type, 'cancel', `${what}: error type: ${JSON.stringify(result)}`);
  assert.ok(result.text && result.text.trim().length > 0, `${what}: the refusal has a text: ${JSON.stringify(result)}`);
  // The log line is written before the answer is sent; allow for file buffering.
  const deadline = Date.now() + ms;
  let codes = doorRefusalsSince(server, mark);
  while (codes.length === 0 && Date.now() < deadline) {
    await sleep(25);
    codes = doorRefusalsSince(server, mark);
  }
  assert.deepEqual(codes, [code], `${what}: one "token_verification REQUEST_COMPLETE reason:${code}" line, got ${JSON.stringify(codes)}`);
}

/** A join the door let through: joined, and no door refusal logged since `mark`. */
export function expectDoorOpened(server, mark, result, what) {
  assert.equal(result.ok, true, `${what}: should have joined, got ${JSON.stringify(result)}`);
  assert.deepEqual(doorRefusalsSince(server, mark), [], `${what}: no door refusal in the log`);
}
