/* test_cli.c - unit tests for the pub/sub client: the SSE stream parser (every split point,
 * line ends, BOM, comments, ids, retry, limits), base64, URL parsing and percent-encoding,
 * plus cli_pub and cli_sub end to end against a scripted HTTP server in a forked child on a
 * free loopback port. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../src/app/cli.h"
#include "../../src/app/sse_client.h"
#include "../../src/core/err.h"
#include "unit.h"

/* ---- SSE parser ---- */

typedef struct {
    char log[4096]; /* "event|id|data;" per event */
    size_t len;
    int events, stop_after;
} sink_t;

static int sink_cb(void *ud, const sse_client_event_t *ev)
{
    sink_t *s = ud;
    int n = snprintf(s->log + s->len, sizeof(s->log) - s->len, "%s|%s|", ev->event, ev->id);
    s->len += (size_t)n;
    memcpy(s->log + s->len, ev->data, ev->data_len);
    s->len += ev->data_len;
    s->log[s->len++] = ';';
    s->log[s->len] = '\0';
    s->events++;
    return s->stop_after && s->events >= s->stop_after;
}

/* Parses text whole, then again split at every position and byte by byte; all must agree. */
static void parse_all_ways(const char *text, size_t n, const char *want)
{
    char buf[1024];
    for (size_t split = 0; split <= n + 1; split++) {
        sink_t s = {0};
        sse_client_t p;
        sse_client_init(&p, buf, sizeof(buf), sink_cb, &s);
        if (split <= n) {
            CHECK_EQ(sse_client_feed(&p, text, split), (ssize_t)split);
            CHECK_EQ(sse_client_feed(&p, text + split, n - split), (ssize_t)(n - split));
        } else {
            for (size_t i = 0; i < n; i++) CHECK_EQ(sse_client_feed(&p, text + i, 1), 1);
        }
        if (strcmp(s.log, want) != 0) {
            unit__failed_checks++;
            printf("#   split %zu: got \"%s\", want \"%s\"\n", split, s.log, want);
            return;
        }
    }
}

#define PARSE(lit, want) parse_all_ways((lit), sizeof(lit) - 1, (want))

TEST(sse_basic_fields)
{
    PARSE("data: hello\n\n", "message||hello;");
    PARSE("id: 7\nevent: news\ndata: a\ndata: b\n\n", "news|7|a\nb;");
    PARSE("data:no-space\n\n", "message||no-space;");
    PARSE("data:  two spaces\n\n", "message|| two spaces;");
    PARSE("data\n\n", "message||;");        /* a field with no colon has an empty value */
    PARSE("data:\ndata:\n\n", "message||\n;"); /* two empty lines join to one "\n" */
    PARSE("event: x\n\n", "");                 /* no data: nothing dispatched ... */
    PARSE("event: x\n\ndata: y\n\n", "message||y;"); /* ... and the event name is reset */
    PARSE("data: unterminated", "");           /* dropped at end of stream */
    PARSE("data: a\n", "");
    PARSE("foo: bar\ndata: z\n\n", "message||z;"); /* unknown fields are ignored */
    PARSE("data: a:b:c\n\n", "message||a:b:c;");
}

TEST(sse_line_ends_bom_comments)
{
    PARSE("data: a\r\n\r\ndata: b\r\rdata: c\n\n", "message||a;message||b;message||c;");
    PARSE("data: a\r\ndata: b\r\n\r\n", "message||a\nb;");
    PARSE("\xEF\xBB\xBF" "data: bom\n\n", "message||bom;");
    PARSE("\xEF\xBB\xBF" "\xEF\xBB\xBF" "data: x\n\n", ""); /* only one BOM is stripped */
    PARSE(": comment\n:\ndata: c\n: another\n\n", "message||c;");
    PARSE(":\n\n", "");
    PARSE("\n\n\r\n", "");
}

/* Multi-line data as herald sends it (one "data:" line per payload line, the payload's CR and
 * CRLF already split into lines by the server) and as other servers may send it (CR, CRLF line
 * ends): the lines join with LF, only the one final LF is dropped. */
