/* main.c - the herald binary: subcommands serve, pub, sub, bench; and the wiring of serve:
 * configuration -> loop -> store -> hub -> transports -> HTTP server, then a clean shutdown on
 * SIGTERM/SIGINT that stops accepting, closes every connection and frees everything. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../bench/loadgen.h"
#include "../core/err.h"
#include "../core/log.h"
#include "../store/redis.h"
#include "cli.h"
#include "config.h"
#include "presence_api.h"
#include "publish.h"
#include "readstate.h"
#include "routes.h"
#include "userapi.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: herald serve [-c herald.conf] [--http ADDR:PORT] [--KEY VALUE ...] [--print-config]\n"
               "       herald pub [--url URL] [--event NAME] CHANNEL [DATA]\n"
               "       herald sub [--url URL] [--last-id N] [-n COUNT] CHANNEL\n"
               "       herald token [-c herald.conf] --sub USER [--subscribe P]... [--publish P]... [--ttl 1h]\n"
               "       herald bench [options]   (herald bench --help)\n"
               "Configuration keys and defaults: herald serve --print-config\n");
}

static void on_stop(loop_t *loop, void *arg)
{
    app_t *app = arg;
    log_info("stopping: closing listeners and %u connections", app->http->nconns + app->mqtt->nconns);
    mqtt_server_close(app->mqtt);
    http_server_close(app->http);
}

/* The loop calls this before it writes to sockets: changed MQTT sessions are saved, then one
 * commit covers the iteration's writes, and only then are its publishes delivered and
 * acknowledged (or failed, with the sessions written again next time). */
static void before_write(loop_t *loop, void *arg)
{
    (void)loop;
    app_t *app = arg;
    if (app->mqtt) mqtt_server_persist(app->mqtt);
    int rc = hub_commit(app->xp.hub);
    if (app->mqtt) mqtt_server_committed(app->mqtt, rc == 0);
    if (app->reads) readstate_flush(app->reads);
}

