/* config_help.c - one line of documentation for every configuration key, and the two texts
 * made from it: `herald help serve` (every key with its default and meaning) and the annotated
 * sample configuration (packaging/herald.conf, `herald help config`).
 *
 * Design: the keys, their sections, order and defaults are not repeated here. Both texts walk
 * cfg_dump() of the defaults (which walks config.c's KEYS table) and put each key's line from
 * HELP above it, so a key added to the table shows up in both at once. HELP is looked up by
 * name; test_config_help checks that every key has a line and every line a key. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"
#include "../core/textbuf.h"
#include "config.h"

typedef struct {
    const char *key;
    const char *text;
} key_help_t;

static const key_help_t HELP[] = {
    /* [server] */
    {"http", "HTTP listen address: host:port or [v6]:port (0.0.0.0:8080 or [::]:8080 for every interface)"},
    {"mqtt", "MQTT (TCP) listen address; \"\" turns MQTT over TCP off (MQTT over WebSocket stays at /mqtt)"},
    {"data_dir", "directory of the LMDB store (store = lmdb), created when missing; one herald per directory"},
    {"redis", "the Redis server for engine = redis (an IP address is best: a host name is looked up on connect)"},
    {"redis_password", "Redis AUTH password (never printed or logged; prefer redis_password_file)"},
    {"redis_password_file", "file whose first line is the Redis AUTH password"},
    {"redis_user", "Redis ACL user for AUTH user password (Redis 6+; \"\": the default user)"},
    {"redis_db", "Redis database (SELECT)"},
    {"redis_prefix", "prefix of every Redis key and pub/sub channel herald uses"},
    {"redis_sentinel", "sentinel addresses, space/comma separated: the master is asked from them and redis is unused"},
    {"redis_master_name", "the master the sentinels are asked for"},
    {"redis_timeout", "seconds a Redis command may go unanswered before it fails and the connection is made again"},
    {"redis_max_inflight", "commands in flight to Redis; beyond, publishes fail at once with 503"},
    {"engine", "local (one node, histories in `store`) or redis (nodes share channels through Redis)"},
    {"store", "lmdb (histories, ids and MQTT retained messages on disk in data_dir) or memory (lost on restart)"},
    {"durability", "interval (fsync every flush_interval) or sync (fsync before a publish is acknowledged)"},
    {"flush_interval", "seconds between fsyncs with durability = interval"},
    {"store_map_size", "the largest the LMDB file may grow (publishes beyond fail with 503)"},
    {"cors_origins", "origins given CORS answers, space/comma separated, or \"*\" (\"\": none)"},
    {"log_level", "error, warn, info or debug"},
    {"log_format", "text (one line: time level message) or json (one object a line: time, level, msg)"},
    {"max_connections", "connections at most; beyond, new ones get 503 and are closed"},
    {"max_lingering_closes", "connections read and dropped for a moment after their last answer (HTTP 503, MQTT "
                             "refusal) so a reset does not lose it, at most"},
    {"max_channels", "channels in memory at most; a new one beyond is refused until idle ones expire"},
    {"max_connections_per_ip", "open connections (HTTP and MQTT together) one client address may hold (0: no limit)"},
    {"max_new_connections_per_ip", "new connections per second one client address may open (0: no limit)"},
    {"per_ip_exempt", "addresses the two per-address limits do not apply to (put your reverse proxy here)"},
    {"shutdown_timeout", "seconds SIGTERM waits for goodbyes to be written and parked publishes answered"},
    {"proxy_protocol", "every connection (all listeners) begins with a PROXY protocol v1/v2 header naming the client (HAProxy, nginx proxy_protocol, AWS NLB)"},
    {"trusted_proxies", "reverse proxies (addresses) whose X-Forwarded-For names the client in logs (\"\": none)"},
    {"access_log", "one line per HTTP response: \"\" off, stderr, or a file appended to (credentials redacted)"},
    /* [http] */
    {"header_timeout", "seconds a request head (and body) may take to arrive, else 408"},
    {"keepalive_timeout", "seconds an idle keep-alive connection is kept"},
    {"max_target", "longest request-target (else 414)"},
    {"max_head", "largest request head (else 431)"},
    {"max_headers", "most header fields in a request (else 431)"},
    {"max_body", "largest request body (else 413)"},
    /* [history] */
    {"history_messages", "messages kept per channel (0: none)"},
    {"history_bytes", "bytes of messages kept per channel"},
    {"history_age", "seconds a message stays in history (0: no age limit)"},
    /* [delivery] */
    {"max_queued_bytes", "write-queue limit per connection (each queued block counts 64 bytes more)"},
    {"send_timeout", "seconds queued output may make no progress before the connection is closed (0: never)"},
    {"slow_policy", "a subscriber over max_queued_bytes: drop (the oldest, with a gap notice) or disconnect"},
    {"longpoll_timeout", "seconds a long poll is held"},
    {"poll_max_messages", "most messages in one poll answer"},
    {"sse_heartbeat", "seconds between SSE comment heartbeats"},
    {"sse_retry", "milliseconds: the SSE retry: hint sent to clients"},
    {"iframe_keepalive", "seconds between iframe stream keep-alives"},
    {"client_publish", "clients may publish over /ws and STOMP SEND (where their permissions allow)"},
    /* [websocket] */
    {"ws_origins", "origins allowed to open WebSockets besides the page's own, space/comma separated, or \"*\""},
    {"ws_max_message", "largest WebSocket frame or message after inflating (larger: close 1009)"},
    {"ws_max_fragments", "frames one WebSocket message may span (more: close 1008)"},
    {"ws_ping_interval", "seconds of quiet before the server pings a WebSocket"},
    {"ws_ping_timeout", "seconds a peer may stay silent after a ping before it is dropped"},
    {"ws_deflate", "accept permessage-deflate"},
    {"ws_deflate_min", "messages shorter than this are sent uncompressed"},
    {"echo", "the /echo WebSocket test endpoint"},
    /* [mqtt] */
    {"mqtt_max_packet", "largest MQTT packet accepted (larger: 0x95)"},
    {"mqtt_sys_interval", "seconds between $SYS/ updates (0: none)"},
    {"mqtt_max_inflight", "QoS 1/2 messages unacknowledged per client (MQTT 5: at most its Receive Maximum)"},
    {"mqtt_max_queued", "messages kept per session while the client is away or its window is full"},
    {"mqtt_max_queued_bytes", "payload bytes kept per session while the client is away; beyond, the oldest go"},
    {"mqtt_queue_qos0", "also keep QoS 0 messages for absent clients"},
    {"mqtt_session_expiry", "seconds a session may outlive its connection (3.1.1 persistent sessions; caps MQTT 5)"},
    {"mqtt_topic_aliases", "Topic Alias Maximum offered to MQTT 5 clients"},
    {"mqtt_topic_aliases_out", "topic aliases herald assigns per MQTT 5 connection (capped by the client's Topic Alias Maximum; 0: none)"},
    {"mqtt_max_keepalive", "seconds: the longest MQTT keep-alive granted (v5: Server Keep Alive; 0: no maximum)"},
    /* [limits] */
    {"max_subscriptions", "subscriptions per /ws or STOMP connection and per MQTT session"},
    {"max_retained", "MQTT retained messages kept; a new one beyond is refused"},
    {"max_retained_bytes", "bytes the retained messages may hold together"},
    {"max_history_memory", "bytes every channel's history may hold together"},
    {"history_policy", "beyond max_history_memory: trim (the oldest of any channel first) or refuse (507)"},
    {"mqtt_max_queued_bytes_total", "payload bytes every MQTT session's queue may hold together"},
    {"max_read_cursors", "read cursors (user and channel) kept in all; a new one beyond is refused (503)"},
    {"max_tracked_channels", "channels one user may track (mark read); a new one beyond is refused (503)"},
    {"users_offline_max", "offline users remembered with their last_seen; beyond, the longest offline go (0: none)"},
    /* [stomp] */
    {"stomp_heartbeat", "STOMP heart-beat offered both ways, in seconds (0: none)"},
    {"stomp_max_unacked", "unacknowledged messages a client-ack STOMP subscription may have"},
    {"stomp_queue_max", "messages a STOMP /queue/ holds from its oldest unacknowledged one on (more: SEND refused)"},
    {"stomp_max_queues", "STOMP /queue/ destinations at most (a SEND or SUBSCRIBE to a new one beyond: refused)"},
    {"stomp_prefetch", "unacknowledged queue messages in flight per subscription (SUBSCRIBE prefetch-count)"},
    /* [stomp]: SockJS */
    {"sockjs_heartbeat", "seconds between SockJS heartbeat frames to a session's receiving request"},
    {"sockjs_disconnect_delay", "seconds a SockJS session lives with no receiving request before it is closed"},
    {"sockjs_response_limit", "bytes one SockJS streaming response carries before the client is made to reconnect"},
    {"sockjs_max_sessions", "SockJS sessions open at once (more: 503)"},
    {"sockjs_cookie_needed", "SockJS: set and echo the JSESSIONID cookie for sticky load balancers"},
    {"sockjs_websocket", "SockJS: offer the WebSocket transport (/info websocket)"},
    {"sockjs_url", "the sockjs-client script URL the SockJS iframe page loads"},
    /* [publish] */
    {"max_publish_targets", "targets (channels and users) one POST /publish may name (more: 400)"},
    {"idempotency_window", "seconds an idempotency key and its answer are remembered (0: keys are ignored)"},
    {"idempotency_max_keys", "idempotency keys remembered; beyond, the oldest are forgotten"},
    {"max_scheduled", "publishes waiting for their delay/at at most (more: 503)"},
    /* [auth] */
    {"token_hmac_secret", "HS256/384/512 token secret, at least 32 bytes (never printed; prefer the _file key)"},
    {"token_hmac_secret_file", "file holding the token secret (a trailing newline is dropped)"},
    {"token_public_key", "PEM file of public keys for RS*, PS*, ES* and EdDSA tokens"},
    {"token_jwks_file", "JWK Set file of token keys (chosen by the token's kid)"},
    {"token_issuer", "required \"iss\" of tokens when set"},
    {"token_audience", "required in tokens' \"aud\" when set"},
    {"token_leeway", "seconds of clock skew allowed for exp, nbf and iat"},
    {"token_algorithms", "narrows the algorithms the keys allow, e.g. \"ES256\" (\"\": all the keys allow)"},
    {"token_cache_size", "verified tokens remembered until they expire (0: none)"},
    {"token_max_length", "longer tokens are refused"},
    {"api_keys", "publisher/admin API keys, space separated, at least 16 bytes each (never printed)"},
    {"api_keys_file", "file of API keys, one per line"},
    {"permissions_file", "rules for anonymous and authenticated clients (docs/auth.md)"},
    {"password_file", "Mosquitto-style password file (mosquitto_passwd) for MQTT and STOMP logins"},
    {"allow_anonymous", "serve beyond loopback without access control, or let anonymous clients do everything"},
    {"metrics_public", "GET /metrics without an API key"},
    {"user_channel", "the channel every token's user may read ({sub}: the user id)"},
    {"broadcast_channel", "the channel every user may read (\"\": none)"},
    {"allowed_hosts", "Host names served besides loopback ones while open on loopback (DNS rebinding guard)"},
    /* [presence] */
    {"presence", "GET /channels/{ch}/presence lists the channel's subscribers"},
    {"join_leave", "join/leave events to the channel's subscribers"},
    {"max_presence_users", "users listed in one presence answer at most (\"truncated\" beyond)"},
    {"max_presence_channels", "channels whose presence a node tracks at most"},
    {"max_presence_entries", "(channel, user) entries a node tracks at most"},
    {"presence_node_timeout", "engine = redis: seconds after which a silent node's users no longer count"},
    {"users_last_seen_ttl", "engine = redis: seconds an offline user's last_seen is kept in Redis"},
    /* [tls] */
    {"https", "HTTPS listen address beside http: every HTTP transport over TLS (WSS too) (\"\": off)"},
    {"mqtts", "MQTT over TLS listen address beside mqtt (\"\": off)"},
    {"tls_cert", "PEM certificate chain (leaf first) of the https and mqtts listeners; reloaded on SIGHUP"},
    {"tls_key", "PEM private key of tls_cert (not encrypted); reloaded on SIGHUP"},
    {"tls_ca", "PEM CA file of MQTT client certificates: set, mqtts asks clients for a certificate"},
    {"tls_require_client_cert", "mqtts refuses a client without a certificate tls_ca verifies"},
    {"mqtt_cert_identity", "a verified client certificate's subject CN is the MQTT user (turns access control on)"},
    {"tls_min_version", "oldest TLS version accepted: 1.2 or 1.3"},
    {"tls_ciphers", "TLS 1.2 cipher list in OpenSSL's syntax (\"\": ECDHE with AES-GCM or ChaCha20 only)"},
    {"tls_sni_certs", "directory of NAME.crt + NAME.key pairs served to clients asking for their names (SNI)"},
    {"tls_handshake_timeout", "seconds a TLS handshake may take before the connection is closed"},
    {"tls_ktls", "let the kernel encrypt (kernel TLS) where it offers it: queued frames then go out with writev"},
};
#define NHELP (sizeof(HELP) / sizeof(HELP[0]))

