/* tls.c - server TLS contexts and sessions; see tls.h.
 *
 * Generations. A tls_ctx_t points at its current generation (tls_gen_t): the SSL_CTX of the
 * main certificate and those of the SNI directory. Every session holds a reference to the
 * generation it was made from, because its SSL_CTX's callbacks (SNI) look at that generation;
 * a reload swaps the pointer and drops the context's own reference, and the old generation is
 * freed when its last session closes.
 *
 * Writes. SSL_write is called in partial-write mode (one record per call) with a moving buffer
 * allowed: a block of the write queue at least TLS_DIRECT_MIN long is encrypted from where it
 * lies; smaller ones are first gathered into a 16 KiB buffer on the stack (one record, one
 * send). A write that would block must be retried with the same bytes: the queue is unchanged
 * until SSL_write reports success, and the gathering is deterministic, so the retry presents
 * the same bytes again, possibly followed by more (OpenSSL accepts a longer retry). */
#include "tls.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "err.h"
#include "log.h"

#define TLS_STAGE 16384      /* one full record of plaintext */
#define TLS_DIRECT_MIN 4096  /* a block this long is encrypted in place, not gathered */
#define TLS_MAX_SNI 1024     /* certificates in the SNI directory */
#define TLS_PATH 512

/* The modern default: ECDHE with AEAD ciphers only (TLS 1.2); TLS 1.3 uses OpenSSL's suites
 * (AES-GCM and ChaCha20-Poly1305). Mozilla's "intermediate" profile without DHE. */
#define TLS_DEFAULT_CIPHERS                                                                                         \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"                    \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define TLS_GROUPS "X25519:P-256:P-384"

typedef struct tls_gen {
    uint32_t refs;
    SSL_CTX *ctx;
    uint32_t nsni;
    SSL_CTX **sni; /* served when the client's server name matches their certificate */
} tls_gen_t;

struct tls_ctx {
    char name[16];
    char cert[TLS_PATH], key[TLS_PATH], ca[TLS_PATH], sni_dir[TLS_PATH], ciphers[512];
    char plain_reply[256];
    unsigned char alpn[32]; /* wire format: length-prefixed */
    size_t alpn_len;
    tls_client_cert_t client_cert;
    bool ktls;
    int min_version;
    uint32_t handshake_timeout_ms;
    tls_gen_t *cur;
    tls_stats_t stats;
    bool logged[TLS_FAIL_MAX + 1]; /* failure classes already logged (the last: timeouts) */
};

enum { TLS_HANDSHAKE = 0, TLS_OPEN };

struct tls_conn {
    SSL *ssl;
    tls_gen_t *gen;
    tls_ctx_t *ctx;
    uint64_t proto_deadline; /* the protocol's timer while the handshake runs (0: it had none) */
    uint8_t state;
    bool hs_want_write;      /* the handshake waits for the socket to be writable */
    bool read_wants_write, write_wants_read;
    bool ktls_tx;            /* the kernel writes the records: writev the plaintext */
    bool fatal;              /* an error: no close_notify */
};

static const char *const tls_fail_names[TLS_FAIL_MAX] = {"not_tls", "version", "cipher", "client_cert",
                                                         "refused", "eof", "other"};
static const char *const tls_fail_text[TLS_FAIL_MAX] = {
    "the peer does not speak TLS (plain text sent to a TLS port?)",
    "no common TLS version (herald speaks TLS 1.2 and 1.3, see tls_min_version)",
    "no common cipher suite, group or signature algorithm",
    "no valid client certificate (tls_ca, tls_require_client_cert)",
    "the peer refused our certificate (an untrusted CA, a wrong name, expired?)",
    "the peer closed the connection during the handshake",
    "handshake error",
};

/* ---- building contexts ---- */

/* An encrypted key would make OpenSSL prompt on the terminal: refuse it instead. */
static int tls__no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return 0;
}

/* "KEY PATH: why" from errno (the file cannot be read) or the OpenSSL error queue. */
static int tls__file_err(char *err, size_t cap, const char *key, const char *path, const char *what)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, cap, "%s %s: %s", key, path, strerror(errno));
    } else {
        fclose(f);
        unsigned long e = ERR_peek_last_error();
        const char *r = e ? ERR_reason_error_string(e) : NULL;
        snprintf(err, cap, "%s %s: %s%s%s%s", key, path, what, r ? " (" : "", r ? r : "", r ? ")" : "");
    }
    ERR_clear_error();
    return HR_EINVAL;
}

