/* proxyproto.c - see proxyproto.h; the format is HAProxy's "proxy-protocol.txt". */
#include "proxyproto.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "ipset.h"

static const uint8_t V2_SIG[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

/* "PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n" or "PROXY UNKNOWN...\r\n". */
static int pp__v1(const uint8_t *p, size_t n, proxyproto_t *out)
{
    const uint8_t *end = memchr(p, '\n', n < 107 ? n : 107);
    if (!end) return n >= 107 ? -1 : 0;
    size_t len = (size_t)(end - p) + 1;
    if (len < 8 || end[-1] != '\r') return -1;
    char line[108];
    memcpy(line, p, len - 2);
    line[len - 2] = 0;
    if (strncmp(line, "PROXY UNKNOWN", 13) == 0 && (line[13] == 0 || line[13] == ' ')) {
        out->local = true;
        return (int)len;
    }
    char fam[8], src[48], dst[48];
    unsigned sport, dport;
    int used = 0;
    if (sscanf(line, "PROXY %7s %47s %47s %5u %5u%n", fam, src, dst, &sport, &dport, &used) != 5 || line[used] != 0 ||
        sport > 65535 || dport > 65535)
        return -1;
    bool v6 = strcmp(fam, "TCP6") == 0;
    if (!v6 && strcmp(fam, "TCP4") != 0) return -1;
    /* both addresses of the family named: IPv6 ones hold ':', IPv4 ones do not */
    if ((strchr(src, ':') != NULL) != v6 || (strchr(dst, ':') != NULL) != v6) return -1;
    uint8_t a[16], d[16];
    if (!ip_parse16(src, strlen(src), a) || !ip_parse16(dst, strlen(dst), d)) return -1;
    memcpy(out->src, a, 16);
    out->src_port = (uint16_t)sport;
    out->local = false;
    return (int)len;
}

static int pp__v2(const uint8_t *p, size_t n, proxyproto_t *out)
{
    if (n < 16) return 0;
    uint8_t ver = p[12] >> 4, cmd = p[12] & 15, fam = p[13];
    size_t len = (size_t)p[14] << 8 | p[15];
    if (ver != 2 || cmd > 1 || 16 + len > PROXYPROTO_MAX) return -1;
    if (n < 16 + len) return 0;
    const uint8_t *a = p + 16;
    out->local = cmd == 0;
    if (out->local) return (int)(16 + len);
    if (fam == 0x11) { /* TCP over IPv4: src, dst, sport, dport */
        if (len < 12) return -1;
        memset(out->src, 0, 10);
        out->src[10] = out->src[11] = 0xff;
        memcpy(out->src + 12, a, 4);
        out->src_port = (uint16_t)(a[8] << 8 | a[9]);
    } else if (fam == 0x21) { /* TCP over IPv6 */
        if (len < 36) return -1;
        memcpy(out->src, a, 16);
        out->src_port = (uint16_t)(a[32] << 8 | a[33]);
    } else if (fam == 0x00) { /* UNSPEC: no address */
        out->local = true;
    } else {
        return -1; /* UDP and unix sockets are not our listeners' */
    }
    return (int)(16 + len);
}

int proxyproto_parse(const uint8_t *p, size_t n, proxyproto_t *out)
{
    memset(out, 0, sizeof(*out));
    if (n == 0) return 0;
    if (p[0] == 'P') {
        size_t k = n < 6 ? n : 6;
        if (memcmp(p, "PROXY ", k) != 0) return -1;
        return n < 6 ? 0 : pp__v1(p, n, out);
    }
    if (p[0] == 0x0d) {
        size_t k = n < 12 ? n : 12;
        if (memcmp(p, V2_SIG, k) != 0) return -1;
        return pp__v2(p, n, out);
    }
    return -1;
}

void proxyproto_format(const proxyproto_t *h, char *out, size_t cap)
{
    static const uint8_t v4map[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    char host[48] = "?";
    if (memcmp(h->src, v4map, 12) == 0) inet_ntop(AF_INET, h->src + 12, host, sizeof(host));
    else inet_ntop(AF_INET6, h->src, host, sizeof(host));
    snprintf(out, cap, "%s", host);
}
