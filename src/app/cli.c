/* cli.c - `herald pub` and `herald sub`.
 *
 * A deliberately small, blocking HTTP/1.1 client: one request per connection
 * ("Connection: close"), a buffered reader for the status line and headers, and a body reader
 * that understands Content-Length, chunked framing and read-until-close. Connecting and the
 * request/response head are bounded by 5 s socket timeouts (SO_SNDTIMEO also bounds connect()
 * on Linux). A subscription stream has no read timeout, since heartbeats may be rarer than any
 * guess; TCP keepalive notices a dead peer instead.
 *
 * `sub` feeds the decoded body into the pure SSE parser (sse_client.c). On any disconnect it
 * sleeps the server's retry delay and reconnects with Last-Event-ID set to the last id seen, so
 * the server replays what was missed from history. All state lives on the stack or the heap of
 * the call; there are no globals. */
#include "cli.h"

#define CLI_AUTH_MAX 8300 /* "Authorization: Bearer " + a token of up to 8 KiB */

#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "../core/err.h"
#include "cli_net.h"
#include "sse_client.h"

#define IO_TIMEOUT_S 5
#define DEFAULT_URL "http://127.0.0.1:8080"
#define DEFAULT_RETRY_MS 2000
#define MAX_ANSWER (1u << 20)    /* largest pub answer or error body we keep */
#define SSE_BUF (16u << 20)      /* largest SSE event (data + one line) */
#define HEAD_LINE_MAX 8192

/* ---- URL and encoding helpers ---- */

int cli__parse_url(const char *url, cli__url_t *u)
{
    memset(u, 0, sizeof(*u));
    if (strncasecmp(url, "https://", 8) == 0) u->tls = true;
    else if (strncasecmp(url, "http://", 7) != 0) return HR_EINVAL;
    const char *a = url + (u->tls ? 8 : 7);
    size_t alen = strcspn(a, "/?#");
    if (a[alen] == '?' || a[alen] == '#') return HR_EINVAL;
    if (alen == 0 || alen >= sizeof(u->authority)) return HR_EINVAL;
    memcpy(u->authority, a, alen);
    const char *end = a + alen, *port = NULL;
    if (a[0] == '[') {
        const char *close = memchr(a, ']', alen);
        if (!close || close == a + 1 || (size_t)(close - a - 1) >= sizeof(u->host)) return HR_EINVAL;
        memcpy(u->host, a + 1, (size_t)(close - a - 1));
        if (close + 1 < end) {
            if (close[1] != ':') return HR_EINVAL;
            port = close + 2;
        }
    } else {
        const char *colon = memchr(a, ':', alen);
        const char *hend = colon ? colon : end;
        if (hend == a || (size_t)(hend - a) >= sizeof(u->host)) return HR_EINVAL;
        memcpy(u->host, a, (size_t)(hend - a));
        if (colon) port = colon + 1;
    }
    if (port) {
        size_t pn = (size_t)(end - port);
        if (pn == 0 || pn > 5) return HR_EINVAL;
        unsigned v = 0;
        for (size_t i = 0; i < pn; i++) {
            if (!isdigit((unsigned char)port[i])) return HR_EINVAL;
            v = v * 10 + (unsigned)(port[i] - '0');
        }
        if (v < 1 || v > 65535) return HR_EINVAL;
        snprintf(u->port, sizeof(u->port), "%u", v);
    } else {
        strcpy(u->port, u->tls ? "443" : "80");
    }
    const char *path = end;
    size_t plen = strlen(path);
    if (strpbrk(path, "?#")) return HR_EINVAL;
    while (plen && path[plen - 1] == '/') plen--;
    if (plen >= sizeof(u->base)) return HR_EINVAL;
    memcpy(u->base, path, plen);
    return 0;
}

int cli__pct_encode(const char *s, const char *keep, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        bool plain = isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || (c && strchr(keep, c));
        size_t need = plain ? 1 : 3;
        if (o + need >= cap) return HR_EFULL;
        if (plain) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    if (o >= cap) return HR_EFULL;
    out[o] = '\0';
    return (int)o;
}

/* ---- buffered reading and the response ---- */

