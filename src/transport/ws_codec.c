/* ws_codec.c - the pure WebSocket codec: RFC 6455 frames, close payloads, the accept key, and
 * RFC 7692 permessage-deflate offer negotiation.
 *
 * Frame parsing decides every refusal from the bytes it has, in wire order: the checks on byte 0
 * (RSV bits, opcode, FIN of a control frame) run as soon as byte 0 is there, the mask and control
 * length checks as soon as byte 1 is, and the length checks (minimal encoding, top bit, the 1009
 * limit) as soon as the length field is complete - before the mask key or any payload arrives, so
 * a server never buffers a frame it will refuse. Because each check reads only bytes before its
 * decision point, a prefix of a frame yields either HR_EAGAIN or exactly the result of the whole
 * frame; input may be split anywhere. Nothing is written until the whole frame is present.
 *
 * UTF-8 validation keeps the code point being assembled and the number of continuation bytes
 * still due. After every byte it asks whether any completion of the bytes so far can still be a
 * valid scalar value (the reachable range [cp << 6k, (cp << 6k) | (2^6k - 1)] must reach the
 * length's minimum, start at or below U+10FFFF and not lie wholly inside the surrogates). This one
 * rule refuses C0/C1 and F5..FF at the lead byte and E0 80, ED A0, F0 80, F4 90 at the second
 * byte - the "fail fast" behaviour Autobahn tests 6.x expect - without a table.
 *
 * Negotiation parses Sec-WebSocket-Extensions per RFC 6455 section 9.1 (extension-list of
 * token *( ";" token [ "=" ( token | quoted-string ) ] ), with optional whitespace around the
 * separators). Elements are split at commas outside quoted strings, so a malformed offer only
 * costs that offer. Names compare case-sensitively: a client that sent an odd spelling gets no
 * compression rather than an answer it may not recognise. */
#include "ws_codec.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "../core/err.h"
#include "../core/span.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* Refusal: sets the close code and reason and returns HR_EPROTO. */
static int refuse(uint16_t code, const char *reason, uint16_t *close_code, const char **why)
{
    *close_code = code;
    *why = reason;
    return HR_EPROTO;
}

static bool opcode_known(uint8_t op)
{
    return op == WS_OP_CONT || op == WS_OP_TEXT || op == WS_OP_BINARY || op == WS_OP_CLOSE || op == WS_OP_PING ||
           op == WS_OP_PONG;
}

/* Both parsers: done NULL parses whole frames only; else see ws_frame_parse_partial(). */
static ssize_t frame_parse(char *buf, size_t len, const ws_limits_t *lim, ws_frame_t *f, uint64_t *done,
                           uint16_t *close_code, const char **why)
{
    if (done) f->header_len = 0;
    const unsigned char *b = (const unsigned char *)buf;
    if (len < 1) return HR_EAGAIN;

    uint8_t op = b[0] & 0x0F;
    bool fin = b[0] & 0x80, rsv1 = b[0] & 0x40, control = op & 0x08;
    if (b[0] & 0x30) return refuse(WS_CLOSE_PROTOCOL, "RSV2 or RSV3 set", close_code, why);
    if (!opcode_known(op)) return refuse(WS_CLOSE_PROTOCOL, "reserved opcode", close_code, why);
    if (rsv1 && !lim->rsv1_ok) return refuse(WS_CLOSE_PROTOCOL, "RSV1 set without an extension", close_code, why);
    if (rsv1 && (control || op == WS_OP_CONT))
        return refuse(WS_CLOSE_PROTOCOL, "RSV1 set on a control or continuation frame", close_code, why);
    if (control && !fin) return refuse(WS_CLOSE_PROTOCOL, "fragmented control frame", close_code, why);

    if (len < 2) return HR_EAGAIN;
    bool masked = b[1] & 0x80;
    if (lim->server && !masked) return refuse(WS_CLOSE_PROTOCOL, "unmasked client frame", close_code, why);
    if (!lim->server && masked) return refuse(WS_CLOSE_PROTOCOL, "masked server frame", close_code, why);
    uint64_t plen = b[1] & 0x7F;
    if (control && plen > WS_MAX_CONTROL)
        return refuse(WS_CLOSE_PROTOCOL, "control frame payload over 125 bytes", close_code, why);

    size_t hlen = 2;
    if (plen == 126) {
        if (len < 4) return HR_EAGAIN;
        plen = (uint64_t)b[2] << 8 | b[3];
        hlen = 4;
        if (plen < 126) return refuse(WS_CLOSE_PROTOCOL, "length not minimally encoded", close_code, why);
    } else if (plen == 127) {
        if (len < 10) return HR_EAGAIN;
        plen = 0;
        for (int i = 2; i < 10; i++) plen = plen << 8 | b[i];
        hlen = 10;
        if (plen >> 63) return refuse(WS_CLOSE_PROTOCOL, "64-bit length with the top bit set", close_code, why);
        if (plen <= 0xFFFF) return refuse(WS_CLOSE_PROTOCOL, "length not minimally encoded", close_code, why);
    }
    if (plen > lim->max_payload) return refuse(WS_CLOSE_TOO_BIG, "frame payload over the limit", close_code, why);

    size_t key_at = hlen;
    if (masked) hlen += 4;
    if (len < hlen) return HR_EAGAIN;
    bool whole = len - hlen >= plen;
    if (!whole && !done) return HR_EAGAIN;

    char *payload = buf + hlen;
    uint64_t have = whole ? plen : len - hlen, from = done ? *done : 0;
    if (masked && have > from) ws_mask(payload + from, (size_t)(have - from), b + key_at, (size_t)from);
    if (done && have > from) *done = have;
    f->fin = fin;
    f->rsv1 = rsv1;
    f->opcode = op;
    f->header_len = (uint32_t)hlen;
    f->payload_len = plen;
    f->payload = payload;
    return whole ? (ssize_t)(hlen + plen) : HR_EAGAIN;
}

