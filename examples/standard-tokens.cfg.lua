-- /etc/prosody/conf.avail/meet.example.com.cfg.lua (linked from conf.d/)
--
-- Jitsi Meet with standard Jitsi tokens (JWT, HS256 shared secret), and a
-- lobby and a room password that the token turns on or off
-- (token_security_ondemand), using jitsi-prosody-security instead of
-- jitsi-meet-tokens + luajwtjitsi + the original Lua plugin.
--
-- This is the file jitsi-meet-prosody writes for meet.example.com; the
-- lines marked "jitsi-prosody-security" are the ones that differ. To use
-- it: replace meet.example.com with your domain, set app_id and
-- app_secret to what your token issuer uses, keep your own turn secret,
-- then `systemctl restart prosody`.
-- Needs: jitsi-meet-prosody (lobby and other Jitsi modules) and
-- jitsi-prosody-security (/usr/share/jitsi-prosody-security/prosody-plugins/mod_*.lua
-- and jitsi_security.so on Lua 5.4's cpath). No luarocks are needed.

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
    -- jitsi-prosody-security: token login (standard Jitsi tokens). Was
    -- authentication = "token" (jitsi-meet-tokens).
    authentication = "matrix_user_verification"
    -- the `iss` of your tokens, and the HS256 secret they are signed with
    app_id = "example_app_id"
    app_secret = "replace-with-a-long-random-secret"
    -- defaults, shown for reference
    asap_accepted_audiences = { "*" }
    asap_require_room_claim = true
    allow_empty_token = false
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
        -- jitsi-prosody-security: lobby on/off and password from the
        -- token's context.room; security_bypass users skip both
        "token_security_ondemand";
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
