/* test_passwd.c - the Mosquitto-compatible password file, through passwd.h: known-answer lines
 * written by mosquitto_passwd 2.0.11 (Debian 12), the $7$ (PBKDF2-HMAC-SHA512) and $6$
 * (SHA-512) forms, passwd_hash7 round trips, comments, CRLF, blanks, and parse errors with line
 * numbers. Inputs go through guard pages so an over-read crashes. */
#include "../../src/auth/passwd.h"
#include "unit.h"

#include <stdbool.h>

/* Written by `mosquitto_passwd -c -b pw alice secret1`, `-b pw bob 'p@ss w:rd'`,
 * `-H sha512 -b pw carol hunter2` and `-H sha512-pbkdf2 -I 1000 -b pw dave longer-pass`;
 * each also checked with Python's hashlib. */
#define KAT_ALICE                                                                                  \
    "alice:$7$101$UO+pjjcTWrsDblSc$+dNFrrpNezO2puq1/fevTfNPHMPv1GMMiokmj3HigaC7M07kvK7HBD291lSY2IVHGi/" \
    "kMHsw9DOtnnFv5rsxpg=="
#define KAT_BOB                                                                                    \
    "bob:$7$101$qT5MqQrGPdujMiNn$I5vEZlx/SXeAugWxbmK9bvom3XOwRHVTFecTrM+LnclEPpAezHGy6IQVZafU9B/RL/" \
    "GUmUHAVUuADBkihh6oIg=="
#define KAT_CAROL                                                                                  \
    "carol:$6$NgjVrPp3TN8pzfBc$aUhD3WTFsovZTSOInvlTggTZVKbaMzmLlqtCCywYZfnCMwO3h8uvwkv5IVks2jGu0TGnlQDbjH5/" \
    "aY0cAcgoGQ=="
#define KAT_DAVE                                                                                   \
    "dave:$7$1000$5CF0vTqp6tTKisQj$OGeA93JpDfbSq8KDJtnSy4uWCNZcuV6vWsDWfvWhR5JZ8jhLwxgPsKIx1YFLEDn5OCedQzZ38f5RJ9bz" \
    "GbjmXQ=="

static passwd_db_t *parse(const char *text, char *err)
{
    err[0] = '\0';
    return passwd_parse(gp(text, strlen(text)), strlen(text), err, 200);
}

static bool ok(const passwd_db_t *db, const char *user, const char *pw)
{
    return passwd_check(db, gp(user, strlen(user)), strlen(user), gp(pw, strlen(pw)), strlen(pw));
}

TEST(known_answers)
{
    char err[200];
    passwd_db_t *db = parse(KAT_ALICE "\n" KAT_BOB "\n" KAT_CAROL "\n" KAT_DAVE "\n", err);
    CHECK(db != NULL);
    if (!db) {
        printf("#   %s\n", err);
        return;
    }
    CHECK_EQ(passwd_count(db), 4);
    CHECK(ok(db, "alice", "secret1"));
    CHECK(ok(db, "bob", "p@ss w:rd"));
    CHECK(ok(db, "carol", "hunter2"));
    CHECK(ok(db, "dave", "longer-pass"));
    CHECK(!ok(db, "alice", "secret2"));
    CHECK(!ok(db, "alice", "secret"));
    CHECK(!ok(db, "alice", "secret1 "));
    CHECK(!ok(db, "alice", ""));
    CHECK(!ok(db, "bob", "secret1"));
    CHECK(!ok(db, "carol", "Hunter2"));
    CHECK(!ok(db, "dave", "secret1"));
    CHECK(!ok(db, "Alice", "secret1"));
    CHECK(!ok(db, "alic", "secret1"));
    CHECK(!ok(db, "alicee", "secret1"));
    CHECK(!ok(db, "", "secret1"));
    CHECK(!ok(db, "mallory", "secret1"));
    CHECK(!passwd_check(db, "alice", 5, "secret1\0", 8));
    passwd_free(db);
    gp_release();
}

