/* loadgen_internal.h - what loadgen.c (connections, protocols, the loop) and loadgen_report.c
 * (server measurements from /proc, the final report and the interval reports of a soak) share.
 * Not a public contract: only the two files of `herald bench` include it. */
#ifndef HERALD_LOADGEN_INTERNAL_H
#define HERALD_LOADGEN_INTERNAL_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <zlib.h>

#include "../src/transport/ws_codec.h"

#define LG_SCRATCH (256 * 1024)
#define LG_MAX_HEAD 16384
#define LG_MAX_BUF (8u << 20)
#define LG_MAX_SAMPLES 50000000u
#define LG_CONNECT_TRIES 5
#define LG_MAX_TOKEN 8192 /* herald's default token_max_length */
#define LG_NMODES 4
#define LG_MAX_PIDS 8 /* --server-pid: processes measured together (nginx's master and workers) */

enum { K_SUB, K_PUB };
enum { ST_NEW, ST_IDLE, ST_CONNECTING, ST_OPEN, ST_FAILED }; /* ST_IDLE: waiting to retry */
enum { PH_CONNECT, PH_WARMUP, PH_RUN, PH_DRAIN, PH_HOLD, PH_DONE }; /* PH_HOLD: --idle-hold-ms */
enum { MODE_SSE, MODE_LONGPOLL, MODE_WS, MODE_MQTT };                /* LG_NMODES of them */
enum { MQ_PUB_NONE, MQ_PUB_ACK, MQ_PUB_REC, MQ_PUB_COMP, MQ_PUB_PING }; /* what a publisher waits for */
enum { PAYLOAD_X, PAYLOAD_JSON };
enum { OP_PUBLISH, OP_READ }; /* --pub-op: what the HTTP publishers send */
enum { STYLE_HERALD, STYLE_NCHAN };
enum { CS_SIZE, CS_DATA, CS_DATA_CRLF, CS_TRAILER };

/* Incremental HTTP/1.1 response state (one response at a time per connection). */
typedef struct {
    bool head_done, chunked, has_len, close, done;
    int status;
    int cstate;
    uint64_t left;  /* chunk bytes or Content-Length bytes still to decode */
    size_t dec_len; /* decoded, unconsumed body bytes at the start of the stored buffer */
    char etag[64], lastmod[64];
    /* WebSocket handshake answer */
    bool upgrade_ws, conn_upgrade; /* Upgrade: websocket, Connection: upgrade */
    bool pmd, pmd_snct, ext_other; /* permessage-deflate; its server_no_context_takeover; anything else */
    char accept[32];               /* Sec-WebSocket-Accept */
} lg_resp_t;

typedef struct {
    int fd;
    uint8_t kind, state;
    uint8_t mode;   /* subscriber: MODE_*, from the --mode list (subscriber i gets entry i mod n) */
    bool ready;     /* subscriber: counted as connected */
    bool want_out;  /* EPOLLOUT registered */
    bool busy;      /* publisher: a request is in flight */
    bool lp_primed; /* herald long poll: has a cursor from the first poll */
    uint8_t tries;
    uint32_t idx;
    char *buf; /* unparsed input, see loadgen.c's file comment */
    size_t len, cap;
    char *out; /* unwritten request bytes */
    size_t out_len, out_off;
    lg_resp_t r;
    uint64_t *seen; /* subscriber: bitmap of its received messages (with --channels K: bit s / K) */
    uint32_t got;
    uint32_t ev_k;  /* --pub-op read: unread events this subscriber took in the run (its next read) */
    uint64_t pub_t; /* publisher: when the request in flight was sent (us), for the answer's latency */
    char cursor[32];            /* herald long poll last_id */
    char etag[64], lastmod[64]; /* nchan long poll cursor */
    uint64_t retry_at;          /* reconnect not before this time (us) */
    /* WebSocket subscriber */
    bool ws_open;    /* the 101 arrived: the input is frames */
    bool ws_deflate; /* permessage-deflate was agreed (RSV1 allowed) */
    bool ws_ctx;     /* ... without server_no_context_takeover: zs keeps the window across messages */
    char ws_key[25]; /* Sec-WebSocket-Key sent */
    ws_msg_t wsm;    /* fragment sequencing */
    char *frag;      /* a fragmented message's payload so far (allocated only for fragments) */
    size_t frag_len, frag_cap;
    z_stream *zs; /* per-connection inflater (ws_ctx only) */
    /* MQTT */
    bool mq;         /* this connection speaks MQTT (to --mqtt-url) */
    uint8_t mq_wait; /* publisher: MQ_PUB_* for the PUBLISH in flight */
    uint16_t mq_pid; /* publisher: the packet id of the PUBLISH in flight */
    /* TLS (--tls, loadgen_tls.c) */
    struct ssl_st *ssl; /* NULL on a plain connection */
    bool tls_hs;        /* the TLS handshake is under way: the bytes are not the protocol's yet */
} lg_conn_t;

