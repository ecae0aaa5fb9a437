/* tls_setup.h - the TLS listeners of `herald serve` from the configuration: the https and mqtts
 * contexts (src/core/tls.h), their listeners beside the plain ones, and the certificate reload
 * that SIGHUP runs. */
#ifndef HERALD_TLS_SETUP_H
#define HERALD_TLS_SETUP_H

#include "../core/tls.h"
#include "../http/server.h"
#include "../transport/mqtt.h"
#include "config.h"

typedef struct app_tls {
    tls_ctx_t *https; /* NULL: https off */
    tls_ctx_t *mqtts; /* NULL: mqtts off */
} app_tls_t;

/* Loads the certificates and keys the configuration asks for (https, mqtts): *t is set up (both
 * NULL when neither listener is configured). On a bad file, a key that does not match its
 * certificate or an inconsistent option, logs one line naming the key and the file and returns
 * -1 with nothing held. */
int app_tls_open(app_tls_t *t, const cfg_t *cfg);

/* Opens the https and mqtts listeners (after the plain ones). 0, or -1 after logging why. */
int app_tls_listen(app_tls_t *t, const cfg_t *cfg, http_server_t *http, mqtt_server_t *mqtt);

/* Re-reads every TLS listener's certificate, key, CA file and SNI directory: new connections get
 * the new ones, open connections keep theirs. A file that fails leaves the old certificates in
 * use; each outcome is logged (and counted in herald_tls_reloads_total). */
void app_tls_reload(app_tls_t *t);

/* Frees the contexts (after every connection closed). */
void app_tls_close(app_tls_t *t);

#endif
