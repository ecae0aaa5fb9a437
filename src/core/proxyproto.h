/* proxyproto.h - the PROXY protocol header a load balancer (HAProxy, nginx `proxy_protocol`,
 * AWS NLB, ...) sends first on each connection to say whose it is: version 1 (text, "PROXY TCP4
 * 203.0.113.9 10.0.0.5 51234 443\r\n", at most 107 bytes) and version 2 (a 16-byte binary head
 * with a 12-byte signature, then the addresses and TLVs). Pure: no I/O; fuzzed by
 * fuzz/fuzz_proxyproto.c. */
#ifndef HERALD_PROXYPROTO_H
#define HERALD_PROXYPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROXYPROTO_MAX 536 /* the most bytes a header may take (v2: 16 + up to 520 of addresses and TLVs) */

typedef struct {
    bool local;        /* no address given (v1 UNKNOWN, v2 LOCAL: a health check): use the TCP peer */
    uint8_t src[16];   /* the client's address (IPv4 as ::ffff:a.b.c.d) unless local */
    uint16_t src_port;
} proxyproto_t;

/* Parses the header at the start of p[0..n). Returns its length (the bytes to drop before the
 * connection's own data), 0 when more bytes are needed to decide, or -1 when p does not start
 * with a valid header. */
int proxyproto_parse(const uint8_t *p, size_t n, proxyproto_t *out);

/* The address of h as text (IPv4 dotted, else IPv6) into out. */
void proxyproto_format(const proxyproto_t *h, char *out, size_t cap);

#endif
