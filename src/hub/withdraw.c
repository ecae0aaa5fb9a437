/* withdraw.c - withdrawing a published message (hub_withdraw) and deleting a channel's messages
 * (hub_clear), see hub.h.
 *
 * Ids in a history ring are contiguous (hist.h), so a withdrawn message cannot simply leave the
 * middle of the ring: its place gets a tombstone, a message of the same id and time with no data
 * and the MSG_WITHDRAWN flag. Readers skip tombstones (hub_after, hub_message), so polls, long
 * polls and resumes no longer return it, and the tombstone leaves with the limits like any
 * message. The store keeps the tombstone in the message's place (its append op overwrites the
 * record of that id), so a restart does not bring the message back. Live subscribers are told
 * through sub_t.event ("withdrawn"); a subscriber that was away learns nothing (the message is
 * just not in its replay).
 *
 * With a shared engine (engine = redis) the engine records the withdrawal or deletion for every
 * node (engine_t.withdraw, engine_t.clear) and each node's memory follows through
 * hub_withdrawn / hub_cleared: the node that asked when the engine answers, the others when its
 * notice reaches them. The memory steps below are the same for both engines. */
#include <stdlib.h>
#include <string.h>

#include <stdio.h>

#include "../core/err.h"
#include "../core/jsonesc.h"
#include "../core/log.h"
#include "hub.h"

/* Tells ch's subscribers event with json (and the observer that the history changed). */
static uint32_t hub__tell(hub_t *hub, chan_t *ch, const char *event, const char *json, size_t jn)
{
    uint32_t told = 0;
    list_node_t *pos, *tmp;
    list_each_safe(pos, tmp, &ch->subs)
    {
        sub_t *s = container_of(pos, sub_t, link);
        if (s->event) {
            s->event(s, event, json, jn);
            told++;
        }
    }
    if (hub->obs) hub->obs->changed(hub->obs->arg, ch);
    return told;
}

/* Tells ch's subscribers that message id was withdrawn. */
static uint32_t hub__tell_withdrawn(hub_t *hub, chan_t *ch, uint64_t id)
{
    char json[6 * HUB_MAX_CHANNEL + 64];
    size_t jn = (size_t)snprintf(json, sizeof(json), "{\"channel\":\"");
    jn += json_escape(ch->name, ch->name_len, json + jn, sizeof(json) - jn);
    jn += (size_t)snprintf(json + jn, sizeof(json) - jn, "\",\"id\":\"%llu\"}", (unsigned long long)id);
    return hub__tell(hub, ch, "withdrawn", json, jn);
}

/* The memory step: tomb (or, when NULL, a tombstone made from the message there) takes id's
 * place in ch's history if it is still there, and a retained message of that id goes. */
static void hub__tombstone(hub_t *hub, chan_t *ch, uint64_t id, msg_t *tomb)
{
    hist_t *h = &ch->hist;
    uint32_t i = hist_index_after(h, id - 1);
    if (i < h->count && hist_at(h, i)->id == id && !(hist_at(h, i)->flags & MSG_WITHDRAWN)) {
        msg_t *old = hist_at(h, i), *t = tomb ? msg_ref(tomb) : NULL;
        if (!t && (t = msg_new(ch->name, ch->name_len, old->event, old->event_len, "", 0, id, old->time_ms)))
            t->flags = MSG_WITHDRAWN;
        if (t) hist_replace(h, i, t);
        msg_unref(t);
    }
    if (ch->retained && ch->retained->id == id) hub__retain(hub, ch, NULL);
}

