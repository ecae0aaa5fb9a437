/* mqtt_codec.h - the pure MQTT 3.1.1 / 5.0 packet codec: framing, decoding of every packet type
 * (client and server side) into a struct of slices, validation of every rule the specifications
 * put on a single packet, reason codes for each refusal, topic and filter syntax, and encoders
 * for every packet. No sockets, no sessions, no allocation except in the functions that return a
 * new bytes_t. Fuzzed by fuzz/fuzz_mqtt_codec.c; docs/internals/mqtt_codec.md is the one-page
 * summary.
 *
 * Reading. The session keeps nothing between calls: it calls mqtt_decode() on the bytes it has.
 * HR_EAGAIN means "read more" (mqtt_frame() tells how many bytes the packet needs as soon as its
 * fixed header is in, so a too-large packet is refused before its body is buffered); a positive
 * return is the packet's length, and the packet's slices point into the caller's buffer. Any
 * refusal returns HR_EPROTO and fills mqtt_err_t: the MQTT 5 reason code (MQTT_RC_*), a static
 * text, and the protocol level when it is known. The session answers a v5 peer with CONNACK
 * (while connecting) or DISCONNECT carrying err.reason; a v3.1.1 peer with CONNACK
 * mqtt_v3_connack_code(err.reason) when that is not 0xFF, and otherwise by closing.
 *
 * What is decided here (per packet, stateless): fixed-header flags, packet types by direction
 * and version, remaining-length encoding and the maximum packet size, every field's bounds,
 * UTF-8 well-formedness and U+0000 in strings, topic names and filter syntax, packet
 * identifiers != 0, QoS and reason-code ranges, property ids by packet with their types, values
 * and duplicates, the payload format indicator. What is left to the session (needs state): a
 * second CONNECT is refused here only when opts->version is already set; topic alias ranges,
 * receive maximum, packet-id reuse, the AUTH exchange, session-expiry rules on DISCONNECT. */
#ifndef HERALD_MQTT_CODEC_H
#define HERALD_MQTT_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../core/bytes.h"
#include "../core/span.h"

/* Protocol levels (the byte in CONNECT). */
enum { MQTT_V311 = 4, MQTT_V5 = 5 };

/* Packet types (fixed header, high nibble). */
enum {
    MQTT_CONNECT = 1,
    MQTT_CONNACK = 2,
    MQTT_PUBLISH = 3,
    MQTT_PUBACK = 4,
    MQTT_PUBREC = 5,
    MQTT_PUBREL = 6,
    MQTT_PUBCOMP = 7,
    MQTT_SUBSCRIBE = 8,
    MQTT_SUBACK = 9,
    MQTT_UNSUBSCRIBE = 10,
    MQTT_UNSUBACK = 11,
    MQTT_PINGREQ = 12,
    MQTT_PINGRESP = 13,
    MQTT_DISCONNECT = 14,
    MQTT_AUTH = 15, /* v5 only */
};