TEST(sse_multiline_data)
{
    PARSE("id: 1\ndata: a\ndata: b\n\n", "message|1|a\nb;");              /* "a\nb", "a\rb", "a\r\nb" */
    PARSE("data: trail\ndata: \n\n", "message||trail\n;");                 /* a trailing line break */
    PARSE("data: mid\ndata: \ndata: x\n\n", "message||mid\n\nx;");         /* an empty line inside */
    PARSE("data: \ndata: \n\n", "message||\n;");                           /* "\n" alone */
    PARSE("data: \n\n", "message||;");                                     /* the empty payload */
    PARSE("data: data: x\ndata: id: 9\n\n", "message||data: x\nid: 9;");   /* field-looking text */
    PARSE("data:  lead\ndata:   two\n\n", "message|| lead\n  two;");        /* one space stripped */
    PARSE("data: :colon\n\n", "message||:colon;");
    PARSE("event: blob\ndata: x\r\ndata: y\r\rdata: z\n\n", "blob||x\ny;message||z;");
    PARSE("data: \xEF\xBB\xBF" "bom\n\n", "message||\xEF\xBB\xBF" "bom;"); /* a BOM past the stream's start stays */

    /* NUL inside data is data (only the id field refuses it) */
    char buf[64];
    sink_t s = {0};
    sse_client_t p;
    sse_client_init(&p, buf, sizeof(buf), sink_cb, &s);
    static const char t[] = "id: 3\ndata: a\0b\ndata: \0\n\n";
    CHECK_EQ(sse_client_feed(&p, t, sizeof(t) - 1), (ssize_t)(sizeof(t) - 1));
    CHECK_EQ(s.events, 1);
    CHECK_EQ(memcmp(s.log, "message|3|a\0b\n\0;", 17), 0);
}

TEST(sse_ids_and_retry)
{
    PARSE("id: 1\ndata: a\n\ndata: b\n\n", "message|1|a;message|1|b;"); /* id persists */
    PARSE("id: 1\ndata: a\n\nid\ndata: b\n\n", "message|1|a;message||b;"); /* empty id resets */
    PARSE("id: 5\n\ndata: b\n\n", "message|5|b;"); /* id set by an event without data */
    PARSE("id: 1\ndata: a\n\nid: 2\x00x\ndata: b\n\n", "message|1|a;message|1|b;"); /* NUL: ignored */

    char buf[256];
    sse_client_t p;
    sse_client_init(&p, buf, sizeof(buf), NULL, NULL);
    CHECK_EQ(p.retry_ms, -1);
    const char *t = "retry: 1500\n\nretry: 12x\n\nretry:\n\n";
    CHECK_EQ(sse_client_feed(&p, t, strlen(t)), (ssize_t)strlen(t));
    CHECK_EQ(p.retry_ms, 1500);
    t = "retry: 99999999999999999999999\n";
    sse_client_feed(&p, t, strlen(t));
    CHECK(p.retry_ms > 0);

    /* restart keeps the last id and retry, and a bare "retry" block does not lose the id */
    t = "id: 42\ndata: x\n\nid: 43\ndata: partial";
    sse_client_feed(&p, t, strlen(t));
    CHECK(strcmp(p.last_id, "42") == 0);
    sse_client_restart(&p);
    t = "retry: 10\n\n";
    sse_client_feed(&p, t, strlen(t));
    CHECK(strcmp(p.last_id, "42") == 0);
    CHECK_EQ(p.retry_ms, 10);
}

TEST(sse_stop_and_limits)
{
    char buf[64];
    sink_t s = {.stop_after = 1};
    sse_client_t p;
    sse_client_init(&p, buf, sizeof(buf), sink_cb, &s);
    const char *t = "data: a\n\ndata: b\n\n";
    CHECK_EQ(sse_client_feed(&p, t, strlen(t)), 9);
    CHECK(p.stopped);
    CHECK(strcmp(s.log, "message||a;") == 0);

    /* an event larger than the buffer */
    sse_client_init(&p, buf, sizeof(buf), sink_cb, &s);
    char big[200];
    memset(big, 'x', sizeof(big));
    memcpy(big, "data: ", 6);
    CHECK_EQ(sse_client_feed(&p, big, sizeof(big)), HR_EFULL);
    /* data that accumulates over lines also counts */
    sse_client_init(&p, buf, sizeof(buf), sink_cb, &s);
    t = "data: 0123456789012345678901234567890\n";
    CHECK_EQ(sse_client_feed(&p, t, strlen(t)), (ssize_t)strlen(t));
    CHECK_EQ(sse_client_feed(&p, t, strlen(t)), HR_EFULL);
}

