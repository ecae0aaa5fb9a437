/* timer.c - hashed timer wheel; see timer.h for the design. */
#include "timer.h"

void tw_init(tw_t *w, uint64_t now_ms)
{
    for (int i = 0; i < TW_SLOTS; i++) list_init(&w->slots[i]);
    w->tick = now_ms / TW_TICK_MS;
    w->armed = 0;
}

static void tw_link(tw_t *w, tw_entry_t *e)
{
    uint64_t t = e->deadline / TW_TICK_MS;
    /* overdue: fire on the next tick processed. While tw_run is working on slot w->tick that slot
     * has been set aside, so an entry armed from a callback goes to the following one. */
    uint64_t first = w->running ? w->tick + 1 : w->tick;
    if (t < first) t = first;
    list_push_back(&w->slots[t % TW_SLOTS], &e->link);
}

void tw_arm(tw_t *w, tw_entry_t *e, uint64_t deadline_ms)
{
    if (tw_armed(e)) {
        if (deadline_ms >= e->deadline) { /* later: relinked lazily when its slot fires */
            e->deadline = deadline_ms;
            return;
        }
        list_unlink(&e->link);
        w->armed--;
    }
    e->deadline = deadline_ms;
    tw_link(w, e);
    w->armed++;
}

void tw_stop(tw_t *w, tw_entry_t *e)
{
    if (tw_armed(e)) {
        list_unlink(&e->link);
        w->armed--;
    }
}

int tw_run(tw_t *w, uint64_t now_ms)
{
    uint64_t now_tick = now_ms / TW_TICK_MS;
    int fired = 0;
    /* after a long stall, one full turn visits every slot */
    if (now_tick > w->tick + TW_SLOTS) w->tick = now_tick - TW_SLOTS;
    w->running = 1;
    while (w->tick <= now_tick) {
        list_t *slot = &w->slots[w->tick % TW_SLOTS];
        list_t due;
        list_init(&due);
        /* move the whole slot aside so callbacks can arm entries into it safely */
        if (!list_empty(slot)) {
            due.next = slot->next;
            due.prev = slot->prev;
            due.next->prev = &due;
            due.prev->next = &due;
            list_init(slot);
        }
        while (!list_empty(&due)) {
            tw_entry_t *e = container_of(due.next, tw_entry_t, link);
            list_unlink(&e->link);
            if (e->deadline / TW_TICK_MS > w->tick && e->deadline > now_ms) {
                /* belongs to a later turn, or was moved later: relink where it belongs */
                uint64_t t = e->deadline / TW_TICK_MS;
                list_push_back(&w->slots[t % TW_SLOTS], &e->link);
                continue;
            }
            w->armed--;
            fired++;
            e->cb(e);
        }
        w->tick++;
    }
    w->running = 0;
    return fired;
}

int tw_next_ms(const tw_t *w, uint64_t now_ms)
{
    if (!w->armed) return -1;
    uint64_t now_tick = now_ms / TW_TICK_MS;
    if (now_tick >= w->tick) return 0;
    for (uint64_t t = w->tick; t < w->tick + TW_SLOTS; t++) {
        if (!list_empty(&w->slots[t % TW_SLOTS])) {
            uint64_t due = t * TW_TICK_MS;
            return due > now_ms ? (int)(due - now_ms) : 0;
        }
    }
    return TW_SLOTS * TW_TICK_MS;
}