static int tls__alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                            unsigned int inlen, void *arg)
{
    (void)ssl;
    tls_ctx_t *t = arg;
    unsigned char *sel;
    if (SSL_select_next_proto(&sel, outlen, t->alpn, (unsigned)t->alpn_len, in, inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK; /* no common protocol: go on without ALPN */
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

/* One SSL_CTX with every option of t and the given certificate and key; what = the config keys
 * named in errors ("tls_cert"/"tls_key", or "tls_sni_certs" for a pair of the directory). */
static SSL_CTX *tls__build(tls_ctx_t *t, const char *cert, const char *key, const char *cert_key,
                           const char *key_key, char *err, size_t cap)
{
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        snprintf(err, cap, "%s: cannot create a TLS context", t->name);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, t->min_version == 13 ? TLS1_3_VERSION : TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_COMPRESSION |
                                 (t->ktls ? SSL_OP_ENABLE_KTLS : 0));
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* resumption by tickets only (stateless): no session cache growing with the clients */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(ctx, 1);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)t->name, (unsigned)strlen(t->name));
    SSL_CTX_set_default_passwd_cb(ctx, tls__no_passphrase);
    if (!SSL_CTX_set_cipher_list(ctx, t->ciphers[0] ? t->ciphers : TLS_DEFAULT_CIPHERS)) {
        snprintf(err, cap, "tls_ciphers: no usable cipher in '%s'", t->ciphers);
        goto fail;
    }
    if (!SSL_CTX_set1_groups_list(ctx, TLS_GROUPS)) {
        snprintf(err, cap, "%s: cannot set the key exchange groups", t->name);
        goto fail;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        tls__file_err(err, cap, cert_key, cert, "not a PEM certificate chain");
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        unsigned long e = ERR_peek_last_error();
        if (ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH) {
            snprintf(err, cap, "%s %s: does not match %s %s", key_key, key, cert_key, cert);
            ERR_clear_error();
        } else {
            tls__file_err(err, cap, key_key, key, "not a PEM private key (or an encrypted one)");
        }
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, cap, "%s %s: does not match %s %s", key_key, key, cert_key, cert);
        goto fail;
    }
    if (t->ca[0] && t->client_cert != TLS_CLIENT_CERT_NONE) {
        if (SSL_CTX_load_verify_locations(ctx, t->ca, NULL) != 1) {
            tls__file_err(err, cap, "tls_ca", t->ca, "no PEM CA certificate");
            goto fail;
        }
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(t->ca);
        if (names) SSL_CTX_set_client_CA_list(ctx, names); /* the CAs named in CertificateRequest */
        SSL_CTX_set_verify(ctx,
                           SSL_VERIFY_PEER | (t->client_cert == TLS_CLIENT_CERT_REQUIRED ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
                           NULL);
    }
    if (t->alpn_len) SSL_CTX_set_alpn_select_cb(ctx, tls__alpn_select, t);
    ERR_clear_error();
    return ctx;
fail:
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return NULL;
}

static void tls__gen_unref(tls_gen_t *g)
{
    if (!g || --g->refs) return;
    for (uint32_t i = 0; i < g->nsni; i++) SSL_CTX_free(g->sni[i]);
    free(g->sni);
    SSL_CTX_free(g->ctx);
    free(g);
}

/* SNI: the first certificate of the directory whose names (X509_check_host: SAN DNS names,
 * wildcards) match the name the client asked for; else the main certificate. */
static int tls__servername(SSL *ssl, int *alert, void *arg)
{
    (void)alert;
    tls_gen_t *g = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (!name) return SSL_TLSEXT_ERR_NOACK;
    for (uint32_t i = 0; i < g->nsni; i++) {
        if (X509_check_host(SSL_CTX_get0_certificate(g->sni[i]), name, 0, 0, NULL) == 1) {
            SSL_set_SSL_CTX(ssl, g->sni[i]);
            return SSL_TLSEXT_ERR_OK;
        }
    }
    return SSL_TLSEXT_ERR_NOACK;
}

