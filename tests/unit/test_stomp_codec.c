/* test_stomp_codec.c - unit tests for the STOMP frame codec (src/transport/stomp_codec.h).
 *
 * Every parse goes through parse_at(), which copies the input so that it ends exactly at a
 * PROT_NONE page (an over-read crashes at once), checks the invariants that hold for every call
 * (spans and body inside the consumed bytes, nothing after them modified, the buffer untouched on
 * HR_EAGAIN and errors), and keeps a snapshot of the outcome (the guard buffer is freed).
 * check_splits() then parses every prefix of an input and a caller that grows one buffer a byte
 * at a time, and demands the same outcome as the whole input. */
#include <stdbool.h>
#include <string.h>

#include "../../src/core/err.h"
#include "../../src/transport/stomp_codec.h"
#include "unit.h"

/* ---- snapshots of a parse ---- */

typedef struct {
    ssize_t rc;
    const char *why;
    stomp_cmd_t cmd;
    bool has_cl;
    uint32_t nh;
    size_t name_off[STOMP_MAX_HEADERS], name_n[STOMP_MAX_HEADERS];
    size_t value_off[STOMP_MAX_HEADERS], value_n[STOMP_MAX_HEADERS];
    size_t body_off, body_n;
    char arena[1 << 16];
    size_t arena_n;
} snap_t;

static snap_t snaps[4]; /* large; kept static */

static size_t keep(snap_t *s, const char *p, size_t n)
{
    size_t off = s->arena_n;
    if (n > sizeof s->arena - off) abort();
    if (n) memcpy(s->arena + off, p, n);
    s->arena_n += n;
    return off;
}

static bool span_in(span_t sp, const char *lo, const char *hi)
{
    return sp.p >= lo && sp.p <= hi && sp.n <= (size_t)(hi - sp.p);
}

static const stomp_limits_t lim12 = {64, 1024, 8192, 1 << 20, 12};
static const stomp_limits_t lim11 = {64, 1024, 8192, 1 << 20, 11};
static const stomp_limits_t lim10 = {64, 1024, 8192, 1 << 20, 10};

/* Parses in[0..n) from a guard-page copy into s. */
static void parse_at(const char *in, size_t n, const stomp_limits_t *lim, snap_t *s)
{
    void *map;
    size_t maplen;
    char *p = guard_page_copy(in, n, &map, &maplen);
    stomp_frame_t f;
    memset(&f, 0xa5, sizeof f);
    const char *why = NULL;
    s->rc = stomp_frame_parse(p, n, lim, &f, &why);
    s->why = s->rc < 0 && s->rc != HR_EAGAIN ? why : NULL;
    s->arena_n = 0;
    s->nh = 0;
    s->cmd = STOMP_NONE;
    s->has_cl = false;
    s->body_off = s->body_n = 0;
    CHECK(s->rc == HR_EAGAIN || s->rc == HR_EPROTO || s->rc == HR_EFULL || (s->rc > 0 && (size_t)s->rc <= n));
    if (s->rc < 0) {
        CHECK(memcmp(p, in, n) == 0); /* untouched */
        if (s->rc != HR_EAGAIN) CHECK(why != NULL && why[0] != '\0');
    } else {
        size_t end = (size_t)s->rc;
        CHECK(memcmp(p + end, in + end, n - end) == 0);
        s->cmd = f.cmd;
        if (f.cmd == STOMP_NONE) {
            CHECK_EQ(f.nheaders, 0);
        } else {
            CHECK(f.nheaders <= STOMP_MAX_HEADERS);
            CHECK(f.body >= p && f.body + f.body_len < p + end && f.body[f.body_len] == '\0');
            CHECK_EQ(f.body + f.body_len + 1, p + end);
            s->nh = f.nheaders;
            s->has_cl = f.has_content_length;
            for (uint32_t k = 0; k < f.nheaders && k < STOMP_MAX_HEADERS; k++) {
                CHECK(span_in(f.name[k], p, f.body) && span_in(f.value[k], p, f.body));
                CHECK(f.name[k].n > 0);
                s->name_n[k] = f.name[k].n;
                s->name_off[k] = keep(s, f.name[k].p, f.name[k].n);
                s->value_n[k] = f.value[k].n;
                s->value_off[k] = keep(s, f.value[k].p, f.value[k].n);
            }
            s->body_n = f.body_len;
            s->body_off = keep(s, f.body, f.body_len);
        }
    }
    guard_page_free(map, maplen);
}

/* Same frame (ignoring rc, which depends on where the caller started). */
static bool same_frame(const snap_t *a, const snap_t *b)
{
    if (a->cmd != b->cmd || a->nh != b->nh || a->has_cl != b->has_cl || a->body_n != b->body_n) return false;
    if (memcmp(a->arena + a->body_off, b->arena + b->body_off, a->body_n) != 0) return false;
    for (uint32_t k = 0; k < a->nh; k++) {
        if (a->name_n[k] != b->name_n[k] || a->value_n[k] != b->value_n[k]) return false;
        if (memcmp(a->arena + a->name_off[k], b->arena + b->name_off[k], a->name_n[k]) != 0) return false;
        if (memcmp(a->arena + a->value_off[k], b->arena + b->value_off[k], a->value_n[k]) != 0) return false;
    }
    return true;
}

static bool same_outcome(const snap_t *a, const snap_t *b)
{
    if (a->rc != b->rc) return false;
    if (a->rc < 0) return a->rc == HR_EAGAIN || strcmp(a->why, b->why) == 0;
    return same_frame(a, b);
}

static bool hdr_is(const snap_t *s, uint32_t k, const char *name, size_t nn, const char *value, size_t vn)
{
    return k < s->nh && s->name_n[k] == nn && memcmp(s->arena + s->name_off[k], name, nn) == 0 &&
           s->value_n[k] == vn && memcmp(s->arena + s->value_off[k], value, vn) == 0;
}

#define HDR(s, k, name, value) CHECK(hdr_is((s), (k), name, sizeof(name) - 1, value, sizeof(value) - 1))
#define BODY(s, lit) CHECK_MEM((s)->arena + (s)->body_off, (s)->body_n, lit)