static int serve(int argc, char **argv)
{
    cfg_t *cfg = calloc(1, sizeof(*cfg));
    if (!cfg) return 1;
    cfg_defaults(cfg);
    bool print = false;
    char **args = calloc((size_t)argc + 1, sizeof(char *));
    int nargs = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--print-config") == 0) print = true;
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            free(args);
            free(cfg);
            return 0;
        } else args[nargs++] = argv[i];
    }
    char err[512];
    int rc = cfg_from_args(cfg, nargs, args, err, sizeof(err));
    free(args);
    if (rc < 0) {
        fprintf(stderr, "herald: %s\n", err);
        free(cfg);
        return 2;
    }
    if (print) {
        static char out[65536]; /* every key, and up to CFG_MAX_NAMESPACES namespaces */
        size_t n = cfg_dump(cfg, out, sizeof(out));
        fwrite(out, 1, n, stdout);
        free(cfg);
        return 0;
    }
    log_set_level(cfg->log_level);

    int exit_code = 1;
    loop_t loop;
    metrics_t metrics = {0};
    hub_t hub;
    http_server_t http;
    mqtt_server_t mqtt;
    app_t app = {0};
    store_t *store = NULL;
    bool hub_ok = false, auth_ok = false, pub_ok = false;
    publish_t pub;
    auth_t auth;
    iplimit_t ipl;
    bool ipl_ok = false;
    users_t users;
    bool users_ok = false;
    presence_t pres;
    bool pres_ok = false;
    if (loop_init(&loop) < 0) {
        log_error("cannot create the event loop");
        goto out;
    }
    if (cfg->engine == ENGINE_REDIS) {
        char serr[1200];
        store_redis_opts_t ro = {cfg->redis_addr, cfg->redis_sentinel, cfg->redis_master_name, cfg->redis_user,
                                 cfg->redis_password, cfg->redis_password_file, cfg->redis_db, cfg->redis_prefix,
                                 cfg->redis_timeout_ms, cfg->redis_max_inflight, cfg->history_messages,
                                 cfg->presence_node_timeout_ms, cfg->users_last_seen_ttl_ms};
        bool addr = cfg->redis_addr[0] || cfg->redis_sentinel[0];
        if (!addr || !(store = store_redis_open(&ro, &loop, serr, sizeof(serr)))) {
            log_error("engine = redis: %s", addr ? serr : "the redis address is empty");
            goto out;
        }
    } else if (cfg->store == STORE_LMDB) {
        char serr[700];
        store_lmdb_opts_t so = {cfg->data_dir, cfg->durability == DURABILITY_SYNC, cfg->flush_interval_ms,
                                cfg->store_map_size};
        if (!(store = store_lmdb_open(&so, &loop, serr, sizeof(serr)))) {
            log_error("cannot open the store: %s", serr);
            goto out;
        }
    } else {
        store = store_mem_new();
    }
    char aerr[600];
    if (auth_init(&auth, cfg, aerr, sizeof(aerr)) < 0) {
        log_error("auth: %s", aerr);
        goto out;
    }
    auth_ok = true;
    bool local = routes_loopback_host(span_of(cfg->http_addr)) &&
                 (!cfg->mqtt_addr[0] || routes_loopback_host(span_of(cfg->mqtt_addr)));
    if (!auth.enabled && !local && !cfg->allow_anonymous) {
        log_error("refusing to serve beyond loopback (http = %s, mqtt = %s) with no access control: configure "
                  "token_hmac_secret, token_public_key, token_jwks_file, api_keys, permissions_file or "
                  "password_file, or set allow_anonymous = true to run open on purpose",
                  cfg->http_addr, cfg->mqtt_addr[0] ? cfg->mqtt_addr : "off");
        goto out;
    }
    if (!auth.enabled)
        log_info("access control is off: every client may subscribe and publish (%s)",
                 local ? "loopback only" : "allow_anonymous = true");
    else
        log_info("access control: %s%s%s%s; anonymous clients %s", auth.keys ? "tokens " : "",
                 auth.nkeys ? "api-keys " : "", auth.have_rules ? "permissions-file " : "", auth.pw ? "passwords " : "",
                 auth.anon_any ? "may do everything (allow_anonymous)"
                 : auth_has_any(&auth.anon_id) ? "have the permissions file's anonymous rules" : "may do nothing");
    hist_limits_t lim = {cfg->history_messages, cfg->history_bytes, cfg->history_age_ms};
    if (!store || hub_init(&hub, &loop, store, &lim) < 0) goto out;
    hub_ok = true;
    for (uint32_t i = 0; i < cfg->nnamespaces; i++) { /* [namespace NAME]: config_ns.c */
        const cfg_ns_t *ns = &cfg->namespaces[i];
        hist_limits_t nl;
        cfg_ns_limits(cfg, ns, &nl.max_messages, &nl.max_bytes, &nl.max_age_ms);
        if (hub_ns_add(&hub, ns->name, ns->pattern, &nl) < 0) goto out;
        log_info("namespace %s: channels %s keep %u messages, %llu bytes, %llu s", ns->name, ns->pattern,
                 nl.max_messages, (unsigned long long)nl.max_bytes, (unsigned long long)(nl.max_age_ms / 1000));
    }
    hub.max_channels = cfg->max_channels;
    hub_set_limits(&hub, cfg->max_retained, cfg->max_retained_bytes, cfg->max_history_memory,
                   cfg->history_policy == HISTORY_REFUSE);
    if (cfg->engine == ENGINE_REDIS) {
        hub.engine = store_redis_engine(store);
        store_redis_attach(store, &hub);
    }
    if (hub_restore(&hub) < 0) {
        log_error("cannot restore retained messages from the store");
        goto out;
    }
    if (publish_init(&pub, &loop, store, cfg) < 0) goto out;
    pub_ok = true;
    if (sched_start(&pub.sched, &hub) < 0) { /* scheduled publishes (sched.h); overdue ones go at once */
        log_error("cannot load the scheduled publishes from the store");
        goto out;
    }
    app.pub = &pub;
    char ierr[200];
    if (iplimit_init(&ipl, cfg->max_connections_per_ip, cfg->max_new_connections_per_ip, cfg->per_ip_exempt, ierr,
                     sizeof(ierr)) < 0) {
        log_error("per_ip_exempt: %s", ierr);
        goto out;
    }
    ipl_ok = true;
    if (users_init(&users, cfg->users_offline_max) < 0) goto out;
    users_ok = true;
    if (presence_setup(&pres, &hub, &users, cfg) < 0) goto out; /* who is subscribed: hub.pres */
    pres_ok = true;
    app.xp = (xp_ctx_t){.hub = &hub, .cfg = cfg, .metrics = &metrics, .auth = &auth, .ipl = &ipl, .users = &users,
                        .schedule = publish_schedule_cb, .schedule_arg = &pub}; /* /ws delay, at */
    char rerr[200];
    if (!(app.reads = readstate_new(&app.xp, rerr, sizeof(rerr)))) {
        log_error("read state: %s", rerr);
        goto out;
    }
    if (hub.engine) { /* admin commands from other nodes (userapi.h) */
        hub.engine->on_control = userapi_control;
        hub.engine->control_arg = &app;
    }
    app.auth = &auth;
    app.check_host = !auth.enabled && local;
    app.xp.sse_heartbeat = http_chunk(":\n\n", 3);
    app.xp.iframe_keepalive = http_chunk("<!-- -->\n", 9);
    app.http = &http;
    if (!app.xp.sse_heartbeat || !app.xp.iframe_keepalive || ws_ctx_init(&app.xp) < 0) goto out;
    rc = http_server_open(&http, &loop, cfg, &metrics, routes_handle, &app);
    http.ipl = &ipl; /* nothing is accepted before the loop runs */
    if (rc < 0) {
        log_error("cannot listen on %s: %s", cfg->http_addr, rc == HR_EINVAL ? "bad address" : strerror(errno));
        listener_close(&http.listener);
        goto out;
    }
    app.mqtt = &mqtt;
    rc = mqtt_server_open(&mqtt, &app.xp, &loop);
    if (rc < 0) {
        log_error("cannot listen on %s (MQTT): %s", cfg->mqtt_addr, rc == HR_EINVAL ? "bad address" : strerror(errno));
        http_server_close(&http);
        loop_run_once(&loop, 0);
        goto out;
    }
    loop.before_write = before_write;
    loop.send_timeout_ms = cfg->send_timeout_ms;
    loop.before_write_arg = &app;
    log_info("herald listening on http://%s, mqtt://%s (store: %s, history: %u messages / %llu bytes per channel)",
             http.listener.addr, mqtt.open ? mqtt.listener.addr : "(off)", store->name, cfg->history_messages,
             (unsigned long long)cfg->history_bytes);
    loop.on_stop = on_stop;
    loop.on_stop_arg = &app;
    loop_run(&loop);
    mqtt_server_close(&mqtt); /* when stopped by loop_stop rather than a signal */
    http_server_close(&http);
    loop_run_once(&loop, 0);
    exit_code = 0;
