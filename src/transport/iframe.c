/* iframe.c - the "forever frame": a text/html chunked response that a hidden iframe renders
 * progressively, each message a <script> block calling a function of the parent page.
 *
 * The document starts with over 2 KiB of padding because browsers buffer the first bytes of a
 * streaming body before they render (and run) anything. Its first script defines h(m), which
 * calls parent.<callback>(m); every message is then "<script>h({...})</script>" with the same
 * JSON object as polls, escaped so that "<", ">", "&", U+2028 and U+2029 appear only as \u escapes:
 * no payload can close the script block or break the JavaScript. Because the callback name lives
 * in the per-connection preamble, the message chunks are identical for every subscriber and are
 * encoded once. Keepalives are HTML comments. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"
#include "stream.h"

#define IFRAME_PADDING 2048

static bytes_t *iframe__encode(const msg_t *m)
{
    bytes_t *json = msg_encoded((msg_t *)m, ENC_JSON, json_encode_msg);
    if (!json) return NULL;
    size_t n = json->len + 32;
    char *buf = malloc(n);
    if (!buf) return NULL;
    size_t o = (size_t)sprintf(buf, "<script>h(");
    memcpy(buf + o, json->data, json->len);
    o += json->len;
    o += (size_t)sprintf(buf + o, ")</script>\n");
    bytes_t *b = http_chunk(buf, o);
    free(buf);
    return b;
}

static bytes_t *iframe__frame(stream_t *st, xsub_t *xs, msg_t *m)
{
    bytes_t *b = msg_encoded(m, ENC_IFRAME, iframe__encode);
    return b ? bytes_ref(b) : NULL;
}

static bytes_t *iframe__gap_frame(stream_t *st, const char *json, size_t n)
{
    /* json holds only escaped channel names and digits: wrap it as {"gap":true,...} */
    char buf[2300];
    int len = snprintf(buf, sizeof(buf), "<script>h({\"gap\":true,%.*s)</script>\n", (int)(n > 0 ? n - 1 : 0),
                       n > 1 ? json + 1 : "}");
    if (n <= 1) len = snprintf(buf, sizeof(buf), "<script>h({\"gap\":true})</script>\n");
    return http_chunk(buf, (size_t)len);
}

static bytes_t *iframe__preamble(stream_t *st)
{
    size_t cap = IFRAME_PADDING + 512;
    char *buf = malloc(cap);
    if (!buf) return NULL;
    size_t o = (size_t)snprintf(buf, cap,
                                "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>herald</title></head><body>"
                                "<script>var h=function(m){try{parent.%s(m)}catch(e){}};</script>\n<!--",
                                st->callback);
    memset(buf + o, ' ', IFRAME_PADDING);
    o += IFRAME_PADDING;
    o += (size_t)snprintf(buf + o, cap - o, "-->\n");
    bytes_t *b = http_chunk(buf, o);
    free(buf);
    return b;
}

static bytes_t *iframe__expired_frame(stream_t *st)
{
    static const char ev[] = "<script>h({\"expired\":true,\"reason\":\"token expired\"})</script>\n";
    return http_chunk(ev, sizeof(ev) - 1);
}

/* h({"<event>":true,<json's members>}): a disconnect or unsubscribed notice (json is escaped
 * script-safe). */
static bytes_t *iframe__notice_frame(stream_t *st, const char *event, const char *json, size_t n, uint32_t retry_ms)
{
    (void)st, (void)retry_ms;
    if (n < 2) return NULL;
    char buf[2300];
    int len = snprintf(buf, sizeof(buf), "<script>h({\"%s\":true,%.*s)</script>\n", event, (int)(n - 1), json + 1);
    return len > 0 && (size_t)len < sizeof(buf) ? http_chunk(buf, (size_t)len) : NULL;
}

/* h({"withdrawn":true,"channel":C,"id":N}): a channel event (withdrawn, unread, join, leave). */
static bytes_t *iframe__event_frame(stream_t *st, const char *event, const char *json, size_t n)
{
    return iframe__notice_frame(st, event, json, n, 0);
}

static const stream_kind_t iframe_kind = {
    .notice_frame = iframe__notice_frame,
    .event_frame = iframe__event_frame,
    .expired_frame = iframe__expired_frame,
    .xp = XP_IFRAME,
    .ctype = "text/html; charset=utf-8",
    .headers = "X-Accel-Buffering: no\r\nX-Content-Type-Options: nosniff\r\n",
    .frame = iframe__frame,
    .gap_frame = iframe__gap_frame,
    .preamble = iframe__preamble,
};

void iframe_serve(xp_ctx_t *x, http_conn_t *hc, subreq_t *sr)
{
    stream_start(x, hc, sr, &iframe_kind, x->iframe_keepalive, x->cfg->iframe_keepalive_ms);
}