/* Does in[0..n) consist of complete EOLs only (n > 0)? */
static bool only_eols(const char *in, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (in[i] == '\n') i++;
        else if (in[i] == '\r' && i + 1 < n && in[i + 1] == '\n') i += 2;
        else return false;
    }
    return n > 0;
}

/* Parses in[0..n) whole into *out, then checks every prefix and a growing buffer against it. */
static void check_splits(const char *in, size_t n, const stomp_limits_t *lim, snap_t *out)
{
    parse_at(in, n, lim, out);
    snap_t *s = &snaps[3];
    bool failed_before = false;
    for (size_t k = 0; k < n; k++) {
        parse_at(in, k, lim, s);
        if (out->rc >= 0 && k >= (size_t)out->rc) {
            CHECK(same_outcome(s, out));
        } else if (only_eols(in, k)) {
            CHECK_EQ(s->rc, k);
            CHECK_EQ(s->cmd, STOMP_NONE);
        } else if (out->rc >= 0) {
            CHECK_EQ(s->rc, HR_EAGAIN);
        } else {
            /* A prefix of a refused input is refused the same way, or still incomplete; once
             * refused, every longer prefix is refused too. */
            CHECK(s->rc == HR_EAGAIN || same_outcome(s, out));
            CHECK(!failed_before || s->rc != HR_EAGAIN);
            if (s->rc != HR_EAGAIN) failed_before = true;
        }
    }

    /* A caller that appends one byte at a time to the same buffer, consuming heart-beats. */
    char *buf = malloc(n + 1);
    if (!buf) abort();
    memcpy(buf, in, n);
    size_t off = 0;
    ssize_t rc = HR_EAGAIN;
    stomp_frame_t f;
    const char *why = NULL;
    for (size_t k = 1; k <= n; k++) {
        rc = stomp_frame_parse(buf + off, k - off, lim, &f, &why);
        if (rc == HR_EAGAIN) {
            CHECK(memcmp(buf, in, n) == 0);
            continue;
        }
        if (rc > 0 && f.cmd == STOMP_NONE && off + (size_t)rc < (size_t)(out->rc > 0 ? out->rc : (ssize_t)n)) {
            off += (size_t)rc;
            continue;
        }
        break;
    }
    if (out->rc >= 0) {
        CHECK(rc > 0);
        CHECK_EQ(off + (size_t)rc, out->rc);
        CHECK_EQ(f.cmd, out->cmd);
        CHECK_EQ(f.nheaders, out->nh);
        CHECK_EQ(f.body_len, out->body_n);
    } else {
        CHECK_EQ(rc, out->rc);
        if (rc != HR_EAGAIN) CHECK(strcmp(why, out->why) == 0);
    }
    free(buf);
}

#define PARSE(lit, lim, s) check_splits(lit, sizeof(lit) - 1, lim, s)

static void expect_err(const char *in, size_t n, const stomp_limits_t *lim, ssize_t rc, const char *why)
{
    snap_t *s = &snaps[0];
    check_splits(in, n, lim, s);
    CHECK_EQ(s->rc, rc);
    if (s->rc == rc && rc != HR_EAGAIN && strcmp(s->why, why) != 0) {
        CHECK(strcmp(s->why, why) == 0);
        printf("#   why \"%s\", want \"%s\"\n", s->why, why);
    }
}

#define ERR(lit, lim, rc, why) expect_err(lit, sizeof(lit) - 1, lim, rc, why)

/* ---- tests ---- */

TEST(spec_frames)
{
    snap_t *s = &snaps[0];
    PARSE("CONNECT\naccept-version:1.2\nhost:stomp.github.org\n\n\0", &lim12, s);
    CHECK_EQ(s->rc, 51);
    CHECK_EQ(s->cmd, STOMP_CONNECT);
    CHECK_EQ(s->nh, 2);
    HDR(s, 0, "accept-version", "1.2");
    HDR(s, 1, "host", "stomp.github.org");
    BODY(s, "");
    CHECK(!s->has_cl);

    PARSE("CONNECTED\nversion:1.2\n\n\0", &lim12, s);
    CHECK_EQ(s->cmd, STOMP_CONNECTED);
    HDR(s, 0, "version", "1.2");

    PARSE("SEND\ndestination:/queue/a\ncontent-type:text/plain\n\nhello queue a\n\0", &lim12, s);
    CHECK_EQ(s->cmd, STOMP_SEND);
    CHECK_EQ(s->nh, 2);
    HDR(s, 0, "destination", "/queue/a");
    HDR(s, 1, "content-type", "text/plain");
    BODY(s, "hello queue a\n");

    PARSE("SUBSCRIBE\nid:0\ndestination:/queue/foo\nack:client\n\n\0", &lim12, s);
    CHECK_EQ(s->cmd, STOMP_SUBSCRIBE);
    CHECK_EQ(s->nh, 3);
    HDR(s, 2, "ack", "client");

    PARSE("MESSAGE\nsubscription:0\nmessage-id:007\ndestination:/queue/a\ncontent-type:text/plain\n\nhello queue a\0",
          &lim12, s);
    CHECK_EQ(s->cmd, STOMP_MESSAGE);
    CHECK_EQ(s->nh, 4);
    HDR(s, 1, "message-id", "007");
    BODY(s, "hello queue a");

    PARSE("UNSUBSCRIBE\nid:0\n\n\0", &lim12, s);
    CHECK_EQ(s->cmd, STOMP_UNSUBSCRIBE);
    PARSE("ACK\nid:12345\ntransaction:tx1\n\n\0", &lim12, s);
    CHECK_EQ(s->cmd, STOMP_ACK);
    PARSE("NACK\nid:12345\n\n\0", &lim12, s);
    CHECK_EQ(s->cmd, STOMP_NACK);
    PARSE("BEGIN\ntransaction:tx1\n\n\0", &lim12, s);
    CHECK_EQ(s->cmd, STOMP_BEGIN);
    PARSE("COMMIT\ntransaction:tx1\n\n\0", &lim12, s);
    CHECK_EQ(s->cmd, STOMP_COMMIT);
    PARSE("ABORT\ntransaction:tx1\n\n\0", &lim12, s);
    CHECK_EQ(s->cmd, STOMP_ABORT);
    PARSE("DISCONNECT\nreceipt:77\n\n\0", &lim12, s);
    CHECK_EQ(s->cmd, STOMP_DISCONNECT);
    PARSE("RECEIPT\nreceipt-id:77\n\n\0", &lim12, s);
    CHECK_EQ(s->cmd, STOMP_RECEIPT);
    HDR(s, 0, "receipt-id", "77");
    PARSE("STOMP\naccept-version:1.2\nhost:h\n\n\0", &lim12, s);
    CHECK_EQ(s->cmd, STOMP_STOMP);
    /* The spec's ERROR example, with a content-length that counts its body. */
    static const char err_body[] = "The message:\n-----\nMESSAGE\ndestined:/queue/a\nreceipt:message-12345\n\n"
                                   "Hello queue a!\n-----\nDid not contain a destination header, which is "
                                   "REQUIRED\nfor message propagation.\n";
    char err[512];
    int en = snprintf(err, sizeof err,
                      "ERROR\nreceipt-id:message-12345\ncontent-type:text/plain\ncontent-length:%zu\n"
                      "message:malformed frame received\n\n%s",
                      sizeof err_body - 1, err_body);
    check_splits(err, (size_t)en + 1, &lim12, s); /* + 1: the NUL snprintf wrote */
    CHECK_EQ(s->rc, en + 1);
    CHECK_EQ(s->cmd, STOMP_ERROR);
    CHECK(s->has_cl);
    CHECK_EQ(s->body_n, sizeof err_body - 1);
    HDR(s, 3, "message", "malformed frame received");

    /* No headers at all, and a frame with only a body. */
    PARSE("DISCONNECT\n\n\0", &lim12, s);
    CHECK_EQ(s->rc, 13);
    CHECK_EQ(s->nh, 0);
    PARSE("SEND\n\nx\0", &lim12, s);
    BODY(s, "x");
}