static int tls__cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The SNI directory: every NAME.crt with a NAME.key beside it, in name order. */
static int tls__load_sni(tls_ctx_t *t, tls_gen_t *g, char *err, size_t cap)
{
    DIR *d = opendir(t->sni_dir);
    if (!d) {
        snprintf(err, cap, "tls_sni_certs %s: %s", t->sni_dir, strerror(errno));
        return HR_EINVAL;
    }
    char *names[TLS_MAX_SNI];
    uint32_t n = 0;
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len < 5 || de->d_name[0] == '.' || strcmp(de->d_name + len - 4, ".crt") != 0) continue;
        if (n == TLS_MAX_SNI) {
            snprintf(err, cap, "tls_sni_certs %s: more than %d certificates", t->sni_dir, TLS_MAX_SNI);
            rc = HR_EINVAL;
            break;
        }
        if (!(names[n] = strndup(de->d_name, len - 4))) {
            snprintf(err, cap, "tls_sni_certs: out of memory");
            rc = HR_EINVAL;
            break;
        }
        n++;
    }
    closedir(d);
    qsort(names, n, sizeof(names[0]), tls__cmp_names);
    if (rc == 0 && n && !(g->sni = calloc(n, sizeof(*g->sni)))) {
        snprintf(err, cap, "tls_sni_certs: out of memory");
        rc = HR_EINVAL;
    }
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        char cert[TLS_PATH + 300], key[TLS_PATH + 300], sub[400];
        snprintf(cert, sizeof(cert), "%s/%s.crt", t->sni_dir, names[i]);
        snprintf(key, sizeof(key), "%s/%s.key", t->sni_dir, names[i]);
        SSL_CTX *ctx = tls__build(t, cert, key, "tls_sni_certs", "tls_sni_certs", sub, sizeof(sub));
        if (!ctx) {
            snprintf(err, cap, "%s", sub);
            rc = HR_EINVAL;
            break;
        }
        g->sni[g->nsni++] = ctx;
    }
    for (uint32_t i = 0; i < n; i++) free(names[i]);
    return rc;
}

static tls_gen_t *tls__gen_new(tls_ctx_t *t, char *err, size_t cap)
{
    tls_gen_t *g = calloc(1, sizeof(*g));
    if (!g) {
        snprintf(err, cap, "%s: out of memory", t->name);
        return NULL;
    }
    g->refs = 1;
    if (!(g->ctx = tls__build(t, t->cert, t->key, "tls_cert", "tls_key", err, cap)) ||
        (t->sni_dir[0] && tls__load_sni(t, g, err, cap) < 0)) {
        tls__gen_unref(g);
        return NULL;
    }
    if (g->nsni) {
        SSL_CTX_set_tlsext_servername_callback(g->ctx, tls__servername);
        SSL_CTX_set_tlsext_servername_arg(g->ctx, g);
    }
    return g;
}

static bool tls__copy(char *dst, size_t cap, const char *src)
{
    if (!src) src = "";
    if (strlen(src) >= cap) return false;
    strcpy(dst, src);
    return true;
}

int tls_ctx_new(tls_ctx_t **out, const tls_opts_t *o, char *err, size_t cap)
{
    *out = NULL;
    tls_ctx_t *t = calloc(1, sizeof(*t));
    if (!t) {
        snprintf(err, cap, "%s: out of memory", o->name);
        return HR_EINVAL;
    }
    size_t an = o->alpn ? strlen(o->alpn) : 0;
    if (!tls__copy(t->name, sizeof(t->name), o->name) || !tls__copy(t->cert, sizeof(t->cert), o->cert) ||
        !tls__copy(t->key, sizeof(t->key), o->key) || !tls__copy(t->ca, sizeof(t->ca), o->ca) ||
        !tls__copy(t->sni_dir, sizeof(t->sni_dir), o->sni_dir) ||
        !tls__copy(t->ciphers, sizeof(t->ciphers), o->ciphers) ||
        !tls__copy(t->plain_reply, sizeof(t->plain_reply), o->plain_reply) || an >= sizeof(t->alpn) || an > 255) {
        snprintf(err, cap, "%s: a TLS option is too long", o->name);
        free(t);
        return HR_EINVAL;
    }
    if (!t->cert[0] || !t->key[0]) {
        snprintf(err, cap, "%s needs tls_cert and tls_key (PEM files)", o->name);
        free(t);
        return HR_EINVAL;
    }
    if (o->client_cert != TLS_CLIENT_CERT_NONE && !t->ca[0]) {
        snprintf(err, cap, "tls_require_client_cert needs tls_ca (the CA file that signs client certificates)");
        free(t);
        return HR_EINVAL;
    }
    if (an) {
        t->alpn[0] = (unsigned char)an;
        memcpy(t->alpn + 1, o->alpn, an);
        t->alpn_len = an + 1;
    }
    t->client_cert = o->client_cert;
    t->ktls = o->ktls;
    t->min_version = o->min_version == 13 ? 13 : 12;
    t->handshake_timeout_ms = o->handshake_timeout_ms ? o->handshake_timeout_ms : 10000;
    if (!(t->cur = tls__gen_new(t, err, cap))) {
        free(t);
        return HR_EINVAL;
    }
    t->stats.sni_certs = t->cur->nsni;
    *out = t;
    return 0;
}

