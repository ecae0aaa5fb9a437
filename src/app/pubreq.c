/* pubreq.c - parsing and checking the publish routes' input (see pubreq.h). A request is
 * refused as a whole when anything in it is unknown or malformed: a typo in a field or a query
 * parameter (?delay= that herald does not implement) must not be silently ignored, or the
 * caller believes it asked for something it did not get. */
#include "pubreq.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../auth/acl.h"
#include "../core/b64.h"
#include "../core/err.h"
#include "../http/request.h"
#include "../hub/hub.h"

static int pubreq__fail(char *why, size_t cap, const char *text)
{
    snprintf(why, cap, "%s", text);
    return HR_EINVAL;
}

/* Copies name[0..n) into out with every byte outside A-Z a-z 0-9 _ - . as '?' (safe in JSON and
 * in a log line), at most 64 bytes. */
static void pubreq__safe(const char *name, size_t n, char *out, size_t cap)
{
    size_t k = 0;
    for (size_t i = 0; i < n && i < 64 && k + 1 < cap; i++) {
        unsigned char c = (unsigned char)name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                  c == '-' || c == '.';
        out[k++] = ok ? (char)c : '?';
    }
    if (cap) out[k] = 0;
}

/* Appends the strings of array a (channels, or users when user) to r->t. */
static int pubreq__targets(pubreq_t *r, json_t *a, bool user, uint32_t max, char *why, size_t cap)
{
    const char *what = user ? "users" : "channels";
    if (!a || json_is_null(a)) return 0;
    if (!json_is_array(a)) {
        snprintf(why, cap, "%s must be an array of strings", what);
        return HR_EINVAL;
    }
    size_t k = json_array_size(a);
    if (k > max || r->n + k > max) return HR_EFULL;
    for (size_t i = 0; i < k; i++) {
        json_t *v = json_array_get(a, i);
        if (!json_is_string(v)) {
            snprintf(why, cap, "%s must be an array of strings", what);
            return HR_EINVAL;
        }
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);
        if (user ? !acl_sub_valid(s, n) : !hub_channel_valid(s, n))
            return pubreq__fail(why, cap, user ? "invalid user id" : "invalid channel name");
        r->t[r->n++] = (pubreq_target_t){.user = user, .name = s, .n = n};
    }
    return 0;
}

/* The optional string field name of o: NULL when absent or null; HR_EINVAL when not a string. */
static int pubreq__opt_string(json_t *o, const char *name, json_t **out, char *why, size_t cap)
{
    json_t *v = json_object_get(o, name);
    *out = NULL;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_string(v)) {
        snprintf(why, cap, "%s must be a string", name);
        return HR_EINVAL;
    }
    *out = v;
    return 0;
}

