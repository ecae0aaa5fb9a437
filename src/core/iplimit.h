/* iplimit.h - per client address limits: open connections per address, and new connections per
 * second per address (a token bucket holding one second's worth). One table serves every
 * listener (HTTP and MQTT), so an address cannot take all of max_connections.
 *
 * The table is the seeded hash map of hmap.h over the 16-byte address (IPv4 mapped into IPv6),
 * so clients cannot aim their addresses at one bucket. It holds at most
 * max_entries addresses: idle ones (no connection, bucket full again) are swept out as new ones
 * come; when it is still full, a new address is admitted untracked (a limit per address cannot be
 * broken by using many addresses). Exempt addresses (a reverse proxy, loopback by default) are
 * never limited. A connection keeps the entry it was admitted under and releases it on close. */
#ifndef HERALD_IPLIMIT_H
#define HERALD_IPLIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hmap.h"
#include "ipset.h"

typedef struct ipl_entry {
    hmap_node_t node;  /* in the table, keyed by addr */
    uint8_t addr[16];
    uint32_t conns;    /* open connections */
    double tokens;     /* new connections allowed now */
    uint64_t at_ms;    /* when tokens was last refilled */
    bool logged;       /* a refusal of this address was logged */
} ipl_entry_t;

typedef struct {
    hmap_t map;           /* addresses (map.b NULL: not set up) */
    uint32_t n, max_entries;
    uint32_t max_conns;   /* per address (0: no limit) */
    uint32_t rate;        /* new connections per second per address (0: no limit) */
    ipset_t exempt;       /* never limited */
    uint32_t admits;      /* since the last sweep */
    uint64_t refused_conns, refused_rate; /* refusals, for the metrics */
} iplimit_t;

/* Sets up the table: max_conns and rate as above (0 turns each off), exempt a space/comma
 * separated list of IPv4/IPv6 addresses. Returns 0, or -1 with a message in err. */
int iplimit_init(iplimit_t *t, uint32_t max_conns, uint32_t rate, const char *exempt, char *err, size_t cap);

void iplimit_free(iplimit_t *t);

/* Decides on a new connection from fd's peer at now_ms. Returns 0 and sets *out to the entry
 * the connection must release (NULL: not tracked), or HR_EFULL (the address has max_conns open)
 * or HR_EAGAIN (it opened more than rate in the last second); refusals are counted and logged
 * once per address. */
int iplimit_admit(iplimit_t *t, int fd, uint64_t now_ms, ipl_entry_t **out);

/* The same for a client at address a (a PROXY protocol header's, proxyproto.h). */
int iplimit_admit_addr(iplimit_t *t, const uint8_t a[16], uint64_t now_ms, ipl_entry_t **out);

/* A connection admitted under e closed (e may be NULL). */
void iplimit_release(iplimit_t *t, ipl_entry_t *e);

#endif
