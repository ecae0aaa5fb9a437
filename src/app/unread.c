/* unread.c - the unread event: every subscription of a user's personal channel (user_channel)
 * is told the user's unread counts, {"user":U,"total":N,"channels":{C:N,...}} (the body of
 * GET /unread), through sub_t.event ("unread"): right after it subscribes, and again whenever
 * the counts may have changed - a message on the personal channel or on a channel the user
 * tracks (published here or on another node), a read by any device or by a backend, a
 * withdrawal, a message's time-to-live running out, the store reloading a channel.
 *
 * The hub's observer (hub_observer_t) marks users "dirty"; readstate_flush(), run once per loop
 * iteration after the commit, counts once per dirty user and sends the counts to all of its feed
 * subscriptions when they differ from what it told them last (a hash of the text), else only to
 * the subscriptions made since (the newest of the channel's list); so a burst of publishes or
 * reads costs one count per user, and a device coming or going costs the others nothing.
 *
 * A user is online here while its personal channel has subscribers here. While it is, every
 * channel it tracks (has a read cursor on) is watched: held in memory by hub_watch (so a shared
 * engine keeps feeding it) and listed in a watch entry whose changes mark its online users dirty.
 * The personal channel needs no watch: its subscribers keep it; the broadcast channel (every
 * user's, broadcast_channel) is watched while anyone is online. A timer per online user fires
 * at the next expiry among its unread messages. Everything here is bounded by the cursors
 * (max_read_cursors) and the users online. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/log.h"
#include "pubreq.h"
#include "readstate_internal.h"

static bool rs__watch_eq(const hmap_node_t *n, const void *k, size_t len)
{
    const rs_watch_t *w = container_of(n, rs_watch_t, node);
    return w->len == len && memcmp(w->name, k, len) == 0;
}

void rs__dirty(readstate_t *rs, rs_user_t *u)
{
    if (!list_linked(&u->dlink)) list_push_back(&rs->dirty, &u->dlink);
}

/* The user whose personal channel ch is, when this node knows it. */
static rs_user_t *rs__feed_owner(readstate_t *rs, const chan_t *ch, bool create)
{
    const char *user;
    size_t un = pubreq_channel_user(rs->x->cfg->user_channel, ch->name, ch->name_len, &user);
    return un ? rs__user(rs, user, un, create) : NULL;
}

/* Starts watching cursor c's channel for its (online) user. */
static void rs__watch(readstate_t *rs, rs_cur_t *c)
{
    size_t n;
    const char *name = rs__chan(c, &n);
    hmap_node_t *hn = hmap_get(&rs->watches, name, n);
    rs_watch_t *w = hn ? container_of(hn, rs_watch_t, node) : NULL;
    if (!w) {
        chan_t *ch = hub_channel(rs->x->hub, name, n, true);
        if (!ch || !(w = calloc(1, sizeof(*w) + n))) {
            log_warn("readstate: cannot watch %.*s for unread events: %s", (int)n, name,
                     ch ? "out of memory" : "channel refused");
            return;
        }
        hub_watch(rs->x->hub, ch, 1);
        memcpy(w->name, name, n);
        w->len = (uint16_t)n;
        list_init(&w->curs);
        hmap_insert(&rs->watches, &w->node, hmap_hash(&rs->watches, name, n));
        rs->nwatches++;
    }
    list_push_back(&w->curs, &c->wlink);
    c->w = w;
}

static void rs__unwatch(readstate_t *rs, rs_cur_t *c)
{
    rs_watch_t *w = c->w;
    if (!w) return;
    list_unlink(&c->wlink);
    c->w = NULL;
    if (!list_empty(&w->curs)) return;
    chan_t *ch = hub_channel(rs->x->hub, w->name, w->len, false);
    if (ch) hub_watch(rs->x->hub, ch, -1);
    hmap_remove(&rs->watches, &w->node);
    rs->nwatches--;
    free(w);
}

void rs__cur_added(readstate_t *rs, rs_cur_t *c)
{
    if (c->u->online) rs__watch(rs, c);
}

static void rs__expired(tw_entry_t *e)
{
    rs_user_t *u = container_of(e, rs_user_t, tmr);
    rs__dirty(u->rs, u);
}

static void rs__online(readstate_t *rs, rs_user_t *u, bool on)
{
    u->online = on;
    rs->online += on ? 1u : (uint32_t)-1;
    if (on) list_push_back(&rs->onl, &u->olink);
    else list_unlink(&u->olink);
    const char *bc = rs->x->cfg->broadcast_channel;
    if (bc[0] && rs->online == (on ? 1u : 0u)) { /* the first one online, or the last gone: */
        chan_t *ch = hub_channel(rs->x->hub, bc, strlen(bc), on); /* the broadcast channel is watched */
        if (ch && (on || ch->nwatch)) hub_watch(rs->x->hub, ch, on ? 1 : -1);
    }
    list_node_t *pos, *tmp;
    list_each_safe(pos, tmp, &u->curs)
    {
        rs_cur_t *c = container_of(pos, rs_cur_t, link);
        if (on) rs__watch(rs, c);
        else rs__unwatch(rs, c);
    }
    if (!on) tw_stop(&rs->x->hub->loop->wheel, &u->tmr);
}

/* Sends u's counts to every subscription of its personal channel here; u goes offline (and is
 * forgotten when it has no cursor) when there is none. */