TEST(crlf_variant)
{
    snap_t *s = &snaps[0], *t = &snaps[1];
    PARSE("SEND\r\ndestination:/queue/a\r\ncontent-type:text/plain\r\n\r\nhello\r\n\0", &lim12, s);
    CHECK_EQ(s->cmd, STOMP_SEND);
    CHECK_EQ(s->nh, 2);
    HDR(s, 0, "destination", "/queue/a");
    HDR(s, 1, "content-type", "text/plain");
    BODY(s, "hello\r\n");
    /* Mixed EOLs in one frame. */
    PARSE("SEND\ndestination:/queue/a\r\ncontent-type:text/plain\n\r\nhello\r\n\0", &lim12, t);
    CHECK(same_frame(s, t));
    for (int v = 10; v <= 12; v++) {
        stomp_limits_t l = lim12;
        l.version = v;
        PARSE("SUBSCRIBE\r\nid:0\r\ndestination:/a\r\n\r\n\0", &l, s);
        CHECK_EQ(s->cmd, STOMP_SUBSCRIBE);
        HDR(s, 0, "id", "0");
        HDR(s, 1, "destination", "/a");
    }
}

TEST(heart_beats)
{
    snap_t *s = &snaps[0];
    PARSE("\n", &lim12, s);
    CHECK_EQ(s->rc, 1);
    CHECK_EQ(s->cmd, STOMP_NONE);
    PARSE("\r\n\n\r\n", &lim12, s);
    CHECK_EQ(s->rc, 5);
    CHECK_EQ(s->cmd, STOMP_NONE);
    ERR("", &lim12, HR_EAGAIN, "");
    ERR("\r", &lim12, HR_EAGAIN, "");
    ERR("\n\n\r", &lim12, HR_EAGAIN, ""); /* a lone CR at the end may be half of an EOL */
    ERR("\rx", &lim12, HR_EPROTO, "CR not followed by LF");
    ERR("\n\r\r\n", &lim12, HR_EPROTO, "CR not followed by LF");

    /* Before a frame: consumed with it once it is complete. */
    PARSE("\n\r\n\nSEND\ndestination:/a\n\nhi\0", &lim12, s);
    CHECK_EQ(s->rc, 4 + 21 + 3);
    CHECK_EQ(s->cmd, STOMP_SEND);
    BODY(s, "hi");

    /* After a frame: not consumed; they are the next call's heart-beats. */
    static const char two[] = "SEND\n\nA\0\n\r\nSEND\n\nB\0\n";
    PARSE(two, &lim12, s);
    CHECK_EQ(s->rc, 8);
    BODY(s, "A");
    check_splits(two + 8, sizeof two - 1 - 8, &lim12, s);
    CHECK_EQ(s->rc, 3 + 8);
    BODY(s, "B");
    check_splits(two + 19, 1, &lim12, s);
    CHECK_EQ(s->rc, 1);
    CHECK_EQ(s->cmd, STOMP_NONE);
    /* Even when the heart-beats follow in the same buffer, they are left alone. */
    PARSE("SEND\n\nA\0\n\n\n", &lim12, s);
    CHECK_EQ(s->rc, 8);
}

TEST(incomplete_is_eagain_and_untouched)
{
    /* parse_at() checks the buffer is untouched on HR_EAGAIN; check_splits() every prefix. */
    snap_t *s = &snaps[0];
    ERR("SEND", &lim12, HR_EAGAIN, "");
    ERR("SEND\n", &lim12, HR_EAGAIN, "");
    ERR("SEND\r", &lim12, HR_EAGAIN, "");
    ERR("SEND\ndest", &lim12, HR_EAGAIN, "");
    ERR("SEND\nk:v\\", &lim12, HR_EAGAIN, ""); /* the escape's second byte is still to come */
    ERR("SEND\nk\\n:v\\c\n\n", &lim12, HR_EAGAIN, "");
    ERR("SEND\ncontent-length:3\n\nab\0", &lim12, HR_EAGAIN, "");
    ERR("SEND\ncontent-length:3\n\nabc", &lim12, HR_EAGAIN, "");
    ERR("SEND\n\nno nul yet", &lim12, HR_EAGAIN, "");
    /* Escapes are decoded only when the frame is complete, so a repeated call sees the original
     * bytes; check_splits() grows one buffer and would notice a premature decode. */
    PARSE("SEND\na\\cb:c\\\\d\\ne\\rf\n\nbody\0", &lim12, s);
    HDR(s, 0, "a:b", "c\\d\ne\rf");
}

