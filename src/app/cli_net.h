/* cli_net.h - the connection of the `herald pub` / `herald sub` client: TCP, or TLS (OpenSSL)
 * for https:// URLs, blocking with the socket timeouts of cli.c. TLS verifies the server's
 * certificate against --cacert FILE (else the system's CAs) and that it names the URL's host
 * (a DNS name, or an IP address in the certificate's IP SANs); it sends the host as SNI and
 * offers ALPN http/1.1. No global state beyond ignoring SIGPIPE while TLS writes. */
#ifndef HERALD_CLI_NET_H
#define HERALD_CLI_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "cli.h"

typedef struct {
    int fd;
    struct ssl_st *ssl;     /* NULL: plain TCP */
    struct ssl_ctx_st *ctx;
} cli_net_t;

/* Connects to u (TLS when u->tls, verified with the CA file cacert, or the system's CAs when
 * cacert is NULL or ""), each step bounded by timeout_s seconds. Returns 0, or -1 with one line
 * in err ("cannot connect to ...", "TLS: certificate verify failed: ..."). */
int cli_net_dial(cli_net_t *n, const cli__url_t *u, const char *cacert, int timeout_s, char *err, size_t errcap);

/* Sends all of p[0..len). 0, HR_ETIMEDOUT or HR_EIO. */
int cli_net_send_all(cli_net_t *n, const void *p, size_t len);

/* Receives up to cap bytes: the count, 0 at the end of the stream, HR_ETIMEDOUT or HR_EIO. */
ssize_t cli_net_recv(cli_net_t *n, void *p, size_t cap);

/* For a long stream: no read timeout any more, TCP keepalive notices a dead peer instead. */
void cli_net_stream(cli_net_t *n);

/* Closes (TLS: close_notify first) and frees; n may be closed twice. */
void cli_net_close(cli_net_t *n);

#endif
