-- Token verification and whole logins through the Lua API, against the same checks written in
-- Lua on Debian's lua-luaossl, lua-cjson and lua-basexx (what jitsi's token
-- auth does). One lua5.4 process, the same tokens for both; ns/op from
-- os.clock (process CPU time), best of 3 rounds after a warm-up.
--
-- Run: make bench, or
--   LUA_CPATH="$PWD/build/lua/?.so;;" lua5.4 tests/bench/verify_bench.lua [--no-md]
-- Writes its table to BENCHMARKS.md (section below) unless --no-md is given.
-- Needs: apt-get install lua-luaossl lua-cjson lua-basexx

local SECTION = "## Token verification through the Lua API (make bench)";
local COMMAND = "make bench (runs: LUA_CPATH=\"$PWD/build/lua/?.so;;\" lua5.4 tests/bench/verify_bench.lua)";
local here = arg[0]:gsub("[^/]*$", "");
if here == "" then here = "./"; end
local repo = here:match("^(.-)tests/bench/$") or (here .. "../../");
if repo == "" then repo = "./"; end
local fixtures = repo .. "tests/fixtures/";
local write_md = true;
for _, a in ipairs(arg) do if a == "--no-md" then write_md = false; end end

-- Debian bookworm's lua-basexx (pure Lua) installs only for Lua 5.1 and 5.2.
if not pcall(require, "basexx") then
	package.path = package.path .. ";/usr/share/lua/5.2/?.lua;/usr/share/lua/5.1/?.lua";
end
local function need(name)
	local ok, mod = pcall(require, name);
	if not ok then
		io.stderr:write(("verify_bench: cannot load '%s' (apt-get install -y lua-luaossl lua-cjson lua-basexx;"
			.. " LUA_CPATH must point at build/lua/?.so):\n%s\n"):format(name, tostring(mod)));
		os.exit(2);
	end
	return mod;
end
local native = need "jitsi_security";
local openssl = need "openssl";
local pkey = need "openssl.pkey";
local digest = need "openssl.digest";
local hmac = need "openssl.hmac";
local cjson = need "cjson";
local basexx = need "basexx";

local function read(path)
	local f = assert(io.open(path, "rb"));
	local s = f:read("a");
	f:close();
	return s;
end

