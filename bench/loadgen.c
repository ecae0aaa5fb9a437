/* loadgen.c - `herald bench`: a single-process load generator for herald and nginx+nchan.
 *
 * Design. Everything lives in one lg_ctx_t (no globals): options, the epoll fd, an array of
 * connections (subscribers first, then publishers), counters and latency samples. The loop
 * is level-triggered epoll with a timeout computed from the next scheduled publish.
 *
 * Phases: CONNECT (subscribers are opened in a ramp: at most --ramp-batch handshakes in
 * flight, so the server's accept backlog never overflows) -> WARMUP (--warmup-ms after the
 * last subscriber is ready) -> RUN (publish M messages) -> DRAIN (wait for the deliveries)
 * -> done. A subscriber is "ready" when its SSE response head arrived (SSE), when its first
 * poll answered with a cursor (herald long poll), or when its first request was written
 * (nchan long poll, which has no "connected" signal; nchan serves the channel's buffer from
 * the oldest message, so nothing is lost).
 *
 * Each payload is "<scheduled_us> <seq> " padded with 'x' to --size; scheduled_us is on
 * CLOCK_MONOTONIC (one process, so one clock). With --rate R message i is scheduled at
 * start + i/R whether or not the publisher could send it then, so server stalls show up as
 * latency (no coordinated omission). Flat out (--rate 0), the schedule is the send time and
 * at most --window publishes are in flight.
 *
 * Parsing is incremental and copy-light: a connection keeps only unparsed bytes. Its buffer
 * holds [decoded body not yet consumed][raw bytes not yet decoded]; chunked framing is
 * removed in place by moving chunk data down to the decoded region. Bytes read into the
 * shared scratch buffer are parsed there and only a leftover is copied to the connection.
 * Delivery bookkeeping is a bitmap of M bits per subscriber (duplicates and misses are
 * exact even when several publisher connections reorder messages).
 *
 * WebSocket subscribers (--mode ws) send an Upgrade request, check the 101 answer and its
 * Sec-WebSocket-Accept, and from then on the connection's bytes are frames, read with the pure
 * codec (ws_frame_parse, unmasked server frames). One message is one delivery, whatever its
 * fragmentation. With --deflate they offer permessage-deflate; a compressed message (RSV1 on its
 * first frame) is inflated with zlib. When the server answered server_no_context_takeover every
 * message stands alone and one shared inflater, reset per message, serves all connections;
 * otherwise each connection keeps its own inflater (and its window) across messages. Server
 * pings get a masked pong; a server Close gets a Close back and counts as a disconnect.
 *
 * MQTT (--mode mqtt subscribers, --pub-via mqtt publishers) goes to --mqtt-url. Every packet is
 * written and read with the pure codec (src/transport/mqtt_codec.h, client role). A subscriber
 * sends CONNECT (clean session), then SUBSCRIBE to the topic named like the channel at --qos,
 * and is ready at its SUBACK; it answers PUBLISH QoS 1 with PUBACK, QoS 2 with PUBREC, and
 * PUBREL with PUBCOMP (the answers produced by one read go out in one send). A publisher is
 * ready at its CONNACK and has one PUBLISH in flight at a time, done at PUBACK (QoS 1), at
 * PUBCOMP after PUBREC -> PUBREL (QoS 2), or, for QoS 0 which has no answer, at the PINGRESP to
 * a PINGREQ sent right behind the PUBLISH: the broker handles a connection's packets in order,
 * so the PINGRESP means the PUBLISH was taken, and --window paces QoS 0 like the others.
 *
 * Credentials (herald's access control, docs/auth.md): subscribers present --token, or token
 * i mod N of --tokens-file (distinct users), as ?token= on the subscribe URL or as the MQTT
 * CONNECT password (user name "bench"); HTTP publishers send --pub-key as Authorization: Bearer.
 * The connect phase (first connect -> last subscriber ready) is timed, with the server's CPU.
 *
 * Mixed runs (for bench/soak.sh): --mode takes a list (sse,ws,mqtt,longpoll) and subscriber i
 * uses entry i mod n, all on one channel and one sequence of messages, with the deliveries and
 * the misses also counted by transport. --channels K spreads the run over K channels: subscriber
 * i reads CHANNEL-(i mod K) and message s goes to CHANNEL-(s mod K), so each subscriber expects
 * every K-th message, and one arriving on the wrong channel counts as unparsed. With --intervals
 * a SIGUSR2 (read from a signalfd in the loop) prints an interval report; MQTT subscribers send
 * a PINGREQ every 5 minutes so that runs longer than the keep alive are not cut.
 *
 * Users (for bench/users.sh): --sub-path P makes every subscriber ask for /sub/P instead of its
 * channel (herald's personal feed "@me": the token decides the channel), while the accounting
 * still expects CHANNEL-(i mod K); with --tokens-file holding K tokens in channel order, token j
 * is the user whose channel is CHANNEL-j. --pub-op read turns the publishers into devices marking
 * read: request s goes to POST /read/CHANNEL-(s mod K) with that user's token, alternately up to
 * the newest message ({"id":"<max>"}, clamped by the server: nothing unread) and up to none
 * ({"id":"0"}: the channel's history unread), so that every read changes the user's count. The
 * subscribers count herald's SSE "unread" events; with --read-events each read must reach every
 * subscriber of its user once (subscriber i takes its k-th event as read k * K + i mod K, and
 * checks that the total is 0 after an even read and not 0 after an odd one), and the latency is
 * from the read's scheduled time to the event. With --channels K a subscriber's bitmap has one bit
 * per message of its own channel (s / K), not one per message of the run.
 * TLS (--tls, loadgen_tls.c): once a connection's TCP connect is done, a TLS handshake runs on its
 * readiness events (c->tls_hs); after it the connection speaks its protocol through SSL_read and
 * SSL_write in place of recv and send, reading until EAGAIN since one call returns one record.
 * With --tls-handshake-only an idle subscriber is ready at its handshake (the handshake rate).
 * The types, and the measurements and reports (loadgen_report.c), are in loadgen_internal.h. */
#include "loadgen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "../src/core/err.h"
#include "../src/transport/mqtt_codec.h"
#include "../src/transport/ws_codec.h"
#include "loadgen_internal.h"

#define LG_MQ_PING_US (300 * 1000000ull) /* MQTT subscribers' keep-alive PINGREQ (keep alive 600 s) */

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t lg__now_us(void)
{
    return now_us();
}

const char *lg__mode_name(const lg_ctx_t *x, int m)
{
    if (m == MODE_SSE) return "sse";
    if (m == MODE_LONGPOLL) return "longpoll";
    if (m == MODE_MQTT) return "mqtt";
    return x->deflate ? "ws-deflate" : "ws";
}

/* The channel of subscriber c (0 without --channels). */
static uint32_t sub_chan_no(const lg_ctx_t *x, const lg_conn_t *c)
{
    return x->channels > 1 ? c->idx % x->channels : 0;
}

uint64_t lg__expected(const lg_ctx_t *x, const lg_conn_t *c, uint32_t upto)
{
    if (x->channels <= 1) return upto;
    uint32_t j = sub_chan_no(x, c);
    return j < upto ? (uint64_t)(upto - 1 - j) / x->channels + 1 : 0;
}

static void note_error(lg_ctx_t *x, const char *fmt, const char *a, int b)
{
    if (x->first_error[0]) return;
    snprintf(x->first_error, sizeof(x->first_error), fmt, a, b);
    if (!x->quiet) fprintf(stderr, "bench: %s\n", x->first_error);
}

/* ---- connections ---- */

static int ep_set(lg_ctx_t *x, lg_conn_t *c, bool want_out, int op)
{
    /* Edge-triggered: a socket is read until a short read, which for TCP means its queue was
     * empty, so no extra recv() is needed to see EAGAIN and no level re-poll happens. */
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET | (want_out ? EPOLLOUT : 0u), .data.ptr = c};
    c->want_out = want_out;
    return epoll_ctl(x->ep, op, c->fd, &ev);
}

static void conn_close(lg_ctx_t *x, lg_conn_t *c, bool abortive)
{
    if (c->fd >= 0) {
        if (abortive) {
            struct linger lg = {1, 0}; /* RST: no TIME_WAIT, so runs do not exhaust ports */
            setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        }
        epoll_ctl(x->ep, EPOLL_CTL_DEL, c->fd, NULL);
        if (c->ssl) lgt_close(c);
        close(c->fd);
    }
    c->fd = -1;
    free(c->buf);
    c->buf = NULL;
    c->len = c->cap = 0;
    free(c->out);
    c->out = NULL;
    c->out_len = c->out_off = 0;
    memset(&c->r, 0, sizeof(c->r));
    c->ws_open = c->ws_deflate = c->ws_ctx = false;
    memset(&c->wsm, 0, sizeof(c->wsm));
    free(c->frag);
    c->frag = NULL;
    c->frag_len = c->frag_cap = 0;
    if (c->zs) {
        inflateEnd(c->zs);
        free(c->zs);
        c->zs = NULL;
    }
}

static int conn_open(lg_ctx_t *x, lg_conn_t *c)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    const struct sockaddr_in *to = c->mq ? &x->maddr : c->kind == K_PUB ? &x->paddr : &x->addr;
    if (connect(fd, (const struct sockaddr *)to, sizeof(*to)) < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        return -e;
    }
    c->fd = fd;
    c->state = ST_CONNECTING;
    memset(&c->r, 0, sizeof(c->r));
    if (ep_set(x, c, true, EPOLL_CTL_ADD) < 0) {
        int e = errno;
        close(fd);
        c->fd = -1;
        return -e;
    }
    return 0;
}

/* Queues bytes and tries to write them at once; EPOLLOUT is asked for only on EAGAIN. */
static int conn_send(lg_ctx_t *x, lg_conn_t *c, const char *d, size_t n)
{
    if (c->out_len == c->out_off) {
        ssize_t w = c->ssl ? lgt_send(c, d, n) : send(c->fd, d, n, MSG_NOSIGNAL);
        if (w == (ssize_t)n) return 0;
        if (w < 0 && errno != EAGAIN) return -1;
        if (w < 0) w = 0;
        d += w;
        n -= (size_t)w;
        free(c->out);
        c->out = malloc(n);
        if (!c->out) return -1;
        memcpy(c->out, d, n);
        c->out_len = n;
        c->out_off = 0;
    } else {
        char *o = realloc(c->out, c->out_len + n);
        if (!o) return -1;
        memcpy(o + c->out_len, d, n);
        c->out = o;
        c->out_len += n;
    }
    return c->want_out ? 0 : ep_set(x, c, true, EPOLL_CTL_MOD);
}

static int flush_out(lg_ctx_t *x, lg_conn_t *c)
{
    while (c->out_off < c->out_len) {
        const char *d = c->out + c->out_off;
        size_t n = c->out_len - c->out_off;
        ssize_t w = c->ssl ? lgt_send(c, d, n) : send(c->fd, d, n, MSG_NOSIGNAL);
        if (w < 0) return errno == EAGAIN ? 0 : -1;
        c->out_off += (size_t)w;
    }
    free(c->out);
    c->out = NULL;
    c->out_len = c->out_off = 0;
    return ep_set(x, c, false, EPOLL_CTL_MOD);
}

/* ---- requests ---- */

static const char *sub_channel(lg_ctx_t *x, lg_conn_t *c, char *tmp, size_t n)
{
    if (x->sub_path) return x->sub_path;
    if (x->idle_conns && x->idle_distinct) {
        snprintf(tmp, n, "%s-%u", x->channel, c->idx);
        return tmp;
    }
    if (x->channels > 1) {
        snprintf(tmp, n, "%s-%u", x->channel, sub_chan_no(x, c));
        return tmp;
    }
    return x->channel;
}

/* The channel message seq is published to. */
static const char *pub_channel(const lg_ctx_t *x, uint32_t seq, char *tmp, size_t n)
{
    if (x->channels <= 1) return x->channel;
    snprintf(tmp, n, "%s-%u", x->channel, seq % x->channels);
    return tmp;
}