ssize_t ws_frame_parse(char *buf, size_t len, const ws_limits_t *lim, ws_frame_t *f, uint16_t *close_code,
                       const char **why)
{
    return frame_parse(buf, len, lim, f, NULL, close_code, why);
}

ssize_t ws_frame_parse_partial(char *buf, size_t len, const ws_limits_t *lim, ws_frame_t *f, uint64_t *done,
                               uint16_t *close_code, const char **why)
{
    return frame_parse(buf, len, lim, f, done, close_code, why);
}

/* ---- UTF-8 ---- */

/* ws_utf8_t.state: 0 at a boundary, UTF8_INSIDE within a sequence, UTF8_FAILED (sticky) once some
 * byte so far can start no valid UTF-8. */
#define UTF8_INSIDE 1
#define UTF8_FAILED UINT32_MAX

/* Whether some completion of a sequence with code point prefix cp and `need` continuation bytes
 * still due can be a scalar value of at least min. With need == 0 this is the final check. */
static bool utf8_reachable(uint32_t cp, uint32_t need, uint32_t min)
{
    uint32_t lo = cp << (6 * need), hi = lo | ((UINT32_C(1) << (6 * need)) - 1);
    if (hi < min || lo > 0x10FFFF) return false;
    return !(lo >= 0xD800 && hi <= 0xDFFF);
}

bool ws_utf8_feed(ws_utf8_t *u, const void *p, size_t n)
{
    const unsigned char *s = p;
    if (u->state == UTF8_FAILED) return false;
    size_t i = 0;
    while (i < n) {
        if (u->need == 0) {
            /* At a boundary: skip ASCII a word at a time. */
            while (n - i >= 8) {
                uint64_t w;
                memcpy(&w, s + i, 8);
                if (w & UINT64_C(0x8080808080808080)) break;
                i += 8;
            }
            if (i == n) break;
            unsigned c = s[i++];
            if (c < 0x80) continue;
            if (c < 0xC0 || c > 0xF7) {
                u->state = UTF8_FAILED; /* stray continuation byte, or F8..FF */
                return false;
            }
            u->need = c < 0xE0 ? 1 : c < 0xF0 ? 2 : 3;
            u->cp = c & (0x3Fu >> u->need); /* 5, 4 or 3 payload bits */
            u->min = u->need == 1 ? 0x80 : u->need == 2 ? 0x800 : 0x10000;
        } else {
            unsigned c = s[i++];
            if ((c & 0xC0) != 0x80) {
                u->state = UTF8_FAILED;
                return false;
            }
            u->cp = u->cp << 6 | (c & 0x3F);
            u->need--;
        }
        if (!utf8_reachable(u->cp, u->need, u->min)) {
            u->state = UTF8_FAILED;
            return false;
        }
        u->state = u->need ? UTF8_INSIDE : 0;
    }
    return true;
}