TEST(unknown_command)
{
    ERR("send\n\n\0", &lim12, HR_EPROTO, "unknown command");
    ERR("SENDX\n\n\0", &lim12, HR_EPROTO, "unknown command");
    ERR("SENDX", &lim12, HR_EPROTO, "unknown command"); /* refused before the line ends */
    ERR("SEN\n\n\0", &lim12, HR_EPROTO, "unknown command");
    ERR("SEN\r\n\r\n\0", &lim12, HR_EPROTO, "unknown command");
    ERR("\0", &lim12, HR_EPROTO, "unknown command");
    ERR("\n\nX", &lim12, HR_EPROTO, "unknown command");
    ERR(" SEND\n\n\0", &lim12, HR_EPROTO, "unknown command");
    ERR("SEND \n\n\0", &lim12, HR_EPROTO, "unknown command");
    ERR("CONNECTEDX\n\n\0", &lim12, HR_EPROTO, "unknown command");
    ERR("GET / HTTP/1.1\r\n", &lim12, HR_EPROTO, "unknown command");
    ERR("SEND\rX\n\0", &lim12, HR_EPROTO, "CR not followed by LF");
}

TEST(malformed_headers)
{
    snap_t *s = &snaps[0];
    ERR("SEND\ndestination\n\n\0", &lim12, HR_EPROTO, "header line without ':'");
    ERR("SEND\nd:1\nno colon here\r\n\r\n\0", &lim12, HR_EPROTO, "header line without ':'");
    ERR("SEND\n:value\n\n\0", &lim12, HR_EPROTO, "empty header name");
    ERR("SEND\n:", &lim12, HR_EPROTO, "empty header name"); /* refused at once */
    ERR("SEND\n\\c:value\\\n\n\0", &lim12, HR_EPROTO, "undefined escape sequence");
    ERR("SEND\nk:v\rX\n\n\0", &lim12, HR_EPROTO, "CR not followed by LF");
    ERR("SEND\nk:v\n\rX\0", &lim12, HR_EPROTO, "CR not followed by LF");
    ERR("SEND\nk:v\r\r\n\n\0", &lim12, HR_EPROTO, "CR not followed by LF");

    /* Values are taken literally in every version: no trimming; later colons belong to the value. */
    for (int v = 10; v <= 12; v++) {
        stomp_limits_t l = lim12;
        l.version = v;
        PARSE("SEND\n key : a value \nempty:\nurl:http://x:80/\n\n\0", &l, s);
        CHECK_EQ(s->nh, 3);
        HDR(s, 0, " key ", " a value ");
        HDR(s, 1, "empty", "");
        HDR(s, 2, "url", "http://x:80/");
    }
}

TEST(escapes_1_2)
{
    snap_t *s = &snaps[0];
    PARSE("MESSAGE\nfoo\\cbar:a\\nb\\rc\\\\d\\ce\nx:\\\\\\\\\n\n\0", &lim12, s);
    CHECK_EQ(s->nh, 2);
    HDR(s, 0, "foo:bar", "a\nb\rc\\d:e");
    HDR(s, 1, "x", "\\\\");
    ERR("SEND\nk:\\t\n\n\0", &lim12, HR_EPROTO, "undefined escape sequence");
    ERR("SEND\nk:\\t", &lim12, HR_EPROTO, "undefined escape sequence"); /* refused before the line ends */
    ERR("SEND\nk\\x:v\n\n\0", &lim12, HR_EPROTO, "undefined escape sequence");
    ERR("SEND\nk:\\:\n\n\0", &lim12, HR_EPROTO, "undefined escape sequence");
    ERR("SEND\nk:\\C\n\n\0", &lim12, HR_EPROTO, "undefined escape sequence");
    ERR("SEND\nk:v\\\n\n\0", &lim12, HR_EPROTO, "undefined escape sequence"); /* trailing lone backslash */
    ERR("SEND\nk:v\\\r\n\r\n\0", &lim12, HR_EPROTO, "undefined escape sequence");
    ERR("SEND\nk:v\\\0\n\n\0", &lim12, HR_EPROTO, "undefined escape sequence");
    /* Any other version number gets the 1.2 rules. */
    stomp_limits_t l = lim12;
    l.version = 13;
    PARSE("SEND\nk:\\r\n\n\0", &l, s);
    HDR(s, 0, "k", "\r");
}

TEST(escapes_1_1_and_1_0)
{
    snap_t *s = &snaps[0];
    PARSE("MESSAGE\nfoo\\cbar:a\\nb\\\\c\n\n\0", &lim11, s);
    HDR(s, 0, "foo:bar", "a\nb\\c");
    ERR("SEND\nk:\\r\n\n\0", &lim11, HR_EPROTO, "undefined escape sequence");
    ERR("SEND\nk:\\t\n\n\0", &lim11, HR_EPROTO, "undefined escape sequence");
    ERR("SEND\nk:v\\\n\n\0", &lim11, HR_EPROTO, "undefined escape sequence");

    /* 1.0 has no escapes: a backslash is an ordinary byte. */
    PARSE("MESSAGE\nfoo\\cbar:a\\nb\\r\\t\\\n\n\0", &lim10, s);
    HDR(s, 0, "foo\\cbar", "a\\nb\\r\\t\\");
}

