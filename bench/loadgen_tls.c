/* loadgen_tls.c - TLS for `herald bench` (--tls): one OpenSSL client context, and the
 * non-blocking handshake, read and write of a connection.
 *
 * loadgen.c opens the TCP connection as usual; once it is connected, lgt_start() puts a TLS
 * session on the socket and the loop drives lgt_handshake() on every readiness event until it
 * is done, then the connection speaks its protocol (SSE, WebSocket, MQTT, HTTP publishing)
 * through lgt_recv() / lgt_send(), which behave like recv(2) / send(2) on a non-blocking
 * socket. A plain connection (c->ssl NULL) never comes here.
 *
 * Every handshake is a full one: the context keeps no client sessions, so a reconnecting
 * publisher or a handshake-rate run measures ECDHE and the certificate signature each time.
 * TLS 1.3 session tickets that the server sends after the handshake are read and dropped.
 * Verification: with --cacert FILE the chain must lead to FILE and the certificate must name the
 * host of the URL (DNS name, or IP address for a literal); without it nothing is verified (a
 * benchmark against a throwaway certificate). */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "loadgen_internal.h"

int lgt_init(lg_ctx_t *x)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        fprintf(stderr, "bench: SSL_CTX_new failed\n");
        return -1;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    /* partial writes: lgt_send() is send(2)-like; a retry may come from the moved queue copy */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
    if (x->tls_cacert) {
        if (SSL_CTX_load_verify_locations(ctx, x->tls_cacert, NULL) != 1) {
            fprintf(stderr, "bench: cannot load --cacert %s\n", x->tls_cacert);
            SSL_CTX_free(ctx);
            return -1;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    x->ssl_ctx = ctx;
    return 0;
}

void lgt_free_ctx(lg_ctx_t *x)
{
    SSL_CTX_free(x->ssl_ctx);
    x->ssl_ctx = NULL;
}

int lgt_start(lg_ctx_t *x, lg_conn_t *c, const char *host)
{
    SSL *s = SSL_new(x->ssl_ctx);
    if (!s) return -1;
    unsigned char ip[16];
    bool literal = inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;
    bool ok = SSL_set_fd(s, c->fd) == 1;
    if (ok && !literal) ok = SSL_set_tlsext_host_name(s, host) == 1;
    if (ok && x->tls_cacert) {
        X509_VERIFY_PARAM *vp = SSL_get0_param(s);
        ok = literal ? X509_VERIFY_PARAM_set1_ip_asc(vp, host) == 1 : X509_VERIFY_PARAM_set1_host(vp, host, 0) == 1;
    }
    if (!ok) {
        SSL_free(s);
        ERR_clear_error();
        return -1;
    }
    SSL_set_connect_state(s);
    c->ssl = s;
    c->tls_hs = true;
    return 0;
}

int lgt_handshake(lg_ctx_t *x, lg_conn_t *c)
{
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        c->tls_hs = false;
        x->tls_handshakes++;
        if (SSL_session_reused(c->ssl)) x->tls_resumed++;
        if (!x->tls_version[0]) {
            snprintf(x->tls_version, sizeof(x->tls_version), "%s", SSL_get_version(c->ssl));
            snprintf(x->tls_cipher, sizeof(x->tls_cipher), "%s", SSL_get_cipher_name(c->ssl));
        }
        return LGT_DONE;
    }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ) return LGT_WANT_READ;
    if (e == SSL_ERROR_WANT_WRITE) return LGT_WANT_WRITE;
    x->tls_failures++;
    if (!x->first_error[0]) {
        unsigned long le = ERR_peek_error();
        long vr = SSL_get_verify_result(c->ssl);
        char msg[120];
        if (vr != X509_V_OK) snprintf(msg, sizeof(msg), "%s", X509_verify_cert_error_string(vr));
        else if (le) ERR_error_string_n(le, msg, sizeof(msg));
        else snprintf(msg, sizeof(msg), "%s", e == SSL_ERROR_SYSCALL ? strerror(errno) : "handshake failed");
        snprintf(x->first_error, sizeof(x->first_error), "TLS handshake: %s", msg);
        if (!x->quiet) fprintf(stderr, "bench: %s\n", x->first_error);
    }
    ERR_clear_error();
    return LGT_FAIL;
}

/* After SSL_read/SSL_write returned r <= 0: errno for the caller, -1 or 0 (the end). */
static ssize_t io_error(lg_conn_t *c, int r)
{
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        errno = EAGAIN;
        return -1;
    }
    if (e == SSL_ERROR_ZERO_RETURN) return 0;
    int se = errno;
    ERR_clear_error();
    errno = e == SSL_ERROR_SYSCALL && se ? se : EPROTO;
    return -1;
}

ssize_t lgt_recv(lg_conn_t *c, void *buf, size_t n)
{
    size_t got = 0;
    int r = SSL_read_ex(c->ssl, buf, n, &got);
    return r == 1 ? (ssize_t)got : io_error(c, r);
}

ssize_t lgt_send(lg_conn_t *c, const void *buf, size_t n)
{
    size_t put = 0;
    int r = SSL_write_ex(c->ssl, buf, n, &put);
    return r == 1 ? (ssize_t)put : io_error(c, r);
}

void lgt_close(lg_conn_t *c)
{
    SSL_free(c->ssl);
    c->ssl = NULL;
    c->tls_hs = false;
}
