-- Prosody plugins run with these globals; `module` is Prosody's module API
-- (module:hook, module:provides ... and module.unload set by plugins).
std = "lua54"
max_line_length = 140
read_globals = { "prosody" }
globals = { "module" }
files["tests/lua/tokens.lua"] = { max_line_length = false }
files["tests/lua/exports_test.lua"] = { globals = { "arg" } }
