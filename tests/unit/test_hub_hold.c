/* test_hub_hold.c - channels a store loads or catches up asynchronously (engine = redis), through
 * hub.h: hub_after answers "loading", injected messages wait in id order, hub_loaded records the
 * history without delivering it and resyncs the subscribers before what waited, hub_fill and
 * hub_release, hub_reset. A fake store answers every load with STORE_LOADING. */
#include <string.h>

#include "../../src/core/err.h"
#include "../../src/hub/hub.h"
#include "unit.h"

typedef struct {
    store_t base;
    engine_t eng; /* catches up like the Redis engine */
    hub_t *hub;
    int catch_ups;
} fake_t;

static int fake_append(store_t *s, const msg_t *m) { return (void)s, (void)m, 0; }
static int fake_load(store_t *s, const char *c, size_t n, hist_t *h, const hist_limits_t *l, uint64_t *last)
{
    (void)s, (void)c, (void)n, (void)h, (void)l;
    *last = 0;
    return STORE_LOADING;
}
static void fake_close(store_t *s) { (void)s; }
static void fake_catch_up(engine_t *e, chan_t *ch)
{
    fake_t *f = container_of(e, fake_t, eng);
    f->catch_ups++;
    hub_hold(f->hub, ch);
}
static const store_ops_t fake_ops = {.append = fake_append, .load = fake_load, .close = fake_close};
static const engine_ops_t fake_engine_ops = {.catch_up = fake_catch_up};

/* A subscriber like the streaming transports: replays from its cursor, waits while told
 * "loading", records what it got (gap notices as id 0). */
typedef struct {
    sub_t s;
    hub_t *hub;
    uint64_t cursor;
    bool waiting;
    uint64_t got[64];
    int n, resyncs;
} rec_t;

static void rec_replay(rec_t *r)
{
    msg_t *out[64];
    hub_cursor_info_t info;
    uint32_t n = hub_after(r->hub, r->s.ch, r->cursor, out, 64, &info);
    r->waiting = info.loading;
    if (info.loading) return;
    if (info.gap && r->n < 64) r->got[r->n++] = 0;
    if (info.gap && !n) r->cursor = info.last_id;
    for (uint32_t i = 0; i < n && r->n < 64; i++) r->got[r->n++] = r->cursor = out[i]->id;
}
static void rec_deliver(sub_t *s, msg_t *m)
{
    rec_t *r = container_of(s, rec_t, s);
    if (r->waiting || r->n >= 64) return;
    r->got[r->n++] = r->cursor = m->id;
}
static void rec_resync(sub_t *s)
{
    rec_t *r = container_of(s, rec_t, s);
    r->resyncs++;
    if (r->waiting || r->cursor > s->ch->last_id) rec_replay(r);
}
static void rec_open(rec_t *r, hub_t *hub, chan_t *ch, bool has_cursor, uint64_t cursor)
{
    memset(r, 0, sizeof(*r));
    r->hub = hub;
    r->s.ch = ch;
    r->s.deliver = rec_deliver;
    r->s.resync = rec_resync;
    list_init(&r->s.link);
    r->cursor = has_cursor ? cursor : ch->last_id;
    if (has_cursor) rec_replay(r);
    hub_subscribe(hub, ch, &r->s);
}

static msg_t *mk(uint64_t id)
{
    char d[16];
    int n = snprintf(d, sizeof(d), "m%llu", (unsigned long long)id);
    return msg_new("c", 1, "message", 7, d, (size_t)n, id, loop_wall_ms());
}

static void setup(loop_t *loop, hub_t *hub, fake_t *f)
{
    CHECK_EQ(loop_init(loop), 0);
    memset(f, 0, sizeof(*f));
    f->base.ops = &fake_ops;
    f->base.name = "fake";
    f->hub = hub;
    hist_limits_t lim = {100, 1 << 20, 0};
    CHECK_EQ(hub_init(hub, loop, &f->base, &lim), 0);
    f->eng = (engine_t){.ops = &fake_engine_ops, .name = "fake"};
    hub->engine = &f->eng;
}

