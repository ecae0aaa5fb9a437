/* config_ns.c - the [namespace NAME] sections of the config file (see config.h, cfg_ns_*).
 *
 * A namespace gives channels matching its pattern their own history limits and presence keys:
 *
 *     [namespace inbox]
 *     pattern = user/#
 *     history_age = 7776000
 *     presence = true
 *
 * Keys a section does not set inherit the [history] ones, resolved at start-up (cfg_ns_limits),
 * so `--history-messages 50` on the command line changes every namespace that does not say
 * otherwise. Namespaces have no flags: they exist in the file only. Values go through cfg_set()
 * on a scratch cfg_t, so they take exactly the [history] keys' syntax and ranges. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../auth/acl.h"
#include "../core/err.h"
#include "config.h"

#define NS_MAX_AGE_S (10ull * 366 * 86400) /* history_age in a namespace: up to 10 years */

/* "7776000", "0.5": seconds with up to three decimals -> ms, at most NS_MAX_AGE_S. */
static bool ns_parse_age(const char *v, uint64_t *ms)
{
    size_t n = strlen(v);
    if (n >= 2 && v[0] == '"' && v[n - 1] == '"') v++, n -= 2;
    uint64_t whole = 0, frac = 0;
    size_t i = 0, digits = 0, fd = 0;
    for (; i < n && v[i] >= '0' && v[i] <= '9'; i++, digits++) {
        if (whole > NS_MAX_AGE_S) return false;
        whole = whole * 10 + (uint64_t)(v[i] - '0');
    }
    if (i < n && v[i] == '.')
        for (i++; i < n && v[i] >= '0' && v[i] <= '9' && fd < 3; i++, fd++) frac = frac * 10 + (uint64_t)(v[i] - '0');
    if (i != n || (digits == 0 && fd == 0) || whole > NS_MAX_AGE_S) return false;
    for (; fd < 3; fd++) frac *= 10;
    *ms = whole * 1000 + frac;
    return true;
}

static bool ns_name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63) return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_' ||
              *s == '-' || *s == '.'))
            return false;
    return true;
}

int cfg_ns_set(cfg_t *cfg, const char *ns_name, const char *key, const char *value, int line, char *err,
               size_t errcap)
{
    if (!ns_name_valid(ns_name)) {
        snprintf(err, errcap, "[namespace %s]: a name is 1-63 of A-Z a-z 0-9 _ - .", ns_name);
        return HR_EINVAL;
    }
    cfg_ns_t *ns = NULL;
    for (uint32_t i = 0; i < cfg->nnamespaces; i++)
        if (strcmp(cfg->namespaces[i].name, ns_name) == 0) ns = &cfg->namespaces[i];
    if (!ns) {
        if (cfg->nnamespaces == CFG_MAX_NAMESPACES) {
            snprintf(err, errcap, "more than %d namespaces", CFG_MAX_NAMESPACES);
            return HR_EINVAL;
        }
        ns = &cfg->namespaces[cfg->nnamespaces++];
        memset(ns, 0, sizeof(*ns));
        strcpy(ns->name, ns_name);
        ns->line = line;
    }
    if (strcasecmp(key, "pattern") == 0) {
        size_t vn = strlen(value);
        if (vn >= 2 && value[0] == '"' && value[vn - 1] == '"') value++, vn -= 2;
        if (vn == 0 || vn >= sizeof(ns->pattern) || memchr(value, '{', vn) || !acl_pattern_valid(value, vn)) {
            snprintf(err, errcap, "[namespace %s]: bad pattern '%.*s' (channel levels with + and #, no {sub})",
                     ns_name, (int)vn, value);
            return HR_EINVAL;
        }
        memcpy(ns->pattern, value, vn);
        ns->pattern[vn] = 0;
        return 0;
    }
    static const char *const keys[] = {"history_messages", "history_bytes", "history_age", "presence", "join_leave"};
    int k = -1;
    for (int i = 0; i < 5; i++)
        if (strcasecmp(key, keys[i]) == 0) k = i;
    if (k < 0) {
        snprintf(err, errcap, "[namespace %s]: unknown key '%s' (want pattern, history_messages, history_bytes, "
                 "history_age, presence or join_leave)", ns_name, key);
        return HR_EINVAL;
    }
    if (k == 2) {
        if (!ns_parse_age(value, &ns->history_age_ms)) {
            snprintf(err, errcap, "[namespace %s]: history_age: bad duration '%s' (seconds, up to 3 decimals, at "
                     "most %llu)", ns_name, value, NS_MAX_AGE_S);
            return HR_EINVAL;
        }
        ns->set |= CFG_NS_AGE;
        return 0;
    }
    cfg_t *scratch = malloc(sizeof(*scratch));
    if (!scratch) {
        snprintf(err, errcap, "out of memory");
        return HR_EINVAL;
    }
    char msg[200];
    int rc = cfg_set(scratch, keys[k], value, msg, sizeof(msg));
    if (rc < 0) {
        snprintf(err, errcap, "[namespace %s]: %s", ns_name, msg);
    } else if (k == 3) {
        ns->presence = scratch->presence;
        ns->set |= CFG_NS_PRESENCE;
    } else if (k == 4) {
        ns->join_leave = scratch->join_leave;
        ns->set |= CFG_NS_JOIN_LEAVE;
    } else if (k == 0) {
        ns->history_messages = scratch->history_messages;
        ns->set |= CFG_NS_MESSAGES;
    } else {
        ns->history_bytes = scratch->history_bytes;
        ns->set |= CFG_NS_BYTES;
    }
    free(scratch);
    return rc < 0 ? HR_EINVAL : 0;
}