bool ws_utf8_done(const ws_utf8_t *u) { return u->state == 0; }

/* ---- messages ---- */

int ws_msg_frame(ws_msg_t *m, const ws_frame_t *f, uint64_t max_message, uint16_t *close_code, const char **why)
{
    if (f->opcode == WS_OP_CONT) {
        if (!m->in_message) return refuse(WS_CLOSE_PROTOCOL, "continuation frame without a message", close_code, why);
        if (f->payload_len > max_message || m->size > max_message - f->payload_len)
            return refuse(WS_CLOSE_TOO_BIG, "message over the limit", close_code, why);
        m->size += f->payload_len;
        if (m->frames < UINT32_MAX) m->frames++;
    } else if (f->opcode == WS_OP_TEXT || f->opcode == WS_OP_BINARY) {
        if (m->in_message)
            return refuse(WS_CLOSE_PROTOCOL, "new message while a fragmented one is in progress", close_code, why);
        if (f->payload_len > max_message) return refuse(WS_CLOSE_TOO_BIG, "message over the limit", close_code, why);
        m->opcode = f->opcode;
        m->compressed = f->rsv1;
        m->size = f->payload_len;
        m->frames = 1;
    } else {
        return refuse(WS_CLOSE_PROTOCOL, "not a data frame", close_code, why); /* a caller bug; refused */
    }
    m->in_message = !f->fin;
    return 0;
}

/* ---- close frames ---- */

/* Close codes a peer may send (RFC 6455 section 7.4; 1012-1014 from the IANA registry). */
static bool close_code_ok(unsigned c)
{
    return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
}

int ws_close_parse(const char *p, size_t n, uint16_t *code, uint16_t *close_code, const char **why)
{
    if (n == 0) {
        *code = WS_CLOSE_NO_STATUS;
        return 0;
    }
    if (n == 1) return refuse(WS_CLOSE_PROTOCOL, "close payload of one byte", close_code, why);
    unsigned c = (unsigned)(unsigned char)p[0] << 8 | (unsigned char)p[1];
    if (!close_code_ok(c)) return refuse(WS_CLOSE_PROTOCOL, "invalid close code", close_code, why);
    ws_utf8_t u = {0};
    if (!ws_utf8_feed(&u, p + 2, n - 2) || !ws_utf8_done(&u))
        return refuse(WS_CLOSE_INVALID_DATA, "close reason not UTF-8", close_code, why);
    *code = (uint16_t)c;
    return 0;
}

/* ---- encoding ---- */

static size_t header_write(uint8_t *out, uint8_t opcode, bool fin, bool rsv1, uint64_t n, uint8_t mask_bit)
{
    out[0] = (uint8_t)((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | (opcode & 0x0F));
    if (n < 126) {
        out[1] = (uint8_t)(mask_bit | n);
        return 2;
    }
    if (n <= 0xFFFF) {
        out[1] = mask_bit | 126;
        out[2] = (uint8_t)(n >> 8);
        out[3] = (uint8_t)n;
        return 4;
    }
    out[1] = mask_bit | 127;
    for (int i = 0; i < 8; i++) out[2 + i] = (uint8_t)(n >> (56 - 8 * i));
    return 10;
}

size_t ws_header_write(uint8_t *out, uint8_t opcode, bool fin, bool rsv1, uint64_t n)
{
    return header_write(out, opcode, fin, rsv1, n, 0);
}

size_t ws_header_write_masked(uint8_t *out, uint8_t opcode, bool fin, bool rsv1, uint64_t n, const uint8_t key[4])
{
    size_t h = header_write(out, opcode, fin, rsv1, n, 0x80);
    memcpy(out + h, key, 4);
    return h + 4;
}

void ws_mask(char *p, size_t n, const uint8_t key[4], size_t off)
{
    unsigned char *s = (unsigned char *)p;
    size_t i = 0;
    if (n >= 16) {
        /* Eight bytes at a time; steps of 8 keep the key phase, so one rotated pattern serves. */
        uint8_t k8[8];
        for (int j = 0; j < 8; j++) k8[j] = key[(off + (size_t)j) & 3];
        uint64_t kw;
        memcpy(&kw, k8, 8);
        for (; n - i >= 8; i += 8) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            w ^= kw;
            memcpy(s + i, &w, 8);
        }
    }
    for (; i < n; i++) s[i] ^= key[(off + i) & 3];
}