/* MQTT 5 reason codes (section 2.4) used by the codec and the session. */
enum {
    MQTT_RC_SUCCESS = 0x00, /* also Normal disconnection, Granted QoS 0 */
    MQTT_RC_GRANTED_QOS1 = 0x01,
    MQTT_RC_GRANTED_QOS2 = 0x02,
    MQTT_RC_DISCONNECT_WITH_WILL = 0x04,
    MQTT_RC_NO_MATCHING_SUBSCRIBERS = 0x10,
    MQTT_RC_NO_SUBSCRIPTION_EXISTED = 0x11,
    MQTT_RC_CONTINUE_AUTH = 0x18,
    MQTT_RC_REAUTHENTICATE = 0x19,
    MQTT_RC_UNSPECIFIED = 0x80,
    MQTT_RC_MALFORMED = 0x81,
    MQTT_RC_PROTOCOL_ERROR = 0x82,
    MQTT_RC_IMPL_SPECIFIC = 0x83,
    MQTT_RC_UNSUPPORTED_VERSION = 0x84,
    MQTT_RC_CLIENT_ID_INVALID = 0x85,
    MQTT_RC_BAD_USER_OR_PASSWORD = 0x86,
    MQTT_RC_NOT_AUTHORIZED = 0x87,
    MQTT_RC_SERVER_UNAVAILABLE = 0x88,
    MQTT_RC_SERVER_BUSY = 0x89,
    MQTT_RC_BANNED = 0x8A,
    MQTT_RC_SERVER_SHUTTING_DOWN = 0x8B,
    MQTT_RC_BAD_AUTH_METHOD = 0x8C,
    MQTT_RC_KEEP_ALIVE_TIMEOUT = 0x8D,
    MQTT_RC_SESSION_TAKEN_OVER = 0x8E,
    MQTT_RC_TOPIC_FILTER_INVALID = 0x8F,
    MQTT_RC_TOPIC_NAME_INVALID = 0x90,
    MQTT_RC_PACKET_ID_IN_USE = 0x91,
    MQTT_RC_PACKET_ID_NOT_FOUND = 0x92,
    MQTT_RC_RECEIVE_MAX_EXCEEDED = 0x93,
    MQTT_RC_TOPIC_ALIAS_INVALID = 0x94,
    MQTT_RC_PACKET_TOO_LARGE = 0x95,
    MQTT_RC_MESSAGE_RATE_TOO_HIGH = 0x96,
    MQTT_RC_QUOTA_EXCEEDED = 0x97,
    MQTT_RC_ADMIN_ACTION = 0x98,
    MQTT_RC_PAYLOAD_FORMAT_INVALID = 0x99,
    MQTT_RC_RETAIN_NOT_SUPPORTED = 0x9A,
    MQTT_RC_QOS_NOT_SUPPORTED = 0x9B,
    MQTT_RC_USE_ANOTHER_SERVER = 0x9C,
    MQTT_RC_SERVER_MOVED = 0x9D,
    MQTT_RC_SHARED_SUBS_NOT_SUPPORTED = 0x9E,
    MQTT_RC_CONNECTION_RATE_EXCEEDED = 0x9F,
    MQTT_RC_MAX_CONNECT_TIME = 0xA0,
    MQTT_RC_SUB_IDS_NOT_SUPPORTED = 0xA1,
    MQTT_RC_WILDCARDS_NOT_SUPPORTED = 0xA2,
};

/* MQTT 5 property identifiers (section 2.2.2.2). */
enum {
    MQTT_PROP_PAYLOAD_FORMAT = 0x01,        /* byte 0/1: PUBLISH, will */
    MQTT_PROP_MESSAGE_EXPIRY = 0x02,        /* four-byte: PUBLISH, will */
    MQTT_PROP_CONTENT_TYPE = 0x03,          /* string: PUBLISH, will */
    MQTT_PROP_RESPONSE_TOPIC = 0x08,        /* string, a topic name: PUBLISH, will */
    MQTT_PROP_CORRELATION_DATA = 0x09,      /* binary: PUBLISH, will */
    MQTT_PROP_SUBSCRIPTION_ID = 0x0B,       /* varint 1..268435455: PUBLISH (server to client, repeats), SUBSCRIBE (once) */
    MQTT_PROP_SESSION_EXPIRY = 0x11,        /* four-byte: CONNECT, CONNACK, DISCONNECT */
    MQTT_PROP_ASSIGNED_CLIENT_ID = 0x12,    /* string: CONNACK */
    MQTT_PROP_SERVER_KEEP_ALIVE = 0x13,     /* two-byte: CONNACK */
    MQTT_PROP_AUTH_METHOD = 0x15,           /* string: CONNECT, CONNACK, AUTH */
    MQTT_PROP_AUTH_DATA = 0x16,             /* binary: CONNECT, CONNACK, AUTH */
    MQTT_PROP_REQUEST_PROBLEM_INFO = 0x17,  /* byte 0/1: CONNECT */
    MQTT_PROP_WILL_DELAY = 0x18,            /* four-byte: will */
    MQTT_PROP_REQUEST_RESPONSE_INFO = 0x19, /* byte 0/1: CONNECT */
    MQTT_PROP_RESPONSE_INFO = 0x1A,         /* string: CONNACK */
    MQTT_PROP_SERVER_REFERENCE = 0x1C,      /* string: CONNACK, DISCONNECT */
    MQTT_PROP_REASON_STRING = 0x1F,         /* string: CONNACK, PUBACK..PUBCOMP, SUBACK, UNSUBACK, DISCONNECT, AUTH */
    MQTT_PROP_RECEIVE_MAX = 0x21,           /* two-byte != 0: CONNECT, CONNACK */
    MQTT_PROP_TOPIC_ALIAS_MAX = 0x22,       /* two-byte: CONNECT, CONNACK */
    MQTT_PROP_TOPIC_ALIAS = 0x23,           /* two-byte != 0: PUBLISH */
    MQTT_PROP_MAX_QOS = 0x24,               /* byte 0/1: CONNACK */
    MQTT_PROP_RETAIN_AVAILABLE = 0x25,      /* byte 0/1: CONNACK */
    MQTT_PROP_USER = 0x26,                  /* string pair, repeats: every packet with properties */
    MQTT_PROP_MAX_PACKET_SIZE = 0x27,       /* four-byte != 0: CONNECT, CONNACK */
    MQTT_PROP_WILDCARD_SUB_AVAILABLE = 0x28, /* byte 0/1: CONNACK */
    MQTT_PROP_SUB_ID_AVAILABLE = 0x29,      /* byte 0/1: CONNACK */
    MQTT_PROP_SHARED_SUB_AVAILABLE = 0x2A,  /* byte 0/1: CONNACK */
};

