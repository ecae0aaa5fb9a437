/* lmdb.c - the durable store: channel histories, last ids and MQTT retained messages in an LMDB
 * environment under data_dir (see store.h).
 *
 * Why LMDB: a copy-on-write B+tree in one memory-mapped file, crash-safe without a log to replay
 * (a commit is atomic; kill -9 at any point leaves the last committed state), one writer with
 * lock-free readers, and a small C API that is packaged by Debian (liblmdb). Everything herald
 * needs is ordered key ranges (a channel's messages by id) and single-key updates.
 *
 * Layout (four named databases):
 *   msgs      key = channel name, 0x00, id as 8 big-endian bytes   value = the message (below)
 *   chans     key = channel name                                   value = last id (8 bytes, host order),
 *             written only when a trim leaves the channel without messages (otherwise the last
 *             id is its newest message's: one write per publish, not two)
 *   retained  key = channel name                                   value = the message
 *   kv        key = namespace, 0x00, key                             value = a record (MQTT sessions, idem keys, schedules)
 * A message value is msg_pack()'s form (msg.h). Channel names never contain NUL, so the 0x00 separator
 * keeps one channel's keys together and sorted by id.
 *
 * Group commit: every write goes into one write transaction that stays open for the rest of the
 * event-loop iteration; store_flush() (called by the loop just before it writes to any socket)
 * commits it. With durability "sync" the commit is fsynced (LMDB's default), so a publish is
 * acknowledged — and delivered — only once it is on disk, and all the publishes of one iteration
 * share one fsync. With "interval" the environment runs with MDB_NOSYNC: a commit reaches the
 * page cache (it survives the process being killed, not the machine losing power) and a timer
 * fsyncs every flush_interval. */
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "../core/err.h"
#include "../core/log.h"
#include "../hub/hub.h"
#include "store.h"


typedef struct {
    store_t base;
    MDB_env *env;
    MDB_dbi msgs, chans, retained, kv;
    MDB_txn *w;        /* the open write transaction of this loop iteration, or NULL */
    int failed;        /* a write of w failed (LMDB then refuses the rest): HR_E* to report, or 0 */
    uint64_t room;     /* bytes the map can still take, measured when w began */
    uint64_t need;     /* bytes w's appends may take (a generous estimate) */
    uint64_t reserve;  /* room kept free for trims and deletes: appends are refused below it */
    uint32_t psize;    /* the page size */
    uint64_t refused;  /* appends refused for want of room */
    char dir[512];     /* the data directory (to tell a full disk from an I/O error) */
    bool sync;
    int lockfd;
    loop_t *loop;
    tw_entry_t flush_timer; /* durability interval: fsync every flush_ms */
    uint32_t flush_ms;
    bool dirty;        /* committed without fsync since the last sync */
    uint64_t commits, syncs, aborts;
} lm_t;

/* The HR_E* for an LMDB or system error: no room (map or disk full) or unavailable. */
static int lm__code(int rc)
{
    return rc == MDB_MAP_FULL || rc == ENOSPC || rc == EDQUOT ? HR_ESTOREFULL : rc == ENOMEM ? HR_ENOMEM : HR_EUNAVAIL;
}

static int lm__err(const char *what, int rc)
{
    log_error("store: %s: %s", what, mdb_strerror(rc));
    return lm__code(rc);
}

/* A write of the open transaction failed: LMDB refuses the rest of it, so it is remembered and
 * reported by the commit (the hub then fails every publish of the iteration). */
static int lm__werr(lm_t *s, const char *what, int rc)
{
    if (!s->failed) s->failed = lm__err(what, rc);
    return s->failed;
}

/* Pages on LMDB's free list (reusable by the next writes): the first word of each record of
 * the free database (dbi 0) is its page count. LMDB opens no cursor on it in a write
 * transaction: this reads the last commit. */