static void rs__push(readstate_t *rs, rs_user_t *u)
{
    hub_t *hub = rs->x->hub;
    char feed[HUB_MAX_CHANNEL + 1];
    ssize_t fn = pubreq_user_channel(rs->x->cfg->user_channel, u->id, u->len, feed, sizeof(feed));
    chan_t *ch = fn > 0 ? hub_channel(hub, feed, (size_t)fn, false) : NULL;
    uint32_t told = 0;
    list_node_t *pos, *tmp;
    if (ch) list_each_safe(pos, tmp, &ch->subs) told += container_of(pos, sub_t, link)->event != NULL;
    if (!told) {
        if (u->online) rs__online(rs, u, false);
        if (!u->n) {
            hmap_remove(&rs->users, &u->node);
            free(u);
        }
        return;
    }
    if (!u->online) rs__online(rs, u, true);
    rs_counts_t q = {0};
    size_t n = 0;
    char *s = rs__counts(rs, u->id, u->len, &q, &n);
    if (q.loading) { /* a channel is being loaded: its release marks the user dirty again */
        free(s);
        return;
    }
    if (!s) {
        log_warn("readstate: no memory for an unread event");
        return;
    }
    /* the counts as they were last told: only new subscriptions hear them (they were added last) */
    uint64_t h = hmap_hash(&rs->users, s, n);
    bool same = u->told && h == u->told_hash;
    uint32_t greet = same ? u->greet : UINT32_MAX;
    u->told = true;
    u->told_hash = h;
    u->greet = 0;
    ch = hub_channel(hub, feed, (size_t)fn, false); /* counting may have loaded channels */
    for (pos = ch ? ch->subs.prev : NULL; ch && pos != &ch->subs && greet; pos = tmp) {
        tmp = pos->prev;
        sub_t *sb = container_of(pos, sub_t, link);
        if (!sb->event) continue;
        greet--;
        sb->event(sb, "unread", s, n);
        rs->events++;
    }
    free(s);
    uint64_t next_exp = q.next_exp;
    tw_t *wheel = &hub->loop->wheel;
    if (next_exp) {
        uint64_t now = loop_wall_ms();
        if (!u->tmr.cb) tw_entry_init(&u->tmr, rs__expired);
        tw_arm(wheel, &u->tmr, loop_now(hub->loop) + (next_exp > now ? next_exp - now : 0) + 1);
    } else if (tw_armed(&u->tmr)) {
        tw_stop(wheel, &u->tmr);
    }
}

void readstate_flush(readstate_t *rs)
{
    while (!list_empty(&rs->dirty)) {
        rs_user_t *u = container_of(rs->dirty.next, rs_user_t, dlink);
        list_unlink(&u->dlink);
        rs__push(rs, u);
    }
}

/* hub_observer_t.subscribed: a subscription to a personal channel comes or goes. */
static void rs__on_sub(void *arg, chan_t *ch, sub_t *s, bool added)
{
    readstate_t *rs = arg;
    if (!s->event) return;
    rs_user_t *u = rs__feed_owner(rs, ch, added);
    if (!u) return;
    u->greet += added; /* a new subscription is told the counts; a leaving one only may take the user offline */
    rs__dirty(rs, u);
}

/* hub_observer_t.changed: a personal channel's or a watched channel's history changed. */
static void rs__on_change(void *arg, chan_t *ch)
{
    readstate_t *rs = arg;
    if (!rs->online) return; /* nobody's devices here to tell (watches exist only for users online) */
    rs_user_t *u = rs__feed_owner(rs, ch, false);
    if (u && u->online) rs__dirty(rs, u);
    list_node_t *pos, *tmp;
    const char *bc = rs->x->cfg->broadcast_channel;
    if (bc[0] && strlen(bc) == ch->name_len && memcmp(bc, ch->name, ch->name_len) == 0)
        list_each_safe(pos, tmp, &rs->onl) rs__dirty(rs, container_of(pos, rs_user_t, olink)); /* everyone's */
    if (!rs->nwatches) return;
    hmap_node_t *hn = hmap_get(&rs->watches, ch->name, ch->name_len);
    if (!hn) return;
    list_each_safe(pos, tmp, &container_of(hn, rs_watch_t, node)->curs)
        rs__dirty(rs, container_of(pos, rs_cur_t, wlink)->u);
}

int rs__push_init(readstate_t *rs)
{
    if (hmap_init(&rs->watches, 64, rs__watch_eq) < 0) return -1;
    rs->obs = (hub_observer_t){.subscribed = rs__on_sub, .changed = rs__on_change, .arg = rs};
    rs->x->hub->obs = &rs->obs;
    return 0;
}

void rs__push_free(readstate_t *rs)
{
    if (rs->x->hub->obs == &rs->obs) rs->x->hub->obs = NULL;
    hmap_iter_t it;
    hmap_iter_init(&it, &rs->users);
    for (hmap_node_t *n; (n = hmap_iter_next(&it));) {
        rs_user_t *u = container_of(n, rs_user_t, node);
        if (u->tmr.cb) tw_stop(&rs->x->hub->loop->wheel, &u->tmr);
    }
    hmap_iter_init(&it, &rs->watches);
    for (hmap_node_t *n; (n = hmap_iter_next(&it));) free(container_of(n, rs_watch_t, node));
    hmap_free(&rs->watches);
}
