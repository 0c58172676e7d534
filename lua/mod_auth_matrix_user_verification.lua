-- mod_auth_matrix_user_verification: token login over SASL ANONYMOUS for
-- Jitsi Meet. Matrix tokens (Element's Jitsi widget) are checked against
-- the Matrix User Verification Service or the homeserver itself; standard
-- Jitsi tokens are verified natively when a key is configured (hybrid).
-- Every check lives in jitsi_security (Rust); Matrix checks run on its
-- background thread and this file waits for them with util.async, so the
-- event loop never blocks.

local native = require "jitsi_security";
local async = require "util.async";
local server = require "net.server";
local timer = require "util.timer";
local sasl = require "util.sasl";
local new_sasl = sasl.new;
local formdecode = require "util.http".formdecode;
local generate_uuid = require "util.uuid".generate;

local host = module.host;
local fire_global = prosody.events.fire_event;
local full_sessions = prosody.full_sessions;

-- Options: their names, types, ranges and defaults live in jitsi_security
-- (src/options.rs); we hand over the raw config values. A wrong type or
-- range is one "configuration error: <option> ..." line, and every login
-- on this host is then refused with config_error.
local raw_options = {};
for _, name in ipairs(native.option_names(module.name)) do
	raw_options[name] = module:get_option(name);
end
local auth, auth_error = native.new_authenticator(raw_options);
local allow_empty_token = auth and native.options(module.name, raw_options).allow_empty_token;
if auth then
	module:log("info", "%s", auth:describe());
else
	module:log("error", "every token login will be refused: %s", auth_error);
end

-- Metrics: one rate per REQUEST_COMPLETE reason code.
local measures = {};
local function count(code)
	local measure = measures[code];
	if not measure then
		measure = module:measure("login_" .. code, "rate");
		measures[code] = measure;
	end
	measure();
end

-- When a login that waited is resumed, util.async hands the rest of that
-- session's work (its stream restart, its bind) to a 0-second timer, and
-- Prosody's loop runs timers only once no socket is ready: during a burst
-- of logins every resumed session would sit until the burst is over. While
-- we resume our own waiters, that continuation runs at once (util.async's
-- own default); everything else keeps Prosody's timer. The flag lives on
-- the shared native table so that every host's copy of this module sees it.
native.resuming = native.resuming or 0;
local function next_tick(f)
	if native.resuming > 0 then return f(); end
	return timer.add_task(0, f);
end
async.set_nexttick(next_tick);

-- Finished Matrix checks wake us through the native eventfd.
local waiting = {};
local function resume_all(results)
	native.resuming = native.resuming + 1;
	for _, result in ipairs(results) do
		local resume = waiting[result.id];
		waiting[result.id] = nil;
		if resume then
			local ok, err = pcall(resume, result);
			if not ok then module:log("error", "resuming a login failed: %s", err); end
		end
	end
	native.resuming = native.resuming - 1;
end
local watcher;
if auth and auth:fd() then
	watcher = server.watchfd(auth:fd(), function ()
		resume_all(auth:drain());
	end);
end

-- Periodic native work (refreshing cache_keys_url) and its log lines.
if auth then
	local function tick()
		for _, note in ipairs(auth:tick()) do
			module:log(note[1], "%s", note[2]);
		end
		return 5;
	end
	module:add_timer(0, tick);
end

-- Unload and reload: stop watching, then answer every waiting login; the
-- native side stops its thread without waiting for it and closes the fd.
function module.unload()
	if watcher then watcher:close(); watcher = nil; end
	if auth then resume_all(auth:close()); end
end

-- Pause this login (not the server) until its Matrix check `id` is done.
local function wait_for_uvs(id)
	local wait, done = async.waiter();
	local result;
	waiting[id] = function (r) result = r; done(); end;
	wait();
	return result;
end

-- The connection's query string and headers: token, room, resumption id.
local function init_session(event)
	local session, request = event.session, event.request;
	local query = request.url.query;
	local params = query and formdecode(query) or {};
	if type(params) ~= "table" then params = {}; end
	session.auth_token = native.token_from(params.token, request.headers.authorization);
	session.jitsi_room = params.room;
	session.jitsi_web_query_room = params.room;
	session.jitsi_web_query_prefix = params.prefix or "";
	session.previd = params.previd;
end
module:hook_global("websocket-session", init_session);
module:hook_global("bosh-session", init_session);

-- Check the session's token (locally, then with UVS for Matrix tokens)
-- and copy the resulting fields onto it. Returns true or false, condition, text.
local function verify_token(session)
	if not auth then
		return false, "temporary-auth-failure", auth_error;
	end
	local result, text, condition, code = auth:login(session.auth_token, session.jitsi_room, session.public_key);
	if result and result.pending then
		if not async.ready() then
			waiting[result.pending] = function () end; -- drop the answer when it comes
			result, text, condition, code = nil, "cannot wait for UVS outside an async context",
				"temporary-auth-failure", "invalid_response";
		else
			local done = wait_for_uvs(result.pending);
			module:log("debug", "Matrix check for session %s: %s", session.id, done.detail);
			if done.fields then
				result = done;
			else
				result, text, condition, code = nil, done.text, done.condition, done.code;
			end
		end
	end
	if not result then
		module:log("info", "REQUEST_COMPLETE reason:%s session:%s %s", code, session.id, text);
		count(code);
		return false, condition, text;
	end
	for field, value in pairs(result.fields) do
		session[field] = value;
	end
	module:log("info", "REQUEST_COMPLETE reason:ok session:%s", session.id);
	count("ok");
	if result.claims then
		fire_global("jitsi-authentication-token-verified", { session = session, claims = result.claims });
	end
	return true;
end

local function authenticate(sasl_handler, session)
	if not auth then
		-- The configuration is unusable (logged at load): refuse every login.
		module:log("info", "REQUEST_COMPLETE reason:config_error session:%s %s", session.id, auth_error);
		count("config_error");
		return false, "temporary-auth-failure", auth_error;
	end
	if session.auth_token == nil then
		if not allow_empty_token then
			return false, "not-authorized", "no token was presented";
		end
		-- A token-less guest skips only the verification (as jitsi's does).
		module:log("debug", "session %s logs in without a token", session.id);
	else
		local pre = fire_global("pre-jitsi-authentication-fetch-key", session);
		if type(pre) == "table" and pre.res == false then
			return false, pre.error or "not-authorized", pre.reason;
		end

		local ok, condition, text = verify_token(session);
		if not ok then
			return false, condition, text;
		end
	end

	if fire_global("jitsi-access-ban-check", session) == false then
		return false, "not-allowed", "user is banned";
	end

	local custom_username = fire_global("pre-jitsi-authentication", session);
	if type(custom_username) == "string" then
		sasl_handler.username = custom_username;
	elseif session.previd ~= nil then
		for _, s in pairs(full_sessions) do
			if s.resumption_token == session.previd then
				sasl_handler.username = s.username;
				break;
			end
		end
	end
	local post = fire_global("post-jitsi-authentication", session);
	if type(post) == "table" and post.res == false then
		return false, post.error or "not-authorized", post.reason;
	end
	return true;
end

-- Our ANONYMOUS (registered for every host, as Jitsi's token auth does):
-- a uuid username unless the profile chose one, failures carry a condition
-- and a text.
local function anonymous(self, message) -- luacheck: ignore 212/message
	local username = generate_uuid();
	local ok, condition, text = self.profile.anonymous(self, username, self.realm);
	if ok == true then
		if self.username == nil then self.username = username; end
		return "success";
	end
	return "failure", condition or "not-authorized", text or "authentication refused";
end
sasl.registerMechanism("ANONYMOUS", { "anonymous" }, anonymous);

local provider = {};

-- Anonymous logins only: every password function refuses.
local function password_refused()
	return nil, "Password based auth not supported";
end
provider.test_password = password_refused;
provider.get_password = password_refused;
provider.set_password = password_refused;
provider.user_exists = password_refused;
provider.create_user = password_refused;

function provider.users()
	return next, {}, nil;
end

function provider.get_sasl_handler(session)
	return new_sasl(host, {
		anonymous = function (sasl_handler)
			local ok, condition, text = authenticate(sasl_handler, session);
			if not ok then
				module:log("info", "login refused for session %s (%s): %s", session.id, condition, text);
				return false, condition, text;
			end
			return true;
		end;
	});
end

module:provides("auth", provider);
