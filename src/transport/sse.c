/* sse.c - Server-Sent Events (WHATWG HTML, "Server-sent events").
 *
 * Each message becomes one event: "id: N", "event: NAME" (omitted for "message"), and the data
 * as "data:" lines, which EventSource joins back with LF. The event-stream parser ends a line at
 * LF, CR or CRLF, so a UTF-8 payload goes as text with each of its lines (split at LF, CR and
 * CRLF alike) on a "data:" line of its own: any EventSource sees the payload with every CR and
 * CRLF turned into LF (the format's own rule), and everything else byte for byte - a trailing
 * line break, empty lines, a leading space (the "data: " prefix always has the one space the
 * parser strips), "data:"-looking text, NUL (the parser keeps it in data). Only what the
 * format cannot carry at all - invalid UTF-8, which the stream's UTF-8 decoding would replace
 * with U+FFFD - goes base64-encoded, as one "data:" line, with the event name suffixed
 * "@base64" ("message@base64").
 *
 * The exact form (?exact=1, which herald.js asks for) keeps payloads byte for byte: there a
 * payload with CR also goes as EVENT@base64. Both forms are the same bytes for every message
 * without CR, so they share the cache slots; the exact frames of a message with CR have their
 * own (ENC_SSE_EXACT, ENC_SSE_EXACT_BODY).
 *
 * The frame (wrapped as one HTTP chunk) is encoded once per message and form, and shared by
 * every single-channel subscriber of that form. A multi-channel stream's "id:" line is the
 * composite cursor, which differs per connection, so those frames are the shared event body
 * plus the connection's own id line. Heartbeats are comment lines. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"
#include "stream.h"

/* True when m goes as "data:" text lines in the given form (else base64). */
static bool sse__as_text(const msg_t *m, bool exact)
{
    return (m->flags & (exact ? MSG_TEXT_SAFE : MSG_UTF8)) != 0;
}

/* Writes the event's lines (without id line and final blank line) into a new buffer. */
static char *sse__body(const msg_t *m, bool exact, size_t *len)
{
    bool raw = sse__as_text(m, exact);
    size_t lines = 1;
    if (raw)
        for (uint32_t i = 0; i < m->data_len; i++) lines += m->data[i] == '\n' || m->data[i] == '\r';
    size_t dlen = raw ? m->data_len : 4 * ((m->data_len + 2) / 3);
    size_t cap = 32 + m->event_len + dlen + 7 * lines + 8;
    char *buf = malloc(cap);
    if (!buf) return NULL;
    size_t o = 0;
    bool plain_event = m->event_len == 7 && memcmp(m->event, "message", 7) == 0;
    if (!raw)
        o += (size_t)snprintf(buf + o, cap - o, "event: %s@base64\n", m->event);
    else if (!plain_event)
        o += (size_t)snprintf(buf + o, cap - o, "event: %s\n", m->event);
    if (!raw) {
        memcpy(buf + o, "data: ", 6);
        o += 6;
        o += b64_encode(m->data, m->data_len, buf + o, cap - o);
        buf[o++] = '\n';
    } else {
        /* one "data:" line per line of the payload; LF, CR and CRLF each end one */
        const char *p = m->data, *end = m->data + m->data_len;
        while (1) {
            const char *e = p;
            while (e < end && *e != '\n' && *e != '\r') e++;
            memcpy(buf + o, "data: ", 6);
            o += 6;
            memcpy(buf + o, p, (size_t)(e - p));
            o += (size_t)(e - p);
            buf[o++] = '\n';
            if (e == end) break;
            p = e + 1 + (*e == '\r' && e + 1 < end && e[1] == '\n');
        }
    }
    *len = o;
    return buf;
}

/* ENC_SSE / ENC_SSE_EXACT: "id: N\n" + body + "\n", as one chunk. */
static bytes_t *sse__encode_form(const msg_t *m, bool exact)
{
    size_t blen;
    char *body = sse__body(m, exact, &blen);
    if (!body) return NULL;
    char *frame = malloc(blen + 32);
    if (!frame) {
        free(body);
        return NULL;
    }
    size_t o = (size_t)sprintf(frame, "id: %" PRIu64 "\n", m->id);
    memcpy(frame + o, body, blen);
    o += blen;
    frame[o++] = '\n';
    bytes_t *b = http_chunk(frame, o);
    free(body);
    free(frame);
    return b;
}

static bytes_t *sse__encode(const msg_t *m) { return sse__encode_form(m, false); }
static bytes_t *sse__encode_exact(const msg_t *m) { return sse__encode_form(m, true); }

/* ENC_SSE_BODY / ENC_SSE_EXACT_BODY: the event lines alone (raw, not chunked), for
 * multi-channel frames. */
