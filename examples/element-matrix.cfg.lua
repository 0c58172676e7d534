-- /etc/prosody/conf.avail/meet.example.com.cfg.lua (linked from conf.d/)
--
-- Jitsi Meet for Element's Jitsi widget: Matrix users log in with the
-- OpenID token Element puts in the widget's JWT, checked by the Matrix User
-- Verification Service (UVS); Matrix room moderators (power level >= the
-- room's state_default) become owners of the Jitsi room (power sync).
-- Replaces matrix-org's mod_auth_matrix_user_verification and
-- mod_matrix_power_sync (and their luajwtjitsi / basexx dependencies).
--
-- This is the file jitsi-meet-prosody writes for meet.example.com; the
-- lines marked "jitsi-prosody-security" are the ones that differ. To use
-- it: replace meet.example.com with your domain, point uvs_base_url at your
-- UVS and set uvs_auth_token to its UVS_AUTH_TOKEN, then
-- `systemctl restart prosody`. Also:
--   * serve https://meet.example.com/.well-known/element/jitsi with
--     {"auth": "openidtoken-jwt"} (and CORS headers), so Element sends tokens;
--   * with power sync, turn jicofo's auto-owner off:
--     hocon -f /etc/jitsi/jicofo/jicofo.conf set jicofo.conference.enable-auto-owner false
-- See the package's README.md, "Setting up Element's widget".

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
    -- jitsi-prosody-security: Matrix login through UVS. Was the same name
    -- (matrix-org's Lua module); the options below keep their meaning.
    authentication = "matrix_user_verification"
    -- The `iss` of Element's tokens: Element's jitsi.preferredDomain.
    app_id = "meet.example.com"
    -- Base URL of the Matrix User Verification Service (no trailing slash)
    uvs_base_url = "http://127.0.0.1:3000"
    -- UVS's UVS_AUTH_TOKEN, sent as "Authorization: Bearer ..."
    uvs_auth_token = "replace-with-the-uvs-auth-token"
    -- Matrix moderators become owners (needs matrix_power_sync on the MUC)
    uvs_sync_power_levels = true
    -- new in jitsi-prosody-security (default shown): seconds a Matrix check
    -- may take before the login is refused (fail closed)
    uvs_timeout = 5
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
        -- jitsi-prosody-security: owners are Matrix moderators of the room
        -- this Jitsi room stands for (and server admins), nobody else
        "matrix_power_sync";
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
