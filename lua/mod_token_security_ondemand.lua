-- mod_token_security_ondemand: a token turns a room's lobby on or off and
-- sets or clears its password; security_bypass users skip both.
-- Adapter only: every decision is made by jitsi_security (Rust).
-- Load on the MUC component, beside jitsi-meet's persistent_lobby.

local native = require "jitsi_security";
local st = require "util.stanza";
local jid_node = require "util.jid".node;

-- Options: their names, types, ranges and defaults live in jitsi_security
-- (src/options.rs), read from this component or, failing that, from its
-- VirtualHost. With a wrong type: one error line and no hooks, so nothing
-- is granted (fail closed).
local security, config_error = native.new_security(module.host, (native.read_options(module)));
if not security then
	module:log("error", "%s; no token grants anything here (bypass, lobby, password) until it is fixed", config_error);
	return;
end

local MUC_NS = "http://jabber.org/protocol/muc";

local function room_facts(room, bare_jid)
	return {
		room_node = jid_node(room.jid) or "";
		lobby_enabled = room._data.lobbyroom ~= nil;
		password = room:get_password();
		affiliation = room:get_affiliation(bare_jid);
	};
end

local function set_join_password(stanza, password)
	local x = stanza:get_child("x", MUC_NS);
	if not x then
		x = st.stanza("x", { xmlns = MUC_NS });
		stanza:add_direct_child(x);
	end
	x:remove_children("password", MUC_NS);
	x:add_direct_child(st.stanza("password", { xmlns = MUC_NS }):text(password));
end

-- After token verification (99), before the lobby gate (-4), members-only
-- (-5) and the password check (-20).
module:hook("muc-occupant-pre-join", function (event)
	local room, occupant, origin = event.room, event.occupant, event.origin;
	local plan = security:pre_join(origin, room_facts(room, occupant.bare_jid));
	if plan.inject_password then
		-- Prosody filters the MUC <x/> out of the presence it stores and
		-- broadcasts, so the injected password is never echoed.
		set_join_password(event.stanza, plan.inject_password);
	end
	if plan.grant_member then
		room:set_affiliation(true, occupant.bare_jid, "member");
		occupant.role = "participant";
	end
	module:log("debug", "pre-join of %s to %s: %s", occupant.bare_jid, room.jid, plan.why);
end, -2);

module:hook("muc-occupant-joined", function (event)
	local room, occupant, origin = event.room, event.occupant, event.origin;
	local plan = security:joined(origin, room_facts(room, occupant.bare_jid));
	if plan.lobby == "create" then
		module:log("info", "enabling the lobby of %s (token of %s)", room.jid, occupant.bare_jid);
		prosody.events.fire_event("create-persistent-lobby-room", { room = room, skip_display_name_check = true });
	elseif plan.lobby == "destroy" then
		module:log("info", "disabling the lobby of %s (token of %s)", room.jid, occupant.bare_jid);
		room:set_members_only(false);
		prosody.events.fire_event("destroy-lobby-room", { room = room, newjid = room.jid });
	end
	if plan.set_password then
		module:log("info", "%s the password of %s (token of %s)",
			plan.set_password == "" and "clearing" or "setting", room.jid, occupant.bare_jid);
		room:set_password(plan.set_password);
	end
	module:log("debug", "joined %s to %s: %s", occupant.bare_jid, room.jid, plan.why);
end);
