/* test_tls.c - src/core/tls.c through its header and a real conn_t on a loop: contexts refused
 * with one line naming the key and the file, a handshake and an echo both ways (a 300 KB
 * answer written through a small socket buffer: SSL_write retried with the same bytes), the
 * handshake deadline, and a reload under an open connection. The certificates are made in
 * process (P-256, self-signed) and written to a temporary directory. */
#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "../../src/core/err.h"
#include "../../src/core/loop.h"
#include "../../src/core/tls.h"
#include "unit.h"

static char dir[64];

/* Writes DIR/name.crt and DIR/name.key: a self-signed certificate for CN=cn. */
static void make_cert(const char *name, const char *cn)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    ASN1_INTEGER_set(X509_get_serialNumber(x), (long)(random() & 0x7fffffff));
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, k);
    X509_NAME *nm = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, nm);
    X509_sign(x, k, EVP_sha256());
    char path[128];
    snprintf(path, sizeof(path), "%s/%s.crt", dir, name);
    FILE *f = fopen(path, "w");
    PEM_write_X509(f, x);
    fclose(f);
    snprintf(path, sizeof(path), "%s/%s.key", dir, name);
    f = fopen(path, "w");
    PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(k);
}

static const char *p(const char *file)
{
    static char buf[4][128];
    static int i;
    i = (i + 1) % 4;
    snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, file);
    return buf[i];
}

static tls_opts_t opts(const char *cert, const char *key)
{
    return (tls_opts_t){.name = "https", .cert = cert, .key = key, .alpn = "http/1.1", .min_version = 12,
                        .handshake_timeout_ms = 10000};
}

TEST(contexts_refused_with_the_key_and_the_file)
{
    tls_ctx_t *t;
    char err[600];
    tls_opts_t o = opts(p("missing.crt"), p("a.key"));
    CHECK_EQ(tls_ctx_new(&t, &o, err, sizeof(err)), HR_EINVAL);
    CHECK(strstr(err, "tls_cert ") && strstr(err, "missing.crt: No such file or directory"));
    o = opts(p("a.crt"), p("b.key"));
    CHECK_EQ(tls_ctx_new(&t, &o, err, sizeof(err)), HR_EINVAL);
    CHECK(strstr(err, "b.key: does not match tls_cert ") && strstr(err, "a.crt"));
    o = opts(p("a.key"), p("a.key"));
    CHECK_EQ(tls_ctx_new(&t, &o, err, sizeof(err)), HR_EINVAL);
    CHECK(strstr(err, "a.key: not a PEM certificate chain") != NULL);
    o = opts("", "");
    CHECK_EQ(tls_ctx_new(&t, &o, err, sizeof(err)), HR_EINVAL);
    CHECK(strstr(err, "https needs tls_cert and tls_key") != NULL);
    o = opts(p("a.crt"), p("a.key"));
    o.client_cert = TLS_CLIENT_CERT_REQUIRED;
    CHECK_EQ(tls_ctx_new(&t, &o, err, sizeof(err)), HR_EINVAL);
    CHECK(strstr(err, "needs tls_ca") != NULL);
    o.client_cert = TLS_CLIENT_CERT_NONE;
    o.ciphers = "NOT-A-CIPHER";
    CHECK_EQ(tls_ctx_new(&t, &o, err, sizeof(err)), HR_EINVAL);
    CHECK(strstr(err, "tls_ciphers") != NULL);
    o.ciphers = NULL;
    CHECK_EQ(tls_ctx_new(&t, &o, err, sizeof(err)), 0);
    tls_ctx_free(t);
}

/* ---- a server conn_t that echoes what it reads ---- */

typedef struct {
    conn_t c;
    bool closed;
    int reason;
} echo_t;

static void echo_read(conn_t *c)
{
    conn_send_copy(c, c->rbuf, c->rlen);
    conn_consume(c, c->rlen);
}
static void echo_close(conn_t *c) { ((echo_t *)c)->closed = true; }
static void echo_timer(conn_t *c) { (void)c; }
static const conn_ops_t echo_ops = {.on_read = echo_read, .on_close = echo_close, .on_timer = echo_timer};