TEST(connect_frames_not_unescaped)
{
    snap_t *s = &snaps[0];
    static const stomp_limits_t *lims[] = {&lim10, &lim11, &lim12};
    for (int i = 0; i < 3; i++) {
        PARSE("CONNECT\nlogin:a\\cb\npasscode:x\\ty\\\n\n\0", lims[i], s);
        CHECK_EQ(s->cmd, STOMP_CONNECT);
        HDR(s, 0, "login", "a\\cb");
        HDR(s, 1, "passcode", "x\\ty\\");
        PARSE("STOMP\nlogin:a\\cb\n\n\0", lims[i], s);
        HDR(s, 0, "login", "a\\cb");
        PARSE("CONNECTED\nserver:h\\r\\n\n\n\0", lims[i], s);
        HDR(s, 0, "server", "h\\r\\n");
    }
    /* The same header in a SEND frame is decoded (or refused). */
    PARSE("SEND\nlogin:a\\cb\n\n\0", &lim12, s);
    HDR(s, 0, "login", "a:b");
    ERR("SEND\npasscode:x\\ty\n\n\0", &lim12, HR_EPROTO, "undefined escape sequence");
}

TEST(repeated_headers_first_wins)
{
    void *map;
    size_t maplen;
    static const char in[] = "MESSAGE\nfoo:World\nfoo:Hello\nbar:1\n\n\0";
    char *p = guard_page_copy(in, sizeof in - 1, &map, &maplen);
    stomp_frame_t f;
    const char *why;
    CHECK_EQ(stomp_frame_parse(p, sizeof in - 1, &lim12, &f, &why), sizeof in - 1);
    CHECK_EQ(f.nheaders, 3);
    span_t v = stomp_header(&f, "foo");
    CHECK_MEM(v.p, v.n, "World");
    v = stomp_header(&f, "bar");
    CHECK_MEM(v.p, v.n, "1");
    v = stomp_header(&f, "baz");
    CHECK(v.p == NULL && v.n == 0);
    v = stomp_header(&f, "fo");
    CHECK(v.p == NULL);
    guard_page_free(map, maplen);

    /* An escaped name matches its decoded form. */
    static const char esc[] = "SEND\na\\cb:1\na:b:2\n\n\0";
    p = guard_page_copy(esc, sizeof esc - 1, &map, &maplen);
    CHECK_EQ(stomp_frame_parse(p, sizeof esc - 1, &lim12, &f, &why), sizeof esc - 1);
    v = stomp_header(&f, "a:b");
    CHECK_MEM(v.p, v.n, "1");
    v = stomp_header(&f, "a");
    CHECK_MEM(v.p, v.n, "b:2");
    guard_page_free(map, maplen);
}

TEST(content_length)
{
    snap_t *s = &snaps[0];
    /* NUL bytes inside a content-length body. */
    PARSE("SEND\ncontent-length:5\n\na\0b\0c\0", &lim12, s);
    CHECK(s->has_cl);
    CHECK_EQ(s->body_n, 5);
    CHECK(memcmp(s->arena + s->body_off, "a\0b\0c", 5) == 0);
    PARSE("SEND\ncontent-length:0\n\n\0", &lim12, s);
    CHECK_EQ(s->body_n, 0);
    PARSE("SEND\ncontent-length:003\n\n\0\0\0\0", &lim12, s);
    CHECK_EQ(s->body_n, 3);
    /* The first content-length wins; later ones are ordinary headers, not even validated. */
    PARSE("SEND\ncontent-length:2\ncontent-length:zz\n\nab\0", &lim12, s);
    BODY(s, "ab");
    HDR(s, 1, "content-length", "zz");
    /* Bytes after the NUL are the next frame's. */
    PARSE("SEND\ncontent-length:1\n\nx\0SEND", &lim12, s);
    CHECK_EQ(s->rc, 25);
    /* A name only matches exactly. */
    PARSE("SEND\nContent-Length:2\n\nabc\0", &lim12, s);
    CHECK(!s->has_cl);
    BODY(s, "abc");

    ERR("SEND\ncontent-length:3\n\nabcd\0", &lim12, HR_EPROTO, "missing NUL after body");
    ERR("SEND\ncontent-length:0\n\nx", &lim12, HR_EPROTO, "missing NUL after body");
    ERR("SEND\ncontent-length:\n\n\0", &lim12, HR_EPROTO, "invalid content-length");
    ERR("SEND\ncontent-length:-1\n\n\0", &lim12, HR_EPROTO, "invalid content-length");
    ERR("SEND\ncontent-length:+1\n\nx\0", &lim12, HR_EPROTO, "invalid content-length");
    ERR("SEND\ncontent-length: 1\n\nx\0", &lim12, HR_EPROTO, "invalid content-length");
    ERR("SEND\ncontent-length:1 \n\nx\0", &lim12, HR_EPROTO, "invalid content-length");
    ERR("SEND\ncontent-length:1a\n\nx\0", &lim12, HR_EPROTO, "invalid content-length");
    ERR("SEND\ncontent-length:0x1\n\nx\0", &lim12, HR_EPROTO, "invalid content-length");
    ERR("SEND\ncontent-length:18446744073709551616\n\n\0", &lim12, HR_EPROTO, "invalid content-length");
    ERR("SEND\ncontent-length:99999999999999999999999\n\n\0", &lim12, HR_EPROTO, "invalid content-length");
    /* 2^64 - 1 is a number, and far over any body limit. */
    ERR("SEND\ncontent-length:18446744073709551615\n\n", &lim12, HR_EFULL, "body too large");
    stomp_limits_t l = lim12;
    l.max_body = UINT64_MAX;
    ERR("SEND\ncontent-length:18446744073709551615\n\nabc", &l, HR_EAGAIN, "");
}

TEST(limits_body)
{
    snap_t *s = &snaps[0];
    stomp_limits_t l = lim12;
    l.max_body = 4;
    PARSE("SEND\n\nabcd\0", &l, s);
    BODY(s, "abcd");
    PARSE("SEND\ncontent-length:4\n\nab\0d\0", &l, s);
    CHECK_EQ(s->body_n, 4);
    /* With content-length: refused right after the head, before any of the body arrived. */
    ERR("SEND\ncontent-length:5\n\n", &l, HR_EFULL, "body too large");
    ERR("SEND\ncontent-length:5\r\n\r\n", &l, HR_EFULL, "body too large");
    /* Without: refused once more than max_body bytes came without a NUL. */
    ERR("SEND\n\nabcde", &l, HR_EFULL, "body too large");
    ERR("SEND\n\nabcde\0", &l, HR_EFULL, "body too large");
    ERR("SEND\n\nabcd", &l, HR_EAGAIN, "");
    l.max_body = 0;
    PARSE("SEND\n\n\0", &l, s);
    CHECK_EQ(s->body_n, 0);
    ERR("SEND\n\nx", &l, HR_EFULL, "body too large");
    ERR("SEND\ncontent-length:1\n\n", &l, HR_EFULL, "body too large");
}