int hub_withdraw(hub_t *hub, const char *name, size_t n, uint64_t id, uint32_t *told)
{
    *told = 0;
    if (hub->engine) return HR_ENOTIMPL; /* the engine's op (engine_t.withdraw), then hub_withdrawn */
    chan_t *ch = hub_channel(hub, name, n, false);
    if (!ch) ch = hub_channel(hub, name, n, true); /* not in memory: the store may hold it */
    if (!ch) return hub->load_rc == HR_ENOMEM ? HR_ENOMEM : HR_ENOTFOUND;
    if (!hub_message(hub, name, n, id)) return HR_ENOTFOUND; /* also trims what aged out */
    hist_t *h = &ch->hist;
    msg_t *old = hist_at(h, hist_index_after(h, id - 1));
    msg_t *tomb = msg_new(ch->name, ch->name_len, old->event, old->event_len, "", 0, id, old->time_ms);
    if (!tomb) return HR_ENOMEM;
    tomb->flags = MSG_WITHDRAWN;
    bool retained = ch->retained && ch->retained->id == id;
    int rc = hub->store->ops->append(hub->store, tomb);
    if (rc == 0 && retained && hub->store->ops->retain) rc = hub->store->ops->retain(hub->store, NULL, name, n);
    if (rc == 0) rc = hub_commit(hub); /* durable before anyone is told */
    if (rc < 0) {
        log_warn("hub: withdrawing %.*s message %llu failed: %s", (int)n, name, (unsigned long long)id,
                 hr_strerror(rc));
        msg_unref(tomb);
        return rc;
    }
    /* the commit completed publishes waiting for it: their messages may have moved the ring */
    hub__tombstone(hub, ch, id, tomb);
    msg_unref(tomb);
    *told = hub__tell_withdrawn(hub, ch, id);
    return 0;
}

uint32_t hub_withdrawn(hub_t *hub, const char *name, size_t n, uint64_t id)
{
    chan_t *ch = hub_channel(hub, name, n, false);
    if (!ch) return 0; /* not here: it loads what the engine holds now */
    if (ch->loading) hub__held_withdraw(ch, id, 0);
    hub__tombstone(hub, ch, id, NULL);
    return hub__tell_withdrawn(hub, ch, id);
}

/* The memory step of a deletion: the history and the retained message go, the ids do not
 * (nothing up to last_id comes back); subscribers are told. */
static uint32_t hub__cleared(hub_t *hub, chan_t *ch, uint64_t last_id)
{
    if (ch->retained) hub__retain(hub, ch, NULL);
    hist_t *h = &ch->hist;
    while (h->count) hist_drop_oldest(h); /* the pool's accounting follows each message out */
    if (ch->loading) hub__held_withdraw(ch, 0, last_id);
    if (ch->last_id < last_id) ch->last_id = last_id; /* later arrivals up to it are ignored */
    if (ch->next_id <= ch->last_id) ch->next_id = ch->last_id + 1;
    ch->kept_from = ch->last_id + 1;
    char json[6 * HUB_MAX_CHANNEL + 64];
    size_t jn = (size_t)snprintf(json, sizeof(json), "{\"channel\":\"");
    jn += json_escape(ch->name, ch->name_len, json + jn, sizeof(json) - jn);
    jn += (size_t)snprintf(json + jn, sizeof(json) - jn, "\",\"last_id\":\"%llu\"}", (unsigned long long)last_id);
    return hub__tell(hub, ch, "deleted", json, jn);
}

int hub_clear(hub_t *hub, const char *name, size_t n, uint32_t *told, uint64_t *last_id)
{
    *told = 0;
    if (hub->engine) return HR_ENOTIMPL; /* the engine's op (engine_t.clear), then hub_cleared */
    chan_t *ch = hub_channel(hub, name, n, false);
    if (!ch) ch = hub_channel(hub, name, n, true); /* not in memory: the store may hold it */
    if (!ch) return hub->load_rc == HR_ENOMEM ? HR_ENOMEM : HR_ENOTFOUND;
    if (ch->npending && hub_commit(hub) < 0) return hub->store_fault ? hub->store_fault : HR_EIO; /* settle them first */
    if (!ch->last_id && !ch->retained) return HR_ENOTFOUND;
    store_t *st = hub->store;
    int rc = st->ops->trim ? st->ops->trim(st, name, n, ch->last_id + 1) : 0;
    if (rc == 0 && ch->retained && st->ops->retain) rc = st->ops->retain(st, NULL, name, n);
    if (rc == 0) rc = hub_commit(hub); /* durable before anyone is told */
    if (rc < 0) {
        log_warn("hub: deleting the messages of %.*s failed: %s", (int)n, name, hr_strerror(rc));
        return rc;
    }
    *last_id = ch->last_id;
    *told = hub__cleared(hub, ch, ch->last_id);
    return 0;
}

uint32_t hub_cleared(hub_t *hub, const char *name, size_t n, uint64_t last_id)
{
    chan_t *ch = hub_channel(hub, name, n, false);
    return ch ? hub__cleared(hub, ch, last_id) : 0;
}
