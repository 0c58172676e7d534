-- mod_token_verification: the room door. A login proves something about one
-- room; every MUC join (and room creation) is checked against that proof.
-- A luarocks-free replacement for jitsi-meet's module of the same name, with
-- its options and session fields (docs/design.md, "Room doors").
-- Load on the conference and breakout components (the lobby component too,
-- if you like). Adapter only: every decision is made by jitsi_security.

local native = require "jitsi_security";
local st = require "util.stanza";
local jid = require "util.jid";
local config = require "core.configmanager";

local host = module.host;
-- Options and logins belong to the VirtualHost: this host minus its first
-- label (conference.meet.example.com -> meet.example.com), as jitsi's.
local parent_host = host:gsub("^[^.]+%.", "");

-- Options: their names, types, ranges and defaults live in jitsi_security
-- (src/options.rs). Read from this component or, failing that, from its
-- VirtualHost, as jitsi-meet's module reads them.
local door, door_error = native.new_door(host, (native.read_options(module)));
if door then
	module:log("info", "%s", door:describe());
else
	module:log("error", "%s; every join will be refused until it is fixed", door_error);
end

-- Is this JID a server admin? Prosody 13 has roles (its legacy is_admin()
-- logs a traceback on every call); 0.12 has is_admin().
local is_admin = native.admin_check(module, ":skip-room-door");

-- Breakout rooms are opened by their main room, which jitsi-meet's
-- mod_muc_breakout_rooms (on the VirtualHost) knows.
local breakout_host = config.get(parent_host, "breakout_rooms_muc") or ("breakout." .. parent_host);
local is_breakout_component = host == breakout_host;
local function main_room_node(room_jid)
	local vhost = prosody.hosts[parent_host];
	local breakout = vhost and vhost.modules.muc_breakout_rooms;
	local get_main_room_jid = breakout and rawget(breakout, "get_main_room_jid");
	if type(get_main_room_jid) ~= "function" then return nil; end
	local ok, main_jid = pcall(get_main_room_jid, room_jid);
	if not ok or type(main_jid) ~= "string" or main_jid == room_jid then return nil; end
	return jid.node(main_jid), main_jid;
end

local measure_success = module:measure("success", "counter");
local measure_fail = module:measure("fail", "counter");
local count_refusal = native.counter(module, "refused_");

local function facts(origin, stanza, room_jid)
	local main_node, main_jid;
	if is_breakout_component then main_node, main_jid = main_room_node(room_jid); end
	local user_jid = stanza.attr.from or "";
	return {
		room_node = jid.node(room_jid) or "";
		breakout = is_breakout_component;
		main_room_node = main_node;
		user_jid = user_jid;
		is_admin = is_admin(user_jid) == true;
		from_s2s = origin.type == "s2sin";
		other_host = origin.host ~= parent_host;
	}, main_jid;
end

-- true when the join may go on; otherwise the error is sent.
local function verify(origin, stanza, room_jid)
	if not door then
		module:log("info", "REQUEST_COMPLETE reason:config_error session:%s", origin.id);
		count_refusal("config_error");
		measure_fail(1);
		origin.send(st.error_reply(stanza, "cancel", "not-allowed", "the room door is misconfigured"));
		return false;
	end
	local join_facts, main_jid = facts(origin, stanza, room_jid);
	local verdict = door:check(join_facts, origin);
	if verdict.lapse_grants then
		module:log("info", "token of session %s has expired: its grants lapse", origin.id);
		door:lapse(origin);
	end
	if not verdict.open then
		module:log("info", "REQUEST_COMPLETE reason:%s session:%s %s", verdict.code, origin.id, verdict.text);
		count_refusal(verdict.code);
		measure_fail(1);
		origin.send(st.error_reply(stanza, "cancel", "not-allowed", verdict.text));
		return false;
	end
	module:log("debug", "session %s may enter: %s", origin.id, verdict.code);
	measure_success(1);
	if verdict.code == "ok" or verdict.code == "empty_token_allowed" then
		-- The conference this session's claims must keep covering.
		origin.jitsi_meet_verified_room = main_jid or jid.bare(room_jid);
	end
	return true;
end

-- Priority 99, before everything else (the lobby, passwords, power sync).
module:hook("muc-room-pre-create", function (event)
	local origin, stanza = event.origin, event.stanza;
	if not origin or not stanza then return; end -- created by the server itself
	if not verify(origin, stanza, event.room.jid) then return true; end
end, 99);

module:hook("muc-occupant-pre-join", function (event)
	local origin, stanza = event.origin, event.stanza;
	if not origin or not stanza then return; end
	if not verify(origin, stanza, event.room.jid) then return true; end
end, 99);

-- A resumed session (XEP-0198) whose token auth brought new claims: do they
-- still cover the conference it was let into? (jitsi-meet's event.)
module:hook_global("jitsi-verify-session-rooms", function (event)
	local session = event.session;
	local room_jid = session and session.jitsi_meet_verified_room;
	if not door or type(room_jid) ~= "string" or jid.host(room_jid) ~= host then return; end
	if not prosody.hosts[host].modules.muc.get_room_from_jid(room_jid) then return; end
	local verdict = door:check({
		room_node = jid.node(room_jid) or "";
		user_jid = session.full_jid or "";
		is_admin = session.full_jid ~= nil and is_admin(session.full_jid) == true;
		other_host = session.host ~= parent_host;
	}, session);
	if not verdict.open then
		module:log("info", "REQUEST_COMPLETE reason:%s session:%s %s (claims refreshed)", verdict.code, session.id, verdict.text);
		count_refusal(verdict.code);
		measure_fail(1);
		return { res = false; room = room_jid; error = "not-allowed"; reason = verdict.text };
	end
	measure_success(1);
end);

-- token_verification_require_token_for_moderation: owner configuration
-- (muc#owner query sets) only from sessions that proved a room.
local function owner_query(event)
	local session, stanza = event.origin, event.stanza;
	if not door then return; end
	local from = stanza.attr.from or "";
	if door:may_configure(is_admin(from) == true, session) then return; end
	module:log("info", "REQUEST_COMPLETE reason:configure_refused session:%s", session.id);
	count_refusal("configure_refused");
	session.send(st.error_reply(stanza, "cancel", "not-allowed", native.configure_refused_text));
	return true;
end
module:hook("iq-set/bare/http://jabber.org/protocol/muc#owner:query", owner_query, -1);
module:hook("iq-set/host/http://jabber.org/protocol/muc#owner:query", owner_query, -1);
