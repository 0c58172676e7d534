-- Test-only stand-in for jitsi-meet-prosody's persistent lobby handling
-- (docs/design.md, "Lobby, password, owners"). Load on the MUC component that has `lobby_muc` set.
--
--   create-persistent-lobby-room {room}: room becomes members-only, a room
--     <node>@<lobby_muc> is created on the lobby component and its jid is
--     stored in room._data.lobbyroom.
--   destroy-lobby-room {room, newjid}: that lobby room is destroyed and
--     room._data.lobbyroom cleared.
-- Rooms of other hosts are ignored.

local jid_split = require "util.jid".split;

local lobby_muc = module:get_option_string("lobby_muc");
if not lobby_muc then
	module:log("error", "lobby_muc is not set; mod_test_lobby does nothing");
	return;
end

local function lobby_component()
	local host = prosody.hosts[lobby_muc];
	return host and host.modules and host.modules.muc;
end

local function ours(room)
	if not room or not room.jid then return false; end
	local _, host = jid_split(room.jid);
	return host == module.host;
end

module:hook_global("create-persistent-lobby-room", function (event)
	local room = event.room;
	if not ours(room) then return; end
	local muc = lobby_component();
	if not muc then
		module:log("error", "no MUC component on %s", lobby_muc);
		return;
	end
	room:set_members_only(true);
	local node = jid_split(room.jid);
	local lobby_jid = node .. "@" .. lobby_muc;
	local lobby_room = muc.get_room_from_jid(lobby_jid) or muc.create_room(lobby_jid);
	if not lobby_room then
		module:log("error", "could not create lobby room %s", lobby_jid);
		return;
	end
	room._data.lobbyroom = lobby_jid;
	module:log("debug", "lobby %s created for %s", lobby_jid, room.jid);
end);

module:hook_global("destroy-lobby-room", function (event)
	local room = event.room;
	if not ours(room) then return; end
	local lobby_jid = room._data.lobbyroom;
	if not lobby_jid then return; end
	local muc = lobby_component();
	local lobby_room = muc and muc.get_room_from_jid(lobby_jid);
	if lobby_room then
		lobby_room:destroy(event.newjid, "Lobby disabled");
	end
	room._data.lobbyroom = nil;
	module:log("debug", "lobby %s destroyed for %s", lobby_jid, room.jid);
end);