static uint64_t lm__free_pages(lm_t *s)
{
    MDB_txn *t;
    MDB_cursor *c;
    if (mdb_txn_begin(s->env, NULL, MDB_RDONLY, &t)) return 0;
    if (mdb_cursor_open(t, 0, &c)) {
        mdb_txn_abort(t);
        return 0;
    }
    MDB_val k, v;
    uint64_t n = 0;
    for (int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT))
        if (v.mv_size >= sizeof(size_t)) {
            size_t cnt;
            memcpy(&cnt, v.mv_data, sizeof(cnt));
            n += cnt;
        }
    mdb_cursor_close(c);
    mdb_txn_abort(t);
    return n;
}

static int lm__txn(lm_t *s)
{
    if (s->failed) return s->failed;
    if (s->w) return 0;
    int rc = mdb_txn_begin(s->env, NULL, 0, &s->w);
    if (rc) {
        s->w = NULL;
        return lm__err("begin", rc);
    }
    /* room left: the map beyond the highest page used, plus the free list when that is short */
    MDB_envinfo ei;
    mdb_env_info(s->env, &ei);
    uint64_t used = ((uint64_t)ei.me_last_pgno + 1) * s->psize;
    s->room = ei.me_mapsize > used ? ei.me_mapsize - used : 0;
    if (s->room < 4 * s->reserve) s->room += lm__free_pages(s) * s->psize;
    s->need = 0;
    return 0;
}

/* Refuses an append of n bytes that would leave less than the reserve (so trims, deletes and
 * the commit's own pages always fit: LMDB cannot even delete in a full map). */
static int lm__room(lm_t *s, size_t n)
{
    uint64_t need = s->need + n + s->psize; /* a page of the B-tree path per write, at most */
    if (need + s->reserve > s->room) {
        if (!s->refused++ || s->refused % 100000 == 0)
            log_warn("store: full (%llu bytes free of the map, %llu kept for trims): publish refused; "
                     "%llu refused so far (raise store_map_size, or lower the history limits)",
                     (unsigned long long)s->room, (unsigned long long)s->reserve, (unsigned long long)s->refused);
        return HR_ESTOREFULL;
    }
    s->need = need;
    return 0;
}

static size_t lm__key(char *k, const char *ch, size_t n, uint64_t id)
{
    memcpy(k, ch, n);
    k[n] = 0;
    for (int i = 0; i < 8; i++) k[n + 1 + i] = (char)(id >> (56 - 8 * i));
    return n + 9;
}

static uint64_t lm__key_id(const MDB_val *k)
{
    const unsigned char *p = (const unsigned char *)k->mv_data + k->mv_size - 8;
    uint64_t id = 0;
    for (int i = 0; i < 8; i++) id = id << 8 | p[i];
    return id;
}

/* True when key k belongs to channel ch (name, 0x00, 8 bytes). */
static bool lm__key_of(const MDB_val *k, const char *ch, size_t n)
{
    return k->mv_size == n + 9 && memcmp(k->mv_data, ch, n) == 0 && ((const char *)k->mv_data)[n] == 0;
}

static int lm__put_msg(lm_t *s, MDB_dbi db, const MDB_val *key, const msg_t *m)
{
    MDB_val v = {msg_pack_size(m), NULL};
    int rc = lm__room(s, key->mv_size + v.mv_size);
    if (rc < 0) return rc;
    if ((rc = mdb_put(s->w, db, (MDB_val *)key, &v, MDB_RESERVE))) return lm__werr(s, "put", rc);
    msg_pack(m, v.mv_data);
    return 0;
}

static int lm_append(store_t *st, const msg_t *m)
{
    lm_t *s = (lm_t *)st;
    int rc = lm__txn(s);
    if (rc < 0) return rc;
    char kb[HUB_MAX_CHANNEL + 9];
    MDB_val k = {lm__key(kb, m->channel, m->channel_len, m->id), kb};
    return lm__put_msg(s, s->msgs, &k, m);
}

