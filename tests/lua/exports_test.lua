-- Loads the built jitsi_security.so in plain lua5.4 and checks every export,
-- including its error returns. Run: LUA_CPATH=build/lua/?.so lua5.4 tests/lua/exports_test.lua
package.path = arg[0]:gsub("[^/]*$", "") .. "?.lua;" .. package.path
local tokens = require "tokens";

local passed, failed = 0, 0;
local function test(name, fn)
	local ok, err = pcall(fn);
	if ok then
		passed = passed + 1;
	else
		failed = failed + 1;
		print("FAIL " .. name .. ": " .. tostring(err));
	end
end
local function eq(got, want, what)
	if got ~= want then
		error(("%s: got %s, want %s"):format(what or "value", tostring(got), tostring(want)), 2);
	end
end

local ok, native = pcall(require, "jitsi_security");
test("module loads", function () assert(ok, native); eq(type(native), "table"); end);
if not ok then print(("0 passed, %d failed"):format(failed + 1)); os.exit(1); end

test("version is a string", function () eq(type(native.version), "string"); end);

local key_dir = arg[0]:gsub("[^/]*$", "") .. "../fixtures/";
local verifier = assert(native.new_verifier({ app_id = "app", app_secret = "lua-test-secret" }));

test("verify returns session fields and claims", function ()
	local fields, claims = verifier:verify(tokens.good);
	assert(fields, claims);
	eq(fields.jitsi_meet_room, "r1", "room");
	eq(fields.jitsi_meet_domain, "meet.example.com", "domain");
	eq(fields.jitsi_meet_auth_issuer, "app", "issuer");
	eq(fields.jitsi_meet_context_user.name, "Lua", "user name");
	eq(fields.jitsi_meet_context_user.security_bypass, true, "bypass");
	eq(fields.jitsi_meet_context_room.lobby, true, "lobby");
	eq(fields.jitsi_meet_context_room.password, "pw", "password");
	eq(fields.jitsi_meet_context_group, "g1", "group");
	eq(fields.jitsi_meet_str_tenant, "t1", "tenant");
	eq(fields.jitsi_meet_context_features, nil, "features absent");
	eq(claims.aud, "jitsi", "claims aud");
	eq(rawequal(fields.jitsi_meet_context_user, claims.context.user), true, "fields share the claims' tables");
	local n = 0;
	for _ in pairs(fields) do n = n + 1; end
	eq(n, 7, "exactly the contract's fields (features absent)");
end);

local refusals = {
	{ "bad_signature", "token signature is invalid", "not-authorized", "invalid_auth_token" },
	{ "alg_none", "token algorithm 'none' is not accepted (expected HS256)", "not-authorized" },
	{ "expired", "token has expired", "not-authorized" },
	{ "not_yet_valid", "token is not yet valid (nbf is in the future)", "not-authorized" },
	{ "wrong_issuer", "token issuer 'evil' is not accepted", "not-authorized" },
	{ "no_room", "token has no 'room' claim", "not-authorized" },
};
for _, case in ipairs(refusals) do
	test("verify refuses " .. case[1], function ()
		local res, text, condition, code = verifier:verify(tokens[case[1]]);
		eq(res, nil, "result");
		eq(text, case[2], "text");
		eq(condition, case[3], "condition");
		if case[4] then eq(code, case[4], "code"); end
	end);
end

test("verify refuses garbage without raising", function ()
	local res, text, condition, code = verifier:verify("garbage");
	eq(res, nil); eq(text, "token is malformed: not three dot-separated segments");
	eq(condition, "not-authorized"); eq(code, "auth_token_decode_issue");
end);

test("verify raises on a non-string argument (programming error)", function ()
	local pok = pcall(verifier.verify, verifier, {});
	eq(pok, false);
end);