typedef struct {
    cli_net_t *net;
    size_t pos, len;
    char buf[16384];
} rd_t;

/* Refills an empty buffer. Returns bytes read, 0 at EOF, or HR_ETIMEDOUT / HR_EIO. */
static ssize_t rd_fill(rd_t *r)
{
    ssize_t n = cli_net_recv(r->net, r->buf, sizeof(r->buf));
    if (n < 0) return n;
    r->pos = 0;
    r->len = (size_t)n;
    return n;
}

/* Reads one line ending in LF (a CR before it is dropped) into line. Returns its length,
 * HR_EIO at EOF or on error, HR_ETIMEDOUT, or HR_EPROTO when it is longer than cap - 1. */
static ssize_t rd_line(rd_t *r, char *line, size_t cap)
{
    size_t n = 0;
    for (;;) {
        if (r->pos == r->len) {
            ssize_t got = rd_fill(r);
            if (got == 0) return HR_EIO;
            if (got < 0) return got;
        }
        char c = r->buf[r->pos++];
        if (c == '\n') break;
        if (n + 1 >= cap) return HR_EPROTO;
        line[n++] = c;
    }
    if (n && line[n - 1] == '\r') n--;
    line[n] = '\0';
    return (ssize_t)n;
}

typedef enum { BODY_NONE, BODY_LENGTH, BODY_CHUNKED, BODY_EOF } body_mode_t;

typedef struct {
    int status;
    body_mode_t mode;
    uint64_t left;   /* BODY_LENGTH: bytes left; BODY_CHUNKED: bytes left in this chunk */
    bool in_chunk;   /* BODY_CHUNKED: a chunk's data (and its CRLF) is being read */
    bool done;
    char content_type[128];
} resp_t;

static bool parse_u64_hex(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0 || n > 15) return false;
    for (size_t i = 0; i < n; i++) {
        int c = tolower((unsigned char)s[i]), d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else return false;
        v = v * 16 + (uint64_t)d;
    }
    *out = v;
    return true;
}

/* Reads the status line and headers (skipping 1xx answers). Returns 0 or a negative HR_E*. */
static int read_head(rd_t *r, resp_t *h, bool head_only_body)
{
    char line[HEAD_LINE_MAX];
    for (;;) {
        memset(h, 0, sizeof(*h));
        ssize_t n = rd_line(r, line, sizeof(line));
        if (n < 0) return (int)n;
        if (strncmp(line, "HTTP/1.", 7) != 0 || n < 12 || line[8] != ' ' || !isdigit((unsigned char)line[9]) ||
            !isdigit((unsigned char)line[10]) || !isdigit((unsigned char)line[11]))
            return HR_EPROTO;
        h->status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
        bool chunked = false, have_len = false;
        uint64_t len = 0;
        for (;;) {
            n = rd_line(r, line, sizeof(line));
            if (n < 0) return (int)n;
            if (n == 0) break;
            char *colon = strchr(line, ':');
            if (!colon) return HR_EPROTO;
            *colon = '\0';
            char *v = colon + 1;
            while (*v == ' ' || *v == '\t') v++;
            size_t vn = strlen(v);
            while (vn && (v[vn - 1] == ' ' || v[vn - 1] == '\t')) v[--vn] = '\0';
            if (strcasecmp(line, "Content-Length") == 0) {
                len = 0;
                if (vn == 0 || vn > 18) return HR_EPROTO;
                for (size_t i = 0; i < vn; i++) {
                    if (!isdigit((unsigned char)v[i])) return HR_EPROTO;
                    len = len * 10 + (uint64_t)(v[i] - '0');
                }
                have_len = true;
            } else if (strcasecmp(line, "Transfer-Encoding") == 0) {
                /* chunked must be the last coding; we understand no other */
                size_t cl = strlen("chunked");
                if (vn >= cl && strcasecmp(v + vn - cl, "chunked") == 0) chunked = true;
                else return HR_ENOTIMPL;
            } else if (strcasecmp(line, "Content-Type") == 0) {
                snprintf(h->content_type, sizeof(h->content_type), "%s", v);
            }
        }
        if (h->status >= 100 && h->status < 200) continue;
        if (head_only_body || h->status == 204 || h->status == 304) h->mode = BODY_NONE;
        else if (chunked) h->mode = BODY_CHUNKED;
        else if (have_len) h->mode = BODY_LENGTH, h->left = len;
        else h->mode = BODY_EOF;
        if (h->mode == BODY_NONE || (h->mode == BODY_LENGTH && len == 0)) h->done = true;
        return 0;
    }
}

