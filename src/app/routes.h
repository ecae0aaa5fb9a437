/* routes.h - the HTTP routes of `herald serve`: publish, subscribe (handing the request to the
 * transport its mode names), channel info, health, metrics and the embedded web files. */
#ifndef HERALD_ROUTES_H
#define HERALD_ROUTES_H

#include "../http/server.h"
#include "../transport/transport.h"
#include "../transport/mqtt.h"
#include "../transport/ws.h"

typedef struct publish publish_t; /* publish.h */
typedef struct readstate readstate_t; /* readstate.h */

typedef struct {
    xp_ctx_t xp;
    http_server_t *http;
    mqtt_server_t *mqtt;
    auth_t *auth;
    publish_t *pub;  /* the publish routes' state (publish.h) */
    readstate_t *reads; /* read cursors and unread counts (readstate.h) */
    bool check_host; /* refuse Host names that are neither loopback nor in allowed_hosts */
    struct app_tls *tls; /* the https and mqtts contexts (tls_setup.h): their metrics, SIGHUP */
    cfg_t *cfg;          /* the running configuration (xp.cfg), changed in place by a reload */
    int argc;            /* serve's arguments, read again on SIGHUP (reload.h) */
    char **argv;
    auth_t *boot_auth;   /* the access control serve started with (not freed by reload.c) */
} app_t;

/* True when h is a loopback name with or without a port: localhost, *.localhost, 127.0.0.0/8,
 * [::1] (a Host header, or a listen address). */
bool routes_loopback_host(span_t h);

/* The http_handler_cb of the server; srv->ctx is the app_t. */
void routes_handle(http_conn_t *hc, http_req_t *req, span_t body);

#endif