/* The bit of property id in mqtt_props_t.present. */
#define MQTT_PROP_BIT(id) (UINT64_C(1) << (id))

#define MQTT_MAX_REMAINING 268435455u /* largest remaining length / variable byte integer */
#define MQTT_MAX_HEADER 5             /* fixed header: type byte + up to 4 length bytes */

/* SUBSCRIBE options byte (section 3.8.3.1). */
#define MQTT_SUB_QOS(o) ((o) & 3)
#define MQTT_SUB_NO_LOCAL 0x04
#define MQTT_SUB_RETAIN_AS_PUBLISHED 0x08
#define MQTT_SUB_RETAIN_HANDLING(o) (((o) >> 4) & 3)

/* Why a packet was refused. reason is an MQTT 5 reason code (MQTT_RC_*); why a static text for
 * logs; version the protocol level the packet was read as (4 or 5), or 0 when unknown (a
 * CONNECT refused before or at its protocol level). */
typedef struct {
    uint8_t reason;
    uint8_t version;
    const char *why;
} mqtt_err_t;

/* Which side is decoding: a server reads client packets (CONNECT, PUBLISH, PUBACK..PUBCOMP,
 * SUBSCRIBE, UNSUBSCRIBE, PINGREQ, DISCONNECT, AUTH), a client reads server packets (CONNACK,
 * PUBLISH, PUBACK..PUBCOMP, SUBACK, UNSUBACK, PINGRESP, DISCONNECT, AUTH). A packet type the
 * peer may not send is a Protocol Error. */
enum { MQTT_ROLE_SERVER = 0, MQTT_ROLE_CLIENT = 1 };

typedef struct {
    uint8_t role;        /* MQTT_ROLE_SERVER or MQTT_ROLE_CLIENT */
    uint8_t version;     /* 0 before CONNECT (server role only: then only CONNECT is accepted); else 4 or 5 */
    uint32_t max_packet; /* largest whole packet accepted, in bytes (0: the protocol's limit) */
} mqtt_opts_t;

/* The fixed header of a packet. */
typedef struct {
    uint8_t type;
    uint8_t flags;       /* low nibble of byte 0 */
    uint8_t header_len;  /* 2..5 */
    uint32_t remaining;  /* remaining length */
    uint32_t total;      /* header_len + remaining: the bytes the whole packet takes */
} mqtt_frame_t;

/* MQTT 5 properties of one packet (or of a will). Decoding sets a bit in present for each
 * property found (MQTT_PROP_BIT(id)) and its value in the field below; spans point into the
 * packet. Repeating properties (User Property, and Subscription Identifier in PUBLISH) are read
 * with mqtt_prop_next() over raw; sub_id holds the first Subscription Identifier and
 * sub_id_count their number.
 *
 * Encoding writes, in id order, every single-valued property whose bit is set in present, then
 * copies every User Property and Subscription Identifier found in raw (a well-formed property
 * block, e.g. a decoded packet's raw, or one built with mqtt_prop_user_put(); other properties
 * in raw are ignored), then the Subscription Identifiers in enc_sub_ids. The present bits of
 * MQTT_PROP_USER and MQTT_PROP_SUBSCRIPTION_ID are ignored by the encoder. So decode -> encode
 * keeps every property (the order may change: known ones first). */