/* Reads body bytes into out. Returns a count > 0, 0 at the end of the body, or a negative
 * HR_E* (HR_EIO when the connection ends before the framing says the body is complete). */
static ssize_t body_read(rd_t *r, resp_t *h, char *out, size_t cap)
{
    char line[HEAD_LINE_MAX];
    while (!h->done) {
        if (h->mode == BODY_CHUNKED && !h->in_chunk) {
            ssize_t n = rd_line(r, line, sizeof(line));
            if (n < 0) return n;
            size_t hexlen = strspn(line, "0123456789abcdefABCDEF");
            uint64_t size;
            if (!parse_u64_hex(line, hexlen, &size)) return HR_EPROTO;
            if (line[hexlen] && line[hexlen] != ';' && line[hexlen] != ' ' && line[hexlen] != '\t')
                return HR_EPROTO;
            if (size == 0) {
                do { /* trailer fields, up to the empty line */
                    n = rd_line(r, line, sizeof(line));
                    if (n < 0) return n;
                } while (n > 0);
                h->done = true;
                return 0;
            }
            h->left = size;
            h->in_chunk = true;
            continue;
        }
        if (h->mode == BODY_CHUNKED && h->left == 0) { /* the CRLF after a chunk's data */
            ssize_t n = rd_line(r, line, sizeof(line));
            if (n < 0) return n;
            if (n != 0) return HR_EPROTO;
            h->in_chunk = false;
            continue;
        }
        if (r->pos == r->len) {
            ssize_t got = rd_fill(r);
            if (got < 0) return got;
            if (got == 0) {
                if (h->mode == BODY_EOF) h->done = true;
                return h->mode == BODY_EOF ? 0 : HR_EIO;
            }
        }
        size_t n = r->len - r->pos;
        if (n > cap) n = cap;
        if (h->mode != BODY_EOF && n > h->left) n = (size_t)h->left;
        memcpy(out, r->buf + r->pos, n);
        r->pos += n;
        if (h->mode != BODY_EOF) {
            h->left -= n;
            if (h->mode == BODY_LENGTH && h->left == 0) h->done = true;
        }
        return (ssize_t)n;
    }
    return 0;
}

/* Reads a whole (small) body into a malloc'd, NUL-terminated buffer; keeps at most MAX_ANSWER
 * bytes. Returns 0 or a negative HR_E*; *out is then NULL. */
