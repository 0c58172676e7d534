-- /etc/prosody/conf.avail/meet.example.com.cfg.lua (linked from conf.d/)
--
-- Jitsi Meet for both kinds of users on one domain ("hybrid"):
--   * Element's Jitsi widget: Matrix users log in with the OpenID token in
--     the widget's JWT, checked by the Matrix User Verification Service (UVS);
--   * your own portal or app: standard Jitsi tokens (JWT, HS256 shared
--     secret) whose context.room turns the lobby and a password on or off
--     (token_security_ondemand).
-- A token with context.matrix is a Matrix token, any other one a standard
-- token. Replaces jitsi-contrib's mod_auth_hybrid_matrix_token (same name)
-- and mod_token_security_ondemand, without luarocks.
--
-- This is the file jitsi-meet-prosody writes for meet.example.com; the
-- lines marked "jitsi-prosody-security" are the ones that differ. To use
-- it: replace meet.example.com with your domain, set app_id / app_secret
-- to your token issuer's, point uvs_base_url at your UVS and set
-- uvs_auth_token, then `systemctl restart prosody`. Also serve
-- https://meet.example.com/.well-known/element/jitsi with
-- {"auth": "openidtoken-jwt"} (and CORS headers), so Element sends tokens.
-- See the package's README.md.

-- jitsi-prosody-security: our plugin directory first (our room door is
-- named token_verification, like jitsi-meet's), then jitsi-meet's. Was
-- plugin_paths = { "/usr/share/jitsi-meet/prosody-plugins/" }
plugin_paths = { "/usr/share/jitsi-prosody-security/prosody-plugins/", "/usr/share/jitsi-meet/prosody-plugins/" }

-- domain mapper options, must at least have domain base set to use the mapper
muc_mapper_domain_base = "meet.example.com";

external_service_secret = "replace-with-your-turn-secret";
external_services = {
    { type = "stun", host = "meet.example.com", port = 3478 },
    { type = "turn", host = "meet.example.com", port = 3478, transport = "udp", secret = true, ttl = 86400, algorithm = "turn" },
    { type = "turns", host = "meet.example.com", port = 5349, transport = "tcp", secret = true, ttl = 86400, algorithm = "turn" }
};

cross_domain_bosh = false;
consider_bosh_secure = true;
consider_websocket_secure = true;

-- jitsi-prosody-security: login metrics (login_<reason> rates). Also add
-- "http_openmetrics" to modules_enabled in /etc/prosody/prosody.cfg.lua to
-- serve them at http://127.0.0.1:5280/metrics (see docs/troubleshooting.md).
statistics = "internal"
statistics_interval = "manual"

ssl = {
    protocol = "tlsv1_2+";
    ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
}

unlimited_jids = {
    "focus@auth.meet.example.com",
    "jvb@auth.meet.example.com"
}

VirtualHost "meet.example.com"
    -- jitsi-prosody-security: standard and Matrix tokens on one host. Was
    -- the same name (jitsi-contrib's Lua module).
    authentication = "hybrid_matrix_token"
    -- standard tokens: their `iss`, and the HS256 secret they are signed with
    app_id = "example_app_id"
    app_secret = "replace-with-a-long-random-secret"
    allow_empty_token = false
    -- Matrix tokens: the `iss` Element uses (its jitsi.preferredDomain);
    -- without uvs_issuer, Matrix tokens must carry app_id as `iss`
    uvs_issuer = { "meet.example.com" }
    -- Base URL of the Matrix User Verification Service (no trailing slash)
    uvs_base_url = "http://127.0.0.1:3000"
    -- UVS's UVS_AUTH_TOKEN, sent as "Authorization: Bearer ..."
    uvs_auth_token = "replace-with-the-uvs-auth-token"
    -- Power sync is off here: with matrix_power_sync on the MUC only Matrix
    -- moderators (and server admins) may be owners, so standard-token users
    -- could never moderate. Turn both on only if every moderator uses Element.
    uvs_sync_power_levels = false
    -- Assign this host a certificate for TLS, otherwise it would use the one
    -- set in the global section (if any).
    ssl = {
        key = "/etc/prosody/certs/meet.example.com.key";
        certificate = "/etc/prosody/certs/meet.example.com.crt";
    }
    av_moderation_component = "avmoderation.meet.example.com"
    speakerstats_component = "speakerstats.meet.example.com"
    conference_duration_component = "conferenceduration.meet.example.com"
    end_conference_component = "endconference.meet.example.com"
    modules_enabled = {
        "bosh";
        "websocket";
        "smacks";
        "pubsub";
        "ping";
        "speakerstats";
        "external_services";
        "conference_duration";
        "end_conference";
        "muc_lobby_rooms";
        "muc_breakout_rooms";
        "av_moderation";
        -- lobby state kept across restarts of the room; the token's
        -- context.room.lobby uses it
        "persistent_lobby";
    }
    c2s_require_encryption = false
    lobby_muc = "lobby.meet.example.com"
    breakout_rooms_muc = "breakout.meet.example.com"
    main_muc = "conference.meet.example.com"

Component "conference.meet.example.com" "muc"
    restrict_room_creation = true
    storage = "memory"
    modules_enabled = {
        "muc_meeting_id";
        "muc_domain_mapper";
        "polls";
        -- jitsi-prosody-security: the room door (a login opens only the
        -- rooms its token or Matrix room covers). Kept on the line of
        -- another module: removing jitsi-meet-tokens comments out lines
        -- that start with "token_verification" (docs/migrating.md).
        "muc_rate_limit"; "token_verification";
        -- jitsi-prosody-security: lobby on/off and password from a standard
        -- token's context.room; security_bypass users skip both
        "token_security_ondemand";
        -- "matrix_power_sync"; -- see uvs_sync_power_levels above
    }
    admins = { "focus@auth.meet.example.com" }
    muc_room_locking = false
    muc_room_default_public_jids = true

Component "breakout.meet.example.com" "muc"
    restrict_room_creation = true
    storage = "memory"
    modules_enabled = {
        "muc_meeting_id";
        "muc_domain_mapper";
        -- jitsi-prosody-security: the room door on breakout rooms too
        "muc_rate_limit"; "token_verification";
        "polls";
    }
    admins = { "focus@auth.meet.example.com" }
    muc_room_locking = false
    muc_room_default_public_jids = true

-- internal muc component
Component "internal.auth.meet.example.com" "muc"
    storage = "memory"
    modules_enabled = {
        "ping";
    }
    admins = { "focus@auth.meet.example.com", "jvb@auth.meet.example.com" }
    muc_room_locking = false
    muc_room_default_public_jids = true

VirtualHost "auth.meet.example.com"
    modules_enabled = {
        "limits_exception";
    }
    authentication = "internal_hashed"

-- Proxy to jicofo's user JID, so that it doesn't have to register as a component.
Component "focus.meet.example.com" "client_proxy"
    target_address = "focus@auth.meet.example.com"

Component "speakerstats.meet.example.com" "speakerstats_component"
    muc_component = "conference.meet.example.com"

Component "conferenceduration.meet.example.com" "conference_duration_component"
    muc_component = "conference.meet.example.com"

Component "endconference.meet.example.com" "end_conference"
    muc_component = "conference.meet.example.com"

Component "avmoderation.meet.example.com" "av_moderation_component"
    muc_component = "conference.meet.example.com"

Component "lobby.meet.example.com" "muc"
    storage = "memory"
    restrict_room_creation = true
    muc_room_locking = false
    muc_room_default_public_jids = true
    modules_enabled = {
        "muc_rate_limit";
        "polls";
    }
