// End-to-end: the room door (mod_token_verification) for standard Jitsi
// tokens, token-less sessions, guests, the allowlist and owner forms, on a
// real Prosody with real XMPP clients. A login proves one room; the MUC join
// is where that proof is checked (SECURITY.md "What a claim grants, and
// where"; issue 15 item 1, issue 16 item 1). Breakout rooms come from the
// test-only tests/prosody/mod_muc_breakout_rooms.lua (jitsi-meet's contract).
//
// Every refusal is asserted as what an admin sees: an error presence
// cancel/not-allowed with a text, and one
// "token_verification REQUEST_COMPLETE reason:<code>" log line.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { describe } from 'node:test';

import { connect, stopAll } from './lib/client.js';
import {
  GUEST_DOMAIN,
  breakoutComponent,
  breakoutVhostOptions,
  createBreakoutRoom,
  doorRefusalsSince,
  expectDoorOpened,
  expectDoorRefused,
  guestHost,
  setRoomConfig,
} from './lib/door.js';
import { scenario, uniqueRoom, useProsody } from './lib/harness.js';
import { now, sign } from './lib/jwt.js';
import { eventuallyRoom, requirePlugins } from './lib/matrix.js';
import { roomState } from './lib/observer.js';
import { MUC_DOMAIN } from './lib/prosody.js';

const APP_ID = 'e2e-door-app';
const SECRET = `e2e-door-secret-${crypto.randomBytes(12).toString('hex')}`;
const AUTH = 'mod_auth_matrix_user_verification.lua';
const DOOR = 'mod_token_verification.lua';
const SECURITY = 'mod_token_security_ondemand.lua';

/**
 * Standard claims, valid 5 minutes, signed with the host's key. `sub`
 * defaults to the host's domain; `tenant` sets context.tenant.
 */
function token(room, { sub = 'localhost', tenant, user = {}, roomCtx } = {}) {
  const t = now();
  const context = { user: { name: 'door user', ...user } };
  if (tenant !== undefined) context.tenant = tenant;
  if (roomCtx !== undefined) context.room = roomCtx;
  return sign({ iss: APP_ID, aud: 'jitsi', sub, room, iat: t - 5, exp: t + 300, context }, { alg: 'HS256', key: SECRET });
}

const jidOf = (room) => `${room}@${MUC_DOMAIN}`;

/** Log in with `tok` (the connection's ?room= is `urlRoom`). */
const login = (s, urlRoom, tok) => connect(s.wsUrl(urlRoom, tok));

/** Join `roomJid` as `nick` and return the result, with a log mark taken just before. */
async function join(s, client, roomJid, nick) {
  const mark = s.logMark();
  const result = await client.joinMuc(roomJid, nick);
  return { mark, result };
}

async function expectOpens(s, client, roomJid, nick, what) {
  const { mark, result } = await join(s, client, roomJid, nick);
  expectDoorOpened(s, mark, result, what);
}

async function expectShut(s, client, roomJid, nick, code, what) {
  const { mark, result } = await join(s, client, roomJid, nick);
  await expectDoorRefused(s, mark, result, code, what);
  if (!roomJid.endsWith(`@${MUC_DOMAIN}`)) return; // the observer reads conference rooms only
  const st = await roomState(s.httpPort, roomJid);
  if (st.exists) {
    assert.equal(
      st.occupants.some((o) => o.jid === client.bareJid),
      false,
      `${what}: the refused user is not an occupant: ${JSON.stringify(st)}`,
    );
  }
}

/** A room created by a user whose token is for it (the door opens it). */
async function createRoom(s, room, nick = 'creator') {
  const c = await login(s, room, token(room));
  try {
    await expectOpens(s, c, jidOf(room), nick, `creator of ${room}`);
  } catch (err) {
    await stopAll(c);
    throw err;
  }
  return c;
}

/**
 * A Prosody with the door on the conference and breakout components, beside
 * token_security_ondemand and the lobby stand-in (as production loads them),
 * the breakout stand-in on the VirtualHost and a guest VirtualHost.
 */
function doorServer({ vhost = {}, muc = {}, breakout = {}, mucModules = ['token_verification', 'token_security_ondemand', 'test_lobby'] } = {}) {
  return () => {
    requirePlugins([AUTH, DOOR, SECURITY]);
    return {
      vhost: {
        authentication: 'matrix_user_verification',
        app_id: APP_ID,
        app_secret: SECRET,
        ...breakoutVhostOptions(),
        ...vhost,
      },
      vhostModules: ['test_observer', 'muc_breakout_rooms'],
      mucModules,
      muc,
      extraConfig: breakoutComponent({ modules: ['token_verification'], options: breakout }) + guestHost(),
    };
  };
}