static int body_read_all(rd_t *r, resp_t *h, char **out, size_t *outlen)
{
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    *out = NULL;
    if (!buf) return HR_ENOMEM;
    for (;;) {
        if (cap - len < 1024) {
            if (cap >= MAX_ANSWER) {
                free(buf);
                return HR_EFULL;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                return HR_ENOMEM;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t n = body_read(r, h, buf + len, cap - len - 1);
        if (n < 0) {
            free(buf);
            return (int)n;
        }
        if (n == 0) break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    *out = buf;
    *outlen = len;
    return 0;
}

/* ---- argument helpers ---- */

/* Matches "--name VALUE" / "--name=VALUE" (and the short form, if any, as "-n VALUE" or
 * "-nVALUE") at argv[*i]. Returns the value and advances *i past it, or NULL if argv[*i] is
 * another option. Sets *missing when the option is there but its value is not. */
static const char *opt_value(int argc, char **argv, int *i, const char *name, const char *shrt, bool *missing)
{
    const char *a = argv[*i];
    size_t nl = strlen(name);
    if (strncmp(a, name, nl) == 0 && (a[nl] == '\0' || a[nl] == '=')) {
        if (a[nl] == '=') return a + nl + 1;
    } else if (shrt && strncmp(a, shrt, 2) == 0) {
        if (a[2]) return a + 2;
    } else {
        return NULL;
    }
    if (*i + 1 >= argc) {
        *missing = true;
        return NULL;
    }
    return argv[++*i];
}

static const char *default_url(void)
{
    const char *env = getenv("HERALD_URL");
    return env && *env ? env : DEFAULT_URL;
}

/* ---- pub ---- */

static int read_stdin(char **out, size_t *outlen)
{
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    if (!buf) return HR_ENOMEM;
    for (;;) {
        if (len == cap) {
            char *nb = cap < ((size_t)1 << 40) ? realloc(buf, cap * 2) : NULL;
            if (!nb) {
                free(buf);
                return HR_ENOMEM;
            }
            buf = nb;
            cap *= 2;
        }
        size_t n = fread(buf + len, 1, cap - len, stdin);
        len += n;
        if (n == 0) break;
    }
    if (ferror(stdin)) {
        free(buf);
        return HR_EIO;
    }
    *out = buf;
    *outlen = len;
    return 0;
}

/* The Authorization header line for --token (default $HERALD_TOKEN): a token or an API key. 0,
 * or 2 (usage error, reported) when it does not fit or holds control characters. */
static int auth_header(const char *token, char *out, size_t cap)
{
    out[0] = 0;
    if (!token) token = getenv("HERALD_TOKEN");
    if (!token || !*token) return 0;
    for (const char *p = token; *p; p++)
        if ((unsigned char)*p < 0x21 || *p == 0x7f) {
            fprintf(stderr, "herald: --token holds spaces or control characters\n");
            return 2;
        }
    int n = snprintf(out, cap, "Authorization: Bearer %s\r\n", token);
    if (n < 0 || (size_t)n >= cap) {
        fprintf(stderr, "herald: --token too long\n");
        out[0] = 0;
        return 2;
    }
    return 0;
}

static void pub_usage(void)
{
    fprintf(stderr, "usage: herald pub [--url URL] [--token T] [--cacert FILE] [--event NAME] CHANNEL [DATA]\n"
                    "  Publishes DATA (or all of stdin) to CHANNEL and prints the JSON answer.\n"
                    "  --token: an API key or a token (default $HERALD_TOKEN).\n"
                    "  --cacert: CA certificates (PEM) that verify an https:// server (default $HERALD_CACERT,\n"
                    "  else the system's).\n");
}

static const char *default_cacert(void) { return getenv("HERALD_CACERT"); }

int cli_pub(int argc, char **argv)
{
    const char *url = default_url(), *event = NULL, *pos[2] = {NULL, NULL}, *token = NULL, *cacert = default_cacert();
    int npos = 0;
    bool opts_done = false;
    for (int i = 0; i < argc; i++) {
        bool missing = false;
        const char *v;
        if (!opts_done && strcmp(argv[i], "--") == 0) {
            opts_done = true;
        } else if (!opts_done && (v = opt_value(argc, argv, &i, "--url", NULL, &missing))) {
            url = v;
        } else if (!opts_done && (v = opt_value(argc, argv, &i, "--event", NULL, &missing))) {
            event = v;
        } else if (!opts_done && (v = opt_value(argc, argv, &i, "--token", NULL, &missing))) {
            token = v;
        } else if (!opts_done && (v = opt_value(argc, argv, &i, "--cacert", NULL, &missing))) {
            cacert = v;
        } else if (missing) {
            fprintf(stderr, "herald: %s needs a value\n", argv[i]);
            return 2;
        } else if (!opts_done && argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "herald: pub: unknown option %s\n", argv[i]);
            pub_usage();
            return 2;
        } else if (npos < 2) {
            pos[npos++] = argv[i];
        } else {
            fprintf(stderr, "herald: pub: too many arguments\n");
            pub_usage();
            return 2;
        }
    }
    if (npos < 1 || !*pos[0]) {
        pub_usage();
        return 2;
    }
    cli__url_t u;
    if (cli__parse_url(url, &u) < 0) {
        fprintf(stderr, "herald: bad URL '%s' (want http[s]://host[:port][/path])\n", url);
        return 2;
    }
    char chan[1024], ev[256];
    if (cli__pct_encode(pos[0], "/", chan, sizeof(chan)) < 0 ||
        (event && cli__pct_encode(event, "", ev, sizeof(ev)) < 0)) {
        fprintf(stderr, "herald: channel or event name too long\n");
        return 2;
    }

    char authz[CLI_AUTH_MAX];
    if (auth_header(token, authz, sizeof(authz))) return 2;
    char *body = NULL;
    size_t blen = 0;
    if (pos[1]) {
        blen = strlen(pos[1]);
    } else if (read_stdin(&body, &blen) < 0) {
        fprintf(stderr, "herald: cannot read stdin\n");
        return 1;
    }
    const char *data = pos[1] ? pos[1] : body;

    char err[1024];
    cli_net_t net;
    if (cli_net_dial(&net, &u, cacert, IO_TIMEOUT_S, err, sizeof(err)) < 0) {
        fprintf(stderr, "herald: %s\n", err);
        free(body);
        return 1;
    }
    char head[4096 + CLI_AUTH_MAX];
    int hn = snprintf(head, sizeof(head),
                      "POST %s/pub/%s%s%s HTTP/1.1\r\nHost: %s\r\nUser-Agent: herald-cli\r\n%s"
                      "Content-Type: application/octet-stream\r\nContent-Length: %zu\r\n"
                      "Connection: close\r\n\r\n",
                      u.base, chan, event ? "?event=" : "", event ? ev : "", u.authority, authz, blen);
    int rc = hn > 0 && (size_t)hn < sizeof(head) ? 0 : HR_EFULL;
    if (rc == 0) rc = cli_net_send_all(&net, head, (size_t)hn);
    if (rc == 0) rc = cli_net_send_all(&net, data, blen);
    free(body);

    rd_t *r = malloc(sizeof(*r));
    resp_t h;
    char *answer = NULL;
    size_t alen = 0;
    if (!r) rc = HR_ENOMEM;
    if (r) r->net = &net, r->pos = r->len = 0;
    /* Even when sending failed the server may have answered (e.g. 413 before the body). */
    int hrc = r ? read_head(r, &h, false) : HR_ENOMEM;
    if (hrc == 0) hrc = body_read_all(r, &h, &answer, &alen);
    cli_net_close(&net);
    free(r);
    if (hrc < 0) {
        fprintf(stderr, "herald: %s: %s\n", u.authority, hr_strerror(rc < 0 ? rc : hrc));
        free(answer);
        return 1;
    }
    int code;
    if (h.status >= 200 && h.status < 300) {
        fwrite(answer, 1, alen, stdout);
        fputc('\n', stdout);
        code = fflush(stdout) == 0 ? 0 : 1;
    } else {
        if (alen) {
            fwrite(answer, 1, alen, stderr);
            fputc('\n', stderr);
        } else {
            fprintf(stderr, "herald: HTTP %d\n", h.status);
        }
        code = 1;
    }
    free(answer);
    return code;
}

/* ---- sub ---- */

typedef struct {
    long count, limit; /* messages printed; exit after limit (0 = never) */
    bool out_failed;
    uint8_t *scratch;  /* base64 output, SSE_BUF bytes */
    char auth[CLI_AUTH_MAX]; /* "Authorization: Bearer T\r\n" or "" */
    const char *cacert;      /* --cacert (NULL: the system's CAs) */
} sub_ctx_t;

static int on_event(void *ud, const sse_client_event_t *ev)
{
    sub_ctx_t *s = ud;
    if (strcmp(ev->event, "gap") == 0) {
        fprintf(stderr, "herald: gap: %.*s\n", (int)ev->data_len, ev->data);
        return 0;
    }
    size_t el = strlen(ev->event), sl = strlen("@base64");
    if (el >= sl && strcmp(ev->event + el - sl, "@base64") == 0) {
        ssize_t n = sse_client_b64_decode(ev->data, ev->data_len, s->scratch);
        if (n < 0) {
            fprintf(stderr, "herald: bad base64 payload in message %s\n", ev->id);
            return 0;
        }
        fwrite(s->scratch, 1, (size_t)n, stdout);
    } else {
        fwrite(ev->data, 1, ev->data_len, stdout);
    }
    fputc('\n', stdout);
    if (fflush(stdout) != 0) {
        s->out_failed = true;
        return 1;
    }
    s->count++;
    return s->limit && s->count >= s->limit ? 1 : 0;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

typedef enum { SUB_RETRY, SUB_FATAL, SUB_DONE } sub_result_t;

/* One connection: request, head, stream. On SUB_FATAL a message is already on stderr. */
static sub_result_t sub_once(const cli__url_t *u, const char *path, sse_client_t *p, sub_ctx_t *s, rd_t *r,
                             char *chunk, bool first, bool *streamed)
{
    *streamed = false;
    char err[1024];
    cli_net_t net;
    if (cli_net_dial(&net, u, s->cacert, IO_TIMEOUT_S, err, sizeof(err)) < 0) {
        if (first) fprintf(stderr, "herald: %s\n", err);
        return first ? SUB_FATAL : SUB_RETRY;
    }
    char head[8192 + CLI_AUTH_MAX];
    char idhdr[SSE_CLIENT_ID_MAX + 32] = "";
    if (p->last_id[0]) snprintf(idhdr, sizeof(idhdr), "Last-Event-ID: %s\r\n", p->last_id);
    int hn = snprintf(head, sizeof(head),
                      "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: herald-cli\r\nAccept: text/event-stream\r\n"
                      "Cache-Control: no-cache\r\n%s%sConnection: close\r\n\r\n",
                      path, u->authority, s->auth, idhdr);
    resp_t h;
    r->net = &net;
    r->pos = r->len = 0;
    int rc = (size_t)hn < sizeof(head) ? cli_net_send_all(&net, head, (size_t)hn) : HR_EFULL;
    if (rc == 0) rc = read_head(r, &h, false);
    if (rc < 0) {
        cli_net_close(&net);
        if (first) fprintf(stderr, "herald: %s: %s\n", u->authority, hr_strerror(rc));
        return first ? SUB_FATAL : SUB_RETRY;
    }
    if (h.status != 200) {
        char *answer = NULL;
        size_t alen = 0;
        body_read_all(r, &h, &answer, &alen);
        cli_net_close(&net);
        /* While reconnecting, a 5xx (e.g. a restarting server) is worth another try. */
        if (!first && h.status >= 500) {
            free(answer);
            return SUB_RETRY;
        }
        if (answer && alen) fprintf(stderr, "%s\n", answer);
        else fprintf(stderr, "herald: HTTP %d\n", h.status);
        free(answer);
        return SUB_FATAL;
    }
    if (strncasecmp(h.content_type, "text/event-stream", 17) != 0) {
        cli_net_close(&net);
        fprintf(stderr, "herald: expected text/event-stream, got '%s'\n", h.content_type);
        return SUB_FATAL;
    }
    cli_net_stream(&net); /* the stream itself: no read timeout, keepalive probes instead */

    sse_client_restart(p);
    *streamed = true;
    sub_result_t res = SUB_RETRY;
    for (;;) {
        ssize_t n = body_read(r, &h, chunk, 65536);
        if (n <= 0) break;
        ssize_t used = sse_client_feed(p, chunk, (size_t)n);
        if (used == HR_EFULL) {
            fprintf(stderr, "herald: an event is larger than %u bytes; reconnecting after it\n", SSE_BUF);
            break;
        }
        if (p->stopped) {
            res = s->out_failed ? SUB_FATAL : SUB_DONE;
            break;
        }
    }
    cli_net_close(&net);
    return res;
}

static void sub_usage(void)
{
    fprintf(stderr, "usage: herald sub [--url URL] [--token T] [--cacert FILE] [--last-id N] [-n COUNT] CHANNEL\n"
                    "  Prints the data of each message on CHANNEL; reconnects and resumes.\n"
                    "  --token: a token or an API key (default $HERALD_TOKEN).\n"
                    "  --cacert: CA certificates (PEM) that verify an https:// server (default $HERALD_CACERT).\n");
}

int cli_sub(int argc, char **argv)
{
    const char *url = default_url(), *last_id = NULL, *chan_arg = NULL, *token = NULL, *cacert = default_cacert();
    long limit = 0;
    bool opts_done = false;
    for (int i = 0; i < argc; i++) {
        bool missing = false;
        const char *v;
        if (!opts_done && strcmp(argv[i], "--") == 0) {
            opts_done = true;
        } else if (!opts_done && (v = opt_value(argc, argv, &i, "--url", NULL, &missing))) {
            url = v;
        } else if (!opts_done && (v = opt_value(argc, argv, &i, "--last-id", NULL, &missing))) {
            last_id = v;
        } else if (!opts_done && (v = opt_value(argc, argv, &i, "--token", NULL, &missing))) {
            token = v;
        } else if (!opts_done && (v = opt_value(argc, argv, &i, "--cacert", NULL, &missing))) {
            cacert = v;
        } else if (!opts_done && (v = opt_value(argc, argv, &i, "--count", "-n", &missing))) {
            char *end;
            errno = 0;
            limit = strtol(v, &end, 10);
            if (errno || *end || end == v || limit < 1) {
                fprintf(stderr, "herald: -n: want a positive count, got '%s'\n", v);
                return 2;
            }
        } else if (missing) {
            fprintf(stderr, "herald: %s needs a value\n", argv[i]);
            return 2;
        } else if (!opts_done && argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "herald: sub: unknown option %s\n", argv[i]);
            sub_usage();
            return 2;
        } else if (!chan_arg) {
            chan_arg = argv[i];
        } else {
            fprintf(stderr, "herald: sub: too many arguments\n");
            sub_usage();
            return 2;
        }
    }
    if (!chan_arg || !*chan_arg) {
        sub_usage();
        return 2;
    }
    if (last_id && (!*last_id || strspn(last_id, "0123456789,") != strlen(last_id) ||
                    strlen(last_id) >= SSE_CLIENT_ID_MAX)) {
        fprintf(stderr, "herald: --last-id: want an id like 17 (or 17,0,4 for several channels)\n");
        return 2;
    }
    cli__url_t u;
    if (cli__parse_url(url, &u) < 0) {
        fprintf(stderr, "herald: bad URL '%s' (want http[s]://host[:port][/path])\n", url);
        return 2;
    }
    char chan[1024], path[1600];
    if (cli__pct_encode(chan_arg, "/,", chan, sizeof(chan)) < 0) {
        fprintf(stderr, "herald: channel name too long\n");
        return 2;
    }
    /* the exact form: a payload with CR comes as EVENT@base64, so it prints byte for byte */
    snprintf(path, sizeof(path), "%s/sub/%s?exact=1", u.base, chan);

    sub_ctx_t s = {.limit = limit, .cacert = cacert};
    if (auth_header(token, s.auth, sizeof(s.auth))) return 2;
    sse_client_t *p = malloc(sizeof(*p));
    char *sbuf = malloc(SSE_BUF), *chunk = malloc(65536);
    rd_t *r = malloc(sizeof(*r));
    s.scratch = malloc(SSE_BUF);
    int code = 1;
    if (!p || !sbuf || !chunk || !r || !s.scratch) {
        fprintf(stderr, "herald: out of memory\n");
        goto out;
    }
    sse_client_init(p, sbuf, SSE_BUF, on_event, &s);
    if (last_id) snprintf(p->last_id, sizeof(p->last_id), "%s", last_id);

    bool first = true;
    for (;;) {
        bool streamed;
        sub_result_t res = sub_once(&u, path, p, &s, r, chunk, first, &streamed);
        if (res == SUB_DONE) {
            code = 0;
            break;
        }
        if (res == SUB_FATAL) break;
        /* A connection that got as far as the stream counts as established. */
        first = false;
        if (streamed) /* once per outage, not once per failed attempt */
            fprintf(stderr, "herald: disconnected; reconnecting%s%s\n", p->last_id[0] ? " after id " : "",
                    p->last_id);
        sleep_ms(p->retry_ms >= 0 ? p->retry_ms : DEFAULT_RETRY_MS);
    }
out:
    free(p);
    free(sbuf);
    free(chunk);
    free(r);
    free(s.scratch);
    return code;
}