/* The token c presents, or NULL: publishers only --token (MQTT), subscribers --tokens-file first. */
static const char *conn_token(const lg_ctx_t *x, const lg_conn_t *c)
{
    return c->kind == K_SUB && x->ntokens ? x->tokens[c->idx % x->ntokens] : x->token;
}

/* A token goes into the URL as it is: base64url and dots (JWS compact) need no escaping. */
static bool token_ok(const char *t)
{
    size_t n = strspn(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~");
    return n > 0 && n <= LG_MAX_TOKEN && t[n] == 0;
}

/* --tokens-file: one token per line, blank lines skipped. */
static int load_tokens(lg_ctx_t *x, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    while (rc == 0 && (n = getline(&line, &cap, f)) >= 0) {
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
        if (!n) continue;
        char **t = x->ntokens % 1024 ? x->tokens : realloc(x->tokens, (x->ntokens + 1024) * sizeof(char *));
        if (t) x->tokens = t;
        if (!t || !token_ok(line) || !(t[x->ntokens] = strdup(line))) rc = -1;
        else x->ntokens++;
    }
    free(line);
    fclose(f);
    return rc == 0 && x->ntokens ? 0 : -1;
}

static uint64_t rng_next(lg_ctx_t *x)
{
    /* xorshift64*: plenty for WebSocket keys and masks, which need not be secret here */
    x->rng ^= x->rng >> 12;
    x->rng ^= x->rng << 25;
    x->rng ^= x->rng >> 27;
    return x->rng * 0x2545F4914F6CDD1Dull;
}

/* Writes the base64 of the 16 bytes in in[] (24 characters) and a NUL into out. */
static void b64_16(const uint8_t in[16], char out[25])
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < 16; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < 16) v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < 16) v |= in[i + 2];
        out[o++] = tab[(v >> 18) & 63];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = i + 1 < 16 ? tab[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < 16 ? tab[v & 63] : '=';
    }
    out[o] = 0;
}

static int send_sub_request(lg_ctx_t *x, lg_conn_t *c)
{
    char req[640 + LG_MAX_TOKEN], ch[240];
    const char *chan = sub_channel(x, c, ch, sizeof(ch));
    const char *tok = conn_token(x, c), *tq = tok ? "?token=" : "", *tv = tok ? tok : "";
    int n;
    if (c->mode == MODE_WS) {
        uint8_t raw[16];
        uint64_t a = rng_next(x), b = rng_next(x);
        memcpy(raw, &a, 8);
        memcpy(raw + 8, &b, 8);
        b64_16(raw, c->ws_key);
        n = snprintf(req, sizeof(req),
                     "GET %s/sub/%s%s%s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n%s\r\n",
                     x->prefix, chan, tq, tv, x->host, x->port, c->ws_key,
                     x->deflate ? "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" : "");
    } else if (c->mode == MODE_SSE)
        n = snprintf(req, sizeof(req),
                     "GET %s/sub/%s%s%s HTTP/1.1\r\nHost: %s:%d\r\nAccept: text/event-stream\r\n\r\n",
                     x->prefix, chan, tq, tv, x->host, x->port);
    else if (x->style == STYLE_HERALD) {
        if (c->lp_primed)
            n = snprintf(req, sizeof(req), "GET %s/sub/%s?mode=longpoll&last_id=%s%s%s HTTP/1.1\r\nHost: %s:%d\r\n\r\n",
                         x->prefix, chan, c->cursor, tok ? "&token=" : "", tv, x->host, x->port);
        else
            n = snprintf(req, sizeof(req), "GET %s/sub/%s?mode=poll%s%s HTTP/1.1\r\nHost: %s:%d\r\n\r\n",
                         x->prefix, chan, tok ? "&token=" : "", tv, x->host, x->port);
    } else if (c->etag[0] || c->lastmod[0])
        n = snprintf(req, sizeof(req),
                     "GET %s/sub/%s%s%s HTTP/1.1\r\nHost: %s:%d\r\nIf-Modified-Since: %s\r\nIf-None-Match: %s\r\n\r\n",
                     x->prefix, chan, tq, tv, x->host, x->port, c->lastmod, c->etag);
    else
        n = snprintf(req, sizeof(req), "GET %s/sub/%s%s%s HTTP/1.1\r\nHost: %s:%d\r\n\r\n", x->prefix, chan, tq,
                     tv, x->host, x->port);
    if (n < 0 || (size_t)n >= sizeof(req)) return -1;
    if (c->mode == MODE_LONGPOLL) x->lp_requests++;
    return conn_send(x, c, req, (size_t)n);
}

/* Fills p[0..n) with JSON-like event records that vary with seq: compressible about as much as
 * real application messages are (a few times), unlike a run of one letter. */
static void fill_json(char *p, size_t n, uint32_t seq)
{
    static const char *const kinds[] = {"order.created", "order.paid", "stock.low", "user.login", "cart.updated"};
    static const char *const users[] = {"alice", "bob", "carol", "dave", "erin", "frank", "grace"};
    uint32_t r = seq * 2654435761u + 0x9e3779b9u;
    char rec[192];
    size_t k = 0;
    while (k < n) {
        r = r * 1103515245u + 12345u;
        uint32_t s = r ^ (r >> 15);
        int m = snprintf(rec, sizeof(rec),
                         "{\"type\":\"%s\",\"user\":\"%s\",\"id\":%u,\"amount\":%u.%02u,\"qty\":%u,\"ok\":%s},",
                         kinds[s % 5], users[(s >> 4) % 7], (s >> 8) & 0xfffff, (s >> 3) % 5000, s % 100,
                         (s >> 20) % 12 + 1, (s & 0x40) ? "true" : "false");
        size_t len = m < 0 ? 0 : (size_t)m;
        if (len == 0) break;
        if (len > n - k) len = n - k;
        memcpy(p + k, rec, len);
        k += len;
    }
    memset(p + k, 'x', n - k);
}

/* Writes the payload of message seq ("<sched> <seq> " then padding) at p, which has room for
 * payload_len(x) bytes; returns its length. */
static size_t payload_len(const lg_ctx_t *x)
{
    return x->size > 48 ? x->size : 48; /* "<20 digits> <10 digits> " fits in 48 */
}

static size_t payload_write(const lg_ctx_t *x, char *p, uint32_t seq, uint64_t sched)
{
    char body[64];
    int bn = snprintf(body, sizeof(body), "%" PRIu64 " %u ", sched, seq);
    size_t plen = x->size > (uint32_t)bn ? x->size : (size_t)bn;
    memcpy(p, body, (size_t)bn);
    if (x->payload == PAYLOAD_JSON) fill_json(p + bn, plen - (size_t)bn, seq);
    else memset(p + bn, 'x', plen - (size_t)bn);
    return plen;
}

static int mqtt_send_publish(lg_ctx_t *x, lg_conn_t *c, uint32_t seq, uint64_t sched);

/* POST /read/CHANNEL-j of read seq as its user (token j): alternately up to the newest message
 * (even reads: the server clamps the id, nothing is left unread) and up to none (odd reads). */
static int send_read(lg_ctx_t *x, lg_conn_t *c, uint32_t seq)
{
    char req[512 + LG_MAX_TOKEN], ch[240];
    uint32_t k = x->channels > 1 ? x->channels : 1, j = seq % k;
    const char *body = (seq / k) % 2 == 0 ? "{\"id\":\"1000000000000\"}" : "{\"id\":\"0\"}";
    int n = snprintf(req, sizeof(req),
                     "POST %s/read/%s HTTP/1.1\r\nHost: %s:%d\r\nAuthorization: Bearer %s\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                     x->pprefix, pub_channel(x, seq, ch, sizeof(ch)), x->phost, x->pport,
                     x->tokens[j % x->ntokens], strlen(body), body);
    if (n < 0 || (size_t)n >= sizeof(req)) return -1;
    return conn_send(x, c, req, (size_t)n);
}

static int send_publish(lg_ctx_t *x, lg_conn_t *c, uint32_t seq, uint64_t sched)
{
    if (c->mq) return mqtt_send_publish(x, c, seq, sched);
    if (x->pub_op == OP_READ) {
        x->read_sched[seq] = sched;
        return send_read(x, c, seq);
    }
    char head[512 + LG_MAX_TOKEN], body[64], ch[240];
    int bn = snprintf(body, sizeof(body), "%" PRIu64 " %u ", sched, seq);
    size_t plen = x->size > (uint32_t)bn ? x->size : (size_t)bn;
    int hn = snprintf(head, sizeof(head),
                      "POST %s/pub/%s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: text/plain\r\n"
                      "%s%s%sContent-Length: %zu\r\n\r\n",
                      x->pprefix, pub_channel(x, seq, ch, sizeof(ch)), x->phost, x->pport,
                      x->pub_key ? "Authorization: Bearer " : "", x->pub_key ? x->pub_key : "",
                      x->pub_key ? "\r\n" : "", plen);
    if (hn < 0 || (size_t)hn >= sizeof(head)) return -1;
    char *req = malloc((size_t)hn + plen);
    if (!req) return -1;
    memcpy(req, head, (size_t)hn);
    memcpy(req + hn, body, (size_t)bn);
    if (x->payload == PAYLOAD_JSON) fill_json(req + hn + bn, plen - (size_t)bn, seq);
    else memset(req + hn + bn, 'x', plen - (size_t)bn);
    int rc = conn_send(x, c, req, (size_t)hn + plen);
    free(req);
    return rc;
}

/* ---- deliveries ---- */