TEST(layout)
{
    char err[200];
    /* comments, blank lines, CRLF, blanks around fields, no final newline */
    passwd_db_t *db = parse("# users\r\n"
                            "\r\n"
                            "   \t\n"
                            "  # indented comment\n" KAT_CAROL "\r\n"
                            "  " KAT_BOB "  \t\r\n" KAT_ALICE,
                            err);
    CHECK(db != NULL);
    if (db) {
        CHECK_EQ(passwd_count(db), 3);
        CHECK(ok(db, "alice", "secret1"));
        CHECK(ok(db, "bob", "p@ss w:rd"));
        CHECK(ok(db, "carol", "hunter2"));
        passwd_free(db);
    } else {
        printf("#   %s\n", err);
    }
    db = parse("", err);
    CHECK(db != NULL);
    CHECK_EQ(passwd_count(db), 0);
    CHECK(!ok(db, "alice", "secret1"));
    CHECK(!ok(db, "", ""));
    passwd_free(db);
    db = parse("# nothing\n", err);
    CHECK(db && passwd_count(db) == 0);
    passwd_free(db);
    passwd_free(NULL);
    CHECK_EQ(passwd_count(NULL), 0);
    CHECK(!passwd_check(NULL, "a", 1, "b", 1));
    /* unpadded base64 is accepted too */
    db = parse("carol:$6$NgjVrPp3TN8pzfBc$aUhD3WTFsovZTSOInvlTggTZVKbaMzmLlqtCCywYZfnCMwO3h8uvwkv5IVks2jGu0TGnlQDbjH5/"
               "aY0cAcgoGQ",
               err);
    CHECK(db && ok(db, "carol", "hunter2"));
    passwd_free(db);
    gp_release();
}

TEST(hash7_round_trip)
{
    char out[256], line[600], err[200];
    size_t n = passwd_hash7("s3cret", 6, 0, out, sizeof(out));
    CHECK_EQ(n, 3 + 3 + 1 + 16 + 1 + 88);
    CHECK_EQ(strlen(out), n);
    CHECK(strncmp(out, "$7$101$", 7) == 0);
    CHECK(out[7 + 16] == '$' && strcmp(out + n - 2, "==") == 0);
    snprintf(line, sizeof(line), "erin:%s\n", out);
    passwd_db_t *db = parse(line, err);
    CHECK(db && ok(db, "erin", "s3cret") && !ok(db, "erin", "s3cre"));
    passwd_free(db);
    /* two hashes of one password differ by salt */
    char out2[256];
    CHECK_EQ(passwd_hash7("s3cret", 6, 0, out2, sizeof(out2)), n);
    CHECK(strcmp(out, out2) != 0);
    /* the exact capacity works, one less does not */
    CHECK_EQ(passwd_hash7("x", 1, 101, out2, n + 1), n);
    CHECK_EQ(passwd_hash7("x", 1, 101, out2, n), 0);
    /* other iteration counts; a long password (longer than the HMAC block); NUL bytes refused */
    n = passwd_hash7("pw", 2, 5000, out, sizeof(out));
    CHECK(n > 0 && strncmp(out, "$7$5000$", 8) == 0);
    static char big[3000];
    memset(big, 'p', sizeof(big));
    CHECK(passwd_hash7(big, sizeof(big), 101, out2, sizeof(out2)) > 0);
    snprintf(line, sizeof(line), "x:%s\ny:%s\n", out, out2);
    db = parse(line, err);
    CHECK(db && passwd_count(db) == 2);
    CHECK(db && passwd_check(db, "x", 1, "pw", 2));
    CHECK(db && !passwd_check(db, "x", 1, "pw\0", 3));
    CHECK(db && passwd_check(db, "y", 1, big, sizeof(big)));
    CHECK(db && !passwd_check(db, "y", 1, big, sizeof(big) - 1));
    passwd_free(db);
    CHECK_EQ(passwd_hash7("pw\0", 3, 101, out, sizeof(out)), 0);
    gp_release();
}

