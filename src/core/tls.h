/* tls.h - TLS (OpenSSL 3) for the connections of a listener: the server contexts built from
 * certificate files, and the session each accepted connection runs.
 *
 * A tls_ctx_t belongs to one listener kind (https, mqtts). It holds the options and the current
 * "generation": the SSL_CTX made from the certificate and key files (plus one SSL_CTX per
 * certificate of the SNI directory). tls_ctx_reload() builds a new generation from the same
 * files and makes it current: connections accepted from then on use it, open ones keep the one
 * they started with (each holds a reference), so nothing open is dropped.
 *
 * A TLS connection is an ordinary conn_t with c->tls set by tls_conn_start() right after
 * conn_init(). conn.c drives it: the handshake runs on the loop (non-blocking, SSL_do_handshake on
 * readiness) under its own deadline (tls_handshake_timeout, on c->timer; the protocol's timer is
 * put back when the handshake is done); afterwards reads go through SSL_read and the write queue
 * is fed to SSL_write, still encode-once: the queued blocks are the shared plaintext frames, and
 * each connection encrypts them into its own records (small blocks are gathered into one record
 * per flush, a large one is written from where it lies). When the kernel took over the record
 * layer (kernel TLS, SSL_OP_ENABLE_KTLS), the queue is written with writev as for plain
 * connections. OpenSSL's buffers are released while a connection is idle
 * (SSL_MODE_RELEASE_BUFFERS). Handshakes are counted by result, failures by class, and each
 * class is logged once per listener with the peer address, never with key material. */
#ifndef HERALD_TLS_H
#define HERALD_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "conn.h"

typedef struct tls_ctx tls_ctx_t;
typedef struct tls_conn tls_conn_t;

typedef enum { TLS_CLIENT_CERT_NONE = 0, TLS_CLIENT_CERT_OPTIONAL, TLS_CLIENT_CERT_REQUIRED } tls_client_cert_t;

/* Failure classes (herald_tls_handshake_failures_total{reason}). */
enum {
    TLS_FAIL_NOT_TLS = 0, /* the peer does not speak TLS (plain HTTP or MQTT on the TLS port) */
    TLS_FAIL_VERSION,     /* no common protocol version (TLS 1.0/1.1, or 1.2 under tls_min_version = 1.3) */
    TLS_FAIL_CIPHER,      /* no common cipher suite, group or signature algorithm */
    TLS_FAIL_CLIENT_CERT, /* client certificate missing (required) or not verified by tls_ca */
    TLS_FAIL_REFUSED,     /* the peer refused our certificate (an alert: unknown CA, bad certificate) */
    TLS_FAIL_EOF,         /* the peer closed or reset the connection during the handshake */
    TLS_FAIL_OTHER,
    TLS_FAIL_MAX
};

typedef struct {
    const char *name;        /* "https" or "mqtts": the metrics label and log prefix */
    const char *cert;        /* PEM certificate chain file (leaf first) */
    const char *key;         /* PEM private key file */
    const char *ca;          /* PEM CA file for client certificates ("" or NULL: none asked) */
    tls_client_cert_t client_cert; /* with ca: OPTIONAL asks, REQUIRED refuses a handshake without one */
    const char *sni_dir;     /* directory of NAME.crt + NAME.key pairs served by SNI ("" or NULL: none) */
    const char *alpn;        /* the one ALPN protocol served ("http/1.1", "mqtt") */
    const char *ciphers;     /* TLS 1.2 cipher list ("" or NULL: the built-in modern policy) */
    int min_version;         /* 12 or 13 */
    uint32_t handshake_timeout_ms;
    bool ktls;               /* ask OpenSSL for kernel TLS (SSL_OP_ENABLE_KTLS) */
    const char *plain_reply; /* written as is to a peer that sends plain HTTP instead of a ClientHello
                                (https: a 400 that says so), or NULL */
} tls_opts_t;