out:
    if (pub_ok) publish_close(&pub); /* before the hub: requests still waiting are freed here */
    readstate_free(app.reads);
    if (pres_ok) presence_close(&pres); /* every subscription has ended */
    if (hub_ok) hub_close(&hub);
    loop.before_write = NULL;
    if (store) store->ops->close(store);
    bytes_unref(app.xp.sse_heartbeat);
    bytes_unref(app.xp.iframe_keepalive);
    ws_ctx_close(&app.xp);
    if (users_ok) users_close(&users);
    if (auth_ok) auth_close(&auth);
    if (ipl_ok) iplimit_free(&ipl);
    if (loop_close(&loop) < 0 && exit_code == 0) {
        log_error("timers still armed at exit");
        exit_code = 1;
    }
    if (exit_code == 0) log_info("stopped cleanly");
    free(cfg);
    return exit_code;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "serve") == 0) return serve(argc - 2, argv + 2);
    if (strcmp(cmd, "pub") == 0) return cli_pub(argc - 2, argv + 2);
    if (strcmp(cmd, "sub") == 0) return cli_sub(argc - 2, argv + 2);
    if (strcmp(cmd, "token") == 0) return cli_token(argc - 2, argv + 2);
    if (strcmp(cmd, "bench") == 0) return bench_main(argc - 2, argv + 2);
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "herald: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