int cfg_ns_check(const cfg_t *cfg, char *err, size_t errcap)
{
    for (uint32_t i = 0; i < cfg->nnamespaces; i++) {
        const cfg_ns_t *ns = &cfg->namespaces[i];
        if (!ns->pattern[0]) {
            snprintf(err, errcap, "line %d: [namespace %s] has no pattern", ns->line, ns->name);
            return HR_EINVAL;
        }
    }
    return 0;
}

void cfg_ns_limits(const cfg_t *cfg, const cfg_ns_t *ns, uint32_t *messages, uint64_t *bytes, uint64_t *age_ms)
{
    *messages = ns->set & CFG_NS_MESSAGES ? ns->history_messages : cfg->history_messages;
    *bytes = ns->set & CFG_NS_BYTES ? ns->history_bytes : cfg->history_bytes;
    *age_ms = ns->set & CFG_NS_AGE ? ns->history_age_ms : cfg->history_age_ms;
}

static void ns_secs(char *b, size_t cap, uint64_t ms)
{
    if (ms % 1000 == 0) snprintf(b, cap, "%llu", (unsigned long long)(ms / 1000));
    else snprintf(b, cap, "%llu.%03u", (unsigned long long)(ms / 1000), (unsigned)(ms % 1000));
}

size_t cfg_ns_dump(const cfg_t *cfg, char *out, size_t len, size_t cap)
{
    size_t total = 0;
    for (uint32_t i = 0; i < cfg->nnamespaces; i++) {
        const cfg_ns_t *ns = &cfg->namespaces[i];
        uint32_t msgs;
        uint64_t bytes, age;
        cfg_ns_limits(cfg, ns, &msgs, &bytes, &age);
        char a[32];
        ns_secs(a, sizeof(a), age);
        /* keys the section did not set are shown as comments: they follow [history] */
        size_t at = len + total;
        int n = snprintf(at < cap ? out + at : NULL, at < cap ? cap - at : 0,
                         "\n[namespace %s]\npattern = \"%s\"\n%shistory_messages = %u\n%shistory_bytes = %llu\n"
                         "%shistory_age = %s\n",
                         ns->name, ns->pattern, ns->set & CFG_NS_MESSAGES ? "" : "; inherited: ", msgs,
                         ns->set & CFG_NS_BYTES ? "" : "; inherited: ", (unsigned long long)bytes,
                         ns->set & CFG_NS_AGE ? "" : "; inherited: ", a);
        if (n > 0) total += (size_t)n;
        for (int b = 0; b < 2; b++) { /* presence keys: only when the section sets them */
            if (!(ns->set & (b ? CFG_NS_JOIN_LEAVE : CFG_NS_PRESENCE))) continue;
            at = len + total;
            n = snprintf(at < cap ? out + at : NULL, at < cap ? cap - at : 0, "%s = %s\n", b ? "join_leave" : "presence",
                         (b ? ns->join_leave : ns->presence) ? "true" : "false");
            if (n > 0) total += (size_t)n;
        }
    }
    return total;
}