typedef struct {
    uint64_t ok, failed, timeout; /* handshakes by result */
    uint64_t fail[TLS_FAIL_MAX];  /* failures by class */
    uint64_t ktls_tx;             /* connections whose records the kernel writes (kernel TLS) */
    uint64_t reloads, reload_failures;
    uint32_t sni_certs;           /* certificates served by SNI in the current generation */
} tls_stats_t;

/* Builds a context from o (the strings are copied): loads and checks the certificate chain, the
 * key (and that it matches the certificate), the CA file, the SNI directory. Returns 0 and *out,
 * or HR_EINVAL with one line in err naming the key and the file ("tls_key /etc/k.pem: does not
 * match tls_cert /etc/c.pem"). */
int tls_ctx_new(tls_ctx_t **out, const tls_opts_t *o, char *err, size_t cap);

/* Re-reads the files and makes the new certificates current for connections accepted from now
 * on; open connections keep theirs. On failure the current ones stay and err says why. 0 or
 * HR_EINVAL. */
int tls_ctx_reload(tls_ctx_t *t, char *err, size_t cap);

/* Frees t. Connections still open keep their generation alive until they close; t itself must
 * outlive them (its counters are updated when they close). NULL is fine. */
void tls_ctx_free(tls_ctx_t *t);

const tls_stats_t *tls_ctx_stats(const tls_ctx_t *t);
const char *tls_ctx_name(const tls_ctx_t *t);

/* Appends the herald_tls_* metric families for the given contexts (NULL entries skipped) to
 * out[0..cap); returns the length written (whole lines only). */
size_t tls_metrics(tls_ctx_t *const *ctxs, size_t n, char *out, size_t cap);

/* Whether the kernel offers TLS offload (the "tls" TCP ULP), probed once; why explains a no. */
bool tls_ktls_available(const char **why);

/* Makes c, just initialized around an accepted socket, a TLS server connection of t: the
 * handshake starts with the first readable event. The deadline replaces c->timer until the
 * handshake is done, then the timer the protocol had armed (from accept) is put back. 0, or
 * HR_ENOMEM (the caller closes c). */
int tls_conn_start(conn_t *c, tls_ctx_t *t);

/* The subject CN of the client certificate that c's peer presented and tls_ca verified,
 * NUL-terminated in out. Returns its length, or -1 when there is none (no TLS, no certificate,
 * not verified, no CN, or a CN that is empty, holds NUL or control bytes, or does not fit). */
ssize_t tls_conn_peer_cn(const conn_t *c, char *out, size_t cap);

/* The ALPN protocol negotiated on c ("" when none or not TLS). */
const char *tls_conn_alpn(const conn_t *c, char *out, size_t cap);

/* ---- used by conn.c only ---- */

bool tls__handshaking(const tls_conn_t *t);
/* Advances the handshake. 0: done (c reads and writes normally from now on); HR_EAGAIN: waiting
 * for the socket (tls__interest says which way); < 0: failed (counted and logged; close c). */
int tls__handshake(conn_t *c);
/* The handshake deadline passed: counts it; the caller closes c. */
void tls__handshake_timeout(conn_t *c);
/* Loop interest of c while TLS needs the socket in a direction the protocol did not ask for. */
uint32_t tls__interest(const tls_conn_t *t, uint32_t ev);
/* SSL_read as read(2): > 0 bytes, 0 at the end of the stream, -1 with errno EAGAIN or EIO. */
ssize_t tls__read(tls_conn_t *t, char *buf, size_t n);
/* Decrypted input is waiting inside OpenSSL (the socket may be empty: read again without
 * waiting for readiness). */
bool tls__pending(const tls_conn_t *t);
/* SSL_read wanted to write (a key update): read again when the socket is writable. */
bool tls__read_wants_write(const tls_conn_t *t);
/* SSL_write wanted to read: flush again when the socket is readable. */
bool tls__write_wants_read(const tls_conn_t *t);
/* Writes the queue as records, as wq_flush does (bytes written, or HR_EIO). */
ssize_t tls__flush(tls_conn_t *t, wq_t *q, int fd, bool *drained);
/* Sends close_notify when the session is healthy (clean = a normal close), then frees it. */
void tls__free(tls_conn_t *t, bool clean);

#endif
