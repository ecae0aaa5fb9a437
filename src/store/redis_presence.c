/* redis_presence.c - presence and users across nodes for the Redis engine (hub/presence.h,
 * engine.h's pres_write, pres_list, user_write, user_status). The per-node subscriber counts of
 * GET /channels/{ch} (occupancy) are redis_feed.c's.
 *
 * Keys (P = redis_prefix):
 *   P:pn            zset  live node -> until when it counts (Redis ms): its heartbeat's deadline
 *   P:pgone         zset  node found dead -> its last deadline, until its keys are cleaned up
 *   P:pr:NODE:CH    hash  user -> NODE's subscriptions of that user to CH ("" : anonymous ones)
 *   P:ps:CH         set   nodes with a P:pr:NODE:CH
 *   P:pc:NODE       set   channels with a P:pr:NODE:CH
 *   P:u:USER        hash  NODE -> "sse=1,ws_json=2" (USER's connections there); "~ls" -> last seen ms
 *   P:pu:NODE       set   users with a NODE field
 *   P:prw:NODE      set   "CH\nUSER" written again during NODE's full rewrite (until its end)
 * Each node writes only its own share (absolute counts, so a repeated or reordered write is
 * harmless, and the full rewrite after a loss repairs everything); readers sum the shares of the
 * nodes still live in P:pn.
 *
 * Liveness. Every beat (a quarter of presence_node_timeout, at most a second) one script moves
 * this node's deadline to now + presence_node_timeout (Redis's clock: TIME), moves nodes whose
 * deadline passed to P:pgone, and cleans up a bounded part (RD_PRES_BUDGET channels and users) of
 * one gone node: its hashes are deleted, and each of its users who is on no other live node gets
 * a "leave" and a last_seen. So a node that dies without cleaning up stops counting within
 * presence_node_timeout, and its keys go within a few beats. A node the script finds missing
 * from P:pn (its first beat, one taken for dead, or a Redis that lost its data) answers 1: the
 * node then writes its whole share again (ENGINE_PRES_RESYNC); so does a node whose write failed
 * (after its next successful beat). A full rewrite is mark and sweep: its entries are compared
 * with what is there (no join or leave for what did not change) and marked, and its end removes
 * this node's unmarked entries (with their leaves). A node that stops cleanly removes its share
 * at once (rd_pres_close, blocking and bounded, at shut-down).
 *
 * Joins and leaves. The write script sees whether a user's count on this node goes from 0 to
 * more or back, and then whether the user is on any other live node; if not, it publishes
 * "join CH\nUSER" or "leave CH\nUSER" on P:DB:m:$pres, which every node's feed hands to
 * presence (engine_t.on_presence). Redis runs scripts one at a time, so two nodes joining the
 * same user at once produce one join.
 *
 * Nothing here blocks the loop after start-up: every script goes over the command connection,
 * and list and status requests are parked by their routes until answered (rd_cancel forgets
 * them). Beats and writes are background work: they are not sent while half of
 * redis_max_inflight is in flight (publishes keep their room; a write held back that way is a
 * failed one: everything is written again after the next beat). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/err.h"
#include "../core/log.h"
#include "redis_internal.h"

#define RD_PRES_BUDGET 200  /* channels and users of a gone node cleaned up per beat */
#define RD_PRES_MAX_BATCH 256

struct rd_pres {
    rd_t *r;
    tw_entry_t beat;
    uint32_t beat_ms;
    bool busy;     /* a beat is in flight */
    bool lost;     /* a write failed: write everything again after the next beat */
    list_t waits;  /* rd_pwait_t: list and status requests waiting for their answer */
    uint64_t beats, writes, failed, events;
};

/* The helpers every script starts with: P and NODE (ARGV[1], ARGV[2]), Redis's time, whether a
 * node is live, whether a user is subscribed to a channel on another live node. */
