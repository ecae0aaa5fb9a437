/* retain_ns.c - retention namespaces: per channel-pattern history limits (hub_ns_add).
 *
 * A namespace is a pattern in the permissions file's syntax (MQTT wildcards "+" and "#") with
 * its own history limits. A channel is matched once, when hub_channel() creates it, against the
 * namespaces in config order; the first match wins, no match keeps hub->limits. The channel then
 * holds a pointer to the limits (chan_t.lim), so the hot path (every publish, every read of the
 * history) costs nothing more than before. Each namespace is its own allocation, so the pointers
 * stay valid while namespaces are added; they live until hub_close(). */
#include <stdlib.h>
#include <string.h>

#include "../auth/acl.h"
#include "../core/err.h"
#include "hub.h"

struct hub_ns {
    hist_limits_t lim;
    bool pinned; /* hub_ns_pin */
    size_t pattern_len;
    char *pattern;
    char name[];
};

int hub_ns_add(hub_t *hub, const char *name, const char *pattern, const hist_limits_t *lim)
{
    size_t pn = strlen(pattern), nn = strlen(name);
    if (!acl_pattern_valid(pattern, pn) || memchr(pattern, '{', pn)) return HR_EINVAL;
    struct hub_ns **arr = realloc(hub->ns, (hub->nns + 1) * sizeof(*arr));
    if (!arr) return HR_ENOMEM;
    hub->ns = arr;
    struct hub_ns *ns = malloc(sizeof(*ns) + nn + 1 + pn + 1);
    if (!ns) return HR_ENOMEM;
    ns->lim = *lim;
    ns->pinned = false;
    memcpy(ns->name, name, nn + 1);
    ns->pattern = ns->name + nn + 1;
    memcpy(ns->pattern, pattern, pn + 1);
    ns->pattern_len = pn;
    hub->ns[hub->nns++] = ns;
    return 0;
}

const hist_limits_t *hub_ns_limits(const hub_t *hub, const char *name, size_t n, const char **ns_name)
{
    for (uint32_t i = 0; i < hub->nns; i++) {
        const struct hub_ns *ns = hub->ns[i];
        if (acl_match(ns->pattern, ns->pattern_len, NULL, 0, name, n)) {
            if (ns_name) *ns_name = ns->name;
            return &ns->lim;
        }
    }
    if (ns_name) *ns_name = NULL;
    return &hub->limits;
}

void hub_ns_pin(hub_t *hub)
{
    if (hub->nns) hub->ns[hub->nns - 1]->pinned = true;
}

bool hub__ns_pinned(const hub_t *hub, const hist_limits_t *lim)
{
    return lim != &hub->limits && container_of(lim, struct hub_ns, lim)->pinned;
}

void hub__ns_free(hub_t *hub)
{
    for (uint32_t i = 0; i < hub->nns; i++) free(hub->ns[i]);
    free(hub->ns);
    hub->ns = NULL;
    hub->nns = 0;
}
