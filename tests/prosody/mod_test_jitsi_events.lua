-- Test-only (never installed): stands in for jitsi-meet's modules around
-- token authentication, and records what they saw.
--   test_public_key_file (option): a fetch-key handler puts this PEM on
--     session.public_key (as JaaS deployments do)
--   test_banned_name: jitsi-access-ban-check returns false for sessions
--     whose ?room= is that name
--   test_custom_username: pre-jitsi-authentication returns it for
--     sessions whose ?room= is "custom-username"
-- GET /test_jitsi_events/verified answers the claims of every
-- jitsi-authentication-token-verified event, and every session that went
-- through post-jitsi-authentication, as JSON.
local json = require "util.json";
module:depends("http");

local public_key_file = module:get_option_string("test_public_key_file");
local banned_room = module:get_option_string("test_banned_room");
local custom_username = module:get_option_string("test_custom_username");
local verified, post = {}, {};

if public_key_file then
	local f = assert(io.open(public_key_file));
	local pem = f:read("*a");
	f:close();
	module:hook_global("pre-jitsi-authentication-fetch-key", function (session)
		session.public_key = pem;
	end);
end
module:hook_global("jitsi-access-ban-check", function (session)
	if banned_room and session.jitsi_web_query_room == banned_room then return false; end
end);
module:hook_global("pre-jitsi-authentication", function (session)
	if custom_username and session.jitsi_web_query_room == "custom-username" then return custom_username; end
end);
module:hook_global("post-jitsi-authentication", function (session)
	post[#post + 1] = { room = session.jitsi_web_query_room, has_token = session.auth_token ~= nil };
end);
module:hook_global("jitsi-authentication-token-verified", function (event)
	verified[#verified + 1] = { claims = event.claims, has_session = event.session ~= nil };
end);

module:provides("http", {
	route = {
		["GET /verified"] = function (event)
			event.response.headers.content_type = "application/json";
			return json.encode({ verified = verified, post = post });
		end;
	};
});