#define RD_PRES_LIB                                                                                                   \
    "if redis.replicate_commands then redis.replicate_commands() end\n"                                               \
    "local P, node = ARGV[1], ARGV[2]\n"                                                                              \
    "local t = redis.call('TIME')\n"                                                                                  \
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"                                         \
    "local function alive(n)\n"                                                                                       \
    "  local s = redis.call('ZSCORE', P .. ':pn', n)\n"                                                               \
    "  return s and tonumber(s) >= now\n"                                                                             \
    "end\n"                                                                                                           \
    "local function elsewhere(ch, user, except)\n"                                                                    \
    "  for _, n in ipairs(redis.call('SMEMBERS', P .. ':ps:' .. ch)) do\n"                                            \
    "    if n ~= except and alive(n) and redis.call('HEXISTS', P .. ':pr:' .. n .. ':' .. ch, user) == 1 then\n"      \
    "      return true\n"                                                                                             \
    "    end\n"                                                                                                       \
    "  end\n"                                                                                                         \
    "  return false\n"                                                                                                \
    "end\n"                                                                                                           \
    "local function gone_user(key, seen, keep)\n"                                                                     \
    "  local ls = tonumber(redis.call('HGET', key, '~ls') or '0')\n"                                                  \
    "  if seen > ls then redis.call('HSET', key, '~ls', seen) end\n"                                                  \
    "  if redis.call('HLEN', key) <= 1 then redis.call('PEXPIRE', key, keep) end\n"                                   \
    "end\n"                                                                                                           \
    "local function cleanup(d, budget, feed, seen, keep)\n"                                                           \
    "  local chans = redis.call('SPOP', P .. ':pc:' .. d, budget)\n"                                                  \
    "  for _, ch in ipairs(chans) do\n"                                                                               \
    "    local key = P .. ':pr:' .. d .. ':' .. ch\n"                                                                 \
    "    local users = redis.call('HKEYS', key)\n"                                                                    \
    "    redis.call('DEL', key)\n"                                                                                    \
    "    redis.call('SREM', P .. ':ps:' .. ch, d)\n"                                                                  \
    "    for _, u in ipairs(users) do\n"                                                                              \
    "      if u ~= '' and not elsewhere(ch, u, d) then\n"                                                             \
    "        redis.call('PUBLISH', feed, 'leave ' .. ch .. '\\n' .. u)\n"                                             \
    "      end\n"                                                                                                     \
    "    end\n"                                                                                                       \
    "  end\n"                                                                                                         \
    "  local us = redis.call('SPOP', P .. ':pu:' .. d, budget)\n"                                                     \
    "  for _, u in ipairs(us) do\n"                                                                                   \
    "    local key = P .. ':u:' .. u\n"                                                                               \
    "    redis.call('HDEL', key, d)\n"                                                                                \
    "    gone_user(key, seen, keep)\n"                                                                                \
    "  end\n"                                                                                                         \
    "  return #chans < budget and #us < budget\n"                                                                     \
    "end\n"

/* ARGV: P NODE TTL FEED BUDGET KEEP -> 1 when NODE was not live (write everything again). */
static const char RD_PBEAT[] = RD_PRES_LIB
    "local ttl, feed, budget, keep = tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])\n"
    "local new = redis.call('ZADD', P .. ':pn', now + ttl, node)\n"
    "local dead = redis.call('ZRANGEBYSCORE', P .. ':pn', '-inf', '(' .. now, 'WITHSCORES', 'LIMIT', 0, 16)\n"
    "for i = 1, #dead, 2 do\n"
    "  redis.call('ZREM', P .. ':pn', dead[i])\n"
    "  redis.call('ZADD', P .. ':pgone', dead[i + 1], dead[i])\n"
    "end\n"
    "local gone = redis.call('ZRANGE', P .. ':pgone', 0, 0, 'WITHSCORES')\n"
    "if #gone > 0 then\n"
    "  local d = gone[1]\n"
    "  if alive(d) or cleanup(d, budget, feed, tonumber(gone[2]) - ttl, keep) then\n"
    "    redis.call('ZREM', P .. ':pgone', d)\n"
    "  end\n"
    "end\n"
    "return new\n";

/* ARGV: P NODE FEED PHASE (ENGINE_WRITE*: 0 write, 1 first and 2 next batch of a full rewrite),
 * then (CH USER COUNT EVENTS) per entry. */
