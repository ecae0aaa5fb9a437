/* fuzz_stomp_codec.c - libFuzzer target for the STOMP frame codec.
 *
 * The first input byte picks the version (bits 0-1: 1.0, 1.1, 1.2, or 13, which gets the 1.2
 * rules), a limits profile (bits 2-3) and where the input is split (bits 4-7). Profile 3 takes
 * small limits from the next three bytes, so the fuzzer can hit each limit exactly. The rest is
 * the byte stream from the peer. Two runs parse it as a stream of frames:
 *   - whole: the stream in one exact-size heap buffer, frames parsed one after another;
 *   - split: a caller that receives the stream in three pieces and keeps it in its own buffer;
 *     every call gets an exact-size heap copy of what is buffered (so ASan sees reads past it),
 *     and the copy is written back, as the in-place decode would be seen by a real caller.
 * Invariants checked on every call: the return value is in range; errors set a reason; spans and
 * the body lie inside the consumed bytes and the body is followed by its NUL; nothing after the
 * consumed bytes is modified, and nothing at all on HR_EAGAIN or an error; limits hold.
 * Both runs must produce the same frames, ending at the same offsets, and the same final outcome
 * (heart-beat-only returns may differ, since where EOLs are consumed depends on the split). Each
 * frame is written back with stomp_frame_write() and parsed again: same command, headers and body,
 * with and without an added content-length. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/core/err.h"
#include "../src/transport/stomp_codec.h"

static const stomp_limits_t profiles[4] = {
    {64, 4096, 65536, 1 << 20, 0},
    {4, 16, 64, 16, 0},
    {1000, 64, 512, 256, 0}, /* max_headers over STOMP_MAX_HEADERS: clamped */
    {0, 0, 0, 0, 0}, /* from the input */
};
static const int versions[4] = {10, 11, 12, 13};

/* A growable byte log, to compare the frames of two runs. */
typedef struct {
    char *p;
    size_t n, cap;
} log_t;

static void log_put(log_t *l, const void *p, size_t n)
{
    if (n > l->cap - l->n) {
        size_t cap = l->cap ? l->cap : 256;
        while (n > cap - l->n) cap *= 2;
        l->p = realloc(l->p, cap);
        if (!l->p) abort();
        l->cap = cap;
    }
    if (n) memcpy(l->p + l->n, p, n);
    l->n += n;
}

static void log_span(log_t *l, const char *p, size_t n)
{
    log_put(l, &n, sizeof n);
    log_put(l, p, n);
}

static bool inside(const char *p, size_t n, const char *lo, const char *hi)
{
    return p >= lo && p <= hi && n <= (size_t)(hi - p);
}

/* One call: parses a private exact-size copy of in[0..n) (then copied back into in, as the caller
 * would see its own buffer) and checks the invariants. */
static ssize_t parse_checked(char *in, size_t n, const stomp_limits_t *lim, stomp_frame_t *f, const char **why)
{
    char *p = malloc(n ? n : 1);
    if (!p) abort();
    memcpy(p, in, n);
    *why = NULL;
    ssize_t rc = stomp_frame_parse(p, n, lim, f, why);
    assert(rc == HR_EAGAIN || rc == HR_EPROTO || rc == HR_EFULL || (rc > 0 && (size_t)rc <= n));
    if (rc < 0) {
        assert(memcmp(p, in, n) == 0);
        if (rc != HR_EAGAIN) assert(*why && (*why)[0]);
    } else {
        size_t end = (size_t)rc;
        assert(memcmp(p + end, in + end, n - end) == 0);
        if (f->cmd == STOMP_NONE) {
            for (size_t i = 0; i < end; i++) {
                if (p[i] == '\r') assert(i + 1 < end && p[++i] == '\n');
                else assert(p[i] == '\n');
            }
        } else {
            uint32_t max_h = lim->max_headers < STOMP_MAX_HEADERS ? lim->max_headers : STOMP_MAX_HEADERS;
            assert(f->nheaders <= max_h);
            assert(f->body >= p && inside(f->body, f->body_len + 1, p, p + end));
            assert(f->body + f->body_len + 1 == p + end && f->body[f->body_len] == '\0');
            assert(f->body_len <= lim->max_body);
            assert(f->has_content_length || !memchr(f->body, '\0', f->body_len));
            /* The command follows the heart-beats; the head (from it to the body) fits the limit. */
            size_t hs = 0;
            while (p[hs] == '\n' || p[hs] == '\r') hs++;
            const char *cmd = stomp_cmd_name(f->cmd);
            assert(memcmp(p + hs, cmd, strlen(cmd)) == 0);
            assert((size_t)(f->body - (p + hs)) <= lim->max_frame_head);
            for (uint32_t k = 0; k < f->nheaders; k++) {
                assert(f->name[k].n > 0);
                assert(inside(f->name[k].p, f->name[k].n, p, f->body));
                assert(inside(f->value[k].p, f->value[k].n, p, f->body));
                /* Decoding shrank the value in place, but the raw line still ends at its EOL: no
                 * byte of a raw header line is CR or LF. */
                const char *eol = f->value[k].p;
                while (*eol != '\n' && *eol != '\r') eol++;
                assert((size_t)(eol - f->name[k].p) <= lim->max_header_len);
            }
        }
        memcpy(in, p, n);
        /* Spans now point into p; move them into in, which stays alive. */
        for (uint32_t k = 0; f->cmd != STOMP_NONE && k < f->nheaders; k++) {
            f->name[k].p = in + (f->name[k].p - p);
            f->value[k].p = in + (f->value[k].p - p);
        }
        if (f->cmd != STOMP_NONE) f->body = in + (f->body - p);
    }
    free(p);
    return rc;
}