bytes_t *ws_frame_new(uint8_t opcode, bool rsv1, const void *p, size_t n)
{
    uint8_t h[WS_MAX_HEADER];
    size_t hl = ws_header_write(h, opcode, true, rsv1, n);
    if (n > SIZE_MAX - hl) return NULL;
    bytes_t *b = bytes_new(hl + n);
    if (!b) return NULL;
    memcpy(b->data, h, hl);
    if (n) memcpy(b->data + hl, p, n);
    return b;
}

bytes_t *ws_close_new(uint16_t code, const char *reason)
{
    if (code == 0) return ws_frame_new(WS_OP_CLOSE, false, NULL, 0);
    size_t rn = reason ? strlen(reason) : 0;
    if (rn > WS_MAX_CONTROL - 2) {
        rn = WS_MAX_CONTROL - 2;
        /* Cut before the lead byte of a split sequence (at most 3 continuation bytes back). */
        for (int k = 0; k < 3 && ((unsigned char)reason[rn] & 0xC0) == 0x80; k++) rn--;
    }
    char p[WS_MAX_CONTROL];
    p[0] = (char)(code >> 8);
    p[1] = (char)code;
    if (rn) memcpy(p + 2, reason, rn);
    return ws_frame_new(WS_OP_CLOSE, false, p, 2 + rn);
}

/* ---- handshake ---- */

static bool is_b64(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

int ws_accept_key(const char *key, size_t n, char out[29])
{
    /* 16 bytes encode as 22 symbols and "==". Bits below the 16th byte in the last symbol are not
     * checked (RFC 4648 section 3.5 lets decoders ignore them), so any such key decodes to 16. */
    if (n != 24 || key[22] != '=' || key[23] != '=') return HR_EINVAL;
    for (size_t i = 0; i < 22; i++)
        if (!is_b64((unsigned char)key[i])) return HR_EINVAL;

    char in[24 + sizeof WS_GUID - 1];
    memcpy(in, key, 24);
    memcpy(in + 24, WS_GUID, sizeof WS_GUID - 1);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!EVP_Digest(in, sizeof in, md, &mdlen, EVP_sha1(), NULL) || mdlen != 20) return HR_ENOMEM;
    EVP_EncodeBlock((unsigned char *)out, md, 20); /* 28 symbols and a NUL */
    return 0;
}

/* ---- permessage-deflate negotiation ---- */

/* tchar of RFC 9110 section 5.6.2. */
static bool is_tchar(unsigned char c)
{
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) return true;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_ows(char c) { return c == ' ' || c == '\t'; }

/* A cursor over one list element. */
typedef struct {
    const char *p;
    size_t i, n;
} lex_t;

static void lex_ows(lex_t *x)
{
    while (x->i < x->n && is_ows(x->p[x->i])) x->i++;
}

static span_t lex_token(lex_t *x)
{
    size_t s = x->i;
    while (x->i < x->n && is_tchar((unsigned char)x->p[x->i])) x->i++;
    return (span_t){x->p + s, x->i - s};
}

/* A parameter value: a token, or a quoted-string unescaped into v (cap bytes). False when it is
 * neither, or longer than cap (no valid value of ours is longer than two bytes). */
static bool lex_value(lex_t *x, char *v, size_t cap, size_t *vn)
{
    *vn = 0;
    if (x->i < x->n && x->p[x->i] == '"') {
        x->i++;
        while (x->i < x->n && x->p[x->i] != '"') {
            if (x->p[x->i] == '\\' && ++x->i == x->n) return false;
            if (*vn == cap) return false;
            v[(*vn)++] = x->p[x->i++];
        }
        if (x->i == x->n) return false; /* unterminated */
        x->i++;
        return true;
    }
    span_t t = lex_token(x);
    if (t.n == 0 || t.n > cap) return false;
    memcpy(v, t.p, t.n);
    *vn = t.n;
    return true;
}