static const char RD_PWRITE[] = RD_PRES_LIB
    "local feed, phase, mark = ARGV[3], ARGV[4], P .. ':prw:' .. node\n"
    "if phase == '1' then redis.call('DEL', mark) end\n"
    "for i = 5, #ARGV - 3, 4 do\n"
    "  local ch, user, c, ev = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3]\n"
    "  local key = P .. ':pr:' .. node .. ':' .. ch\n"
    "  if phase ~= '0' then redis.call('SADD', mark, ch .. '\\n' .. user) end\n"
    "  local had = redis.call('HEXISTS', key, user) == 1\n"
    "  if c > 0 then\n"
    "    redis.call('HSET', key, user, c)\n"
    "    redis.call('SADD', P .. ':ps:' .. ch, node)\n"
    "    redis.call('SADD', P .. ':pc:' .. node, ch)\n"
    "  else\n"
    "    redis.call('HDEL', key, user)\n"
    "    if redis.call('EXISTS', key) == 0 then\n"
    "      redis.call('SREM', P .. ':ps:' .. ch, node)\n"
    "      redis.call('SREM', P .. ':pc:' .. node, ch)\n"
    "    end\n"
    "  end\n"
    "  if ev == '1' and user ~= '' and had ~= (c > 0) and not elsewhere(ch, user, node) then\n"
    "    redis.call('PUBLISH', feed, (c > 0 and 'join ' or 'leave ') .. ch .. '\\n' .. user)\n"
    "  end\n"
    "end\n"
    "return 1\n";

/* ARGV: P NODE FEED: the end of a full rewrite: this node's entries not written again go. */
static const char RD_PSWEEP[] = RD_PRES_LIB
    "local feed, mark = ARGV[3], P .. ':prw:' .. node\n"
    "for _, ch in ipairs(redis.call('SMEMBERS', P .. ':pc:' .. node)) do\n"
    "  local key = P .. ':pr:' .. node .. ':' .. ch\n"
    "  for _, u in ipairs(redis.call('HKEYS', key)) do\n"
    "    if redis.call('SISMEMBER', mark, ch .. '\\n' .. u) == 0 then\n"
    "      redis.call('HDEL', key, u)\n"
    "      if u ~= '' and not elsewhere(ch, u, node) then\n"
    "        redis.call('PUBLISH', feed, 'leave ' .. ch .. '\\n' .. u)\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  if redis.call('EXISTS', key) == 0 then\n"
    "    redis.call('SREM', P .. ':ps:' .. ch, node)\n"
    "    redis.call('SREM', P .. ':pc:' .. node, ch)\n"
    "  end\n"
    "end\n"
    "redis.call('DEL', mark)\n"
    "return 1\n";

/* ARGV: P NODE RESET KEEP, then (USER KINDS LAST_SEEN) per entry; KINDS "" : offline here. */
static const char RD_UWRITE[] = RD_PRES_LIB
    "local keep = tonumber(ARGV[4])\n"
    "if ARGV[3] == '1' then\n"
    "  for _, u in ipairs(redis.call('SMEMBERS', P .. ':pu:' .. node)) do\n"
    "    redis.call('HDEL', P .. ':u:' .. u, node)\n"
    "  end\n"
    "  redis.call('DEL', P .. ':pu:' .. node)\n"
    "end\n"
    "for i = 5, #ARGV - 2, 3 do\n"
    "  local user, kinds, seen = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])\n"
    "  local key = P .. ':u:' .. user\n"
    "  if kinds ~= '' then\n"
    "    redis.call('HSET', key, node, kinds)\n"
    "    redis.call('PERSIST', key)\n"
    "    redis.call('SADD', P .. ':pu:' .. node, user)\n"
    "  else\n"
    "    redis.call('HDEL', key, node)\n"
    "    redis.call('SREM', P .. ':pu:' .. node, user)\n"
    "    gone_user(key, seen, keep)\n"
    "  end\n"
    "end\n"
    "return 1\n";

