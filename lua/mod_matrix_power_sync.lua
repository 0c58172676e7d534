-- mod_matrix_power_sync: only users with enough power in the Matrix room
-- (as UVS reported at login, for the room this Jitsi room stands for) and
-- server admins are owners; everyone else who joins is a member, and owner
-- grants to anyone else are refused. Decisions live in jitsi_security.
-- Load on the MUC component; needs mod_auth_matrix_user_verification with
-- uvs_sync_power_levels = true on the VirtualHost.

local native = require "jitsi_security";
local jid_node = require "util.jid".node;
local jid_bare = require "util.jid".bare;
local server = require "net.server";
local config = require "core.configmanager";

local bare_sessions = prosody.bare_sessions;
local host = module.host;

-- Is this JID a server admin (of this component, as Prosody sees it)?
-- Prosody 13 has roles: our permission is granted to prosody:admin (and so
-- to prosody:operator), and admins may grant it to other roles with
-- add_permissions. Its legacy is_admin() logs a traceback on every call.
-- Prosody 0.12 has no module:could(); there is_admin() is the API.
local is_admin;
if module.could and module.default_permission then
	module:default_permission("prosody:admin", ":automatic-ownership");
	is_admin = function (bare_jid)
		return module:could(":automatic-ownership", bare_jid);
	end;
else
	local legacy_is_admin = require "core.usermanager".is_admin;
	is_admin = function (bare_jid)
		return legacy_is_admin(bare_jid, host);
	end;
end

-- Options: their names, types, ranges and defaults live in jitsi_security
-- (src/options.rs). Read from this component or, failing that, from the
-- VirtualHost users log in on (matrix_auth_host, by default this host
-- minus its first label: conference.meet.example.com -> meet.example.com).
-- With a wrong type or range: one error line, live membership off, and no
-- Matrix power makes anyone owner (fail closed; server admins stay owners).
local option_names, inherited = native.option_names(module.name);
local raw_options = {};
for _, name in ipairs(option_names) do
	raw_options[name] = module:get_option(name);
end
local auth_host = raw_options.matrix_auth_host;
if type(auth_host) ~= "string" then auth_host = (host:gsub("^[^.]+%.", "")); end
for _, name in ipairs(option_names) do
	if raw_options[name] == nil and inherited[name] then
		raw_options[name] = config.get(auth_host, name);
	end
end
local options, config_error = native.options(module.name, raw_options);
if not options then
	module:log("error", "%s; no Matrix power makes anyone owner and live Matrix membership is off until it is fixed",
		config_error);
end

local function session_claim(session)
	local matrix = session.jitsi_meet_context_matrix;
	return {
		is_owner = options ~= nil and session.auth_matrix_user_verification_is_owner == true;
		room_id = type(matrix) == "table" and matrix.room_id or nil;
	};
end

local function owner_input(room, bare_jid, sessions)
	return {
		room_node = jid_node(room.jid) or "";
		is_admin = is_admin(bare_jid) == true;
		sessions = sessions;
		affiliation = room:get_affiliation(bare_jid);
	};
end

-- Every owner grant, whoever makes it (Prosody's creator rule, jicofo's
-- auto-owner, another occupant), passes through here.
module:hook("muc-pre-set-affiliation", function (event)
	if event.affiliation ~= "owner" then return; end
	local bare_jid = jid_bare(event.jid);
	local sessions = {};
	local user = bare_sessions[bare_jid];
	if user and user.sessions then
		for _, session in pairs(user.sessions) do
			sessions[#sessions + 1] = session_claim(session);
		end
	end
	if not native.owner_allow_grant(owner_input(event.room, bare_jid, sessions), event.affiliation) then
		module:log("info", "refusing owner of %s to %s: no Matrix power in this room", event.room.jid, bare_jid);
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
-- joined are kicked, and with uvs_sync_power_levels owners follow power.
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

local function apply(action)
	local room = prosody.hosts[host].modules.muc.get_room_from_jid(action.room);
	if action.kind == "kick" then
		if room and room:get_occupant_by_nick(action.occupant) then
			module:log("info", "removing %s (Matrix user %s) from %s: %s", action.occupant, action.user_id, action.room, action.reason);
			room:set_role(true, action.occupant, "none", action.reason);
			measure_kick();
		end
		resync:untrack(action.room, action.occupant);
	elseif action.kind == "owner" then
		if not room then return; end
		local sessions = {};
		local user = bare_sessions[action.bare_jid];
		if user and user.sessions then
			for _, session in pairs(user.sessions) do
				local matrix = session.jitsi_meet_context_matrix;
				if type(matrix) == "table" and matrix.room_id == action.matrix_room then
					session.auth_matrix_user_verification_is_owner = action.owner;
				end
				sessions[#sessions + 1] = session_claim(session);
			end
		end
		local decision = native.owner_on_join(owner_input(room, action.bare_jid, sessions));
		if decision.set_affiliation then
			module:log("info", "%s becomes %s of %s after a Matrix power change: %s", action.bare_jid,
				decision.set_affiliation, action.room, decision.why);
			room:set_affiliation(true, action.bare_jid, decision.set_affiliation);
			measure_owner();
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

local interval = options.matrix_resync_interval;
module:add_timer(math.min(1, interval / 4), function ()
	resync:tick();
	return math.min(1, interval / 4);
end);

module:hook("muc-occupant-joined", function (event)
	local room, occupant, origin = event.room, event.occupant, event.origin;
	local matrix = origin and origin.jitsi_meet_context_matrix;
	if type(matrix) ~= "table" or type(matrix.room_id) ~= "string" or type(origin.matrix_user_id) ~= "string" then
		return;
	end
	if resync:track(room.jid, jid_node(room.jid) or "", occupant.nick, occupant.bare_jid, matrix.room_id, origin.matrix_user_id) then
		module:log("debug", "watching Matrix membership of %s in %s", occupant.nick, room.jid);
	end
end, -10);

module:hook("muc-occupant-left", function (event)
	resync:untrack(event.room.jid, event.occupant.nick);
end);

function module.unload()
	watcher:close();
	resync:close();
end
