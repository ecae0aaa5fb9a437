/* ipset.h - a small set of IP addresses held as 16 bytes each (IPv4 as ::ffff:a.b.c.d), for the
 * lists in the configuration: per_ip_exempt (iplimit.h) and trusted_proxies (the HTTP server).
 * Lookups walk the list: these lists name a few proxies, not clients. */
#ifndef HERALD_IPSET_H
#define HERALD_IPSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint8_t (*a)[16];
    uint32_t n;
} ipset_t;

/* Parses a space/comma separated list of IPv4/IPv6 addresses into s (which it resets first).
 * 0, or -1 with a message in err (s then empty). */
int ipset_parse(ipset_t *s, const char *list, char *err, size_t cap);

void ipset_free(ipset_t *s);

bool ipset_has(const ipset_t *s, const uint8_t a[16]);

/* One address (text) into a; false when it is none. */
bool ip_parse16(const char *text, size_t n, uint8_t a[16]);

/* The peer address of socket fd into a; false when it has no IP address. */
bool ip_peer16(int fd, uint8_t a[16]);

#endif