static int lm_trim(store_t *st, const char *ch, size_t n, uint64_t first_kept)
{
    lm_t *s = (lm_t *)st;
    int rc = lm__txn(s);
    if (rc < 0) return rc;
    MDB_cursor *c;
    if ((rc = mdb_cursor_open(s->w, s->msgs, &c))) return lm__werr(s, "cursor", rc);
    char kb[HUB_MAX_CHANNEL + 9];
    MDB_val k = {lm__key(kb, ch, n, 0), kb}, v;
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    bool deleted = false;
    while (rc == 0 && lm__key_of(&k, ch, n) && lm__key_id(&k) < first_kept) {
        if ((rc = mdb_cursor_del(c, 0))) break;
        deleted = true;
        rc = mdb_cursor_get(c, &k, &v, MDB_GET_CURRENT);
        if (rc == EINVAL) rc = mdb_cursor_get(c, &k, &v, MDB_NEXT); /* deleted the last item */
    }
    mdb_cursor_close(c);
    if (rc != 0 && rc != MDB_NOTFOUND) return lm__werr(s, "trim", rc);
    if (deleted && (rc == MDB_NOTFOUND || !lm__key_of(&k, ch, n))) { /* none left: keep the last id */
        uint64_t last = first_kept - 1;
        MDB_val ck = {n, (void *)ch}, cv = {8, &last};
        if ((rc = mdb_put(s->w, s->chans, &ck, &cv, 0))) return lm__werr(s, "put", rc);
    }
    return 0;
}

static int lm_load(store_t *st, const char *ch, size_t n, hist_t *h, const hist_limits_t *lim, uint64_t *last_id)
{
    lm_t *s = (lm_t *)st;
    *last_id = 0;
    MDB_txn *t = s->failed ? NULL : s->w; /* a failed transaction reads nothing: read the last commit */
    int rc = 0;
    if (!t && (rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &t))) return lm__err("begin", rc);
    MDB_val ck = {n, (void *)ch}, cv;
    if (mdb_get(t, s->chans, &ck, &cv) == 0 && cv.mv_size == 8) memcpy(last_id, cv.mv_data, 8);
    MDB_cursor *c = NULL;
    if (!(rc = mdb_cursor_open(t, s->msgs, &c))) {
        char kb[HUB_MAX_CHANNEL + 9];
        MDB_val k = {lm__key(kb, ch, n, 0), kb}, v;
        uint64_t now = loop_wall_ms();
        for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0 && lm__key_of(&k, ch, n);
             rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
            msg_t *m = msg_unpack(v.mv_data, v.mv_size, ch, n);
            if (!m) {
                rc = ENOMEM;
                break;
            }
            if (m->id > *last_id) *last_id = m->id; /* the newest message's id, when there is one */
            int pr = hist_push(h, m, lim, now); /* the ring keeps what the limits allow */
            msg_unref(m);
            if (pr < 0) {
                rc = ENOMEM;
                break;
            }
        }
        mdb_cursor_close(c);
    }
    if (t != s->w || s->failed) mdb_txn_abort(t);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : lm__err("load", rc);
}

static int lm_retain(store_t *st, const msg_t *m, const char *ch, size_t n)
{
    lm_t *s = (lm_t *)st;
    int rc = lm__txn(s);
    if (rc < 0) return rc;
    MDB_val k = {n, (void *)ch};
    if (m) return lm__put_msg(s, s->retained, &k, m);
    rc = mdb_del(s->w, s->retained, &k, NULL);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : lm__werr(s, "del", rc);
}

static int lm_each_retained(store_t *st, store_retained_cb cb, void *arg)
{
    lm_t *s = (lm_t *)st;
    MDB_txn *t;
    MDB_cursor *c;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &t);
    if (rc) return lm__err("begin", rc);
    if ((rc = mdb_cursor_open(t, s->retained, &c))) {
        mdb_txn_abort(t);
        return lm__err("cursor", rc);
    }
    MDB_val k, v;
    int out = 0;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0 && out == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (k.mv_size == 0 || k.mv_size > HUB_MAX_CHANNEL) continue;
        msg_t *m = msg_unpack(v.mv_data, v.mv_size, k.mv_data, k.mv_size);
        if (!m) {
            out = HR_ENOMEM;
            break;
        }
        out = cb(arg, m);
        msg_unref(m);
    }
    mdb_cursor_close(c);
    mdb_txn_abort(t);
    return out;
}

