/* passwd.h - a Mosquitto-compatible password file for MQTT (and STOMP) clients that cannot carry
 * tokens: lines "username:hash" as written by mosquitto_passwd, where hash is
 *     $7$ITERATIONS$SALT_B64$HASH_B64   PBKDF2-HMAC-SHA512 (Mosquitto 2.0's default)
 *     $6$SALT_B64$HASH_B64              SHA-512(password || salt) (Mosquitto 1.x)
 * Blank lines and lines whose first non-blank character is '#' are skipped; blanks around the
 * user name and the hash are ignored; lines may end with LF or CRLF. The parser rejects lines over
 * 1024 bytes, more than 1,000,000 users, a user listed twice, plain-text passwords (run
 * `mosquitto_passwd -U`), a $7$ iteration count outside 1..10,000,000, a salt over 64 bytes and
 * a hash that is not 64 bytes. Checking a password costs the same whether or not the user
 * exists (a dummy hash, with the first user's algorithm and iteration count, is checked for
 * unknown users) and compares in constant time (CRYPTO_memcmp). Pure apart from OpenSSL; no
 * global state. */
#ifndef HERALD_PASSWD_H
#define HERALD_PASSWD_H

#include <stdbool.h>
#include <stddef.h>

typedef struct passwd_db passwd_db_t;

/* Parses the file text[0..n). Returns the database, or NULL with "line N: message" in err. */
passwd_db_t *passwd_parse(const char *text, size_t n, char *err, size_t cap);

void passwd_free(passwd_db_t *db);

/* Number of users. */
size_t passwd_count(const passwd_db_t *db);

/* True when user[0..un) exists and password[0..pn) is theirs. False for a password containing a
 * NUL byte (PBKDF2 would not tell "pw" from "pw\0"; Mosquitto cuts passwords at the NUL). */
bool passwd_check(const passwd_db_t *db, const char *user, size_t un, const char *password, size_t pn);

/* Writes a "$7$..." line value for password (PBKDF2-HMAC-SHA512, 101 iterations as Mosquitto,
 * random 12-byte salt) into out, NUL-terminated; iterations <= 0 means 101. Returns its length
 * (without the NUL), or 0 when cap is too small, the password contains a NUL byte or OpenSSL
 * fails. For tests and a
 * future `herald passwd`. */
size_t passwd_hash7(const char *password, size_t pn, int iterations, char *out, size_t cap);

#endif