int pubreq_parse(const char *body, size_t n, uint32_t max_targets, pubreq_t *out, char *why, size_t cap)
{
    memset(out, 0, sizeof(*out));
    json_error_t jerr;
    json_t *root = json_loadb(body, n, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) return pubreq__fail(why, cap, "the body is not valid JSON");
    out->root = root;
    int rc = HR_EINVAL;
    if (!json_is_object(root)) {
        pubreq__fail(why, cap, "the body must be a JSON object");
        goto fail;
    }
    static const char *const FIELDS[] = {"channels", "users", "broadcast", "event", "data", "encoding",
                                         "idempotency_key", "ttl", "delay", "at", "user_destination", NULL};
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        size_t i = 0;
        while (FIELDS[i] && strcmp(FIELDS[i], key) != 0) i++;
        if (!FIELDS[i]) {
            char safe[72];
            pubreq__safe(key, strlen(key), safe, sizeof(safe));
            snprintf(why, cap, "unknown field: %s", safe);
            goto fail;
        }
    }
    json_t *ch = json_object_get(root, "channels"), *us = json_object_get(root, "users");
    json_t *bc = json_object_get(root, "broadcast");
    if (bc && !json_is_boolean(bc) && !json_is_null(bc)) {
        pubreq__fail(why, cap, "broadcast must be true or false");
        goto fail;
    }
    size_t total = (json_is_array(ch) ? json_array_size(ch) : 0) + (json_is_array(us) ? json_array_size(us) : 0) +
                   json_is_true(bc);
    if (total > max_targets) {
        rc = HR_EFULL;
        goto fail;
    }
    if (!(out->t = calloc(total ? total : 1, sizeof(*out->t)))) {
        rc = HR_ENOMEM;
        goto fail;
    }
    if ((rc = pubreq__targets(out, ch, false, max_targets, why, cap)) < 0 ||
        (rc = pubreq__targets(out, us, true, max_targets, why, cap)) < 0)
        goto fail;
    if (json_is_true(bc)) out->t[out->n++] = (pubreq_target_t){.broadcast = true};
    rc = HR_EINVAL;
    if (!out->n) {
        pubreq__fail(why, cap, "no target: give channels, users and/or broadcast");
        goto fail;
    }
    json_t *data = json_object_get(root, "data"), *event, *enc, *ik;
    if (!json_is_string(data)) {
        pubreq__fail(why, cap, "data (a string) is required");
        goto fail;
    }
    if (pubreq__opt_string(root, "event", &event, why, cap) < 0 || pubreq__opt_string(root, "encoding", &enc, why, cap) < 0 ||
        pubreq__opt_string(root, "idempotency_key", &ik, why, cap) < 0)
        goto fail;
    out->event = event ? json_string_value(event) : "message";
    out->event_len = event ? json_string_length(event) : 7;
    if (!hub_event_valid(out->event, out->event_len)) {
        pubreq__fail(why, cap, "invalid event name (1-64 of A-Z a-z 0-9 _ - . :)");
        goto fail;
    }
    if (ik) {
        out->key = json_string_value(ik);
        out->key_len = json_string_length(ik);
        if (!pubreq_key_valid(out->key, out->key_len)) {
            pubreq__fail(why, cap, "invalid idempotency_key (1-128 printable ASCII characters)");
            goto fail;
        }
    }
    json_t *ud;
    if (pubreq__opt_string(root, "user_destination", &ud, why, cap) < 0) goto fail;
    if (ud) { /* STOMP's user destinations (Spring's convertAndSendToUser(user, "/queue/reply", ...)) */
        const char *d = json_string_value(ud);
        size_t dn = json_string_length(ud);
        if (dn < 8 || (memcmp(d, "/queue/", 7) != 0 && memcmp(d, "/topic/", 7) != 0) || memchr(d, 0, dn)) {
            pubreq__fail(why, cap, "user_destination must be /queue/NAME or /topic/NAME");
            goto fail;
        }
        if (!json_is_array(us) || !json_array_size(us)) {
            pubreq__fail(why, cap, "user_destination needs users");
            goto fail;
        }
        out->user_dest = d + 1;
        out->user_dest_len = dn - 1;
    }
    json_t *ttl = json_object_get(root, "ttl");
    if (ttl && !json_is_null(ttl)) {
        if (!json_is_integer(ttl) || json_integer_value(ttl) < 1 || json_integer_value(ttl) > PUBREQ_MAX_TTL) {
            pubreq__fail(why, cap, "ttl must be an integer number of seconds (1-315360000)");
            goto fail;
        }
        out->ttl = (uint32_t)json_integer_value(ttl);
    }
    json_t *delay = json_object_get(root, "delay"), *at = json_object_get(root, "at");
    if (delay && !json_is_null(delay)) {
        if (!json_is_integer(delay) || json_integer_value(delay) < 1 || json_integer_value(delay) > PUBREQ_MAX_DELAY) {
            pubreq__fail(why, cap, "delay must be an integer number of seconds (1-31536000)");
            goto fail;
        }
        out->delay = (uint32_t)json_integer_value(delay);
    }
    if (at && !json_is_null(at)) {
        bool ok = json_is_string(at) ? pubreq_at_text(json_string_value(at), json_string_length(at), &out->at_ms) == 0
                  : json_is_integer(at) && json_integer_value(at) > 0 && json_integer_value(at) < 253402300800;
        if (ok && json_is_integer(at)) out->at_ms = (uint64_t)json_integer_value(at) * 1000;
        if (!ok) {
            pubreq__fail(why, cap, "at must be an RFC 3339 date-time or epoch seconds");
            goto fail;
        }
    }
    if (out->delay && out->at_ms) {
        pubreq__fail(why, cap, "give delay or at, not both");
        goto fail;
    }
    out->data = json_string_value(data);
    out->data_len = json_string_length(data);
    if (enc) {
        if (strcmp(json_string_value(enc), "base64") != 0) {
            pubreq__fail(why, cap, "encoding must be \\\"base64\\\" when given");
            goto fail;
        }
        size_t dcap = out->data_len / 4 * 3 + 1;
        if (!(out->decoded = malloc(dcap))) {
            rc = HR_ENOMEM;
            goto fail;
        }
        ssize_t dn = b64_decode(out->data, out->data_len, out->decoded, dcap);
        if (dn < 0) {
            pubreq__fail(why, cap, "data is not valid base64");
            goto fail;
        }
        out->data = out->decoded;
        out->data_len = (size_t)dn;
    }
    return 0;
