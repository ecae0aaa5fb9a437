/* config.h - herald's configuration: an INI file (parsed with inih) plus command-line flags,
 * validated into one immutable cfg_t. Every key can also be given as a flag "--key value" or
 * "--key=value" (dashes or underscores), and flags win over the file. */
#ifndef HERALD_CONFIG_H
#define HERALD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { SLOW_DROP = 0, SLOW_DISCONNECT = 1 } slow_policy_t;

enum { STORE_MEMORY = 0, STORE_LMDB = 1 };
enum { ENGINE_LOCAL = 0, ENGINE_REDIS = 1 };
enum { LOG_FORMAT_TEXT = 0, LOG_FORMAT_JSON = 1 };
enum { DURABILITY_INTERVAL = 0, DURABILITY_SYNC = 1 };
enum { HISTORY_TRIM = 0, HISTORY_REFUSE = 1 };

/* [namespace NAME] sections (config_ns.c): channels matching pattern keep their own history. */
#define CFG_MAX_NAMESPACES 64
enum { CFG_NS_MESSAGES = 1, CFG_NS_BYTES = 2, CFG_NS_AGE = 4, CFG_NS_PRESENCE = 8, CFG_NS_JOIN_LEAVE = 16 };
typedef struct {
    char name[64];             /* the section's NAME */
    char pattern[256];         /* pattern = user/#  (MQTT wildcards, as in the permissions file) */
    uint32_t set;              /* CFG_NS_* bits: the keys given (the others inherit the [history] ones) */
    uint32_t history_messages; /* history_messages, history_bytes, history_age as in [history] */
    uint64_t history_bytes;
    uint64_t history_age_ms;   /* up to 10 years here ([history] history_age: 46 days) */
    bool presence, join_leave; /* as the [presence] keys (unset: the global ones) */
    int line;                  /* the line of its first key (for errors) */
} cfg_ns_t;

