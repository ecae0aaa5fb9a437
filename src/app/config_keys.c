/* config_keys.c - the configuration's keys (config_internal.h) and their defaults (cfg_defaults,
 * config.h). A key added here also needs a help line in config_help.c (a test checks). */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "config_internal.h"

static const char *const STORES[] = {"memory", "lmdb", NULL};
static const char *const ENGINES[] = {"local", "redis", NULL};
static const char *const LOG_FORMATS[] = {"text", "json", NULL};
static const char *const DURABILITY[] = {"interval", "sync", NULL};
static const char *const HISTORY_POLICIES[] = {"trim", "refuse", NULL};
static const char *const TLS_VERSIONS[] = {"1.2", "1.3", NULL};

#define F(field) offsetof(cfg_t, field), sizeof(((cfg_t *)0)->field)

const key_def_t cfg_keys[] = {
    {"http", "server", K_ADDR, F(http_addr), 0, 0, NULL},
    {"mqtt", "server", K_ADDR_OPT, F(mqtt_addr), 0, 0, NULL},
    {"data_dir", "server", K_PATH, F(data_dir), 0, 0, NULL},
    {"redis", "server", K_ADDR_OPT, F(redis_addr), 0, 0, NULL},
    {"redis_password", "server", K_SECRET, F(redis_password), 0, 0, NULL},
    {"redis_password_file", "server", K_STR, F(redis_password_file), 0, 0, NULL},
    {"redis_user", "server", K_STR, F(redis_user), 0, 0, NULL},
    {"redis_db", "server", K_COUNT, F(redis_db), 0, 1000000, NULL},
    {"redis_prefix", "server", K_STR, F(redis_prefix), 0, 0, NULL},
    {"redis_sentinel", "server", K_STR, F(redis_sentinel), 0, 0, NULL},
    {"redis_master_name", "server", K_STR, F(redis_master_name), 0, 0, NULL},
    {"redis_timeout", "server", K_SECS, F(redis_timeout_ms), 50, 600000, NULL},
    {"redis_max_inflight", "server", K_COUNT, F(redis_max_inflight), 1, 10000000, NULL},
    {"engine", "server", K_CHOICE, F(engine), 0, 0, ENGINES},
    {"store", "server", K_CHOICE, F(store), 0, 0, STORES},
    {"durability", "server", K_CHOICE, F(durability), 0, 0, DURABILITY},
    {"flush_interval", "server", K_SECS, F(flush_interval_ms), 1, 3600000, NULL},
    {"store_map_size", "server", K_SIZE64, F(store_map_size), 1u << 20, 1ull << 40, NULL},
    {"cors_origins", "server", K_ORIGINS, F(cors_origins), 0, 0, NULL},
    {"log_level", "server", K_LOGLEVEL, F(log_level), 0, 3, NULL},
    {"log_format", "server", K_CHOICE, F(log_format), 0, 0, LOG_FORMATS},
    {"max_connections", "server", K_COUNT, F(max_connections), 1, 10000000, NULL},
    {"max_lingering_closes", "server", K_COUNT, F(max_lingering_closes), 0, 1000000, NULL},
    {"max_channels", "server", K_COUNT, F(max_channels), 1, 1000000000, NULL},
    {"max_connections_per_ip", "server", K_COUNT, F(max_connections_per_ip), 0, 10000000, NULL},
    {"max_new_connections_per_ip", "server", K_COUNT, F(max_new_connections_per_ip), 0, 10000000, NULL},
    {"per_ip_exempt", "server", K_STR, F(per_ip_exempt), 0, 0, NULL},
    {"trusted_proxies", "server", K_STR, F(trusted_proxies), 0, 0, NULL},
    {"proxy_protocol", "server", K_BOOL, F(proxy_protocol), 0, 1, NULL},
    {"shutdown_timeout", "server", K_SECS, F(shutdown_timeout_ms), 0, 3600000, NULL},
    {"access_log", "server", K_STR, F(access_log), 0, 0, NULL},
    {"header_timeout", "http", K_SECS, F(header_timeout_ms), 1, 3600000, NULL},
    {"keepalive_timeout", "http", K_SECS, F(keepalive_timeout_ms), 1, 86400000, NULL},
    {"max_target", "http", K_SIZE32, F(max_target), 16, 1u << 20, NULL},
    {"max_head", "http", K_SIZE32, F(max_head), 256, 16u << 20, NULL},
    {"max_headers", "http", K_COUNT, F(max_headers), 1, 64, NULL},
    {"max_body", "http", K_SIZE64, F(max_body), 0, 4ull << 30, NULL},
    {"history_messages", "history", K_COUNT, F(history_messages), 0, 1000000, NULL},
    {"history_bytes", "history", K_SIZE64, F(history_bytes), 0, 64ull << 30, NULL},
    {"history_age", "history", K_SECS, F(history_age_ms), 0, 4000000000u, NULL},
    {"max_queued_bytes", "delivery", K_SIZE64, F(max_queued_bytes), 1024, 64ull << 30, NULL},
    {"send_timeout", "delivery", K_SECS, F(send_timeout_ms), 0, 3600000, NULL},
    {"slow_policy", "delivery", K_POLICY, F(slow_policy), 0, 1, NULL},
    {"longpoll_timeout", "delivery", K_SECS, F(longpoll_timeout_ms), 1, 3600000, NULL},
    {"poll_max_messages", "delivery", K_COUNT, F(poll_max_messages), 1, 100000, NULL},
    {"sse_heartbeat", "delivery", K_SECS, F(sse_heartbeat_ms), 1, 3600000, NULL},
    {"sse_retry", "delivery", K_MS, F(sse_retry_ms), 0, 3600000, NULL},
    {"iframe_keepalive", "delivery", K_SECS, F(iframe_keepalive_ms), 1, 3600000, NULL},
    {"client_publish", "delivery", K_BOOL, F(client_publish), 0, 1, NULL},
    {"ws_origins", "websocket", K_ORIGINS, F(ws_origins), 0, 0, NULL},
    {"ws_max_message", "websocket", K_SIZE32, F(ws_max_message), 125, 256u << 20, NULL},
    {"ws_max_fragments", "websocket", K_COUNT, F(ws_max_fragments), 1, 1000000, NULL},
    {"ws_ping_interval", "websocket", K_SECS, F(ws_ping_interval_ms), 100, 3600000, NULL},
    {"ws_ping_timeout", "websocket", K_SECS, F(ws_ping_timeout_ms), 100, 3600000, NULL},
    {"ws_deflate", "websocket", K_BOOL, F(ws_deflate), 0, 1, NULL},
    {"ws_deflate_min", "websocket", K_SIZE32, F(ws_deflate_min), 0, 256u << 20, NULL},
    {"echo", "websocket", K_BOOL, F(echo), 0, 1, NULL},
    {"mqtt_max_packet", "mqtt", K_SIZE32, F(mqtt_max_packet), 64, 256u << 20, NULL},
    {"mqtt_sys_interval", "mqtt", K_SECS, F(mqtt_sys_interval_ms), 0, 3600000, NULL},
    {"mqtt_max_inflight", "mqtt", K_COUNT, F(mqtt_max_inflight), 1, 65535, NULL},
    {"mqtt_max_queued", "mqtt", K_COUNT, F(mqtt_max_queued), 0, 10000000, NULL},
    {"mqtt_max_queued_bytes", "mqtt", K_SIZE64, F(mqtt_max_queued_bytes), 1024, 1ull << 40, NULL},
    {"mqtt_queue_qos0", "mqtt", K_BOOL, F(mqtt_queue_qos0), 0, 1, NULL},
    {"mqtt_session_expiry", "mqtt", K_COUNT, F(mqtt_session_expiry), 0, 4294967295u, NULL},
    {"mqtt_topic_aliases", "mqtt", K_COUNT, F(mqtt_topic_aliases), 0, 65535, NULL},
    {"mqtt_topic_aliases_out", "mqtt", K_COUNT, F(mqtt_topic_aliases_out), 0, 65535, NULL},
    {"mqtt_max_keepalive", "mqtt", K_COUNT, F(mqtt_max_keepalive), 0, 65535, NULL},
    {"max_subscriptions", "limits", K_COUNT, F(max_subscriptions), 1, 65536, NULL},
    {"max_retained", "limits", K_COUNT, F(max_retained), 1, 100000000, NULL},
    {"max_retained_bytes", "limits", K_SIZE64, F(max_retained_bytes), 1024, 1ull << 40, NULL},
    {"max_history_memory", "limits", K_SIZE64, F(max_history_memory), 1u << 20, 1ull << 40, NULL},
    {"history_policy", "limits", K_CHOICE, F(history_policy), 0, 0, HISTORY_POLICIES},
    {"mqtt_max_queued_bytes_total", "limits", K_SIZE64, F(mqtt_max_queued_bytes_total), 1024, 1ull << 40, NULL},
    {"stomp_heartbeat", "stomp", K_SECS, F(stomp_heartbeat_ms), 0, 3600000, NULL},
    {"stomp_max_unacked", "stomp", K_COUNT, F(stomp_max_unacked), 1, 1000000, NULL},
    {"stomp_queue_max", "stomp", K_COUNT, F(stomp_queue_max), 1, 1000000, NULL},
    {"stomp_max_queues", "stomp", K_COUNT, F(stomp_max_queues), 1, 1000000, NULL},
    {"stomp_prefetch", "stomp", K_COUNT, F(stomp_prefetch), 1, 1000000, NULL},
    {"sockjs_heartbeat", "stomp", K_SECS, F(sockjs_heartbeat_ms), 10, 3600000, NULL},
    {"sockjs_disconnect_delay", "stomp", K_SECS, F(sockjs_disconnect_delay_ms), 10, 3600000, NULL},
    {"sockjs_response_limit", "stomp", K_SIZE32, F(sockjs_response_limit), 256, 1u << 30, NULL},
    {"sockjs_max_sessions", "stomp", K_COUNT, F(sockjs_max_sessions), 1, 10000000, NULL},
    {"sockjs_cookie_needed", "stomp", K_BOOL, F(sockjs_cookie_needed), 0, 1, NULL},
    {"sockjs_websocket", "stomp", K_BOOL, F(sockjs_websocket), 0, 1, NULL},
    {"sockjs_url", "stomp", K_STR, F(sockjs_url), 0, 0, NULL},
    /* [publish]: POST /publish and idempotent publishing */
    {"max_publish_targets", "publish", K_COUNT, F(max_publish_targets), 1, 1000000, NULL},
    {"idempotency_window", "publish", K_SECS, F(idempotency_window_ms), 0, 4000000000u, NULL},
    {"idempotency_max_keys", "publish", K_COUNT, F(idempotency_max_keys), 1, 100000000, NULL},
    /* [publish]: scheduled delivery (delay, at; src/app/sched.h) */
    {"max_scheduled", "publish", K_COUNT, F(max_scheduled), 1, 100000000, NULL},
    /* read state (src/app/readstate.h) */
    {"max_read_cursors", "limits", K_COUNT, F(max_read_cursors), 1, 1000000000, NULL},
    {"max_tracked_channels", "limits", K_COUNT, F(max_tracked_channels), 1, 1000000, NULL},
    {"token_hmac_secret", "auth", K_SECRET, F(token_hmac_secret), 0, 0, NULL},
    {"token_hmac_secret_file", "auth", K_STR, F(token_hmac_secret_file), 0, 0, NULL},
    {"token_public_key", "auth", K_STR, F(token_public_key), 0, 0, NULL},
    {"token_jwks_file", "auth", K_STR, F(token_jwks_file), 0, 0, NULL},
    {"token_issuer", "auth", K_STR, F(token_issuer), 0, 0, NULL},
    {"token_audience", "auth", K_STR, F(token_audience), 0, 0, NULL},
    {"token_leeway", "auth", K_SECS, F(token_leeway_ms), 0, 3600000, NULL},
    {"token_algorithms", "auth", K_STR, F(token_algorithms), 0, 0, NULL},
    {"token_cache_size", "auth", K_COUNT, F(token_cache_size), 0, 10000000, NULL},
    {"token_max_length", "auth", K_SIZE32, F(token_max_length), 256, 1u << 20, NULL},
    {"api_keys", "auth", K_SECRET, F(api_keys), 0, 0, NULL},
    {"api_keys_file", "auth", K_STR, F(api_keys_file), 0, 0, NULL},
    {"permissions_file", "auth", K_STR, F(permissions_file), 0, 0, NULL},
    {"password_file", "auth", K_STR, F(password_file), 0, 0, NULL},
    {"allow_anonymous", "auth", K_BOOL, F(allow_anonymous), 0, 1, NULL},
    {"metrics_public", "auth", K_BOOL, F(metrics_public), 0, 1, NULL},
    {"user_channel", "auth", K_STR, F(user_channel), 0, 0, NULL},
    {"broadcast_channel", "auth", K_STR, F(broadcast_channel), 0, 0, NULL},
    {"allowed_hosts", "auth", K_STR, F(allowed_hosts), 0, 0, NULL},
    /* users (src/hub/users.h) */
    {"users_offline_max", "limits", K_COUNT, F(users_offline_max), 0, 100000000, NULL},
    /* presence (src/hub/presence.h; presence and join_leave also in [namespace NAME]) */
    {"presence", "presence", K_BOOL, F(presence), 0, 1, NULL},
    {"join_leave", "presence", K_BOOL, F(join_leave), 0, 1, NULL},
    {"max_presence_users", "presence", K_COUNT, F(max_presence_users), 1, 1000000, NULL},
    {"max_presence_channels", "presence", K_COUNT, F(max_presence_channels), 1, 100000000, NULL},
    {"max_presence_entries", "presence", K_COUNT, F(max_presence_entries), 1, 1000000000, NULL},
    {"presence_node_timeout", "presence", K_SECS, F(presence_node_timeout_ms), 2000, 3600000, NULL},
    {"users_last_seen_ttl", "presence", K_SECS, F(users_last_seen_ttl_ms), 1000, 4000000000u, NULL},
    /* TLS listeners (src/core/tls.h, src/app/tls_setup.c) */
    {"https", "tls", K_ADDR_OPT, F(https_addr), 0, 0, NULL},
    {"mqtts", "tls", K_ADDR_OPT, F(mqtts_addr), 0, 0, NULL},
    {"tls_cert", "tls", K_STR, F(tls_cert), 0, 0, NULL},
    {"tls_key", "tls", K_STR, F(tls_key), 0, 0, NULL},
    {"tls_ca", "tls", K_STR, F(tls_ca), 0, 0, NULL},
    {"tls_require_client_cert", "tls", K_BOOL, F(tls_require_client_cert), 0, 1, NULL},
    {"mqtt_cert_identity", "tls", K_BOOL, F(mqtt_cert_identity), 0, 1, NULL},
    {"tls_min_version", "tls", K_CHOICE, F(tls_min_version), 0, 0, TLS_VERSIONS},
    {"tls_ciphers", "tls", K_STR, F(tls_ciphers), 0, 0, NULL},
    {"tls_sni_certs", "tls", K_STR, F(tls_sni_certs), 0, 0, NULL},
    {"tls_handshake_timeout", "tls", K_SECS, F(tls_handshake_timeout_ms), 100, 3600000, NULL},
    {"tls_ktls", "tls", K_BOOL, F(tls_ktls), 0, 1, NULL},
};
const size_t cfg_nkeys = sizeof(cfg_keys) / sizeof(cfg_keys[0]);

