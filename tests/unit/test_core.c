/* test_core.c - write queue, timer wheel, refcounted bytes and detached connections. */
#include <fcntl.h>
#include <sys/socket.h>

#include "../../src/core/bytes.h"
#include "../../src/core/conn.h"
#include "../../src/core/loop.h"
#include "../../src/core/err.h"
#include "../../src/core/siphash.h"
#include "../../src/core/timer.h"
#include "../../src/core/wq.h"
#include "unit.h"

TEST(wq_limit_and_full)
{
    long live = bytes_live();
    wq_t q;
    wq_init(&q, 10 + 2 * WQ_ENTRY_COST); /* the limit counts each entry's bookkeeping too */
    bytes_t *a = bytes_copy("123456", 6), *b = bytes_copy("7890", 4), *c = bytes_copy("x", 1);
    CHECK_EQ(wq_push(&q, a), 0);
    CHECK_EQ(wq_push(&q, b), 0);
    CHECK(wq_full(&q));
    CHECK_EQ(wq_push(&q, c), HR_EFULL); /* 11 + 3 entries > 10 + 2 entries: refused, nothing queued */
    CHECK_EQ(q.count, 2);
    CHECK_EQ(q.bytes, 10);
    CHECK_EQ(wq_cost(&q), 10 + 2 * WQ_ENTRY_COST);
    CHECK_EQ(a->refs, 2);
    wq_clear(&q);
    CHECK(q.ring == q.inl);
    CHECK_EQ(a->refs, 1);
    bytes_unref(a);
    bytes_unref(b);
    bytes_unref(c);
    CHECK_EQ(bytes_live(), live);
}

TEST(wq_tiny_blocks_count_their_bookkeeping)
{
    wq_t q;
    wq_init(&q, 1024);
    bytes_t *a = bytes_copy("pr", 2); /* a PINGRESP-sized answer */
    uint32_t n = 0;
    while (wq_push(&q, a) == 0) n++;
    CHECK_EQ(n, 1024 / (2 + WQ_ENTRY_COST)); /* not 512: each entry costs more than its two bytes */
    wq_clear(&q);
    bytes_unref(a);
}

TEST(wq_oversized_block_into_empty_queue)
{
    wq_t q;
    wq_init(&q, 4);
    bytes_t *a = bytes_copy("123456789", 9);
    CHECK_EQ(wq_push(&q, a), 0); /* a single frame larger than the limit still goes */
    CHECK_EQ(wq_push(&q, a), HR_EFULL);
    wq_clear(&q);
    bytes_unref(a);
}

TEST(wq_flush_partial_and_order)
{
    int sv[2];
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    int small = 4096;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    wq_t q;
    wq_init(&q, 1 << 30);
    char big[100000];
    for (size_t i = 0; i < sizeof(big); i++) big[i] = (char)('a' + i % 26);
    bytes_t *b = bytes_copy(big, sizeof(big));
    for (int i = 0; i < 100; i++) CHECK_EQ(wq_push(&q, b), 0); /* ring grows past its first size */
    bytes_unref(b);
    size_t total = 0, want = sizeof(big) * 100;
    char *got = malloc(want);
    bool drained = false;
    while (total < want) {
        ssize_t w = wq_flush(&q, sv[0], &drained);
        CHECK(w >= 0);
        ssize_t r;
        while ((r = recv(sv[1], got + total, want - total, MSG_DONTWAIT)) > 0) total += (size_t)r;
        if (w < 0) break;
    }
    wq_flush(&q, sv[0], &drained);
    CHECK(drained);
    CHECK_EQ(total, want);
    int same = 1;
    for (int i = 0; i < 100; i++) same &= memcmp(got + (size_t)i * sizeof(big), big, sizeof(big)) == 0;
    CHECK(same);
    CHECK(q.ring == q.inl); /* an empty queue holds no heap memory */
    free(got);
    close(sv[0]);
    close(sv[1]);
}

/* wq_peek / wq_advance (the TLS writer's view of the queue): the unwritten part of the first
 * block, then the others; advancing across blocks frees them and keeps the offset. */
