/* msg.c - immutable messages and their encoding cache; see msg.h. */
#include "msg.h"

#include <stdlib.h>
#include <string.h>

#include "../core/err.h"

bool utf8_valid(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        unsigned cp;
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (n - i < len) return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += len;
    }
    return true;
}

msg_t *msg_new(const char *channel, size_t channel_len, const char *event, size_t event_len,
               const void *data, size_t data_len, uint64_t id, uint64_t time_ms)
{
    if (channel_len > UINT16_MAX || event_len > 255 || data_len > UINT32_MAX - 4096) return NULL;
    msg_t *m = malloc(sizeof(*m) + channel_len + event_len + data_len + 3);
    if (!m) return NULL;
    memset(m, 0, sizeof(*m));
    m->refs = 1;
    m->id = id;
    m->time_ms = time_ms;
    char *p = m->mem;
    memcpy(p, channel, channel_len);
    p[channel_len] = 0;
    m->channel = p;
    m->channel_len = (uint32_t)channel_len;
    p += channel_len + 1;
    memcpy(p, event, event_len);
    p[event_len] = 0;
    m->event = p;
    m->event_len = (uint32_t)event_len;
    p += event_len + 1;
    if (data_len) memcpy(p, data, data_len);
    p[data_len] = 0;
    m->data = p;
    m->data_len = (uint32_t)data_len;
    if (utf8_valid(m->data, data_len)) {
        m->flags |= MSG_UTF8;
        if (!memchr(m->data, '\r', data_len)) m->flags |= MSG_TEXT_SAFE;
    }
    return m;
}

void msg_unref(msg_t *m)
{
    if (!m || --m->refs) return;
    for (int i = 0; i < ENC_SLOTS; i++) bytes_unref(m->enc[i]);
    free(m->props);
    free(m);
}

int msg_set_props(msg_t *m, const void *props, size_t n)
{
    if (!n) return 0;
    if (n > UINT32_MAX || !(m->props = malloc(n))) return HR_ENOMEM;
    memcpy(m->props, props, n);
    m->props_len = (uint32_t)n;
    return 0;
}

bytes_t *msg_encoded(msg_t *m, int slot, msg_encoder encode)
{
    if (!m->enc[slot]) m->enc[slot] = encode(m);
    return m->enc[slot];
}

bytes_t *msg_encoded_ctx(msg_t *m, int slot, msg_encoder_ctx encode, void *ctx)
{
    if (!m->enc[slot]) m->enc[slot] = encode(ctx, m);
    return m->enc[slot];
}

static void put_le(char *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++) p[i] = (char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

void msg_pack(const msg_t *m, char *out)
{
    put_le(out, m->id, 8);
    put_le(out + 8, m->time_ms, 8);
    put_le(out + 16, m->flags, 4);
    put_le(out + 20, m->expiry_s, 4);
    put_le(out + 24, m->event_len, 2);
    put_le(out + 26, m->props_len, 4);
    char *p = out + MSG_PACK_HDR;
    memcpy(p, m->event, m->event_len);
    if (m->props_len) memcpy(p + m->event_len, m->props, m->props_len);
    memcpy(p + m->event_len + m->props_len, m->data, m->data_len);
}

msg_t *msg_unpack(const void *buf, size_t n, const char *channel, size_t channel_len)
{
    const unsigned char *p = buf;
    if (n < MSG_PACK_HDR) return NULL;
    uint32_t el = (uint32_t)get_le(p + 24, 2), plen = (uint32_t)get_le(p + 26, 4);
    if ((uint64_t)MSG_PACK_HDR + el + plen > n) return NULL;
    const char *ev = (const char *)p + MSG_PACK_HDR;
    msg_t *m = msg_new(channel, channel_len, ev, el, ev + el + plen, n - MSG_PACK_HDR - el - plen, get_le(p, 8),
                       get_le(p + 8, 8));
    if (!m) return NULL;
    /* what the data is (UTF-8, text-safe) is worked out from the data, not believed */
    uint32_t derived = MSG_UTF8 | MSG_TEXT_SAFE;
    m->flags = ((uint32_t)get_le(p + 16, 4) & ~derived) | (m->flags & derived);
    m->expiry_s = (uint32_t)get_le(p + 20, 4);
    if (msg_set_props(m, ev + el, plen) < 0) {
        msg_unref(m);
        return NULL;
    }
    return m;
}
