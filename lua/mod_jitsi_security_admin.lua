-- mod_jitsi_security_admin: admin commands, on Prosody 0.12 and 13 alike.
--
--   prosodyctl mod_jitsi_security_admin room-name '!abc:example.org'
--   prosodyctl mod_jitsi_security_admin room-id <jitsi room name>
--   prosodyctl mod_jitsi_security_admin check-token <host> <jwt> [room]
--   prosodyctl mod_jitsi_security_admin check-matrix <host>
--
-- <host> is the VirtualHost whose options (app_secret, uvs_base_url,
-- matrix_homeserver_url...) are read from Prosody's config. Nothing here
-- prints a signature, a key or a secret. Every check lives in
-- jitsi_security; this file reads the config and prints.

local native = require "jitsi_security";
local config = require "core.configmanager";

local function out(fmt, ...)
	io.stdout:write(string.format(fmt, ...), "\n");
end

local function host_options(host)
	if rawget(config.getconfig(), host) == nil then return nil; end
	local options = {};
	for _, name in ipairs(native.admin_option_names) do
		options[name] = config.get(host, name);
	end
	return options;
end

local function print_checks(lines)
	local failed = 0;
	for _, l in ipairs(lines) do
		out("%-36s %s  %s", l.check, l.pass and "pass" or "FAIL", l.reason);
		if not l.pass then failed = failed + 1; end
	end
	return failed == 0 and 0 or 1;
end

local function json(value, indent)
	indent = indent or "";
	if type(value) == "table" then
		local keys = {};
		for k in pairs(value) do keys[#keys + 1] = tostring(k); end
		table.sort(keys);
		local parts = {};
		for _, k in ipairs(keys) do
			local v = value[k];
			if v == nil then v = value[tonumber(k)]; end
			parts[#parts + 1] = string.format("%s  %q: %s", indent, k, json(v, indent .. "  "));
		end
		return "{\n" .. table.concat(parts, ",\n") .. "\n" .. indent .. "}";
	elseif type(value) == "string" then
		return string.format("%q", value);
	end
	return tostring(value);
end

local commands = {};

function commands.room_name(room_id)
	if not room_id then return nil; end
	out("%s", native.name_for_room_id(room_id));
	return 0;
end

function commands.room_id(name)
	if not name then return nil; end
	local id, err = native.room_id_for_name(name);
	if not id then
		out("%s", err);
		return 1;
	end
	out("%s", id);
	return 0;
end

function commands.check_token(host, token, room)
	if not (host and token) then return nil; end
	local options = host_options(host);
	if not options then
		out("no host %s in the config", host);
		return 1;
	end
	local claims, lines = native.admin_check_token(options, token, room);
	if claims then out("claims: %s", json(claims)); end
	return print_checks(lines);
end

function commands.check_matrix(host)
	if not host then return nil; end
	local options = host_options(host);
	if not options then
		out("no host %s in the config", host);
		return 1;
	end
	return print_checks(native.admin_check_service(options));
end

local usage = [[
usage: prosodyctl mod_jitsi_security_admin <command> ...
  room-name <matrix room id>          the Jitsi room name of a Matrix room
  room-id <jitsi room name>           the Matrix room id a Jitsi room stands for
  check-token <host> <jwt> [room]     the token's claims and every check
  check-matrix <host>                 reach UVS or the homeserver, credentials, latency]];

function module.command(arg)
	local name = arg[1] and arg[1]:gsub("-", "_");
	local command = name and commands[name];
	local code = command and command(select(2, table.unpack(arg)));
	if code == nil then
		out("%s", usage);
		return 2;
	end
	return code;
end
