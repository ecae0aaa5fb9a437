/* ipset.c - see ipset.h. */
#include "ipset.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "span.h"

static void ip__v4(uint8_t a[16], const void *v4)
{
    memset(a, 0, 10);
    a[10] = a[11] = 0xff;
    memcpy(a + 12, v4, 4);
}

bool ip_parse16(const char *text, size_t n, uint8_t a[16])
{
    char one[64];
    if (n == 0 || n >= sizeof(one)) return false;
    memcpy(one, text, n);
    one[n] = 0;
    struct in_addr a4;
    if (inet_pton(AF_INET, one, &a4) == 1) {
        ip__v4(a, &a4);
        return true;
    }
    return inet_pton(AF_INET6, one, a) == 1;
}

bool ip_peer16(int fd, uint8_t a[16])
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0) return false;
    if (ss.ss_family == AF_INET6) {
        memcpy(a, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
        return true;
    }
    if (ss.ss_family != AF_INET) return false;
    ip__v4(a, &((struct sockaddr_in *)&ss)->sin_addr);
    return true;
}

int ipset_parse(ipset_t *s, const char *list, char *err, size_t cap)
{
    ipset_free(s);
    const char *l = list ? list : "";
    for (span_t item; span_list_next(&l, &item);) {
        uint8_t a[16], (*nx)[16] = NULL;
        if (!ip_parse16(item.p, item.n, a) || !(nx = realloc(s->a, (s->n + 1) * sizeof(*nx)))) {
            snprintf(err, cap, "'%.*s' is not an IP address", (int)item.n, item.p);
            ipset_free(s);
            return -1;
        }
        s->a = nx;
        memcpy(nx[s->n++], a, 16);
    }
    return 0;
}

void ipset_free(ipset_t *s)
{
    free(s->a);
    s->a = NULL;
    s->n = 0;
}

bool ipset_has(const ipset_t *s, const uint8_t a[16])
{
    for (uint32_t i = 0; i < s->n; i++)
        if (memcmp(s->a[i], a, 16) == 0) return true;
    return false;
}
