/* engine.h - who orders publishes and carries them between nodes, apart from where histories
 * persist (store.h).
 *
 * The local engine is the hub itself: it assigns each channel's ids, the store records and
 * commits, and the hub delivers (hub_publish_async, hub_commit); hub->engine is NULL. A shared
 * engine (engine = redis) takes over ordering: it assigns ids across nodes, records the message
 * in its backend and delivers it on every node through hub_inject(), and it can bring a channel
 * up to date or count its subscribers on every node. With Redis one object is both the engine
 * and the store (histories live in Redis streams): it is created and closed as the store.
 * Every engine operation is asynchronous: none may block the event loop. */
#ifndef HERALD_ENGINE_H
#define HERALD_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct engine engine_t;
struct chan;
struct hub_pend;

/* A control command another node sent with the control op (engine_t.on_control). */
typedef void (*engine_control_cb)(void *arg, const char *json, size_t n);

/* The answer of an occupancy count: rc 0 and the channel's subscribers on every node, or HR_E*. */
typedef void (*engine_count_cb)(void *arg, int rc, uint32_t subscribers);

typedef struct {
    /* Takes the publish p (hub_pend_msg(p), id not yet assigned): assigns its id, records it and
     * calls hub_published(p, rc) once its backend answered (possibly before returning); the
     * message reaches every node, this one included, through hub_inject(). Returns 0 when it
     * took p, or HR_E* at once (hub_published is then not called). */
    int (*publish)(engine_t *e, struct chan *ch, struct hub_pend *p);
    /* Optional: brings ch up to date (a client's cursor is past what this node has received
     * yet), holding the channel (hub_hold) while it asks. */
    void (*catch_up)(engine_t *e, struct chan *ch);
    /* Optional: counts the channel's subscribers on every node and calls cb(arg, ...) later,
     * never from inside this call, unless cancel(arg) comes first. 0 (cb will be called once)
     * or HR_E* at once (cb is not called). */
    int (*occupancy)(engine_t *e, const char *channel, size_t len, engine_count_cb cb, void *arg);
    /* Optional (with occupancy): forgets the callbacks waiting with arg (its request is gone). */
    void (*cancel)(engine_t *e, void *arg);
    /* Optional: the engine's own metrics in the Prometheus text format; returns bytes written. */
    size_t (*metrics)(engine_t *e, char *out, size_t cap);
    /* Optional: true while the engine can take publishes (its backend is reachable): /readyz. */
    bool (*up)(engine_t *e);
    /* Optional: sends the control command json[0..n) (an admin disconnect or unsubscribe, made
     * by src/app/userapi.c) to every other node, where it reaches on_control; the sending node
     * runs it itself. Fire and forget: 0 once sent or queued, HR_E* when it cannot be (its backend
     * is down). The local engine has no other node: it has none. */
    int (*control)(engine_t *e, const char *json, size_t n);
} engine_ops_t;

struct engine {
    const engine_ops_t *ops;
    const char *name;
    engine_control_cb on_control; /* set by the app: control commands from other nodes */
    void *control_arg;
};

#endif
