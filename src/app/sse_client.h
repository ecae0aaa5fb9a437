/* sse_client.h - a pure, incremental Server-Sent Events stream parser for the `herald sub`
 * client, following the WHATWG "event stream interpretation" rules: fields id, event, data
 * and retry; comment lines starting with ':'; CR, LF or CRLF line ends; one leading BOM; data
 * lines joined with '\n'; an event is dispatched on a blank line, and an unterminated event at
 * the end of a stream is dropped.
 *
 * The parser never allocates: the caller lends it one buffer that holds the current event's
 * data followed by the line being read. It never sees a socket; feed it bytes, get events
 * through a callback. Also here: a base64 decoder for "<name>@base64" events. */
#ifndef HERALD_SSE_CLIENT_H
#define HERALD_SSE_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SSE_CLIENT_ID_MAX 512    /* longest id kept (a multi-channel cursor fits) */
#define SSE_CLIENT_EVENT_MAX 128 /* longest event name kept; longer names are cut */

/* One dispatched event. The pointers are valid only during the callback. data is the data
 * lines joined with '\n' (no trailing '\n'), followed by a NUL that is not counted in data_len;
 * it never holds CR and may hold NUL bytes of its own. */
typedef struct {
    const char *event; /* NUL-terminated; "message" when the stream named none */
    const char *id;    /* NUL-terminated last event id ("" when none was ever set) */
    const char *data;
    size_t data_len;
} sse_client_event_t;

/* Called for each event; return 0 to go on or non-zero to stop the current feed. */
typedef int (*sse_client_cb)(void *ud, const sse_client_event_t *ev);

typedef struct {
    char *buf; /* caller's buffer: data [0, data_len), then the current line */
    size_t cap;
    size_t data_len;
    size_t line_len;
    bool after_cr;  /* the last byte was CR, so a following LF is part of the same line end */
    bool bom_done;  /* the start of the stream has been checked for a BOM */
    bool stopped;   /* the callback asked to stop */
    char event[SSE_CLIENT_EVENT_MAX];
    char id_buf[SSE_CLIENT_ID_MAX];   /* the "last event ID buffer" */
    char last_id[SSE_CLIENT_ID_MAX];  /* the "last event ID string", set at each dispatch */
    int64_t retry_ms;                 /* -1 until the stream sends a valid retry field */
    sse_client_cb cb;
    void *ud;
} sse_client_t;

/* Prepares p to parse a new stream. buf (cap bytes, at least 64) must outlive p; it bounds the
 * size of one event's data plus one line. retry_ms starts at -1 and last_id at "". */
void sse_client_init(sse_client_t *p, char *buf, size_t cap, sse_client_cb cb, void *ud);

/* Starts a new stream (after a reconnect) keeping retry_ms and last_id. Unlike a literal reading
 * of the spec, the id buffer also starts as last_id, so the blank line after the server's first
 * "retry:" does not forget the id we resume from. */
void sse_client_restart(sse_client_t *p);

/* Feeds n bytes. Returns the number consumed: n, or fewer when the callback returned non-zero
 * (p->stopped is then set and the rest is not parsed). Returns HR_EFULL when one event or line
 * does not fit in the buffer; the parser must then be restarted. */
ssize_t sse_client_feed(sse_client_t *p, const char *d, size_t n);

/* Decodes standard base64 (with or without '=' padding; spaces and line ends are skipped) into
 * out, which needs (n / 4 + 1) * 3 bytes. Returns the decoded length or HR_EINVAL. */
ssize_t sse_client_b64_decode(const char *in, size_t n, uint8_t *out);

#endif
