/* main.c - the herald binary: subcommands serve, check-config, pub, sub, token, bench, help,
 * version; and the wiring of serve: configuration -> access control -> loop -> store -> hub ->
 * transports -> HTTP server, readiness to the service manager (sdnotify.h), then a clean
 * shutdown on SIGTERM/SIGINT that stops accepting, closes every connection and frees everything.
 * check-config runs serve's own start-up up to the point where serve opens the store. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../bench/loadgen.h"
#include "../core/err.h"
#include "../core/log.h"
#include "../core/sdnotify.h"
#include "../store/redis.h"
#include "../core/fdlimit.h"
#include "../transport/stomp_queue.h"
#include "cli.h"
#include "config.h"
#include "presence_api.h"
#include "publish.h"
#include "readstate.h"
#include "reload.h"
#include "routes.h"
#include "../transport/sockjs.h"
#include "tls_setup.h"
#include "userapi.h"
#include "version.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: herald serve [-c herald.conf] [--http ADDR:PORT] [--KEY VALUE ...] [--print-config] [--check]\n"
               "       herald check-config [-c herald.conf] [--KEY VALUE ...]\n"
               "       herald pub [--url URL] [--event NAME] CHANNEL [DATA]\n"
               "       herald sub [--url URL] [--last-id N] [-n COUNT] CHANNEL\n"
               "       herald token [-c herald.conf] --sub USER [--subscribe P]... [--publish P]... [--ttl 1h]\n"
               "       herald bench [options]   (herald bench --help)\n"
               "       herald --version\n"
               "Every configuration key: herald help serve; a sample herald.conf: herald help config\n");
}

static void on_stop(loop_t *loop, void *arg)
{
    app_t *app = arg;
    log_info("stopping: listeners closed; saying goodbye to %u connections (at most shutdown_timeout = %u s)",
             app->http->nconns + app->mqtt->nconns, app->xp.cfg->shutdown_timeout_ms / 1000);
    sdnotify("STOPPING=1\nSTATUS=stopping");
    mqtt_server_close(app->mqtt); /* MQTT 5: DISCONNECT 0x8B; sessions saved */
    sockjs_shutdown(&app->xp);    /* SockJS sessions: c[1001,...] to their receivers */
    http_server_drain(app->http); /* goodbyes, long polls answered; the rest below */
}

/* SIGHUP: the configuration is read again and what can change live is applied, the TLS
 * certificates included (reload.h); it never stops the server. */
static void on_hup(loop_t *loop, void *arg)
{
    (void)loop;
    app_reload(arg);
}

/* The loop calls this before it writes to sockets: changed MQTT sessions are saved, then one
 * commit covers the iteration's writes, and only then are its publishes delivered and
 * acknowledged (or failed, with the sessions written again next time). */
static void before_write(loop_t *loop, void *arg)
{
    (void)loop;
    app_t *app = arg;
    if (app->mqtt) mqtt_server_persist(app->mqtt);
    stomp_queues_flush(app->xp.stq); /* acknowledgements go with this commit, before any answer */
    int rc = hub_commit(app->xp.hub);
    if (app->mqtt) mqtt_server_committed(app->mqtt, rc == 0);
    /* the commit's messages went into offline persistent sessions' queues: those are saved too
     * before anyone is answered (the answers are written after this), or a crash right after a
     * publish's answer would lose them from the sessions (a second, small commit) */
    for (int round = 0; round < 2 && app->mqtt && mqtt_server_dirty(app->mqtt); round++) {
        mqtt_server_persist(app->mqtt);
        rc = hub_commit(app->xp.hub);
        mqtt_server_committed(app->mqtt, rc == 0);
    }
    if (app->reads) readstate_flush(app->reads);
}

/* What serve loads and checks before it opens the store or a listener, shared with check-config
 * so that both accept and refuse the same configurations with the same messages: the engine's
 * address, access control (token secret and key files, JWKS, API keys, the permissions and
 * password files), the refusal to serve beyond loopback without it, and per_ip_exempt. Logs the
 * first error and returns -1 with nothing held; or 0 with *auth and *ipl set up (the caller
 * frees them) and *local true when every listener is on loopback. */