typedef struct {
    uint64_t present;
    uint8_t payload_format, request_problem_info, request_response_info, max_qos, retain_available,
        wildcard_sub_available, sub_id_available, shared_sub_available;
    uint16_t server_keep_alive, receive_max, topic_alias_max, topic_alias;
    uint32_t message_expiry, session_expiry, will_delay, max_packet_size;
    uint32_t sub_id, sub_id_count, user_count;
    span_t content_type, response_topic, correlation_data, assigned_client_id, auth_method, auth_data,
        response_info, server_reference, reason_string;
    span_t raw;                /* the whole property block (without its length prefix) */
    const uint32_t *enc_sub_ids; /* encoding only: extra Subscription Identifiers to write */
    uint32_t enc_sub_id_count;
} mqtt_props_t;

/* One property, as read by mqtt_prop_next(). value holds byte / two-byte / four-byte / varint
 * values; s the string or binary data; s2 the value of a User Property (s is its name). */
typedef struct {
    uint8_t id;
    uint32_t value;
    span_t s, s2;
} mqtt_prop_t;

/* A decoded packet. Fields not used by its type are zero. All spans point into the decoded
 * buffer. Which fields each type fills:
 *   CONNECT     connect.*, props (v5), connect.will_props (v5, when connect.will)
 *   CONNACK     connack.session_present, reason (the v3 return code for version 4), props
 *   PUBLISH     publish.*, packet_id (qos > 0), props
 *   PUBACK, PUBREC, PUBREL, PUBCOMP   packet_id, reason (0 when absent or v3), props
 *   SUBSCRIBE   packet_id, props, list (the raw entries; read with mqtt_list_next()), count
 *   UNSUBSCRIBE packet_id, props, list (the raw filters; mqtt_list_next()), count
 *   SUBACK, UNSUBACK  packet_id, props, list = the reason codes, one byte each, count (a v3
 *               UNSUBACK has none)
 *   PINGREQ, PINGRESP  nothing
 *   DISCONNECT  reason (0 when absent or v3), props
 *   AUTH        reason, props */
typedef struct {
    uint8_t type;
    uint8_t version; /* 4 or 5: the level the packet was read as (for CONNECT, its own level) */
    uint16_t packet_id;
    uint8_t reason;
    mqtt_props_t props;
    struct {
        bool dup, retain;
        uint8_t qos;
        span_t topic, payload;
    } publish;
    struct {
        span_t protocol_name; /* "MQTT" */
        bool clean_start, will, will_retain, has_username, has_password;
        uint8_t will_qos;
        uint16_t keep_alive;
        span_t client_id, will_topic, will_payload, username, password;
        mqtt_props_t will_props;
    } connect;
    struct {
        bool session_present;
    } connack;
    span_t list;
    uint32_t count;
} mqtt_pkt_t;

/* ---- decoding ---- */

/* Reads the fixed header at buf[0..len). Returns its length (2..5) with *f filled once the
 * remaining length is complete; HR_EAGAIN before that; HR_EPROTO with *err on a refusal. Decided
 * at byte 0: a reserved type (0; 15 in v3.1.1), a type the peer may not send (opts->role), a
 * packet other than CONNECT before the version is known or a second CONNECT after it, fixed-header
 * flags (0010 for PUBREL, SUBSCRIBE, UNSUBSCRIBE; 0000 for all but PUBLISH; PUBLISH QoS 3, or DUP
 * with QoS 0): Malformed Packet (0x81) or Protocol Error (0x82). Decided when the length is
 * complete: a fifth length byte or a non-minimal encoding (0x81), and a whole packet over
 * opts->max_packet (0x95 Packet too large). Any prefix of the input yields HR_EAGAIN or the
 * result of the whole. */
