-- /etc/prosody/conf.avail/meet.example.com.cfg.lua, as Debian's jitsi-meet
-- writes it (jitsi-meet-prosody, then jitsi-meet-tokens), with the lines
-- jitsi-prosody-security changes. Every changed or added line is marked
-- "jitsi-prosody-security:" and says what it was; every other line is
-- jitsi-meet's and stays as your file has it.
--
-- This host serves both kinds of users ("hybrid"):
--   * your portal or app: standard Jitsi tokens (JWT, HS256 app_secret),
--     as with jitsi-meet-tokens, whose context.room may turn the lobby and
--     a password on or off (token_security_ondemand);
--   * Element's Jitsi widget: Matrix users, checked by the Matrix User
--     Verification Service (UVS).
-- plus the guest VirtualHost of jitsi-meet's "secure domain" setup.
--
-- The runbook (docs/migrating.md, "Runbook: a Debian jitsi-meet host") says
-- in which order to change these lines, and what removing jitsi-meet-tokens
-- does to this file. The install test (make test-install) installs this
-- file, with meet.example.com replaced, and logs in with both kinds of token.

-- jitsi-prosody-security: our plugin directory FIRST, then jitsi-meet's. Was
--   plugin_paths = { "/usr/share/jitsi-meet/prosody-plugins/" }
-- Our room door is named token_verification, like jitsi-meet's (which needs
-- luarocks); listed first, ours is the one Prosody loads.
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

-- jitsi-prosody-security (new, optional): login metrics (login_<reason>
-- rates); add "http_openmetrics" to modules_enabled in prosody.cfg.lua to
-- serve them (docs/troubleshooting.md).
statistics = "internal"
statistics_interval = "manual"

-- https://ssl-config.mozilla.org/#server=haproxy&version=2.1&config=intermediate&openssl=1.1.0g&guideline=5.4
ssl = {
    protocol = "tlsv1_2+";
    ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
}

unlimited_jids = {
    "focus@auth.meet.example.com",
    "jvb@auth.meet.example.com"
}

VirtualHost "meet.example.com"
    -- jitsi-prosody-security: was
    --   authentication = "token" -- do not delete me
    -- ("matrix_user_verification" for a host without Matrix users works
    -- the same; see docs/migrating.md)
    authentication = "hybrid_matrix_token"
    -- Properties below are modified by jitsi-meet-tokens package config
    -- and authentication above is switched to "token"
    -- (kept as jitsi-meet-tokens wrote them: the same options, the same
    -- meaning here. Removing jitsi-meet-tokens comments these two lines
    -- out: read the runbook first.)
    app_id="example_app_id"
    app_secret="replace-with-a-long-random-secret"
    -- jitsi-prosody-security (new): Matrix tokens. Their `iss` (Element's
    -- jitsi.preferredDomain), your UVS and its UVS_AUTH_TOKEN.
    uvs_issuer = { "meet.example.com" }
    uvs_base_url = "http://127.0.0.1:3000"
    uvs_auth_token = "replace-with-the-uvs-auth-token"
    -- Owners from Matrix power levels only when every moderator uses
    -- Element (with matrix_power_sync on the conference component).
    uvs_sync_power_levels = false
    -- Assign this host a certificate for TLS, otherwise it would use the one
    -- set in the global section (if any).
    -- Note that old-style SSL on port 5223 only supports one certificate, and will always
    -- use the global one.
    ssl = {
        key = "/etc/prosody/certs/meet.example.com.key";
        certificate = "/etc/prosody/certs/meet.example.com.crt";
    }
    av_moderation_component = "avmoderation.meet.example.com"
    speakerstats_component = "speakerstats.meet.example.com"
    conference_duration_component = "conferenceduration.meet.example.com"
    end_conference_component = "endconference.meet.example.com"
    -- we need bosh
    modules_enabled = {
        "bosh";
        "websocket";
        "smacks";
        "pubsub";
        "ping"; -- Enable mod_ping
        "speakerstats";
        "external_services";
        "conference_duration";
        "end_conference";
        "muc_lobby_rooms";
        "muc_breakout_rooms";
        "av_moderation";
        -- jitsi-prosody-security (new): lobby state kept across restarts
        -- of the room; a token's context.room.lobby uses it
        "persistent_lobby";
    }
    c2s_require_encryption = false
    lobby_muc = "lobby.meet.example.com"
    breakout_rooms_muc = "breakout.meet.example.com"
    main_muc = "conference.meet.example.com"
    -- muc_lobby_whitelist = { "recorder.meet.example.com" } -- Here we can whitelist jibri to enter lobby enabled rooms

-- Guests of jitsi-meet's "secure domain" setup: anonymous users who may join
-- a room once it exists. Unchanged; the room door lets sessions of this
-- host through, as jitsi-meet's token_verification does.
VirtualHost "guest.meet.example.com"
    authentication = "anonymous"
    c2s_require_encryption = false

Component "conference.meet.example.com" "muc"
    restrict_room_creation = true
    storage = "memory"
    modules_enabled = {
        "muc_meeting_id";
        "muc_domain_mapper";
        "polls";
        -- jitsi-prosody-security: the room door, now ours (first plugin
        -- path); was "token_verification"; on a line of its own. Keep it on
        -- the line of another module: removing jitsi-meet-tokens comments
        -- out every line that starts with "token_verification".
        "muc_rate_limit"; "token_verification";
        -- jitsi-prosody-security (new): lobby on/off and password from a
        -- standard token's context.room; security_bypass users skip both
        "token_security_ondemand";
        -- "matrix_power_sync"; -- with uvs_sync_power_levels = true
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
        -- jitsi-prosody-security (new): the door on breakout rooms too
        -- (same line as another module, as above)
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