test("new_verifier reports configuration errors", function ()
	local v, err, condition = native.new_verifier({ app_id = "app" });
	eq(v, nil); eq(err, "configuration error: neither app_secret nor jwt_public_key_file is set");
	eq(condition, "temporary-auth-failure");
	v, err = native.new_verifier({ app_secret = "s" });
	eq(v, nil); eq(err, "configuration error: app_id is not set");
	v, err = native.new_verifier({ app_id = "a", jwt_public_key_file = "/nonexistent.pem" });
	eq(v, nil); assert(err:find("cannot read public key file '/nonexistent.pem'", 1, true), err);
	v, err = native.new_verifier({ app_id = "a", app_secret = "s", signature_algorithm = "none" });
	eq(v, nil); assert(err:find("signature_algorithm 'none' is not supported", 1, true), err);
end);

test("new_verifier loads an RS256 public key", function ()
	local v = native.new_verifier({ app_id = "app", jwt_public_key_file = key_dir .. "rsa_public.pem" });
	assert(v);
	local res, text = v:verify(tokens.good);
	eq(res, nil); eq(text, "token algorithm 'HS256' is not accepted (expected RS256)");
end);

test("decode_unverified reads claims and spots Matrix tokens", function ()
	local claims, is_matrix = native.decode_unverified(tokens.matrix);
	eq(claims.context.matrix.room_id, "!a:b"); eq(is_matrix, true);
	claims, is_matrix = native.decode_unverified(tokens.good);
	eq(claims.room, "r1"); eq(is_matrix, false);
	local res, text, condition = native.decode_unverified("a.b");
	eq(res, nil); eq(text, "token is malformed: not three dot-separated segments"); eq(condition, "not-authorized");
end);

test("token_from prefers the query over the Bearer header", function ()
	eq(native.token_from("q", "Bearer h"), "q");
	eq(native.token_from(nil, "bEaReR h"), "h");
	eq(native.token_from(nil, "Basic h"), nil);
	eq(native.token_from(nil, nil), nil);
end);

test("room names round-trip and refuse bad names", function ()
	local name = native.name_for_room_id("!qwertyasdfgh:matrix.org");
	eq(name, "efyxozlsor4wc43emztwqotnmf2he2lyfzxxezy");
	eq(native.room_id_for_name(name:upper()), "!qwertyasdfgh:matrix.org");
	local res, text, condition, code = native.room_id_for_name("not-base32");
	eq(res, nil); eq(text, "room name 'not-base32' is not a base32 encoded Matrix room id");
	eq(condition, "bad-request"); eq(code, "jitsi_and_matrix_room_mismatch");
end);

local security = assert(native.new_security("conference.meet.example.com", {}));
local function session(fields)
	local s = { auth_token = "x", jitsi_meet_domain = "meet.example.com" };
	for k, v in pairs(fields) do s[k] = v; end
	return s;
end

test("security:pre_join grants a bypass user", function ()
	local plan = security:pre_join(session({ jitsi_meet_room = "r1", jitsi_meet_context_user = { security_bypass = true } }),
		{ room_node = "r1", password = "secret" });
	eq(plan.grant_member, true); eq(plan.inject_password, "secret"); eq(plan.why, "security_bypass user");
	plan = security:pre_join({}, { room_node = "r1", password = "secret" });
	eq(plan.grant_member, false); eq(plan.inject_password, nil); eq(plan.why, "session has no token");
end);

test("security:joined returns lobby and password actions", function ()
	local plan = security:joined(session({ jitsi_meet_room = "*", jitsi_meet_context_room = { lobby = true, password = "" } }),
		{ room_node = "r1", password = "old" });
	eq(plan.lobby, "create"); eq(plan.set_password, "");
	plan = security:joined(session({ jitsi_meet_room = "r1", jitsi_meet_context_room = { lobby = false } }),
		{ room_node = "r1", lobby_enabled = true });
	eq(plan.lobby, "destroy"); eq(plan.set_password, nil);
	-- No room claim: the token is for no room, so it changes nothing.
	plan = security:joined(session({ jitsi_meet_context_room = { lobby = false } }), { room_node = "r1", lobby_enabled = true });
	eq(plan.lobby, nil);
	-- Another tenant's token: nothing either, with or without a tenant in the room.
	plan = security:joined(session({ jitsi_meet_room = "*", jitsi_meet_domain = "t1", jitsi_meet_context_room = { lobby = true } }),
		{ room_node = "boardroom" });
	eq(plan.lobby, nil);
	plan = security:joined(session({ jitsi_meet_room = "r1", jitsi_meet_str_tenant = "t1", jitsi_meet_context_room = { lobby = true } }),
		{ room_node = "[t2]r1" });
	eq(plan.lobby, nil);
end);