// ---------------------------------------------------------------------------
// Token-less guests may log in (VirtualHost allow_empty_token = true), but the
// door's own allow_empty_token (component first) is false.
describe('door: standard tokens, token-less sessions refused at the door', () => {
  const server = useProsody(
    doorServer({
      vhost: { allow_empty_token: true },
      muc: { allow_empty_token: false },
      breakout: { allow_empty_token: false },
    }),
  );

  scenario('a token for rooma opens rooma, and neither a new nor an existing roomb (room_not_covered)', server, async (t, s) => {
    const a = uniqueRoom('rooma');
    const b = uniqueRoom('roomb');
    const existing = uniqueRoom('roomb-existing');
    let u, owner;
    try {
      owner = await createRoom(s, existing);
      u = await login(s, a, token(a));
      await expectOpens(s, u, jidOf(a), 'u', 'rooma token into rooma');
      await expectShut(s, u, jidOf(b), 'u', 'room_not_covered', 'rooma token creating roomb');
      assert.equal((await roomState(s.httpPort, jidOf(b))).exists, false, 'roomb was not created');
      await expectShut(s, u, jidOf(existing), 'u', 'room_not_covered', 'rooma token into an existing roomb');
    } finally {
      await stopAll(u, owner);
    }
  });

  scenario('the room claim is compared case-insensitively (ROOMA opens rooma)', server, async (t, s) => {
    const a = uniqueRoom('rooma-case');
    const b = uniqueRoom('roomb-case');
    let u;
    try {
      u = await login(s, a, token(a.toUpperCase()));
      await expectOpens(s, u, jidOf(a), 'u', 'ROOMA token into rooma');
      await expectShut(s, u, jidOf(b), 'u', 'room_not_covered', 'ROOMA token into roomb');
    } finally {
      await stopAll(u);
    }
  });

  scenario('a * token of this host\'s domain opens every room without a tenant, not [t1] rooms', server, async (t, s) => {
    const r1 = uniqueRoom('star-1');
    const r2 = uniqueRoom('star-2');
    const tenantRoom = `[t1]${uniqueRoom('star-t')}`;
    let u;
    try {
      u = await login(s, r1, token('*'));
      await expectOpens(s, u, jidOf(r1), 'u', '* token (sub localhost) into an unprefixed room');
      await expectOpens(s, u, jidOf(r2), 'u', '* token (sub localhost) into another unprefixed room');
      await expectShut(s, u, jidOf(tenantRoom), 'u', 'tenant_mismatch', '* token (sub localhost) into [t1]room');
    } finally {
      await stopAll(u);
    }
  });

  for (const [how, opts] of [
    ['sub t1', { sub: 't1' }],
    ['context.tenant t1 (sub localhost)', { sub: 'localhost', tenant: 't1' }],
  ]) {
    scenario(`tenant t1 (${how}) with room *: [t1]x opens; [t2]x and an unprefixed room stay shut (tenant_mismatch)`, server, async (t, s) => {
      const x = uniqueRoom('x');
      const t1 = `[t1]${x}`;
      const t2 = `[t2]${x}`;
      const plain = uniqueRoom('boardroom');
      let u, owner;
      try {
        owner = await createRoom(s, plain);
        u = await login(s, t1, token('*', opts));
        await expectOpens(s, u, jidOf(t1), 'u', `t1 * token into ${t1}`);
        await expectShut(s, u, jidOf(t2), 'u', 'tenant_mismatch', `t1 * token into ${t2}`);
        await expectShut(s, u, jidOf(plain), 'u', 'tenant_mismatch', `t1 * token into the existing unprefixed ${plain}`);
        await expectShut(s, u, jidOf(uniqueRoom('boardroom-new')), 'u', 'tenant_mismatch', 't1 * token creating an unprefixed room');
      } finally {
        await stopAll(u, owner);
      }
    });
  }

  scenario('a tenant token for one room opens only [t1]that-room', server, async (t, s) => {
    const x = uniqueRoom('tx');
    let u, upper;
    try {
      u = await login(s, `[t1]${x}`, token(x, { sub: 't1' }));
      await expectOpens(s, u, jidOf(`[t1]${x}`), 'u', 't1 token for x into [t1]x');
      await expectShut(s, u, jidOf(`[t1]${uniqueRoom('ty')}`), 'u', 'room_not_covered', 't1 token for x into [t1]y');
      await expectShut(s, u, jidOf(`[t2]${x}`), 'u', 'tenant_mismatch', 't1 token for x into [t2]x');
      // Tenants compare without case.
      upper = await login(s, `[t1]${x}`, token(x, { sub: 'T1' }));
      await expectOpens(s, upper, jidOf(`[t1]${x}`), 'upper', 'T1 token for x into [t1]x');
    } finally {
      await stopAll(u, upper);
    }
  });

  scenario('sub * with room * opens every room: unprefixed, [t1] and [t2]', server, async (t, s) => {
    const plain = uniqueRoom('any');
    let u, owner;
    try {
      owner = await createRoom(s, plain);
      u = await login(s, plain, token('*', { sub: '*' }));
      await expectOpens(s, u, jidOf(plain), 'u', '*/* token into an existing unprefixed room');
      await expectOpens(s, u, jidOf(`[t1]${uniqueRoom('any')}`), 'u', '*/* token into [t1]');
      await expectOpens(s, u, jidOf(`[t2]${uniqueRoom('any')}`), 'u', '*/* token into [t2]');
    } finally {
      await stopAll(u, owner);
    }
  });

  scenario('breakout rooms: the door checks the main room (open for rooma, shut for roomb, no_main_room for an unknown one)', server, async (t, s) => {
    const a = uniqueRoom('main-a');
    const b = uniqueRoom('main-b');
    let creatorA, creatorB, u;
    try {
      creatorA = await createRoom(s, a, 'mod-a');
      creatorB = await createRoom(s, b, 'mod-b');
      const breakoutA = await createBreakoutRoom(creatorA, { subject: 'A1' });
      const breakoutB = await createBreakoutRoom(creatorB, { subject: 'B1' });

      u = await login(s, a, token(a));
      await expectOpens(s, u, breakoutA, 'u', 'rooma token into a breakout room of rooma');
      await expectShut(s, u, breakoutB, 'u', 'room_not_covered', 'rooma token into a breakout room of roomb');
      // The breakout room of roomb is still open to roomb's own users.
      await expectOpens(s, creatorB, breakoutB, 'mod-b', 'roomb token into a breakout room of roomb');
      await expectShut(s, u, `${crypto.randomUUID()}@${breakoutA.split('@')[1]}`, 'u', 'no_main_room', 'an unknown breakout room');
    } finally {
      await stopAll(u, creatorA, creatorB);
    }
  });

  scenario('token-less: refused (token_required) in a new and in an existing room; a token user gets in', server, async (t, s) => {
    const room = uniqueRoom('tokenless');
    let owner, guest;
    try {
      guest = await login(s, room, undefined);
      await expectShut(s, guest, jidOf(uniqueRoom('tokenless-new')), 'g', 'token_required', 'token-less user creating a room');
      owner = await createRoom(s, room);
      await expectShut(s, guest, jidOf(room), 'g', 'token_required', 'token-less user into an existing room');
    } finally {
      await stopAll(owner, guest);
    }
  });

  scenario('a guest of another VirtualHost passes the door (new and existing rooms)', server, async (t, s) => {
    const room = uniqueRoom('guests');
    let owner, guest, local;
    try {
      guest = await connect(s.wsUrl(room), { domain: GUEST_DOMAIN });
      assert.match(guest.jid, /@guest\.localhost\//, `guest jid: ${guest.jid}`);
      await expectOpens(s, guest, jidOf(uniqueRoom('guests-new')), 'g', 'guest of guest.localhost creating a room');
      owner = await createRoom(s, room);
      await expectOpens(s, guest, jidOf(room), 'g', 'guest of guest.localhost into an existing room');
      // Same room, a token-less session of the door's own host: shut.
      local = await login(s, room, undefined);
      await expectShut(s, local, jidOf(room), 'l', 'token_required', 'token-less session of localhost');
    } finally {
      await stopAll(owner, guest, local);
    }
  });

  scenario('healthcheck rooms pass the door (token-less and any token)', server, async (t, s) => {
    const room = `__jicofo-health-check-${crypto.randomUUID()}`;
    let tokenless, other;
    try {
      tokenless = await login(s, room, undefined);
      await expectOpens(s, tokenless, jidOf(room), 'jicofo', 'token-less session into a healthcheck room');
      other = await login(s, 'elsewhere', token(uniqueRoom('elsewhere')));
      await expectOpens(s, other, jidOf(room), 'other', 'a token for another room into a healthcheck room');
    } finally {
      await stopAll(tokenless, other);
    }
  });

  // Issue 16: a token signed with the host's key for another tenant may not
  // open, bypass or reconfigure a room without [tenant].
  scenario('the tenant attack: sub t1, room *, security_bypass, lobby off, password pwned is refused at the door and changes nothing', server, async (t, s) => {
    const room = uniqueRoom('boardroom');
    const roomJid = jidOf(room);
    let owner, attacker;
    try {
      owner = await login(s, room, token(room, { roomCtx: { lobby: true, password: 'pw-board' } }));
      await expectOpens(s, owner, roomJid, 'owner', 'localhost token with lobby and password');
      await eventuallyRoom(s.httpPort, roomJid, (st) => {
        assert.equal(st.members_only, true, 'members-only');
        assert.notEqual(st.lobbyroom, null, 'lobby on');
        assert.equal(st.password, 'pw-board', 'password set');
      });

      attacker = await login(
        s,
        room,
        token('*', { sub: 't1', user: { security_bypass: true }, roomCtx: { lobby: false, password: 'pwned' } }),
      );
      await expectShut(s, attacker, roomJid, 'attacker', 'tenant_mismatch', 'tenant t1 bypass token into boardroom');
      await owner.ping(); // a round trip: anything the refused join set off has run
      const st = await roomState(s.httpPort, roomJid);
      assert.equal(st.members_only, true, `still members-only: ${JSON.stringify(st)}`);
      assert.notEqual(st.lobbyroom, null, `lobby still on: ${JSON.stringify(st)}`);
      assert.equal(st.lobbyroom_exists, true, `lobby room still there: ${JSON.stringify(st)}`);
      assert.equal(st.password, 'pw-board', `password unchanged: ${JSON.stringify(st)}`);
      assert.equal(st.affiliations[attacker.bareJid], undefined, `no affiliation for the attacker: ${JSON.stringify(st)}`);
    } finally {
      await stopAll(owner, attacker);
    }
  });
});

// ---------------------------------------------------------------------------
// allow_empty_token = true on the VirtualHost only: the door reads it from the
// parent host. Owner forms need a token.
describe('door: allow_empty_token from the VirtualHost, token_verification_require_token_for_moderation', () => {
  const server = useProsody(
    doorServer({
      vhost: { allow_empty_token: true },
      muc: { token_verification_require_token_for_moderation: true },
    }),
  );

  scenario('token-less sessions pass the door (new and existing room); tokens are still checked', server, async (t, s) => {
    const room = uniqueRoom('open');
    const other = uniqueRoom('open-other');
    let owner, guest, u;
    try {
      guest = await login(s, room, undefined);
      await expectOpens(s, guest, jidOf(uniqueRoom('open-new')), 'g', 'token-less user creating a room');
      owner = await createRoom(s, room);
      await expectOpens(s, guest, jidOf(room), 'g', 'token-less user into an existing room');
      u = await login(s, other, token(other));
      await expectShut(s, u, jidOf(room), 'u', 'room_not_covered', 'a token for another room, with allow_empty_token');
    } finally {
      await stopAll(owner, guest, u);
    }
  });

  scenario('a token-less owner cannot submit the room configuration form; a token owner can', server, async (t, s) => {
    const guestRoom = uniqueRoom('cfg-guest');
    const tokenRoom = uniqueRoom('cfg-token');
    let guest, owner;
    try {
      guest = await login(s, guestRoom, undefined);
      const joined = await guest.joinMuc(jidOf(guestRoom), 'g');
      assert.equal(joined.ok, true, `token-less creator joins: ${JSON.stringify(joined)}`);
      assert.equal(joined.affiliation, 'owner', `the token-less creator is owner: ${JSON.stringify(joined)}`);
      const mark = s.logMark();
      const refused = await setRoomConfig(guest, jidOf(guestRoom));
      assert.equal(refused.ok, false, `token-less owner's config form: ${JSON.stringify(refused)}`);
      assert.equal(refused.condition, 'not-allowed', `token-less owner's config form: ${JSON.stringify(refused)}`);
      assert.equal(refused.type, 'cancel', `token-less owner's config form: ${JSON.stringify(refused)}`);
      assert.deepEqual(doorRefusalsSince(s, mark), ['configure_refused'], 'one "REQUEST_COMPLETE reason:configure_refused" line');

      owner = await createRoom(s, tokenRoom, 'owner');
      const accepted = await setRoomConfig(owner, jidOf(tokenRoom));
      assert.deepEqual(accepted, { ok: true }, 'token owner\'s config form');
    } finally {
      await stopAll(guest, owner);
    }
  });
});

// ---------------------------------------------------------------------------
describe('door: token_verification_allowlist (a domain)', () => {
  const server = useProsody(
    doorServer({
      vhost: { allow_empty_token: true },
      muc: { allow_empty_token: false, token_verification_allowlist: ['localhost'] },
      breakout: { allow_empty_token: false },
    }),
  );

  scenario('sessions of an allowlisted domain pass the door on that component', server, async (t, s) => {
    const a = uniqueRoom('allow-a');
    const b = uniqueRoom('allow-b');
    let u, guest, ownerA;
    try {
      u = await login(s, a, token(a));
      await expectOpens(s, u, jidOf(b), 'u', 'rooma token into roomb, localhost allowlisted');
      guest = await login(s, b, undefined);
      await expectOpens(s, guest, jidOf(b), 'g', 'token-less session, localhost allowlisted');
      // The breakout component has no allowlist: its door still checks.
      ownerA = await createRoom(s, a, 'mod-a');
      const breakoutA = await createBreakoutRoom(ownerA);
      const mark = s.logMark();
      await expectDoorRefused(s, mark, await guest.joinMuc(breakoutA, 'g'), 'token_required', 'token-less session into a breakout room (no allowlist there)');
    } finally {
      await stopAll(u, guest, ownerA);
    }
  });
});

// ---------------------------------------------------------------------------
// The host's domain for rooms without [tenant] is muc_mapper_domain_base
// when set (read from the parent VirtualHost), not the component's parent.
describe('door: muc_mapper_domain_base names this host\'s domain', () => {
  const server = useProsody(doorServer({ vhost: { muc_mapper_domain_base: 'meet.example.com' } }));

  scenario('a * token of meet.example.com opens an unprefixed room; one of localhost or t1 does not', server, async (t, s) => {
    const room = uniqueRoom('mapped');
    let home, local, other;
    try {
      home = await login(s, room, token('*', { sub: 'meet.example.com' }));
      await expectOpens(s, home, jidOf(room), 'home', 'sub meet.example.com, room *, into an unprefixed room');
      local = await login(s, room, token('*', { sub: 'localhost' }));
      await expectShut(s, local, jidOf(room), 'local', 'tenant_mismatch', 'sub localhost when the mapped domain is meet.example.com');
      other = await login(s, room, token('*', { sub: 't1' }));
      await expectShut(s, other, jidOf(room), 'other', 'tenant_mismatch', 'sub t1, room *, into an unprefixed room');
    } finally {
      await stopAll(home, local, other);
    }
  });
});

// ---------------------------------------------------------------------------
// enable_domain_verification = false: rooms without [tenant] are not checked
// against the token's tenant; [tenant] rooms still are.
describe('door: enable_domain_verification = false', () => {
  const server = useProsody(doorServer({ vhost: { enable_domain_verification: false } }));

  scenario('a t1 * token opens an unprefixed room, still not [t2]x; the room claim still counts', server, async (t, s) => {
    const room = uniqueRoom('noverify');
    let u, named;
    try {
      u = await login(s, room, token('*', { sub: 't1' }));
      await expectOpens(s, u, jidOf(room), 'u', 'sub t1, room *, into an unprefixed room (no domain verification)');
      await expectShut(s, u, jidOf(`[t2]${uniqueRoom('noverify')}`), 'u', 'tenant_mismatch', 'sub t1, room *, into [t2]x');
      named = await login(s, room, token(uniqueRoom('other'), { sub: 't1' }));
      await expectShut(s, named, jidOf(room), 'named', 'room_not_covered', 'a token for another room (no domain verification)');
    } finally {
      await stopAll(u, named);
    }
  });
});

// ---------------------------------------------------------------------------
// Issue 16 without the door: token_security_ondemand alone must not let a
// token of another tenant bypass or reconfigure a room without [tenant].
describe('without the door: token_security_ondemand applies the tenant rule itself', () => {
  const server = useProsody(() => {
    requirePlugins([AUTH, SECURITY]);
    return {
      vhost: { authentication: 'matrix_user_verification', app_id: APP_ID, app_secret: SECRET },
      vhostModules: ['test_observer'],
      mucModules: ['token_security_ondemand', 'test_lobby'],
    };
  });

  scenario('the tenant attack gets no bypass, the lobby and the password stay', server, async (t, s) => {
    const room = uniqueRoom('boardroom');
    const roomJid = jidOf(room);
    let owner, attacker;
    try {
      owner = await login(s, room, token(room, { roomCtx: { lobby: true, password: 'pw-board' } }));
      const joined = await owner.joinMuc(roomJid, 'owner');
      assert.equal(joined.ok, true, `owner joins: ${JSON.stringify(joined)}`);
      await eventuallyRoom(s.httpPort, roomJid, (st) => {
        assert.equal(st.members_only, true, 'members-only');
        assert.notEqual(st.lobbyroom, null, 'lobby on');
        assert.equal(st.password, 'pw-board', 'password set');
      });

      attacker = await login(
        s,
        room,
        token('*', { sub: 't1', user: { security_bypass: true }, roomCtx: { lobby: false, password: 'pwned' } }),
      );
      const res = await attacker.joinMuc(roomJid, 'attacker');
      assert.equal(res.ok, false, `the attacker must not get in: ${JSON.stringify(res)}`);
      assert.equal(res.condition, 'registration-required', `members-only still applies to the attacker: ${JSON.stringify(res)}`);
      assert.deepEqual(doorRefusalsSince(s, 0), [], 'no door is loaded here');
      await owner.ping();
      const st = await roomState(s.httpPort, roomJid);
      assert.equal(st.members_only, true, `still members-only: ${JSON.stringify(st)}`);
      assert.notEqual(st.lobbyroom, null, `lobby still on: ${JSON.stringify(st)}`);
      assert.equal(st.password, 'pw-board', `password unchanged: ${JSON.stringify(st)}`);
      assert.equal(st.affiliations[attacker.bareJid], undefined, `no member affiliation for the attacker: ${JSON.stringify(st)}`);
      assert.equal(st.occupants.some((o) => o.jid === attacker.bareJid), false, `the attacker is not in: ${JSON.stringify(st)}`);
    } finally {
      await stopAll(owner, attacker);
    }
  });
});

// ---------------------------------------------------------------------------
// The breakout stand-in on its own (no door), so that a door test never fails
// because of it: jitsi-meet's contract, tests/prosody/mod_muc_breakout_rooms.lua.
describe('mod_muc_breakout_rooms stand-in (no door)', () => {
  const server = useProsody(() => {
    requirePlugins([AUTH]);
    return {
      vhost: { authentication: 'matrix_user_verification', app_id: APP_ID, app_secret: SECRET, allow_empty_token: true, ...breakoutVhostOptions() },
      vhostModules: ['test_observer', 'muc_breakout_rooms'],
      extraConfig: breakoutComponent(),
    };
  });

  scenario('a moderator gets a breakout room that can then be joined; others get none; unknown breakout rooms cannot be created', server, async (t, s) => {
    const room = uniqueRoom('bo-main');
    let mod, other;
    try {
      mod = await login(s, room, undefined);
      const joined = await mod.joinMuc(jidOf(room), 'mod');
      assert.equal(joined.role, 'moderator', `creator is moderator: ${JSON.stringify(joined)}`);
      other = await login(s, room, undefined);
      const second = await other.joinMuc(jidOf(room), 'other');
      assert.equal(second.role, 'participant', `second is participant: ${JSON.stringify(second)}`);

      await assert.rejects(createBreakoutRoom(other), /not-allowed/, 'a participant gets no breakout room');
      const first = await createBreakoutRoom(mod, { subject: 'one' });
      const again = await createBreakoutRoom(mod, { subject: 'two' });
      assert.notEqual(first, again, 'each request makes a new breakout room');

      const inBreakout = await other.joinMuc(first, 'other');
      assert.equal(inBreakout.ok, true, `join the breakout room: ${JSON.stringify(inBreakout)}`);
      const unknown = await other.joinMuc(`${crypto.randomUUID()}@${first.split('@')[1]}`, 'other');
      assert.equal(unknown.ok, false, `an unknown breakout room: ${JSON.stringify(unknown)}`);
      assert.equal(unknown.condition, 'not-allowed', `an unknown breakout room: ${JSON.stringify(unknown)}`);
    } finally {
      await stopAll(mod, other);
    }
  });
});