static void teardown(loop_t *loop, hub_t *hub)
{
    hub_close(hub);
    CHECK_EQ(loop_close(loop), 0);
}

TEST(load_then_resync_then_what_waited)
{
    loop_t loop;
    hub_t hub;
    fake_t f;
    setup(&loop, &hub, &f);
    chan_t *ch = hub_channel(&hub, "c", 1, true);
    CHECK(ch && ch->loading == 1);
    rec_t resumer, live;
    rec_open(&resumer, &hub, ch, true, 2); /* saw up to 2 elsewhere */
    rec_open(&live, &hub, ch, false, 0);
    CHECK(resumer.waiting);
    CHECK_EQ(resumer.n, 0);
    msg_t *m6 = mk(6), *m7 = mk(7);
    hub_inject(&hub, ch, m7); /* out of order, and twice: kept once, in order */
    hub_inject(&hub, ch, m6);
    hub_inject(&hub, ch, m7);
    CHECK_EQ(live.n, 0); /* nothing goes out while loading */
    msg_t *hist[4] = {mk(2), mk(3), mk(4), mk(5)};
    hub_loaded(&hub, ch, 5, hist, 4);
    CHECK_EQ(ch->loading, 0);
    CHECK_EQ(ch->last_id, 7);
    CHECK_EQ(ch->hist.count, 6);
    CHECK_EQ(resumer.n, 5); /* 3 4 5 replayed, then 6 7 */
    for (int i = 0; i < 5; i++) CHECK_EQ(resumer.got[i], (uint64_t)(3 + i));
    CHECK_EQ(live.n, 2); /* the history is not delivered live; what waited is */
    CHECK_EQ(live.got[0], 6);
    CHECK_EQ(live.got[1], 7);
    CHECK_EQ(live.resyncs, 1);
    for (int i = 0; i < 4; i++) msg_unref(hist[i]);
    msg_unref(m6);
    msg_unref(m7);
    hub_unsubscribe(&hub, &resumer.s);
    hub_unsubscribe(&hub, &live.s);
    teardown(&loop, &hub);
}

TEST(catch_up_holds_fills_and_releases_once)
{
    loop_t loop;
    hub_t hub;
    fake_t f;
    setup(&loop, &hub, &f);
    chan_t *ch = hub_channel(&hub, "c", 1, true);
    msg_t *h1 = mk(1);
    hub_loaded(&hub, ch, 1, &h1, 1);
    msg_unref(h1);
    rec_t live, ahead;
    rec_open(&live, &hub, ch, true, 1);
    CHECK_EQ(f.catch_ups, 0);
    rec_open(&ahead, &hub, ch, true, 3); /* a cursor past this node: the store catches up */
    CHECK_EQ(f.catch_ups, 1);
    CHECK(ahead.waiting && ch->loading == 1);
    msg_t *m2 = mk(2), *m3 = mk(3), *m4 = mk(4);
    hub_inject(&hub, ch, m4); /* from the feed meanwhile: waits for the fill */
    hub_fill(&hub, ch, m2);
    hub_fill(&hub, ch, m3);
    CHECK_EQ(live.n, 2); /* the fill goes out live, in order */
    CHECK_EQ(ahead.n, 0); /* the one waiting does not get what it saw */
    hub_release(&hub, ch);
    CHECK_EQ(f.catch_ups, 1); /* not again while resyncing */
    CHECK_EQ(live.n, 3);
    CHECK_EQ(live.got[2], 4);
    CHECK_EQ(ahead.n, 1);
    CHECK_EQ(ahead.got[0], 4);
    msg_unref(m2);
    msg_unref(m3);
    msg_unref(m4);
    /* a cursor from the future that the store cannot fill: one catch-up, then a gap */
    rec_t future;
    rec_open(&future, &hub, ch, true, 99);
    CHECK_EQ(f.catch_ups, 2);
    hub_release(&hub, ch);
    CHECK_EQ(f.catch_ups, 2);
    CHECK(!future.waiting);
    CHECK_EQ(future.n, 5); /* gap notice, then 1..4 */
    CHECK_EQ(future.got[0], 0);
    CHECK_EQ(future.cursor, 4);
    hub_unsubscribe(&hub, &live.s);
    hub_unsubscribe(&hub, &ahead.s);
    hub_unsubscribe(&hub, &future.s);
    teardown(&loop, &hub);
}

