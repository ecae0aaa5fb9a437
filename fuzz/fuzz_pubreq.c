/* fuzz_pubreq.c - the publish routes' client input (app/pubreq.h): a POST /publish body, a
 * query string checked for unknown parameters, a user id mapped to its personal channel (and a
 * channel back to its user), and
 * the ttl, delay and at values.
 * Every accepted body must name 1..max targets, each a valid channel or user id, and an event
 * and key that pass their own checks; every refusal must leave nothing to free. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/app/pubreq.h"
#include "../src/hub/hub.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    pubreq_t r;
    char why[160];
    int rc = pubreq_parse((const char *)d, n, 8, &r, why, sizeof(why));
    if (rc == 0) {
        if (r.n == 0 || r.n > 8 || !hub_event_valid(r.event, r.event_len)) abort();
        if (r.key && !pubreq_key_valid(r.key, r.key_len)) abort();
        for (uint32_t i = 0; i < r.n; i++) {
            char ch[HUB_MAX_CHANNEL + 1];
            if (r.t[i].broadcast) {
                if (r.t[i].user || r.t[i].name || i != r.n - 1) abort(); /* the last target, nameless */
                continue;
            }
            if (!r.t[i].user && !hub_channel_valid(r.t[i].name, r.t[i].n)) abort();
            if (r.t[i].user && pubreq_user_channel("user/{sub}", r.t[i].name, r.t[i].n, ch, sizeof(ch)) < 0) abort();
        }
        pubreq_free(&r);
    } else if (r.root || r.t || r.decoded) {
        abort();
    }
    static const char *const known[] = {"event", "token", NULL};
    char bad[72];
    if (pubreq_query_check((span_t){(const char *)d, n}, known, bad, sizeof(bad)) < 0 && strlen(bad) > 64) abort();
    char out[HUB_MAX_CHANNEL + 1];
    ssize_t cn = pubreq_user_channel("a/{sub}/b", (const char *)d, n, out, sizeof(out));
    if (cn >= 0 && !hub_channel_valid(out, (size_t)cn)) abort();
    /* and back: a channel read as a personal channel names a valid user whose channel it is */
    const char *user;
    size_t un = pubreq_channel_user("a/{sub}/b", (const char *)d, n, &user);
    if (un) {
        char again[HUB_MAX_CHANNEL + 1];
        ssize_t an = pubreq_user_channel("a/{sub}/b", user, un, again, sizeof(again));
        if (an != (ssize_t)n || memcmp(again, d, n) != 0) abort();
    }
    /* the ttl, delay and at of the publish routes' query strings */
    uint32_t v;
    uint64_t at;
    if (pubreq_ttl_text((const char *)d, n, &v) == 0 && (v < 1 || v > PUBREQ_MAX_TTL)) abort();
    if (pubreq_delay_text((const char *)d, n, &v) == 0 && (v < 1 || v > PUBREQ_MAX_DELAY)) abort();
    if (pubreq_at_text((const char *)d, n, &at) == 0 && at == 0) abort();
    return 0;
}