int tls_ctx_reload(tls_ctx_t *t, char *err, size_t cap)
{
    tls_gen_t *g = tls__gen_new(t, err, cap);
    if (!g) {
        t->stats.reload_failures++;
        return HR_EINVAL;
    }
    tls__gen_unref(t->cur);
    t->cur = g;
    t->stats.reloads++;
    t->stats.sni_certs = g->nsni;
    return 0;
}

void tls_ctx_free(tls_ctx_t *t)
{
    if (!t) return;
    tls__gen_unref(t->cur);
    free(t);
}

const tls_stats_t *tls_ctx_stats(const tls_ctx_t *t) { return &t->stats; }
const char *tls_ctx_name(const tls_ctx_t *t) { return t->name; }

bool tls_ktls_available(const char **why)
{
    /* an unconnected TCP socket: ENOTCONN when the "tls" upper-layer protocol exists, ENOENT when
     * the kernel has none (CONFIG_TLS off, or the tls module not loaded) */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *why = "no socket";
        return false;
    }
    int rc = setsockopt(fd, IPPROTO_TCP, TCP_ULP, "tls", sizeof("tls"));
    int e = errno;
    close(fd);
    if (rc == 0 || e == ENOTCONN) {
        *why = "the kernel has the tls module";
        return true;
    }
    *why = e == ENOENT ? "the kernel has no TLS offload (CONFIG_TLS off or the tls module not loaded)"
                       : "the tls socket option is refused";
    return false;
}

/* ---- sessions ---- */

int tls_conn_start(conn_t *c, tls_ctx_t *t)
{
    tls_conn_t *s = calloc(1, sizeof(*s));
    if (!s) return HR_ENOMEM;
    if (!(s->ssl = SSL_new(t->cur->ctx)) || SSL_set_fd(s->ssl, c->w.fd) != 1) {
        SSL_free(s->ssl);
        free(s);
        ERR_clear_error();
        return HR_ENOMEM;
    }
    SSL_set_accept_state(s->ssl);
    s->gen = t->cur;
    s->gen->refs++;
    s->ctx = t;
    if (tw_armed(&c->timer)) s->proto_deadline = c->timer.deadline;
    loop_timer(c->loop, &c->timer, t->handshake_timeout_ms);
    c->tls = s;
    return 0;
}

bool tls__handshaking(const tls_conn_t *t) { return t->state == TLS_HANDSHAKE; }

