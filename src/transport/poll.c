/* poll.c - short polling: GET /sub/{channels}?mode=poll&last_id=CURSOR answers at once with the
 * messages after the cursor (at most poll_max_messages), their count, the cursor to use next,
 * and gap notices. Stateless between requests: the cursor is the client's. */
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"
#include "transport.h"

uint32_t poll_collect(xp_ctx_t *x, const subreq_t *sr, uint64_t *cursor, msg_t **msgs, uint32_t max, char *gap,
                      size_t gapcap)
{
    uint32_t n = 0;
    size_t g = 0;
    gap[0] = 0;
    for (uint32_t i = 0; i < sr->nch; i++) {
        cursor[i] = sr->cursor[i];
        if (!sr->has_cursor) continue; /* no cursor: nothing old, just the current position */
        hub_cursor_info_t info;
        uint32_t got = hub_after(x->hub, sr->ch[i], sr->cursor[i], msgs + n, max - n, &info);
        if (info.gap && g + 600 < gapcap) {
            if (g) gap[g++] = ',';
            g += gap_json_resume(sr->ch[i], sr->cursor[i], info.first_available, gap + g, gapcap - g);
        }
        if (got) cursor[i] = msgs[n + got - 1]->id;
        else if (info.gap) cursor[i] = info.last_id; /* nothing left to fetch: move past the gap */
        n += got;
    }
    return n;
}

bool poll_respond_now(xp_ctx_t *x, http_conn_t *hc, const subreq_t *sr, uint8_t xp, bool only_if_any,
                      uint64_t *cursor)
{
    uint32_t max = x->cfg->poll_max_messages;
    msg_t **msgs = malloc((max ? max : 1) * sizeof(*msgs));
    char gap[SUB_MAX_CHANNELS * 600 + 1];
    if (!msgs) {
        http_error(hc, HR_ENOMEM, "out of memory");
        return true;
    }
    uint32_t n = poll_collect(x, sr, cursor, msgs, max, gap, sizeof(gap));
    bool loading = false; /* a store still loading a channel (engine = redis): answer once it is done */
    for (uint32_t i = 0; i < sr->nch; i++) loading |= sr->ch[i]->loading != 0;
    if (loading || (only_if_any && !n && !gap[0])) {
        if (loading) memcpy(cursor, sr->cursor, sr->nch * sizeof(*cursor));
        free(msgs);
        return false;
    }
    span_t names[SUB_MAX_CHANNELS];
    bytes_t *b = poll_answer(names, subreq_names(sr, names), cursor, msgs, n, gap[0] ? gap : NULL);
    free(msgs);
    if (!b) {
        http_error(hc, HR_ENOMEM, "out of memory");
        return true;
    }
    x->metrics->delivered[xp] += n;
    http_respond(hc, 200, "application/json", b->data, b->len, "Cache-Control: no-cache\r\n");
    bytes_unref(b);
    return true;
}

void poll_serve(xp_ctx_t *x, http_conn_t *hc, subreq_t *sr)
{
    uint64_t cursor[SUB_MAX_CHANNELS];
    if (!poll_respond_now(x, hc, sr, XP_POLL, false, cursor)) longpoll_wait(x, hc, sr, cursor, true);
}