TEST(limits_headers)
{
    snap_t *s = &snaps[0];
    stomp_limits_t l = lim12;
    l.max_headers = 2;
    PARSE("SEND\na:1\nb:2\n\n\0", &l, s);
    CHECK_EQ(s->nh, 2);
    ERR("SEND\na:1\nb:2\nc:3\n\n\0", &l, HR_EFULL, "too many headers");
    ERR("SEND\na:1\nb:2\nc", &l, HR_EFULL, "too many headers"); /* incomplete input */
    l.max_headers = 0;
    PARSE("SEND\n\n\0", &l, s);
    ERR("SEND\na", &l, HR_EFULL, "too many headers");

    /* max_headers above STOMP_MAX_HEADERS is clamped. */
    char in[2048];
    size_t n = 0;
    memcpy(in, "SEND\n", 5);
    n = 5;
    for (int k = 0; k < STOMP_MAX_HEADERS; k++) n += (size_t)sprintf(in + n, "h%d:%d\n", k, k);
    memcpy(in + n, "\n\0", 2);
    l.max_headers = 100000;
    check_splits(in, n + 2, &l, s);
    CHECK_EQ(s->rc, n + 2);
    CHECK_EQ(s->nh, STOMP_MAX_HEADERS);
    CHECK(hdr_is(s, STOMP_MAX_HEADERS - 1, "h63", 3, "63", 2));
    memcpy(in + n, "x:y\n\n\0", 6);
    expect_err(in, n + 6, &l, HR_EFULL, "too many headers");
}

TEST(limits_header_line)
{
    snap_t *s = &snaps[0];
    stomp_limits_t l = lim12;
    l.max_header_len = 5; /* "name:value", escapes counted as sent, EOL not counted */
    PARSE("SEND\nab:cd\r\n\r\n\0", &l, s);
    HDR(s, 0, "ab", "cd");
    PARSE("SEND\nab:\\n\n\n\0", &l, s);
    HDR(s, 0, "ab", "\n");
    ERR("SEND\nab:cde\n\n\0", &l, HR_EFULL, "header line too long");
    ERR("SEND\nab:\\n\\n\n\n\0", &l, HR_EFULL, "header line too long");
    ERR("SEND\nabcdef", &l, HR_EFULL, "header line too long"); /* incomplete line */
    ERR("SEND\nabcde", &l, HR_EAGAIN, "");
    ERR("SEND\nab:de\r", &l, HR_EAGAIN, "");
    ERR("SEND\nabcde\r", &l, HR_EPROTO, "header line without ':'"); /* decided before the EOL's LF */

    /* A peer that never ends its line cannot make us buffer more than the limit. */
    static char big[4096];
    memcpy(big, "SEND\nk:", 7);
    memset(big + 7, 'v', sizeof big - 7);
    l = lim12;
    expect_err(big, sizeof big, &l, HR_EFULL, "header line too long");
}

TEST(limits_frame_head)
{
    snap_t *s = &snaps[0];
    stomp_limits_t l = lim12;
    /* "SEND\na:1\nb:2\n\n" is 14 bytes: command, header lines and blank line, EOLs included. */
    l.max_frame_head = 14;
    PARSE("\n\n\nSEND\na:1\nb:2\n\nbody\0", &l, s); /* heart-beats do not count */
    CHECK_EQ(s->nh, 2);
    ERR("SEND\na:1\nb:2\r\n\n\0", &l, HR_EFULL, "frame head too large");
    ERR("SEND\na:1\nb:2\n\r\n\0", &l, HR_EFULL, "frame head too large");
    ERR("SEND\na:1\nb:23\n\n\0", &l, HR_EFULL, "frame head too large");
    ERR("SEND\na:1\nb:2\nc", &l, HR_EAGAIN, "");
    ERR("SEND\na:1\nb:2\nc:", &l, HR_EFULL, "frame head too large"); /* incomplete head */
    l.max_frame_head = 3;
    ERR("SEND\n\n\0", &l, HR_EFULL, "frame head too large");
    ERR("ACK\n\n\0", &l, HR_EFULL, "frame head too large");
    l.max_frame_head = 5;
    PARSE("ACK\n\n\0", &l, s); /* exactly the limit */
    CHECK_EQ(s->rc, 6);
    ERR("ACK\r\n\n\0", &l, HR_EFULL, "frame head too large");

    /* A peer that sends header lines forever and never the blank line is refused. */
    static char many[8192];
    size_t n = 0;
    memcpy(many, "SEND\n", 5);
    n = 5;
    while (n + 34 < sizeof many) {
        memcpy(many + n, "k:vvvvvvvvvvvvvvvvvvvvvvvvvvvvvv\n", 33);
        n += 33;
    }
    l = lim12;
    l.max_frame_head = 1000;
    expect_err(many, n, &l, HR_EFULL, "frame head too large");
}

/* ---- writer ---- */

TEST(escape)
{
    char out[64];
    CHECK_EQ(stomp_escape("a:b\\c\nd\re", 9, out, sizeof out, 12), 13);
    CHECK_MEM(out, 13, "a\\cb\\\\c\\nd\\re");
    CHECK_EQ(stomp_escape("a:b\\c\nd", 7, out, sizeof out, 11), 10);
    CHECK_MEM(out, 10, "a\\cb\\\\c\\nd");
    CHECK_EQ(stomp_escape("a\re", 3, out, sizeof out, 11), HR_EINVAL);
    CHECK_EQ(stomp_escape("a:b\\c", 5, out, sizeof out, 10), 5);
    CHECK_MEM(out, 5, "a:b\\c");
    CHECK_EQ(stomp_escape("a\nb", 3, out, sizeof out, 10), HR_EINVAL);
    CHECK_EQ(stomp_escape("a\rb", 3, out, sizeof out, 10), HR_EINVAL);
    CHECK_EQ(stomp_escape("", 0, out, 0, 12), 0);
    CHECK_EQ(stomp_escape("x\0y", 3, out, sizeof out, 12), 3);
    /* Every capacity short of the need is HR_EFULL; the escape pair is never split. */
    for (size_t cap = 0; cap < 6; cap++) CHECK_EQ(stomp_escape("ab:cd", 5, out, cap, 12), HR_EFULL);
    CHECK_EQ(stomp_escape("ab:cd", 5, out, 6, 12), 6);
}

