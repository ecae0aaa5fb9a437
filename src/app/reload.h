/* reload.h - SIGHUP: the configuration is read again (the same file and flags as at start-up)
 * and what can change while serving is applied; it never stops the server.
 *
 * Applied live: log_level, log_format; the limits and timeouts that are read when they are used
 * (max_connections, max_subscriptions, max_queued_bytes and max_body for new connections,
 * header_timeout, keepalive_timeout, sse_retry); cors_origins, ws_origins, metrics_public;
 * access_log (reopened: logrotate's postrotate can send HUP) and trusted_proxies; access control
 * (token secrets and keys, JWKS, API keys, the permissions and password files: new credentials
 * are checked by the new rules, connections keep what they were granted until they reconnect or
 * refresh their token); the TLS certificates (tls_setup.h). Every other changed key is logged as
 * needing a restart, and keeps its running value. A configuration that does not parse, or access
 * control that does not load, changes nothing (logged). */
#ifndef HERALD_RELOAD_H
#define HERALD_RELOAD_H

#include "routes.h"

/* Reloads app's configuration (SIGHUP). Returns how many keys were applied, or -1 when the new
 * configuration was refused. */
int app_reload(app_t *app);

/* Retires the access control the last reload made (at exit, after every connection closed). */
void app_reload_free(app_t *app);

#endif
