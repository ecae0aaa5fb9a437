/* msg.h - the immutable message.
 *
 * A message is frozen once published: id, channel, event, data and time never change. It is
 * refcounted (history holds one reference, a replay or a slow queue may hold others) and carries
 * a small cache of its encodings, one slot per wire format, so each transport encodes it once and
 * every subscriber of that transport queues a reference to the same bytes. The hub never looks
 * inside an encoding; the slot numbers are just names. */
#ifndef HERALD_MSG_H
#define HERALD_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/bytes.h"

/* Encoding cache slots (one per wire format). */
enum {
    ENC_SSE = 0,     /* SSE frame with id line (single-channel streams) */
    ENC_SSE_BODY,    /* SSE frame without the id line and final blank line (multi-channel) */
    ENC_JSON,        /* JSON message object (polls) */
    ENC_IFRAME,      /* "<script>h(...)</script>" as one HTTP chunk */
    ENC_LONGPOLL,    /* the whole long-poll answer body for a single-channel waiter */
    ENC_WS,          /* WebSocket frame of the data (text if UTF-8, else binary) */
    ENC_WS_Z15,      /* the same, permessage-deflate with a 32 KiB window */
    ENC_WS_Z9,       /* the same, with a 512-byte window (peers that limit server_max_window_bits) */
    ENC_WSJSON,      /* WebSocket text frame of the /ws protocol's message object */
    ENC_WSJSON_Z15,
    ENC_WSJSON_Z9,
    ENC_STOMP,       /* the shared tail of a STOMP MESSAGE frame (destination ... body NUL) */
    ENC_MQTT3_Q0,    /* a whole MQTT 3.1.1 PUBLISH, QoS 0, RETAIN 0 */
    ENC_MQTT5_Q0,    /* a whole MQTT 5.0 PUBLISH, QoS 0, RETAIN 0, no properties */
    ENC_MQTT_BODY,   /* the shared tail (payload) of PUBLISHes with per-subscriber heads */
    ENC_MQTT5_BODY,  /* the same for MQTT 5.0 when the message has properties: properties, then payload */
    ENC_SSE_EXACT,   /* SSE's exact form (?exact=1) of a UTF-8 message with CR: EVENT@base64 */
    ENC_SSE_EXACT_BODY, /* the same without the id line and final blank line (multi-channel) */
    ENC_SLOTS = 18
};

enum {
    MSG_UTF8 = 1,    /* data is valid UTF-8 */
    MSG_TEXT_SAFE = 2, /* valid UTF-8 without CR: SSE "data:" lines carry it byte for byte (an
                        * SSE parser reads CR and CRLF as line ends, so they arrive as LF) */
    MSG_QOS1 = 4,      /* MQTT: published with QoS 1 (neither QoS bit: QoS 0; both: QoS 2) */
    MSG_QOS2 = 8,
    MSG_RETAIN = 16,   /* MQTT: published with the RETAIN flag */
    MSG_FROM_HTTP = 32, /* published by a route without a QoS (HTTP, /ws, STOMP): MQTT delivers at the subscription's QoS */
    MSG_WITHDRAWN = 64  /* a tombstone: the message with this id was withdrawn (hub_withdraw); never delivered */
};

typedef struct msg {
    uint32_t refs;
    uint32_t flags;
    uint64_t id;
    uint64_t time_ms; /* wall clock at publish, ms since the epoch */
    const char *channel;
    const char *event;
    const char *data;
    uint32_t channel_len, event_len, data_len;
    uint32_t expiry_s;  /* MQTT message expiry interval in seconds from time_ms (0: none) */
    uint32_t props_len;
    char *props;        /* MQTT 5 properties passed through to v5 subscribers (an encoded block) or NULL */
    const void *origin; /* who published it on this node (hub_pubopt_t.origin; compared, never followed) */
    bytes_t *enc[ENC_SLOTS];
    char mem[]; /* channel, event and data live here */
} msg_t;

typedef bytes_t *(*msg_encoder)(const msg_t *m);

/* Builds a message holding copies of channel, event and data, with one reference. NULL on OOM. */
msg_t *msg_new(const char *channel, size_t channel_len, const char *event, size_t event_len,
               const void *data, size_t data_len, uint64_t id, uint64_t time_ms);

/* Attaches a copy of an encoded MQTT 5 property block to a message that is not yet published.
 * 0 or HR_ENOMEM. */
int msg_set_props(msg_t *m, const void *props, size_t n);

/* The serialized form of a message, for stores (LMDB values, Redis streams and pub/sub), without
 * the channel: id u64, time_ms u64, flags u32, expiry_s u32, event_len u16, props_len u32 (all
 * little-endian), then event, properties, data. */
#define MSG_PACK_HDR 30
static inline size_t msg_pack_size(const msg_t *m)
{
    return MSG_PACK_HDR + (size_t)m->event_len + m->props_len + m->data_len;
}

/* Writes msg_pack_size(m) bytes to out. */
void msg_pack(const msg_t *m, char *out);

/* Rebuilds a message of channel from a packed one; NULL when p[0..n) is not one, or on OOM. */
msg_t *msg_unpack(const void *p, size_t n, const char *channel, size_t channel_len);

/* True when the message has an expiry interval that has passed at now_ms (wall clock). */
static inline bool msg_expired(const msg_t *m, uint64_t now_ms)
{
    return m->expiry_s && now_ms - m->time_ms >= (uint64_t)m->expiry_s * 1000;
}

static inline msg_t *msg_ref(msg_t *m)
{
    m->refs++;
    return m;
}

/* Drops a reference; the last one frees the message and its cached encodings. */
void msg_unref(msg_t *m);

/* Returns the cached encoding in slot, making it with encode on first use. The message keeps its
 * reference; the caller takes its own (e.g. by queuing it). NULL if encode fails. */
bytes_t *msg_encoded(msg_t *m, int slot, msg_encoder encode);

typedef bytes_t *(*msg_encoder_ctx)(void *ctx, const msg_t *m);

/* Like msg_encoded, for encoders that need a context (a shared compressor). */
bytes_t *msg_encoded_ctx(msg_t *m, int slot, msg_encoder_ctx encode, void *ctx);

/* Bytes a message costs in history accounting (payload and names plus fixed overhead). */
static inline uint64_t msg_cost(const msg_t *m)
{
    return (uint64_t)m->data_len + m->channel_len + m->event_len + sizeof(msg_t);
}

/* True when s[0..n) is valid UTF-8 (no overlongs, surrogates or code points above U+10FFFF). */
bool utf8_valid(const char *s, size_t n);

#endif
