-- Test-only (never installed): give chosen Matrix users a fixed XMPP
-- username, so that a test can list them in `admins`. Load on the
-- VirtualHost; the Matrix auth fires pre-jitsi-authentication after UVS
-- verified the user (session.matrix_user_id), and a returned string becomes
-- the username (docs/design.md, "Standard Jitsi tokens").
--   test_fixed_usernames = { ["@admin:example.org"] = "e2e-admin" }
local usernames = module:get_option("test_fixed_usernames", {});

module:hook_global("pre-jitsi-authentication", function (session)
	local username = usernames[session.matrix_user_id];
	if username then
		module:log("debug", "session %s (%s) logs in as %s", session.id, session.matrix_user_id, username);
		return username;
	end
end);