ssize_t mqtt_frame(const void *buf, size_t len, const mqtt_opts_t *opts, mqtt_frame_t *f, mqtt_err_t *err);

/* Decodes one packet at buf[0..len). Returns the packet's length (frame.total, > 0) with *p
 * filled (slices into buf; buf is not modified); HR_EAGAIN while the packet is incomplete (*p and
 * *err untouched; the fixed header's refusals come first, see mqtt_frame()); HR_EPROTO with
 * *err on any refusal, *p then undefined. Bytes after the packet are not read. */
ssize_t mqtt_decode(const void *buf, size_t len, const mqtt_opts_t *opts, mqtt_pkt_t *p, mqtt_err_t *err);

/* Reads the next property of a validated property block (props->raw) at *off, advancing *off.
 * Returns false at the end. Only for blocks that mqtt_decode() accepted or that the encoder
 * helpers wrote. */
bool mqtt_prop_next(span_t block, size_t *off, mqtt_prop_t *out);

/* Reads the next entry of a decoded SUBSCRIBE or UNSUBSCRIBE list at *off (starting at 0):
 * *filter, and for SUBSCRIBE the options byte in *opts (0 for UNSUBSCRIBE). Returns false at
 * the end. type is the packet's type. */
bool mqtt_list_next(const mqtt_pkt_t *p, size_t *off, span_t *filter, uint8_t *opts);

/* ---- validation ---- */

/* True when s[0..n) is well-formed UTF-8 without U+0000 (the rule for MQTT strings). Other
 * control characters and non-characters are accepted. */
bool mqtt_utf8_valid(const void *s, size_t n);

/* True when t is a valid topic name: 1..65535 bytes of valid MQTT UTF-8 (see above) without
 * '+' or '#'. */
bool mqtt_topic_valid(span_t t);

/* True when f is a valid topic filter: 1..65535 bytes of valid MQTT UTF-8 where a '#' is alone
 * in the last level and a '+' alone in its level; a shared subscription "$share/NAME/FILTER"
 * also needs NAME non-empty without '/', '+', '#' and FILTER valid. */
bool mqtt_filter_valid(span_t f);

/* Splits a valid shared-subscription filter "$share/NAME/FILTER" into *group and *filter.
 * Returns false (outputs untouched) when f is not a shared subscription. */
bool mqtt_filter_share(span_t f, span_t *group, span_t *filter);

/* The v3.1.1 CONNACK return code for a refusal of CONNECT with v5 reason code reason: 0x01
 * (unacceptable protocol level) for 0x84, 0x02 (identifier rejected) for 0x85, 0x03 for
 * 0x88/0x89, 0x04 for 0x86, 0x05 for 0x87/0x8C; 0xFF for everything else, where the v3.1.1
 * answer is to close the connection without a CONNACK. */
uint8_t mqtt_v3_connack_code(uint8_t reason);

/* ---- encoding ----
 *
 * Encoders write into a caller buffer and return the packet's length, like snprintf: when the
 * return is larger than cap, the packet did not fit, out holds an unspecified prefix and the
 * caller may retry with a buffer of the returned size (mqtt_encode(p, NULL, 0) just measures).
 * HR_EINVAL when the packet cannot be encoded: version not 4/5, a type that does not exist in
 * that version, QoS > 2, a string or binary over 65535 bytes, a remaining length over
 * MQTT_MAX_REMAINING. The encoder does not check UTF-8 or topic syntax: the values come from
 * the server itself or were decoded (validated) before.
 *
 * Sharing one PUBLISH among subscribers. The PUBLISH layout is
 *     [fixed header][topic][packet id if QoS>0][v5: property length, properties][payload]
 * and only the parts before the properties differ between subscribers of the same version
 * (QoS bits, DUP, RETAIN as published, packet id), plus, in v5, per-subscriber properties
 * (Subscription Identifiers, Topic Alias). So:
 *   - subscribers that get identical bytes (same version, QoS 0, same retain bit, no
 *     per-subscriber properties): encode the whole packet once with mqtt_encode_new() and queue
 *     a reference to the same bytes_t for each of them;
 *   - everyone else: encode the shared tail once with mqtt_publish_body_new() (the v5
 *     properties common to all, without their length prefix, then the payload) and, per
 *     subscriber, write a small head with mqtt_publish_head_write() (fixed header, topic, packet
 *     id, the v5 property length covering both parts, and the per-subscriber properties) into a
 *     small bytes_t; the session queues head then a reference to the body: two iovecs, and the
 *     payload is never copied per subscriber. Properties may appear in any order, so splitting
 *     them between head and body is valid.
 *   - a packet kept for retransmission is patched in place with mqtt_publish_set_id() (packet id,
 *     DUP) instead of being re-encoded. */