typedef struct {
    SSL_CTX *ctx;
    SSL *ssl;
    int fd;
} client_t;

/* A server connection on sv[0] under t and a client SSL on sv[1]; the handshake is driven
 * through the loop. Returns true when both ends finished it. */
static bool pair(loop_t *loop, tls_ctx_t *t, echo_t *e, client_t *cl, bool handshake)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) < 0) return false;
    int small = 8192; /* a small send buffer: large answers must wait for the socket */
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    memset(e, 0, sizeof(*e));
    if (conn_init(&e->c, loop, sv[0], &echo_ops, 1 << 20, 1 << 30) < 0 || tls_conn_start(&e->c, t) < 0) return false;
    cl->fd = sv[1];
    cl->ctx = SSL_CTX_new(TLS_client_method());
    cl->ssl = SSL_new(cl->ctx);
    SSL_set_fd(cl->ssl, sv[1]);
    SSL_set_connect_state(cl->ssl);
    if (!handshake) return true;
    for (int i = 0; i < 200; i++) {
        int r = SSL_do_handshake(cl->ssl);
        loop_run_once(loop, 1);
        if (r == 1 && !tls__handshaking(e->c.tls)) return true;
    }
    return false;
}

static void client_free(client_t *cl)
{
    SSL_free(cl->ssl);
    SSL_CTX_free(cl->ctx);
    close(cl->fd);
}

/* Sends n bytes and reads the echo back while the loop runs. Returns the bytes that matched. */
static size_t echo_round(loop_t *loop, client_t *cl, const char *out, size_t n)
{
    size_t sent = 0, got = 0, same = 0;
    char *in = malloc(n);
    for (int i = 0; i < 100000 && got < n; i++) {
        if (sent < n) {
            int w = SSL_write(cl->ssl, out + sent, (int)(n - sent > 16384 ? 16384 : n - sent));
            if (w > 0) sent += (size_t)w;
        }
        int r = SSL_read(cl->ssl, in + got, (int)(n - got));
        if (r > 0) got += (size_t)r;
        loop_run_once(loop, 0);
    }
    for (size_t i = 0; i < got; i++) same += in[i] == out[i];
    free(in);
    return same;
}

TEST(handshake_echo_and_close)
{
    loop_t loop;
    CHECK_EQ(loop_init(&loop), 0);
    tls_ctx_t *t;
    char err[600];
    tls_opts_t o = opts(p("a.crt"), p("a.key"));
    CHECK_EQ(tls_ctx_new(&t, &o, err, sizeof(err)), 0);
    echo_t e;
    client_t cl;
    CHECK(pair(&loop, t, &e, &cl, true));
    CHECK_EQ(tls_ctx_stats(t)->ok, 1);
    CHECK_EQ(echo_round(&loop, &cl, "ping", 4), 4);
    size_t n = 300000;
    char *big = malloc(n);
    for (size_t i = 0; i < n; i++) big[i] = (char)('a' + i * 7 % 26);
    CHECK_EQ(echo_round(&loop, &cl, big, n), n);
    free(big);
    char alpn[32];
    CHECK(strcmp(tls_conn_alpn(&e.c, alpn, sizeof(alpn)), "") == 0); /* the client offered none */
    CHECK_EQ(tls_conn_peer_cn(&e.c, alpn, sizeof(alpn)), -1);         /* no client certificate */
    conn_close(&e.c, 0);                                              /* with close_notify */
    loop_run_once(&loop, 0);
    CHECK(e.closed);
    char b[8];
    CHECK_EQ(SSL_read(cl.ssl, b, sizeof(b)), 0);
    CHECK_EQ(SSL_get_error(cl.ssl, 0), SSL_ERROR_ZERO_RETURN);
    client_free(&cl);
    tls_ctx_free(t);
    CHECK_EQ(loop_close(&loop), 0);
}