typedef struct {
    /* [server] */
    char http_addr[64];    /* http = 127.0.0.1:8080 (host:port, [v6]:port) */
    char mqtt_addr[64];    /* mqtt = 127.0.0.1:1883 (MQTT over TCP; "" disables it) */
    char data_dir[256];    /* data_dir = ./herald-data */
    uint32_t log_format;   /* log_format = text | json (LOG_FORMAT_*: one JSON object a line) */
    uint32_t engine;       /* engine = local (one node, `store` below) | redis (nodes share channels through redis) */
    char redis_addr[64];   /* redis = 127.0.0.1:6379, used with engine = redis */
    char redis_password[256];      /* redis_password = "": AUTH password (never printed) */
    char redis_password_file[256]; /* redis_password_file = "": or the file holding it */
    char redis_user[128];          /* redis_user = "": ACL user for AUTH ("": the default user) */
    uint32_t redis_db;             /* redis_db = 0: SELECT db */
    char redis_prefix[65];         /* redis_prefix = herald: of every key and pub/sub channel herald uses */
    char redis_sentinel[512];      /* redis_sentinel = "": sentinel addresses (the master is asked from them) */
    char redis_master_name[128];   /* redis_master_name = mymaster: the master the sentinels are asked for */
    uint32_t redis_timeout_ms;     /* redis_timeout = 2 (seconds): a command unanswered this long fails */
    uint32_t redis_max_inflight;   /* redis_max_inflight = 10000 commands in flight; beyond, publishes fail */
    uint32_t store;        /* store = lmdb (histories on disk in data_dir) | memory */
    uint32_t durability;   /* durability = interval (fsync every flush_interval) | sync (fsync before acknowledging) */
    uint32_t flush_interval_ms; /* flush_interval = 1 (seconds) */
    uint64_t store_map_size;    /* store_map_size = 1g: the largest the LMDB file may grow */
    char cors_origins[1024]; /* cors_origins = "" (none), "*", or space/comma separated origins */
    int log_level;         /* log_level = error|warn|info|debug -> 0..3 (default info = 2) */
    uint32_t max_connections; /* max_connections = 10000 */
    uint32_t max_lingering_closes; /* max_lingering_closes = 256: refused connections read a moment after their 503 */
    uint32_t max_channels;    /* max_channels = 1000000 channels in memory; new ones beyond are refused */
    uint32_t max_connections_per_ip;     /* max_connections_per_ip = 1000 (0: no limit) */
    uint32_t max_new_connections_per_ip; /* max_new_connections_per_ip = 100 per second (0: no limit) */
    char per_ip_exempt[256];  /* per_ip_exempt = "127.0.0.1 ::1": addresses not limited (a local proxy) */
    uint32_t shutdown_timeout_ms; /* shutdown_timeout = 10 (seconds): SIGTERM drains this long at most */
    bool proxy_protocol;      /* proxy_protocol = false: every connection begins with a PROXY v1/v2 header */
    char trusted_proxies[256]; /* trusted_proxies = "": proxies whose X-Forwarded-For names the client (http/access.h) */
    char access_log[256];     /* access_log = "": off, "stderr", or a file appended to (http/access.h) */
    /* [http] */
    uint32_t header_timeout_ms; /* header_timeout = 10 (seconds; float allowed) */
    uint32_t keepalive_timeout_ms; /* keepalive_timeout = 60 (seconds) idle keep-alive connection */
    uint32_t max_target;   /* max_target = 4096 bytes */
    uint32_t max_head;     /* max_head = 16384 bytes */
    uint32_t max_headers;  /* max_headers = 64 */
    uint64_t max_body;     /* max_body = 1048576 bytes (1m, 64k suffixes allowed) */
    /* [history] */
    uint32_t history_messages; /* history_messages = 1000 per channel (0 = keep none) */
    uint64_t history_bytes;    /* history_bytes = 1m per channel */
    uint32_t history_age_ms;   /* history_age = 3600 (seconds; 0 = no age limit) */
    /* [delivery] */
    uint64_t max_queued_bytes; /* max_queued_bytes = 1m per connection write queue */
    uint32_t send_timeout_ms;       /* close a connection whose queued output did not move this long (0: never) */
    slow_policy_t slow_policy; /* slow_policy = drop|disconnect */
    uint32_t longpoll_timeout_ms; /* longpoll_timeout = 25 (seconds) */
    uint32_t poll_max_messages;   /* poll_max_messages = 100 */
    uint32_t sse_heartbeat_ms;    /* sse_heartbeat = 15 (seconds) */
    uint32_t sse_retry_ms;        /* sse_retry = 2000 (milliseconds) */
    uint32_t iframe_keepalive_ms; /* iframe_keepalive = 15 (seconds) */
    bool client_publish;          /* client_publish = true: /ws publish and STOMP SEND are allowed */
    /* [websocket] */
    char ws_origins[1024];        /* ws_origins = "*" (any), or origins allowed to open WebSockets */
    uint32_t ws_max_message;      /* ws_max_message = 1m: larger frames or messages close with 1009 */
    uint32_t ws_max_fragments;    /* ws_max_fragments = 1024: frames one message may span (more: close 1008) */
    uint32_t ws_ping_interval_ms; /* ws_ping_interval = 30 (seconds) server pings on a quiet connection */
    uint32_t ws_ping_timeout_ms;  /* ws_ping_timeout = 20 (seconds) a peer silent this long after a ping is dropped */
    bool ws_deflate;              /* ws_deflate = true: accept permessage-deflate */
    uint32_t ws_deflate_min;      /* ws_deflate_min = 64: smaller messages are sent uncompressed */
    bool echo;                    /* echo = false: the /echo test endpoint */
    /* [stomp] */
    uint32_t stomp_heartbeat_ms;  /* stomp_heartbeat = 10 (seconds) offered heart-beat (0 = none) */
    uint32_t stomp_max_unacked;   /* stomp_max_unacked = 1000 per client-ack subscription */
    uint32_t stomp_queue_max;     /* stomp_queue_max = 10000 messages per /queue/ from its oldest unacked */
    uint32_t stomp_max_queues;    /* stomp_max_queues = 1000 /queue/ destinations */
    uint32_t stomp_prefetch;      /* stomp_prefetch = 100 queue messages in flight per subscription */
    /* [stomp]: SockJS under /stomp (sockjs.h) */
    uint32_t sockjs_heartbeat_ms; /* sockjs_heartbeat = 25 (seconds) between "h" frames to a receiver */
    uint32_t sockjs_disconnect_delay_ms; /* sockjs_disconnect_delay = 5 (seconds) a session lives without a receiver */
    uint32_t sockjs_response_limit; /* sockjs_response_limit = 128k bytes on one streaming response */
    uint32_t sockjs_max_sessions; /* sockjs_max_sessions = 10000 SockJS sessions at once */
    bool sockjs_cookie_needed;    /* sockjs_cookie_needed = false: JSESSIONID for sticky load balancers */
    bool sockjs_websocket;        /* sockjs_websocket = true: the SockJS WebSocket transport is offered */
    char sockjs_url[256];         /* sockjs_url: the sockjs-client script the iframe page loads */
    /* [mqtt] */
    uint32_t mqtt_max_packet;     /* mqtt_max_packet = 1m: larger packets are refused (0x95) */
    uint32_t mqtt_sys_interval_ms; /* mqtt_sys_interval = 10 (seconds) between $SYS/ updates (0: none) */
    uint32_t mqtt_max_inflight;   /* mqtt_max_inflight = 1024 QoS 1/2 messages unacknowledged per client
                                     (MQTT 5 clients: at most their Receive Maximum) */
    uint32_t mqtt_max_queued;     /* mqtt_max_queued = 1000 messages kept per session while the client is away
                                     or its window is full; beyond that the oldest is dropped */
    uint64_t mqtt_max_queued_bytes; /* mqtt_max_queued_bytes = 16m: payload bytes a session may keep waiting;
                                       beyond that the oldest is dropped */
    bool mqtt_queue_qos0;         /* mqtt_queue_qos0 = true: also keep QoS 0 messages for absent clients */
    uint32_t mqtt_session_expiry; /* mqtt_session_expiry = 86400 (seconds): the longest a session outlives its
                                     connection (v3.1.1 persistent sessions get this; v5 asks, capped here) */
    uint32_t mqtt_topic_aliases;  /* mqtt_topic_aliases = 64: Topic Alias Maximum offered to MQTT 5 clients */
    uint32_t mqtt_topic_aliases_out; /* mqtt_topic_aliases_out = 64: topic aliases herald assigns per MQTT 5 connection
                                        (capped by the client's Topic Alias Maximum; 0: none) */
    uint32_t mqtt_max_keepalive;  /* mqtt_max_keepalive = 3600 (seconds): the longest keep-alive granted (0: no maximum) */
    /* [limits] ceilings on what clients can make herald hold (each counted in herald_limit_hits_total) */
    uint32_t max_subscriptions;   /* max_subscriptions = 1024 per connection (/ws, STOMP) or MQTT session; more are
                                     refused with the protocol's error (a /sub URL names at most 16 channels) */
    uint32_t max_retained;        /* max_retained = 100000 MQTT retained messages; a new one beyond is refused */
    uint64_t max_retained_bytes;  /* max_retained_bytes = 64m held by retained messages; beyond, refused */
    uint64_t max_history_memory;  /* max_history_memory = 1g: the bytes of every channel's history together */
    uint32_t history_policy;      /* history_policy = trim (the oldest history of any channel goes first) | refuse
                                     (publishes fail with 507 until ages and per-channel limits free room) */
    uint64_t mqtt_max_queued_bytes_total; /* mqtt_max_queued_bytes_total = 256m: every session's waiting messages
                                             together; beyond, the oldest of the largest queue is dropped */
    /* [publish] POST /publish and idempotent publishing (src/app/publish.h) */
    uint32_t max_publish_targets;   /* max_publish_targets = 1000 targets in one POST /publish; more: 400 */
    uint32_t idempotency_window_ms; /* idempotency_window = 86400 (seconds) an idempotency key is remembered (0: off) */
    uint32_t idempotency_max_keys;  /* idempotency_max_keys = 1000000 keys remembered; beyond, the oldest go first */
    uint32_t max_scheduled;         /* max_scheduled = 100000 publishes waiting for their delay/at; more: 503 */
    uint32_t max_read_cursors;     /* read cursors kept in all (readstate.h) */
    uint32_t max_tracked_channels; /* channels one user tracks at most */
    /* [auth] (see src/auth/auth.h; any of the token keys, api_keys, permissions_file or
     * password_file turns access control on) */
    char token_hmac_secret[512];      /* token_hmac_secret = "": HS256/384/512 secret (>= 32 bytes) */
    char token_hmac_secret_file[256]; /* token_hmac_secret_file = "": the secret's file (trailing newline dropped) */
    char token_public_key[256];       /* token_public_key = "": PEM file of public keys (RS*, PS*, ES*, EdDSA) */
    char token_jwks_file[256];        /* token_jwks_file = "": a JWK Set file (keys selected by kid) */
    char token_issuer[256];           /* token_issuer = "": required "iss" when set */
    char token_audience[256];         /* token_audience = "": required in "aud" when set */
    uint32_t token_leeway_ms;         /* token_leeway = 30 (seconds) clock skew allowed for exp, nbf, iat */
    char token_algorithms[128];       /* token_algorithms = "": narrows the algorithms keys allow (e.g. "ES256") */
    uint32_t token_cache_size;        /* token_cache_size = 10000 verified tokens remembered (0: none) */
    uint32_t token_max_length;        /* token_max_length = 8k: longer tokens are refused */
    char api_keys[1024];              /* api_keys = "": publisher/admin keys, space separated (>= 16 bytes each) */
    char api_keys_file[256];          /* api_keys_file = "": one key per line */
    char permissions_file[256];       /* permissions_file = "": rules for anonymous and authenticated clients */
    char password_file[256];          /* password_file = "": Mosquitto-style users for MQTT/STOMP login */
    bool allow_anonymous;             /* allow_anonymous = false: serve beyond loopback without auth, or (with auth
                                         and no permissions file) let anonymous clients subscribe and publish */
    bool metrics_public;              /* metrics_public = false: GET /metrics without an API key */
    char user_channel[128];           /* user_channel = "user/{sub}": the channel a token's user may always read */
    char broadcast_channel[128];      /* broadcast_channel = "broadcast": everyone's channel ("": none) */
    char allowed_hosts[512];          /* allowed_hosts = "": Host names served besides loopback addresses */
    /* [limits] users (src/hub/users.h) */
    uint32_t users_offline_max;       /* users_offline_max = 100000 offline users remembered with their last_seen */
    /* [presence] who is subscribed (src/hub/presence.h; also keys of [namespace NAME]) */
    bool presence;                    /* presence = false: GET /channels/{ch}/presence lists the subscribers */
    bool join_leave;                  /* join_leave = false: join/leave events to the channel's subscribers */
    uint32_t max_presence_users;      /* max_presence_users = 1000 users in one presence answer ("truncated") */
    uint32_t max_presence_channels;   /* max_presence_channels = 100000 channels tracked per node */
    uint32_t max_presence_entries;    /* max_presence_entries = 1000000 (channel, user) entries per node */
    uint32_t presence_node_timeout_ms; /* presence_node_timeout = 10 (seconds): engine = redis, a silent node's
                                          entries stop counting after this */
    uint32_t users_last_seen_ttl_ms;  /* users_last_seen_ttl = 2592000 (seconds): engine = redis, how long an
                                         offline user's last_seen is kept in Redis */
    /* [tls] TLS listeners beside the plain ones (src/core/tls.h) */
    char https_addr[64];              /* https = "": HTTPS listen address (every HTTP transport over TLS; "" off) */
    char mqtts_addr[64];              /* mqtts = "": MQTT over TLS listen address ("" off) */
    char tls_cert[256];               /* tls_cert = "": PEM certificate chain (leaf first) of both listeners */
    char tls_key[256];                /* tls_key = "": its PEM private key (not encrypted) */
    char tls_ca[256];                 /* tls_ca = "": PEM CAs of MQTT client certificates (set: mqtts asks for one) */
    bool tls_require_client_cert;     /* tls_require_client_cert = false: mqtts refuses clients without one */
    bool mqtt_cert_identity;          /* mqtt_cert_identity = false: a verified client certificate's CN is the MQTT user */
    uint32_t tls_min_version;         /* tls_min_version = 1.2 | 1.3 (index 0, 1) */
    char tls_ciphers[192];            /* tls_ciphers = "": TLS 1.2 cipher list ("": ECDHE + AEAD only) */
    char tls_sni_certs[256];          /* tls_sni_certs = "": directory of NAME.crt + NAME.key served by SNI */
    uint32_t tls_handshake_timeout_ms; /* tls_handshake_timeout = 10 (seconds) */
    bool tls_ktls;                    /* tls_ktls = true: let the kernel write TLS records where it can (kernel TLS) */
    /* [namespace NAME] sections, in file order (no flags: config file only) */
    uint32_t nnamespaces;
    cfg_ns_t namespaces[CFG_MAX_NAMESPACES];
} cfg_t;