typedef struct {
    /* options */
    char host[64];
    int port;
    char prefix[128];
    char phost[64]; /* --pub-url (default: --url): where the HTTP publishers post */
    int pport;
    char pprefix[128];
    char channel[200];
    uint32_t subs, messages, size, pub_conns, window, ramp_batch, idle_conns;
    uint32_t channels; /* --channels K > 1: subscriber i on CHANNEL-(i mod K), message s to CHANNEL-(s mod K) */
    double rate;
    uint32_t warmup_ms, timeout_s, drain_ms;
    int mode, style, payload; /* mode: the first of the --mode list */
    uint8_t modes[LG_NMODES]; /* the --mode list */
    uint32_t nmodes;
    long server_pid;                /* the first of --server-pid (0: none) */
    long server_pids[LG_MAX_PIDS];  /* all of them: CPU time and RSS are summed */
    uint32_t npids;
    const char *sub_path;           /* --sub-path: subscribers ask for /sub/PATH (e.g. @me) */
    int pub_op;                     /* --pub-op: OP_PUBLISH or OP_READ */
    bool read_events;               /* --read-events: each read must reach its user's subscribers */
    uint64_t *read_sched;           /* --pub-op read: the scheduled time of read s (us) */
    uint64_t unread_events;         /* SSE "unread" events received, whatever the run */
    uint64_t unread_early;          /* ... of them before publishing started or not matched to a read */
    uint32_t *alat;                 /* publish (or read) answer latencies, us */
    size_t nalat, alatcap;
    bool json, idle_distinct, quiet, deflate;
    bool intervals;              /* --intervals: a JSON line per SIGUSR2 */
    const char *token, *pub_key; /* --token, --pub-key */
    char **tokens;               /* --tokens-file: subscriber i presents tokens[i % ntokens] */
    uint32_t ntokens;
    /* runtime */
    struct sockaddr_in addr, paddr;
    int ep;
    int sigfd; /* --intervals: signalfd of SIGUSR2, in the epoll set with data.ptr NULL */
    char *scratch;
    lg_conn_t *conns;
    uint32_t nconns, nsubs;
    int phase;
    uint64_t t0, t_ready, t_start, t_last_pub_ans, t_last_delivery, t_deadline, t_progress;
    uint32_t started, pending, ready_subs, failed_subs, retrying;
    uint32_t next_seq, inflight, pub_ok, pub_err, pub_sent;
    uint32_t pub_turn; /* the publisher connection to try first (they take turns) */
    uint64_t want; /* deliveries the ready subscribers should get in all (lg__expected summed) */
    uint64_t delivered, duplicates, bad_events, gap_events, sub_disconnects, lp_requests;
    uint64_t mode_subs[LG_NMODES], mode_delivered[LG_NMODES]; /* ready subscribers, deliveries by transport */
    uint32_t *lat;
    size_t nlat, latcap;
    bool samples_capped, timed_out;
    long clk_tck;
    double cpu_before, cpu_after;
    double cpu_connect0, cpu_connected; /* server CPU at the first connect and when all are ready */
    long rss_before_kb, rss_ready_kb, rss_end_kb;
    char first_error[160];
    /* --intervals: where the previous interval report left off */
    uint32_t nint;
    uint64_t int_t, int_delivered, int_mode_delivered[LG_NMODES];
    size_t int_lat;
    uint64_t int_pub_lag; /* the most a publish went out after its scheduled time (us), this interval */
    uint64_t t_mq_ping; /* next time MQTT subscribers are checked for a keep-alive PINGREQ */
    /* WebSocket */
    uint64_t rng; /* xorshift state: keys and masks */
    z_stream zs;  /* the shared inflater (server_no_context_takeover) */
    bool zs_init;
    char *infl; /* inflated message */
    size_t infl_cap;
    uint32_t ws_deflate_subs, ws_ctx_subs;
    uint64_t ws_msgs, ws_compressed, ws_wire_bytes, ws_frames, ws_pings, ws_closes;
    /* MQTT */
    struct sockaddr_in maddr; /* --mqtt-url */
    char mhost[64];
    int mport;
    uint8_t qos, mqtt_version;
    bool pub_mqtt; /* --pub-via mqtt */
    uint32_t idle_hold_ms;
    long rss_held_kb;
    uint64_t t_hold_end;
    uint32_t mq_granted_min; /* lowest QoS granted in a SUBACK (4 before any) */
    uint64_t mq_publish_rx, mq_qos_rx[3], mq_acks_sent, mq_pubrel_rx, mq_dup_rx;
    /* TLS */
    bool tls;                    /* --tls: every connection (subscribers, publishers, MQTT) */
    bool tls_hs_only;            /* --tls-handshake-only: an idle connection is ready at its handshake */
    const char *tls_cacert;      /* --cacert: verify the server against it (NULL: no verification) */
    struct ssl_ctx_st *ssl_ctx;  /* the client context, made by lgt_init() */
    uint64_t tls_handshakes, tls_resumed, tls_failures;
    char tls_version[16], tls_cipher[64]; /* what the first handshake agreed */
} lg_ctx_t;

