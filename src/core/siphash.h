/* siphash.h - SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast short-input PRF", 2012): a
 * keyed 64-bit hash for tables whose keys clients choose (channel names, MQTT client ids, client
 * addresses), so nobody can aim many keys at one bucket without knowing the key. Written from the
 * paper's description; checked against its test vector in tests/unit/test_core.c. */
#ifndef HERALD_SIPHASH_H
#define HERALD_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t k0, k1;
} sip_key_t;

/* SipHash-2-4 of p[0..n) under key k. */
uint64_t siphash24(const sip_key_t *k, const void *p, size_t n);

/* A key from getrandom() (a fixed, still unpredictable fallback mixed from the address of k and
 * the time when the kernel gives no randomness). */
void sip_key_random(sip_key_t *k);

#endif