/* kv keys: namespace, 0x00, key. */
static int lm__kv_key(MDB_val *k, char *buf, size_t cap, const char *ns, const void *key, size_t klen)
{
    size_t nl = strlen(ns);
    if (nl + 1 + klen > cap || nl + 1 + klen > 511) return HR_EINVAL; /* LMDB's default key limit */
    memcpy(buf, ns, nl + 1);
    memcpy(buf + nl + 1, key, klen);
    *k = (MDB_val){nl + 1 + klen, buf};
    return 0;
}

static int lm_kv_put(store_t *st, const char *ns, const void *key, size_t klen, const void *val, size_t vlen)
{
    lm_t *s = (lm_t *)st;
    char kb[512];
    MDB_val k, v = {vlen, (void *)val};
    int rc = lm__kv_key(&k, kb, sizeof(kb), ns, key, klen);
    if (rc < 0 || (rc = lm__txn(s)) < 0) return rc;
    if ((rc = mdb_put(s->w, s->kv, &k, &v, 0))) return lm__werr(s, "put", rc);
    return 0;
}

static int lm_kv_del(store_t *st, const char *ns, const void *key, size_t klen)
{
    lm_t *s = (lm_t *)st;
    char kb[512];
    MDB_val k;
    int rc = lm__kv_key(&k, kb, sizeof(kb), ns, key, klen);
    if (rc < 0 || (rc = lm__txn(s)) < 0) return rc;
    rc = mdb_del(s->w, s->kv, &k, NULL);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : lm__werr(s, "del", rc);
}

static int lm_kv_each(store_t *st, const char *ns, store_kv_cb cb, void *arg)
{
    lm_t *s = (lm_t *)st;
    size_t nl = strlen(ns);
    MDB_txn *t;
    MDB_cursor *c;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &t);
    if (rc) return lm__err("begin", rc);
    if ((rc = mdb_cursor_open(t, s->kv, &c))) {
        mdb_txn_abort(t);
        return lm__err("cursor", rc);
    }
    MDB_val k = {nl + 1, (void *)ns}, v;
    int out = 0;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0 && out == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (k.mv_size <= nl + 1 || memcmp(k.mv_data, ns, nl + 1) != 0) break;
        out = cb(arg, (const char *)k.mv_data + nl + 1, k.mv_size - nl - 1, v.mv_data, v.mv_size);
    }
    mdb_cursor_close(c);
    mdb_txn_abort(t);
    return out;
}

static int lm_flush(store_t *st)
{
    lm_t *s = (lm_t *)st;
    int failed = s->failed;
    s->failed = 0;
    if (!s->w) return failed;
    if (failed) { /* LMDB refuses a transaction after a failed write: none of it happened */
        mdb_txn_abort(s->w);
        s->w = NULL;
        s->aborts++;
        return failed;
    }
    int rc = mdb_txn_commit(s->w); /* frees the transaction, committed or not */
    s->w = NULL;
    if (rc) {
        s->aborts++;
        int code = lm__err("commit", rc);
        /* LMDB reports a short write as EIO: on a disk with no room left that is "full" */
        struct statvfs vf;
        if (rc == EIO && statvfs(s->dir, &vf) == 0 && (uint64_t)vf.f_bavail * vf.f_frsize < s->need + (1u << 20))
            code = HR_ESTOREFULL;
        return code;
    }
    s->commits++;
    if (s->sync) s->syncs++;
    else s->dirty = true;
    return 0;
}

static void lm__flush_timer(tw_entry_t *e)
{
    lm_t *s = container_of(e, lm_t, flush_timer);
    if (s->dirty) {
        int rc = mdb_env_sync(s->env, 1);
        if (rc) lm__err("sync", rc);
        else s->syncs++;
        s->dirty = false;
    }
    loop_timer(s->loop, &s->flush_timer, s->flush_ms);
}

