-- mod_auth_matrix_user_verification: token login over SASL ANONYMOUS for
-- Jitsi Meet. Standard Jitsi tokens are verified natively (signature pinned
-- by configuration); every check lives in jitsi_security (Rust). This file
-- only moves values between Prosody and the native module.

local native = require "jitsi_security";
local sasl = require "util.sasl";
local new_sasl = sasl.new;
local formdecode = require "util.http".formdecode;
local generate_uuid = require "util.uuid".generate;

local host = module.host;
local fire_global = prosody.events.fire_event;
local full_sessions = prosody.full_sessions;

local app_id = module:get_option_string("app_id");
local allow_empty_token = module:get_option_boolean("allow_empty_token", false);
local app_secret = module:get_option_string("app_secret");
local public_key_file = module:get_option_string("jwt_public_key_file");

-- Standard tokens: verified when a key is configured, refused otherwise.
local verifier, verifier_error;
if app_secret or public_key_file then
	verifier, verifier_error = native.new_verifier({
		app_id = app_id;
		app_secret = app_secret;
		jwt_public_key_file = public_key_file;
		signature_algorithm = module:get_option_string("signature_algorithm");
		asap_accepted_issuers = module:get_option_array("asap_accepted_issuers");
		asap_accepted_audiences = module:get_option_array("asap_accepted_audiences");
		asap_require_room_claim = module:get_option_boolean("asap_require_room_claim", true);
		token_leeway = module:get_option_number("token_leeway", 0);
	});
	if not verifier then
		module:log("error", "standard tokens are refused: %s", verifier_error);
	end
else
	verifier_error = "standard tokens are not accepted (no app_secret or jwt_public_key_file)";
end
if not app_id then
	module:log("error", "app_id is not set: every token login will be refused");
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

-- Verify the session's token and copy the resulting fields onto it.
-- Returns true or false, condition, text.
local function verify_token(session)
	local token = session.auth_token;
	local claims, text, condition = native.decode_unverified(token);
	if not claims then
		return false, condition, text;
	end
	if not app_id then
		return false, "temporary-auth-failure", "app_id is not configured";
	end
	if not verifier then
		return false, "not-authorized", verifier_error;
	end
	local fields;
	fields, text, condition = verifier:verify(token);
	if not fields then
		return false, condition, text;
	end
	for field, value in pairs(fields) do
		session[field] = value;
	end
	return true;
end

local function authenticate(sasl_handler, session, username)
	if session.auth_token == nil then
		if allow_empty_token then
			module:log("debug", "session %s logs in without a token", session.id);
			return true;
		end
		return false, "not-authorized", "no token was presented";
	end

	local pre = fire_global("pre-jitsi-authentication-fetch-key", session);
	if type(pre) == "table" and pre.res == false then
		return false, pre.error or "not-authorized", pre.reason;
	end

	local ok, condition, text = verify_token(session);
	if not ok then
		return false, condition, text;
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
	if sasl_handler.username == nil then
		sasl_handler.username = username;
	end

	local post = fire_global("post-jitsi-authentication", session);
	if type(post) == "table" and post.res == false then
		return false, post.error or "not-authorized", post.reason;
	end
	return true;
end

-- Our ANONYMOUS: a uuid username, the profile decides, failures carry a
-- condition and a text.
local function anonymous(self, message) -- luacheck: ignore 212/message
	local ok, condition, text = self.profile.anonymous(self, generate_uuid(), self.realm);
	if ok == true then
		return "success";
	end
	return "failure", condition or "not-authorized", text or "authentication refused";
end
sasl.registerMechanism("ANONYMOUS", { "anonymous" }, anonymous);

local provider = {};

function provider.test_password()
	return nil, "Password based auth not supported";
end

function provider.get_password()
	return nil, "Password based auth not supported";
end

function provider.set_password()
	return nil, "Password based auth not supported";
end

function provider.user_exists()
	return nil, "Password based auth not supported";
end

function provider.create_user()
	return nil, "Password based auth not supported";
end

function provider.users()
	return next, {}, nil;
end

function provider.get_sasl_handler(session)
	return new_sasl(host, {
		anonymous = function (sasl_handler, username)
			local ok, condition, text = authenticate(sasl_handler, session, username);
			if not ok then
				module:log("info", "login refused for session %s (%s): %s", session.id, condition, text);
				return false, condition, text;
			end
			if sasl_handler.username == nil then sasl_handler.username = username; end
			return true;
		end;
	});
end

module:provides("auth", provider);