TEST(wq_peek_and_advance)
{
    wq_t q;
    wq_init(&q, 1 << 20);
    bytes_t *a = bytes_copy("hello", 5), *e = bytes_copy("", 0), *c = bytes_copy("world!", 6);
    CHECK_EQ(wq_push(&q, a), 0);
    CHECK_EQ(wq_push(&q, e), 0);
    CHECK_EQ(wq_push(&q, c), 0);
    struct iovec iov[4];
    size_t bytes;
    CHECK_EQ(wq_peek(&q, iov, 4, &bytes), 3);
    CHECK_EQ(bytes, 11);
    CHECK_EQ(wq_peek(&q, iov, 1, &bytes), 1); /* at most max entries */
    CHECK_EQ(bytes, 5);
    wq_advance(&q, 3);                        /* "hel" written */
    CHECK_EQ(wq_peek(&q, iov, 4, &bytes), 3);
    CHECK(iov[0].iov_len == 2 && memcmp(iov[0].iov_base, "lo", 2) == 0);
    CHECK_EQ(q.bytes, 8);
    wq_advance(&q, 3);                        /* "lo", the empty block and "w" */
    CHECK_EQ(wq_peek(&q, iov, 4, &bytes), 1);
    CHECK(iov[0].iov_len == 5 && memcmp(iov[0].iov_base, "orld!", 5) == 0);
    wq_advance(&q, 5);
    CHECK(wq_empty(&q));
    CHECK(q.ring == q.inl && q.off == 0 && q.bytes == 0);
    bytes_unref(a);
    bytes_unref(e);
    bytes_unref(c);
    CHECK_EQ(bytes_live(), 0);
}

static int fired[8];
static tw_t *g_wheel;
static tw_entry_t ents[8];
static void on_fire(tw_entry_t *e) { fired[e - ents]++; }
static void on_fire_rearm(tw_entry_t *e)
{
    fired[e - ents]++;
    if (fired[e - ents] < 3) tw_arm(g_wheel, e, e->deadline + 100);
}

TEST(timer_order_lazy_and_far)
{
    tw_t w;
    g_wheel = &w;
    memset(fired, 0, sizeof(fired));
    tw_init(&w, 1000);
    for (int i = 0; i < 8; i++) tw_entry_init(&ents[i], on_fire);
    tw_arm(&w, &ents[0], 1050);
    tw_arm(&w, &ents[1], 1000 + 60000); /* beyond one wheel turn (16.4 s) */
    tw_arm(&w, &ents[2], 1200);
    tw_arm(&w, &ents[2], 1500); /* moved later: lazily, must not fire at 1200 */
    tw_arm(&w, &ents[3], 1300);
    tw_stop(&w, &ents[3]);
    CHECK_EQ(w.armed, 3);
    tw_run(&w, 1100);
    CHECK_EQ(fired[0], 1);
    CHECK_EQ(fired[2], 0);
    tw_run(&w, 1300);
    CHECK_EQ(fired[2], 0);
    CHECK_EQ(fired[3], 0);
    CHECK(tw_next_ms(&w, 1300) > 0);
    tw_run(&w, 1520);
    CHECK_EQ(fired[2], 1);
    tw_run(&w, 30000);
    CHECK_EQ(fired[1], 0);
    tw_run(&w, 61100);
    CHECK_EQ(fired[1], 1);
    CHECK_EQ(w.armed, 0);
    CHECK_EQ(tw_next_ms(&w, 61100), -1);
}

TEST(timer_rearm_from_callback_and_long_stall)
{
    tw_t w;
    g_wheel = &w;
    memset(fired, 0, sizeof(fired));
    tw_init(&w, 0);
    tw_entry_init(&ents[4], on_fire_rearm);
    tw_arm(&w, &ents[4], 100);
    tw_run(&w, 150);
    CHECK_EQ(fired[4], 1);
    /* a stall of minutes: the entry is due, and its re-arm from the callback (still in the past)
     * is due too, so both fire in this same run instead of waiting a wheel turn */
    tw_run(&w, 500000);
    CHECK_EQ(fired[4], 3);
    CHECK_EQ(w.armed, 0);
}

