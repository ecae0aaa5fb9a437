/* tls_setup.c - see tls_setup.h. Both listeners serve the same certificate (tls_cert, tls_key,
 * tls_sni_certs); client certificates (tls_ca, tls_require_client_cert, mqtt_cert_identity) are
 * asked for on mqtts only: a browser asked for one on https would prompt its user. */
#include "tls_setup.h"

#include <errno.h>
#include <string.h>

#include "../core/err.h"
#include "../core/log.h"

static int app__tls_ctx(tls_ctx_t **out, const cfg_t *cfg, const char *name, const char *alpn, bool mqtt)
{
    tls_opts_t o = {
        .name = name,
        .cert = cfg->tls_cert,
        .key = cfg->tls_key,
        .ca = mqtt ? cfg->tls_ca : "",
        .client_cert = !mqtt || !cfg->tls_ca[0]      ? TLS_CLIENT_CERT_NONE
                       : cfg->tls_require_client_cert ? TLS_CLIENT_CERT_REQUIRED
                                                      : TLS_CLIENT_CERT_OPTIONAL,
        .sni_dir = cfg->tls_sni_certs,
        .alpn = alpn,
        .ciphers = cfg->tls_ciphers,
        .min_version = cfg->tls_min_version == 1 ? 13 : 12,
        .handshake_timeout_ms = cfg->tls_handshake_timeout_ms,
        .ktls = cfg->tls_ktls,
        .plain_reply = mqtt ? NULL
                            : "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: 59\r\n"
                              "Connection: close\r\n\r\n{\"error\":\"a plain HTTP request was sent to the HTTPS port\"}",
    };
    char err[1400];
    if (tls_ctx_new(out, &o, err, sizeof(err)) < 0) {
        log_error("%s", err);
        return -1;
    }
    return 0;
}

int app_tls_open(app_tls_t *t, const cfg_t *cfg)
{
    *t = (app_tls_t){0};
    if (cfg->tls_require_client_cert && !cfg->tls_ca[0]) {
        log_error("tls_require_client_cert needs tls_ca (the CA file that signs the client certificates)");
        return -1;
    }
    if (cfg->mqtt_cert_identity && (!cfg->mqtts_addr[0] || !cfg->tls_ca[0])) {
        log_error("mqtt_cert_identity needs mqtts and tls_ca (client certificates are asked for on mqtts)");
        return -1;
    }
    if (!cfg->https_addr[0] && !cfg->mqtts_addr[0]) {
        if (cfg->tls_cert[0] || cfg->tls_key[0]) log_warn("tls_cert/tls_key are set but neither https nor mqtts is");
        return 0;
    }
    if (!cfg->tls_cert[0] || !cfg->tls_key[0]) {
        log_error("%s needs tls_cert and tls_key (PEM files)", cfg->https_addr[0] ? "https" : "mqtts");
        return -1;
    }
    if ((cfg->https_addr[0] && app__tls_ctx(&t->https, cfg, "https", "http/1.1", false) < 0) ||
        (cfg->mqtts_addr[0] && app__tls_ctx(&t->mqtts, cfg, "mqtts", "mqtt", true) < 0)) {
        app_tls_close(t);
        return -1;
    }
    const char *why;
    bool ktls = tls_ktls_available(&why);
    const tls_ctx_t *any = t->https ? t->https : t->mqtts;
    log_info("tls: %s%s%s (TLS %s+, %u SNI certificates, client certificates on mqtts: %s); kernel TLS: %s (%s)",
             t->https ? "https" : "", t->https && t->mqtts ? " and " : "", t->mqtts ? "mqtts" : "",
             cfg->tls_min_version == 1 ? "1.3" : "1.2", tls_ctx_stats(any)->sni_certs,
             !t->mqtts || !cfg->tls_ca[0] ? "no" : cfg->tls_require_client_cert ? "required" : "optional",
             !cfg->tls_ktls ? "off (tls_ktls = false)" : ktls ? "available" : "off", why);
    return 0;
}

int app_tls_listen(app_tls_t *t, const cfg_t *cfg, http_server_t *http, mqtt_server_t *mqtt)
{
    int rc;
    if (t->https && (rc = http_server_listen_tls(http, cfg->https_addr, t->https)) < 0) {
        log_error("cannot listen on %s (https): %s", cfg->https_addr, rc == HR_EINVAL ? "bad address" : strerror(errno));
        return -1;
    }
    if (t->mqtts && (rc = mqtt_server_listen_tls(mqtt, cfg->mqtts_addr, t->mqtts)) < 0) {
        log_error("cannot listen on %s (mqtts): %s", cfg->mqtts_addr, rc == HR_EINVAL ? "bad address" : strerror(errno));
        return -1;
    }
    return 0;
}

void app_tls_reload(app_tls_t *t)
{
    tls_ctx_t *ctxs[2] = {t->https, t->mqtts};
    for (int i = 0; i < 2; i++) {
        if (!ctxs[i]) continue;
        char err[1400];
        if (tls_ctx_reload(ctxs[i], err, sizeof(err)) < 0)
            log_error("%s: certificates not reloaded, the old ones stay in use: %s", tls_ctx_name(ctxs[i]), err);
        else
            log_info("%s: certificates reloaded (new connections use them; open ones keep theirs)",
                     tls_ctx_name(ctxs[i]));
    }
}

void app_tls_close(app_tls_t *t)
{
    tls_ctx_free(t->https);
    tls_ctx_free(t->mqtts);
    *t = (app_tls_t){0};
}