void cfg_defaults(cfg_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    strcpy(cfg->http_addr, "127.0.0.1:8080");
    strcpy(cfg->mqtt_addr, "127.0.0.1:1883");
    strcpy(cfg->data_dir, "./herald-data");
    cfg->engine = ENGINE_LOCAL;
    strcpy(cfg->redis_addr, "127.0.0.1:6379");
    strcpy(cfg->redis_prefix, "herald");
    strcpy(cfg->redis_master_name, "mymaster");
    cfg->redis_timeout_ms = 2000;
    cfg->redis_max_inflight = 10000;
    cfg->store = STORE_LMDB;
    cfg->durability = DURABILITY_INTERVAL;
    cfg->flush_interval_ms = 1000;
    cfg->store_map_size = 1ull << 30;
    cfg->log_level = 2;
    cfg->max_connections = 10000;
    cfg->max_lingering_closes = 256;
    cfg->max_channels = 1000000;
    cfg->max_connections_per_ip = 1000;
    cfg->max_new_connections_per_ip = 100;
    strcpy(cfg->per_ip_exempt, "127.0.0.1 ::1");
    cfg->shutdown_timeout_ms = 10000;
    cfg->header_timeout_ms = 10000;
    cfg->keepalive_timeout_ms = 60000;
    cfg->max_target = 4096;
    cfg->max_head = 16384;
    cfg->max_headers = 64;
    cfg->max_body = 1048576;
    cfg->history_messages = 1000;
    cfg->history_bytes = 1048576;
    cfg->history_age_ms = 3600000;
    cfg->max_queued_bytes = 1048576;
    cfg->send_timeout_ms = 60000;
    cfg->slow_policy = SLOW_DROP;
    cfg->longpoll_timeout_ms = 25000;
    cfg->poll_max_messages = 100;
    cfg->sse_heartbeat_ms = 15000;
    cfg->sse_retry_ms = 2000;
    cfg->iframe_keepalive_ms = 15000;
    cfg->client_publish = true;
    cfg->ws_origins[0] = 0; /* same origin only */
    cfg->ws_max_message = 1048576;
    cfg->ws_max_fragments = 1024;
    cfg->ws_ping_interval_ms = 30000;
    cfg->ws_ping_timeout_ms = 20000;
    cfg->ws_deflate = true;
    cfg->ws_deflate_min = 64;
    cfg->echo = false;
    cfg->stomp_heartbeat_ms = 10000;
    cfg->sockjs_heartbeat_ms = 25000;
    cfg->sockjs_disconnect_delay_ms = 5000;
    cfg->sockjs_response_limit = 128 * 1024;
    cfg->sockjs_max_sessions = 10000;
    cfg->sockjs_websocket = true;
    snprintf(cfg->sockjs_url, sizeof(cfg->sockjs_url), "https://cdn.jsdelivr.net/npm/sockjs-client@1.6.1/dist/sockjs.min.js");
    cfg->mqtt_max_packet = 1048576;
    cfg->mqtt_sys_interval_ms = 10000;
    cfg->mqtt_max_inflight = 1024;
    cfg->mqtt_max_queued = 1000;
    cfg->mqtt_queue_qos0 = true;
    cfg->mqtt_max_queued_bytes = 16ull << 20;
    cfg->mqtt_session_expiry = 86400;
    cfg->mqtt_topic_aliases = 64;
    cfg->mqtt_topic_aliases_out = 64;
    cfg->mqtt_max_keepalive = 3600;
    cfg->max_subscriptions = 1024;
    cfg->max_retained = 100000;
    cfg->max_retained_bytes = 64ull << 20;
    cfg->max_history_memory = 1ull << 30;
    cfg->history_policy = HISTORY_TRIM;
    cfg->mqtt_max_queued_bytes_total = 256ull << 20;
    cfg->stomp_max_unacked = 1000;
    cfg->stomp_queue_max = 10000;
    cfg->stomp_max_queues = 1000;
    cfg->stomp_prefetch = 100;
    cfg->token_leeway_ms = 30000;
    cfg->token_cache_size = 10000;
    cfg->token_max_length = 8192;
    strcpy(cfg->user_channel, "user/{sub}");
    strcpy(cfg->broadcast_channel, "broadcast");
    cfg->max_publish_targets = 1000;
    cfg->idempotency_window_ms = 86400000;
    cfg->idempotency_max_keys = 1000000;
    cfg->max_scheduled = 100000;
    cfg->max_read_cursors = 1000000;
    cfg->max_tracked_channels = 1000;
    cfg->users_offline_max = 100000;
    cfg->max_presence_users = 1000;
    cfg->max_presence_channels = 100000;
    cfg->max_presence_entries = 1000000;
    cfg->presence_node_timeout_ms = 10000;
    cfg->users_last_seen_ttl_ms = 2592000000u;
    cfg->tls_handshake_timeout_ms = 10000;
    cfg->tls_ktls = true;
}