/* Fills cfg with the embedded defaults (the values in the comments above). */
void cfg_defaults(cfg_t *cfg);

/* Parses INI text (sections optional; keys are unique across sections, so a key may appear
 * under any section or none). On error returns HR_EINVAL and writes "line N: message" into
 * err (errcap bytes). */
int cfg_parse_string(cfg_t *cfg, const char *text, char *err, size_t errcap);

/* Reads and parses a file; errors as cfg_parse_string, prefixed with the path. */
int cfg_load_file(cfg_t *cfg, const char *path, char *err, size_t errcap);

/* Sets one key from a string value (used by the file parser and by flags). Returns 0, or
 * HR_ENOTFOUND for an unknown key, or HR_EINVAL with a message in err. */
int cfg_set(cfg_t *cfg, const char *key, const char *value, char *err, size_t errcap);

/* Applies "serve" arguments: "-c FILE" is loaded first, then every "--key value"/"--key=value"
 * flag in order. Returns 0 or HR_EINVAL with a message in err. */
int cfg_from_args(cfg_t *cfg, int argc, char **argv, char *err, size_t errcap);

/* Sets key = value in the section [namespace ns_name] (made on first use; line: the file's line).
 * Keys: pattern, history_messages, history_bytes, history_age, presence, join_leave. 0, or
 * HR_EINVAL with a message. */
