/* cli_net.c - see cli_net.h. */
#include "cli_net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "../core/err.h"

static void set_timeouts(int fd, int seconds)
{
    struct timeval tv = {.tv_sec = seconds};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

/* TCP to u within timeout_s (SO_SNDTIMEO bounds connect() on Linux). The fd, or -1. */
static int tcp_dial(const cli__url_t *u, int timeout_s, char *err, size_t errcap)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(u->host, u->port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errcap, "%s: %s", u->host, gai_strerror(rc));
        return -1;
    }
    int fd = -1, last_errno = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            last_errno = errno;
            continue;
        }
        set_timeouts(fd, timeout_s);
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) break;
        last_errno = errno == EINPROGRESS ? ETIMEDOUT : errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(err, errcap, "cannot connect to %s: %s", u->authority, strerror(last_errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* The TLS handshake on n->fd, verifying the certificate against cacert and u->host. */
static int tls_dial(cli_net_t *n, const cli__url_t *u, const char *cacert, char *err, size_t errcap)
{
    signal(SIGPIPE, SIG_IGN); /* OpenSSL writes with write(2): a closed peer must not kill us */
    ERR_clear_error();
    if (!(n->ctx = SSL_CTX_new(TLS_client_method()))) {
        snprintf(err, errcap, "TLS: cannot create a context");
        return -1;
    }
    SSL_CTX_set_min_proto_version(n->ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(n->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_verify(n->ctx, SSL_VERIFY_PEER, NULL);
    if (cacert && *cacert) {
        if (SSL_CTX_load_verify_locations(n->ctx, cacert, NULL) != 1) {
            unsigned long e = ERR_peek_last_error();
            snprintf(err, errcap, "--cacert %s: %s", cacert, e ? ERR_reason_error_string(e) : "cannot read it");
            return -1;
        }
    } else if (SSL_CTX_set_default_verify_paths(n->ctx) != 1) {
        snprintf(err, errcap, "TLS: cannot load the system's CA certificates (give --cacert FILE)");
        return -1;
    }
    static const unsigned char alpn[] = "\x08http/1.1";
    SSL_CTX_set_alpn_protos(n->ctx, alpn, sizeof(alpn) - 1);
    if (!(n->ssl = SSL_new(n->ctx)) || SSL_set_fd(n->ssl, n->fd) != 1) {
        snprintf(err, errcap, "TLS: out of memory");
        return -1;
    }
    unsigned char ip[16];
    bool is_ip = inet_pton(AF_INET, u->host, ip) == 1 || inet_pton(AF_INET6, u->host, ip) == 1;
    if (is_ip) {
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(n->ssl), u->host);
    } else {
        SSL_set_tlsext_host_name(n->ssl, u->host);
        SSL_set1_host(n->ssl, u->host);
    }
    if (SSL_connect(n->ssl) == 1) return 0;
    long v = SSL_get_verify_result(n->ssl);
    unsigned long e = ERR_peek_last_error();
    if (v != X509_V_OK)
        snprintf(err, errcap, "TLS: %s: certificate verify failed: %s%s", u->authority, X509_verify_cert_error_string(v),
                 v == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY || v == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN ||
                         v == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT
                     ? " (give the server's CA with --cacert FILE)"
                     : "");
    else if (e)
        snprintf(err, errcap, "TLS: %s: %s", u->authority, ERR_reason_error_string(e));
    else
        snprintf(err, errcap, "TLS: %s: handshake failed: %s", u->authority,
                 errno ? strerror(errno) : "the connection was closed");
    ERR_clear_error();
    return -1;
}

int cli_net_dial(cli_net_t *n, const cli__url_t *u, const char *cacert, int timeout_s, char *err, size_t errcap)
{
    *n = (cli_net_t){.fd = -1};
    if ((n->fd = tcp_dial(u, timeout_s, err, errcap)) < 0) return -1;
    if (u->tls && tls_dial(n, u, cacert, err, errcap) < 0) {
        cli_net_close(n);
        return -1;
    }
    return 0;
}

int cli_net_send_all(cli_net_t *n, const void *p, size_t len)
{
    const char *b = p;
    while (len) {
        ssize_t w;
        if (n->ssl) {
            ERR_clear_error();
            int r = SSL_write(n->ssl, b, len > 1u << 30 ? 1 << 30 : (int)len);
            if (r <= 0) {
                int e = SSL_get_error(n->ssl, r);
                ERR_clear_error();
                return e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ ? HR_ETIMEDOUT : HR_EIO;
            }
            w = r;
        } else {
            w = send(n->fd, b, len, MSG_NOSIGNAL);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) return errno == EAGAIN || errno == EWOULDBLOCK ? HR_ETIMEDOUT : HR_EIO;
        }
        b += w;
        len -= (size_t)w;
    }
    return 0;
}

ssize_t cli_net_recv(cli_net_t *n, void *p, size_t cap)
{
    if (n->ssl) {
        ERR_clear_error();
        int r = SSL_read(n->ssl, p, cap > 1u << 30 ? 1 << 30 : (int)cap);
        if (r > 0) return r;
        int e = SSL_get_error(n->ssl, r);
        ERR_clear_error();
        if (e == SSL_ERROR_ZERO_RETURN) return 0;
        return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? HR_ETIMEDOUT : HR_EIO;
    }
    for (;;) {
        ssize_t r = recv(n->fd, p, cap, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return errno == EAGAIN || errno == EWOULDBLOCK ? HR_ETIMEDOUT : HR_EIO;
        return r;
    }
}

void cli_net_stream(cli_net_t *n)
{
    struct timeval none = {0};
    setsockopt(n->fd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof(none));
    int one = 1, idle = 30, intvl = 10, cnt = 3;
    setsockopt(n->fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    setsockopt(n->fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    setsockopt(n->fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
    setsockopt(n->fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
}

void cli_net_close(cli_net_t *n)
{
    if (n->ssl) {
        ERR_clear_error();
        SSL_shutdown(n->ssl);
        SSL_free(n->ssl);
        ERR_clear_error();
    }
    SSL_CTX_free(n->ctx);
    if (n->fd >= 0) close(n->fd);
    *n = (cli_net_t){.fd = -1};
}
