/* cli.h - the `herald pub` and `herald sub` client subcommands: a small blocking HTTP/1.1
 * client over POSIX sockets or TLS (cli_net.h; https:// URLs, --cacert FILE) (Content-Length and chunked bodies) and an SSE subscriber that
 * resumes with Last-Event-ID after a disconnect. No global state; every call stands alone. */
#ifndef HERALD_CLI_H
#define HERALD_CLI_H

#include <stdbool.h>
#include <stddef.h>

/* `herald pub [--url URL] [--event NAME] CHANNEL [DATA]`. argv[0] is the first argument after
 * "pub". Posts DATA, or all of stdin when DATA is absent, to URL/pub/CHANNEL. Prints the
 * server's JSON answer to stdout. Returns the exit code: 0 on a 2xx answer; 1 when the server
 * answered otherwise (its body goes to stderr) or could not be reached; 2 on a usage error.
 * The URL defaults to $HERALD_URL, then http://127.0.0.1:8080. */
int cli_pub(int argc, char **argv);

/* `herald sub [--url URL] [--last-id N] [-n COUNT] CHANNEL`. argv[0] is the first argument
 * after "sub". Streams URL/sub/CHANNEL as SSE and prints each message's data and "\n" to
 * stdout ("<name>@base64" events decoded to raw bytes; "gap" events as a notice on stderr).
 * After a disconnect it waits the server's retry delay (2 s by default) and resumes with
 * Last-Event-ID. Returns 0 after COUNT messages; 1 when the first connection fails, the server
 * answers other than 200 with SSE, or stdout fails; 2 on a usage error. */
int cli_sub(int argc, char **argv);

/* `herald token [-c herald.conf] [--KEY VALUE ...] --sub USER [--subscribe PATTERN]...
 * [--publish PATTERN]... [--ttl DURATION] [--alg ALG] [--kid KID] [--private-key PEM_FILE]
 * [--claim NAME=JSON]...`. Mints a signed token (src/auth/jwt.h) for development and tests and
 * prints it with a newline. Implemented in cli_token.c; see there for the details. Returns 0, 1
 * when it cannot sign (no key configured, a bad key), 2 on a usage error. */
int cli_token(int argc, char **argv);

/* ---- internal, exposed for tests ---- */

/* A parsed "http[s]://host[:port][/base]" URL. authority is what goes in the Host header. */
typedef struct {
    bool tls;            /* https:// (cli_net.h) */
    char host[256];      /* without brackets */
    char port[8];        /* "80" when absent */
    char authority[300]; /* host[:port] as written */
    char base[512];      /* path prefix without a trailing '/', may be "" */
} cli__url_t;

/* Parses url into u. Returns 0, or HR_EINVAL (not http:// or https://, bad port, too long, has a
 * query). The port defaults to 80, or 443 for https://. */
int cli__parse_url(const char *url, cli__url_t *u);

/* Percent-encodes s into out (cap bytes, NUL-terminated), keeping unreserved characters
 * (A-Z a-z 0-9 - . _ ~) and any character in keep. Returns the length, or HR_EFULL when it
 * does not fit. */
int cli__pct_encode(const char *s, const char *keep, char *out, size_t cap);

#endif
