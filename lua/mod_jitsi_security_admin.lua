-- mod_jitsi_security_admin: admin commands, on Prosody 0.12 and 13 alike.
--
--   prosodyctl mod_jitsi_security_admin room-name '!abc:example.org'
--   prosodyctl mod_jitsi_security_admin room-id <jitsi room name>
--   prosodyctl mod_jitsi_security_admin check-config [host]
--   prosodyctl mod_jitsi_security_admin check-token <host> <jwt | -> [room]
--   prosodyctl mod_jitsi_security_admin check-matrix <host>
--
-- <host> is the VirtualHost whose options (app_secret, uvs_base_url,
-- matrix_homeserver_url...) are read from Prosody's config; check-config
-- also checks the options of its MUC components (components whose host
-- ends with .<host>) for each of our modules they enable. Options are
-- checked by the code the server runs (jitsi_security's option table).
-- Nothing here prints a signature, a key or a secret. Every check lives in
-- jitsi_security; this file reads the config and prints.

local native = require "jitsi_security";
local config = require "core.configmanager";

local function out(fmt, ...)
	io.stdout:write(string.format(fmt, ...), "\n");
end

local function host_exists(host)
	return type(host) == "string" and rawget(config.getconfig(), host) ~= nil;
end

-- The raw options `module_name` reads on `host`, as the module itself reads
-- them: the host's value (or the global one); on a MUC component, an
-- option the component does not set comes from its VirtualHost
-- (matrix_auth_host, else the component's host minus its first label).
local function raw_options(module_name, host)
	local names, inherited = native.option_names(module_name);
	local raw = {};
	for _, name in ipairs(names) do
		raw[name] = config.get(host, name);
	end
	local parent = raw.matrix_auth_host;
	if type(parent) ~= "string" then parent = (host:gsub("^[^.]+%.", "")); end
	for _, name in ipairs(names) do
		if raw[name] == nil and inherited[name] then raw[name] = config.get(parent, name); end
	end
	return raw;
end

local OUR_AUTH = { matrix_user_verification = true, hybrid_matrix_token = true };
local MUC_MODULES = { "matrix_power_sync", "token_security_ondemand", "token_verification" };

local function enables(host, module_name)
	local enabled = config.get(host, "modules_enabled");
	if type(enabled) ~= "table" then return false; end
	for _, m in ipairs(enabled) do
		if m == module_name then return true; end
	end
	return false;
end

-- Print the problems of one module on one host; returns their number.
local function report(host, module_name)
	local problems = native.admin_check_config(module_name, raw_options(module_name, host));
	out("%s (%s)", host, module_name);
	if #problems == 0 then
		out("  ok    every option is valid");
	end
	for _, p in ipairs(problems) do
		out("  FAIL  %s %s", p.option, p.text);
		out("        fix: %s", p.fix);
	end
	return #problems;
end

-- check-config for one VirtualHost and its MUC components; returns the
-- number of problems.
local function check_component(component)
	local problems, ours = 0, false;
	for _, module_name in ipairs(MUC_MODULES) do
		if enables(component, module_name) then
			ours = true;
			problems = problems + report(component, module_name);
		end
	end
	if not ours then out("%s: none of our MUC modules is enabled here", component); end
	return problems;
end

local function check_host(host)
	if config.get(host, "component_module") then return check_component(host); end
	local problems = 0;
	local auth = config.get(host, "authentication");
	if OUR_AUTH[auth] then
		problems = problems + report(host, "auth_" .. auth);
	else
		out("%s: authentication = %q is not ours: its token options are not checked", host, tostring(auth));
	end
	local suffix = "." .. host;
	local components = {};
	for name in pairs(config.getconfig()) do
		if type(name) == "string" and name:sub(-#suffix) == suffix and config.get(name, "component_module") then
			components[#components + 1] = name;
		end
	end
	table.sort(components);
	for _, component in ipairs(components) do
		problems = problems + check_component(component);
	end
	return problems;
end

-- The VirtualHosts of the config (hosts that are not components).
local function virtual_hosts()
	local hosts = {};
	for name in pairs(config.getconfig()) do
		if type(name) == "string" and name ~= "*" and not config.get(name, "component_module") then
			hosts[#hosts + 1] = name;
		end
	end
	table.sort(hosts);
	return hosts;
end

local function check_config(host)
	local problems = 0;
	for _, h in ipairs(host and { host } or virtual_hosts()) do
		problems = problems + check_host(h);
	end
	if problems > 0 then
		out("check-config: %d problem%s", problems, problems == 1 and "" or "s");
		return 1;
	end
	return 0;
end

local function host_options(host)
	return raw_options("auth_matrix_user_verification", host);
end

local function print_checks(lines)
	local failed = 0;
	for _, l in ipairs(lines) do
		if l.reason ~= "" then
			out("%-36s %s  %s", l.check, l.pass and "pass" or "FAIL", l.reason);
		else
			out("%-36s %s", l.check, l.pass and "pass" or "FAIL");
		end
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

function commands.check_config(host)
	if host ~= nil and not host_exists(host) then
		out("no host %s in the config", host);
		return 1;
	end
	return check_config(host);
end

function commands.check_token(host, token, room)
	if not (host and token) then return nil; end
	if not host_exists(host) then
		out("no host %s in the config", host);
		return 1;
	end
	if token == "-" then
		-- From standard input, so that the token stays out of the shell
		-- history and the process list.
		token = (io.stdin:read("l") or ""):match("^%s*(.-)%s*$");
	end
	local config_code = check_config(host);
	local door = {
		host = host;
		muc_mapper_domain_base = config.get(host, "muc_mapper_domain_base");
		enable_domain_verification = config.get(host, "enable_domain_verification");
	};
	local claims, lines = native.admin_check_token(host_options(host), token, room, door);
	if claims then out("claims: %s", json(claims)); end
	local token_code = print_checks(lines);
	return math.max(config_code, token_code);
end

function commands.check_matrix(host)
	if not host then return nil; end
	if not host_exists(host) then
		out("no host %s in the config", host);
		return 1;
	end
	local config_code = check_config(host);
	return math.max(config_code, print_checks(native.admin_check_service(host_options(host))));
end

local usage = [[
usage: prosodyctl mod_jitsi_security_admin <command> ...
  room-name <matrix room id>          the Jitsi room name of a Matrix room
  room-id <jitsi room name>           the Matrix room id a Jitsi room stands for
  check-config [host]                 every option of the host and its MUC components, with fixes
  check-token <host> <jwt | -> [room] check-config, then the token's claims and every check,
                                      and whether the room door opens [room] to it
                                      (- reads the token from standard input)
  check-matrix <host>                 check-config, then reach UVS or the homeserver, credentials, latency]];

function module.command(arg)
	local name = arg[1] and arg[1]:gsub("-", "_");
	local command = name and commands[name];
	local code;
	if command then
		-- Never a traceback: a failure is one line and exit code 1.
		local ok;
		ok, code = pcall(command, select(2, table.unpack(arg)));
		if not ok then
			out("internal error: %s", tostring(code));
			return 1;
		end
	end
	if code == nil then
		out("%s", usage);
		return 2;
	end
	return code;
end
