-- Test-only: stand in for jitsi-meet's token auth refreshing a live
-- session's claims on stream resumption. Load on the VirtualHost; it answers
--   POST /test_refresh_claims/session?jid=<full jid>&room=<new room claim>
-- by setting session.jitsi_meet_room and firing the global
-- jitsi-verify-session-rooms event with { session = session }, as that token
-- auth does, and returns the event's answer as JSON ({ answer = nil } when
-- no handler objected).

local json = require "util.json";
local formdecode = require "util.http".formdecode;

module:depends("http");

module:provides("http", {
	route = {
		["POST /session"] = function (event)
			local q = event.request.url.query and formdecode(event.request.url.query) or {};
			event.response.headers.content_type = "application/json";
			local session = type(q) == "table" and q.jid and prosody.full_sessions[q.jid];
			if not session then return json.encode({ found = false }); end
			session.jitsi_meet_room = q.room;
			local answer = prosody.events.fire_event("jitsi-verify-session-rooms", { session = session });
			return json.encode({ found = true; answer = answer });
		end;
	};
});