TEST(handshake_deadline)
{
    loop_t loop;
    CHECK_EQ(loop_init(&loop), 0);
    tls_ctx_t *t;
    char err[600];
    tls_opts_t o = opts(p("a.crt"), p("a.key"));
    o.handshake_timeout_ms = 40;
    CHECK_EQ(tls_ctx_new(&t, &o, err, sizeof(err)), 0);
    echo_t e;
    client_t cl;
    CHECK(pair(&loop, t, &e, &cl, false)); /* the client never starts */
    uint64_t t0 = loop_mono_ms();
    while (!e.closed && loop_mono_ms() - t0 < 2000) loop_run_once(&loop, 20);
    CHECK(e.closed);
    CHECK(loop_mono_ms() - t0 >= 30);
    CHECK_EQ(tls_ctx_stats(t)->timeout, 1);
    CHECK_EQ(tls_ctx_stats(t)->ok, 0);
    client_free(&cl);
    tls_ctx_free(t);
    CHECK_EQ(loop_close(&loop), 0);
}

static int fingerprint(SSL *ssl, unsigned char md[32])
{
    unsigned int n = 0;
    X509 *x = SSL_get0_peer_certificate(ssl);
    return x && X509_digest(x, EVP_sha256(), md, &n) ? (int)n : 0;
}

TEST(reload_keeps_open_connections)
{
    loop_t loop;
    CHECK_EQ(loop_init(&loop), 0);
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "cp %s/a.crt %s/live.crt && cp %s/a.key %s/live.key", dir, dir, dir, dir);
    CHECK_EQ(system(cmd), 0);
    tls_ctx_t *t;
    char err[600];
    tls_opts_t o = opts(p("live.crt"), p("live.key"));
    CHECK_EQ(tls_ctx_new(&t, &o, err, sizeof(err)), 0);
    echo_t e1, e2;
    client_t c1, c2;
    CHECK(pair(&loop, t, &e1, &c1, true));
    snprintf(cmd, sizeof(cmd), "cp %s/b.crt %s/live.crt && cp %s/b.key %s/live.key", dir, dir, dir, dir);
    CHECK_EQ(system(cmd), 0);
    CHECK_EQ(tls_ctx_reload(t, err, sizeof(err)), 0);
    CHECK(pair(&loop, t, &e2, &c2, true));
    unsigned char m1[32], m2[32];
    CHECK_EQ(fingerprint(c1.ssl, m1), 32);
    CHECK_EQ(fingerprint(c2.ssl, m2), 32);
    CHECK(memcmp(m1, m2, 32) != 0);                      /* the new connection has the new certificate */
    CHECK_EQ(echo_round(&loop, &c1, "still here", 10), 10); /* the old one goes on */
    snprintf(cmd, sizeof(cmd), "echo broken > %s/live.key", dir);
    CHECK_EQ(system(cmd), 0);
    CHECK_EQ(tls_ctx_reload(t, err, sizeof(err)), HR_EINVAL); /* kept: b */
    CHECK(strstr(err, "tls_key ") != NULL);
    CHECK_EQ(tls_ctx_stats(t)->reloads, 1);
    CHECK_EQ(tls_ctx_stats(t)->reload_failures, 1);
    conn_close(&e1.c, 0); /* the first generation goes with its last connection */
    conn_close(&e2.c, 0);
    loop_run_once(&loop, 0);
    client_free(&c1);
    client_free(&c2);
    char out[4096];
    tls_ctx_t *ctxs[2] = {t, NULL};
    size_t n = tls_metrics(ctxs, 2, out, sizeof(out));
    out[n] = 0;
    CHECK(strstr(out, "herald_tls_handshakes_total{listener=\"https\",result=\"ok\"} 2\n") != NULL);
    CHECK(strstr(out, "herald_tls_reloads_total{listener=\"https\",result=\"failed\"} 1\n") != NULL);
    CHECK(tls_metrics(ctxs, 2, out, 100) <= 100); /* cut at a line end */
    tls_ctx_free(t);
    CHECK_EQ(loop_close(&loop), 0);
}

int main(void)
{
    snprintf(dir, sizeof(dir), "/tmp/herald-test-tls-XXXXXX");
    if (!mkdtemp(dir)) return 1;
    make_cert("a", "localhost");
    make_cert("b", "localhost");
    RUN(contexts_refused_with_the_key_and_the_file);
    RUN(handshake_echo_and_close);
    RUN(handshake_deadline);
    RUN(reload_keeps_open_connections);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0) return 1;
    return UNIT_DONE();
}