static void lat_push(lg_ctx_t *x, uint64_t us)
{
    if (x->nlat == x->latcap) {
        if (x->latcap >= LG_MAX_SAMPLES) {
            x->samples_capped = true;
            return;
        }
        size_t nc = x->latcap ? x->latcap * 2 : 1u << 20;
        uint32_t *l = realloc(x->lat, nc * sizeof(*l));
        if (!l) {
            x->samples_capped = true;
            return;
        }
        x->lat = l;
        x->latcap = nc;
    }
    x->lat[x->nlat++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

/* Keeps one publish (or read) answer latency, us; past LG_MAX_SAMPLES they are no longer kept. */
static void alat_push(lg_ctx_t *x, uint64_t us)
{
    if (x->nalat == x->alatcap) {
        size_t nc = x->alatcap ? x->alatcap * 2 : 1u << 16;
        uint32_t *l = nc <= LG_MAX_SAMPLES ? realloc(x->alat, nc * sizeof(*l)) : NULL;
        if (!l) return;
        x->alat = l;
        x->alatcap = nc;
    }
    x->alat[x->nalat++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

/* Books message (or read) seq, scheduled at sched, as delivered to subscriber c: once, and only
 * when it belongs to c's channel; anything else counts as unparsed. */
static void book(lg_ctx_t *x, lg_conn_t *c, uint64_t seq, uint64_t sched, uint64_t now)
{
    if (seq >= x->messages || !c->seen) goto bad;
    if (x->channels > 1 && seq % x->channels != sub_chan_no(x, c)) goto bad; /* another channel's */
    uint64_t b = x->channels > 1 ? seq / x->channels : seq;
    uint64_t bit = 1ull << (b & 63);
    if (c->seen[b >> 6] & bit) {
        x->duplicates++;
        return;
    }
    c->seen[b >> 6] |= bit;
    c->got++;
    x->delivered++;
    x->mode_delivered[c->mode]++;
    x->t_last_delivery = x->t_progress = now;
    lat_push(x, now > sched ? now - sched : 0);
    return;
bad:
    x->bad_events++;
}

/* Parses "<sched_us> <seq> ..." and books one delivery for subscriber c. */
static void deliver(lg_ctx_t *x, lg_conn_t *c, const char *d, size_t n, uint64_t now)
{
    uint64_t sched = 0, seq = 0;
    size_t i = 0;
    while (i < n && d[i] >= '0' && d[i] <= '9') sched = sched * 10 + (uint64_t)(d[i++] - '0');
    if (i == 0 || i >= n || d[i] != ' ') goto bad;
    size_t j = ++i;
    while (i < n && d[i] >= '0' && d[i] <= '9') seq = seq * 10 + (uint64_t)(d[i++] - '0');
    if (i == j) goto bad;
    book(x, c, seq, sched, now);
    return;
bad:
    x->bad_events++;
}

/* An SSE "unread" event ({"user":"42","total":3,"channels":{...}}) reached subscriber c. With
 * --pub-op read and --read-events, it is c's next read: read ev_k * K + (c's channel). */
static void on_unread(lg_ctx_t *x, lg_conn_t *c, const char *d, size_t n, uint64_t now)
{
    x->unread_events++;
    if (x->pub_op != OP_READ || !x->read_events || x->phase < PH_RUN) {
        x->unread_early++;
        return;
    }
    const char *t = memmem(d, n, "\"total\":", 8);
    uint64_t total = 0;
    size_t i = t ? (size_t)(t - d) + 8 : n;
    bool digits = i < n && d[i] >= '0' && d[i] <= '9';
    while (i < n && d[i] >= '0' && d[i] <= '9') total = total * 10 + (uint64_t)(d[i++] - '0');
    uint64_t k = c->ev_k++, seq = k * (x->channels > 1 ? x->channels : 1) + sub_chan_no(x, c);
    if (!digits || seq >= x->next_seq || (k % 2 == 0) != (total == 0)) {
        x->bad_events++; /* not the read expected next: a duplicate, a miss or a wrong count */
        return;
    }
    book(x, c, seq, x->read_sched[seq], now);
}

/* Consumes complete SSE events from d[0..n); returns the bytes consumed. */
static size_t sse_consume(lg_ctx_t *x, lg_conn_t *c, const char *d, size_t n, uint64_t now)
{
    size_t pos = 0;
    for (;;) {
        /* find the blank line ending the event: "\n\n" or "\n\r\n" */
        size_t end = 0, p = pos;
        bool found = false;
        while (p < n) {
            const char *nl = memchr(d + p, '\n', n - p);
            if (!nl) break;
            size_t k = (size_t)(nl - d) + 1;
            if (k < n && d[k] == '\n') {
                end = k + 1;
                found = true;
                break;
            }
            if (k + 1 < n && d[k] == '\r' && d[k + 1] == '\n') {
                end = k + 2;
                found = true;
                break;
            }
            if (k >= n || (d[k] == '\r' && k + 1 >= n)) break;
            p = k;
        }
        if (!found) return pos;
        const char *data = NULL, *ev = NULL;
        size_t dlen = 0, evlen = 0;
        size_t q = pos;
        while (q < end) {
            const char *nl = memchr(d + q, '\n', end - q);
            size_t le = nl ? (size_t)(nl - d) : end;
            size_t ll = le - q;
            if (ll && d[q + ll - 1] == '\r') ll--;
            const char *line = d + q;
            if (ll >= 5 && memcmp(line, "data:", 5) == 0 && !data) {
                data = line + 5;
                dlen = ll - 5;
                if (dlen && *data == ' ') data++, dlen--;
            } else if (ll >= 6 && memcmp(line, "event:", 6) == 0) {
                ev = line + 6;
                evlen = ll - 6;
                if (evlen && *ev == ' ') ev++, evlen--;
            }
            q = le + 1;
        }
        if (ev && evlen == 3 && memcmp(ev, "gap", 3) == 0) x->gap_events++;
        else if (ev && evlen == 6 && memcmp(ev, "unread", 6) == 0) on_unread(x, c, data ? data : "", dlen, now);
        else if (data && (!ev || (evlen == 7 && memcmp(ev, "message", 7) == 0))) deliver(x, c, data, dlen, now);
        else if (data) x->bad_events++;
        pos = end;
    }
}

/* herald long-poll JSON: takes "last_id" and every message's "data". */
static void lp_herald_body(lg_ctx_t *x, lg_conn_t *c, const char *d, size_t n, uint64_t now)
{
    const char *k = memmem(d, n, "\"last_id\":\"", 11);
    if (k) {
        k += 11;
        size_t i = 0;
        while (k + i < d + n && k[i] != '"' && i + 1 < sizeof(c->cursor)) i++;
        memcpy(c->cursor, k, i);
        c->cursor[i] = 0;
        c->lp_primed = true;
    }
    if (memmem(d, n, "\"gap\":true", 10)) x->gap_events++;
    const char *p = d, *e = d + n;
    while (p < e) {
        const char *m = memmem(p, (size_t)(e - p), "\"data\":\"", 8);
        if (!m) break;
        m += 8;
        const char *q = m;
        while (q < e && *q != '"') q += (*q == '\\') ? 2 : 1;
        if (q > e) q = e;
        deliver(x, c, m, (size_t)(q - m), now);
        p = q;
    }
}

/* ---- HTTP response parsing ---- */

static void copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap) n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = 0;
}

/* Reads a Sec-WebSocket-Extensions value: "ext; param; param=v, ext2 ..." into r's flags. */
static void parse_ws_extensions(lg_resp_t *r, const char *v)
{
    char buf[256];
    copy_str(buf, sizeof(buf), v);
    char *save_ext = NULL;
    for (char *ext = strtok_r(buf, ",", &save_ext); ext; ext = strtok_r(NULL, ",", &save_ext)) {
        char *save_par = NULL;
        bool first = true, pmd = false;
        for (char *par = strtok_r(ext, ";", &save_par); par; par = strtok_r(NULL, ";", &save_par)) {
            while (*par == ' ' || *par == '\t') par++;
            size_t pl = strlen(par);
            while (pl && (par[pl - 1] == ' ' || par[pl - 1] == '\t')) par[--pl] = 0;
            if (first) {
                pmd = strcasecmp(par, "permessage-deflate") == 0;
                if (pmd) r->pmd = true;
                else r->ext_other = true;
                first = false;
            } else if (pmd && strcasecmp(par, "server_no_context_takeover") == 0) {
                r->pmd_snct = true;
            } else if (pmd && strncasecmp(par, "client_no_context_takeover", 26) != 0 &&
                       strncasecmp(par, "server_max_window_bits", 22) != 0 &&
                       strncasecmp(par, "client_max_window_bits", 22) != 0) {
                r->ext_other = true;
            }
        }
    }
}

static void parse_head(lg_resp_t *r, const char *h, size_t n)
{
    r->status = 0;
    if (n > 12 && memcmp(h, "HTTP/1.", 7) == 0) r->status = atoi(h + 9);
    const char *p = memchr(h, '\n', n);
    while (p && p + 1 < h + n) {
        const char *line = p + 1;
        p = memchr(line, '\n', (size_t)(h + n - line));
        if (!p) break;
        size_t ll = (size_t)(p - line);
        if (ll && line[ll - 1] == '\r') ll--;
        const char *colon = memchr(line, ':', ll);
        if (!colon) continue;
        size_t kl = (size_t)(colon - line);
        const char *v = colon + 1;
        while (v < line + ll && (*v == ' ' || *v == '\t')) v++;
        size_t vl = (size_t)(line + ll - v);
        char val[256];
        size_t cl = vl < sizeof(val) - 1 ? vl : sizeof(val) - 1;
        memcpy(val, v, cl);
        val[cl] = 0;
        if (kl == 14 && strncasecmp(line, "Content-Length", 14) == 0) {
            r->has_len = true;
            r->left = strtoull(val, NULL, 10);
        } else if (kl == 17 && strncasecmp(line, "Transfer-Encoding", 17) == 0) {
            if (strcasestr(val, "chunked")) r->chunked = true;
        } else if (kl == 10 && strncasecmp(line, "Connection", 10) == 0) {
            if (strcasestr(val, "close")) r->close = true;
            if (strcasestr(val, "upgrade")) r->conn_upgrade = true;
        } else if (kl == 7 && strncasecmp(line, "Upgrade", 7) == 0) {
            if (strcasecmp(val, "websocket") == 0) r->upgrade_ws = true;
        } else if (kl == 20 && strncasecmp(line, "Sec-WebSocket-Accept", 20) == 0) {
            copy_str(r->accept, sizeof(r->accept), val);
        } else if (kl == 24 && strncasecmp(line, "Sec-WebSocket-Extensions", 24) == 0) {
            parse_ws_extensions(r, val);
        } else if (kl == 4 && strncasecmp(line, "Etag", 4) == 0) {
            copy_str(r->etag, sizeof(r->etag), val);
        } else if (kl == 13 && strncasecmp(line, "Last-Modified", 13) == 0) {
            copy_str(r->lastmod, sizeof(r->lastmod), val);
        }
    }
    if (r->chunked) r->has_len = false;
    if (r->status == 204 || r->status == 304 || (r->status >= 100 && r->status < 200)) {
        r->has_len = true;
        r->left = 0;
    }
}

/* Moves body bytes from the raw region [*raw, len) down to the decoded end *de. Returns -1
 * on bad framing. Sets r->done when the body is complete. */
static int decode_body(lg_resp_t *r, char *b, size_t *de, size_t *raw, size_t len)
{
    if (!r->chunked) {
        size_t avail = len - *raw;
        if (r->has_len && avail > r->left) avail = (size_t)r->left;
        memmove(b + *de, b + *raw, avail);
        *de += avail;
        *raw += avail;
        if (r->has_len) {
            r->left -= avail;
            if (r->left == 0) r->done = true;
        }
        return 0;
    }
    while (*raw < len && !r->done) {
        if (r->cstate == CS_DATA) {
            size_t avail = len - *raw;
            if (avail > r->left) avail = (size_t)r->left;
            memmove(b + *de, b + *raw, avail);
            *de += avail;
            *raw += avail;
            r->left -= avail;
            if (r->left == 0) r->cstate = CS_DATA_CRLF;
            continue;
        }
        const char *nl = memchr(b + *raw, '\n', len - *raw);
        if (!nl) return (len - *raw > 1024) ? -1 : 0;
        const char *line = b + *raw;
        size_t ll = (size_t)(nl - line);
        *raw += ll + 1;
        if (r->cstate == CS_SIZE) {
            char *end;
            unsigned long long sz = strtoull(line, &end, 16);
            if (end == line) return -1;
            r->left = sz;
            r->cstate = sz ? CS_DATA : CS_TRAILER;
        } else if (r->cstate == CS_DATA_CRLF) {
            r->cstate = CS_SIZE;
        } else { /* trailers end with an empty line */
            if (ll == 0 || (ll == 1 && line[0] == '\r')) r->done = true;
        }
    }
    return 0;
}

static void sub_failed(lg_ctx_t *x, lg_conn_t *c)
{
    if (c->ready) {
        x->sub_disconnects++;
    } else if (c->state != ST_FAILED) {
        x->failed_subs++;
        if (x->pending) x->pending--;
    }
    c->state = ST_FAILED;
    conn_close(x, c, true);
}

static void sub_set_ready(lg_ctx_t *x, lg_conn_t *c)
{
    if (c->ready) return;
    c->ready = true;
    x->ready_subs++;
    x->mode_subs[c->mode]++;
    if (c->seen && (x->pub_op != OP_READ || x->read_events)) x->want += lg__expected(x, c, x->messages);
    if (x->pending) x->pending--;
}

/* A complete response arrived on c (body in d[0..n)). Returns -1 to close the connection. */
static int on_response(lg_ctx_t *x, lg_conn_t *c, const char *d, size_t n, uint64_t now)
{
    lg_resp_t *r = &c->r;
    if (c->kind == K_PUB) {
        c->busy = false;
        x->inflight--;
        x->t_last_pub_ans = now;
        if (r->status >= 200 && r->status < 300) {
            x->pub_ok++;
            alat_push(x, now > c->pub_t ? now - c->pub_t : 0);
        } else {
            x->pub_err++;
            note_error(x, "publish answered %s%d", "HTTP ", r->status);
        }
        /* the server ends this keep-alive connection (nginx after keepalive_requests answers): a
         * request sent on it now would be lost, so open a new one */
        return r->close ? 1 : 0;
    }
    if (c->mode != MODE_LONGPOLL) return -1; /* an SSE stream ended */
    if (x->style == STYLE_HERALD) {
        if (r->status != 200) {
            note_error(x, "long poll answered %s%d", "HTTP ", r->status);
            return -1;
        }
        lp_herald_body(x, c, d, n, now);
        if (!c->lp_primed) return -1;
    } else {
        if (r->status == 200) {
            deliver(x, c, d, n, now);
            copy_str(c->etag, sizeof(c->etag), r->etag);
            copy_str(c->lastmod, sizeof(c->lastmod), r->lastmod);
        } else if (r->status != 304 && r->status != 408) {
            note_error(x, "long poll answered %s%d", "HTTP ", r->status);
            return -1;
        }
    }
    sub_set_ready(x, c);
    if (r->close) return 1; /* reconnect, then re-poll */
    return send_sub_request(x, c) < 0 ? -1 : 0;
}

/* ---- WebSocket subscribers ---- */

/* Sends one masked frame (clients must mask) with a control payload of at most 125 bytes. */
static int ws_send_control(lg_ctx_t *x, lg_conn_t *c, uint8_t opcode, const char *p, size_t n)
{
    char fr[WS_MAX_HEADER + WS_MAX_CONTROL];
    uint8_t key[4];
    uint32_t k = (uint32_t)rng_next(x);
    memcpy(key, &k, 4);
    if (n > WS_MAX_CONTROL) n = WS_MAX_CONTROL;
    size_t hl = ws_header_write_masked((uint8_t *)fr, opcode, true, false, n, key);
    memcpy(fr + hl, p, n);
    ws_mask(fr + hl, n, key, 0);
    return conn_send(x, c, fr, hl + n);
}

/* Answers a Close: echoes code (none when 0) and gives up the connection. */
static void ws_send_close(lg_ctx_t *x, lg_conn_t *c, uint16_t code)
{
    char p[2] = {(char)(code >> 8), (char)(code & 0xff)};
    ws_send_control(x, c, WS_OP_CLOSE, p, code ? 2 : 0);
}

/* Feeds in[0..n) to z, appending the output to x->infl at *out. Returns 1 at the end of the
 * deflate stream (a final block), 0 when the input is used up, -1 on bad data or a message over
 * the size limit. */
static int ws_inflate_feed(lg_ctx_t *x, z_stream *z, const void *in, size_t n, size_t *out)
{
    z->next_in = (Bytef *)(uintptr_t)in;
    z->avail_in = (uInt)n;
    for (;;) {
        if (*out == x->infl_cap) {
            size_t nc = x->infl_cap ? x->infl_cap * 2 : 64 * 1024;
            if (nc > LG_MAX_BUF) return -1;
            char *nb = realloc(x->infl, nc);
            if (!nb) return -1;
            x->infl = nb;
            x->infl_cap = nc;
        }
        z->next_out = (Bytef *)x->infl + *out;
        z->avail_out = (uInt)(x->infl_cap - *out);
        int rc = inflate(z, Z_SYNC_FLUSH);
        *out = x->infl_cap - z->avail_out;
        if (rc == Z_STREAM_END) return 1;
        if (rc == Z_BUF_ERROR && z->avail_out > 0) return 0; /* nothing more to do with this input */
        if (rc != Z_OK && rc != Z_BUF_ERROR) return -1;
        if (z->avail_in == 0 && z->avail_out > 0) return 0;
    }
}

/* Inflates one compressed message p[0..n) (RFC 7692: append 00 00 ff ff, inflate). Returns the
 * inflated length in x->infl, or -1. */
static ssize_t ws_inflate(lg_ctx_t *x, lg_conn_t *c, const char *p, size_t n)
{
    static const uint8_t tail[4] = {0x00, 0x00, 0xff, 0xff};
    z_stream *z;
    if (c->ws_ctx) {
        if (!c->zs) {
            c->zs = calloc(1, sizeof(*c->zs));
            if (!c->zs) return -1;
            if (inflateInit2(c->zs, -15) != Z_OK) {
                free(c->zs);
                c->zs = NULL;
                return -1;
            }
        }
        z = c->zs;
    } else {
        if (!x->zs_init) {
            if (inflateInit2(&x->zs, -15) != Z_OK) return -1;
            x->zs_init = true;
        } else if (inflateReset(&x->zs) != Z_OK)
            return -1;
        z = &x->zs;
    }
    size_t out = 0;
    int rc = ws_inflate_feed(x, z, p, n, &out);
    if (rc == 0) rc = ws_inflate_feed(x, z, tail, sizeof(tail), &out);
    if (rc < 0) return -1;
    if (rc == 1 && c->ws_ctx) inflateReset(z); /* the sender ended its stream: the next starts afresh */
    return (ssize_t)out;
}

/* A complete data message p[0..n) arrived on c. Returns -1 to close. */
static int ws_on_message(lg_ctx_t *x, lg_conn_t *c, const char *p, size_t n, bool compressed, uint64_t now)
{
    x->ws_msgs++;
    if (compressed) {
        x->ws_compressed++;
        ssize_t m = ws_inflate(x, c, p, n);
        if (m < 0) {
            note_error(x, "cannot inflate a WebSocket message (%s%d compressed bytes)", "", (int)n);
            return -1;
        }
        p = x->infl;
        n = (size_t)m;
    }
    deliver(x, c, p, n, now);
    return 0;
}

/* One frame f arrived on c. Returns -1 to close. */
static int ws_on_frame(lg_ctx_t *x, lg_conn_t *c, const ws_frame_t *f, uint64_t now)
{
    uint16_t code = 0;
    const char *why = NULL;
    x->ws_frames++;
    if (f->opcode == WS_OP_PING) {
        x->ws_pings++;
        return ws_send_control(x, c, WS_OP_PONG, f->payload, (size_t)f->payload_len);
    }
    if (f->opcode == WS_OP_PONG) return 0;
    if (f->opcode == WS_OP_CLOSE) {
        uint16_t got = 0;
        if (ws_close_parse(f->payload, (size_t)f->payload_len, &got, &code, &why) < 0) {
            ws_send_close(x, c, code);
            note_error(x, "bad WebSocket Close from the server: %s (close %d)", why ? why : "?", code);
            return -1;
        }
        x->ws_closes++;
        ws_send_close(x, c, got == WS_CLOSE_NO_STATUS ? 0 : got);
        note_error(x, "the server closed a WebSocket%s (code %d)", "", got);
        return -1;
    }
    if (ws_msg_frame(&c->wsm, f, LG_MAX_BUF, &code, &why) < 0) {
        ws_send_close(x, c, code);
        note_error(x, "bad WebSocket fragment sequence: %s (close %d)", why ? why : "?", code);
        return -1;
    }
    x->ws_wire_bytes += f->payload_len;
    bool complete = !c->wsm.in_message;
    if (complete && c->frag_len == 0) /* one frame, or all earlier fragments were empty */
        return ws_on_message(x, c, f->payload, (size_t)f->payload_len, c->wsm.compressed, now);
    if (f->payload_len) {
        size_t need = c->frag_len + (size_t)f->payload_len;
        if (need > c->frag_cap) {
            size_t nc = c->frag_cap ? c->frag_cap : 4096;
            while (nc < need) nc *= 2;
            char *nb = realloc(c->frag, nc);
            if (!nb) return -1;
            c->frag = nb;
            c->frag_cap = nc;
        }
        memcpy(c->frag + c->frag_len, f->payload, (size_t)f->payload_len);
        c->frag_len = need;
    }
    if (!complete) return 0;
    int rc = ws_on_message(x, c, c->frag, c->frag_len, c->wsm.compressed, now);
    c->frag_len = 0;
    if (c->frag_cap > 65536) { /* do not keep a big buffer after a big message */
        free(c->frag);
        c->frag = NULL;
        c->frag_cap = 0;
    }
    return rc;
}

/* Parses the complete frames in b[0..n) (unmasked server frames, payloads left in place).
 * Returns the bytes consumed (a partial frame stays), or -1 to close. */
static ssize_t ws_consume(lg_ctx_t *x, lg_conn_t *c, char *b, size_t n, uint64_t now)
{
    ws_limits_t lim = {.max_payload = LG_MAX_BUF - WS_MAX_HEADER, .server = false, .rsv1_ok = c->ws_deflate};
    size_t pos = 0;
    while (pos < n && c->fd >= 0) {
        ws_frame_t f;
        uint16_t code = 0;
        const char *why = NULL;
        ssize_t k = ws_frame_parse(b + pos, n - pos, &lim, &f, &code, &why);
        if (k == HR_EAGAIN) break;
        if (k <= 0) {
            ws_send_close(x, c, code);
            note_error(x, "bad WebSocket frame from the server: %s (close %d)", why ? why : "?", code);
            return -1;
        }
        pos += (size_t)k;
        if (ws_on_frame(x, c, &f, now) < 0) return -1;
    }
    return (ssize_t)pos;
}

/* Checks the answer to the Upgrade request and records what was agreed. Returns -1 to close. */
static int ws_handshake_done(lg_ctx_t *x, lg_conn_t *c)
{
    lg_resp_t *r = &c->r;
    char want[29];
    if (r->status != 101) {
        note_error(x, "WebSocket upgrade answered %s%d", "HTTP ", r->status);
        return -1;
    }
    if (!r->upgrade_ws || !r->conn_upgrade) {
        note_error(x, "101 without %s (status %d)", "Upgrade: websocket and Connection: Upgrade", r->status);
        return -1;
    }
    if (ws_accept_key(c->ws_key, strlen(c->ws_key), want) < 0 || strcmp(want, r->accept) != 0) {
        note_error(x, "wrong Sec-WebSocket-Accept \"%s\" (status %d)", r->accept, r->status);
        return -1;
    }
    if (r->ext_other || (r->pmd && !x->deflate)) {
        note_error(x, "the server answered an extension %s (status %d)", "that was not offered", r->status);
        return -1;
    }
    c->ws_open = true;
    c->ws_deflate = r->pmd;
    c->ws_ctx = r->pmd && !r->pmd_snct;
    memset(&c->wsm, 0, sizeof(c->wsm));
    if (r->pmd) x->ws_deflate_subs++;
    if (c->ws_ctx) x->ws_ctx_subs++;
    return 0;
}

/* ---- MQTT subscribers and publishers ---- */

/* Encodes p with the codec and queues it on c. Returns -1 when it cannot be encoded or sent. */
static int mqtt_send(lg_ctx_t *x, lg_conn_t *c, const mqtt_pkt_t *p)
{
    uint8_t small[256];
    ssize_t n = mqtt_encode(p, small, sizeof(small));
    if (n < 0) return -1;
    if ((size_t)n <= sizeof(small)) return conn_send(x, c, (const char *)small, (size_t)n);
    uint8_t *big = malloc((size_t)n);
    if (!big) return -1;
    int rc = mqtt_encode(p, big, (size_t)n) == n ? conn_send(x, c, (const char *)big, (size_t)n) : -1;
    free(big);
    return rc;
}

/* The connection is open: CONNECT with a clean session and a client id unique to this process
 * and connection. Keep alive 600 s: far longer than a run, and no broker refuses it. */
static int mqtt_send_connect(lg_ctx_t *x, lg_conn_t *c)
{
    char id[48];
    snprintf(id, sizeof(id), "lg%c-%ld-%u", c->kind == K_SUB ? 's' : 'p', (long)getpid(), c->idx);
    mqtt_pkt_t p = {.type = MQTT_CONNECT, .version = x->mqtt_version};
    p.connect.clean_start = true;
    p.connect.keep_alive = 600;
    p.connect.client_id = span_of(id);
    const char *tok = conn_token(x, c);
    if (tok) { /* herald takes a token as the password; 3.1.1 needs a user name with it */
        p.connect.has_username = p.connect.has_password = true;
        p.connect.username = span_of("bench");
        p.connect.password = span_of(tok);
    }
    return mqtt_send(x, c, &p);
}

static int mqtt_send_subscribe(lg_ctx_t *x, lg_conn_t *c)
{
    char ch[240];
    uint8_t list[300];
    const char *topic = sub_channel(x, c, ch, sizeof(ch));
    size_t n = mqtt_list_put(list, sizeof(list), 0, span_of(topic), x->qos);
    if (n > sizeof(list)) return -1;
    mqtt_pkt_t p = {.type = MQTT_SUBSCRIBE, .version = x->mqtt_version, .packet_id = 1};
    p.list = (span_t){(const char *)list, n};
    p.count = 1;
    return mqtt_send(x, c, &p);
}

/* PUBLISH of message seq at --qos; QoS 0 is followed by a PINGREQ whose PINGRESP ends it. */
static int mqtt_send_publish(lg_ctx_t *x, lg_conn_t *c, uint32_t seq, uint64_t sched)
{
    char *pl = malloc(payload_len(x)), ch[240];
    if (!pl) return -1;
    size_t plen = payload_write(x, pl, seq, sched);
    mqtt_pkt_t p = {.type = MQTT_PUBLISH, .version = x->mqtt_version};
    p.publish.qos = x->qos;
    p.publish.topic = span_of(pub_channel(x, seq, ch, sizeof(ch)));
    p.publish.payload = (span_t){pl, plen};
    if (x->qos) {
        c->mq_pid = (uint16_t)(c->mq_pid % 65535u + 1); /* 1..65535 */
        p.packet_id = c->mq_pid;
    }
    int rc = mqtt_send(x, c, &p);
    free(pl);
    if (rc < 0) return -1;
    if (x->qos == 0) {
        mqtt_pkt_t ping = {.type = MQTT_PINGREQ, .version = x->mqtt_version};
        if (mqtt_send(x, c, &ping) < 0) return -1;
    }
    c->mq_wait = x->qos == 0 ? MQ_PUB_PING : x->qos == 1 ? MQ_PUB_ACK : MQ_PUB_REC;
    return 0;
}

/* The PUBLISH in flight on publisher c is done (ok, or refused with a v5 reason >= 0x80). */
static void mqtt_pub_done(lg_ctx_t *x, lg_conn_t *c, bool ok, uint8_t reason, uint64_t now)
{
    c->busy = false;
    c->mq_wait = MQ_PUB_NONE;
    x->inflight--;
    x->t_last_pub_ans = now;
    if (ok) {
        x->pub_ok++;
        alat_push(x, now > c->pub_t ? now - c->pub_t : 0);
    } else {
        x->pub_err++;
        note_error(x, "MQTT publish refused%s (reason %d)", "", reason);
    }
}

/* Appends the answer (PUBACK, PUBREC, PUBREL or PUBCOMP) to packet id pid at acks[*n], sending
 * what is there first when it is nearly full. Returns -1 on a send error. */
static int mqtt_ack(lg_ctx_t *x, lg_conn_t *c, uint8_t type, uint16_t pid, char *acks, size_t cap, size_t *n)
{
    if (*n + 16 > cap) {
        if (conn_send(x, c, acks, *n) < 0) return -1;
        *n = 0;
    }
    mqtt_pkt_t p = {.type = type, .version = x->mqtt_version, .packet_id = pid};
    ssize_t k = mqtt_encode(&p, (uint8_t *)acks + *n, cap - *n);
    if (k < 0 || (size_t)k > cap - *n) return -1;
    *n += (size_t)k;
    if (type != MQTT_PUBREL) x->mq_acks_sent++;
    return 0;
}

/* One server packet p arrived on c. Returns -1 to close. */
static int mqtt_on_packet(lg_ctx_t *x, lg_conn_t *c, const mqtt_pkt_t *p, char *acks, size_t cap, size_t *an,
                          uint64_t now)
{
    switch (p->type) {
    case MQTT_CONNACK:
        if (p->reason != 0) {
            note_error(x, "MQTT CONNACK refused%s (code %d)", "", p->reason);
            return -1;
        }
        if (c->kind == K_PUB) {
            c->ready = true;
            return 0;
        }
        return mqtt_send_subscribe(x, c);
    case MQTT_SUBACK: {
        uint8_t code = p->count ? (uint8_t)p->list.p[0] : 0x80;
        if (code >= 0x80) {
            note_error(x, "MQTT SUBSCRIBE refused%s (code %d)", "", code);
            return -1;
        }
        if (code < x->mq_granted_min) x->mq_granted_min = code;
        sub_set_ready(x, c);
        return 0;
    }
    case MQTT_PUBLISH:
        x->mq_publish_rx++;
        x->mq_qos_rx[p->publish.qos]++;
        if (p->publish.dup) x->mq_dup_rx++;
        if (p->publish.qos == 1 && mqtt_ack(x, c, MQTT_PUBACK, p->packet_id, acks, cap, an) < 0) return -1;
        if (p->publish.qos == 2 && mqtt_ack(x, c, MQTT_PUBREC, p->packet_id, acks, cap, an) < 0) return -1;
        if (c->kind == K_SUB) deliver(x, c, p->publish.payload.p, p->publish.payload.n, now);
        return 0;
    case MQTT_PUBREL:
        x->mq_pubrel_rx++;
        return mqtt_ack(x, c, MQTT_PUBCOMP, p->packet_id, acks, cap, an);
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBCOMP:
    case MQTT_PINGRESP: {
        uint8_t want = p->type == MQTT_PUBACK ? MQ_PUB_ACK
                       : p->type == MQTT_PUBREC ? MQ_PUB_REC
                       : p->type == MQTT_PUBCOMP ? MQ_PUB_COMP
                                                 : MQ_PUB_PING;
        if (c->kind != K_PUB || !c->busy || c->mq_wait != want) {
            if (p->type == MQTT_PINGRESP) return 0;
            note_error(x, "unexpected MQTT answer%s (type %d)", "", p->type);
            return -1;
        }
        if (p->type != MQTT_PINGRESP && p->packet_id != c->mq_pid) {
            note_error(x, "MQTT answer for an unknown packet id%s (%d)", "", p->packet_id);
            return -1;
        }
        if (p->reason >= 0x80) {
            mqtt_pub_done(x, c, false, p->reason, now);
            return 0;
        }
        if (p->type == MQTT_PUBREC) { /* QoS 2, second step */
            c->mq_wait = MQ_PUB_COMP;
            return mqtt_ack(x, c, MQTT_PUBREL, p->packet_id, acks, cap, an);
        }
        mqtt_pub_done(x, c, true, 0, now);
        return 0;
    }
    case MQTT_DISCONNECT:
        note_error(x, "the MQTT server sent DISCONNECT%s (reason %d)", "", p->reason);
        return -1;
    default:
        note_error(x, "unexpected MQTT packet%s (type %d)", "", p->type);
        return -1;
    }
}

/* Parses the complete packets in b[0..n) (slices stay in place). Returns the bytes consumed (a
 * partial packet stays), or -1 to close. The answers go out in one send at the end. */
static ssize_t mqtt_consume(lg_ctx_t *x, lg_conn_t *c, char *b, size_t n, uint64_t now)
{
    mqtt_opts_t o = {.role = MQTT_ROLE_CLIENT, .version = x->mqtt_version, .max_packet = LG_MAX_BUF};
    char acks[4096];
    size_t an = 0, pos = 0;
    while (pos < n) {
        mqtt_pkt_t p;
        mqtt_err_t e = {0};
        ssize_t k = mqtt_decode(b + pos, n - pos, &o, &p, &e);
        if (k == HR_EAGAIN) break;
        if (k <= 0) {
            note_error(x, "bad MQTT packet from the server: %s (reason %d)", e.why ? e.why : "?", e.reason);
            return -1;
        }
        pos += (size_t)k;
        if (mqtt_on_packet(x, c, &p, acks, sizeof(acks), &an, now) < 0) return -1;
    }
    if (an && conn_send(x, c, acks, an) < 0) return -1;
    return (ssize_t)pos;
}

/* Parses b[0..len) (stored leftover + new bytes); returns the bytes to keep (compacted to
 * the start of b), or -1 to close, or -2 to reconnect. */
static ssize_t conn_parse(lg_ctx_t *x, lg_conn_t *c, char *b, size_t len, uint64_t now)
{
    lg_resp_t *r = &c->r;
    size_t dc = 0, de = r->dec_len, raw = r->dec_len;
    if (c->ws_open || c->mq) { /* frames or MQTT packets only */
        ssize_t used = c->mq ? mqtt_consume(x, c, b, len, now) : ws_consume(x, c, b, len, now);
        if (used < 0) return -1;
        memmove(b, b + used, len - (size_t)used);
        return (ssize_t)(len - (size_t)used);
    }
    for (;;) {
        if (!r->head_done) {
            if (raw >= len) break;
            const char *e = memmem(b + raw, len - raw, "\r\n\r\n", 4);
            if (!e) {
                if (len - raw > LG_MAX_HEAD) return -1;
                break;
            }
            size_t hl = (size_t)(e + 4 - (b + raw));
            parse_head(r, b + raw, hl);
            r->head_done = true;
            raw += hl;
            dc = de = raw; /* a new body starts at the current position */
            if (c->kind == K_SUB && c->mode == MODE_WS) {
                if (ws_handshake_done(x, c) < 0) return -1;
                sub_set_ready(x, c);
                r->dec_len = 0;
                ssize_t used = ws_consume(x, c, b + raw, len - raw, now);
                if (used < 0) return -1;
                raw += (size_t)used;
                memmove(b, b + raw, len - raw);
                return (ssize_t)(len - raw);
            }
            if (c->kind == K_SUB && c->mode == MODE_SSE) {
                if (r->status != 200) {
                    note_error(x, "subscribe answered %s%d", "HTTP ", r->status);
                    return -1;
                }
                sub_set_ready(x, c);
            }
        }
        if (decode_body(r, b, &de, &raw, len) < 0) return -1;
        if (c->kind == K_SUB && c->mode == MODE_SSE) dc += sse_consume(x, c, b + dc, de - dc, now);
        if (!r->done) break;
        int rc = on_response(x, c, b + dc, de - dc, now);
        if (rc < 0) return -1;
        if (rc > 0) return -2;
        memset(r, 0, sizeof(*r)); /* ready for the next response on this connection */
        dc = de = raw;
    }
    /* compact: [decoded unconsumed][raw] */
    size_t dn = de - dc, rn = len - raw;
    if (dc) memmove(b, b + dc, dn);
    if (raw != de || dc) memmove(b + dn, b + raw, rn);
    r->dec_len = dn;
    return (ssize_t)(dn + rn);
}

static int buf_reserve(lg_conn_t *c, size_t n)
{
    if (n > LG_MAX_BUF) return -1;
    if (n <= c->cap) return 0;
    size_t nc = c->cap ? c->cap : 1024;
    while (nc < n) nc *= 2;
    char *nb = realloc(c->buf, nc);
    if (!nb) return -1;
    c->buf = nb;
    c->cap = nc;
    return 0;
}

/* Parses n new bytes in x->scratch together with c's stored leftover; keeps the new
 * leftover in c->buf. Returns conn_parse's verdict (-1 close, -2 reconnect) or 0. */
static int conn_input(lg_ctx_t *x, lg_conn_t *c, size_t n, uint64_t now)
{
    ssize_t keep;
    if (c->len == 0) {
        keep = conn_parse(x, c, x->scratch, n, now);
        if (keep > 0) {
            if (buf_reserve(c, (size_t)keep) < 0) return -1;
            memcpy(c->buf, x->scratch, (size_t)keep);
        }
    } else {
        if (buf_reserve(c, c->len + n) < 0) return -1;
        memcpy(c->buf + c->len, x->scratch, n);
        keep = conn_parse(x, c, c->buf, c->len + n, now);
    }
    if (keep < 0) return (int)keep;
    c->len = (size_t)keep;
    if (keep == 0 && c->cap > 4096) { /* do not let idle subscribers hold big buffers */
        free(c->buf);
        c->buf = NULL;
        c->cap = 0;
    }
    return 0;
}

static void conn_lost(lg_ctx_t *x, lg_conn_t *c, bool reconnect);

/* c is closed; step_phase() reopens it at `at` (us). */
static void set_retry(lg_ctx_t *x, lg_conn_t *c, uint64_t at)
{
    c->state = ST_IDLE;
    c->retry_at = at;
    if (c->kind == K_SUB) x->retrying++;
}

static void on_readable(lg_ctx_t *x, lg_conn_t *c)
{
    while (c->fd >= 0) {
        ssize_t n = c->ssl ? lgt_recv(c, x->scratch, LG_SCRATCH) : recv(c->fd, x->scratch, LG_SCRATCH, 0);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) return;
            conn_lost(x, c, false);
            return;
        }
        uint64_t now = now_us();
        if (n == 0) {
            /* a close-delimited body ends here */
            lg_resp_t *r = &c->r;
            if (r->head_done && !r->chunked && !r->has_len && c->kind != K_SUB) {
                r->done = true;
                on_response(x, c, c->buf, r->dec_len, now);
            } else if (r->head_done && !r->chunked && !r->has_len && c->mode == MODE_LONGPOLL) {
                r->done = true;
                int rc = on_response(x, c, c->buf, r->dec_len, now);
                conn_lost(x, c, rc >= 0);
                return;
            }
            conn_lost(x, c, c->kind == K_PUB || c->mode == MODE_LONGPOLL);
            return;
        }
        int keep = conn_input(x, c, (size_t)n, now);
        if (keep == -2) {
            conn_lost(x, c, true);
            return;
        }
        if (keep < 0) {
            conn_lost(x, c, false);
            return;
        }
        if ((size_t)n < LG_SCRATCH && !c->ssl) return; /* TLS: one record per read, read to EAGAIN */
    }
}