TEST(sse_guard_page)
{
    const char *t = "id: 9\nevent: e\ndata: tail-without-newline";
    void *map;
    size_t maplen;
    char *g = guard_page_copy(t, strlen(t), &map, &maplen);
    char buf[256];
    sink_t s = {0};
    sse_client_t p;
    sse_client_init(&p, buf, sizeof(buf), sink_cb, &s);
    CHECK_EQ(sse_client_feed(&p, g, strlen(t)), (ssize_t)strlen(t));
    CHECK_EQ(s.events, 0);
    guard_page_free(map, maplen);
    g = guard_page_copy("data: x\r", 8, &map, &maplen);
    CHECK_EQ(sse_client_feed(&p, g, 8), 8);
    guard_page_free(map, maplen);
}

TEST(base64)
{
    uint8_t out[64];
    CHECK_EQ(sse_client_b64_decode("", 0, out), 0);
    CHECK_EQ(sse_client_b64_decode("aGVsbG8=", 8, out), 5);
    CHECK_MEM(out, 5, "hello");
    CHECK_EQ(sse_client_b64_decode("aGVsbG8", 7, out), 5); /* padding optional */
    CHECK_EQ(sse_client_b64_decode("AAEC/w==", 8, out), 4);
    CHECK(out[0] == 0 && out[1] == 1 && out[2] == 2 && out[3] == 0xff);
    CHECK_EQ(sse_client_b64_decode("aGVs\nbG8=", 9, out), 5);
    CHECK_EQ(sse_client_b64_decode("aGVsbG8=x", 9, out), HR_EINVAL);
    CHECK_EQ(sse_client_b64_decode("a", 1, out), HR_EINVAL);
    CHECK_EQ(sse_client_b64_decode("aGV*", 4, out), HR_EINVAL);
    CHECK_EQ(sse_client_b64_decode("aGVsbG8==", 9, out), HR_EINVAL);
    CHECK_EQ(sse_client_b64_decode("aG===", 5, out), HR_EINVAL);
}

TEST(url_and_encoding)
{
    cli__url_t u;
    CHECK_EQ(cli__parse_url("http://127.0.0.1:8080", &u), 0);
    CHECK(strcmp(u.host, "127.0.0.1") == 0 && strcmp(u.port, "8080") == 0 && u.base[0] == '\0');
    CHECK(strcmp(u.authority, "127.0.0.1:8080") == 0);
    CHECK_EQ(cli__parse_url("HTTP://example.com/herald/", &u), 0);
    CHECK(strcmp(u.host, "example.com") == 0 && strcmp(u.port, "80") == 0 && strcmp(u.base, "/herald") == 0);
    CHECK_EQ(cli__parse_url("http://[::1]:9/", &u), 0);
    CHECK(strcmp(u.host, "::1") == 0 && strcmp(u.port, "9") == 0 && strcmp(u.authority, "[::1]:9") == 0);
    CHECK_EQ(cli__parse_url("https://x", &u), 0);
    CHECK(u.tls);
    CHECK(strcmp(u.port, "443") == 0 && strcmp(u.host, "x") == 0);
    CHECK_EQ(cli__parse_url("ftp://x", &u), HR_EINVAL);
    CHECK_EQ(cli__parse_url("http://", &u), HR_EINVAL);
    CHECK_EQ(cli__parse_url("http://x:0", &u), HR_EINVAL);
    CHECK_EQ(cli__parse_url("http://x:65536", &u), HR_EINVAL);
    CHECK_EQ(cli__parse_url("http://x:", &u), HR_EINVAL);
    CHECK_EQ(cli__parse_url("http://x/?q", &u), HR_EINVAL);
    CHECK_EQ(cli__parse_url("http://[::1", &u), HR_EINVAL);
    CHECK_EQ(cli__parse_url("x:80", &u), HR_EINVAL);

    char out[32];
    CHECK_EQ(cli__pct_encode("news/eu-1.x~_", "/", out, sizeof(out)), 13);
    CHECK(strcmp(out, "news/eu-1.x~_") == 0);
    CHECK_EQ(cli__pct_encode("a b%/,\xff", "", out, sizeof(out)), 17);
    CHECK(strcmp(out, "a%20b%25%2F%2C%FF") == 0);
    CHECK_EQ(cli__pct_encode("a,b", "/,", out, sizeof(out)), 3);
    CHECK_EQ(cli__pct_encode("    ", "", out, 12), HR_EFULL);
    CHECK_EQ(cli__pct_encode("    ", "", out, 13), 12);
}