/* ARGV: P NODE CH MAX -> {nodes, anonymous, connections, users, USER1, COUNT1, ...} (the first MAX
 * users by id). */
static const char RD_PLIST[] = RD_PRES_LIB
    "local ch, max = ARGV[3], tonumber(ARGV[4])\n"
    "local users, names, anon, conns, nodes = {}, {}, 0, 0, 0\n"
    "for _, n in ipairs(redis.call('SMEMBERS', P .. ':ps:' .. ch)) do\n"
    "  if alive(n) then\n"
    "    nodes = nodes + 1\n"
    "    local h = redis.call('HGETALL', P .. ':pr:' .. n .. ':' .. ch)\n"
    "    for i = 1, #h, 2 do\n"
    "      local u, c = h[i], tonumber(h[i + 1])\n"
    "      conns = conns + c\n"
    "      if u == '' then anon = anon + c\n"
    "      else\n"
    "        if not users[u] then users[u] = 0; names[#names + 1] = u end\n"
    "        users[u] = users[u] + c\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "table.sort(names)\n"
    "local out = {nodes, anon, conns, #names}\n"
    "for i = 1, math.min(#names, max) do\n"
    "  out[#out + 1] = names[i]\n"
    "  out[#out + 1] = users[names[i]]\n"
    "end\n"
    "return out\n";

/* ARGV: P NODE USER -> {nodes, last_seen, KINDS...} (one KINDS string per live node). */
static const char RD_USTATUS[] = RD_PRES_LIB
    "local h = redis.call('HGETALL', P .. ':u:' .. ARGV[3])\n"
    "local out, ls = {0, 0}, 0\n"
    "for i = 1, #h, 2 do\n"
    "  if h[i] == '~ls' then ls = tonumber(h[i + 1]) or 0\n"
    "  elseif alive(h[i]) then out[1] = out[1] + 1; out[#out + 1] = h[i + 1] end\n"
    "end\n"
    "out[2] = ls\n"
    "return out\n";

/* ARGV: P NODE FEED BUDGET KEEP -> 1 once NODE's share is gone (shut-down). */
static const char RD_PLEAVE[] = RD_PRES_LIB
    "redis.call('ZREM', P .. ':pn', node)\n"
    "if cleanup(node, tonumber(ARGV[4]), ARGV[3], now, tonumber(ARGV[5])) then\n"
    "  redis.call('ZREM', P .. ':pgone', node)\n"
    "  return 1\n"
    "end\n"
    "redis.call('ZADD', P .. ':pgone', now, node)\n"
    "return 0\n";

static void rd__pres_feedchan(const rd_t *r, char *out, size_t cap) { snprintf(out, cap, "%s$pres", r->feedpfx); }

/* Background work waits while half of redis_max_inflight is in flight. */
static bool rd__pres_crowded(const rd_t *r) { return 2 * (uint64_t)r->cmd.ninflight >= r->max_inflight; }

static void rd__pres_lost(rd_t *r)
{
    if (r->pres) {
        r->pres->lost = true;
        r->pres->failed++;
    }
}

/* ---- heartbeat ---- */

static void rd__pbeaten(rd_t *r, redisReply *rep, rd_req_t *q)
{
    free(q);
    if (r->closing || !r->pres) return;
    struct rd_pres *p = r->pres;
    p->busy = false;
    if (!rep || rep->type != REDIS_REPLY_INTEGER) {
        if (rep && rep->type == REDIS_REPLY_ERROR) log_warn("redis: presence heartbeat failed: %s", rep->str);
        return;
    }
    p->beats++;
    if (rep->integer == 1 || p->lost) { /* this node's share is not (all) there: write it again */
        p->lost = false;
        if (rep->integer == 1 && p->beats > 1)
            log_info("redis: presence: this node was taken for gone: writing its share again");
        if (r->eng.on_presence) r->eng.on_presence(r->eng.presence_arg, ENGINE_PRES_RESYNC, NULL, 0, NULL, 0);
    }
}