/* [namespace NAME] keys live in config_ns.c, outside the table; described here by hand. */
static const char NAMESPACE_TEXT[] =
    "# [namespace NAME] sections (configuration file only; at most 64): channels matching `pattern` keep\n"
    "# their own history and presence settings; a key not given follows the global one. The first\n"
    "# section in file order whose pattern matches wins. NAME: 1-63 of A-Z a-z 0-9 _ - .\n"
    "#[namespace private]\n"
    "# channels of this namespace: + and # as in the permissions file, no {sub}\n"
    "#pattern = user/#\n"
    "# history_messages, history_bytes, history_age as in [history] (history_age up to 10 years here)\n"
    "#history_messages = 100\n"
    "#history_bytes = 64k\n"
    "#history_age = 86400\n"
    "# presence and join_leave as in [presence]\n"
    "#presence = true\n"
    "#join_leave = false\n";

const char *cfg_help_text(const char *key)
{
    for (size_t i = 0; i < NHELP; i++)
        if (strcmp(HELP[i].key, key) == 0) return HELP[i].text;
    return NULL;
}

const char *cfg_help_key(size_t i) { return i < NHELP ? HELP[i].key : NULL; }

typedef textbuf_t text_t;

size_t cfg_help(char *out, size_t cap, bool sample)
{
    size_t dcap = 65536; /* every key's default line; cfg_dump() writes about 3 KB */
    cfg_t *def = calloc(1, sizeof(*def));
    char *dump = malloc(dcap);
    if (!def || !dump) {
        free(def);
        free(dump);
        return 0;
    }
    cfg_defaults(def);
    cfg_dump(def, dump, dcap);
    free(def);
    text_t t = {out, cap, 0};
    if (sample)
        tb_put(&t, "# herald.conf - herald's configuration (herald serve -c herald.conf; check it with herald check-config).\n"
                "# Every key is listed with its default, commented out: uncomment a line to change it. Sections are for\n"
                "# reading only (a key may stand under any). Durations are in seconds (decimals allowed) unless said\n"
                "# otherwise; sizes take k, m or g. Every key is also a flag (--key value) that wins over this file.\n"
                "# Made by `herald help config` (packaging/herald.conf is its output); README.md and docs/auth.md\n"
                "# say more about each key. The systemd unit (packaging/herald.service) runs herald in its state\n"
                "# directory, /var/lib/herald, so the relative data_dir below lands there; files named here\n"
                "# (secrets, keys, permissions) must be readable by the service (see the unit's LoadCredential=).\n");
    else
        tb_put(&t, "usage: herald serve [-c FILE] [--KEY VALUE ...] [--print-config] [--check]\n"
                "       herald check-config [-c FILE] [--KEY VALUE ...]\n\n"
                "Every key below can be set in the configuration file (INI, parsed with inih; a key may stand\n"
                "under any section) or given as a flag --key value or --key=value (dashes or underscores);\n"
                "flags win over the file. Durations are in seconds (decimals allowed) unless said otherwise;\n"
                "sizes take k, m or g. --print-config prints the effective values, --check (or check-config)\n"
                "checks them and the files they name, and exits.\n\n"
                "Keys, their defaults and meanings:\n");
    for (const char *p = dump; *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        const char *eq = memchr(p, '=', n);
        if (n == 0) {
            /* the blank line between sections: each section line brings its own */
        } else if (p[0] == '[' || !eq || eq == p) {
            tb_put(&t, "\n%.*s\n", (int)n, p);
        } else {
            char key[64];
            size_t kn = (size_t)(eq - p) - 1; /* "key = value" */
            snprintf(key, sizeof(key), "%.*s", (int)(kn < sizeof(key) ? kn : sizeof(key) - 1), p);
            const char *text = cfg_help_text(key);
            if (sample) tb_put(&t, "# %s\n#%.*s\n", text ? text : "(undocumented)", (int)n, p);
            else tb_put(&t, "  %.*s\n      %s\n", (int)n, p, text ? text : "(undocumented)");
        }
        p += n + (nl ? 1 : 0);
    }
    tb_put(&t, "\n%s", NAMESPACE_TEXT);
    free(dump);
    if (cap && t.len >= cap) out[cap - 1] = '\0';
    return t.len;
}