TEST(cmd_names)
{
    CHECK(strcmp(stomp_cmd_name(STOMP_NONE), "") == 0);
    CHECK(strcmp(stomp_cmd_name(STOMP_SEND), "SEND") == 0);
    CHECK(strcmp(stomp_cmd_name(STOMP_CONNECTED), "CONNECTED") == 0);
    CHECK(strcmp(stomp_cmd_name(STOMP_ERROR), "ERROR") == 0);
    CHECK(strcmp(stomp_cmd_name((stomp_cmd_t)999), "") == 0);
}

TEST(frame_write_bytes)
{
    char out[256];
    span_t names[] = {SPAN_LIT("destination"), SPAN_LIT("a:b")};
    span_t values[] = {SPAN_LIT("/queue/a"), SPAN_LIT("x\ny")};
    ssize_t n = stomp_frame_write(out, sizeof out, "MESSAGE", names, values, 2, 12, "hi", 2, true);
    CHECK_MEM(out, (size_t)n, "MESSAGE\ndestination:/queue/a\na\\cb:x\\ny\ncontent-length:2\n\nhi\0");
    n = stomp_frame_write(out, sizeof out, "RECEIPT", NULL, NULL, 0, 12, NULL, 0, false);
    CHECK_MEM(out, (size_t)n, "RECEIPT\n\n\0");
    n = stomp_frame_write(out, sizeof out, "ERROR", NULL, NULL, 0, 12, "", 0, true);
    CHECK_MEM(out, (size_t)n, "ERROR\ncontent-length:0\n\n\0");
    /* CONNECTED (and CONNECT, STOMP) headers are written raw. */
    span_t cn[] = {SPAN_LIT("version"), SPAN_LIT("server")};
    span_t cv[] = {SPAN_LIT("1.2"), SPAN_LIT("herald/1:a\\b")};
    n = stomp_frame_write(out, sizeof out, "CONNECTED", cn, cv, 2, 12, NULL, 0, false);
    CHECK_MEM(out, (size_t)n, "CONNECTED\nversion:1.2\nserver:herald/1:a\\b\n\n\0");

    /* What the parser could not read back is refused. */
    span_t bad_name[] = {SPAN_LIT("a:b")};
    span_t empty[] = {SPAN_LIT("")};
    span_t lf[] = {SPAN_LIT("a\nb")};
    span_t cr[] = {SPAN_LIT("a\rb")};
    CHECK_EQ(stomp_frame_write(out, sizeof out, "CONNECTED", bad_name, values, 1, 12, NULL, 0, false), HR_EINVAL);
    CHECK_EQ(stomp_frame_write(out, sizeof out, "SEND", bad_name, values, 1, 10, NULL, 0, false), HR_EINVAL);
    CHECK_EQ(stomp_frame_write(out, sizeof out, "SEND", empty, values, 1, 12, NULL, 0, false), HR_EINVAL);
    CHECK_EQ(stomp_frame_write(out, sizeof out, "SEND", names, lf, 1, 10, NULL, 0, false), HR_EINVAL);
    CHECK_EQ(stomp_frame_write(out, sizeof out, "CONNECT", names, lf, 1, 12, NULL, 0, false), HR_EINVAL);
    CHECK_EQ(stomp_frame_write(out, sizeof out, "SEND", names, cr, 1, 11, NULL, 0, false), HR_EINVAL);
    CHECK_EQ(stomp_frame_write(out, sizeof out, "SEND", NULL, NULL, 0, 12, "a\0b", 3, false), HR_EINVAL);
    /* ... unless the caller passes its own content-length header. */
    span_t cln[] = {SPAN_LIT("content-length")};
    span_t clv[] = {SPAN_LIT("3")};
    n = stomp_frame_write(out, sizeof out, "SEND", cln, clv, 1, 12, "a\0b", 3, false);
    CHECK_MEM(out, (size_t)n, "SEND\ncontent-length:3\n\na\0b\0");
    CHECK_EQ(stomp_frame_write(out, sizeof out, "", NULL, NULL, 0, 12, NULL, 0, false), HR_EINVAL);
    CHECK_EQ(stomp_frame_write(out, sizeof out, "SE\nND", NULL, NULL, 0, 12, NULL, 0, false), HR_EINVAL);

    /* Every capacity short of the frame is HR_EFULL; the exact size fits. */
    ssize_t want = stomp_frame_write(out, sizeof out, "MESSAGE", names, values, 2, 12, "hi", 2, true);
    for (size_t cap = 0; cap < (size_t)want; cap++)
        CHECK_EQ(stomp_frame_write(out, cap, "MESSAGE", names, values, 2, 12, "hi", 2, true), HR_EFULL);
    CHECK_EQ(stomp_frame_write(out, (size_t)want, "MESSAGE", names, values, 2, 12, "hi", 2, true), want);
}

/* Writes a frame, parses it back (split at every point) and compares headers and body. */
static void round_trip(const char *cmd, const span_t *names, const span_t *values, uint32_t nh, int version,
                       const char *body, size_t body_len, bool cl)
{
    static char out[8192];
    ssize_t n = stomp_frame_write(out, sizeof out, cmd, names, values, nh, version, body, body_len, cl);
    CHECK(n > 0);
    if (n <= 0) return;
    stomp_limits_t l = lim12;
    l.version = version;
    snap_t *s = &snaps[1];
    check_splits(out, (size_t)n, &l, s);
    CHECK_EQ(s->rc, n);
    CHECK(strcmp(stomp_cmd_name(s->cmd), cmd) == 0);
    CHECK_EQ(s->nh, nh + (cl ? 1 : 0));
    for (uint32_t k = 0; k < nh; k++) CHECK(hdr_is(s, k, names[k].p, names[k].n, values[k].p, values[k].n));
    CHECK_EQ(s->has_cl, cl);
    CHECK(s->body_n == body_len && memcmp(s->arena + s->body_off, body, body_len) == 0);
}