fail:
    pubreq_free(out);
    return rc;
}

void pubreq_free(pubreq_t *r)
{
    if (r->root) json_decref(r->root);
    free(r->t);
    free(r->decoded);
    memset(r, 0, sizeof(*r));
}

int pubreq_ttl_text(const char *s, size_t n, uint32_t *ttl)
{
    uint64_t v = 0;
    if (n == 0 || n > 10) return HR_EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return HR_EINVAL;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v < 1 || v > PUBREQ_MAX_TTL) return HR_EINVAL;
    *ttl = (uint32_t)v;
    return 0;
}

int pubreq_delay_text(const char *s, size_t n, uint32_t *delay)
{
    uint32_t v;
    if (pubreq_ttl_text(s, n, &v) < 0 || v > PUBREQ_MAX_DELAY) return HR_EINVAL;
    *delay = v;
    return 0;
}

/* Reads k digits at s[*i] into *v. */
static bool pubreq__digits(const char *s, size_t n, size_t *i, int k, int *v)
{
    if (*i + (size_t)k > n) return false;
    *v = 0;
    for (int j = 0; j < k; j++) {
        char c = s[*i + (size_t)j];
        if (c < '0' || c > '9') return false;
        *v = *v * 10 + (c - '0');
    }
    *i += (size_t)k;
    return true;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
static int64_t pubreq__days(int y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int pubreq_at_text(const char *s, size_t n, uint64_t *at_ms)
{
    size_t i = 0;
    if (n > 0 && n <= 12 && s[0] >= '0' && s[0] <= '9' && memchr(s, '-', n) == NULL) { /* epoch seconds */
        uint64_t v = 0;
        for (; i < n; i++) {
            if (s[i] < '0' || s[i] > '9') return HR_EINVAL;
            v = v * 10 + (uint64_t)(s[i] - '0');
        }
        if (v == 0 || v >= 253402300800ull) return HR_EINVAL;
        *at_ms = v * 1000;
        return 0;
    }
    int y, mo, d, h, mi, sec, ms = 0, oh = 0, om = 0, sign = 0;
    if (!pubreq__digits(s, n, &i, 4, &y) || i >= n || s[i++] != '-' || !pubreq__digits(s, n, &i, 2, &mo) || i >= n ||
        s[i++] != '-' || !pubreq__digits(s, n, &i, 2, &d) || i >= n || !strchr("Tt ", s[i++]) ||
        !pubreq__digits(s, n, &i, 2, &h) || i >= n || s[i++] != ':' || !pubreq__digits(s, n, &i, 2, &mi) || i >= n ||
        s[i++] != ':' || !pubreq__digits(s, n, &i, 2, &sec))
        return HR_EINVAL;
    if (i < n && s[i] == '.') { /* fractions: milliseconds kept, the rest ignored */
        size_t f = ++i;
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
            if (i - f < 3) ms = ms * 10 + (s[i] - '0');
        if (i == f || i - f > 9) return HR_EINVAL;
        for (size_t k = i - f; k < 3; k++) ms *= 10;
    }
    if (i >= n) return HR_EINVAL;
    if (s[i] == 'Z' || s[i] == 'z') {
        i++;
    } else if (s[i] == '+' || s[i] == '-') {
        sign = s[i++] == '-' ? -1 : 1;
        if (!pubreq__digits(s, n, &i, 2, &oh) || i >= n || s[i++] != ':' || !pubreq__digits(s, n, &i, 2, &om) ||
            oh > 23 || om > 59)
            return HR_EINVAL;
    } else {
        return HR_EINVAL;
    }
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (i != n || y < 1970 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap) ||
        h > 23 || mi > 59 || sec > 60)
        return HR_EINVAL;
    int64_t t = pubreq__days(y, mo, d) * 86400 + h * 3600 + mi * 60 + (sec == 60 ? 59 : sec);
    t -= sign * (oh * 3600 + om * 60);
    if (t <= 0) return HR_EINVAL;
    *at_ms = (uint64_t)t * 1000 + (uint64_t)ms;
    return 0;
}

bool pubreq_key_valid(const char *k, size_t n)
{
    if (n == 0 || n > PUBREQ_MAX_KEY) return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)k[i] < 0x20 || (unsigned char)k[i] > 0x7e) return false;
    return true;
}

