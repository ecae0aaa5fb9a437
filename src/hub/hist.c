/* hist.c - see hist.h. */
#include "hist.h"

#include <stdlib.h>

#include "../core/err.h"

void hist_init(hist_t *h) { *h = (hist_t){0}; }

void hist_free(hist_t *h)
{
    for (uint32_t i = 0; i < h->count; i++) msg_unref(hist_at(h, i));
    free(h->ring);
    *h = (hist_t){0};
}

static void hist_pop(hist_t *h)
{
    msg_t *m = h->ring[h->head];
    h->bytes -= msg_cost(m);
    msg_unref(m);
    h->head = (h->head + 1) % h->cap;
    h->count--;
}

void hist_trim(hist_t *h, const hist_limits_t *lim, uint64_t now)
{
    while (h->count && (h->count > lim->max_messages || h->bytes > lim->max_bytes)) hist_pop(h);
    if (lim->max_age_ms)
        while (h->count && hist_at(h, 0)->time_ms + lim->max_age_ms <= now) hist_pop(h);
    if (h->count == 0 && h->ring) {
        free(h->ring);
        h->ring = NULL;
        h->cap = h->head = 0;
    }
}

int hist_push(hist_t *h, msg_t *m, const hist_limits_t *lim, uint64_t now)
{
    if (lim->max_messages == 0) return 0;
    if (h->count == h->cap) {
        uint32_t ncap = h->cap ? h->cap * 2 : 8;
        if (ncap > lim->max_messages + 1) ncap = lim->max_messages + 1;
        if (ncap <= h->count) ncap = h->count + 1;
        msg_t **r = malloc(ncap * sizeof(*r));
        if (!r) return HR_ENOMEM;
        for (uint32_t i = 0; i < h->count; i++) r[i] = hist_at(h, i);
        free(h->ring);
        h->ring = r;
        h->cap = ncap;
        h->head = 0;
    }
    h->ring[(h->head + h->count) % h->cap] = msg_ref(m);
    h->count++;
    h->bytes += msg_cost(m);
    hist_trim(h, lim, now);
    return 0;
}

uint32_t hist_index_after(const hist_t *h, uint64_t after)
{
    if (!h->count) return 0;
    uint64_t first = hist_at(h, 0)->id;
    if (after < first) return 0;
    uint64_t idx = after - first + 1;
    return idx > h->count ? h->count : (uint32_t)idx;
}
