-- Test-only (never installed): GET /test_session_probe/session?jid=<full jid>
-- answers the Jitsi/Matrix fields of that c2s session as JSON.
local json = require "util.json";
local formdecode = require "util.http".formdecode;
module:depends("http");
local fields = {
	"auth_token";
	"auth_matrix_user_verification_is_owner";
	"jitsi_meet_context_user";
	"jitsi_meet_context_matrix";
	"jitsi_meet_context_features";
	"jitsi_meet_context_group";
	"jitsi_meet_context_room";
	"jitsi_meet_room";
	"jitsi_room";
	"jitsi_meet_verified_room";
	"jitsi_security_grants_until";
	"matrix_user_id";
};
local function copy(v, depth)
	if type(v) == "table" then
		if depth > 4 then return "<deep>"; end
		local t = {};
		for k, x in pairs(v) do t[tostring(k)] = copy(x, depth + 1); end
		return t;
	elseif type(v) == "string" or type(v) == "number" or type(v) == "boolean" then
		return v;
	end
	return tostring(v);
end
module:provides("http", {
	route = {
		["GET /session"] = function (event)
			local q = event.request.url.query and formdecode(event.request.url.query) or {};
			event.response.headers.content_type = "application/json";
			local s = type(q) == "table" and q.jid and prosody.full_sessions[q.jid];
			if not s then return json.encode({ found = false }); end
			local out = { found = true; present = {} };
			for _, f in ipairs(fields) do
				if s[f] ~= nil then
					out[f] = copy(s[f], 0);
					out.present[f] = true;
				end
			end
			return json.encode(out);
		end;
	};
});
