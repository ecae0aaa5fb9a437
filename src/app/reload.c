/* reload.c - SIGHUP; see reload.h. */
#include "reload.h"

#include <stdlib.h>
#include <string.h>

#include "../core/log.h"
#include "../core/sdnotify.h"
#include "../http/access.h"
#include "tls_setup.h"

/* Keys read where they are used: a new value simply takes effect. */
static const char *const LIVE[] = {"log_level",     "log_format",    "max_connections",  "max_subscriptions",
                                   "max_queued_bytes", "max_body",   "header_timeout",   "keepalive_timeout",
                                   "sse_retry",     "cors_origins",  "ws_origins",       "metrics_public",
                                   "access_log",    "trusted_proxies", "tls_cert",       "tls_key",
                                   NULL};

typedef struct {
    app_t *app;
    const cfg_t *next;
    int applied;
    bool auth;           /* an access-control key changed */
    bool access;         /* access_log or trusted_proxies changed */
    char restart[512];   /* keys that need a restart, for the log line */
} reload_t;

static bool reload__in(const char *const *list, const char *key)
{
    for (int i = 0; list[i]; i++)
        if (strcmp(list[i], key) == 0) return true;
    return false;
}

/* An access-control key: applied by loading access control again (user_channel and
 * broadcast_channel shape channels: a restart). */
static bool reload__auth_key(const char *key, const char *section)
{
    return strcmp(section, "auth") == 0 && strcmp(key, "user_channel") != 0 && strcmp(key, "broadcast_channel") != 0;
}

static void reload__auth_scan(void *arg, const char *key, const char *section)
{
    *(bool *)arg |= reload__auth_key(key, section);
}

static void reload__key(void *arg, const char *key, const char *section)
{
    reload_t *r = arg;
    if (reload__auth_key(key, section)) {
        r->auth = true; /* applied with access control below */
        cfg_copy_key(r->app->cfg, r->next, key);
        r->applied++;
        return;
    }
    if (!reload__in(LIVE, key)) {
        size_t n = strlen(r->restart);
        if (n + strlen(key) + 3 < sizeof(r->restart)) snprintf(r->restart + n, sizeof(r->restart) - n, "%s%s", n ? ", " : "", key);
        return;
    }
    r->access |= strcmp(key, "access_log") == 0 || strcmp(key, "trusted_proxies") == 0;
    cfg_copy_key(r->app->cfg, r->next, key);
    r->applied++;
}

int app_reload(app_t *app)
{
    sdnotify("RELOADING=1\nSTATUS=reloading the configuration");
    cfg_t *next = calloc(1, sizeof(*next));
    char err[512];
    int rc = -1;
    if (!next) {
        log_error("SIGHUP: out of memory: the configuration is unchanged");
        goto out;
    }
    cfg_defaults(next);
    if (cfg_from_args(next, app->argc, app->argv, err, sizeof(err)) < 0) {
        log_error("SIGHUP: %s: the configuration is unchanged", err);
        goto out;
    }
    reload_t r = {.app = app, .next = next};
    /* access control first: when it changed and the new one does not load, nothing changes */
    bool auth_changed = false;
    cfg_diff(app->cfg, next, reload__auth_scan, &auth_changed);
    auth_t *na = NULL;
    if (auth_changed) {
        na = calloc(1, sizeof(*na));
        char aerr[600];
        if (!na || auth_init(na, next, aerr, sizeof(aerr)) < 0) {
            log_error("SIGHUP: access control: %s: the configuration is unchanged", na ? aerr : "out of memory");
            free(na);
            goto out;
        }
    }
    cfg_diff(app->cfg, next, reload__key, &r);
    log_set_level(app->cfg->log_level);
    log_set_json(app->cfg->log_format == LOG_FORMAT_JSON);
    app->http->cors_any = strchr(app->cfg->cors_origins, '*') != NULL;
    if (r.access) {
        http_access_close(app->http);
        if (http_access_open(app->http, app->cfg) < 0) log_error("SIGHUP: access_log / trusted_proxies: off until fixed");
    } else if (app->http->alog && app->http->alog != stderr) { /* reopened: logrotate moved it away */
        http_access_close(app->http);
        http_access_open(app->http, app->cfg);
    }
    if (na) {
        if (app->auth != app->boot_auth) auth_retire(app->auth); /* the boot one lives on the stack */
        app->auth = na;
        app->xp.auth = na;
        log_info("SIGHUP: access control reloaded: %s%s%s%s", na->keys ? "tokens " : "", na->nkeys ? "api-keys " : "",
                 na->have_rules ? "permissions-file " : "", na->pw ? "passwords" : "");
    }
    if (app->tls) app_tls_reload(app->tls);
    if (r.restart[0]) log_warn("SIGHUP: changed, but only a restart applies them (kept as they run): %s", r.restart);
    log_info("SIGHUP: configuration reloaded (%d keys applied)", r.applied);
    rc = r.applied;
out:
    free(next);
    sdnotify("READY=1\nSTATUS=serving");
    return rc;
}

void app_reload_free(app_t *app)
{
    if (app->auth != app->boot_auth) { /* the one in use came from a reload */
        auth_retire(app->auth);
        app->auth = app->boot_auth;
    }
}
