// Read room state from mod_test_observer (tests/prosody/mod_test_observer.lua).

/**
 * State of a room of conference.localhost:
 * { exists, members_only, password, lobbyroom, lobbyroom_exists,
 *   affiliations: {bare_jid: aff}, occupants: [{nick, jid, role, affiliation}] }
 */
export async function roomState(httpPort, roomJid) {
  const url = `http://127.0.0.1:${httpPort}/test_observer/room?jid=${encodeURIComponent(roomJid)}`;
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  const body = await res.text();
  if (res.status !== 200) throw new Error(`observer ${url}: HTTP ${res.status}: ${body}`);
  return normalise(JSON.parse(body));
}

/** Fire create-persistent-lobby-room / destroy-lobby-room for a room (harness self-test). */
export async function fireLobbyEvent(httpPort, roomJid, action) {
  const url = `http://127.0.0.1:${httpPort}/test_observer/lobby?jid=${encodeURIComponent(roomJid)}&action=${action}`;
  const res = await fetch(url, { method: 'POST', signal: AbortSignal.timeout(5000) });
  const body = await res.text();
  if (res.status !== 200) throw new Error(`observer ${url}: HTTP ${res.status}: ${body}`);
  return normalise(JSON.parse(body));
}

function normalise(state) {
  // util.json writes an empty Lua table as [] or {}; make the shapes stable.
  if (Array.isArray(state.affiliations)) state.affiliations = {};
  if (!Array.isArray(state.occupants)) state.occupants = [];
  for (const k of ['password', 'lobbyroom']) if (state[k] === undefined) state[k] = null;
  return state;
}