/* The reference vectors of the SipHash paper (key 00..0f, messages 00, 00 01, ...): the first
 * (empty message), the 8-byte one of the reference implementation's table, and the 15-byte one
 * printed in the paper. */
TEST(siphash_reference_vectors)
{
    sip_key_t k = {0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL};
    uint8_t m[64];
    for (int i = 0; i < 64; i++) m[i] = (uint8_t)i;
    CHECK(siphash24(&k, m, 0) == 0x726fdb47dd0e0e31ULL);
    CHECK(siphash24(&k, m, 15) == 0xa129ca6149be45e5ULL);
    CHECK(siphash24(&k, m, 8) == 0x93f5f5799a932462ULL);
    /* another key gives another hash; random keys differ */
    sip_key_t k2 = {1, 2}, r1, r2;
    CHECK(siphash24(&k2, m, 15) != siphash24(&k, m, 15));
    sip_key_random(&r1);
    sip_key_random(&r2);
    CHECK(r1.k0 != r2.k0 || r1.k1 != r2.k1);
}

/* A detached connection (no socket): the write phase hands its queue to ops->flush; the limit,
 * the timer and the deferred close work as for any connection. */
typedef struct {
    conn_t c;
    int flushes, closes, timers;
    size_t taken;
} det_t;

static void det_flush(conn_t *c)
{
    det_t *d = (det_t *)c;
    d->flushes++;
    struct iovec iov[WQ_IOV_MAX];
    size_t bytes;
    wq_peek(&c->wq, iov, WQ_IOV_MAX, &bytes);
    wq_advance(&c->wq, bytes);
    d->taken += bytes;
}
static void det_close(conn_t *c) { ((det_t *)c)->closes++; }
static void det_timer(conn_t *c) { ((det_t *)c)->timers++; }
static void det_read(conn_t *c) { (void)c; }

TEST(conn_detached)
{
    loop_t loop;
    CHECK_EQ(loop_init(&loop), 0);
    static const conn_ops_t ops = {.on_read = det_read, .on_close = det_close, .on_timer = det_timer, .flush = det_flush};
    det_t d = {0};
    conn_init_detached(&d.c, &loop, &ops, 1024);
    CHECK_EQ(d.c.w.fd, -1);
    bytes_t *b = bytes_copy("hello", 5);
    CHECK_EQ(conn_send(&d.c, b), 0);
    CHECK_EQ(conn_send(&d.c, b), 0);
    bytes_t *big = bytes_new(2000);
    CHECK_EQ(conn_send(&d.c, big), HR_EFULL); /* the limit holds */
    CHECK_EQ(conn_send_reply(&d.c, big), 0);  /* replies pass it */
    loop_run_once(&loop, 0);
    CHECK_EQ(d.flushes, 1);
    CHECK_EQ(d.taken, 2010);
    CHECK(wq_empty(&d.c.wq));
    conn_timer(&d.c, 1);
    for (int i = 0; i < 50 && !d.timers; i++) loop_run_once(&loop, 5);
    CHECK_EQ(d.timers, 1);
    conn_send(&d.c, b);
    conn_close(&d.c, 0);
    CHECK_EQ(d.closes, 0); /* not from inside the caller */
    loop_run_once(&loop, 0);
    CHECK_EQ(d.closes, 1);
    CHECK_EQ(d.flushes, 1); /* a closing connection is not flushed */
    bytes_unref(b);
    bytes_unref(big);
    CHECK_EQ(loop_close(&loop), 0);
}

int main(void)
{
    RUN(siphash_reference_vectors);
    RUN(wq_limit_and_full);
    RUN(wq_tiny_blocks_count_their_bookkeeping);
    RUN(wq_oversized_block_into_empty_queue);
    RUN(wq_flush_partial_and_order);
    RUN(wq_peek_and_advance);
    RUN(timer_order_lazy_and_far);
    RUN(timer_rearm_from_callback_and_long_stall);
    RUN(conn_detached);
    return UNIT_DONE();
}