/* The class of a failed handshake, from SSL_get_error's answer and the error queue. */
static int tls__classify(int e, unsigned long err)
{
    if (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN) return TLS_FAIL_EOF;
    int r = ERR_GET_REASON(err);
    if (r >= SSL_AD_REASON_OFFSET) { /* an alert the peer sent */
        switch (r - SSL_AD_REASON_OFFSET) {
        case SSL_AD_BAD_CERTIFICATE:
        case SSL_AD_UNSUPPORTED_CERTIFICATE:
        case SSL_AD_CERTIFICATE_REVOKED:
        case SSL_AD_CERTIFICATE_EXPIRED:
        case SSL_AD_CERTIFICATE_UNKNOWN:
        case SSL_AD_UNKNOWN_CA:
        case SSL_AD_ACCESS_DENIED: return TLS_FAIL_REFUSED;
        case SSL_AD_PROTOCOL_VERSION: return TLS_FAIL_VERSION;
        case SSL_AD_HANDSHAKE_FAILURE:
        case SSL_AD_INSUFFICIENT_SECURITY: return TLS_FAIL_CIPHER;
        default: return TLS_FAIL_OTHER;
        }
    }
    switch (r) {
    case SSL_R_HTTP_REQUEST:
    case SSL_R_HTTPS_PROXY_REQUEST:
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_PACKET_LENGTH_TOO_LONG:
    case SSL_R_RECORD_LENGTH_MISMATCH:
    case SSL_R_UNEXPECTED_MESSAGE:
    case SSL_R_UNEXPECTED_RECORD:
    case SSL_R_LENGTH_MISMATCH: return TLS_FAIL_NOT_TLS;
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_VERSION_TOO_LOW:
    case SSL_R_VERSION_TOO_HIGH: return TLS_FAIL_VERSION;
    case SSL_R_NO_SHARED_CIPHER:
    case SSL_R_NO_SHARED_SIGNATURE_ALGORITHMS:
    case SSL_R_NO_SUITABLE_KEY_SHARE:
    case SSL_R_NO_SHARED_GROUPS:
    case SSL_R_NO_CIPHERS_AVAILABLE: return TLS_FAIL_CIPHER;
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
    case SSL_R_CERTIFICATE_VERIFY_FAILED: return TLS_FAIL_CLIENT_CERT;
    case SSL_R_UNEXPECTED_EOF_WHILE_READING: return TLS_FAIL_EOF;
    default: return TLS_FAIL_OTHER;
    }
}

/* The first failure of each class is logged, with the peer and OpenSSL's reason. */
static void tls__log_once(conn_t *c, int cls, const char *detail)
{
    tls_ctx_t *t = c->tls->ctx;
    if (t->logged[cls]) return;
    t->logged[cls] = true;
    char peer[64];
    conn_peer(c, peer, sizeof(peer));
    if (cls == TLS_FAIL_MAX)
        log_info("%s: %s: TLS handshake not done within tls_handshake_timeout (%u ms): closed (counted in "
                 "herald_tls_handshakes_total{result=\"timeout\"}, not logged again)",
                 t->name, peer, t->handshake_timeout_ms);
    else
        log_info("%s: %s: TLS handshake failed: %s%s%s%s (counted in herald_tls_handshake_failures_total{reason=\"%s\"}, "
                 "not logged again)",
                 t->name, peer, tls_fail_text[cls], detail ? " [" : "", detail ? detail : "", detail ? "]" : "",
                 tls_fail_names[cls]);
}

int tls__handshake(conn_t *c)
{
    tls_conn_t *s = c->tls;
    ERR_clear_error();
    int r = SSL_do_handshake(s->ssl);
    if (r == 1) {
        s->state = TLS_OPEN;
        s->hs_want_write = false;
        s->ctx->stats.ok++;
        if (s->proto_deadline) tw_arm(&c->loop->wheel, &c->timer, s->proto_deadline);
        else tw_stop(&c->loop->wheel, &c->timer);
        if (BIO_get_ktls_send(SSL_get_wbio(s->ssl))) {
            s->ktls_tx = true;
            s->ctx->stats.ktls_tx++;
        }
        return 0;
    }
    int e = SSL_get_error(s->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        s->hs_want_write = e == SSL_ERROR_WANT_WRITE;
        return HR_EAGAIN;
    }
    unsigned long err = ERR_peek_last_error();
    int cls = tls__classify(e, err);
    s->fatal = true;
    s->ctx->stats.failed++;
    s->ctx->stats.fail[cls]++;
    tls__log_once(c, cls, err ? ERR_reason_error_string(err) : NULL);
    if (ERR_GET_REASON(err) == SSL_R_HTTP_REQUEST && s->ctx->plain_reply[0]) { /* one best-effort write */
        ssize_t w = write(c->w.fd, s->ctx->plain_reply, strlen(s->ctx->plain_reply));
        (void)w;
    }
    ERR_clear_error();
    return cls == TLS_FAIL_EOF ? HR_EIO : HR_EPROTO;
}

void tls__handshake_timeout(conn_t *c)
{
    c->tls->ctx->stats.timeout++;
    c->tls->fatal = true; /* a half-done handshake: no close_notify */
    tls__log_once(c, TLS_FAIL_MAX, NULL);
}