/* ---- end to end against a scripted server ---- */

/* Serves `nconn` connections in order; script(i, request) returns what to send, and the
 * connection is closed afterwards unless hold is set for it. Runs in a child process. */
typedef const char *(*script_fn)(int i, const char *req, bool *hold);

static int listen_any(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 8) < 0) abort();
    socklen_t al = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &al);
    *port = ntohs(a.sin_port);
    return fd;
}

static pid_t serve(int lfd, int nconn, script_fn script)
{
    pid_t pid = fork();
    if (pid != 0) {
        close(lfd);
        return pid;
    }
    alarm(30);
    for (int i = 0; i < nconn; i++) {
        int c = accept(lfd, NULL, NULL);
        if (c < 0) _exit(1);
        char req[8192];
        size_t n = 0;
        ssize_t r;
        while (n < sizeof(req) - 1 && (r = read(c, req + n, sizeof(req) - 1 - n)) > 0) {
            n += (size_t)r;
            req[n] = '\0';
            char *end = strstr(req, "\r\n\r\n");
            if (!end) continue;
            const char *cl = strcasestr(req, "Content-Length: ");
            size_t body = cl ? (size_t)atoi(cl + 16) : 0;
            if (n >= (size_t)(end + 4 - req) + body) break;
        }
        req[n] = '\0';
        bool hold = false;
        const char *out = script(i, req, &hold);
        if (write(c, out, strlen(out)) < 0) _exit(1);
        if (hold) {
            char tmp[64];
            while (read(c, tmp, sizeof(tmp)) > 0) {
            }
        }
        close(c);
    }
    _exit(0);
}

/* Runs fn with stdout and stderr captured into out/err. */
static int capture(int (*fn)(int, char **), int argc, char **argv, char *out, size_t cap, char *err, size_t ecap)
{
    fflush(stdout);
    fflush(stderr);
    FILE *fo = tmpfile(), *fe = tmpfile();
    int so = dup(1), se = dup(2);
    dup2(fileno(fo), 1);
    dup2(fileno(fe), 2);
    int rc = fn(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(so, 1);
    dup2(se, 2);
    close(so);
    close(se);
    rewind(fo);
    rewind(fe);
    size_t n = fread(out, 1, cap - 1, fo);
    out[n] = '\0';
    n = fread(err, 1, ecap - 1, fe);
    err[n] = '\0';
    fclose(fo);
    fclose(fe);
    return rc;
}

static const char *pub_script(int i, const char *req, bool *hold)
{
    static char resp[4096]; /* child process only */
    if (i == 0) {
        /* echo the request line and body length back as JSON, chunked with an extension */
        const char *body = strstr(req, "\r\n\r\n") + 4;
        char json[1024];
        int jn = snprintf(json, sizeof(json), "{\"req\":\"%.*s\",\"len\":%zu}", (int)strcspn(req, "\r"), req,
                          strlen(body));
        snprintf(resp, sizeof(resp),
                 "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n5;x=y\r\n%.5s\r\n%x\r\n%s\r\n0\r\nTrailer: 1\r\n\r\n",
                 json, jn - 5, json + 5);
        return resp;
    }
    return "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: 32\r\n\r\n"
           "{\"error\":\"invalid channel name\"}";
}

TEST(pub_end_to_end)
{
    int port;
    int lfd = listen_any(&port);
    pid_t pid = serve(lfd, 2, pub_script);
    char url[64], out[4096], err[4096];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
    char *a1[] = {"--url", url, "--event", "a b", "news/eu x", "hello"};
    CHECK_EQ(capture(cli_pub, 6, a1, out, sizeof(out), err, sizeof(err)), 0);
    CHECK(strcmp(out, "{\"req\":\"POST /pub/news/eu%20x?event=a%20b HTTP/1.1\",\"len\":5}\n") == 0);
    if (strstr(out, "req") == NULL) printf("#   out=%s err=%s\n", out, err);
    snprintf(url, sizeof(url), "--url=http://127.0.0.1:%d", port);
    char *a3[] = {url, "bad$", "y"};
    CHECK_EQ(capture(cli_pub, 3, a3, out, sizeof(out), err, sizeof(err)), 1);
    CHECK(out[0] == '\0');
    CHECK(strcmp(err, "{\"error\":\"invalid channel name\"}\n") == 0);
    int st;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);

    /* usage errors and an unreachable server */
    char *a4[] = {"--bogus", "x"};
    CHECK_EQ(capture(cli_pub, 2, a4, out, sizeof(out), err, sizeof(err)), 2);
    char *a5[] = {"--url", "http://127.0.0.1:1", "x", "y"};
    CHECK_EQ(capture(cli_pub, 4, a5, out, sizeof(out), err, sizeof(err)), 1);
    CHECK(strstr(err, "cannot connect") != NULL);
    char *a6[] = {"--url"};
    CHECK_EQ(capture(cli_pub, 1, a6, out, sizeof(out), err, sizeof(err)), 2);
}

