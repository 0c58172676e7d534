-- One standard (HS256) login through the Lua API, N times: the driver that
-- tests/bench/run.sh runs under callgrind to count instructions per login
-- (repeatable on a shared, loaded machine, unlike times).
--
--   LUA_CPATH="$PWD/build/lua/?.so;;" lua5.4 tests/bench/login_profile.lua login|verify|rs256-login N
local native = require "jitsi_security";
local mode, n = arg[1] or "login", math.tointeger(tonumber(arg[2] or "1000"));
assert(mode == "login" or mode == "verify" or mode == "rs256-login", "mode: login, verify or rs256-login");
local here = arg[0]:gsub("[^/]*$", "");
local fixtures = (here == "" and "./" or here) .. "../fixtures/";

local A = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
local function b64url(s)
	local out = {};
	for i = 1, #s, 3 do
		local a, b, c = s:byte(i, i + 2);
		local v = a * 65536 + (b or 0) * 256 + (c or 0);
		for j = 1, (c and 4) or (b and 3) or 2 do
			local x = (v >> (6 * (4 - j))) & 63;
			out[#out + 1] = A:sub(x + 1, x + 1);
		end
	end
	return table.concat(out);
end

-- The same claims as tests/bench/verify_bench.lua's tokens.
local SECRET = "bench-hs256-secret-0123456789abcdef";
local now = os.time();
local payload = '{"iss":"app","aud":"jitsi","sub":"meet.example.com","room":"weekly-planning","exp":' .. (now + 3600)
	.. ',"nbf":' .. (now - 60) .. ',"context":{"user":{"name":"Alice Example","email":"alice@example.com",'
	.. '"avatar":"https://example.com/a/alice.png","id":"8f2c5a1e-3b7d"},"features":{"recording":true},"room":{"lobby":true}}}';
local alg = mode == "rs256-login" and "RS256" or "HS256";
local input = b64url('{"alg":"' .. alg .. '","typ":"JWT"}') .. "." .. b64url(payload);
-- The signature by the openssl command (this driver needs no Lua crypto).
local sign = alg == "HS256" and ("-hmac '" .. SECRET .. "'") or ("-sign '" .. fixtures .. "rsa_private.pem'");
local p = assert(io.popen("printf '%s' '" .. input .. "' | openssl dgst -sha256 " .. sign .. " -binary | od -An -v -tx1"));
local hex = p:read("a"):gsub("%s", "");
p:close();
local token = input .. "." .. b64url((hex:gsub("%x%x", function (h) return string.char(tonumber(h, 16)) end)));

local options = { app_id = "app", app_secret = SECRET };
if alg == "RS256" then
	options = { app_id = "app", jwt_public_key_file = fixtures .. "rsa_public.pem", signature_algorithm = "RS256" };
end
local auth = assert(native.new_authenticator(options));
local verifier = assert(native.new_verifier({ app_id = "app", app_secret = SECRET }));
local f;
if mode ~= "verify" then
	f = function () local r = auth:login(token, "weekly-planning"); return r.fields end;
else
	f = function () return (verifier:verify(token)) end;
end
local fields = f();
assert(fields and fields.jitsi_meet_room == "weekly-planning" and fields.jitsi_meet_context_user.name == "Alice Example",
	"the token is not accepted");
for _ = 1, n do f(); end