TEST(a_hole_among_what_waited_is_filled_not_skipped)
{
    loop_t loop;
    hub_t hub;
    fake_t f;
    setup(&loop, &hub, &f);
    chan_t *ch = hub_channel(&hub, "c", 1, true);
    hub_loaded(&hub, ch, 0, NULL, 0);
    rec_t live;
    rec_open(&live, &hub, ch, false, 0);
    hub_hold(&hub, ch);
    msg_t *m[6] = {NULL, mk(1), mk(2), mk(3), mk(4), mk(5)};
    hub_inject(&hub, ch, m[2]);
    hub_inject(&hub, ch, m[5]); /* answered before the feed brought 3 and 4 */
    hub_fill(&hub, ch, m[1]);
    hub_release(&hub, ch);
    CHECK_EQ(f.catch_ups, 1); /* 1 2 out, then the hole before 5: the store is asked */
    CHECK_EQ(ch->loading, 1);
    CHECK_EQ(live.n, 2);
    hub_inject(&hub, ch, m[3]); /* the feed, meanwhile */
    hub_fill(&hub, ch, m[3]);
    hub_fill(&hub, ch, m[4]);
    hub_release(&hub, ch);
    CHECK_EQ(live.n, 5);
    for (int i = 0; i < 5; i++) CHECK_EQ(live.got[i], (uint64_t)(i + 1));
    CHECK_EQ(ch->hist.count, 5); /* no restart of the ring: resuming clients see no gap */
    for (int i = 1; i <= 5; i++) msg_unref(m[i]);
    hub_unsubscribe(&hub, &live.s);
    teardown(&loop, &hub);
}

TEST(reset_tells_subscribers_and_drops_what_waited)
{
    loop_t loop;
    hub_t hub;
    fake_t f;
    setup(&loop, &hub, &f);
    chan_t *ch = hub_channel(&hub, "c", 1, true);
    msg_t *h[3] = {mk(1), mk(2), mk(3)};
    hub_loaded(&hub, ch, 3, h, 3);
    rec_t live;
    rec_open(&live, &hub, ch, true, 3);
    CHECK_EQ(live.n, 0);
    hub_reset(&hub, ch, 0); /* the store lost the channel: ids count from 1 again */
    CHECK_EQ(f.catch_ups, 0);
    CHECK_EQ(live.n, 1);
    CHECK_EQ(live.got[0], 0); /* a gap notice, not ids going back */
    CHECK_EQ(live.cursor, 0);
    msg_t *n1 = mk(1);
    hub_inject(&hub, ch, n1);
    CHECK_EQ(live.n, 2);
    CHECK_EQ(live.got[1], 1);
    /* while held, a reset forgets what waited */
    hub_hold(&hub, ch);
    msg_t *n2 = mk(2);
    hub_inject(&hub, ch, n2);
    hub_reset(&hub, ch, 0);
    hub_release(&hub, ch);
    CHECK_EQ(ch->last_id, 0);
    CHECK_EQ(live.n, 3); /* the resync at the release: gap notice for cursor 1 */
    for (int i = 0; i < 3; i++) msg_unref(h[i]);
    msg_unref(n1);
    msg_unref(n2);
    hub_unsubscribe(&hub, &live.s);
    teardown(&loop, &hub);
}

int main(void)
{
    RUN(load_then_resync_then_what_waited);
    RUN(catch_up_holds_fills_and_releases_once);
    RUN(a_hole_among_what_waited_is_filled_not_skipped);
    RUN(reset_tells_subscribers_and_drops_what_waited);
    return UNIT_DONE();
}
