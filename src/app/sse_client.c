/* sse_client.c - incremental SSE stream parser (see sse_client.h) and a base64 decoder.
 *
 * The caller's buffer holds two regions back to back: the data of the event being built
 * [0, data_len) and the line being read [data_len, data_len + line_len). When a "data" line
 * ends, its value is moved down to the end of the data region and a '\n' is appended; the '\n'
 * always fits because the value is shorter than the "data" field name it followed. Any other
 * line is consumed where it lies. So no byte is copied twice and nothing is allocated. */
#include "sse_client.h"

#include <string.h>

#include "../core/err.h"
#include "../core/b64.h"

void sse_client_init(sse_client_t *p, char *buf, size_t cap, sse_client_cb cb, void *ud)
{
    memset(p, 0, sizeof(*p));
    p->buf = buf;
    p->cap = cap;
    p->cb = cb;
    p->ud = ud;
    p->retry_ms = -1;
}

void sse_client_restart(sse_client_t *p)
{
    p->data_len = 0;
    p->line_len = 0;
    p->after_cr = false;
    p->bom_done = false;
    p->stopped = false;
    p->event[0] = '\0';
    memcpy(p->id_buf, p->last_id, sizeof(p->id_buf));
}

static void dispatch(sse_client_t *p)
{
    memcpy(p->last_id, p->id_buf, sizeof(p->last_id));
    if (p->data_len == 0) {
        p->event[0] = '\0';
        return;
    }
    p->buf[--p->data_len] = '\0'; /* the final '\n' becomes the terminator */
    sse_client_event_t ev = {
        .event = p->event[0] ? p->event : "message",
        .id = p->last_id,
        .data = p->buf,
        .data_len = p->data_len,
    };
    if (p->cb && p->cb(p->ud, &ev) != 0) p->stopped = true;
    p->data_len = 0;
    p->event[0] = '\0';
}

static bool field_is(const char *f, size_t n, const char *name)
{
    return n == strlen(name) && memcmp(f, name, n) == 0;
}

static void process_line(sse_client_t *p)
{
    char *line = p->buf + p->data_len;
    size_t len = p->line_len;
    p->line_len = 0;
    if (!p->bom_done) {
        p->bom_done = true;
        if (len >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) line += 3, len -= 3;
    }
    if (len == 0) {
        dispatch(p);
        return;
    }
    if (line[0] == ':') return; /* comment */
    const char *colon = memchr(line, ':', len);
    size_t flen = colon ? (size_t)(colon - line) : len;
    const char *v = colon ? colon + 1 : line + len;
    size_t vlen = (size_t)(line + len - v);
    if (vlen && *v == ' ') v++, vlen--;

    if (field_is(line, flen, "data")) {
        memmove(p->buf + p->data_len, v, vlen);
        p->data_len += vlen;
        p->buf[p->data_len++] = '\n';
    } else if (field_is(line, flen, "event")) {
        size_t n = vlen < sizeof(p->event) - 1 ? vlen : sizeof(p->event) - 1;
        memcpy(p->event, v, n);
        p->event[n] = '\0';
    } else if (field_is(line, flen, "id")) {
        if (!memchr(v, '\0', vlen) && vlen < sizeof(p->id_buf)) {
            memcpy(p->id_buf, v, vlen);
            p->id_buf[vlen] = '\0';
        }
    } else if (field_is(line, flen, "retry")) {
        int64_t ms = 0;
        size_t i = 0;
        for (; i < vlen && v[i] >= '0' && v[i] <= '9'; i++)
            if (ms < 1000000000000LL) ms = ms * 10 + (v[i] - '0');
        if (vlen && i == vlen) p->retry_ms = ms;
    }
    /* any other field is ignored */
}

ssize_t sse_client_feed(sse_client_t *p, const char *d, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (p->after_cr) {
            p->after_cr = false;
            if (d[i] == '\n') {
                i++;
                continue;
            }
        }
        size_t j = i;
        while (j < n && d[j] != '\r' && d[j] != '\n') j++;
        size_t seg = j - i;
        if (seg > p->cap - p->data_len - p->line_len - 1) return HR_EFULL;
        memcpy(p->buf + p->data_len + p->line_len, d + i, seg);
        p->line_len += seg;
        i = j;
        if (i == n) break;
        p->after_cr = d[i] == '\r';
        i++;
        process_line(p);
        if (p->stopped) return (ssize_t)i;
    }
    return (ssize_t)n;
}

ssize_t sse_client_b64_decode(const char *in, size_t n, uint8_t *out)
{
    long r = b64_decode_ex(in, n, out, (n / 4 + 1) * 3, B64_PAD_OK | B64_SKIP_SPACE);
    return r < 0 ? HR_EINVAL : (ssize_t)r;
}
