/* mqtt_queue.c - in-flight table and waiting FIFO of an MQTT session; see mqtt_queue.h. */
#include "mqtt_queue.h"

#include <stdlib.h>
#include <string.h>

#include "../core/err.h"
#include "../hub/msg.h"

/* ---- in flight ---- */

static uint32_t mq__home(const mq_flight_t *f, uint16_t pid) { return (pid * 40503u) & (f->cap - 1); }

static void mq__put(mq_flight_t *f, const mq_item_t *it)
{
    uint32_t i = mq__home(f, it->pid);
    while (f->slot[i].pid) i = (i + 1) & (f->cap - 1);
    f->slot[i] = *it;
}

static int mq__grow(mq_flight_t *f)
{
    uint32_t cap = f->cap ? f->cap * 2 : 8;
    mq_item_t *old = f->slot;
    uint32_t oldcap = f->cap;
    mq_item_t *ns = calloc(cap, sizeof(*ns));
    if (!ns) return HR_ENOMEM;
    f->slot = ns;
    f->cap = cap;
    for (uint32_t i = 0; i < oldcap; i++)
        if (old[i].pid) mq__put(f, &old[i]);
    free(old);
    return 0;
}

int mq_flight_add(mq_flight_t *f, const mq_item_t *it, uint16_t *pid)
{
    if (f->n >= 65535) return HR_EFULL;
    if ((f->n + 1) * 2 > f->cap && mq__grow(f) < 0) return HR_ENOMEM;
    do {
        if (++f->next_pid == 0) f->next_pid = 1;
    } while (mq_flight_find(f, f->next_pid));
    mq_item_t x = *it;
    x.pid = f->next_pid;
    x.state = MQ_SENT;
    x.seq = f->seq++;
    mq__put(f, &x);
    f->n++;
    *pid = x.pid;
    return 0;
}

int mq_flight_put(mq_flight_t *f, const mq_item_t *it)
{
    if (!it->pid || mq_flight_find(f, it->pid)) return HR_EINVAL;
    if ((f->n + 1) * 2 > f->cap && mq__grow(f) < 0) return HR_ENOMEM;
    mq_item_t x = *it;
    x.seq = f->seq++;
    mq__put(f, &x);
    f->n++;
    if ((uint16_t)(it->pid - f->next_pid) < 32768) f->next_pid = it->pid; /* fresh ids continue after it */
    return 0;
}

mq_item_t *mq_flight_find(mq_flight_t *f, uint16_t pid)
{
    if (!f->n || !pid) return NULL;
    for (uint32_t i = mq__home(f, pid);; i = (i + 1) & (f->cap - 1)) {
        if (f->slot[i].pid == pid) return &f->slot[i];
        if (!f->slot[i].pid) return NULL;
    }
}

void mq_flight_del(mq_flight_t *f, mq_item_t *it)
{
    msg_unref(it->m);
    uint32_t mask = f->cap - 1, hole = (uint32_t)(it - f->slot);
    f->slot[hole].pid = 0;
    f->n--;
    /* backward-shift deletion: move later members of the probe run into the hole when their home
     * slot is not between the hole and them (cyclically) */
    for (uint32_t j = (hole + 1) & mask; f->slot[j].pid; j = (j + 1) & mask) {
        uint32_t home = mq__home(f, f->slot[j].pid);
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            f->slot[hole] = f->slot[j];
            f->slot[j].pid = 0;
            hole = j;
        }
    }
}

static int mq__by_seq(const void *a, const void *b)
{
    const mq_item_t *x = *(mq_item_t *const *)a, *y = *(mq_item_t *const *)b;
    int32_t d = (int32_t)(x->seq - y->seq); /* wraps like the counter */
    return d < 0 ? -1 : d > 0;
}

uint32_t mq_flight_ordered(const mq_flight_t *f, mq_item_t **out)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < f->cap; i++)
        if (f->slot[i].pid) out[k++] = &f->slot[i];
    qsort(out, k, sizeof(*out), mq__by_seq);
    return k;
}

void mq_flight_free(mq_flight_t *f)
{
    for (uint32_t i = 0; i < f->cap; i++)
        if (f->slot[i].pid) msg_unref(f->slot[i].m);
    free(f->slot);
    memset(f, 0, sizeof(*f));
}

/* ---- the total: a max-heap of FIFOs by bytes ---- */

static void mq__heap_set(mq_total_t *t, uint32_t i, mq_fifo_t *q)
{
    t->heap[i] = q;
    q->heap_i = i + 1;
}

