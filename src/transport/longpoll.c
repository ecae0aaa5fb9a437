/* longpoll.c - long polling without the lost-message race.
 *
 * GET /sub/{channels}?mode=longpoll&last_id=CURSOR answers at once when anything is after the
 * cursor (exactly like a short poll). Otherwise the request is parked: the connection subscribes
 * to its channels and answers with the first message that arrives, or with an empty answer and
 * the same cursor when longpoll_timeout passes. Because the client always sends back the cursor
 * it was given, anything published between two polls is in history after that cursor and comes
 * with the next poll: nothing is lost in the gap between requests, nothing comes twice. */
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"
#include "transport.h"

typedef struct {
    xp_ctx_t *x;
    http_conn_t *hc;
    uint64_t until_ms; /* wall clock: answered (nothing new) then: timeout or the credential's expiry */
    subreq_t sr; /* channels and the cursor to answer with */
    bool now;    /* a short poll waiting for its channels to load */
    uint32_t nsubs;
    xsub_t subs[];
} longpoll_t;

static void longpoll__release(longpoll_t *lp)
{
    for (uint32_t i = 0; i < lp->nsubs; i++) hub_unsubscribe(lp->x->hub, &lp->subs[i].s);
    lp->nsubs = 0;
}

static void longpoll__answer(longpoll_t *lp, msg_t **msgs, uint32_t n)
{
    http_conn_t *hc = lp->hc;
    span_t names[SUB_MAX_CHANNELS];
    bytes_t *b = poll_answer(names, subreq_names(&lp->sr, names), lp->sr.cursor, msgs, n, NULL);
    longpoll__release(lp);
    free(lp);
    if (!b) {
        http_error(hc, HR_ENOMEM, "out of memory");
        return;
    }
    hc->srv->metrics->delivered[XP_LONGPOLL] += n;
    http_respond(hc, 200, "application/json", b->data, b->len, "Cache-Control: no-cache\r\n");
    bytes_unref(b);
}

/* ENC_LONGPOLL: the answer every single-channel waiter gets for m, built once. */
static bytes_t *longpoll__encode(const msg_t *m)
{
    span_t name = {m->channel, m->channel_len};
    msg_t *mm = (msg_t *)m; /* poll_answer only reads it (and fills its JSON cache) */
    return poll_answer(&name, 1, &m->id, &mm, 1, NULL);
}

static void longpoll__deliver(sub_t *s, msg_t *m)
{
    xsub_t *xs = container_of(s, xsub_t, s);
    longpoll_t *lp = xs->s.owner;
    /* a store catching the channel up (engine = redis) delivers what this node lacked, which the
     * client may have seen elsewhere already */
    if (lp->hc->base.closing || m->id <= lp->sr.cursor[xs->idx]) return;
    lp->sr.cursor[xs->idx] = m->id;
    if (lp->sr.nch > 1) {
        longpoll__answer(lp, &m, 1);
        return;
    }
    /* single channel: the answer depends only on the message, so it is shared */
    http_conn_t *hc = lp->hc;
    bytes_t *body = msg_encoded(m, ENC_LONGPOLL, longpoll__encode);
    longpoll__release(lp);
    free(lp);
    if (!body) {
        http_error(hc, HR_ENOMEM, "out of memory");
        return;
    }
    hc->srv->metrics->delivered[XP_LONGPOLL]++;
    http_respond_shared(hc, 200, "application/json", body, "Cache-Control: no-cache\r\n");
}

/* A channel was loaded or caught up by the store (or restarted): answer if there is something
 * to say now (a short poll: once every channel is loaded). A subscriber that came without a
 * cursor starts from the loaded channel's last id. */
static void longpoll__resync(sub_t *s)
{
    xsub_t *xs = container_of(s, xsub_t, s);
    longpoll_t *lp = s->owner;
    if (lp->hc->base.closing) return;
    if (!lp->sr.has_cursor) lp->sr.cursor[xs->idx] = s->ch->last_id;
    uint64_t cursor[SUB_MAX_CHANNELS];
    if (!poll_respond_now(lp->x, lp->hc, &lp->sr, lp->now ? XP_POLL : XP_LONGPOLL, !lp->now, cursor)) return;
    longpoll__release(lp);
    free(lp);
}

static void longpoll__on_timer(http_conn_t *hc)
{
    longpoll_t *lp = hc->xstate;
    /* the timer wheel counts from the loop's cached clock and may fire a little early: a poll
     * held until its token's expiry must not be answered while the token is still valid */
    uint64_t now = loop_wall_ms();
    if (now < lp->until_ms) {
        conn_timer(&hc->base, lp->until_ms - now);
        return;
    }
    longpoll__answer(lp, NULL, 0);
}

static void longpoll__on_close(http_conn_t *hc)
{
    longpoll_t *lp = hc->xstate;
    longpoll__release(lp);
    free(lp);
}

/* The server is stopping: the poll is answered now with what it has (nothing new: its cursor),
 * so the client polls again - elsewhere - instead of seeing the connection cut. */
static void longpoll__on_shutdown(http_conn_t *hc) { longpoll__answer(hc->xstate, NULL, 0); }

static const http_xport_ops_t longpoll_ops = {
    .on_close = longpoll__on_close,
    .on_timer = longpoll__on_timer,
    .on_shutdown = longpoll__on_shutdown,
};

void longpoll_serve(xp_ctx_t *x, http_conn_t *hc, subreq_t *sr)
{
    uint64_t cursor[SUB_MAX_CHANNELS];
    if (poll_respond_now(x, hc, sr, XP_LONGPOLL, true, cursor)) return; /* something to say now */
    longpoll_wait(x, hc, sr, cursor, false);
}

void longpoll_wait(xp_ctx_t *x, http_conn_t *hc, const subreq_t *sr, const uint64_t *cursor, bool answer_now)
{
    longpoll_t *lp = calloc(1, sizeof(*lp) + sr->nch * sizeof(xsub_t));
    if (!lp) {
        http_error(hc, HR_ENOMEM, "out of memory");
        return;
    }
    lp->x = x;
    lp->hc = hc;
    lp->sr = *sr;
    lp->now = answer_now;
    memcpy(lp->sr.cursor, cursor, sr->nch * sizeof(*cursor));
    for (uint32_t i = 0; i < sr->nch; i++) {
        lp->subs[i].idx = i;
        lp->subs[i].s.deliver = longpoll__deliver;
        lp->subs[i].s.resync = longpoll__resync;
        lp->subs[i].s.owner = lp;
        list_init(&lp->subs[i].s.link);
        hub_subscribe(x->hub, sr->ch[i], &lp->subs[i].s);
    }
    lp->nsubs = sr->nch;
    http_park(hc, &longpoll_ops, lp, XP_LONGPOLL);
    /* held no longer than the credential is valid: answered (nothing new) at its expiry, so the
     * next poll must bring a fresh one */
    uint64_t wait = x->cfg->longpoll_timeout_ms, now = loop_wall_ms();
    if (sr->exp_ms && sr->exp_ms < now + wait) wait = sr->exp_ms > now ? sr->exp_ms - now : 0;
    lp->until_ms = now + wait;
    conn_timer(&hc->base, wait);
}
