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
-- (src/options.rs). A wrong type or range is one "configuration error:
-- <option> ..." line, and every login on this host is then refused with
-- config_error.
local raw_options, options = native.read_options(module);
local auth, auth_error = native.new_authenticator(raw_options);
local allow_empty_token = auth and options and options.allow_empty_token;
if auth then
	module:log("info", "%s", auth:describe());
else
	module:log("error", "every token login will be refused: %s", auth_error);
end

-- Metrics: one rate per REQUEST_COMPLETE reason code.
local count = native.counter(module, "login_");

-- Finished checks wake us through the native eventfd: each waiting login
-- is resumed from the fd callback.
local waiting = {};
local function resume_all(results)
	for _, result in ipairs(results) do
		local resume = waiting[result.id];
		waiting[result.id] = nil;
		if resume then
			local ok, err = pcall(resume, result);
			if not ok then module:log("error", "resuming a login failed: %s", err); end
		end
	end
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
-- (The fd stays the same for the module's life, forks included: the
-- native side starts its thread with the first request, and again in a
-- process forked by `prosody -D`.)
function module.unload()
	if watcher then watcher:close(); watcher = nil; end
	if auth then resume_all(auth:close()); end
end

-- Continue `runner` (the session's util.async runner, whose coroutine
-- waits in wait_for_answer) now. util.async's own waiter would hand the
-- rest of the session's work (its stream restart, its bind) to a 0-second
-- timer, and Prosody runs timers only once no socket is ready: during a
-- burst of logins every resumed session would sit until the burst is
-- over. This does what util.async does after a wait (runner_continue),
-- for this one login, without the timer.
local function continue_now(runner)
	local thread = runner.thread;
	local ok, state = coroutine.resume(thread);
	if not ok then
		local on_error = runner.watchers and runner.watchers.error;
		if on_error then pcall(on_error, runner, debug.traceback(thread, state)); end
		runner.thread = nil;
		runner.state = "ready";
		runner:run();
	elseif state == "ready" then
		runner.state = "ready";
		runner:run();
	end
	-- Otherwise the login waits for something else, whose waiter resumes it.
end

-- Pause this login (not the server) until waiter `id` is answered: by the
-- native side through the fd, or, should no answer come (a lost thread),
-- by this module's own timer after `timeout` seconds plus a margin.
local EXPIRE_MARGIN = 2;
local function wait_for_answer(session, id, timeout)
	local result, expiry;
	local thread, runner = coroutine.running(), session.thread;
	local own_runner = type(runner) == "table" and runner.thread == thread;
	local wait, done;
	if not own_runner then wait, done = async.waiter(); end
	local function answer(r)
		if result then return; end
		result = r;
		waiting[id] = nil;
		if expiry then timer.stop(expiry); expiry = nil; end
		if own_runner then continue_now(runner); else done(); end
	end
	waiting[id] = answer;
	local limit = (tonumber(timeout) or 5) + EXPIRE_MARGIN;
	expiry = timer.add_task(limit, function ()
		expiry = nil;
		if waiting[id] == answer and auth then answer(auth:expire(id, limit)[1]); end
	end);
	if own_runner then
		coroutine.yield("wait");
	else
		wait();
	end
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
			local done = wait_for_answer(session, result.pending, result.timeout);
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