/* The connection closed or failed. Publishers and long-poll subscribers reconnect
 * (with their cursor); SSE subscribers are counted as disconnected. */
static void conn_lost(lg_ctx_t *x, lg_conn_t *c, bool reconnect)
{
    if (c->kind == K_PUB) {
        if (c->busy) {
            c->busy = false;
            x->inflight--;
            x->pub_err++;
            note_error(x, "publisher connection %s (errno %d)", "lost", errno);
        }
        conn_close(x, c, true);
        c->ready = false; /* an MQTT publisher is ready again at its next CONNACK */
        c->mq_wait = MQ_PUB_NONE;
        set_retry(x, c, now_us() + 10000);
        return;
    }
    if (reconnect && c->mode == MODE_LONGPOLL && x->phase < PH_DONE) {
        conn_close(x, c, true);
        set_retry(x, c, now_us());
        return;
    }
    sub_failed(x, c);
}

static void proto_start(lg_ctx_t *x, lg_conn_t *c);

/* --tls: one step of c's handshake; when it is done, the protocol starts (or, with
 * --tls-handshake-only, an idle subscriber is ready). */
static void tls_step(lg_ctx_t *x, lg_conn_t *c)
{
    int r = lgt_handshake(x, c);
    if (r == LGT_FAIL) {
        conn_lost(x, c, false);
        return;
    }
    bool want_out = r == LGT_WANT_WRITE;
    if (want_out != c->want_out && ep_set(x, c, want_out, EPOLL_CTL_MOD) < 0) {
        conn_lost(x, c, false);
        return;
    }
    if (r != LGT_DONE) return;
    if (x->tls_hs_only && c->kind == K_SUB) {
        sub_set_ready(x, c);
        return;
    }
    proto_start(x, c);
    /* records that came behind the handshake (TLS 1.3 session tickets) got no edge of their own */
    if (c->fd >= 0) on_readable(x, c);
}

