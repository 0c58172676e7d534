-- mod_matrix_power_sync: only users with enough power in the Matrix room
-- (as UVS reported at login, for the room this Jitsi room stands for) and
-- server admins are owners or admins; everyone else who joins is a member,
-- and owner or admin grants to anyone else are refused. Decisions live in
-- jitsi_security; this shim gathers inputs and applies the answers.
-- Load on the MUC component (and on jitsi-meet's breakout component); needs
-- mod_auth_matrix_user_verification with uvs_sync_power_levels = true on
-- the VirtualHost.

local native = require "jitsi_security";
local jid_node = require "util.jid".node;
local jid_bare = require "util.jid".bare;
local server = require "net.server";
local config = require "core.configmanager";
local st = require "util.stanza";

local bare_sessions = prosody.bare_sessions;
local full_sessions = prosody.full_sessions;

-- The c2s session of a full JID (nil for remote or gone ones).
local function full_session(full_jid)
	return full_sessions[full_jid];
end
local host = module.host;

-- Is this JID a server admin (of this component, as Prosody sees it)?
-- Prosody 13 has roles: our permission is granted to prosody:admin (and so
-- to prosody:operator), and admins may grant it to other roles with
-- add_permissions. Its legacy is_admin() logs a traceback on every call.
-- Prosody 0.12 has no module:could(); there is_admin() is the API.
local is_admin = native.admin_check(module, ":automatic-ownership");

-- Options: their names, types, ranges and defaults live in jitsi_security
-- (src/options.rs). Read from this component or, failing that, from the
-- VirtualHost users log in on (matrix_auth_host, by default this host
-- minus its first label: conference.meet.example.com -> meet.example.com).
-- With a wrong type or range: one error line, live membership off, and no
-- Matrix power makes anyone owner (fail closed; server admins stay owners).
local raw_options, options, config_error = native.read_options(module);
if not options then
	module:log("error", "%s; no Matrix power makes anyone owner and live Matrix membership is off until it is fixed",
		config_error);
end

-- What the native rules need to know about one XMPP session.
local function session_claim(session)
	local matrix = session.jitsi_meet_context_matrix;
	local room_id = type(matrix) == "table" and matrix.room_id or nil;
	local user_id = session.matrix_user_id;
	return {
		jid = type(session.full_jid) == "string" and session.full_jid or nil;
		user_id = type(user_id) == "string" and user_id or nil;
		is_owner = options ~= nil and session.auth_matrix_user_verification_is_owner == true;
		room_id = type(room_id) == "string" and room_id or nil;
	};
end

-- Every session of an account: their claims, and the sessions by full JID.
local function sessions_of(bare_jid)
	local claims, by_jid = {}, {};
	local user = bare_sessions[bare_jid];
	if user and user.sessions then
		for _, session in pairs(user.sessions) do -- keyed by resource
			claims[#claims + 1] = session_claim(session);
			if type(session.full_jid) == "string" then by_jid[session.full_jid] = session; end
		end
	end
	return claims, by_jid;
end

-- Jitsi's breakout rooms (mod_muc_breakout_rooms) live on their own MUC
-- component, each listed in its main room's _data.breakout_rooms; the main
-- MUC is jitsi's main_muc option. Loaded on the breakout component too,
-- this module treats a breakout room as part of its main room: the same
-- owners, and its Matrix occupants watched as the main room's.
local main_muc = module:get_option("main_muc");
if main_muc == nil then
	local auth_host = type(raw_options.matrix_auth_host) == "string" and raw_options.matrix_auth_host
		or (host:gsub("^[^.]+%.", ""));
	main_muc = config.get(auth_host, "main_muc");
end
local function main_room_node(room)
	if type(main_muc) ~= "string" or main_muc == host then
		return jid_node(room.jid) or "";
	end
	local h = prosody.hosts[main_muc];
	local main = h and h.modules and h.modules.muc;
	if main and main.live_rooms then
		for candidate in main.live_rooms() do
			local breakouts = candidate._data and candidate._data.breakout_rooms;
			if type(breakouts) == "table" and breakouts[room.jid] ~= nil then
				return jid_node(candidate.jid) or "";
			end
		end
	end
	return jid_node(room.jid) or ""; -- no main room: a room of its own
end

local function owner_input(room, bare_jid, sessions)
	return {
		room_node = main_room_node(room);
		is_admin = is_admin(bare_jid) == true;
		sessions = sessions;
		affiliation = room:get_affiliation(bare_jid);
	};
end

-- Every owner or admin grant, whoever makes it (Prosody's creator rule,
-- jicofo's auto-owner, another occupant), passes through here.
module:hook("muc-pre-set-affiliation", function (event)
	if event.affiliation ~= "owner" and event.affiliation ~= "admin" then return; end
	local bare_jid = jid_bare(event.jid);
	local sessions = sessions_of(bare_jid);
	if not native.owner_allow_grant(owner_input(event.room, bare_jid, sessions), event.affiliation) then
		module:log("info", "refusing %s of %s to %s: no Matrix power in this room", event.affiliation, event.room.jid, bare_jid);
		event.allowed = false;
	end
end);

module:hook("muc-occupant-joined", function (event)
	local room, occupant, origin = event.room, event.occupant, event.origin;
	if not origin then return; end
	local decision = native.owner_on_join(owner_input(room, occupant.bare_jid, { session_claim(origin) }));
	if not decision.set_affiliation then
		module:log("debug", "%s in %s: %s", occupant.bare_jid, room.jid, decision.why);
		return;
	end
	module:log("info", "%s becomes %s of %s: %s", occupant.bare_jid, decision.set_affiliation, room.jid, decision.why);
	local ok, err_type, err_condition = room:set_affiliation(true, occupant.bare_jid, decision.set_affiliation);
	if not ok then
		module:log("warn", "could not make %s %s of %s: %s %s", occupant.bare_jid,
			decision.set_affiliation, room.jid, err_type, err_condition);
	end
end);

-- Live Matrix membership (direct homeserver mode only): while this room has
-- occupants verified for its Matrix room, jitsi_security re-reads the
-- room's state every matrix_resync_interval seconds; occupants no longer
-- joined (or whose Matrix room no longer exists) are kicked, and with
-- uvs_sync_power_levels owners follow power. Occupants are followed by
-- their session's real JID, so a nick change does not lose them.
if not options then return; end
local resync, resync_off = native.new_resync(raw_options);
if not resync then
	if resync == nil then
		module:log("error", "live Matrix membership disabled: %s", resync_off);
	else
		module:log("debug", "%s", resync_off);
	end
	return;
end

local measure_kick = module:measure("resync_kicks", "rate");
local measure_owner = module:measure("resync_owner_changes", "rate");
local measure_error = module:measure("resync_errors", "rate");

local function muc()
	local h = prosody.hosts[host];
	return h and h.modules and h.modules.muc;
end

-- The session real_jid is an occupant of room: watch it if its login was
-- verified for a Matrix room.
local function track(room, real_jid, bare_jid)
	local session = full_session(real_jid);
	local matrix = session and session.jitsi_meet_context_matrix;
	if type(matrix) ~= "table" or type(matrix.room_id) ~= "string" or type(session.matrix_user_id) ~= "string" then
		return;
	end
	if resync:track(room.jid, main_room_node(room), real_jid, bare_jid, matrix.room_id, session.matrix_user_id) then
		module:log("debug", "watching Matrix membership of %s in %s", real_jid, room.jid);
	end
end

local function apply(action)
	local m = muc();
	local room = m and m.get_room_from_jid(action.room);
	local occupant = room and room:get_occupant_by_real_jid(action.real_jid);
	if action.kind == "kick" then
		-- The session's Matrix proof is spent, kicked or not: no rejoin.
		local session = full_session(action.real_jid);
		if session then session.jitsi_security_matrix_revoked = action.rejoin_refusal; end
	end
	if action.kind == "kick" or action.kind == "owner" then
		if not occupant then
			-- Gone since (a kick in between, a leave not seen yet).
			resync:untrack(action.room, action.real_jid);
			return;
		end
	end
	if action.kind == "kick" then
		module:log("info", "removing %s (Matrix user %s) from %s: %s", occupant.nick, action.user_id, action.room, action.reason);
		local ok, err_type, err_condition = room:set_role(true, occupant.nick, "none", action.reason);
		if ok then
			measure_kick();
			resync:untrack(action.room, action.real_jid);
		else
			module:log("warn", "could not remove %s from %s: %s %s (tried again at the next resync)", occupant.nick,
				action.room, err_type, err_condition);
		end
	elseif action.kind == "owner" then
		local sessions, by_jid = sessions_of(action.bare_jid);
		local change = native.owner_on_power_change(owner_input(room, action.bare_jid, sessions),
			action.matrix_room, action.user_id, action.owner);
		for _, flag in ipairs(change.flags) do
			local session = by_jid[flag.jid];
			if session then session.auth_matrix_user_verification_is_owner = flag.is_owner; end
		end
		if change.set_affiliation then
			module:log("info", "%s becomes %s of %s after a Matrix power change: %s", action.bare_jid,
				change.set_affiliation, action.room, change.why);
			local ok, err_type, err_condition = room:set_affiliation(true, action.bare_jid, change.set_affiliation);
			if ok then
				measure_owner();
			else
				module:log("warn", "could not make %s %s of %s: %s %s (tried again at the next resync)", action.bare_jid,
					change.set_affiliation, action.room, err_type, err_condition);
			end
		end
	elseif action.kind == "outage" then
		module:log("warn", "%s", action.text);
	elseif action.kind == "recovered" then
		module:log("info", "%s", action.text);
	elseif action.kind == "failed" then
		measure_error();
	end
end

local watcher = server.watchfd(resync:fd(), function ()
	for _, action in ipairs(resync:drain()) do apply(action); end
end);

module:add_timer(resync:tick_every(), function ()
	resync:tick();
	return resync:tick_every();
end);

-- A session the resync removed may not come back (to this room or any
-- other of this component) without a new login, which checks membership.
module:hook("muc-occupant-pre-join", function (event)
	local origin = event.origin;
	local refusal = origin and origin.jitsi_security_matrix_revoked;
	if type(refusal) ~= "string" then return; end
	module:log("info", "refusing %s in %s: its Matrix membership was revoked", event.stanza.attr.from, event.room.jid);
	origin.send(st.error_reply(event.stanza, "cancel", "not-allowed", refusal, event.room.jid));
	return true;
end, 98);

-- Every new session in a room (a first join, or another device joining the
-- same occupant).
module:hook("muc-occupant-session-new", function (event)
	track(event.room, event.jid, event.occupant.bare_jid);
end, -10);

-- muc-occupant-left also fires for the old nick of a nick change (and no
-- join follows for the new one): a session stops being watched only if,
-- once this presence is handled, it is in the room under no nick at all.
module:hook("muc-occupant-left", function (event)
	local room = event.room;
	local real_jids = {};
	for real_jid in event.occupant:each_session() do real_jids[#real_jids + 1] = real_jid; end
	module:add_timer(0, function ()
		for _, real_jid in ipairs(real_jids) do
			if not room:get_occupant_by_real_jid(real_jid) then
				resync:untrack(room.jid, real_jid);
			end
		end
	end);
end);

-- Occupants already in rooms when the module (re)loads are watched too.
do
	local m = muc();
	if m and m.live_rooms then
		for room in m.live_rooms() do
			for _, occupant in room:each_occupant() do
				for real_jid in occupant:each_session() do
					track(room, real_jid, occupant.bare_jid);
				end
			end
		end
		module:log("debug", "watching %d sessions already in rooms", resync:sessions());
	end
end

function module.unload()
	watcher:close();
	resync:close();
end
