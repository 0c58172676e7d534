-- Test-only (never installed): reload, unload or load a module of this host
-- at runtime, the way an admin does it from prosodyctl shell
-- (module:reload / module:unload / module:load). Load on the VirtualHost;
-- with http_default_host = "localhost" it answers at
--   POST /test_reload/reload?module=<name>   (default auth_matrix_user_verification)
--   POST /test_reload/unload?module=<name>
--   POST /test_reload/load?module=<name>
--   GET  /test_reload/status?module=<name>
-- with JSON { ok, error, loaded }, and for the soak (tests/soak/soak.mjs)
--   GET  /test_reload/memory[?collect=1]
-- with JSON { lua_kb, lua_kb_after_gc, rooms = { [muc host] = live rooms } }.

local json = require "util.json";
local formdecode = require "util.http".formdecode;
local modulemanager = require "core.modulemanager";

local host = module.host;
local default_module = "auth_matrix_user_verification";

module:depends("http");

local function handler(action)
	return function (event)
		local query = event.request.url.query and formdecode(event.request.url.query) or {};
		local name = type(query) == "table" and query.module or default_module;
		local ok, err = true, nil;
		if action ~= "status" then
			module:log("info", "test_reload: %s %s on %s", action, name, host);
			ok, err = modulemanager[action](host, name);
		end
		event.response.headers.content_type = "application/json";
		event.response.status_code = ok and 200 or 409;
		return json.encode({
			ok = ok and true or false;
			error = (not ok and err ~= nil) and tostring(err) or json.null;
			loaded = modulemanager.is_loaded(host, name) and true or false;
		});
	end;
end

local function memory(event)
	local query = event.request.url.query and formdecode(event.request.url.query) or {};
	local out = { lua_kb = collectgarbage("count"); rooms = {} };
	if type(query) == "table" and query.collect then
		collectgarbage("collect");
		out.lua_kb_after_gc = collectgarbage("count");
	end
	for name, h in pairs(prosody.hosts) do
		local muc = h.modules and h.modules.muc;
		if muc and muc.live_rooms then
			local n = 0;
			for _ in muc.live_rooms() do n = n + 1; end
			out.rooms[name] = n;
		end
	end
	event.response.headers.content_type = "application/json";
	return json.encode(out);
end

module:provides("http", {
	route = {
		["POST /reload"] = handler("reload");
		["POST /unload"] = handler("unload");
		["POST /load"] = handler("load");
		["GET /status"] = handler("status");
		["GET /memory"] = memory;
	};
});