static void rd__pbeat(tw_entry_t *e)
{
    struct rd_pres *p = container_of(e, struct rd_pres, beat);
    rd_t *r = p->r;
    /* until the first beat is answered (this node counts for the others from then on), try often */
    loop_timer(r->loop, &p->beat, p->beats ? p->beat_ms : 50);
    if (p->busy || r->cmd.state != RDC_UP || rd__pres_crowded(r)) return;
    char ttl[16], feed[sizeof(r->feedpfx) + 8], budget[16], keep[24];
    snprintf(ttl, sizeof(ttl), "%u", r->pres_ttl_ms);
    rd__pres_feedchan(r, feed, sizeof(feed));
    snprintf(budget, sizeof(budget), "%d", RD_PRES_BUDGET);
    snprintf(keep, sizeof(keep), "%" PRIu64, r->seen_ttl_ms);
    const char *argv[] = {"EVAL", RD_PBEAT, "0", r->prefix, r->node, ttl, feed, budget, keep};
    size_t len[9];
    for (int i = 0; i < 9; i++) len[i] = strlen(argv[i]);
    rd_req_t *q = malloc(sizeof(*q));
    if (q && rd_conn_send(&r->cmd, q, rd__pbeaten, 9, argv, len) == 0) p->busy = true;
    else free(q);
}

/* ---- writes ---- */

static void rd__pwritten(rd_t *r, redisReply *rep, rd_req_t *q)
{
    free(q);
    if (r->closing) return;
    if (!rep || rep->type != REDIS_REPLY_INTEGER) {
        if (rep && rep->type == REDIS_REPLY_ERROR) log_warn("redis: presence write failed: %s", rep->str);
        rd__pres_lost(r);
    }
}

/* Sends EVAL script with head[0..nh) then n rows of per columns from cols (argv[i] / len[i]). */
static int rd__pres_send(rd_t *r, const char *script, size_t slen, const char **head, int nh, const char **cols,
                         const size_t *clen, uint32_t nvals)
{
    int argc = 3 + nh + (int)nvals;
    const char **argv = malloc((size_t)argc * sizeof(*argv));
    size_t *len = malloc((size_t)argc * sizeof(*len));
    rd_req_t *q = malloc(sizeof(*q));
    int rc = rd__pres_crowded(r) ? HR_EFULL : HR_ENOMEM;
    if (argv && len && q && rc != HR_EFULL) {
        argv[0] = "EVAL", len[0] = 4;
        argv[1] = script, len[1] = slen;
        argv[2] = "0", len[2] = 1;
        for (int i = 0; i < nh; i++) argv[3 + i] = head[i], len[3 + i] = strlen(head[i]);
        for (uint32_t i = 0; i < nvals; i++) argv[3 + nh + i] = cols[i], len[3 + nh + i] = clen[i];
        rc = rd_conn_send(&r->cmd, q, rd__pwritten, argc, argv, len);
        if (rc == 0) q = NULL;
    }
    free(argv);
    free(len);
    free(q);
    if (rc < 0) rd__pres_lost(r);
    else if (r->pres) r->pres->writes++;
    return rc;
}

int rd_pres_write(engine_t *e, const engine_pres_t *v, uint32_t n, int phase)
{
    rd_t *r = container_of(e, rd_t, eng);
    if (n > RD_PRES_MAX_BATCH) return HR_EINVAL;
    const char *cols[4 * RD_PRES_MAX_BATCH];
    size_t clen[4 * RD_PRES_MAX_BATCH];
    char nums[RD_PRES_MAX_BATCH][12];
    for (uint32_t i = 0; i < n; i++) {
        snprintf(nums[i], sizeof(nums[i]), "%u", v[i].count);
        cols[4 * i] = v[i].ch, clen[4 * i] = v[i].cn;
        cols[4 * i + 1] = v[i].un ? v[i].user : "", clen[4 * i + 1] = v[i].un;
        cols[4 * i + 2] = nums[i], clen[4 * i + 2] = strlen(nums[i]);
        cols[4 * i + 3] = v[i].events ? "1" : "0", clen[4 * i + 3] = 1;
    }
    char feed[sizeof(r->feedpfx) + 8], ph[4];
    rd__pres_feedchan(r, feed, sizeof(feed));
    snprintf(ph, sizeof(ph), "%d", phase);
    const char *head[] = {r->prefix, r->node, feed, ph};
    if (phase == ENGINE_WRITE_END) return rd__pres_send(r, RD_PSWEEP, sizeof(RD_PSWEEP) - 1, head, 3, NULL, NULL, 0);
    return rd__pres_send(r, RD_PWRITE, sizeof(RD_PWRITE) - 1, head, 4, cols, clen, 4 * n);
}