/* Window bits per RFC 7692 section 7.1.2: "8".."15", no leading zero. 0 when invalid. */
static uint8_t window_bits(const char *v, size_t n)
{
    if (n == 1 && (v[0] == '8' || v[0] == '9')) return (uint8_t)(v[0] - '0');
    if (n == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5') return (uint8_t)(10 + v[1] - '0');
    return 0;
}

typedef struct {
    bool snct, cnct, smwb, cmwb; /* parameters present */
    uint8_t smwb_bits, cmwb_bits; /* their values (cmwb_bits 0: offered without a value) */
} pmd_offer_t;

/* Parses one list element p[0..n). True when it is a permessage-deflate offer we can accept. */
static bool offer_parse(const char *p, size_t n, pmd_offer_t *o)
{
    lex_t x = {p, 0, n};
    memset(o, 0, sizeof *o);
    lex_ows(&x);
    if (!span_eq(lex_token(&x), "permessage-deflate")) return false;
    for (;;) {
        lex_ows(&x);
        if (x.i == x.n) return true;
        if (p[x.i] != ';') return false;
        x.i++;
        lex_ows(&x);
        span_t name = lex_token(&x);
        lex_ows(&x);
        char v[4];
        size_t vn = 0;
        bool has_value = x.i < x.n && p[x.i] == '=';
        if (has_value) {
            x.i++;
            lex_ows(&x);
            if (!lex_value(&x, v, sizeof v, &vn)) return false;
        }
        if (span_eq(name, "server_no_context_takeover")) {
            if (has_value || o->snct) return false;
            o->snct = true;
        } else if (span_eq(name, "client_no_context_takeover")) {
            if (has_value || o->cnct) return false;
            o->cnct = true;
        } else if (span_eq(name, "server_max_window_bits")) {
            if (!has_value || o->smwb) return false;
            o->smwb = true;
            o->smwb_bits = window_bits(v, vn);
            if (o->smwb_bits < 9) return false; /* invalid, or 8, which zlib cannot produce */
        } else if (span_eq(name, "client_max_window_bits")) {
            if (o->cmwb) return false;
            o->cmwb = true;
            if (has_value) {
                o->cmwb_bits = window_bits(v, vn);
                if (!o->cmwb_bits) return false;
            }
        } else {
            return false; /* unknown or empty parameter name */
        }
    }
}

/* End of the list element starting at i: the next comma outside a quoted-string, or n. */
static size_t element_end(const char *h, size_t n, size_t i)
{
    bool quoted = false;
    for (; i < n; i++) {
        if (quoted) {
            if (h[i] == '\\') i++;
            else if (h[i] == '"') quoted = false;
        } else if (h[i] == '"') {
            quoted = true;
        } else if (h[i] == ',') {
            return i;
        }
    }
    return n;
}

size_t ws_deflate_negotiate(const char *hdr, size_t n, ws_deflate_t *out, char *resp, size_t cap)
{
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < n;) {
        size_t e = element_end(hdr, n, i);
        pmd_offer_t o;
        bool ok = offer_parse(hdr + i, e - i, &o);
        i = e + 1;
        if (!ok) continue;

        char tmp[160];
        int k = snprintf(tmp, sizeof tmp, "permessage-deflate; server_no_context_takeover%s",
                         o.cnct ? "; client_no_context_takeover" : "");
        if (o.smwb) k += snprintf(tmp + k, sizeof tmp - (size_t)k, "; server_max_window_bits=%u", o.smwb_bits);
        if (o.cmwb_bits) k += snprintf(tmp + k, sizeof tmp - (size_t)k, "; client_max_window_bits=%u", o.cmwb_bits);
        if ((size_t)k >= cap) return 0; /* no room for the answer (and its NUL): decline */
        memcpy(resp, tmp, (size_t)k + 1);
        out->enabled = true;
        out->server_no_context_takeover = true;
        out->client_no_context_takeover = o.cnct;
        out->server_max_window_bits = o.smwb ? o.smwb_bits : 15;
        out->client_max_window_bits = o.cmwb_bits ? o.cmwb_bits : 15;
        return (size_t)k;
    }
    return 0;
}

int ws_pick_subprotocol(const char *hdr, size_t n, const char *const *supported)
{
    if (!supported) return -1;
    for (size_t i = 0; i < n;) {
        const char *c = memchr(hdr + i, ',', n - i);
        size_t e = c ? (size_t)(c - hdr) : n, s = i;
        i = e + 1;
        while (s < e && is_ows(hdr[s])) s++;
        while (e > s && is_ows(hdr[e - 1])) e--;
        if (s == e) continue;
        span_t t = {hdr + s, e - s};
        for (int k = 0; supported[k]; k++)
            if (span_eq(t, supported[k])) return k;
    }
    return -1;
}
