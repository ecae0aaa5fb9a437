/* unit.h - a tiny test harness for C unit tests.
 *
 * Each test binary defines test functions with TEST(name) and lists them in main with RUN().
 * Output is TAP: "ok N - name" or "not ok N - name" plus a diagnostic line per failed check.
 * The binary exits non-zero when any test failed. guard_page_copy() puts input right before a
 * PROT_NONE page so a parser that reads one byte too far crashes at once. */
#ifndef HERALD_UNIT_H
#define HERALD_UNIT_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int unit__failed_checks;
static int unit__count, unit__fails;

#define TEST(name) static void name(void)

#define RUN(fn)                                                                                    \
    do {                                                                                           \
        int before_ = unit__failed_checks;                                                         \
        fn();                                                                                      \
        unit__count++;                                                                             \
        if (unit__failed_checks == before_) {                                                      \
            printf("ok %d - %s\n", unit__count, #fn);                                              \
        } else {                                                                                   \
            unit__fails++;                                                                         \
            printf("not ok %d - %s\n", unit__count, #fn);                                          \
        }                                                                                          \
        fflush(stdout);                                                                            \
    } while (0)

#define UNIT_DONE() (printf("1..%d\n", unit__count), unit__fails ? 1 : 0)

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            unit__failed_checks++;                                                                 \
            printf("#   %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);                  \
        }                                                                                          \
    } while (0)

#define CHECK_EQ(a, b)                                                                             \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ != b_) {                                                                            \
            unit__failed_checks++;                                                                 \
            printf("#   %s:%d: %s == %s failed: %lld != %lld\n", __FILE__, __LINE__, #a, #b, a_,  \
                   b_);                                                                            \
        }                                                                                          \
    } while (0)

#define CHECK_MEM(p, n, lit)                                                                       \
    do {                                                                                           \
        size_t n_ = (n);                                                                           \
        if (n_ != sizeof(lit) - 1 || memcmp((p), (lit), n_) != 0) {                                \
            unit__failed_checks++;                                                                 \
            printf("#   %s:%d: got \"%.*s\", want \"%s\"\n", __FILE__, __LINE__, (int)n_,          \
                   (const char *)(p), lit);                                                        \
        }                                                                                          \
    } while (0)

/* Copies n bytes so that they end exactly at a PROT_NONE page. Free with guard_page_free(). */
static inline char *guard_page_copy(const void *src, size_t n, void **map, size_t *maplen)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    size_t data_pages = (n + pg - 1) / pg + 1;
    *maplen = (data_pages + 1) * pg;
    char *m = mmap(NULL, *maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) abort();
    mprotect(m + data_pages * pg, pg, PROT_NONE);
    char *dst = m + data_pages * pg - n;
    memcpy(dst, src, n);
    *map = m;
    return dst;
}

static inline void guard_page_free(void *map, size_t maplen) { munmap(map, maplen); }

/* A pool of guard-page copies, all released by gp_release() (or when the pool is full). */
#define GP_MAX 4096
static void *gp_maps[GP_MAX];
static size_t gp_lens[GP_MAX];
static int gp_n;

static inline void gp_release(void)
{
    while (gp_n > 0) {
        gp_n--;
        guard_page_free(gp_maps[gp_n], gp_lens[gp_n]);
    }
}

/* A guard-page copy of s[0..n), valid until the next gp_release(). */
static inline char *gp(const void *s, size_t n)
{
    if (gp_n == GP_MAX) gp_release();
    char *p = guard_page_copy(s, n, &gp_maps[gp_n], &gp_lens[gp_n]);
    gp_n++;
    return p;
}

#endif