int rd_user_write(engine_t *e, const engine_user_t *v, uint32_t n, bool reset)
{
    rd_t *r = container_of(e, rd_t, eng);
    if (n > RD_PRES_MAX_BATCH) return HR_EINVAL;
    const char *cols[3 * RD_PRES_MAX_BATCH];
    size_t clen[3 * RD_PRES_MAX_BATCH];
    char nums[RD_PRES_MAX_BATCH][24];
    for (uint32_t i = 0; i < n; i++) {
        snprintf(nums[i], sizeof(nums[i]), "%" PRIu64, v[i].last_seen_ms);
        cols[3 * i] = v[i].id, clen[3 * i] = v[i].n;
        cols[3 * i + 1] = v[i].kn ? v[i].kinds : "", clen[3 * i + 1] = v[i].kn;
        cols[3 * i + 2] = nums[i], clen[3 * i + 2] = strlen(nums[i]);
    }
    char keep[24];
    snprintf(keep, sizeof(keep), "%" PRIu64, r->seen_ttl_ms);
    const char *head[] = {r->prefix, r->node, reset ? "1" : "0", keep};
    return rd__pres_send(r, RD_UWRITE, sizeof(RD_UWRITE) - 1, head, 4, cols, clen, 3 * n);
}

/* ---- reads ---- */

typedef struct {
    rd_req_t q;
    list_node_t wait; /* in r->pres->waits */
    bool status;      /* user_status, else pres_list */
    void *cb;         /* engine_roster_cb or engine_ustatus_cb; NULL: cancelled */
    void *arg;
} rd_pwait_t;

static int64_t rd__int(const redisReply *x)
{
    if (x->type == REDIS_REPLY_INTEGER) return x->integer;
    if (x->type == REDIS_REPLY_STRING) return strtoll(x->str, NULL, 10);
    return -1;
}

static void rd__plisted(rd_t *r, const redisReply *rep, engine_roster_cb cb, void *arg)
{
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements < 4 || (rep->elements - 4) % 2) {
        cb(arg, HR_EUNAVAIL, NULL);
        return;
    }
    uint32_t n = (uint32_t)(rep->elements - 4) / 2;
    const char **ids = malloc((n + 1) * sizeof(*ids));
    size_t *lens = malloc((n + 1) * sizeof(*lens));
    uint32_t *conns = malloc((n + 1) * sizeof(*conns));
    if (!ids || !lens || !conns) {
        cb(arg, HR_ENOMEM, NULL);
    } else {
        engine_roster_t ro = {.nusers = n, .nodes = (uint32_t)rd__int(rep->element[0]),
                              .anonymous = (uint32_t)rd__int(rep->element[1]),
                              .connections = (uint32_t)rd__int(rep->element[2]),
                              .total_users = (uint32_t)rd__int(rep->element[3]), .ids = ids, .lens = lens,
                              .conns = conns};
        for (uint32_t i = 0; i < n; i++) {
            const redisReply *u = rep->element[4 + 2 * i];
            ids[i] = u->type == REDIS_REPLY_STRING ? u->str : "";
            lens[i] = u->type == REDIS_REPLY_STRING ? u->len : 0;
            conns[i] = (uint32_t)rd__int(rep->element[5 + 2 * i]);
        }
        cb(arg, 0, &ro);
    }
    free(ids);
    free(lens);
    free(conns);
    (void)r;
}

