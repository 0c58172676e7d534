-- Test-only: read MUC room state over HTTP, as JSON.
-- Load on the VirtualHost; with http_default_host = "localhost" it answers at
--   GET  /test_observer/room?jid=<room jid>
--   POST /test_observer/lobby?jid=<room jid>&action=create|destroy
-- The second fires the lobby events the way mod_token_security_ondemand does,
-- so the harness can check mod_test_lobby on its own.
--   POST /test_observer/reload?module=<name>
-- reloads a module of the MUC component at runtime, as an admin does from
-- prosodyctl shell (module:reload), and answers { ok, error, loaded }.
--   POST /test_observer/veto?jid=<bare jid>&on=1|0
-- while on, refuses every affiliation change of that JID in the MUC
-- (muc-pre-set-affiliation, as another module could), to test what a
-- refused change does.
--   POST /test_observer/breakout?jid=<main room jid>
-- links a new breakout room <uuid>@<test_observer_breakout_muc> to that
-- main room the way jitsi-meet's mod_muc_breakout_rooms does
-- (main_room._data.breakout_rooms[breakout jid] = subject) and answers
-- { breakout = jid };
--   GET /test_observer/breakout_room?jid=<breakout room jid>
-- answers a breakout room's state, as /room does for the MUC.

local json = require "util.json";
local array = require "util.array";
local jid_split = require "util.jid".split;
local jid_resource = require "util.jid".resource;
local formdecode = require "util.http".formdecode;

local muc_host = module:get_option_string("test_observer_muc", "conference.localhost");
local lobby_host = module:get_option_string("test_observer_lobby_muc", "lobby.localhost");

module:depends("http");

local function muc_module(name)
	local host = prosody.hosts[name or muc_host];
	return host and host.modules and host.modules.muc;
end

local function lobby_exists(lobby_jid)
	local lobby = lobby_jid and muc_module(lobby_host);
	return lobby and lobby.get_room_from_jid(lobby_jid) ~= nil or false;
end

local function reply(event, code, body)
	event.response.headers.content_type = "application/json";
	event.response.status_code = code;
	return json.encode(body);
end

local function find_room(event)
	local query = event.request.url.query and formdecode(event.request.url.query) or {};
	local room_jid = query.jid;
	if type(room_jid) ~= "string" or room_jid == "" then
		return nil, reply(event, 400, { error = "missing jid" });
	end
	local muc = muc_module();
	if not muc then
		return nil, reply(event, 500, { error = "no muc on " .. muc_host });
	end
	local _, host = jid_split(room_jid);
	if host ~= muc_host then
		return nil, reply(event, 400, { error = "not a room of " .. muc_host });
	end
	return muc.get_room_from_jid(room_jid), nil, query;
end

local function room_state(room)
	local affiliations = {};
	for jid, aff in room:each_affiliation() do
		affiliations[jid] = aff;
	end
	local occupants = array();
	for nick, occupant in room:each_occupant() do
		occupants:push({
			nick = jid_resource(nick) or nick;
			jid = occupant.bare_jid;
			role = occupant.role or json.null;
			affiliation = room:get_affiliation(occupant.bare_jid) or json.null;
		});
	end
	local password = room:get_password();
	return {
		exists = true;
		jid = room.jid;
		members_only = room:get_members_only() and true or false;
		password = (password ~= nil and password ~= "") and password or json.null;
		lobbyroom = room._data.lobbyroom or json.null;
		lobbyroom_exists = lobby_exists(room._data.lobbyroom);
		affiliations = affiliations;
		occupants = occupants;
	};
end

local function get_room(event)
	local room, err = find_room(event);
	if err then return err; end
	if not room then
		return reply(event, 200, { exists = false; affiliations = {}; occupants = array() });
	end
	return reply(event, 200, room_state(room));
end

local function post_lobby(event)
	local room, err, query = find_room(event);
	if err then return err; end
	if not room then return reply(event, 404, { error = "no such room" }); end
	if query.action == "create" then
		prosody.events.fire_event("create-persistent-lobby-room", { room = room; skip_display_name_check = true });
	elseif query.action == "destroy" then
		prosody.events.fire_event("destroy-lobby-room", { room = room; newjid = room.jid });
	else
		return reply(event, 400, { error = "action must be create or destroy" });
	end
	return reply(event, 200, room_state(room));
end

local function post_reload(event)
	local modulemanager = require "core.modulemanager";
	local query = event.request.url.query and formdecode(event.request.url.query) or {};
	local name = type(query) == "table" and query.module or nil;
	if type(name) ~= "string" or name == "" then
		return reply(event, 400, { error = "missing module" });
	end
	module:log("info", "test_observer: reloading %s on %s", name, muc_host);
	local ok, err = modulemanager.reload(muc_host, name);
	return reply(event, ok and 200 or 409, {
		ok = ok and true or false;
		error = (not ok and err ~= nil) and tostring(err) or json.null;
		loaded = modulemanager.is_loaded(muc_host, name) and true or false;
	});
end

local vetoed = {};
local veto_hooked = false;
local function post_veto(event)
	local query = event.request.url.query and formdecode(event.request.url.query) or {};
	local jid = type(query) == "table" and query.jid or nil;
	if type(jid) ~= "string" or jid == "" then
		return reply(event, 400, { error = "missing jid" });
	end
	if not veto_hooked then
		module:context(muc_host):hook("muc-pre-set-affiliation", function (e)
			if vetoed[require "util.jid".bare(e.jid)] then
				module:log("info", "test_observer: vetoing %s for %s", e.affiliation, e.jid);
				e.allowed = false;
			end
		end, 100);
		veto_hooked = true;
	end
	vetoed[jid] = query.on == "1" or nil;
	return reply(event, 200, { jid = jid; vetoed = vetoed[jid] == true });
end

local breakout_host = module:get_option_string("test_observer_breakout_muc", "breakout.localhost");

local function post_breakout(event)
	local room, err = find_room(event);
	if err then return err; end
	if not room then return reply(event, 404, { error = "no such room" }); end
	local breakout = require "util.uuid".generate() .. "@" .. breakout_host;
	room._data.breakout_rooms = room._data.breakout_rooms or {};
	room._data.breakout_rooms[breakout] = "test breakout";
	return reply(event, 200, { breakout = breakout });
end

local function get_breakout_room(event)
	local query = event.request.url.query and formdecode(event.request.url.query) or {};
	local room_jid = type(query) == "table" and query.jid or nil;
	local breakout_muc = muc_module(breakout_host);
	if type(room_jid) ~= "string" or not breakout_muc then
		return reply(event, 400, { error = "missing jid, or no muc on " .. breakout_host });
	end
	local room = breakout_muc.get_room_from_jid(room_jid);
	if not room then
		return reply(event, 200, { exists = false; affiliations = {}; occupants = array() });
	end
	return reply(event, 200, room_state(room));
end

module:provides("http", {
	route = {
		["GET /room"] = get_room;
		["POST /lobby"] = post_lobby;
		["POST /reload"] = post_reload;
		["POST /veto"] = post_veto;
		["POST /breakout"] = post_breakout;
		["GET /breakout_room"] = get_breakout_room;
	};
});