TEST(errors)
{
    static const struct {
        const char *text, *err;
    } cases[] = {
        {"# c\nalice\n", "line 2: want username:hash"},
        {"alice:secret1\n", "line 1: unsupported hash (want $6$ or $7$ as written by mosquitto_passwd)"},
        {"alice:$5$abc$def\n", "line 1: unsupported hash (want $6$ or $7$ as written by mosquitto_passwd)"},
        {"alice:\n", "line 1: unsupported hash (want $6$ or $7$ as written by mosquitto_passwd)"},
        {":$6$NgjVrPp3TN8pzfBc$aaaa\n", "line 1: empty username"},
        {"alice:$7$$UO+pjjcTWrsDblSc$aaaa\n", "line 1: bad iteration count"},
        {"alice:$7$1x$UO+pjjcTWrsDblSc$aaaa\n", "line 1: bad iteration count"},
        {"alice:$7$101\n", "line 1: bad iteration count"},
        {"alice:$7$0$UO+pjjcTWrsDblSc$aaaa\n", "line 1: iteration count out of range (1-10000000)"},
        {"alice:$7$10000001$UO+pjjcTWrsDblSc$aaaa\n", "line 1: iteration count out of range (1-10000000)"},
        {"alice:$7$99999999999999999999$UO+pjjcTWrsDblSc$aaaa\n", "line 1: iteration count out of range (1-10000000)"},
        {"alice:$6$UO+pjjcTWrsDblSc\n", "line 1: missing '$' between salt and hash"},
        {"alice:$6$$aaaa\n", "line 1: bad salt (want 1-64 bytes in base64)"},
        {"alice:$6$UO*pjjcTWrsDblSc$aaaa\n", "line 1: bad salt (want 1-64 bytes in base64)"},
        {"alice:$6$UO+pjjcTWrsDb$aaaa\n", "line 1: bad salt (want 1-64 bytes in base64)"},
        {"alice:$6$UO+pjjcTWrsDblSc=$aaaa\n", "line 1: bad salt (want 1-64 bytes in base64)"},
        {"alice:$6$UO+pjjcTWrsDblSc$aaaa\n", "line 1: bad hash (want 64 bytes in base64)"},
        {"alice:$6$UO+pjjcTWrsDblSc$aUhD3WTFsovZTSOInvlTggTZVKbaMzmLlqtCCywYZfnCMwO3h8uvwkv5IVks2jGu0TGnlQDbjH5/aY0cAcgoG"
         "==\n",
         "line 1: bad hash (want 64 bytes in base64)"},
        {"alice:$6$UO+pjjcTWrsDblSc$aUhD3WTFsovZTSOInvlTggTZVKbaMzmLlqtCCywYZfnCMwO3h8uvwkv5IVks2jGu0TGnlQDbjH5/aY0cAcgoGQ="
         "==\n",
         "line 1: bad hash (want 64 bytes in base64)"},
        {"al\x01ice:$6$UO+pjjcTWrsDblSc$aaaa\n", "line 1: control character"},
        {"alice:$6$UO+pjjcTWrsDblSc$aa\raa\r\n", "line 1: control character"},
        {KAT_ALICE "\n" KAT_BOB "\n\n" KAT_ALICE "\n", "line 4: duplicate user 'alice' (first on line 1)"},
        {KAT_ALICE "\n# x\n" KAT_CAROL "\n alice\t: $6$NgjVrPp3TN8pzfBc$aUhD3WTFsovZTSOInvlTggTZVKbaMzmLlqtCCywYZfnCMwO3h8u"
                                        "vwkv5IVks2jGu0TGnlQDbjH5/aY0cAcgoGQ==\n",
         "line 4: duplicate user 'alice' (first on line 1)"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        char err[200];
        passwd_db_t *db = parse(cases[i].text, err);
        CHECK(db == NULL);
        passwd_free(db);
        if (strcmp(err, cases[i].err) != 0) {
            printf("#   case %zu: got \"%s\"\n#   want \"%s\"\n", i, err, cases[i].err);
            CHECK(0);
        }
    }
    /* a line over 1024 bytes, then one of exactly 1024 */
    static char text[2100];
    memset(text, 'u', sizeof(text));
    memcpy(text, KAT_ALICE "\n", sizeof(KAT_ALICE));
    text[sizeof(KAT_ALICE) + 1025] = '\n';
    char err[200] = "";
    CHECK(passwd_parse(text, sizeof(KAT_ALICE) + 1026, err, sizeof(err)) == NULL);
    CHECK(strcmp(err, "line 2: line too long (at most 1024 bytes)") == 0);
    text[sizeof(KAT_ALICE) + 1024] = '\n';
    CHECK(passwd_parse(text, sizeof(KAT_ALICE) + 1025, err, sizeof(err)) == NULL);
    CHECK(strcmp(err, "line 2: want username:hash") == 0);
    /* a NULL or tiny error buffer */
    CHECK(passwd_parse("bad", 3, NULL, 0) == NULL);
    char small[8];
    CHECK(passwd_parse("bad", 3, small, sizeof(small)) == NULL);
    CHECK(strcmp(small, "line 1:") == 0);
    gp_release();
}

int main(void)
{
    RUN(known_answers);
    RUN(layout);
    RUN(hash7_round_trip);
    RUN(errors);
    return UNIT_DONE();
}