/* Encodes p (p->type, p->version and the fields that type uses, as mqtt_decode() fills them) into
 * out[0..cap). For PUBLISH the fixed-header flags come from publish.dup/qos/retain; v5 packets
 * with a reason code use the shortest form the spec allows (PUBACK..PUBCOMP and DISCONNECT omit
 * a Success reason and empty properties; AUTH with Success and no properties is empty). The list
 * of SUBSCRIBE / UNSUBSCRIBE / SUBACK / UNSUBACK is copied from p->list as is (see
 * mqtt_list_put()). */
ssize_t mqtt_encode(const mqtt_pkt_t *p, uint8_t *out, size_t cap);

/* Like mqtt_encode() into a new bytes_t of exactly the packet's length, with one reference. NULL
 * when p cannot be encoded or on OOM. */
bytes_t *mqtt_encode_new(const mqtt_pkt_t *p);

/* Appends a SUBSCRIBE entry (opts >= 0: filter and options byte) or an UNSUBSCRIBE entry
 * (opts < 0: filter only) at out[off..cap) and returns the new end offset (snprintf-like: the
 * entry fits when the return is <= cap). Build SUBACK / UNSUBACK lists as plain reason bytes. */
size_t mqtt_list_put(uint8_t *out, size_t cap, size_t off, span_t filter, int opts);

/* Appends a User Property (name, value) to a property block at out[off..cap) and returns the new
 * end offset (fits when <= cap). Use the block as mqtt_props_t.raw for encoding. */
size_t mqtt_prop_user_put(uint8_t *out, size_t cap, size_t off, span_t name, span_t value);

/* A new bytes_t holding the shared tail of a PUBLISH: for v5 the properties of props (encoded as
 * for mqtt_encode(), without the length prefix), then the payload; for v3.1.1 the payload alone.
 * *props_len receives the properties' length (0 for v3.1.1), needed by mqtt_publish_head_write().
 * NULL on OOM or when the properties are over the limit. */
bytes_t *mqtt_publish_body_new(uint8_t version, const mqtt_props_t *props, span_t payload, uint32_t *props_len);

/* Writes the per-subscriber head of a PUBLISH whose tail (props_len bytes of shared properties
 * then the payload, body_len bytes together) was made by mqtt_publish_body_new(): fixed header
 * (dup, qos, retain), topic, packet id when qos > 0, and for v5 the property length followed by
 * the per-subscriber properties: Message Expiry Interval when message_expiry != 0 (the time
 * left, which differs per delivery), Topic Alias when topic_alias != 0, and the n_sub_ids
 * Subscription Identifiers. Returns the head's length (snprintf-like) or HR_EINVAL. The head is
 * at most MQTT_PUBLISH_HEAD_MAX(topic.n, n_sub_ids) bytes. */
ssize_t mqtt_publish_head_write(uint8_t *out, size_t cap, uint8_t version, bool dup, uint8_t qos, bool retain,
                                span_t topic, uint16_t packet_id, uint16_t topic_alias, uint32_t message_expiry,
                                const uint32_t *sub_ids, size_t n_sub_ids, uint32_t props_len, size_t body_len);
#define MQTT_PUBLISH_HEAD_MAX(topic_len, n_sub_ids) (5 + 2 + (topic_len) + 2 + 4 + 3 + 5 + 5 * (n_sub_ids))

/* Patches the packet id and the DUP flag of an encoded QoS 1/2 PUBLISH pkt[0..n) in place (for
 * redelivery). Returns 0, or HR_EINVAL when pkt is not a complete PUBLISH with QoS > 0. */
int mqtt_publish_set_id(uint8_t *pkt, size_t n, uint16_t packet_id, bool dup);

#endif