/* "sse=1,ws_json=2" strings of every node summed by kind. */
static void rd__ustatus(const redisReply *rep, engine_ustatus_cb cb, void *arg)
{
    if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements < 2) {
        cb(arg, HR_EUNAVAIL, NULL);
        return;
    }
    const char *kinds[16];
    size_t klens[16];
    uint32_t counts[16], nk = 0;
    for (size_t e = 2; e < rep->elements; e++) {
        const redisReply *x = rep->element[e];
        if (x->type != REDIS_REPLY_STRING) continue;
        const char *p = x->str, *end = x->str + x->len;
        while (p < end) {
            const char *comma = memchr(p, ',', (size_t)(end - p)), *stop = comma ? comma : end;
            const char *eq = memchr(p, '=', (size_t)(stop - p));
            if (eq) {
                size_t kl = (size_t)(eq - p);
                uint32_t c = (uint32_t)strtoul(eq + 1, NULL, 10), i = 0;
                while (i < nk && !(klens[i] == kl && memcmp(kinds[i], p, kl) == 0)) i++;
                if (i == nk && nk < 16) kinds[nk] = p, klens[nk] = kl, counts[nk++] = 0;
                if (i < nk) counts[i] += c;
            }
            p = stop + 1;
        }
    }
    engine_ustatus_t st = {.nkinds = nk, .nodes = (uint32_t)rd__int(rep->element[0]), .kinds = kinds,
                           .klens = klens, .counts = counts, .last_seen_ms = (uint64_t)rd__int(rep->element[1])};
    cb(arg, 0, &st);
}

static void rd__pread(rd_t *r, redisReply *rep, rd_req_t *q)
{
    rd_pwait_t *w = (rd_pwait_t *)q;
    list_unlink(&w->wait);
    if (!r->closing && w->cb) {
        if (rep && rep->type == REDIS_REPLY_ERROR) log_warn("redis: presence read failed: %s", rep->str);
        if (w->status) rd__ustatus(rep, (engine_ustatus_cb)w->cb, w->arg);
        else rd__plisted(r, rep, (engine_roster_cb)w->cb, w->arg);
    }
    free(w);
}

static int rd__pread_send(rd_t *r, bool status, void *cb, void *arg, const char *script, size_t slen,
                          const char *a3, size_t a3n, const char *a4)
{
    if (!r->pres) return HR_EUNAVAIL;
    rd_pwait_t *w = malloc(sizeof(*w));
    if (!w) return HR_ENOMEM;
    *w = (rd_pwait_t){.status = status, .cb = cb, .arg = arg};
    const char *argv[] = {"EVAL", script, "0", r->prefix, r->node, a3, a4};
    size_t len[] = {4, slen, 1, strlen(r->prefix), strlen(r->node), a3n, a4 ? strlen(a4) : 0};
    int rc = rd_conn_send(&r->cmd, &w->q, rd__pread, a4 ? 7 : 6, argv, len);
    if (rc < 0) {
        free(w);
        return HR_EUNAVAIL;
    }
    list_push_back(&r->pres->waits, &w->wait);
    return 0;
}

int rd_pres_list(engine_t *e, const char *ch, size_t n, uint32_t max, engine_roster_cb cb, void *arg)
{
    rd_t *r = container_of(e, rd_t, eng);
    char m[16];
    snprintf(m, sizeof(m), "%u", max);
    return rd__pread_send(r, false, (void *)cb, arg, RD_PLIST, sizeof(RD_PLIST) - 1, ch, n, m);
}

int rd_user_status(engine_t *e, const char *id, size_t n, engine_ustatus_cb cb, void *arg)
{
    rd_t *r = container_of(e, rd_t, eng);
    return rd__pread_send(r, true, (void *)cb, arg, RD_USTATUS, sizeof(RD_USTATUS) - 1, id, n, NULL);
}

void rd_pres_cancel(rd_t *r, void *arg)
{
    if (!r->pres) return;
    for (list_node_t *p = r->pres->waits.next; p != &r->pres->waits; p = p->next) {
        rd_pwait_t *w = container_of(p, rd_pwait_t, wait);
        if (w->arg == arg) w->cb = NULL;
    }
}

