/* test_config_help.c - unit tests for src/app/config_help.c: every configuration key has its
 * line of documentation and every line a key, `herald help serve` lists every key with its
 * default, and the sample configuration parses back to the defaults. A key added to config.c
 * without a line in config_help.c fails here. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/app/config.h"
#include "../../src/core/err.h"
#include "unit.h"

static char dump[65536];

/* Calls fn(key, line) for every "key = value" line of the defaults' dump. */
static void each_key(void (*fn)(const char *key, const char *line))
{
    static cfg_t c;
    cfg_defaults(&c);
    cfg_dump(&c, dump, sizeof(dump));
    for (char *p = dump; *p;) {
        char *nl = strchr(p, '\n');
        if (nl) *nl = '\0';
        char *eq = strstr(p, " = ");
        if (p[0] != '[' && eq) {
            char key[64];
            snprintf(key, sizeof(key), "%.*s", (int)(eq - p), p);
            fn(key, p);
        }
        if (!nl) break;
        p = nl + 1;
    }
}

static int nkeys;
static void has_help(const char *key, const char *line)
{
    nkeys++;
    if (!cfg_help_text(key)) {
        unit__failed_checks++;
        printf("#   key %s has no line in src/app/config_help.c (HELP)\n", key);
    }
}

TEST(every_key_documented)
{
    nkeys = 0;
    each_key(has_help);
    CHECK(nkeys > 90);
}

TEST(every_line_a_key)
{
    cfg_t c;
    cfg_defaults(&c);
    char err[256];
    size_t i = 0;
    for (const char *k; (k = cfg_help_key(i)); i++) {
        int rc = cfg_set(&c, k, "", err, sizeof(err)); /* the value may be refused, the key must be known */
        if (rc == HR_ENOTFOUND) {
            unit__failed_checks++;
            printf("#   src/app/config_help.c documents '%s', which is no key\n", k);
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(cfg_help_key(j), k) == 0) {
                unit__failed_checks++;
                printf("#   '%s' documented twice\n", k);
            }
        CHECK(strlen(cfg_help_text(k)) < 150); /* "# text" stays within inih's line */
    }
    CHECK_EQ(i, (size_t)nkeys);
}

static char *help;
static void in_help(const char *key, const char *line)
{
    char want[300];
    snprintf(want, sizeof(want), "\n  %s\n      %s\n", line, cfg_help_text(key) ? cfg_help_text(key) : "?");
    if (!strstr(help, want)) {
        unit__failed_checks++;
        printf("#   herald help serve lacks \"%s\"\n", line);
    }
}

TEST(help_serve_lists_every_key)
{
    size_t n = cfg_help(NULL, 0, false);
    CHECK(n > 5000);
    help = malloc(n + 1);
    CHECK_EQ(cfg_help(help, n + 1, false), n);
    CHECK_EQ(strlen(help), n);
    CHECK(strncmp(help, "usage: herald serve", 19) == 0);
    each_key(in_help);
    CHECK(strstr(help, "[namespace NAME]") != NULL);
    char small[16];
    CHECK_EQ(cfg_help(small, sizeof(small), false), n); /* cut, NUL-terminated, full length returned */
    CHECK_EQ(strlen(small), sizeof(small) - 1);
    free(help);
}

/* Equal configurations dump equal (a struct copy does not keep padding: no memcmp). */
static bool same_cfg(const cfg_t *a, const cfg_t *b)
{
    static char da[65536], db[65536];
    cfg_dump(a, da, sizeof(da));
    cfg_dump(b, db, sizeof(db));
    return strcmp(da, db) == 0;
}

TEST(sample_parses_to_the_defaults)
{
    size_t n = cfg_help(NULL, 0, true);
    char *sample = malloc(n + 1);
    cfg_help(sample, n + 1, true);
    cfg_t *c = malloc(sizeof(*c)), *d = malloc(sizeof(*d));
    cfg_defaults(c);
    cfg_defaults(d);
    char err[512] = "";
    CHECK_EQ(cfg_parse_string(c, sample, err, sizeof(err)), 0);
    if (err[0]) printf("#   %s\n", err);
    CHECK(same_cfg(c, d)); /* everything is commented out */
    /* uncommenting every key line (not the namespace example) gives the defaults too */
    char *cut = strstr(sample, "\n# [namespace NAME]");
    CHECK(cut != NULL);
    if (cut) *cut = '\0';
    for (char *p = sample; (p = strstr(p, "\n#")); p++)
        if (p[2] != ' ' && p[2] != '[' && p[2] != '\n') p[1] = ' ';
    cfg_defaults(c);
    CHECK_EQ(cfg_parse_string(c, sample, err, sizeof(err)), 0);
    if (err[0]) printf("#   %s\n", err);
    CHECK(same_cfg(c, d));
    free(c);
    free(d);
    free(sample);
}

int main(void)
{
    RUN(every_key_documented);
    RUN(every_line_a_key);
    RUN(help_serve_lists_every_key);
    RUN(sample_parses_to_the_defaults);
    return UNIT_DONE();
}
