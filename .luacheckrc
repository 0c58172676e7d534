-- Prosody plugins run with these globals.
std = "lua54"
read_globals = { "prosody", "module" }
max_line_length = 140
files["tests/lua/tokens.lua"] = { max_line_length = false }
files["tests/lua/exports_test.lua"] = { globals = { "arg" } }
-- `module` is extended by Prosody (module:hook, module:provides ...).
read_globals = {
	"prosody",
	module = { other_fields = true },
}