static void lm_close(store_t *st)
{
    lm_t *s = (lm_t *)st;
    if (lm_flush(st) < 0) log_error("store: the last writes were not committed");
    if (s->loop) tw_stop(&s->loop->wheel, &s->flush_timer);
    mdb_env_sync(s->env, 1);
    mdb_env_close(s->env);
    if (s->lockfd >= 0) close(s->lockfd);
    log_info("store: closed (%llu commits, %llu fsyncs)", (unsigned long long)s->commits, (unsigned long long)s->syncs);
    free(s);
}

static const store_ops_t lm_ops = {
    .append = lm_append,
    .load = lm_load,
    .close = lm_close,
    .trim = lm_trim,
    .retain = lm_retain,
    .each_retained = lm_each_retained,
    .flush = lm_flush,
    .kv_put = lm_kv_put,
    .kv_del = lm_kv_del,
    .kv_each = lm_kv_each,
};

store_t *store_lmdb_open(const store_lmdb_opts_t *o, loop_t *loop, char *err, size_t errcap)
{
    lm_t *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    s->lockfd = -1;
    s->base.ops = &lm_ops;
    s->base.name = o->sync ? "lmdb, sync" : "lmdb, interval";
    s->sync = o->sync;
    snprintf(s->dir, sizeof(s->dir), "%s", o->dir);
    int rc;
    char lockpath[600];
    if (mkdir(o->dir, 0755) < 0 && errno != EEXIST) {
        snprintf(err, errcap, "cannot create %s: %s", o->dir, strerror(errno));
        goto fail;
    }
    /* one herald per data directory: LMDB itself would let two processes share it */
    snprintf(lockpath, sizeof(lockpath), "%s/herald.lock", o->dir);
    s->lockfd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (s->lockfd < 0 || flock(s->lockfd, LOCK_EX | LOCK_NB) < 0) {
        snprintf(err, errcap, "%s: %s", lockpath,
                 errno == EWOULDBLOCK ? "another herald is using this data directory" : strerror(errno));
        goto fail;
    }
    if ((rc = mdb_env_create(&s->env)) || (rc = mdb_env_set_maxdbs(s->env, 8)) ||
        (rc = mdb_env_set_mapsize(s->env, o->map_size)) ||
        (rc = mdb_env_open(s->env, o->dir, (o->sync ? 0 : MDB_NOSYNC) | MDB_NOTLS, 0644))) {
        snprintf(err, errcap, "%s: %s", o->dir, mdb_strerror(rc));
        goto fail;
    }
    if ((rc = lm__txn(s)) < 0 || (rc = mdb_dbi_open(s->w, "msgs", MDB_CREATE, &s->msgs)) ||
        (rc = mdb_dbi_open(s->w, "chans", MDB_CREATE, &s->chans)) ||
        (rc = mdb_dbi_open(s->w, "retained", MDB_CREATE, &s->retained)) ||
        (rc = mdb_dbi_open(s->w, "kv", MDB_CREATE, &s->kv)) || (rc = mdb_txn_commit(s->w))) {
        s->w = NULL;
        snprintf(err, errcap, "%s: cannot open the databases: %s", o->dir, rc < 0 ? "txn" : mdb_strerror(rc));
        goto fail;
    }
    s->w = NULL;
    MDB_stat est;
    mdb_env_stat(s->env, &est);
    s->psize = est.ms_psize;
    s->reserve = o->map_size / 16;
    if (s->reserve < 32ull * s->psize) s->reserve = 32ull * s->psize;
    if (s->reserve > 64ull << 20) s->reserve = 64ull << 20;
    s->loop = loop;
    tw_entry_init(&s->flush_timer, lm__flush_timer);
    s->flush_ms = o->flush_ms ? o->flush_ms : 1000;
    if (!o->sync) loop_timer(loop, &s->flush_timer, s->flush_ms);
    return &s->base;
fail:
    if (s->env) mdb_env_close(s->env);
    if (s->lockfd >= 0) close(s->lockfd);
    free(s);
    return NULL;
}