/* ---- the feed ---- */

void rd_pres_on_feed(rd_t *r, const char *payload, size_t n)
{
    const char *sp = memchr(payload, ' ', n), *nl = sp ? memchr(sp + 1, '\n', n - (size_t)(sp + 1 - payload)) : NULL;
    if (!nl || !r->eng.on_presence) return;
    size_t en = (size_t)(sp - payload);
    int ev = en == 4 && memcmp(payload, "join", 4) == 0 ? ENGINE_PRES_JOIN
             : en == 5 && memcmp(payload, "leave", 5) == 0 ? ENGINE_PRES_LEAVE
                                                          : 0;
    if (!ev) return;
    if (r->pres) r->pres->events++;
    r->eng.on_presence(r->eng.presence_arg, ev, sp + 1, (size_t)(nl - sp - 1), nl + 1,
                       n - (size_t)(nl + 1 - payload));
}

/* ---- start and stop ---- */

void rd_pres_start(rd_t *r)
{
    struct rd_pres *p = calloc(1, sizeof(*p));
    if (!p) {
        log_warn("redis: presence: out of memory: presence and users are this node's only");
        return;
    }
    p->r = r;
    list_init(&p->waits);
    p->beat_ms = r->pres_ttl_ms / 4 < 1000 ? r->pres_ttl_ms / 4 : 1000;
    if (p->beat_ms < 100) p->beat_ms = 100;
    tw_entry_init(&p->beat, rd__pbeat);
    r->pres = p;
    loop_timer(r->loop, &p->beat, 0);
}

void rd_pres_close(rd_t *r)
{
    struct rd_pres *p = r->pres;
    if (!p) return;
    tw_stop(&r->loop->wheel, &p->beat);
    r->pres = NULL;
    /* waiting requests: their callbacks are not called (the routes' connections are gone) */
    while (!list_empty(&p->waits)) {
        rd_pwait_t *w = container_of(p->waits.next, rd_pwait_t, wait);
        list_unlink(&w->wait);
        w->cb = NULL;
    }
    free(p);
    /* this node's share goes now, with the leaves it causes (blocking, bounded: shut-down only) */
    char err[300];
    redisContext *c = rd_boot_master(r, 300, err, sizeof(err));
    if (!c) return;
    char feed[sizeof(r->feedpfx) + 8], keep[24];
    rd__pres_feedchan(r, feed, sizeof(feed));
    snprintf(keep, sizeof(keep), "%" PRIu64, r->seen_ttl_ms);
    const char *argv[] = {"EVAL", RD_PLEAVE, "0", r->prefix, r->node, feed, "1000", keep};
    size_t len[8];
    for (int i = 0; i < 8; i++) len[i] = strlen(argv[i]);
    for (int i = 0; i < 20; i++) { /* 20 000 channels and users at most; others clean up the rest */
        redisReply *x = redisCommandArgv(c, 8, argv, len);
        bool done = !x || x->type != REDIS_REPLY_INTEGER || x->integer == 1;
        if (x && x->type == REDIS_REPLY_ERROR) log_warn("redis: presence: removing this node's share: %s", x->str);
        if (x) freeReplyObject(x);
        if (done) break;
    }
    redisFree(c);
}

size_t rd_pres_metrics(const rd_t *r, char *out, size_t cap)
{
    const struct rd_pres *p = r->pres;
    if (!p) return 0;
    int n = snprintf(out, cap,
                     "# HELP herald_redis_presence_total Presence heartbeats answered, writes sent, writes failed "
                     "(followed by a full rewrite) and join/leave events from the feed.\n"
                     "# TYPE herald_redis_presence_total counter\n"
                     "herald_redis_presence_total{what=\"beat\"} %" PRIu64 "\n"
                     "herald_redis_presence_total{what=\"write\"} %" PRIu64 "\n"
                     "herald_redis_presence_total{what=\"failed\"} %" PRIu64 "\n"
                     "herald_redis_presence_total{what=\"event\"} %" PRIu64 "\n",
                     p->beats, p->writes, p->failed, p->events);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}