int pubreq_query_check(span_t q, const char *const *known, char *bad, size_t cap)
{
    size_t p = 0;
    while (p < q.n) {
        size_t e = p;
        while (e < q.n && q.p[e] != '&') e++;
        size_t ne = p;
        while (ne < e && q.p[ne] != '=') ne++;
        if (ne > p) { /* an empty parameter ("a=1&&b=2") names nothing */
            char name[72];
            ssize_t dn = http_pct_decode(q.p + p, ne - p, name, sizeof(name));
            bool found = false;
            for (size_t i = 0; dn >= 0 && known[i] && !found; i++)
                found = strlen(known[i]) == (size_t)dn && memcmp(known[i], name, (size_t)dn) == 0;
            if (!found) {
                if (dn < 0) pubreq__safe(q.p + p, ne - p, bad, cap);
                else pubreq__safe(name, (size_t)dn, bad, cap);
                return HR_EINVAL;
            }
        }
        p = e + 1;
    }
    return 0;
}

ssize_t pubreq_user_channel(const char *pattern, const char *sub, size_t sn, char *out, size_t cap)
{
    size_t k = 0, pn = strlen(pattern);
    if (!pn || !acl_sub_valid(sub, sn)) return HR_EINVAL;
    for (size_t i = 0; i <= pn;) {
        size_t e = i;
        while (e < pn && pattern[e] != '/') e++;
        bool is_sub = e - i == 5 && memcmp(pattern + i, "{sub}", 5) == 0;
        const char *lv = is_sub ? sub : pattern + i;
        size_t ln = is_sub ? sn : e - i;
        if (k + ln + 2 > cap) return HR_EINVAL;
        memcpy(out + k, lv, ln);
        k += ln;
        if (e < pn) out[k++] = '/';
        i = e + 1;
    }
    out[k] = 0;
    return hub_channel_valid(out, k) ? (ssize_t)k : HR_EINVAL;
}

size_t pubreq_channel_user(const char *pattern, const char *ch, size_t n, const char **user)
{
    const char *u = NULL;
    size_t un = 0, i = 0, k = 0, pn = strlen(pattern);
    if (!pn) return 0;
    for (;;) {
        size_t e = i, f = k;
        while (e < pn && pattern[e] != '/') e++;
        while (f < n && ch[f] != '/') f++;
        if (e - i == 5 && memcmp(pattern + i, "{sub}", 5) == 0) {
            if (u && (un != f - k || memcmp(u, ch + k, un) != 0)) return 0;
            u = ch + k;
            un = f - k;
        } else if (e - i != f - k || memcmp(pattern + i, ch + k, e - i) != 0) {
            return 0;
        }
        if (e == pn || f == n) {
            if (e != pn || f != n || !u || !acl_sub_valid(u, un)) return 0;
            *user = u;
            return un;
        }
        i = e + 1;
        k = f + 1;
    }
}
