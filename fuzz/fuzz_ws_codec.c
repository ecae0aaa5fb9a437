/* fuzz_ws_codec.c - libFuzzer target for the pure WebSocket codec (src/transport/ws_codec.h).
 *
 * Input: byte 0 picks the limits (server or client side, RSV1 allowed, small or large frame and
 * message limits) and the answer buffer size for negotiation; byte 1 picks split points; the rest
 * is the data. The same data goes to every parser, each time in an exact-size heap copy so ASan
 * catches a read past the end:
 *   - ws_frame_parse() on successive frames: results in range, header_len + payload_len ==
 *     consumed, the header re-encodes to the same bytes (lengths are minimal, so encoding is
 *     canonical), the payload is the unmasked input, bytes after the frame are untouched, and any
 *     prefix of the remaining input gives HR_EAGAIN or exactly the same result;
 *   - ws_frame_parse_partial() on each frame fed in three growing pieces of one buffer: every
 *     result is HR_EAGAIN or exactly ws_frame_parse()'s, the payload bytes present are unmasked
 *     exactly once (each call's done matches them) and the bytes after them are untouched;
 *   - ws_msg_frame() on the data frames and ws_utf8_feed() on text payloads, compared with
 *     utf8_valid() (src/hub/msg.h) on the reassembled message; ws_close_parse() on Close payloads;
 *   - ws_utf8_feed() on the data split in three, compared with utf8_valid(), and "fail fast": the
 *     bytes before the first refused byte can still be completed to valid UTF-8;
 *   - ws_close_parse() on the data, against an independent statement of the rule;
 *   - ws_deflate_negotiate() on the data: a sane answer, which negotiates to itself;
 *   - ws_pick_subprotocol() on the data, against a search for each supported name as an element;
 *   - ws_accept_key(), ws_frame_new() and ws_close_new() on the data (round trips). */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/core/err.h"
#include "../src/hub/msg.h"
#include "../src/transport/ws_codec.h"

static char *dup_exact(const void *p, size_t n)
{
    char *c = malloc(n ? n : 1);
    if (!c) abort();
    if (n) memcpy(c, p, n);
    return c;
}

/* ---- frames ---- */

typedef struct {
    ssize_t rc;
    uint16_t code;
} outcome_t;

static outcome_t parse_copy(const uint8_t *d, size_t n, const ws_limits_t *lim)
{
    char *p = dup_exact(d, n);
    ws_frame_t f;
    outcome_t o = {0, 0};
    const char *why = NULL;
    o.rc = ws_frame_parse(p, n, lim, &f, &o.code, &why);
    if (o.rc == HR_EAGAIN) assert(memcmp(p, d, n) == 0);
    free(p);
    return o;
}

static bool same_outcome(outcome_t a, outcome_t b) { return a.rc == b.rc && (a.rc != HR_EPROTO || a.code == b.code); }

/* Whether s[0..n) can still be completed to valid UTF-8 (up to three more continuation bytes). */
static bool utf8_viable(const uint8_t *s, size_t n)
{
    uint8_t *t = malloc(n + 3);
    if (!t) abort();
    if (n) memcpy(t, s, n);
    bool ok = utf8_valid((const char *)t, n);
    for (size_t k = 1; k <= 3 && !ok; k++) {
        for (unsigned x = 0x80; x <= 0xBF && !ok; x++) {
            memset(t + n, (int)x, k);
            ok = utf8_valid((const char *)t, n + k);
        }
    }
    free(t);
    return ok;
}