static void on_connected(lg_ctx_t *x, lg_conn_t *c)
{
    int err = 0;
    socklen_t el = sizeof(err);
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
    if (err) {
        conn_close(x, c, true);
        if (++c->tries >= LG_CONNECT_TRIES) {
            errno = err;
            note_error(x, "connect failed: %s (errno %d)", strerror(err), err);
            if (c->kind == K_SUB) sub_failed(x, c);
            else c->state = ST_FAILED;
            return;
        }
        set_retry(x, c, now_us() + 200000u * c->tries);
        return;
    }
    c->state = ST_OPEN;
    if (ep_set(x, c, false, EPOLL_CTL_MOD) < 0) {
        conn_lost(x, c, false);
        return;
    }
    if (x->tls) {
        const char *host = c->mq ? x->mhost : c->kind == K_PUB ? x->phost : x->host;
        if (lgt_start(x, c, host) < 0) conn_lost(x, c, false);
        else tls_step(x, c);
        return;
    }
    proto_start(x, c);
}

/* The connection is open (TCP, and TLS with --tls): the protocol's first request. */
static void proto_start(lg_ctx_t *x, lg_conn_t *c)
{
    if (c->mq) {
        if (mqtt_send_connect(x, c) < 0) conn_lost(x, c, false);
        return;
    }
    if (c->kind == K_SUB) {
        if (send_sub_request(x, c) < 0) {
            conn_lost(x, c, false);
            return;
        }
        /* nchan long poll has no "subscribed" answer: a written request counts */
        if (c->mode == MODE_LONGPOLL && x->style == STYLE_NCHAN) sub_set_ready(x, c);
    }
}

