-- mod_auth_hybrid_matrix_token: the same provider as
-- mod_auth_matrix_user_verification (standard and Matrix tokens on one
-- VirtualHost), under the name jitsi-contrib's hybrid module uses, so its
-- users can switch by swapping files.
local provider_file = module:get_directory() .. "/mod_auth_matrix_user_verification.lua";
local chunk, err = loadfile(provider_file, "t", setmetatable({ module = module }, { __index = _G }));
if not chunk then
	module:log("error", "cannot load %s: %s", provider_file, err);
	return;
end
return chunk();
