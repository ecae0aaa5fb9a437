/* access.h - who a request really comes from behind a reverse proxy, and the access log.
 *
 * trusted_proxies lists the addresses of reverse proxies (nginx, a load balancer). A request
 * whose connection comes from one of them and carries X-Forwarded-For is taken to come from the
 * rightmost address of that header that is not itself a trusted proxy (the address the nearest
 * trusted proxy saw); logs about the connection then name "CLIENT (via PROXY)". Anyone else's
 * X-Forwarded-For is ignored: a client cannot choose the address it is logged under. (Per-address
 * limits still count the TCP peer: exempt the proxy with per_ip_exempt and limit at the proxy.)
 *
 * access_log = "" (off) | "stderr" | a file path (appended to): one line per response head -
 * client, time, "METHOD TARGET", status, body bytes ("-" for a stream, 101 for an upgrade), the
 * milliseconds since the request arrived, and the User-Agent. The values of query parameters
 * that carry credentials (token, access_token, api_key, password, passcode) are written as
 * "REDACTED": secrets never reach a log. */
#ifndef HERALD_HTTP_ACCESS_H
#define HERALD_HTTP_ACCESS_H

#include "server.h"

/* Sets up srv's trusted proxies and access log from cfg. 0, or -1 (logged). */
int http_access_open(http_server_t *srv, const cfg_t *cfg);

void http_access_close(http_server_t *srv);

/* A request is dispatched on hc: finds its client (X-Forwarded-For from a trusted proxy) and,
 * with an access log, remembers its request line. */
void http_access_request(http_conn_t *hc, http_req_t *req);

/* A response head with status went out for the current request (len: body bytes, -1: a
 * stream). */
void http_access_log(http_conn_t *hc, int status, int64_t len);

/* The client named by X-Forwarded-For value v: its rightmost address that is not in trusted (all
 * trusted: the leftmost). Writes it (as sent) into out; false when v holds anything but
 * addresses, or nothing. */
bool http_access_forwarded(const ipset_t *trusted, span_t v, char *out, size_t cap);

/* Writes target[0..n) into out (cap bytes, NUL-terminated) with the values of the credential
 * parameters of its query replaced by REDACTED; returns the length written (truncated to fit). */
size_t http_access_redact(const char *target, size_t n, char *out, size_t cap);

#endif
