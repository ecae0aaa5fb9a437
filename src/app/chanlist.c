/* chanlist.c - GET /channels; see chanlist.h.
 *
 * The hub keeps channels in a hash map, so a page is made by one walk that keeps the matching
 * names after the cursor, a sort, and the first `limit` of them: O(channels) per page, which is
 * fine for an admin call (it runs on the loop: a node with a million channels spends some
 * milliseconds per page). */
#include "chanlist.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"

static int chanlist__cmp(const void *a, const void *b)
{
    const chan_t *x = *(chan_t *const *)a, *y = *(chan_t *const *)b;
    size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = memcmp(x->name, y->name, n);
    return c ? c : (x->name_len > y->name_len) - (x->name_len < y->name_len);
}

/* a[0..an) after b[0..bn) in byte order */
static bool chanlist__after(const char *a, size_t an, const char *b, size_t bn)
{
    size_t n = an < bn ? an : bn;
    int c = memcmp(a, b, n);
    return c > 0 || (c == 0 && an > bn);
}

static bool chanlist__query(http_conn_t *hc, http_req_t *req, const char *key, char *out, size_t cap, size_t *len)
{
    ssize_t n = http_req_query(req, key, out, cap);
    if (n == HR_ENOTFOUND) n = 0;
    if (n < 0) {
        http_error(hc, HR_EINVAL, "invalid query parameter (prefix, cursor: at most 255 bytes; limit: 1-1000)");
        return false;
    }
    out[n] = 0;
    *len = (size_t)n;
    return true;
}

void chanlist_handle(app_t *app, http_conn_t *hc, http_req_t *req)
{
    if (!span_eq(req->method, "GET") && !span_eq(req->method, "HEAD")) {
        http_method_not_allowed(hc, "GET, HEAD", "use GET to list channels");
        return;
    }
    if (!xp_require_admin(&app->xp, hc, req, "list channels", NULL, 0)) return;
    char prefix[HUB_MAX_CHANNEL + 1], cursor[HUB_MAX_CHANNEL + 1], lim[8];
    size_t pn, cn, ln;
    if (!chanlist__query(hc, req, "prefix", prefix, sizeof(prefix), &pn) ||
        !chanlist__query(hc, req, "cursor", cursor, sizeof(cursor), &cn) ||
        !chanlist__query(hc, req, "limit", lim, sizeof(lim), &ln))
        return;
    char *end = NULL;
    unsigned long limit = ln ? strtoul(lim, &end, 10) : CHANLIST_DEFAULT;
    if ((ln && (*end || lim[0] < '0' || lim[0] > '9')) || limit < 1 || limit > CHANLIST_MAX) {
        http_error(hc, HR_EINVAL, "limit must be 1-1000");
        return;
    }
    hub_t *hub = app->xp.hub;
    chan_t **all = malloc(((size_t)hub->chans.n + 1) * sizeof(*all));
    if (!all) {
        http_error(hc, HR_ENOMEM, "out of memory");
        return;
    }
    size_t n = 0;
    hmap_iter_t it;
    hmap_iter_init(&it, &hub->chans);
    for (hmap_node_t *node; (node = hmap_iter_next(&it));) {
        chan_t *ch = container_of(node, chan_t, node);
        if (ch->name_len < pn || memcmp(ch->name, prefix, pn) != 0) continue;
        if (cn && !chanlist__after(ch->name, ch->name_len, cursor, cn)) continue;
        all[n++] = ch;
    }
    qsort(all, n, sizeof(*all), chanlist__cmp);
    size_t take = n < limit ? n : limit;
    size_t cap = 128 + take * (6 * HUB_MAX_CHANNEL + 80) + 6 * HUB_MAX_CHANNEL;
    char *out = malloc(cap);
    if (!out) {
        free(all);
        http_error(hc, HR_ENOMEM, "out of memory");
        return;
    }
    size_t o = (size_t)snprintf(out, cap, "{\"channels\":[");
    for (size_t i = 0; i < take; i++) {
        o += (size_t)snprintf(out + o, cap - o, "%s{\"channel\":\"", i ? "," : "");
        o += json_escape(all[i]->name, all[i]->name_len, out + o, cap - o);
        o += (size_t)snprintf(out + o, cap - o, "\",\"subscribers\":%u,\"last_id\":\"%" PRIu64 "\"}", all[i]->nsubs,
                              all[i]->last_id);
    }
    o += (size_t)snprintf(out + o, cap - o, "],\"next_cursor\":");
    if (n > take) {
        out[o++] = '"';
        o += json_escape(all[take - 1]->name, all[take - 1]->name_len, out + o, cap - o);
        out[o++] = '"';
    } else {
        o += (size_t)snprintf(out + o, cap - o, "null");
    }
    o += (size_t)snprintf(out + o, cap - o, ",\"node\":\"local\"}");
    free(all);
    http_respond(hc, 200, "application/json", out, o, "Cache-Control: no-cache\r\n");
    free(out);
}