int cfg_ns_set(cfg_t *cfg, const char *ns_name, const char *key, const char *value, int line, char *err,
               size_t errcap);

/* Checks the namespaces once the file is read (each has a valid pattern, without {sub}).
 * 0, or HR_EINVAL with "line N: message" in err. */
int cfg_ns_check(const cfg_t *cfg, char *err, size_t errcap);

/* The namespace's limits with unset keys taken from the [history] ones. */
void cfg_ns_limits(const cfg_t *cfg, const cfg_ns_t *ns, uint32_t *messages, uint64_t *bytes, uint64_t *age_ms);

/* Appends the [namespace NAME] sections as INI text to out[len..cap) (cfg_dump); returns the
 * bytes it would write, like snprintf. */
size_t cfg_ns_dump(const cfg_t *cfg, char *out, size_t len, size_t cap);

/* Writes every key with its current value as INI text (for `herald serve --print-config`).
 * Returns bytes written (truncated to cap). */
size_t cfg_dump(const cfg_t *cfg, char *out, size_t cap);

/* Calls cb(arg, key, section) for every key whose value differs between a and b (SIGHUP:
 * src/app/reload.c). [namespace] sections are not compared. */
void cfg_diff(const cfg_t *a, const cfg_t *b, void (*cb)(void *arg, const char *key, const char *section), void *arg);

/* Copies key's value from src into dst; false for an unknown key. */
bool cfg_copy_key(cfg_t *dst, const cfg_t *src, const char *key);

/* config_help.c: the documentation of every key, made from cfg_dump() of the defaults (so from
 * the key table) with one line of text per key. sample = false: `herald help serve` (usage, then
 * each key = default with its meaning below); sample = true: the annotated herald.conf (each
 * key commented out with its default, its meaning above). Writes into out (cap bytes, NUL-
 * terminated) and returns the bytes the whole text takes, like snprintf; 0 when out of memory. */
size_t cfg_help(char *out, size_t cap, bool sample);

/* The one line that documents key (canonical name), or NULL when it has none. */
const char *cfg_help_text(const char *key);

/* The i-th documented key, or NULL past the end (for the test that every one is a real key). */
const char *cfg_help_key(size_t i);

#endif
