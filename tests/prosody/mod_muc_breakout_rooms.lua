-- Test-only (never installed) stand-in for jitsi-meet's mod_muc_breakout_rooms,
-- which no package registry has. It keeps the same contract, nothing more
-- (docs/design.md, "Room doors"; issue 15 item 1), so that the door can
-- be tested on breakout rooms. Named like jitsi's so that it loads as
-- `muc_breakout_rooms`, where the door looks for it.
--
-- Load on the VirtualHost:
--   VirtualHost "localhost"
--       modules_enabled = { "muc_breakout_rooms" }
--       breakout_rooms_muc = "breakout.localhost"
--       main_muc = "conference.localhost"
--
-- Contract:
--   main_room._data.breakout_rooms[breakout_jid] = subject  (the main room link)
--   get_main_room_jid(room_jid), a module global, read by others through
--     prosody.hosts[<vhost>].modules.muc_breakout_rooms.get_main_room_jid:
--     the room jid itself for a room of main_muc, the main room's jid for a
--     known breakout room, nil otherwise.
--   On breakout_rooms_muc, muc-room-pre-create of an unknown breakout room is
--     refused (not-allowed), after the room door (priority 99).
-- Creating a breakout room (test-only shape): a moderator of a main room sends
--   <message to='<vhost>'><breakout_rooms xmlns='http://jitsi.org/protocol/breakout_rooms'
--     type='features/breakout-rooms/add' subject='x'/></message>
-- and gets back a message with
--   <breakout_rooms xmlns=... type='features/breakout-rooms/added' jid='<uuid>@<breakout_rooms_muc>'
--     main='<main room jid>'/>
-- or an error message (not-allowed: not a moderator of any main room; conflict:
-- a moderator of several; bad-request: another type).

local st = require "util.stanza";
local jid = require "util.jid";
local uuid = require "util.uuid".generate;

local NS = "http://jitsi.org/protocol/breakout_rooms";
local ADD = "features/breakout-rooms/add";
local ADDED = "features/breakout-rooms/added";

local breakout_muc = module:get_option_string("breakout_rooms_muc");
local main_muc = module:get_option_string("main_muc");
if not breakout_muc or not main_muc then
	module:log("error", "breakout_rooms_muc and main_muc must be set; mod_muc_breakout_rooms does nothing");
	return;
end

local function muc_of(host)
	local h = prosody.hosts[host];
	return h and h.modules and h.modules.muc;
end

-- breakout room jid -> main room jid (the reverse of _data.breakout_rooms).
local main_of = {};

local function get_main_room_jid(room_jid)
	if type(room_jid) ~= "string" then return nil; end
	local bare = jid.prep(jid.bare(room_jid));
	local node, host = jid.split(bare);
	if not node then return nil; end
	if host == main_muc then return bare; end
	if host ~= breakout_muc then return nil; end
	local main_jid = main_of[bare];
	local muc = main_jid and muc_of(main_muc);
	local main_room = muc and muc.get_room_from_jid(main_jid);
	local links = main_room and main_room._data.breakout_rooms;
	if links and links[bare] ~= nil then return main_jid; end
	return nil;
end
-- A module global, as jitsi's module exposes its helpers.
module.environment.get_main_room_jid = get_main_room_jid;

-- The only main room where `full_jid` is a moderator.
local function moderated_room(full_jid)
	local muc = muc_of(main_muc);
	if not muc then return nil, "cancel", "service-unavailable", "no MUC on " .. main_muc; end
	local found;
	for room in muc.live_rooms() do
		local occupant = room:get_occupant_by_real_jid(full_jid);
		if occupant and occupant.role == "moderator" then
			if found then return nil, "cancel", "conflict", "moderator of several main rooms"; end
			found = room;
		end
	end
	if not found then return nil, "cancel", "not-allowed", "not a moderator of a main room"; end
	return found;
end

module:hook("message/host", function (event)
	local origin, stanza = event.origin, event.stanza;
	local request = stanza:get_child("breakout_rooms", NS);
	if not request then return; end
	if request.attr.type ~= ADD then
		origin.send(st.error_reply(stanza, "modify", "bad-request", "only " .. ADD .. " is supported"));
		return true;
	end
	local main_room, err_type, condition, text = moderated_room(stanza.attr.from);
	if not main_room then
		module:log("debug", "breakout room refused to %s: %s", stanza.attr.from, text);
		origin.send(st.error_reply(stanza, err_type, condition, text));
		return true;
	end
	local breakout_jid = uuid() .. "@" .. breakout_muc;
	main_room._data.breakout_rooms = main_room._data.breakout_rooms or {};
	main_room._data.breakout_rooms[breakout_jid] = request.attr.subject or "";
	main_of[breakout_jid] = main_room.jid;
	module:log("debug", "breakout room %s of %s", breakout_jid, main_room.jid);
	origin.send(st.message({ to = stanza.attr.from; from = module.host; id = stanza.attr.id })
		:tag("breakout_rooms", { xmlns = NS; type = ADDED; jid = breakout_jid; main = main_room.jid }));
	return true;
end);

-- Rooms of the breakout component exist only as breakout rooms of a main room.
local function refuse_unknown(event)
	if get_main_room_jid(event.room.jid) then return; end
	module:log("debug", "refusing to create unknown breakout room %s", event.room.jid);
	event.origin.send(st.error_reply(event.stanza, "cancel", "not-allowed", "unknown breakout room"));
	return true;
end

local function hook_breakout_host()
	module:context(breakout_muc):hook("muc-room-pre-create", refuse_unknown, 50);
end
if prosody.hosts[breakout_muc] then
	hook_breakout_host();
else
	module:hook_global("host-activated", function (host)
		if host == breakout_muc then hook_breakout_host(); end
	end);
end