test("new_security refuses a wrongly typed option", function ()
	local s, err = native.new_security("conference.x", { enable_domain_verification = "yes" });
	eq(s, nil); eq(err, "configuration error: enable_domain_verification is the string 'yes', not true or false");
end);

test("door:check opens the token's room only", function ()
	local door = assert(native.new_door("conference.meet.example.com", {}));
	local v = door:check({ room_node = "r1", user_jid = "u@meet.example.com/x" }, session({ jitsi_meet_room = "r1" }));
	eq(v.open, true); eq(v.code, "ok");
	v = door:check({ room_node = "r2", user_jid = "u@meet.example.com/x" }, session({ jitsi_meet_room = "r1" }));
	eq(v.open, false); eq(v.code, "room_not_covered");
	local lapsed = session({ jitsi_meet_room = "r1", jitsi_security_grants_until = 1,
		jitsi_meet_context_user = { id = "u", security_bypass = true }, jitsi_meet_context_room = { lobby = false } });
	v = door:check({ room_node = "r1" }, lapsed);
	eq(v.open, true); eq(v.lapse_grants, true);
	door:lapse(lapsed);
	eq(lapsed.jitsi_meet_context_user.id, "u"); eq(lapsed.jitsi_meet_context_user.security_bypass, nil);
	eq(lapsed.jitsi_meet_context_room, nil);
	local bad, err = native.new_door("conference.x", { token_verification_allowlist = 5 });
	eq(bad, nil); eq(err, "configuration error: token_verification_allowlist is 5, not a string or a list of strings");
end);

test("new_authenticator: standard tokens complete at once", function ()
	local auth = assert(native.new_authenticator({ app_id = "app", app_secret = "lua-test-secret" }));
	eq(auth:describe(), "standard tokens: on; Matrix tokens: off");
	eq(auth:fd(), nil, "no UVS pool without uvs_base_url");
	local result = assert(auth:login(tokens.good, "r1"));
	eq(result.pending, nil); eq(result.fields.jitsi_meet_room, "r1");
	local res, text, condition, code = auth:login(tokens.matrix, "anything");
	eq(res, nil); eq(text, "Matrix tokens are not accepted here (neither uvs_base_url nor matrix_homeserver_url is set)");
	eq(condition, "not-authorized"); eq(code, "invalid_auth_token");
	local bad, bad_text, _, bad_code = auth:login(tokens.bad_signature, "r1");
	eq(bad, nil); eq(bad_text, "token signature is invalid"); eq(bad_code, "invalid_auth_token");
end);

test("new_authenticator reports configuration errors", function ()
	local auth, text, condition, code = native.new_authenticator({ app_secret = "s" });
	eq(auth, nil); eq(text, "configuration error: app_id is not set");
	eq(condition, "temporary-auth-failure"); eq(code, "config_error");
	auth, text = native.new_authenticator({ app_id = "a", uvs_base_url = "http://x", uvs_timeout = -1 });
	eq(auth, nil); assert(text:find("uvs_timeout", 1, true), text);
end);