static void mq__sift_up(mq_total_t *t, uint32_t i)
{
    mq_fifo_t *q = t->heap[i];
    while (i > 0 && t->heap[(i - 1) / 2]->bytes < q->bytes) {
        mq__heap_set(t, i, t->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    mq__heap_set(t, i, q);
}

static void mq__sift_down(mq_total_t *t, uint32_t i)
{
    mq_fifo_t *q = t->heap[i];
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= t->n) break;
        if (c + 1 < t->n && t->heap[c + 1]->bytes > t->heap[c]->bytes) c++;
        if (q->bytes >= t->heap[c]->bytes) break;
        mq__heap_set(t, i, t->heap[c]);
        i = c;
    }
    mq__heap_set(t, i, q);
}

/* q's bytes changed by delta (signed): the total and q's place in the heap follow. */
static void mq__total_moved(mq_fifo_t *q, int64_t delta)
{
    mq_total_t *t = q->total;
    if (!t) return;
    t->bytes += (uint64_t)delta; /* wraps back for a negative delta */
    if (!t->max) return;
    if (q->heap_i && !q->n) { /* empty: leaves the heap */
        uint32_t i = q->heap_i - 1;
        q->heap_i = 0;
        if (i != --t->n) {
            mq__heap_set(t, i, t->heap[t->n]);
            mq__sift_down(t, i);
            mq__sift_up(t, i);
        }
    } else if (q->heap_i) {
        if (delta > 0) mq__sift_up(t, q->heap_i - 1);
        else mq__sift_down(t, q->heap_i - 1);
    } else if (q->n) {
        if (t->n == t->cap) {
            uint32_t cap = t->cap ? t->cap * 2 : 64;
            mq_fifo_t **nh = realloc(t->heap, cap * sizeof(*nh));
            if (!nh) return; /* not in the heap: only its own limits trim it */
            t->heap = nh;
            t->cap = cap;
        }
        t->heap[t->n] = q;
        mq__sift_up(t, t->n++);
    }
}

void mq_total_free(mq_total_t *t)
{
    free(t->heap);
    t->heap = NULL;
    t->n = t->cap = 0;
}

/* ---- waiting ---- */

uint64_t mq_item_bytes(const mq_item_t *it) { return (uint64_t)it->m->data_len + it->m->channel_len; }

/* Drops the oldest item of q (not empty). */
static void mq__drop_oldest(mq_fifo_t *q)
{
    msg_t *m = q->v[q->head].m;
    mq_fifo_pop(q);
    msg_unref(m);
}

/* Makes room for size more bytes in q's total: the oldest items of the largest FIFOs go. */
static void mq__fit_total(mq_fifo_t *q, uint64_t size)
{
    mq_total_t *t = q->total;
    while (t && t->max && t->n && t->bytes + size > t->max) {
        mq_fifo_t *big = t->heap[0];
        mq__drop_oldest(big);
        if (t->dropped) t->dropped(t->arg, big);
    }
}

int mq_fifo_push(mq_fifo_t *q, const mq_item_t *it, uint32_t max, uint64_t max_bytes)
{
    int dropped = 0;
    uint64_t size = mq_item_bytes(it);
    if (!max || size > max_bytes || (q->total && q->total->max && size > q->total->max)) {
        msg_unref(it->m);
        return 1;
    }
    while (q->n && (q->n >= max || q->bytes + size > max_bytes)) {
        mq__drop_oldest(q);
        dropped++;
    }
    if (q->n == q->cap) {
        uint32_t cap = q->cap ? q->cap * 2 : 8;
        if (cap > max) cap = max;
        mq_item_t *nv = malloc(cap * sizeof(*nv));
        if (!nv) return HR_ENOMEM;
        for (uint32_t i = 0; i < q->n; i++) nv[i] = q->v[(q->head + i) % q->cap];
        free(q->v);
        q->v = nv;
        q->cap = cap;
        q->head = 0;
    }
    mq__fit_total(q, size);
    q->v[(q->head + q->n) % q->cap] = *it;
    q->n++;
    q->bytes += size;
    mq__total_moved(q, (int64_t)size);
    return dropped;
}

void mq_fifo_pop(mq_fifo_t *q)
{
    if (!q->n) return;
    uint64_t size = mq_item_bytes(&q->v[q->head]);
    if (size > q->bytes) size = q->bytes;
    q->bytes -= size;
    q->head = (q->head + 1) % q->cap;
    q->n--;
    mq__total_moved(q, -(int64_t)size);
}

void mq_fifo_free(mq_fifo_t *q)
{
    for (uint32_t i = 0; i < q->n; i++) msg_unref(q->v[(q->head + i) % q->cap].m);
    free(q->v);
    uint64_t bytes = q->bytes;
    *q = (mq_fifo_t){.total = q->total, .heap_i = q->heap_i};
    mq__total_moved(q, -(int64_t)bytes); /* empty: leaves the total's heap */
}