static int serve_load(const cfg_t *cfg, auth_t *auth, iplimit_t *ipl, bool *local)
{
    if (cfg->engine == ENGINE_REDIS && !cfg->redis_addr[0] && !cfg->redis_sentinel[0]) {
        log_error("engine = redis: the redis address is empty");
        return -1;
    }
    char aerr[600];
    if (auth_init(auth, cfg, aerr, sizeof(aerr)) < 0) {
        log_error("auth: %s", aerr);
        return -1;
    }
    *local = routes_loopback_host(span_of(cfg->http_addr)) &&
             (!cfg->mqtt_addr[0] || routes_loopback_host(span_of(cfg->mqtt_addr))) &&
             (!cfg->https_addr[0] || routes_loopback_host(span_of(cfg->https_addr))) &&
             (!cfg->mqtts_addr[0] || routes_loopback_host(span_of(cfg->mqtts_addr)));
    if (!auth->enabled && !*local && !cfg->allow_anonymous) {
        log_error("refusing to serve beyond loopback (http = %s, mqtt = %s) with no access control: configure "
                  "token_hmac_secret, token_public_key, token_jwks_file, api_keys, permissions_file or "
                  "password_file, or set allow_anonymous = true to run open on purpose",
                  cfg->http_addr, cfg->mqtt_addr[0] ? cfg->mqtt_addr : "off");
        auth_close(auth);
        return -1;
    }
    if (!auth->enabled)
        log_info("access control is off: every client may subscribe and publish (%s)",
                 *local ? "loopback only" : "allow_anonymous = true");
    else
        log_info("access control: %s%s%s%s; anonymous clients %s", auth->keys ? "tokens " : "",
                 auth->nkeys ? "api-keys " : "", auth->have_rules ? "permissions-file " : "",
                 auth->pw ? "passwords " : "",
                 auth->anon_any ? "may do everything (allow_anonymous)"
                 : auth_has_any(&auth->anon_id) ? "have the permissions file's anonymous rules" : "may do nothing");
    char ierr[200];
    if (iplimit_init(ipl, cfg->max_connections_per_ip, cfg->max_new_connections_per_ip, cfg->per_ip_exempt, ierr,
                     sizeof(ierr)) < 0) {
        log_error("per_ip_exempt: %s", ierr);
        auth_close(auth);
        return -1;
    }
    return 0;
}

/* `herald serve` (check = false) and `herald check-config` / `herald serve --check` (check =
 * true: stops after serve_load, prints "configuration OK"; exit 2 for any error). */