TEST(frame_write_round_trip)
{
    span_t names[] = {SPAN_LIT("destination"), SPAN_LIT("we:ird\\name\n"), SPAN_LIT("v"), SPAN_LIT("dup"),
                      SPAN_LIT("dup"), SPAN_LIT("nul\0byte")};
    span_t values[] = {SPAN_LIT("/topic/x"), SPAN_LIT("line1\nline2:\\:"), SPAN_LIT(""), SPAN_LIT("first"),
                       SPAN_LIT("second"), SPAN_LIT(" spaced \0 ")};
    static const char bin[] = "\0\0a\0b\n\r\n\0";
    for (int version = 11; version <= 12; version++) {
        round_trip("SEND", names, values, 6, version, "hello", 5, false);
        round_trip("MESSAGE", names, values, 6, version, bin, sizeof bin - 1, true);
        round_trip("MESSAGE", names, values, 6, version, "", 0, true);
        round_trip("ERROR", NULL, NULL, 0, version, "x", 1, false);
    }
    span_t crn[] = {SPAN_LIT("r")};
    span_t crv[] = {SPAN_LIT("a\rb\r\n\\r")};
    round_trip("SEND", crn, crv, 1, 12, "", 0, false);
    /* 1.0 and the CONNECT family: raw, so backslashes and value colons pass untouched. */
    span_t rn[] = {SPAN_LIT("login"), SPAN_LIT("passcode"), SPAN_LIT("host")};
    span_t rv[] = {SPAN_LIT("a\\cb"), SPAN_LIT("p:q:r"), SPAN_LIT("")};
    round_trip("SEND", rn, rv, 3, 10, bin, sizeof bin - 1, true);
    for (int version = 10; version <= 12; version++) {
        round_trip("CONNECT", rn, rv, 3, version, "", 0, false);
        round_trip("STOMP", rn, rv, 3, version, "", 0, false);
        round_trip("CONNECTED", rn, rv, 3, version, "", 0, true);
    }
    /* Big binary body with content-length. */
    static char big[5000];
    for (size_t i = 0; i < sizeof big; i++) big[i] = (char)(i * 7);
    round_trip("MESSAGE", names, values, 1, 12, big, sizeof big, true);
}

TEST(guard_page)
{
    /* Inputs whose last byte is the one the parser must not read past. */
    static const struct {
        const char *s;
        size_t n;
        ssize_t rc;
    } cases[] = {
#define C(lit, rc) {lit, sizeof(lit) - 1, rc}
        C("", HR_EAGAIN),
        C("\r", HR_EAGAIN),
        C("\n\r", HR_EAGAIN),
        C("S", HR_EAGAIN),
        C("SEND\r", HR_EAGAIN),
        C("SEND\nk", HR_EAGAIN),
        C("SEND\nk:v\\", HR_EAGAIN),
        C("SEND\nk:v\r", HR_EAGAIN),
        C("SEND\nk:v\n\r", HR_EAGAIN),
        C("SEND\n\n", HR_EAGAIN),
        C("SEND\n\nbody", HR_EAGAIN),
        C("SEND\ncontent-length:4\n\nbody", HR_EAGAIN),
        C("SEND\ncontent-length:4\n\nbod", HR_EAGAIN),
        C("SEND\ncontent-length:4\n\nbody\0", 28),
        C("SEND\n\nbody\0", 11),
        C("\n\r\n", 3),
#undef C
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snap_t *s = &snaps[0];
        parse_at(cases[i].s, cases[i].n, &lim12, s); /* guard page right after the last byte */
        CHECK_EQ(s->rc, cases[i].rc);
    }
    /* A body of exactly max_body bytes with no NUL yet, ending at the guard page. */
    static char body[8192];
    memcpy(body, "SEND\n\n", 6);
    memset(body + 6, 'b', sizeof body - 6);
    stomp_limits_t l = lim12;
    l.max_body = sizeof body - 6;
    parse_at(body, sizeof body, &l, &snaps[0]);
    CHECK_EQ(snaps[0].rc, HR_EAGAIN);
    l.max_body--;
    parse_at(body, sizeof body, &l, &snaps[0]);
    CHECK_EQ(snaps[0].rc, HR_EFULL);
}

TEST(in_place_decode_only_touches_the_head)
{
    /* The decoded names and values shrink in place; the body and later bytes stay put. */
    char buf[] = "SEND\nk\\c:v\\\\\n\nbody\0NEXT";
    stomp_frame_t f;
    const char *why;
    ssize_t n = stomp_frame_parse(buf, sizeof buf - 1, &lim12, &f, &why);
    CHECK_EQ(n, 19);
    CHECK_MEM(f.name[0].p, f.name[0].n, "k:");
    CHECK_MEM(f.value[0].p, f.value[0].n, "v\\");
    CHECK(f.name[0].p == buf + 5);
    CHECK(f.value[0].p == buf + 9);
    CHECK_MEM(f.body, f.body_len, "body");
    CHECK(f.body == buf + 14);
    CHECK_MEM(buf + 19, 4, "NEXT");
}

int main(void)
{
    RUN(spec_frames);
    RUN(crlf_variant);
    RUN(heart_beats);
    RUN(incomplete_is_eagain_and_untouched);
    RUN(unknown_command);
    RUN(malformed_headers);
    RUN(escapes_1_2);
    RUN(escapes_1_1_and_1_0);
    RUN(connect_frames_not_unescaped);
    RUN(repeated_headers_first_wins);
    RUN(content_length);
    RUN(limits_body);
    RUN(limits_headers);
    RUN(limits_header_line);
    RUN(limits_frame_head);
    RUN(escape);
    RUN(cmd_names);
    RUN(frame_write_bytes);
    RUN(frame_write_round_trip);
    RUN(guard_page);
    RUN(in_place_decode_only_touches_the_head);
    return UNIT_DONE();
}