static void check_close_payload(const char *p, size_t n)
{
    uint16_t code = 0, cc = 0;
    const char *why = NULL;
    int rc = ws_close_parse(p, n, &code, &cc, &why);
    unsigned c = n >= 2 ? (unsigned)(uint8_t)p[0] << 8 | (uint8_t)p[1] : 0;
    bool code_ok = (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
    if (n == 0) {
        assert(rc == 0 && code == WS_CLOSE_NO_STATUS);
    } else if (n == 1 || !code_ok) {
        assert(rc == HR_EPROTO && cc == WS_CLOSE_PROTOCOL && why);
    } else if (!utf8_valid(p + 2, n - 2)) {
        assert(rc == HR_EPROTO && cc == WS_CLOSE_INVALID_DATA && why);
    } else {
        assert(rc == 0 && code == c);
    }
}

/* ws_frame_parse_partial() on d[0..n) fed as three growing prefixes of one copy (the split points
 * from seed), against want (ws_frame_parse() on all n bytes). */
static void check_partial(const uint8_t *d, size_t n, const ws_limits_t *lim, outcome_t want, unsigned seed)
{
    char *p = dup_exact(d, n);
    size_t ks[3];
    ks[0] = n ? (seed >> 3) % (n + 1) : 0;
    ks[1] = ks[0] + (n - ks[0]) / 2;
    ks[2] = n;
    uint64_t done = 0;
    for (int i = 0; i < 3; i++) {
        ws_frame_t f;
        uint16_t code = 0;
        const char *why = NULL;
        ssize_t rc = ws_frame_parse_partial(p, ks[i], lim, &f, &done, &code, &why);
        outcome_t o = {rc, code};
        assert(rc == HR_EAGAIN || same_outcome(o, want));
        if (rc == HR_EPROTO) break;
        if (rc == HR_EAGAIN && f.header_len == 0) {
            assert(done == 0 && memcmp(p, d, n) == 0);
            continue;
        }
        assert(f.header_len >= 2 && f.header_len <= ks[i] && f.payload == p + f.header_len);
        uint64_t have = ks[i] - f.header_len;
        if (have > f.payload_len) have = f.payload_len;
        assert(done == have && (rc == HR_EAGAIN) == (have < f.payload_len));
        bool masked = d[1] & 0x80;
        for (size_t j = 0; j < n; j++) {
            uint8_t want_b = d[j];
            if (masked && j >= f.header_len && j - f.header_len < have)
                want_b ^= d[f.header_len - 4 + ((j - f.header_len) & 3)];
            assert((uint8_t)p[j] == want_b);
        }
        if (rc > 0) {
            assert((size_t)rc == f.header_len + f.payload_len);
            break;
        }
    }
    free(p);
}

/* Parses successive frames of d[0..n) with lim, sequencing data frames into messages. */
static void fuzz_frames(const uint8_t *d, size_t n, const ws_limits_t *lim, uint64_t max_message, unsigned seed)
{
    char *buf = dup_exact(d, n);
    uint8_t *msg = malloc(n ? n : 1); /* the reassembled current message */
    if (!msg) abort();
    size_t msg_n = 0;
    ws_msg_t m = {0};
    ws_utf8_t u = {0};
    bool utf8_ok = true;
    size_t off = 0;

    while (off <= n) {
        size_t rem = n - off;
        ws_frame_t f;
        uint16_t code = 0;
        const char *why = NULL;
        ssize_t rc = ws_frame_parse(buf + off, rem, lim, &f, &code, &why);
        assert(rc == HR_EAGAIN || rc == HR_EPROTO || (rc > 0 && (size_t)rc <= rem));

        /* Prefixes: HR_EAGAIN or the same result. */
        outcome_t whole = {rc, code};
        check_partial(d + off, rem, lim, whole, seed);
        size_t k = rem ? seed % (rem + 1) : 0;
        outcome_t part = parse_copy(d + off, k, lim);
        assert(part.rc == HR_EAGAIN || same_outcome(part, whole));
        if (rc > 0) assert(((size_t)k < (size_t)rc) == (part.rc == HR_EAGAIN));
        for (size_t j = 0; j < rem && j < 16; j++) {
            outcome_t q = parse_copy(d + off, j, lim);
            assert(q.rc == HR_EAGAIN || same_outcome(q, whole));
        }

        if (rc == HR_EAGAIN) {
            assert(memcmp(buf + off, d + off, rem) == 0);
            break;
        }
        if (rc == HR_EPROTO) {
            assert(why && *why && (code == WS_CLOSE_PROTOCOL || code == WS_CLOSE_TOO_BIG));
            break;
        }

        /* A frame: check its fields against the input bytes. */
        const uint8_t *in = d + off;
        size_t consumed = (size_t)rc;
        bool masked = in[1] & 0x80;
        assert(masked == lim->server);
        assert(f.header_len >= 2 && f.header_len <= WS_MAX_HEADER);
        assert(f.header_len + f.payload_len == consumed);
        assert(f.payload == buf + off + f.header_len);
        assert(f.payload_len <= lim->max_payload);
        assert(f.opcode <= 2 || (f.opcode >= 8 && f.opcode <= 10));
        if (f.opcode >= 8) assert(f.fin && f.payload_len <= WS_MAX_CONTROL && !f.rsv1);
        if (f.rsv1) assert(lim->rsv1_ok && f.opcode != WS_OP_CONT);
        uint8_t h[WS_MAX_HEADER];
        size_t hl = masked ? ws_header_write_masked(h, f.opcode, f.fin, f.rsv1, f.payload_len, in + f.header_len - 4)
                           : ws_header_write(h, f.opcode, f.fin, f.rsv1, f.payload_len);
        assert(hl == f.header_len && memcmp(h, in, hl) == 0);
        for (size_t i = 0; i < f.payload_len; i++) {
            uint8_t want = in[hl + i] ^ (masked ? in[hl - 4 + (i & 3)] : 0);
            assert((uint8_t)f.payload[i] == want);
        }
        assert(memcmp(buf + off + consumed, d + off + consumed, rem - consumed) == 0);

        if (f.opcode == WS_OP_CLOSE) {
            check_close_payload(f.payload, f.payload_len);
        } else if (f.opcode < 8) {
            uint16_t mc = 0;
            const char *mwhy = NULL;
            ws_msg_t before = m;
            int mrc = ws_msg_frame(&m, &f, max_message, &mc, &mwhy);
            if (mrc != 0) {
                assert(mrc == HR_EPROTO && mwhy);
                if (mc == WS_CLOSE_TOO_BIG)
                    assert(f.payload_len > max_message ||
                           (before.in_message && before.size + f.payload_len > max_message));
                else
                    assert(mc == WS_CLOSE_PROTOCOL && (f.opcode == WS_OP_CONT) != before.in_message);
                break;
            }
            if (f.opcode != WS_OP_CONT) {
                assert(!before.in_message);
                msg_n = 0;
                u = (ws_utf8_t){0};
                utf8_ok = true;
                assert(m.compressed == f.rsv1 && m.opcode == f.opcode);
            } else {
                assert(before.in_message && m.opcode == before.opcode && m.compressed == before.compressed);
            }
            memcpy(msg + msg_n, f.payload, f.payload_len);
            msg_n += f.payload_len;
            assert(m.size == msg_n && m.size <= max_message && m.in_message == !f.fin);
            if (m.opcode == WS_OP_TEXT && !m.compressed) {
                bool was_ok = utf8_ok;
                utf8_ok = ws_utf8_feed(&u, f.payload, f.payload_len) && utf8_ok;
                if (was_ok && !utf8_ok) assert(!utf8_viable(msg, msg_n));
                if (utf8_ok) assert(utf8_viable(msg, msg_n));
                if (f.fin) assert((utf8_ok && ws_utf8_done(&u)) == utf8_valid((const char *)msg, msg_n));
            }
        }
        off += consumed;
        if (off == n) break;
    }
    free(msg);
    free(buf);
}

/* ---- UTF-8 alone ---- */

static void fuzz_utf8(const uint8_t *d, size_t n, unsigned seed)
{
    size_t a = n ? seed % (n + 1) : 0, b = a + (n - a) / 2;
    char *p1 = dup_exact(d, a), *p2 = dup_exact(d + a, b - a), *p3 = dup_exact(d + b, n - b);
    ws_utf8_t u = {0};
    bool ok = ws_utf8_feed(&u, p1, a);
    ok = ws_utf8_feed(&u, p2, b - a) && ok;
    ok = ws_utf8_feed(&u, p3, n - b) && ok;
    assert((ok && ws_utf8_done(&u)) == utf8_valid((const char *)d, n));
    free(p1);
    free(p2);
    free(p3);

    /* Fail fast: the byte that is refused first is the first byte with no valid completion. */
    if (n > 4096) return;
    ws_utf8_t v = {0};
    for (size_t i = 0; i < n; i++) {
        if (!ws_utf8_feed(&v, d + i, 1)) {
            assert(utf8_viable(d, i) && !utf8_viable(d, i + 1));
            assert(!ws_utf8_feed(&v, "a", 1) && !ws_utf8_done(&v));
            return;
        }
    }
    assert(utf8_viable(d, n));
}

/* ---- negotiation ---- */

static void fuzz_negotiate(const uint8_t *d, size_t n, size_t cap)
{
    char *h = dup_exact(d, n);
    char *resp = malloc(cap ? cap : 1);
    if (!resp) abort();
    ws_deflate_t pd;
    memset(&pd, 0xA5, sizeof pd);
    size_t rc = ws_deflate_negotiate(h, n, &pd, resp, cap);
    free(h);
    if (rc == 0) {
        assert(!pd.enabled);
        free(resp);
        return;
    }
    static const char pre[] = "permessage-deflate; server_no_context_takeover";
    assert(pd.enabled && pd.server_no_context_takeover);
    assert(rc < cap && rc <= 128 && strlen(resp) == rc && strncmp(resp, pre, sizeof pre - 1) == 0);
    assert(pd.server_max_window_bits >= 9 && pd.server_max_window_bits <= 15);
    assert(pd.client_max_window_bits >= 8 && pd.client_max_window_bits <= 15);

    /* Our answer is itself an acceptable offer, and it negotiates to the same answer. */
    char *again = dup_exact(resp, rc);
    char resp2[160];
    ws_deflate_t pd2;
    size_t rc2 = ws_deflate_negotiate(again, rc, &pd2, resp2, sizeof resp2);
    assert(rc2 == rc && memcmp(resp2, resp, rc) == 0 && memcmp(&pd2, &pd, sizeof pd) == 0);
    free(again);
    free(resp);
}

/* ---- subprotocols ---- */

static bool is_ows(uint8_t c) { return c == ' ' || c == '\t'; }

/* Offset of the first list element of d[0..n) equal to s, or SIZE_MAX. */
static size_t element_at(const uint8_t *d, size_t n, const char *s)
{
    size_t sl = strlen(s);
    for (size_t i = 0; sl && i + sl <= n; i++) {
        if (memcmp(d + i, s, sl) != 0) continue;
        size_t b = i, e = i + sl;
        while (b > 0 && is_ows(d[b - 1])) b--;
        while (e < n && is_ows(d[e])) e++;
        if ((b == 0 || d[b - 1] == ',') && (e == n || d[e] == ',')) return i;
    }
    return SIZE_MAX;
}

static void fuzz_subprotocol(const uint8_t *d, size_t n)
{
    static const char *const sup[] = {"mqtt", "v12.stomp", "v11.stomp", "herald", "a", NULL};
    char *h = dup_exact(d, n);
    int k = ws_pick_subprotocol(h, n, sup);
    free(h);
    size_t best = SIZE_MAX;
    int best_k = -1;
    for (int i = 0; sup[i]; i++) {
        size_t at = element_at(d, n, sup[i]);
        if (at < best) best = at, best_k = i;
    }
    assert(k == best_k);
}

/* ---- encoders and the accept key ---- */

static void fuzz_encoders(const uint8_t *d, size_t n, uint8_t ctl)
{
    char out[29];
    char *key = dup_exact(d, n);
    int rc = ws_accept_key(key, n, out);
    free(key);
    if (rc == 0) {
        assert(n == 24 && d[22] == '=' && d[23] == '=' && strlen(out) == 28 && out[27] == '=');
    } else {
        assert(rc == HR_EINVAL);
    }

    static const uint8_t ops[] = {WS_OP_TEXT, WS_OP_BINARY, WS_OP_PING, WS_OP_PONG};
    uint8_t op = ops[ctl & 3];
    bool rsv1 = op < 8 && (ctl & 4);
    size_t fn = op >= 8 && n > WS_MAX_CONTROL ? WS_MAX_CONTROL : n;
    bytes_t *b = ws_frame_new(op, rsv1, d, fn);
    if (!b) abort();
    ws_limits_t cli = {.max_payload = UINT64_MAX, .server = false, .rsv1_ok = true};
    ws_frame_t f;
    uint16_t cc;
    const char *why;
    assert(ws_frame_parse(b->data, b->len, &cli, &f, &cc, &why) == (ssize_t)b->len);
    assert(f.fin && f.opcode == op && f.rsv1 == rsv1 && f.payload_len == fn && memcmp(f.payload, d, fn) == 0);
    bytes_unref(b);

    /* Close frames: the reason (as a C string) is cut to fit, never inside a code point. */
    char *reason = malloc(n + 1);
    if (!reason) abort();
    if (n) memcpy(reason, d, n);
    reason[n] = 0;
    uint16_t code = (uint16_t)(n >= 2 ? d[0] << 8 | d[1] : 1000);
    b = ws_close_new(code, reason);
    if (!b) abort();
    assert(ws_frame_parse(b->data, b->len, &cli, &f, &cc, &why) == (ssize_t)b->len);
    assert(f.opcode == WS_OP_CLOSE && f.payload_len <= WS_MAX_CONTROL);
    if (code == 0) {
        assert(f.payload_len == 0);
    } else {
        size_t rl = strlen(reason), got = f.payload_len - 2;
        assert(((uint8_t)f.payload[0] << 8 | (uint8_t)f.payload[1]) == code);
        assert(got <= rl && memcmp(f.payload + 2, reason, got) == 0);
        assert(rl <= 123 ? got == rl : got >= 120);
        if (utf8_valid(reason, rl)) assert(utf8_valid(f.payload + 2, got));
    }
    bytes_unref(b);
    free(reason);
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    if (n < 2) return 0;
    uint8_t ctl = d[0];
    unsigned seed = d[1];
    d += 2;
    n -= 2;

    uint64_t max_payload = (ctl & 4) ? 64 : 1 << 20;
    uint64_t max_message = (ctl & 8) ? 100 : 1 << 20;
    ws_limits_t srv = {.max_payload = max_payload, .server = true, .rsv1_ok = ctl & 1};
    ws_limits_t cli = {.max_payload = max_payload, .server = false, .rsv1_ok = ctl & 2};
    fuzz_frames(d, n, &srv, max_message, seed);
    fuzz_frames(d, n, &cli, max_message, seed);
    fuzz_utf8(d, n, seed);
    char *c = dup_exact(d, n);
    check_close_payload(c, n);
    free(c);
    fuzz_negotiate(d, n, (ctl & 16) ? (size_t)(seed % 140) : 160);
    fuzz_subprotocol(d, n);
    fuzz_encoders(d, n, ctl);
    return 0;
}