static void start_conn(lg_ctx_t *x, lg_conn_t *c)
{
    int rc = conn_open(x, c);
    if (rc < 0) {
        if (rc == -EMFILE || rc == -ENFILE || rc == -EADDRNOTAVAIL || ++c->tries >= LG_CONNECT_TRIES) {
            note_error(x, "cannot open a connection: %s (errno %d)", strerror(-rc), -rc);
            if (c->kind == K_SUB) sub_failed(x, c);
            else c->state = ST_FAILED;
            return;
        }
        set_retry(x, c, now_us() + 100000);
    }
}

/* ---- the loop ---- */

static uint64_t sched_of(const lg_ctx_t *x, uint32_t seq)
{
    return x->t_start + (uint64_t)((double)seq * 1e6 / x->rate);
}

/* Sends the publishes that are due. The publisher connections take turns: one that sat idle for
 * the server's keep-alive timeout would be closed by it, and a request sent at that moment is lost
 * (the keep-alive race), so none is left idle while another does all the work. */
static void publish_due(lg_ctx_t *x, uint64_t now)
{
    uint32_t np = x->nconns - x->nsubs;
    for (uint32_t k = 0; k < np && x->next_seq < x->messages; k++) {
        uint32_t i = (x->pub_turn + k) % np;
        lg_conn_t *c = &x->conns[x->nsubs + i];
        if (c->state != ST_OPEN || c->tls_hs || c->busy || (c->mq && !c->ready)) continue;
        uint64_t sched;
        if (x->rate > 0) {
            sched = sched_of(x, x->next_seq);
            if (sched > now) return;
        } else {
            if (x->inflight >= x->window) return;
            sched = now;
        }
        if (send_publish(x, c, x->next_seq, sched) < 0) {
            conn_lost(x, c, true);
            continue;
        }
        c->busy = true;
        c->pub_t = now;
        x->inflight++;
        x->pub_sent++;
        x->next_seq++;
        x->pub_turn = i + 1;
        if (now > sched && now - sched > x->int_pub_lag) x->int_pub_lag = now - sched;
    }
}

/* Every LG_MQ_PING_US, a PINGREQ from each open MQTT subscriber: its CONNECT asked for a keep
 * alive of 600 s, and a subscriber at QoS 0 sends nothing else. */
static void mqtt_keepalive(lg_ctx_t *x, uint64_t now)
{
    x->t_mq_ping = now + LG_MQ_PING_US;
    for (uint32_t i = 0; i < x->nsubs; i++) {
        lg_conn_t *c = &x->conns[i];
        if (!c->mq || !c->ready || c->state != ST_OPEN || c->fd < 0) continue;
        mqtt_pkt_t ping = {.type = MQTT_PINGREQ, .version = x->mqtt_version};
        if (mqtt_send(x, c, &ping) < 0) conn_lost(x, c, false);
    }
}

static void step_phase(lg_ctx_t *x, uint64_t now)
{
    /* (re)start connections that are due */
    for (uint32_t i = x->nsubs; i < x->nconns; i++) {
        lg_conn_t *c = &x->conns[i];
        if ((c->state == ST_NEW || c->state == ST_IDLE) && now >= c->retry_at) start_conn(x, c);
        if (c->state == ST_FAILED && x->phase < PH_DONE) {
            note_error(x, "publisher connection %s (errno %d)", "failed", 0);
            x->phase = PH_DONE;
            return;
        }
    }
    while (x->started < x->nsubs && x->pending < x->ramp_batch) {
        lg_conn_t *c = &x->conns[x->started++];
        x->pending++;
        start_conn(x, c);
    }
    for (uint32_t i = 0; x->retrying && i < x->started; i++) {
        lg_conn_t *c = &x->conns[i];
        if (c->state == ST_IDLE && now >= c->retry_at) {
            x->retrying--;
            start_conn(x, c);
        }
    }

    if (x->phase == PH_CONNECT) {
        bool pubs_ok = true;
        for (uint32_t i = x->nsubs; i < x->nconns; i++)
            if (x->conns[i].state != ST_OPEN || x->conns[i].tls_hs || (x->conns[i].mq && !x->conns[i].ready))
                pubs_ok = false;
        if (x->started == x->nsubs && x->ready_subs + x->failed_subs >= x->nsubs && pubs_ok) {
            x->phase = PH_WARMUP;
            x->t_ready = now;
            x->cpu_connected = lgr_cpu_fine_s(x);
            if (!x->quiet)
                fprintf(stderr, "bench: %u/%u subscribers ready in %.2f s\n", x->ready_subs, x->nsubs,
                        (double)(now - x->t0) / 1e6);
        }
    }
    if (x->phase == PH_WARMUP && now >= x->t_ready + (uint64_t)x->warmup_ms * 1000u) {
        x->rss_ready_kb = lgr_rss_kb(x);
        if (x->idle_conns) {
            x->phase = x->idle_hold_ms ? PH_HOLD : PH_DONE;
            x->t_hold_end = now + (uint64_t)x->idle_hold_ms * 1000u;
            return;
        }
        x->cpu_before = lgr_cpu_s(x);
        x->phase = PH_RUN;
        x->t_start = x->t_progress = x->int_t = now_us();
        x->t_mq_ping = x->t_start + LG_MQ_PING_US;
        if (!x->quiet) fprintf(stderr, "bench: publishing\n");
    }
    if ((x->phase == PH_RUN || x->phase == PH_DRAIN) && now >= x->t_mq_ping) mqtt_keepalive(x, now);
    if (x->phase == PH_RUN) {
        publish_due(x, now);
        if (x->next_seq >= x->messages) x->phase = PH_DRAIN;
    }
    if (x->phase == PH_DRAIN) {
        if (x->delivered >= x->want && x->inflight == 0) x->phase = PH_DONE;
        else if (x->inflight == 0 && now > x->t_progress + (uint64_t)x->drain_ms * 1000u &&
                 now > x->t_last_pub_ans + (uint64_t)x->drain_ms * 1000u)
            x->phase = PH_DONE; /* nothing arrived for --drain-ms: the rest is lost */
    }
    if (x->phase == PH_HOLD && now >= x->t_hold_end) {
        x->rss_held_kb = lgr_rss_kb(x);
        x->phase = PH_DONE;
    }
    if (x->phase != PH_DONE && now >= x->t_deadline) {
        x->timed_out = true;
        x->phase = PH_DONE;
    }
}