/* ---- loadgen.c ---- */

/* CLOCK_MONOTONIC in microseconds (the clock of every payload's timestamp). */
uint64_t lg__now_us(void);

/* How many of messages 0..upto-1 subscriber c should receive: all of them on one channel, every
 * K-th (those of its channel) with --channels K. */
uint64_t lg__expected(const lg_ctx_t *x, const lg_conn_t *c, uint32_t upto);

/* The name of subscriber transport m as reported: sse, longpoll, ws (ws-deflate) or mqtt. */
const char *lg__mode_name(const lg_ctx_t *x, int m);

/* ---- loadgen_report.c ---- */

/* The server's (--server-pid) CPU time, utime + stime from /proc/PID/stat in clock ticks; -1
 * without a pid or when unreadable. */
double lgr_cpu_s(const lg_ctx_t *x);

/* The same from /proc/PID/schedstat (nanoseconds on a CPU of the main thread: all of herald),
 * for phases too short for clock ticks; falls back to lgr_cpu_s(). */
double lgr_cpu_fine_s(const lg_ctx_t *x);

/* The server's VmRSS in kB, or -1. */
long lgr_rss_kb(const lg_ctx_t *x);

/* Prints the final report on stdout (one JSON line with --json). Sorts x->lat. Returns the exit
 * status: 0 when every expected delivery arrived, 2 otherwise. */
int lgr_final(lg_ctx_t *x);

/* Prints one JSON line on stdout about the interval since the previous call (or since publishing
 * started): deliveries and their latency percentiles in the interval, and the totals so far,
 * with the deliveries missing among messages scheduled at least --drain-ms ago. */
void lgr_interval(lg_ctx_t *x, uint64_t now);

/* ---- loadgen_tls.c ---- */

enum { LGT_DONE, LGT_WANT_READ, LGT_WANT_WRITE, LGT_FAIL }; /* lgt_handshake() */

/* Makes x->ssl_ctx (TLS 1.2+, every handshake a full one: no session is kept for resumption);
 * with --cacert the server's chain and name are verified, otherwise nothing is. Returns 0 or -1
 * with a message on stderr. */
int lgt_init(lg_ctx_t *x);

/* Frees x->ssl_ctx. */
void lgt_free_ctx(lg_ctx_t *x);

/* Puts a client TLS session on c's connected socket; the server's name (SNI when not an address,
 * and the name checked with --cacert) is HOST. Sets c->tls_hs. Returns 0 or -1. */
int lgt_start(lg_ctx_t *x, lg_conn_t *c, const char *host);

/* Advances c's handshake: LGT_DONE (c->tls_hs cleared), LGT_WANT_READ/WRITE, or LGT_FAIL. */
int lgt_handshake(lg_ctx_t *x, lg_conn_t *c);

/* recv(2) and send(2) over c->ssl: bytes, 0 at the end of the stream (recv), or -1 with errno
 * (EAGAIN when TLS needs the socket to be readable or writable first). */
ssize_t lgt_recv(lg_conn_t *c, void *buf, size_t n);
ssize_t lgt_send(lg_conn_t *c, const void *buf, size_t n);

/* Frees c's TLS session (no close_notify: the connections end with a RST anyway). */
void lgt_close(lg_conn_t *c);

#endif