-- ECDSA signatures: JWS (RFC 7518 3.4) uses r||s, each 32 bytes for P-256;
-- OpenSSL uses the DER SEQUENCE { INTEGER r, INTEGER s } (RFC 3279 2.2.3).
local function der_integer(bytes)
	local i = 1;
	while i < #bytes and bytes:byte(i) == 0 do i = i + 1; end
	bytes = bytes:sub(i);
	if bytes:byte(1) >= 0x80 then bytes = "\0" .. bytes; end
	return "\2" .. string.char(#bytes) .. bytes;
end
local function raw_to_der(sig, size)
	if #sig ~= 2 * size then return nil; end
	local body = der_integer(sig:sub(1, size)) .. der_integer(sig:sub(size + 1));
	return "\48" .. string.char(#body) .. body; -- at most 70 bytes: short-form length
end
local function der_to_raw(der, size)
	assert(der:byte(1) == 0x30 and der:byte(2) == #der - 2, "DER ECDSA signature");
	local out, pos = {}, 3;
	for k = 1, 2 do
		assert(der:byte(pos) == 0x02, "DER INTEGER");
		local len = der:byte(pos + 1);
		local v = der:sub(pos + 2, pos + 1 + len):gsub("^%z+", "");
		assert(#v <= size, "ECDSA integer too long");
		out[k] = ("\0"):rep(size - #v) .. v;
		pos = pos + 2 + len;
	end
	return out[1] .. out[2];
end

-- Signing (RFC 7515 5.1): base64url(header) . base64url(payload) . base64url(signature).
local b64url = basexx.to_url64;
local rsa_private = pkey.new(read(fixtures .. "rsa_private.pem"));
local ec_private = pkey.new(read(fixtures .. "ec_private.pem"));
local HS_SECRET = "bench-hs256-secret-0123456789abcdef";
local function sign(alg, payload_json)
	local input = b64url('{"alg":"' .. alg .. '","typ":"JWT"}') .. "." .. b64url(payload_json);
	local sig;
	if alg == "HS256" then
		sig = hmac.new(HS_SECRET, "sha256"):final(input);
	elseif alg == "RS256" then
		sig = rsa_private:sign(digest.new("sha256"):update(input));
	else
		sig = der_to_raw(ec_private:sign(digest.new("sha256"):update(input)), 32);
	end
	return input .. "." .. b64url(sig);
end

local now = os.time();
local ROOM = "weekly-planning";
local function payload(room, exp)
	return table.concat({
		'{"iss":"app","aud":"jitsi","sub":"meet.example.com","room":"', room, '",',
		'"exp":', tostring(exp), ',"nbf":', tostring(now - 60), ',',
		'"context":{"user":{"name":"Alice Example","email":"alice@example.com",',
		'"avatar":"https://example.com/a/alice.png","id":"8f2c5a1e-3b7d"},',
		'"features":{"recording":true},"room":{"lobby":true}}}',
	});
end
local good_payload = payload(ROOM, now + 3600);

-- ---------------------------------------------------------------------------
-- Reference: the same checks in Lua (written from RFC 7519/7515/7518).
-- ---------------------------------------------------------------------------
local from_url64, decode = basexx.from_url64, cjson.decode;
local function accepts(list, value)
	for _, v in ipairs(list) do
		if v == "*" or v == value then return true; end
	end
	return false;
end
local function lua_verifier(cfg)
	local alg, secret, key = cfg.alg, cfg.secret, cfg.key;
	local issuers, audiences = cfg.issuers, cfg.audiences;
	return function (token)
		local h64, p64, s64 = token:match("^([^.]+)%.([^.]+)%.([^.]*)$");
		if not h64 then return nil, "malformed"; end
		local hjson, pjson, sig = from_url64(h64), from_url64(p64), from_url64(s64);
		if not (hjson and pjson and sig) then return nil, "bad base64url"; end
		local okh, header = pcall(decode, hjson);
		local okp, claims = pcall(decode, pjson);
		if not (okh and okp) or type(header) ~= "table" or type(claims) ~= "table" then
			return nil, "bad JSON";
		end
		if header.alg ~= alg then return nil, "algorithm not accepted"; end
		local input = token:sub(1, #h64 + #p64 + 1);
		if alg == "HS256" then
			if hmac.new(secret, "sha256"):final(input) ~= sig then return nil, "bad signature"; end
		else
			if alg == "ES256" then
				sig = raw_to_der(sig, 32);
				if not sig then return nil, "bad signature"; end
			end
			local ok, valid = pcall(key.verify, key, sig, digest.new("sha256"):update(input));
			if not (ok and valid) then return nil, "bad signature"; end
		end
		local t = os.time();
		local exp, nbf = claims.exp, claims.nbf;
		if exp ~= nil and (type(exp) ~= "number" or t >= exp) then return nil, "expired"; end
		if nbf ~= nil and (type(nbf) ~= "number" or t < nbf) then return nil, "not yet valid"; end
		if type(claims.iss) ~= "string" or not accepts(issuers, claims.iss) then return nil, "issuer"; end
		local aud = claims.aud;
		if type(aud) == "string" then aud = { aud }; end
		if type(aud) ~= "table" then return nil, "audience"; end
		local aud_ok = false;
		for _, a in ipairs(aud) do
			if type(a) == "string" and accepts(audiences, a) then aud_ok = true; break; end
		end
		if not aud_ok then return nil, "audience"; end
		if type(claims.room) ~= "string" then return nil, "no room"; end
		local context = type(claims.context) == "table" and claims.context or {};
		return {
			jitsi_meet_room = claims.room,
			jitsi_meet_domain = claims.sub,
			jitsi_meet_auth_issuer = claims.iss,
			jitsi_meet_context_user = context.user,
			jitsi_meet_context_group = context.group,
			jitsi_meet_context_features = context.features,
			jitsi_meet_context_room = context.room,
			jitsi_meet_str_tenant = context.tenant,
		}, claims;
	end
end

local from_base32 = basexx.from_base32;
local function lua_room_match(name, room_id)
	return from_base32(name:upper()) == room_id;
end
local function our_room_match(name, room_id)
	return native.room_id_for_name(name) == room_id;
end

-- ---------------------------------------------------------------------------
-- Cases: the same tokens for both implementations.
-- ---------------------------------------------------------------------------
local cases = {
	{ alg = "HS256", ours = { app_id = "app", app_secret = HS_SECRET },
	  lua = { alg = "HS256", secret = HS_SECRET } },
	{ alg = "RS256", ours = { app_id = "app", jwt_public_key_file = fixtures .. "rsa_public.pem", signature_algorithm = "RS256" },
	  lua = { alg = "RS256", key = pkey.new(read(fixtures .. "rsa_public.pem")) } },
	{ alg = "ES256", ours = { app_id = "app", jwt_public_key_file = fixtures .. "ec_public.pem", signature_algorithm = "ES256" },
	  lua = { alg = "ES256", key = pkey.new(read(fixtures .. "ec_public.pem")) } },
};

local function flip(s, pos)
	local c = s:sub(pos, pos);
	return s:sub(1, pos - 1) .. (c == "A" and "B" or "A") .. s:sub(pos + 1);
end

local failures = 0;
local function sanity(what, ours_ok, lua_ok, want)
	local good = (ours_ok == want) and (lua_ok == want);
	if not good then failures = failures + 1; end
	print(("sanity %-28s ours %-7s lua %-7s want %-7s %s"):format(what,
		ours_ok and "accept" or "refuse", lua_ok and "accept" or "refuse", want and "accept" or "refuse",
		good and "ok" or "MISMATCH"));
end

local function sh(cmd)
	local p = io.popen(cmd);
	local l = p and p:read("l");
	if p then p:close(); end
	return l or "?";
end
local versions = ("%s, lua-luaossl %s (built against %s), lua-cjson %s, lua-basexx %s, jitsi_security %s"):format(
	_VERSION, sh("dpkg-query -W -f '${Version}' lua-luaossl 2>/dev/null"), tostring(openssl.VERSION_TEXT),
	sh("dpkg-query -W -f '${Version}' lua-cjson 2>/dev/null"), sh("dpkg-query -W -f '${Version}' lua-basexx 2>/dev/null"),
	tostring(native.version));
print(versions);
for _, c in ipairs(cases) do
	c.token = sign(c.alg, good_payload);
	c.verifier = assert(native.new_verifier(c.ours));
	c.auth = assert(native.new_authenticator(c.ours));
	c.lua_verify = lua_verifier({ alg = c.lua.alg, secret = c.lua.secret, key = c.lua.key,
		issuers = { "app" }, audiences = { "*" } });
	local v, lv = c.verifier, c.lua_verify;
	local function both(tok)
		local f1, claims1 = v:verify(tok);
		local f2, claims2 = lv(tok);
		return f1, claims1, f2, claims2;
	end
	local f1, c1, f2, c2 = both(c.token);
	sanity(c.alg .. " good (" .. #c.token .. " B)", f1 ~= nil, f2 ~= nil, true);
	local login = c.auth:login(c.token, ROOM);
	sanity(c.alg .. " login fields", login and login.fields and login.fields.jitsi_meet_room == ROOM or false,
		f2 and f2.jitsi_meet_room == ROOM or false, true);
	if f1 and f2 then
		local same = f1.jitsi_meet_room == ROOM and f2.jitsi_meet_room == ROOM
			and f1.jitsi_meet_context_user.email == f2.jitsi_meet_context_user.email
			and c1.exp == c2.exp and f1.jitsi_meet_context_room.lobby == true and f2.jitsi_meet_context_room.lobby == true;
		sanity(c.alg .. " same fields", same, same, true);
	end
	local h64, _, s64 = c.token:match("^([^.]+)%.([^.]+)%.(.*)$");
	-- Payload changed (valid JSON, another room), original signature kept.
	local forged = h64 .. "." .. b64url(payload("another-room", now + 3600)) .. "." .. s64;
	f1, _, f2 = both(forged);
	sanity(c.alg .. " tampered payload", f1 ~= nil, f2 ~= nil, false);
	f1, _, f2 = both(flip(c.token, #c.token - math.floor(#s64 / 2)));
	sanity(c.alg .. " tampered signature", f1 ~= nil, f2 ~= nil, false);
	f1, _, f2 = both(sign(c.alg, payload(ROOM, now - 10)));
	sanity(c.alg .. " expired", f1 ~= nil, f2 ~= nil, false);
end
local ROOM_ID = "!OGEhHVWSdvArJzumhm:matrix.org";
local ROOM_NAME = native.name_for_room_id(ROOM_ID);
sanity("room match (" .. #ROOM_NAME .. " chars)", our_room_match(ROOM_NAME, ROOM_ID), lua_room_match(ROOM_NAME, ROOM_ID), true);
sanity("room mismatch", our_room_match(ROOM_NAME, "!other:matrix.org"),
	lua_room_match(ROOM_NAME, "!other:matrix.org"), false);
if failures > 0 then
	print(("verify_bench: %d sanity check(s) disagree; no timings"):format(failures));
	os.exit(1);
end

-- ---------------------------------------------------------------------------
-- Timing.
-- ---------------------------------------------------------------------------
local function loadavg()
	local f = io.open("/proc/loadavg");
	local l = f and f:read("l") or "?";
	if f then f:close(); end
	return l:match("^(%S+ %S+ %S+)") or l;
end
local load_start = loadavg();
local ROUND_SECONDS = tonumber(os.getenv("VERIFY_BENCH_ROUND_SECONDS")) or 0.4;
local function ns_per_op(fn, x, y)
	local n, t0 = 0, os.clock();
	repeat fn(x, y); n = n + 1; until os.clock() - t0 >= 0.1 -- warm-up and calibration
	local iters = math.max(20, math.ceil(n * ROUND_SECONDS / (os.clock() - t0)));
	local best = math.huge;
	for _ = 1, 3 do
		collectgarbage("collect");
		local start = os.clock();
		for _ = 1, iters do fn(x, y); end
		local dt = os.clock() - start;
		if dt < best then best = dt; end
	end
	return best * 1e9 / iters, iters;
end

local rows = {};
for _, c in ipairs(cases) do
	local v, a, lv = c.verifier, c.auth, c.lua_verify;
	local ours = ns_per_op(function (tok) if not v:verify(tok) then error("refused") end end, c.token);
	local login = ns_per_op(function (tok) if not a:login(tok, ROOM).fields then error("refused") end end, c.token);
	local lua = ns_per_op(function (tok) if not lv(tok) then error("refused") end end, c.token);
	rows[#rows + 1] = { name = c.alg .. " (" .. #c.token .. " B token)", alg = c.alg, ours = ours, login = login, lua = lua };
end
do
	local ours = ns_per_op(function (n, id) if not our_room_match(n, id) then error("mismatch") end end, ROOM_NAME, ROOM_ID);
	local lua = ns_per_op(function (n, id) if not lua_room_match(n, id) then error("mismatch") end end, ROOM_NAME, ROOM_ID);
	rows[#rows + 1] = { name = "base32 room match (" .. #ROOM_NAME .. " chars)", ours = ours, lua = lua };
end


-- openssl speed, the reference (one core, no JWT parsing): the best of 3
-- runs, as ours is the best of 3 rounds; both count CPU time.
local speed = {};
for _ = 1, 3 do
	local p = io.popen("openssl speed -seconds 1 rsa2048 ecdsap256 2>/dev/null");
	local out = p and p:read("a") or "";
	if p then p:close(); end
	local rsa_v = tonumber(out:match("rsa%s+2048 bits%s+[%d.]+s%s+[%d.]+s%s+[%d.]+%s+([%d.]+)"));
	local ec_v = tonumber(out:match("256 bits ecdsa %(nistp256%)%s+[%d.]+s%s+[%d.]+s%s+[%d.]+%s+([%d.]+)"));
	if rsa_v and rsa_v > (speed.rsa_rate or 0) then speed.rsa_rate, speed.rsa = rsa_v, 1e6 / rsa_v; end
	if ec_v and ec_v > (speed.ec_rate or 0) then speed.ec_rate, speed.ec = ec_v, 1e6 / ec_v; end
end

local function nproc() return sh("nproc"); end
local function cpu_model()
	local f = io.open("/proc/cpuinfo");
	local s = f and f:read("a") or "";
	if f then f:close(); end
	return s:match("model name%s*:%s*([^\n]+)") or "?";
end
local function fmt(n) -- 12345.6 -> "12 346"
	local s = ("%.0f"):format(n);
	return (s:reverse():gsub("(%d%d%d)", "%1 "):reverse():gsub("^ ", ""));
end

local lines = {};
local function out(s) lines[#lines + 1] = s; end
out(("Machine: nproc %s, %s; %s; %s. Date: %s."):format(nproc(), cpu_model(), sh("openssl version"),
	versions, os.date("!%Y-%m-%d %H:%M UTC")));
out("Command: `" .. COMMAND .. "`");
out("");
out("ns/op from os.clock (process CPU time), best of 3 rounds of ~" .. ROUND_SECONDS
	.. " s after a warm-up, one lua5.4 process, both sides verify the same tokens. Ours: `verifier:verify(token)`"
	.. " returning session fields and claims tables, and `authenticator:login(token, room)` returning"
	.. " `{ fields = , claims = }` (what mod_auth_matrix_user_verification calls on every login)."
	.. " Lua+luaossl: split on dots, basexx.from_url64,"
	.. " cjson.decode header and payload, alg check, signature (openssl.hmac / pkey:verify, ES256 r||s"
	.. " converted to DER in Lua), exp/nbf/iss/aud/room checks, session fields table. Room match:"
	.. " `native.room_id_for_name(name) == id` vs `basexx.from_base32(name:upper()) == id` for " .. ROOM_ID .. ".");
out("");
out("| check | verifier:verify ns/op | authenticator:login ns/op | Lua+luaossl ns/op | ratio (Lua / login) |");
out("|---|---:|---:|---:|---:|");
for _, r in ipairs(rows) do
	out(("| %s | %s | %s | %s | %.1fx |"):format(r.name, fmt(r.ours), r.login and fmt(r.login) or "-", fmt(r.lua),
		r.lua / (r.login or r.ours)));
end
out("");
out("Targets (a whole login through the Lua API: `authenticator:login(token, room)`, claims to session fields):");
out("");
local by_alg = {};
for _, r in ipairs(rows) do if r.alg then by_alg[r.alg] = r; end end
local hs_login = by_alg.HS256.login;
out(("- HS256 login <= 5 000 ns: %s ns -> %s"):format(fmt(hs_login), hs_login <= 5000 and "met" or "NOT met"));
if speed.rsa then
	local ratio = by_alg.RS256.login / (speed.rsa * 1000);
	out(("- RS256 login <= 1.3x `openssl speed rsa2048` verify (best of 3 runs in this script: %.1f µs, %.0f verify/s): %s ns = %.2fx -> %s")
		:format(speed.rsa, speed.rsa_rate, fmt(by_alg.RS256.login), ratio, ratio <= 1.3 and "met" or "NOT met"));
else
	out("- RS256 login <= 1.3x `openssl speed rsa2048`: openssl speed gave no figure -> NOT measured");
end
if speed.ec then
	local ratio = by_alg.ES256.login / (speed.ec * 1000);
	out(("- ES256 (no target): %s ns = %.2fx `openssl speed ecdsap256` verify (%.1f µs)"):format(fmt(by_alg.ES256.login), ratio, speed.ec));
end
out("");
out(("Load average %s at the start of this script, %s at its end. os.clock and `openssl speed` both count CPU time,"
	.. " so the ratios hold on a loaded machine better than the absolute figures; the instruction counts"
	.. " (callgrind section) are the repeatable measure."):format(load_start, loadavg()));

print("");
print(SECTION);
print("");
for _, l in ipairs(lines) do print(l); end

if write_md then
	local path = repo .. "BENCHMARKS.md";
	local section = SECTION .. "\n\n" .. table.concat(lines, "\n") .. "\n";
	local f = io.open(path, "rb");
	local old = f and f:read("a");
	if f then f:close(); end
	local new;
	if not old or old == "" then
		new = "# Benchmarks\n\n" .. section;
	else
		local s = old:find(SECTION, 1, true);
		if s and (s == 1 or old:sub(s - 1, s - 1) == "\n") then
			local rest = old:sub(s + #SECTION);
			local e = rest:find("\n## ", 1, true); -- the next section, if any
			new = old:sub(1, s - 1) .. section .. (e and ("\n" .. rest:sub(e + 1)) or "");
		else
			new = old .. (old:sub(-1) == "\n" and "" or "\n") .. "\n" .. section;
		end
	end
	f = assert(io.open(path, "wb"));
	f:write(new);
	f:close();
	print("");
	print("verify_bench: wrote the section to " .. path);
end