static int poll_timeout_ms(const lg_ctx_t *x, uint64_t now)
{
    int t = 50;
    if (x->phase == PH_RUN && x->rate > 0 && x->next_seq < x->messages) {
        uint64_t s = sched_of(x, x->next_seq);
        int64_t d = s > now ? (int64_t)((s - now + 999) / 1000) : 0;
        if (d < t) t = (int)d;
    }
    return t;
}

static void run_loop(lg_ctx_t *x)
{
    struct epoll_event evs[512];
    while (x->phase != PH_DONE) {
        uint64_t now = now_us();
        step_phase(x, now);
        if (x->phase == PH_DONE) break;
        int n = epoll_wait(x->ep, evs, 512, poll_timeout_ms(x, now_us()));
        if (n < 0) {
            if (errno == EINTR) continue;
            note_error(x, "epoll_wait: %s (errno %d)", strerror(errno), errno);
            break;
        }
        for (int i = 0; i < n; i++) {
            lg_conn_t *c = evs[i].data.ptr;
            if (!c) { /* the signalfd: SIGUSR2 asks for an interval report */
                struct signalfd_siginfo si;
                bool got = false;
                while (read(x->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) got = true;
                if (got) lgr_interval(x, now_us());
                continue;
            }
            if (c->fd < 0) continue;
            uint32_t e = evs[i].events;
            if (c->state == ST_CONNECTING) {
                if (e & (EPOLLOUT | EPOLLERR | EPOLLHUP)) on_connected(x, c);
                continue;
            }
            if (c->tls_hs) {
                tls_step(x, c);
                continue;
            }
            if (e & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP)) on_readable(x, c);
            if (c->fd >= 0 && (e & EPOLLOUT) && flush_out(x, c) < 0) conn_lost(x, c, false);
        }
    }
}

/* ---- options ---- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: herald bench [options]\n"
            "  --url http://127.0.0.1:PORT   server (default http://127.0.0.1:8080)\n"
            "  --pub-url http://HOST:PORT    HTTP publishers post here instead (another node; default --url)\n"
            "  --channel NAME                channel (default bench)\n"
            "  --subs N                      subscribers (default 100)\n"
            "  --mode sse|longpoll|ws|mqtt   subscriber transport (default sse); a list (sse,ws,mqtt) mixes\n"
            "                                them: subscriber i uses entry i mod n\n"
            "  --mqtt-url mqtt://HOST:PORT   MQTT broker for --mode mqtt and --pub-via mqtt\n"
            "                                (default mqtt://127.0.0.1:1883)\n"
            "  --qos 0|1|2                   MQTT: subscription and publish QoS (default 0)\n"
            "  --mqtt-version 4|5            MQTT: protocol level, 3.1.1 or 5.0 (default 4)\n"
            "  --pub-via http|mqtt           publish with HTTP POST or MQTT PUBLISH (default http)\n"
            "  --deflate                     ws: offer permessage-deflate and inflate compressed messages\n"
            "  --messages M                  messages to publish (default 100)\n"
            "  --rate R                      messages/s on a fixed schedule; 0 = flat out (default 0)\n"
            "  --window W                    flat out: publishes in flight (default 1)\n"
            "  --size BYTES                  payload size (default 64)\n"
            "  --payload x|json              padding after the timestamp: 'x' bytes or JSON-like records\n"
            "                                (compressible a few times, for --deflate) (default x)\n"
            "  --channels K                  spread the run over K channels: subscriber i reads CHANNEL-(i mod K),\n"
            "                                message s goes to CHANNEL-(s mod K) (default 1: CHANNEL only)\n"
            "  --pub-conns K                 keep-alive publisher connections (default 1)\n"
            "  --ramp-batch B                subscriber handshakes in flight while connecting (default 200)\n"
            "  --warmup-ms MS                pause after all subscribers are ready (default 500)\n"
            "  --drain-ms MS                 stop when nothing arrived for this long after the last\n"
            "                                publish answer (default 5000)\n"
            "  --timeout-s S                 overall bound (default 60)\n"
            "  --server-pid PID[,PID...]     measure these processes' CPU time and RSS (summed; up to 8)\n"
            "  --idle-conns N                open N idle subscribers (SSE, or ws / mqtt with --mode), report\n"
            "                                RSS per connection\n"
            "  --idle-hold-ms MS             idle mode: keep them open MS more, then read the RSS again\n"
            "  --idle-distinct               idle mode: one channel per connection (default one channel)\n"
            "  --pub-path-style herald|nchan protocol dialect (nchan: long poll by Etag/Last-Modified)\n"
            "  --token T                     subscribers present T: ?token=T (SSE, long poll, ws), or MQTT\n"
            "                                CONNECT user \"bench\" password T (MQTT publishers too)\n"
            "  --tokens-file F               one token per line; subscriber i presents line i mod N\n"
            "  --pub-key K                   HTTP publishers send Authorization: Bearer K\n"
            "  --sub-path P                  subscribers ask for /sub/P (e.g. @me, herald's personal feed:\n"
            "                                the token's user) instead of their channel\n"
            "  --pub-op publish|read         read: POST /read/CHANNEL-j as user j (token j of --tokens-file),\n"
            "                                alternately up to the newest message and up to none (default publish)\n"
            "  --read-events                 with --pub-op read: every read must reach its user's subscribers\n"
            "                                as an SSE unread event (counted as a delivery)\n"
            "  --json                        print one JSON line of results\n"
            "  --intervals                   on each SIGUSR2, print a JSON line about the interval since\n"
            "                                the previous one (deliveries, latency, missing so far)\n"
            "  --quiet                       no progress on stderr\n"
            "  --tls                         TLS on every connection (subscribers, publishers, MQTT); each\n"
            "                                handshake is a full one (no resumption)\n"
            "  --cacert FILE                 --tls: verify the server's chain against FILE and its name\n"
            "                                against the URL's host (default: no verification)\n"
            "  --tls-handshake-only          --tls with --idle-conns: a connection is ready when its handshake\n"
            "                                is done (no request); the connect phase is the handshake rate\n");
}

/* http://HOST[:PORT][/PREFIX] into host (64 bytes), port, prefix (128 bytes) and addr. */
static bool has_mode(const lg_ctx_t *x, int m)
{
    for (uint32_t i = 0; i < x->nmodes; i++)
        if (x->modes[i] == m) return true;
    return false;
}

static int parse_url(const char *url, char *host, int *port, char *prefix, struct sockaddr_in *addr)
{
    if (strncmp(url, "http://", 7) != 0) return -1;
    const char *h = url + 7, *colon = strchr(h, ':'), *slash = strchr(h, '/');
    size_t hl = colon && (!slash || colon < slash) ? (size_t)(colon - h) : slash ? (size_t)(slash - h) : strlen(h);
    if (hl == 0 || hl >= 64) return -1;
    memcpy(host, h, hl);
    host[hl] = 0;
    *port = (colon && (!slash || colon < slash)) ? atoi(colon + 1) : 80;
    if (*port <= 0 || *port > 65535) return -1;
    prefix[0] = 0;
    if (slash) snprintf(prefix, 128, "%s", slash);
    size_t pl = strlen(prefix);
    if (pl && prefix[pl - 1] == '/') prefix[pl - 1] = 0;
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res) return -1;
    memcpy(addr, res->ai_addr, sizeof(*addr));
    addr->sin_port = htons((uint16_t)*port);
    freeaddrinfo(res);
    return 0;
}

/* mqtt://HOST[:PORT] (port 1883 by default) into x->maddr. */
static int parse_mqtt_url(lg_ctx_t *x, const char *url)
{
    if (strncmp(url, "mqtt://", 7) != 0) return -1;
    const char *h = url + 7, *colon = strchr(h, ':');
    size_t hl = colon ? (size_t)(colon - h) : strcspn(h, "/");
    if (hl == 0 || hl >= sizeof(x->mhost)) return -1;
    memcpy(x->mhost, h, hl);
    x->mhost[hl] = 0;
    x->mport = colon ? atoi(colon + 1) : 1883;
    if (x->mport <= 0 || x->mport > 65535) return -1;
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(x->mhost, NULL, &hints, &res) != 0 || !res) return -1;
    memcpy(&x->maddr, res->ai_addr, sizeof(x->maddr));
    x->maddr.sin_port = htons((uint16_t)x->mport);
    freeaddrinfo(res);
    return 0;
}

/* --mode: one transport or a comma-separated list of different ones. */
static int parse_modes(lg_ctx_t *x, const char *v)
{
    static const char *const names[LG_NMODES] = {"sse", "longpoll", "ws", "mqtt"};
    x->nmodes = 0;
    while (*v) {
        size_t n = strcspn(v, ",");
        int m = 0;
        while (m < LG_NMODES && (strlen(names[m]) != n || strncmp(v, names[m], n) != 0)) m++;
        if (m == LG_NMODES || has_mode(x, m)) return -1;
        x->modes[x->nmodes++] = (uint8_t)m;
        v += n;
        if (*v == ',' && *++v == 0) return -1;
    }
    if (!x->nmodes) return -1;
    x->mode = x->modes[0];
    return 0;
}