uint32_t tls__interest(const tls_conn_t *t, uint32_t ev)
{
    if (t->state == TLS_HANDSHAKE) return LOOP_RDHUP | (t->hs_want_write ? LOOP_WRITE : LOOP_READ);
    if (t->read_wants_write) ev |= LOOP_WRITE;
    if (t->write_wants_read) ev |= LOOP_READ;
    return ev;
}

ssize_t tls__read(tls_conn_t *t, char *buf, size_t n)
{
    ERR_clear_error();
    t->read_wants_write = false;
    int r = SSL_read(t->ssl, buf, n > INT_MAX ? INT_MAX : (int)n);
    if (r > 0) return r;
    switch (SSL_get_error(t->ssl, r)) {
    case SSL_ERROR_WANT_WRITE: t->read_wants_write = true; __attribute__((fallthrough));
    case SSL_ERROR_WANT_READ: errno = EAGAIN; return -1;
    case SSL_ERROR_ZERO_RETURN: return 0; /* close_notify, or (IGNORE_UNEXPECTED_EOF) a plain close */
    case SSL_ERROR_SYSCALL:
        t->fatal = true;
        if (errno == 0 || errno == EAGAIN || errno == EINTR) errno = EIO;
        ERR_clear_error();
        return -1;
    default:
        t->fatal = true;
        ERR_clear_error();
        errno = EPROTO;
        return -1;
    }
}

/* SSL_pending, not SSL_has_pending: the latter also counts the raw bytes of a record not yet
 * complete, which must wait for the socket (asking again at once would spin). */
bool tls__pending(const tls_conn_t *t) { return t->state == TLS_OPEN && SSL_pending(t->ssl) > 0; }
bool tls__read_wants_write(const tls_conn_t *t) { return t->read_wants_write; }
bool tls__write_wants_read(const tls_conn_t *t) { return t->write_wants_read; }

ssize_t tls__flush(tls_conn_t *t, wq_t *q, int fd, bool *drained)
{
    if (t->ktls_tx) return wq_flush(q, fd, drained); /* the kernel encrypts: shared plaintext, writev */
    t->write_wants_read = false;
    ssize_t total = 0;
    char stage[TLS_STAGE];
    while (!wq_empty(q)) {
        struct iovec iov[WQ_IOV_MAX];
        size_t want;
        int n = wq_peek(q, iov, WQ_IOV_MAX, &want);
        const char *p = iov[0].iov_base;
        size_t len = iov[0].iov_len;
        if (n > 1 && len < TLS_DIRECT_MIN) { /* gather small blocks into one record */
            len = 0;
            for (int i = 0; i < n && len < TLS_STAGE; i++) {
                size_t k = iov[i].iov_len < TLS_STAGE - len ? iov[i].iov_len : TLS_STAGE - len;
                memcpy(stage + len, iov[i].iov_base, k);
                len += k;
            }
            p = stage;
        }
        if (len == 0) { /* empty blocks only */
            wq_advance(q, 0);
            continue;
        }
        ERR_clear_error();
        int w = SSL_write(t->ssl, p, len > INT_MAX ? INT_MAX : (int)len);
        if (w > 0) {
            wq_advance(q, (size_t)w);
            total += w;
            continue;
        }
        int e = SSL_get_error(t->ssl, w);
        if (e == SSL_ERROR_WANT_WRITE) break;
        if (e == SSL_ERROR_WANT_READ) {
            t->write_wants_read = true;
            break;
        }
        t->fatal = true;
        ERR_clear_error();
        *drained = false;
        return HR_EIO;
    }
    *drained = wq_empty(q);
    return total;
}

void tls__free(tls_conn_t *t, bool clean)
{
    if (!t) return;
    if (clean && !t->fatal && t->state == TLS_OPEN) {
        ERR_clear_error();
        SSL_shutdown(t->ssl); /* close_notify, best effort: the socket is non-blocking */
    }
    ERR_clear_error();
    SSL_free(t->ssl);
    tls__gen_unref(t->gen);
    free(t);
}

/* ---- identity ---- */