static bytes_t *sse__encode_body_form(const msg_t *m, bool exact)
{
    size_t blen;
    char *body = sse__body(m, exact, &blen);
    if (!body) return NULL;
    bytes_t *b = bytes_copy(body, blen);
    free(body);
    return b;
}

static bytes_t *sse__encode_body(const msg_t *m) { return sse__encode_body_form(m, false); }
static bytes_t *sse__encode_body_exact(const msg_t *m) { return sse__encode_body_form(m, true); }

static bytes_t *sse__frame(stream_t *st, xsub_t *xs, msg_t *m)
{
    /* the exact form differs only for UTF-8 with CR (text in one form, base64 in the other) */
    bool own = st->exact && sse__as_text(m, false) != sse__as_text(m, true);
    if (st->nch == 1) {
        bytes_t *b = own ? msg_encoded(m, ENC_SSE_EXACT, sse__encode_exact) : msg_encoded(m, ENC_SSE, sse__encode);
        return b ? bytes_ref(b) : NULL;
    }
    bytes_t *body = own ? msg_encoded(m, ENC_SSE_EXACT_BODY, sse__encode_body_exact)
                        : msg_encoded(m, ENC_SSE_BODY, sse__encode_body);
    if (!body) return NULL;
    uint64_t cursor[SUB_MAX_CHANNELS];
    memcpy(cursor, st->cursor, sizeof(cursor));
    cursor[xs->idx] = m->id;
    char idline[SUB_MAX_CHANNELS * 21 + 8];
    size_t il = (size_t)sprintf(idline, "id: ");
    il += cursor_format(cursor, st->nch, idline + il, sizeof(idline) - il);
    idline[il++] = '\n';
    /* one chunk: size line, this connection's id line, the shared event lines, blank line */
    size_t n = il + body->len + 1;
    char size_line[24];
    size_t sl = chunked_size_line(size_line, n);
    bytes_t *b = bytes_new(sl + n + 2);
    if (!b) return NULL;
    char *o = b->data;
    memcpy(o, size_line, sl);
    memcpy(o + sl, idline, il);
    memcpy(o + sl + il, body->data, body->len);
    memcpy(o + sl + il + body->len, "\n\r\n", 3);
    return b;
}

static bytes_t *sse__gap_frame(stream_t *st, const char *json, size_t n)
{
    char buf[2200];
    int len = snprintf(buf, sizeof(buf), "event: gap\ndata: %.*s\n\n", (int)n, json);
    return http_chunk(buf, (size_t)len);
}

static bytes_t *sse__preamble(stream_t *st)
{
    char buf[64];
    int n = snprintf(buf, sizeof(buf), "retry: %u\n\n", st->x->cfg->sse_retry_ms);
    return http_chunk(buf, (size_t)n);
}

static bytes_t *sse__expired_frame(stream_t *st)
{
    static const char ev[] = "event: expired\ndata: {\"reason\":\"token expired\"}\n\n";
    return http_chunk(ev, sizeof(ev) - 1);
}

/* "retry: N" (when asked), "event: E", "data: JSON": a disconnect or unsubscribed notice. */
static bytes_t *sse__notice_frame(stream_t *st, const char *event, const char *json, size_t n, uint32_t retry_ms)
{
    (void)st;
    char buf[2200];
    int len = retry_ms
                  ? snprintf(buf, sizeof(buf), "retry: %u\nevent: %s\ndata: %.*s\n\n", retry_ms, event, (int)n, json)
                  : snprintf(buf, sizeof(buf), "event: %s\ndata: %.*s\n\n", event, (int)n, json);
    return len > 0 && (size_t)len < sizeof(buf) ? http_chunk(buf, (size_t)len) : NULL;
}

/* "event: withdrawn" (unread, join, leave) with its JSON: no id line, so the client's
 * Last-Event-ID stays. */
static bytes_t *sse__event_frame(stream_t *st, const char *event, const char *json, size_t n)
{
    return sse__notice_frame(st, event, json, n, 0);
}

static const stream_kind_t sse_kind = {
    .notice_frame = sse__notice_frame,
    .event_frame = sse__event_frame,
    .expired_frame = sse__expired_frame,
    .xp = XP_SSE,
    .ctype = "text/event-stream",
    .headers = "X-Accel-Buffering: no\r\nConnection: keep-alive\r\n",
    .frame = sse__frame,
    .gap_frame = sse__gap_frame,
    .preamble = sse__preamble,
};

void sse_serve(xp_ctx_t *x, http_conn_t *hc, subreq_t *sr)
{
    stream_start(x, hc, sr, &sse_kind, x->sse_heartbeat, x->cfg->sse_heartbeat_ms);
}