static bool num_arg(const char *s, double lo, double hi, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

/* --server-pid PID[,PID...]: up to LG_MAX_PIDS processes whose CPU time and RSS are summed. */
static int parse_pids(lg_ctx_t *x, const char *v)
{
    x->npids = 0;
    while (*v) {
        char *end;
        long pid = strtol(v, &end, 10);
        if (end == v || pid < 1 || x->npids == LG_MAX_PIDS || (*end && *end != ',')) return -1;
        x->server_pids[x->npids++] = pid;
        v = *end ? end + 1 : end;
    }
    x->server_pid = x->npids ? x->server_pids[0] : 0;
    return x->npids ? 0 : -1;
}

static int parse_args(lg_ctx_t *x, int argc, char **argv)
{
    const char *url = "http://127.0.0.1:8080", *murl = "mqtt://127.0.0.1:1883", *purl = NULL;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 1;
        }
        if (strcmp(a, "--json") == 0) {
            x->json = true;
            continue;
        }
        if (strcmp(a, "--quiet") == 0) {
            x->quiet = true;
            continue;
        }
        if (strcmp(a, "--idle-distinct") == 0) {
            x->idle_distinct = true;
            continue;
        }
        if (strcmp(a, "--deflate") == 0) {
            x->deflate = true;
            continue;
        }
        if (strcmp(a, "--intervals") == 0) {
            x->intervals = true;
            continue;
        }
        if (strcmp(a, "--read-events") == 0) {
            x->read_events = true;
            continue;
        }
        if (strcmp(a, "--tls") == 0) {
            x->tls = true;
            continue;
        }
        if (strcmp(a, "--tls-handshake-only") == 0) {
            x->tls_hs_only = true;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "bench: %s needs a value (or is unknown)\n", a);
            return -1;
        }
        const char *v = argv[++i];
        double d = 0;
        bool ok = true;
        if (strcmp(a, "--url") == 0) url = v;
        else if (strcmp(a, "--pub-url") == 0) purl = v;
        else if (strcmp(a, "--mqtt-url") == 0) murl = v;
        else if (strcmp(a, "--cacert") == 0) x->tls_cacert = v;
        else if (strcmp(a, "--token") == 0) ok = token_ok(x->token = v);
        else if (strcmp(a, "--pub-key") == 0) ok = token_ok(x->pub_key = v);
        else if (strcmp(a, "--tokens-file") == 0) {
            if (load_tokens(x, v) < 0) {
                fprintf(stderr, "bench: --tokens-file %s: unreadable, empty, or a token is not URL-safe\n", v);
                return -1;
            }
        } else if (strcmp(a, "--qos") == 0) {
            ok = num_arg(v, 0, 2, &d) && d == (int)d;
            x->qos = (uint8_t)d;
        } else if (strcmp(a, "--mqtt-version") == 0) {
            ok = num_arg(v, MQTT_V311, MQTT_V5, &d) && d == (int)d;
            x->mqtt_version = (uint8_t)d;
        } else if (strcmp(a, "--pub-via") == 0) {
            if (strcmp(v, "http") == 0) x->pub_mqtt = false;
            else if (strcmp(v, "mqtt") == 0) x->pub_mqtt = true;
            else ok = false;
        }
        else if (strcmp(a, "--channel") == 0) {
            ok = *v && strlen(v) < 180;
            if (ok) snprintf(x->channel, sizeof(x->channel), "%s", v);
        } else if (strcmp(a, "--mode") == 0) {
            ok = parse_modes(x, v) == 0;
        } else if (strcmp(a, "--payload") == 0) {
            if (strcmp(v, "x") == 0) x->payload = PAYLOAD_X;
            else if (strcmp(v, "json") == 0) x->payload = PAYLOAD_JSON;
            else ok = false;
        } else if (strcmp(a, "--pub-path-style") == 0) {
            if (strcmp(v, "herald") == 0) x->style = STYLE_HERALD;
            else if (strcmp(v, "nchan") == 0) x->style = STYLE_NCHAN;
            else ok = false;
        } else if (strcmp(a, "--rate") == 0) {
            ok = num_arg(v, 0, 1e7, &d);
            x->rate = d;
        } else if (strcmp(a, "--server-pid") == 0) {
            ok = parse_pids(x, v) == 0;
        } else if (strcmp(a, "--sub-path") == 0) {
            ok = *v && strlen(v) < 180 && !strpbrk(v, " ?#\r\n");
            x->sub_path = v;
        } else if (strcmp(a, "--pub-op") == 0) {
            if (strcmp(v, "publish") == 0) x->pub_op = OP_PUBLISH;
            else if (strcmp(v, "read") == 0) x->pub_op = OP_READ;
            else ok = false;
        } else {
            struct {
                const char *name;
                uint32_t *dst;
                double lo, hi;
            } nums[] = {{"--subs", &x->subs, 0, 1e6},
                        {"--messages", &x->messages, 1, 1e8},
                        {"--size", &x->size, 1, 1 << 24},
                        {"--pub-conns", &x->pub_conns, 1, 1000},
                        {"--channels", &x->channels, 1, 1e6},
                        {"--window", &x->window, 1, 1e6},
                        {"--ramp-batch", &x->ramp_batch, 1, 1e6},
                        {"--idle-conns", &x->idle_conns, 1, 1e6},
                        {"--idle-hold-ms", &x->idle_hold_ms, 0, 3.6e6},
                        {"--warmup-ms", &x->warmup_ms, 0, 3.6e6},
                        {"--drain-ms", &x->drain_ms, 1, 3.6e6},
                        {"--timeout-s", &x->timeout_s, 1, 86400}};
            size_t k = 0;
            for (; k < sizeof(nums) / sizeof(nums[0]); k++)
                if (strcmp(a, nums[k].name) == 0) break;
            if (k == sizeof(nums) / sizeof(nums[0])) {
                fprintf(stderr, "bench: unknown option %s (try --help)\n", a);
                return -1;
            }
            ok = num_arg(v, nums[k].lo, nums[k].hi, &d) && d == (double)(uint32_t)d;
            *nums[k].dst = (uint32_t)d;
        }
        if (!ok) {
            fprintf(stderr, "bench: bad value for %s: %s\n", a, v);
            return -1;
        }
    }
    if (parse_url(url, x->host, &x->port, x->prefix, &x->addr) < 0) {
        fprintf(stderr, "bench: bad --url %s (want http://HOST:PORT; --tls for TLS)\n", url);
        return -1;
    }
    if (parse_url(purl ? purl : url, x->phost, &x->pport, x->pprefix, &x->paddr) < 0) {
        fprintf(stderr, "bench: bad --pub-url %s (want http://HOST:PORT)\n", purl);
        return -1;
    }
    bool mq_subs = has_mode(x, MODE_MQTT);
    if ((mq_subs || x->pub_mqtt) && parse_mqtt_url(x, murl) < 0) {
        fprintf(stderr, "bench: bad --mqtt-url %s (want mqtt://HOST:PORT; --tls for TLS)\n", murl);
        return -1;
    }
    if ((mq_subs || x->pub_mqtt) && strpbrk(x->channel, "+#")) {
        fprintf(stderr, "bench: an MQTT topic cannot contain + or #: %s\n", x->channel);
        return -1;
    }
    if (x->pub_key && x->pub_mqtt) {
        fprintf(stderr, "bench: --pub-key is for HTTP publishers; MQTT publishers present --token\n");
        return -1;
    }
    if (x->pub_op == OP_READ && (x->pub_mqtt || !x->ntokens || x->style != STYLE_HERALD)) {
        fprintf(stderr, "bench: --pub-op read needs herald, HTTP publishers and --tokens-file (token j: the user "
                        "of CHANNEL-j)\n");
        return -1;
    }
    if ((x->sub_path || x->pub_op == OP_READ) && x->channels > 1 && x->ntokens && x->ntokens != x->channels) {
        fprintf(stderr, "bench: with --sub-path or --pub-op read, --tokens-file must hold one token per channel "
                        "(%u, token j = the user of CHANNEL-j), not %u\n", x->channels, x->ntokens);
        return -1;
    }
    if (x->read_events && x->pub_op != OP_READ) {
        fprintf(stderr, "bench: --read-events goes with --pub-op read\n");
        return -1;
    }
    if (x->deflate && !has_mode(x, MODE_WS)) {
        fprintf(stderr, "bench: --deflate needs --mode ws\n");
        return -1;
    }
    if ((x->tls_cacert || x->tls_hs_only) && !x->tls) {
        fprintf(stderr, "bench: --cacert and --tls-handshake-only go with --tls\n");
        return -1;
    }
    if (x->tls_hs_only && !x->idle_conns) {
        fprintf(stderr, "bench: --tls-handshake-only goes with --idle-conns\n");
        return -1;
    }
    if (x->idle_conns && (has_mode(x, MODE_LONGPOLL) || x->nmodes > 1 || x->channels > 1)) {
        fprintf(stderr, "bench: --idle-conns works with one --mode of sse, ws or mqtt, and without --channels\n");
        return -1;
    }
    return 0;
}

int bench_main(int argc, char **argv)
{
    lg_ctx_t *x = calloc(1, sizeof(*x));
    if (!x) return 1;
    x->ep = -1;
    x->sigfd = -1;
    x->nmodes = 1; /* sse */
    x->subs = 100;
    x->messages = 100;
    x->size = 64;
    x->pub_conns = 1;
    x->window = 1;
    x->ramp_batch = 200;
    x->warmup_ms = 500;
    x->drain_ms = 5000;
    x->timeout_s = 60;
    x->mqtt_version = MQTT_V311;
    x->mq_granted_min = 4;
    x->rss_held_kb = -1;
    snprintf(x->channel, sizeof(x->channel), "bench");
    x->clk_tck = sysconf(_SC_CLK_TCK);
    int rc = parse_args(x, argc, argv);
    if (rc != 0) {
        for (uint32_t i = 0; i < x->ntokens; i++) free(x->tokens[i]);
        free(x->tokens);
        free(x);
        return rc > 0 ? 0 : 1;
    }
    if (x->idle_conns) {
        x->subs = x->idle_conns;
        x->pub_conns = 0;
    }
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof(seed), 0) != (ssize_t)sizeof(seed)) seed = now_us() ^ ((uint64_t)getpid() << 32);
    x->rng = seed | 1;
    x->nsubs = x->subs;
    x->nconns = x->subs + x->pub_conns;

    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if ((uint64_t)x->nconns + 16 > rl.rlim_cur) {
        fprintf(stderr, "bench: %u connections need %u open files but the limit is %llu (hard %llu)\n", x->nconns,
                x->nconns + 16, (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max);
        free(x);
        return 1;
    }
    int exit_code = 1;
    x->scratch = malloc(LG_SCRATCH);
    x->conns = calloc(x->nconns ? x->nconns : 1, sizeof(*x->conns));
    x->ep = epoll_create1(EPOLL_CLOEXEC);
    /* one bit per message a subscriber can get: with --channels K, those of its own channel */
    uint32_t per_sub = x->channels > 1 ? (x->messages + x->channels - 1) / x->channels : x->messages;
    size_t words = ((size_t)per_sub + 63) / 64;
    bool ok = x->scratch && x->conns && x->ep >= 0;
    if (ok && x->pub_op == OP_READ) ok = (x->read_sched = calloc(x->messages, sizeof(uint64_t))) != NULL;
    if (ok && x->intervals) { /* SIGUSR2 is read from a signalfd in the loop, not delivered */
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGUSR2);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
        ok = sigprocmask(SIG_BLOCK, &set, NULL) == 0 &&
             (x->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) >= 0 &&
             epoll_ctl(x->ep, EPOLL_CTL_ADD, x->sigfd, &ev) == 0;
    }
    for (uint32_t i = 0; ok && i < x->nconns; i++) {
        lg_conn_t *c = &x->conns[i];
        c->fd = -1;
        c->idx = i;
        c->kind = i < x->nsubs ? K_SUB : K_PUB;
        c->mode = c->kind == K_SUB ? x->modes[i % x->nmodes] : MODE_SSE;
        c->mq = c->kind == K_SUB ? c->mode == MODE_MQTT : x->pub_mqtt;
        if (c->kind == K_SUB && !x->idle_conns) {
            c->seen = calloc(words, sizeof(uint64_t));
            if (!c->seen) ok = false;
        }
    }
    if (!ok) {
        fprintf(stderr, "bench: out of memory (%u subscribers x %u messages), or no signalfd\n", x->nsubs,
                x->messages);
        goto out;
    }
    if (x->server_pid > 0 && lgr_rss_kb(x) < 0) {
        fprintf(stderr, "bench: cannot read /proc/%ld/status\n", x->server_pid);
        goto out;
    }
    if (x->tls && lgt_init(x) < 0) goto out;
    x->t0 = now_us();
    x->t_deadline = x->t0 + (uint64_t)x->timeout_s * 1000000u;
    x->rss_before_kb = lgr_rss_kb(x);
    x->cpu_connect0 = lgr_cpu_fine_s(x);
    x->cpu_connected = -1;
    x->cpu_before = -1;
    x->cpu_after = -1;
    x->phase = PH_CONNECT;
    if (!x->quiet)
        fprintf(stderr, "bench: %u %s%s subscribers on %s:%d channel %s%s\n", x->nsubs,
                lg__mode_name(x, x->mode), x->nmodes > 1 ? " (and more)" : "",
                x->mode == MODE_MQTT ? x->mhost : x->host, x->mode == MODE_MQTT ? x->mport : x->port, x->channel,
                x->idle_conns ? " (idle)" : x->channels > 1 ? "-N" : "");
    run_loop(x);
    if (x->phase == PH_DONE && !x->idle_conns) {
        if (x->cpu_before >= 0) x->cpu_after = lgr_cpu_s(x);
        x->rss_end_kb = lgr_rss_kb(x);
    }
    exit_code = lgr_final(x);
    fflush(stdout);
out:
    for (uint32_t i = 0; x->conns && i < x->nconns; i++) {
        conn_close(x, &x->conns[i], true);
        free(x->conns[i].seen);
    }
    if (x->ep >= 0) close(x->ep);
    if (x->sigfd >= 0) close(x->sigfd);
    if (x->ssl_ctx) lgt_free_ctx(x);
    if (x->zs_init) inflateEnd(&x->zs);
    free(x->infl);
    free(x->conns);
    free(x->scratch);
    free(x->lat);
    free(x->alat);
    free(x->read_sched);
    for (uint32_t i = 0; i < x->ntokens; i++) free(x->tokens[i]);
    free(x->tokens);
    free(x);
    return exit_code;
}