static int serve_run(int argc, char **argv, bool check, char **serve_argv, int serve_argc)
{
    cfg_t *cfg = calloc(1, sizeof(*cfg));
    if (!cfg) return 1;
    cfg_defaults(cfg);
    bool print = false;
    char **args = calloc((size_t)argc + 1, sizeof(char *));
    int nargs = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--print-config") == 0) print = true;
        else if (strcmp(argv[i], "--check") == 0) check = true;
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
    log_set_json(cfg->log_format == LOG_FORMAT_JSON);
    auth_t auth;
    iplimit_t ipl;
    bool local;
    if (serve_load(cfg, &auth, &ipl, &local) < 0) {
        free(cfg);
        return check ? 2 : 1;
    }
    app_tls_t tls; /* the https and mqtts certificates (tls_setup.h): checked by check-config too */
    if (app_tls_open(&tls, cfg) < 0) {
        auth_close(&auth);
        iplimit_free(&ipl);
        free(cfg);
        return check ? 2 : 1;
    }
    if (check) { /* nothing was opened: no store, no listener */
        app_tls_close(&tls);
        auth_close(&auth);
        iplimit_free(&ipl);
        free(cfg);
        printf("configuration OK\n");
        return 0;
    }
    /* every connection is a file: raise the soft limit (room for both listeners full) and say when
     * not even one listener's max_connections fits */
    uint64_t need = (uint64_t)cfg->max_connections + 64;
    uint64_t nofile = fdlimit_raise(cfg->mqtt_addr[0] ? 2 * need : need);
    if (nofile && nofile < need)
        log_warn("the open-file limit is %llu (ulimit -n; LimitNOFILE= under systemd) but max_connections = %u needs "
                 "about %llu: connections beyond it are closed at once (herald_connections_refused_total{reason=\"fd_limit\"})",
                 (unsigned long long)nofile, cfg->max_connections, (unsigned long long)need);

    int exit_code = 1;
    loop_t loop;
    metrics_t metrics = {0};
    hub_t hub;
    http_server_t http;
    mqtt_server_t mqtt;
    app_t app = {0};
    store_t *store = NULL;
    bool hub_ok = false, pub_ok = false;
    publish_t pub;
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
        if (!(store = store_redis_open(&ro, &loop, serr, sizeof(serr)))) { /* an address: serve_load */
            log_error("engine = redis: %s", serr);
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
    hist_limits_t lim = {cfg->history_messages, cfg->history_bytes, cfg->history_age_ms};
    if (!store || hub_init(&hub, &loop, store, &lim) < 0) goto out;
    hub_ok = true;
    if (stomp_queues_ns(&hub, cfg) < 0) goto out; /* queue/# first: STOMP queues keep what is not acknowledged */
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
    char qerr[200];
    if (!stomp_queues_open(&app.xp, qerr, sizeof(qerr)) && qerr[0]) { /* STOMP /queue/ (none with engine = redis) */
        log_error("%s", qerr);
        goto out;
    }
    if (hub.engine) { /* admin commands from other nodes (userapi.h) */
        hub.engine->on_control = userapi_control;
        hub.engine->control_arg = &app;
    }
    app.auth = app.boot_auth = &auth;
    app.cfg = cfg;
    app.argc = serve_argc;
    app.argv = serve_argv;
    app.check_host = !auth.enabled && local;
    app.xp.sse_heartbeat = http_chunk(":\n\n", 3);
    app.xp.iframe_keepalive = http_chunk("<!-- -->\n", 9);
    app.http = &http;
    if (!app.xp.sse_heartbeat || !app.xp.iframe_keepalive || ws_ctx_init(&app.xp) < 0) goto out;
    rc = http_server_open(&http, &loop, cfg, &metrics, routes_handle, &app);
    http.ipl = &ipl; /* nothing is accepted before the loop runs */
    static const char *const own_options[] = {"/stomp/", "/ws/", "/sockjs/", NULL}; /* SockJS answers its OPTIONS */
    http.own_options = own_options;
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
    app.tls = &tls;
    if (app_tls_listen(&tls, cfg, &http, &mqtt) < 0) {
        mqtt_server_close(&mqtt);
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
    if (tls.https || tls.mqtts)
        log_info("herald listening on %s%s%s%s%s", tls.https ? "https://" : "", tls.https ? http.tls_listener.addr : "",
                 tls.https && tls.mqtts ? ", " : "", tls.mqtts ? "mqtts://" : "", tls.mqtts ? mqtt.tls_listener.addr : "");
    loop.on_stop = on_stop;
    loop.on_stop_arg = &app;
    loop.on_hup = on_hup;
    loop.on_hup_arg = &app;
    if (sdnotifyf("READY=1\nSTATUS=listening on http://%s%s%s", http.listener.addr, mqtt.open ? ", mqtt://" : "",
                  mqtt.open ? mqtt.listener.addr : "") < 0)
        log_warn("cannot notify the service manager (NOTIFY_SOCKET): %s", strerror(errno));
    loop_run(&loop);
    /* draining: goodbyes are written, parked publishes committed and answered, within the deadline */
    uint64_t until = loop_now(&loop) + cfg->shutdown_timeout_ms;
    while (http.nconns && loop_now(&loop) < until) loop_run_once(&loop, 20);
    if (http.nconns) log_warn("shutdown_timeout: %u connections still open after %u ms: closed", http.nconns,
                              cfg->shutdown_timeout_ms);
    mqtt_server_close(&mqtt); /* when stopped by loop_stop rather than a signal */
    sockjs_shutdown(&app.xp);
    http_server_close(&http);
    loop_run_once(&loop, 0);
    exit_code = 0;
out:
    if (pub_ok) publish_close(&pub); /* before the hub: requests still waiting are freed here */
    stomp_queues_close(app.xp.stq); /* every STOMP connection has closed */
    readstate_free(app.reads);
    if (pres_ok) presence_close(&pres); /* every subscription has ended */
    if (hub_ok) hub_close(&hub);
    loop.before_write = NULL;
    if (store) store->ops->close(store);
    bytes_unref(app.xp.sse_heartbeat);
    bytes_unref(app.xp.iframe_keepalive);
    ws_ctx_close(&app.xp);
    sockjs_free(&app.xp);
    if (users_ok) users_close(&users);
    auth_close(&auth);
    iplimit_free(&ipl);
    app_tls_close(&tls); /* every connection is gone */
    if (loop_close(&loop) < 0 && exit_code == 0) {
        log_error("timers still armed at exit");
        exit_code = 1;
    }
    if (exit_code == 0) log_info("stopped cleanly");
    app_reload_free(&app);
    free(cfg);
    return exit_code;
}

static int serve(int argc, char **argv, bool check)
{
    /* what SIGHUP reads again: these arguments (the process's own argv, living to the end) */
    char **serve_argv = calloc((size_t)argc + 1, sizeof(char *));
    if (!serve_argv) return 1;
    int serve_argc = 0;
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--print-config") != 0 && strcmp(argv[i], "--check") != 0) serve_argv[serve_argc++] = argv[i];
    int rc = serve_run(argc, argv, check, serve_argv, serve_argc);
    free(serve_argv);
    return rc;
}

/* `herald help serve` (every key, its default and meaning) and `herald help config` (the
 * annotated sample configuration), both made from the key table (config_help.c). */
static int help_keys(bool sample)
{
    size_t n = cfg_help(NULL, 0, sample);
    char *text = n ? malloc(n + 1) : NULL;
    if (!text) return 1;
    cfg_help(text, n + 1, sample);
    int rc = fwrite(text, 1, n, stdout) == n && fflush(stdout) == 0 ? 0 : 1;
    free(text);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "serve") == 0) return serve(argc - 2, argv + 2, false);
    if (strcmp(cmd, "check-config") == 0) return serve(argc - 2, argv + 2, true);
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0 || strcmp(cmd, "-V") == 0) {
        char text[512];
        version_text(text, sizeof(text));
        fputs(text, stdout);
        return 0;
    }
    if (strcmp(cmd, "help") == 0 && argc > 2 && (strcmp(argv[2], "serve") == 0 || strcmp(argv[2], "config") == 0))
        return help_keys(strcmp(argv[2], "config") == 0);
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