static void log_frame(log_t *l, size_t end, const stomp_frame_t *f)
{
    log_put(l, &end, sizeof end);
    log_put(l, &f->cmd, sizeof f->cmd);
    log_put(l, &f->nheaders, sizeof f->nheaders);
    log_put(l, &f->has_content_length, sizeof f->has_content_length);
    for (uint32_t k = 0; k < f->nheaders; k++) {
        log_span(l, f->name[k].p, f->name[k].n);
        log_span(l, f->value[k].p, f->value[k].n);
    }
    log_span(l, f->body, f->body_len);
}

/* Writes f back and parses the result: the same frame must come out. */
static void round_trip(const stomp_frame_t *f, int version, bool add_cl)
{
    size_t cap = 64 + f->body_len;
    for (uint32_t k = 0; k < f->nheaders; k++) cap += 2 * (f->name[k].n + f->value[k].n) + 2;
    char *out = malloc(cap);
    if (!out) abort();
    ssize_t w = stomp_frame_write(out, cap, stomp_cmd_name(f->cmd), f->name, f->value, f->nheaders, version,
                                  f->body, f->body_len, add_cl);
    assert(w > 0);
    /* The same size is HR_EFULL one byte short. */
    assert(stomp_frame_write(out, (size_t)w - 1, stomp_cmd_name(f->cmd), f->name, f->value, f->nheaders, version,
                             f->body, f->body_len, add_cl) == HR_EFULL);
    w = stomp_frame_write(out, cap, stomp_cmd_name(f->cmd), f->name, f->value, f->nheaders, version, f->body,
                          f->body_len, add_cl);

    stomp_limits_t lim = {STOMP_MAX_HEADERS, UINT32_MAX, UINT32_MAX, UINT64_MAX, version};
    stomp_frame_t g;
    const char *why;
    ssize_t rc = parse_checked(out, (size_t)w, &lim, &g, &why);
    assert(rc == w);
    assert(g.cmd == f->cmd);
    assert(g.nheaders == f->nheaders + (add_cl ? 1 : 0));
    for (uint32_t k = 0; k < f->nheaders; k++) {
        assert(g.name[k].n == f->name[k].n && memcmp(g.name[k].p, f->name[k].p, f->name[k].n) == 0);
        assert(g.value[k].n == f->value[k].n && memcmp(g.value[k].p, f->value[k].p, f->value[k].n) == 0);
    }
    assert(g.has_content_length == (f->has_content_length || add_cl));
    assert(g.body_len == f->body_len && memcmp(g.body, f->body, f->body_len) == 0);
    free(out);
}

typedef struct {
    log_t frames;
    ssize_t final; /* 0: everything consumed; else HR_EAGAIN or the error */
    const char *why;
} run_t;

/* Parses d[0..n), delivered in pieces ending at cut[0] <= cut[1] <= n, into r. */
static void run(const uint8_t *d, size_t n, const size_t cut[2], const stomp_limits_t *lim, bool check_rt, run_t *r)
{
    char *buf = malloc(n ? n : 1); /* the caller's buffer; bytes arrive in it piece by piece */
    if (!buf) abort();
    memcpy(buf, d, n);
    size_t off = 0;
    r->final = HR_EAGAIN;
    r->why = NULL;
    size_t ends[3] = {cut[0], cut[1], n};
    for (int piece = 0; piece < 3; piece++) {
        size_t avail = ends[piece];
        for (;;) {
            if (off == avail) {
                r->final = avail == n ? 0 : HR_EAGAIN;
                break;
            }
            stomp_frame_t f;
            const char *why;
            ssize_t rc = parse_checked(buf + off, avail - off, lim, &f, &why);
            if (rc < 0) {
                r->final = rc;
                r->why = why;
                break;
            }
            if (f.cmd != STOMP_NONE) {
                log_frame(&r->frames, off + (size_t)rc, &f);
                if (check_rt) {
                    round_trip(&f, lim->version, false);
                    if (!f.has_content_length && f.nheaders < STOMP_MAX_HEADERS) round_trip(&f, lim->version, true);
                }
            }
            off += (size_t)rc;
        }
        if (r->final != HR_EAGAIN) break;
    }
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
    if (n < 1) return 0;
    uint8_t ctl = d[0];
    d++;
    n--;
    stomp_limits_t lim = profiles[(ctl >> 2) & 3];
    if (((ctl >> 2) & 3) == 3) {
        if (n < 3) return 0;
        lim.max_headers = d[0] % 8;
        lim.max_body = d[0] >> 3;
        lim.max_header_len = d[1] % 64;
        lim.max_frame_head = d[2];
        d += 3;
        n -= 3;
    }
    lim.version = versions[ctl & 3];

    run_t whole = {0}, split = {0};
    size_t all[2] = {n, n};
    run(d, n, all, &lim, true, &whole);
    size_t c0 = n * (ctl >> 4) / 16;
    size_t cut[2] = {c0, c0 + (n - c0) / 2};
    run(d, n, cut, &lim, false, &split);

    assert(whole.final == split.final);
    assert(whole.why == split.why || (whole.why && split.why && strcmp(whole.why, split.why) == 0));
    assert(whole.frames.n == split.frames.n);
    if (whole.frames.n) assert(memcmp(whole.frames.p, split.frames.p, whole.frames.n) == 0);
    free(whole.frames.p);
    free(split.frames.p);
    return 0;
}