static const char *sub_script(int i, const char *req, bool *hold)
{
    static char resp[4096]; /* child process only */
    const char *lid = strcasestr(req, "Last-Event-ID: ");
    char id[32] = "none";
    if (lid) snprintf(id, sizeof(id), "%.*s", (int)strcspn(lid + 15, "\r"), lid + 15);
    const char *head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
    if (i == 0) {
        /* the first stream: fast retry, two messages (one base64), a gap, in 7-byte chunks */
        const char *body = "retry: 10\n\nid: 1\ndata: one\n\nid: 2\nevent: message@base64\ndata: AHR3bw==\n\n"
                           "event: gap\ndata: {}\n\n";
        size_t o = (size_t)snprintf(resp, sizeof(resp), "%s", head), bl = strlen(body);
        for (size_t k = 0; k < bl; k += 7) {
            int cn = bl - k < 7 ? (int)(bl - k) : 7;
            o += (size_t)snprintf(resp + o, sizeof(resp) - o, "%x\r\n%.*s\r\n", cn, cn, body + k);
        }
        snprintf(resp + o, sizeof(resp) - o, "0\r\n\r\n");
        return resp;
    }
    *hold = true;
    char ev[128];
    int n = snprintf(ev, sizeof(ev), "retry: 10\r\n\r\nid: 3\r\ndata: resumed from %s\r\n\r\n", id);
    snprintf(resp, sizeof(resp), "%s%x\r\n%s\r\n", head, n, ev);
    return resp;
}

TEST(sub_end_to_end)
{
    int port;
    int lfd = listen_any(&port);
    pid_t pid = serve(lfd, 2, sub_script);
    char url[64], out[4096], err[4096];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
    char *a1[] = {"--url", url, "-n", "3", "chan"};
    CHECK_EQ(capture(cli_sub, 5, a1, out, sizeof(out), err, sizeof(err)), 0);
    CHECK_EQ(memcmp(out, "one\n\0two\nresumed from 2\n", 24), 0);
    CHECK(out[24] == '\0');
    CHECK(strstr(err, "herald: gap: {}") != NULL);
    int st;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);

    /* a non-200 answer on the first connection is fatal */
    lfd = listen_any(&port);
    pid = serve(lfd, 1, pub_script); /* answers its first request 200 JSON: not an event stream */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
    char *a2[] = {"--url", url, "--last-id", "5", "chan"};
    CHECK_EQ(capture(cli_sub, 5, a2, out, sizeof(out), err, sizeof(err)), 1);
    CHECK(strstr(err, "text/event-stream") != NULL);
    waitpid(pid, &st, 0);

    char *a3[] = {"--url", "http://127.0.0.1:1", "chan"};
    CHECK_EQ(capture(cli_sub, 3, a3, out, sizeof(out), err, sizeof(err)), 1);
    char *a4[] = {"-n", "0", "chan"};
    CHECK_EQ(capture(cli_sub, 3, a4, out, sizeof(out), err, sizeof(err)), 2);
    char *a5[] = {"--last-id", "x1", "chan"};
    CHECK_EQ(capture(cli_sub, 3, a5, out, sizeof(out), err, sizeof(err)), 2);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    RUN(sse_basic_fields);
    RUN(sse_line_ends_bom_comments);
    RUN(sse_multiline_data);
    RUN(sse_ids_and_retry);
    RUN(sse_stop_and_limits);
    RUN(sse_guard_page);
    RUN(base64);
    RUN(url_and_encoding);
    RUN(pub_end_to_end);
    RUN(sub_end_to_end);
    return UNIT_DONE();
}
