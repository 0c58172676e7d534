-- mod_matrix_power_sync: only users with enough power in the Matrix room
-- (as UVS reported at login, for the room this Jitsi room stands for) and
-- server admins are owners; everyone else who joins is a member, and owner
-- grants to anyone else are refused. Decisions live in jitsi_security.
-- Load on the MUC component; needs mod_auth_matrix_user_verification with
-- uvs_sync_power_levels = true on the VirtualHost.

local native = require "jitsi_security";
local jid_node = require "util.jid".node;
local jid_bare = require "util.jid".bare;

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

local function session_claim(session)
	local matrix = session.jitsi_meet_context_matrix;
	return {
		is_owner = session.auth_matrix_user_verification_is_owner == true;
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