ssize_t tls_conn_peer_cn(const conn_t *c, char *out, size_t cap)
{
    if (!c->tls || c->tls->state != TLS_OPEN || cap == 0) return -1;
    SSL *ssl = c->tls->ssl;
    X509 *x = SSL_get0_peer_certificate(ssl);
    if (!x || SSL_get_verify_result(ssl) != X509_V_OK) return -1;
    X509_NAME *nm = X509_get_subject_name(x);
    int i = nm ? X509_NAME_get_index_by_NID(nm, NID_commonName, -1) : -1;
    if (i < 0) return -1;
    unsigned char *utf8 = NULL;
    int n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(nm, i)));
    ssize_t rc = -1;
    if (n > 0 && (size_t)n < cap) {
        rc = n;
        for (int k = 0; k < n; k++)
            if (utf8[k] < 0x20 || utf8[k] == 0x7f) rc = -1;
        if (rc > 0) {
            memcpy(out, utf8, (size_t)n);
            out[n] = 0;
        }
    }
    OPENSSL_free(utf8);
    return rc;
}

const char *tls_conn_alpn(const conn_t *c, char *out, size_t cap)
{
    out[0] = 0;
    if (!c->tls || cap == 0) return out;
    const unsigned char *p;
    unsigned int n;
    SSL_get0_alpn_selected(c->tls->ssl, &p, &n);
    if (p && n < cap) {
        memcpy(out, p, n);
        out[n] = 0;
    }
    return out;
}

/* ---- metrics ---- */

size_t tls_metrics(tls_ctx_t *const *ctxs, size_t n, char *out, size_t cap)
{
    size_t len = 0;
    bool any = false;
    for (size_t i = 0; i < n; i++) any |= ctxs[i] != NULL;
    if (!any || cap == 0) return 0;
#define PUT(...)                                                                                                   \
    do {                                                                                                           \
        int k_ = snprintf(out + len, cap - len, __VA_ARGS__);                                                     \
        if (k_ < 0 || (size_t)k_ >= cap - len) goto full;                                                          \
        len += (size_t)k_;                                                                                         \
    } while (0)
    PUT("# HELP herald_tls_handshakes_total TLS handshakes by listener and result.\n"
        "# TYPE herald_tls_handshakes_total counter\n");
    for (size_t i = 0; i < n; i++) {
        const tls_ctx_t *t = ctxs[i];
        if (!t) continue;
        PUT("herald_tls_handshakes_total{listener=\"%s\",result=\"ok\"} %llu\n"
            "herald_tls_handshakes_total{listener=\"%s\",result=\"failed\"} %llu\n"
            "herald_tls_handshakes_total{listener=\"%s\",result=\"timeout\"} %llu\n",
            t->name, (unsigned long long)t->stats.ok, t->name, (unsigned long long)t->stats.failed, t->name,
            (unsigned long long)t->stats.timeout);
    }
    PUT("# HELP herald_tls_handshake_failures_total Failed TLS handshakes by listener and cause.\n"
        "# TYPE herald_tls_handshake_failures_total counter\n");
    for (size_t i = 0; i < n; i++) {
        const tls_ctx_t *t = ctxs[i];
        for (int k = 0; t && k < TLS_FAIL_MAX; k++)
            PUT("herald_tls_handshake_failures_total{listener=\"%s\",reason=\"%s\"} %llu\n", t->name,
                tls_fail_names[k], (unsigned long long)t->stats.fail[k]);
    }
    PUT("# HELP herald_tls_ktls_connections_total TLS connections whose records the kernel writes (kernel TLS).\n"
        "# TYPE herald_tls_ktls_connections_total counter\n");
    for (size_t i = 0; i < n; i++)
        if (ctxs[i])
            PUT("herald_tls_ktls_connections_total{listener=\"%s\"} %llu\n", ctxs[i]->name,
                (unsigned long long)ctxs[i]->stats.ktls_tx);
    PUT("# HELP herald_tls_reloads_total Certificate reloads by listener and result.\n"
        "# TYPE herald_tls_reloads_total counter\n");
    for (size_t i = 0; i < n; i++)
        if (ctxs[i])
            PUT("herald_tls_reloads_total{listener=\"%s\",result=\"ok\"} %llu\n"
                "herald_tls_reloads_total{listener=\"%s\",result=\"failed\"} %llu\n",
                ctxs[i]->name, (unsigned long long)ctxs[i]->stats.reloads, ctxs[i]->name,
                (unsigned long long)ctxs[i]->stats.reload_failures);
#undef PUT
    return len;
full:
    while (len > 0 && out[len - 1] != '\n') len--;
    return len;
}
