/* fuzz_config.c - feeds arbitrary text to cfg_parse_string(). Whenever it is accepted, the
 * config is dumped and parsed again, and both must be equal (the dump -> parse round trip).
 * The only allowed failure of the second parse is a line made too long by the dump's quoting. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/app/config.h"

/* The [namespace NAME] sections (config_ns.c): the same names, patterns, keys set and values. */
static int same_ns(const cfg_t *a, const cfg_t *b)
{
    if (a->nnamespaces != b->nnamespaces) return 0;
    for (uint32_t i = 0; i < a->nnamespaces; i++) {
        const cfg_ns_t *x = &a->namespaces[i], *y = &b->namespaces[i];
        if (strcmp(x->name, y->name) || strcmp(x->pattern, y->pattern) || x->set != y->set ||
            (x->set & CFG_NS_MESSAGES && x->history_messages != y->history_messages) ||
            (x->set & CFG_NS_BYTES && x->history_bytes != y->history_bytes) ||
            (x->set & CFG_NS_AGE && x->history_age_ms != y->history_age_ms))
            return 0;
    }
    return 1;
}

static int same(const cfg_t *a, const cfg_t *b)
{
    return same_ns(a, b) && strcmp(a->http_addr, b->http_addr) == 0 && strcmp(a->mqtt_addr, b->mqtt_addr) == 0 &&
           strcmp(a->data_dir, b->data_dir) == 0 && strcmp(a->redis_addr, b->redis_addr) == 0 &&
           strcmp(a->cors_origins, b->cors_origins) == 0 && a->log_level == b->log_level &&
           a->max_connections == b->max_connections && a->header_timeout_ms == b->header_timeout_ms &&
           a->keepalive_timeout_ms == b->keepalive_timeout_ms && a->max_target == b->max_target &&
           a->max_head == b->max_head && a->max_headers == b->max_headers && a->max_body == b->max_body &&
           a->history_messages == b->history_messages && a->history_bytes == b->history_bytes &&
           a->history_age_ms == b->history_age_ms && a->max_queued_bytes == b->max_queued_bytes &&
           a->slow_policy == b->slow_policy && a->longpoll_timeout_ms == b->longpoll_timeout_ms &&
           a->poll_max_messages == b->poll_max_messages && a->sse_heartbeat_ms == b->sse_heartbeat_ms &&
           a->sse_retry_ms == b->sse_retry_ms && a->iframe_keepalive_ms == b->iframe_keepalive_ms;
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    if (n > 65536) return 0;
    char *text = malloc(n + 1);
    if (!text) return 0;
    memcpy(text, d, n);
    text[n] = '\0';
    static cfg_t a, b;
    char err[256];
    cfg_defaults(&a);
    if (cfg_parse_string(&a, text, err, sizeof(err)) == 0) {
        static char out[65536]; /* every key and up to CFG_MAX_NAMESPACES namespaces */
        size_t len = cfg_dump(&a, out, sizeof(out));
        if (len >= sizeof(out) - 1) abort();
        cfg_defaults(&b);
        if (cfg_parse_string(&b, out, err, sizeof(err)) == 0) {
            if (!same(&a, &b)) abort();
        } else if (!strstr(err, "line too long")) {
            abort();
        }
    }
    /* The same bytes as one flag value for a few key types. */
    const char *keys[] = {"http", "max_body", "header_timeout", "cors_origins", "sse_retry", "log_level"};
    cfg_defaults(&a);
    if (!memchr(d, '\0', n)) cfg_set(&a, keys[n % 6], text, err, sizeof(err));
    free(text);
    return 0;
}