test("new_authenticator: Matrix logins go to UVS workers and fail closed", function ()
	local auth = assert(native.new_authenticator({ app_id = "app", uvs_base_url = "http://127.0.0.1:9/",
		uvs_timeout = 2, uvs_issuer = { "app" } }));
	assert(auth:describe():find("Matrix tokens: on", 1, true), auth:describe());
	eq(math.type(auth:fd()), "integer", "eventfd");
	local res, text, condition, code = auth:login(tokens.matrix, "not-base32");
	eq(res, nil); eq(condition, "bad-request"); eq(code, "jitsi_and_matrix_room_mismatch"); assert(text);
	res, text, condition = auth:login(tokens.matrix, native.name_for_room_id("!other:b"));
	eq(res, nil); eq(condition, "not-allowed"); assert(text:find("does not match", 1, true), text);
	local started = assert(auth:login(tokens.matrix, native.name_for_room_id("!a:b")));
	eq(math.type(started.pending), "integer"); eq(auth:pending(), 1);
	eq(started.timeout, 2, "the check's own deadline (uvs_timeout), for the shim's timer");
	-- Port 9 refuses: the worker answers quickly; poll drain() (no event loop here).
	local results, deadline = {}, os.time() + 10;
	while #results == 0 and os.time() < deadline do results = auth:drain(); end
	eq(#results, 1, "one finished job");
	local r = results[1];
	eq(r.id, started.pending); eq(r.fields, nil); eq(r.condition, "temporary-auth-failure");
	eq(r.code, "invalid_response"); assert(r.text:find("could not verify the Matrix user", 1, true), r.text);
	eq(auth:pending(), 0);
end);

test("expire(): the shim's own deadline answers a waiting login with a timeout, once", function ()
	local auth = assert(native.new_authenticator({ app_id = "app", uvs_base_url = "http://127.0.0.1:9/",
		uvs_timeout = 2, uvs_issuer = { "app" } }));
	local started = assert(auth:login(tokens.matrix, native.name_for_room_id("!a:b")));
	local expired = auth:expire(started.pending, 4);
	eq(#expired, 1); eq(expired[1].id, started.pending); eq(expired[1].fields, nil);
	eq(expired[1].condition, "temporary-auth-failure"); eq(expired[1].code, "invalid_response");
	assert(expired[1].text:find("timed out after 4000 ms", 1, true), expired[1].text);
	eq(auth:pending(), 0, "no longer waiting");
	-- The engine's own answer comes later and is dropped: answered once.
	local deadline, results = os.time() + 3, {};
	while os.time() < deadline do
		for _, r in ipairs(auth:drain()) do results[#results + 1] = r; end
	end
	eq(#results, 0, "nothing more for that login");
	auth:close();
end);

test("owner_on_join and owner_allow_grant bind ownership to the verified room", function ()
	local room = native.name_for_room_id("!a:b");
	local mine = { { is_owner = true, room_id = "!a:b" } };
	eq(native.owner_on_join({ room_node = room, sessions = mine }).set_affiliation, "owner");
	eq(native.owner_on_join({ room_node = "other", sessions = mine }).set_affiliation, "member");
	eq(native.owner_on_join({ room_node = room, is_admin = true, sessions = {} }).set_affiliation, "owner");
	eq(native.owner_on_join({ room_node = "__jicofo-health-check-1", sessions = {} }).set_affiliation, nil);
	eq(native.owner_allow_grant({ room_node = room, sessions = mine }, "owner"), true);
	eq(native.owner_allow_grant({ room_node = room, sessions = {} }, "owner"), false);
	eq(native.owner_allow_grant({ room_node = room, sessions = {} }, "member"), true);
	eq(native.owner_allow_grant({ room_node = room, sessions = {} }, "admin"), false);
end);

test("owner_on_power_change rewrites the flags of the verified sessions and demotes", function ()
	local room = native.name_for_room_id("!a:b");
	local sessions = {
		{ jid = "u@h/1", user_id = "@u:b", is_owner = true, room_id = "!a:b" };
		{ jid = "u@h/2", user_id = "@u:b", is_owner = true, room_id = "!other:b" };
	};
	local change = native.owner_on_power_change({ room_node = room, sessions = sessions, affiliation = "admin" }, "!a:b", "@u:b", false);
	eq(#change.flags, 1); eq(change.flags[1].jid, "u@h/1"); eq(change.flags[1].is_owner, false);
	eq(change.set_affiliation, "member");
	local none = native.owner_on_power_change({ room_node = room, sessions = {}, affiliation = "member" }, "!a:b", "@u:b", false);
	eq(#none.flags, 0); eq(none.set_affiliation, nil);
end);

-- The option table (src/options.rs): raw config values in, checked values
-- or one "configuration error: <option> ..." out, never a Lua error.
test("option_names lists each module's options; MUC modules inherit from the VirtualHost", function ()
	local names, inherited = native.option_names("auth_matrix_user_verification");
	local set = {};
	for _, n in ipairs(names) do set[n] = true; end
	assert(set.app_id and set.uvs_timeout and set.allow_empty_token and not set.matrix_resync_interval);
	eq(next(inherited), nil, "the auth module reads its own host only");
	local hybrid = native.option_names("auth_hybrid_matrix_token");
	eq(#hybrid, #names, "the hybrid alias reads the same options");
	local _, sync_inherited = native.option_names("matrix_power_sync");
	eq(sync_inherited.uvs_timeout, true); eq(sync_inherited.matrix_auth_host, nil);
	eq(pcall(native.option_names, "no_such_module"), false, "unknown module: a programming error");
end);

test("options: typed defaults, a single string as a list, wrong types refused", function ()
	local o = assert(native.options("token_verification", { token_verification_allowlist = "focus.localhost" }));
	eq(o.token_verification_allowlist[1], "focus.localhost");
	eq(o.enable_domain_verification, true); eq(o.allow_empty_token, false);
	eq(o.token_verification_require_token_for_moderation, false);
	local res, text, condition, code = native.options("matrix_power_sync", { matrix_resync_interval = "30" });
	eq(res, nil);
	eq(text, "configuration error: matrix_resync_interval is the string '30', not a number of seconds from 0 to 86400");
	eq(condition, "temporary-auth-failure"); eq(code, "config_error");
	eq(native.options("matrix_power_sync", {}).matrix_resync_interval, 30, "default");
	res, text = native.options("auth_matrix_user_verification", { allow_empty_token = "yes", token_leeway = { 1 } });
	eq(res, nil);
	eq(text, "configuration error: token_leeway is a list, not a whole number from 0 to 86400; "
		.. "allow_empty_token is the string 'yes', not true or false");
end);

test("new_authenticator takes raw options: a string uvs_issuer works, a float token_leeway is a clean error", function ()
	assert(native.new_authenticator({ app_id = "a", uvs_base_url = "http://127.0.0.1:9", uvs_issuer = "element" }));
	local auth, text, condition, code = native.new_authenticator({ app_id = "a", app_secret = "s", token_leeway = 1.5 });
	eq(auth, nil); eq(text, "configuration error: token_leeway is 1.5, not a whole number from 0 to 86400");
	eq(condition, "temporary-auth-failure"); eq(code, "config_error");
	auth, text = native.new_authenticator({ app_id = "a", uvs_base_url = "http://x", matrix_token_secret = "notused" });
	eq(auth, nil);
	eq(text, "configuration error: matrix_token_secret is a publicly known value (Element's `notused`), not a secret");
end);

test("admin_check_config returns each problem with its fix, never raises", function ()
	local problems = native.admin_check_config("auth_matrix_user_verification", { uvs_timeout = "10", app_id = print });
	eq(#problems, 2);
	eq(problems[1].option, "app_id"); eq(problems[1].text, "is a function, not a string");
	eq(problems[2].option, "uvs_timeout"); assert(problems[2].fix:find("uvs_timeout = 5", 1, true), problems[2].fix);
	problems = native.admin_check_config("auth_matrix_user_verification", { uvs_base_url = "http://x" });
	eq(#problems, 1); eq(problems[1].option, "app_id"); eq(problems[1].text, "is not set");
	eq(#native.admin_check_config("token_security_ondemand", { muc_mapper_domain_base = "x" }), 0);
end);

print(("%d passed, %d failed"):format(passed, failed));
os.exit(failed == 0 and 0 or 1);
