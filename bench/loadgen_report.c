/* loadgen_report.c - what `herald bench` measures and prints: the server's CPU time and RSS from
 * /proc, the final report of a run (text, or one JSON line), and the interval reports of a soak.
 *
 * Interval reports (--intervals) are asked for from outside with SIGUSR2, so a script can read the
 * server's /proc figures and /metrics, and every load generator's interval, at the same moment.
 * Each covers the time since the previous one: the deliveries and their latency percentiles in
 * the interval (the samples from where the previous report left off), how late the publishers
 * fell behind their schedule at worst (a late publish shows as latency of every delivery of
 * it: the publisher's lag, not the server's), and the totals so far. The
 * deliveries missing so far are counted exactly, from the subscribers' bitmaps, among the
 * messages scheduled at least --drain-ms ago (the later ones may still be on their way). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "../src/transport/mqtt_codec.h"
#include "loadgen_internal.h"

/* utime + stime of one process in clock ticks, or -1. */
static double cpu_ticks(long pid)
{
    char path[64], line[1024];
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(line, 1, sizeof(line) - 1, f);
    fclose(f);
    line[n] = 0;
    char *p = strrchr(line, ')');
    if (!p) return -1;
    /* after ")": field 3 (state) ... field 14 utime, 15 stime */
    unsigned long long ut = 0, st = 0;
    int field = 2;
    for (char *tok = strtok(p + 1, " "); tok; tok = strtok(NULL, " ")) {
        field++;
        if (field == 14) ut = strtoull(tok, NULL, 10);
        if (field == 15) {
            st = strtoull(tok, NULL, 10);
            break;
        }
    }
    return (double)(ut + st);
}

double lgr_cpu_s(const lg_ctx_t *x)
{
    if (x->server_pid <= 0) return -1;
    double sum = 0;
    for (uint32_t i = 0; i < x->npids; i++) {
        double t = cpu_ticks(x->server_pids[i]);
        if (t < 0) return -1;
        sum += t;
    }
    return sum / (double)x->clk_tck;
}

double lgr_cpu_fine_s(const lg_ctx_t *x)
{
    /* the first line of schedstat is the main thread's time on a CPU; every process measured here
     * (herald, nginx's master and worker) has one thread */
    double sum = 0;
    for (uint32_t i = 0; i < x->npids; i++) {
        char path[64];
        unsigned long long ns = 0;
        snprintf(path, sizeof(path), "/proc/%ld/schedstat", x->server_pids[i]);
        FILE *f = fopen(path, "r");
        bool ok = f && fscanf(f, "%llu", &ns) == 1;
        if (f) fclose(f);
        if (!ok) return lgr_cpu_s(x);
        sum += (double)ns / 1e9;
    }
    return x->npids ? sum : -1;
}

/* VmRSS of one process in kB, or -1. */
static long rss_kb(long pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long kb = -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtol(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kb;
}

long lgr_rss_kb(const lg_ctx_t *x)
{
    if (x->server_pid <= 0) return -1;
    long sum = 0;
    for (uint32_t i = 0; i < x->npids; i++) {
        long kb = rss_kb(x->server_pids[i]);
        if (kb < 0) return -1;
        sum += kb;
    }
    return sum;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* The p-quantile of the n sorted samples lat[], in ms; -1 when there are none. */
static double pct_ms(const uint32_t *lat, size_t n, double p)
{
    if (!n) return -1;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return lat[i] / 1000.0;
}

/* The subscriber transports of the run: "sse", or the --mode list joined with '+'. */
static const char *modes_name(const lg_ctx_t *x, char *buf, size_t cap)
{
    size_t k = 0;
    buf[0] = 0;
    for (uint32_t i = 0; i < x->nmodes && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%s", i ? "+" : "", lg__mode_name(x, x->modes[i]));
    return buf;
}

static bool has_mode(const lg_ctx_t *x, int m)
{
    for (uint32_t i = 0; i < x->nmodes; i++)
        if (x->modes[i] == m) return true;
    return false;
}

/* Received messages below upto in subscriber c's bitmap. */
static uint64_t seen_below(const lg_conn_t *c, uint32_t upto)
{
    uint64_t n = 0;
    size_t words = upto / 64;
    for (size_t i = 0; i < words; i++) n += (uint64_t)__builtin_popcountll(c->seen[i]);
    if (upto % 64) n += (uint64_t)__builtin_popcountll(c->seen[words] & ((1ull << (upto % 64)) - 1));
    return n;
}

/* Deliveries missing among messages 0..upto-1, over the ready subscribers, in all and by transport. */
static uint64_t missing_below(const lg_ctx_t *x, uint32_t upto, uint64_t by_mode[LG_NMODES])
{
    uint64_t all = 0;
    memset(by_mode, 0, LG_NMODES * sizeof(by_mode[0]));
    for (uint32_t i = 0; i < x->nsubs; i++) {
        const lg_conn_t *c = &x->conns[i];
        if (!c->ready || !c->seen) continue;
        /* with --channels K, bit b of c's bitmap is the b-th message of its channel */
        uint64_t want = lg__expected(x, c, upto), got = seen_below(c, x->channels > 1 ? (uint32_t)want : upto);
        uint64_t m = want > got ? want - got : 0;
        all += m;
        by_mode[c->mode] += m;
    }
    return all;
}

/* ,"by_mode":{"sse":{...},...} for the transports of the run; delivered[] and missing[] by mode. */
static void print_by_mode(const lg_ctx_t *x, const uint64_t delivered[LG_NMODES], const uint64_t missing[LG_NMODES])
{
    printf(",\"by_mode\":{");
    for (uint32_t i = 0; i < x->nmodes; i++) {
        int m = x->modes[i];
        printf("%s\"%s\":{\"subs\":%" PRIu64 ",\"deliveries\":%" PRIu64 ",\"missing\":%" PRIu64 "}", i ? "," : "",
               lg__mode_name(x, m), x->mode_subs[m], delivered[m], missing[m]);
    }
    printf("}");
}

void lgr_interval(lg_ctx_t *x, uint64_t now)
{
    /* messages scheduled at least --drain-ms ago, and sent, must have arrived by now */
    uint32_t upto = 0;
    uint64_t grace = (uint64_t)x->drain_ms * 1000u;
    if (x->t_start && x->rate > 0 && now > x->t_start + grace) {
        double s = (double)(now - grace - x->t_start) * x->rate / 1e6 + 1;
        upto = s < (double)x->next_seq ? (uint32_t)s : x->next_seq;
    }
    uint64_t miss_mode[LG_NMODES], dmode[LG_NMODES];
    uint64_t missing = missing_below(x, upto, miss_mode);
    for (int m = 0; m < LG_NMODES; m++) {
        dmode[m] = x->mode_delivered[m] - x->int_mode_delivered[m];
        x->int_mode_delivered[m] = x->mode_delivered[m];
    }
    size_t n = x->nlat - x->int_lat;
    uint32_t *s = n ? malloc(n * sizeof(*s)) : NULL;
    if (s) {
        memcpy(s, x->lat + x->int_lat, n * sizeof(*s));
        qsort(s, n, sizeof(*s), cmp_u32);
    } else
        n = 0;
    double secs = x->int_t ? (double)(now - x->int_t) / 1e6 : 0;
    static const char *const phases[] = {"connect", "warmup", "run", "drain", "hold", "done"};
    printf("{\"interval\":%u,\"phase\":\"%s\",\"t_s\":%.3f,\"interval_s\":%.3f,\"subs_ready\":%u,\"subs_failed\":%u,"
           "\"published\":%u,\"pub_err\":%u,\"deliveries\":%" PRIu64 ",\"deliveries_total\":%" PRIu64
           ",\"pub_lag_max_ms\":%.3f,\"lat_p50_ms\":%.3f,\"lat_p99_ms\":%.3f,\"lat_max_ms\":%.3f,\"checked_upto\":%u"
           ",\"missing\":%" PRIu64
           ",\"duplicates\":%" PRIu64 ",\"gap_events\":%" PRIu64 ",\"bad_events\":%" PRIu64
           ",\"sub_disconnects\":%" PRIu64,
           ++x->nint, phases[x->phase], x->t_start ? (double)(now - x->t_start) / 1e6 : 0, secs, x->ready_subs,
           x->failed_subs, x->pub_ok, x->pub_err, x->delivered - x->int_delivered, x->delivered,
           x->int_pub_lag / 1000.0, pct_ms(s, n, 0.50), pct_ms(s, n, 0.99), n ? s[n - 1] / 1000.0 : -1, upto, missing,
           x->duplicates,
           x->gap_events, x->bad_events, x->sub_disconnects);
    print_by_mode(x, dmode, miss_mode);
    printf(",\"error\":\"%s\"}\n", x->first_error);
    fflush(stdout);
    free(s);
    x->int_t = now;
    x->int_delivered = x->delivered;
    x->int_lat = x->nlat;
    x->int_pub_lag = 0;
}

/* The connect phase as JSON members (with a trailing comma): first connect -> last ready. */
static void connect_json(const lg_ctx_t *x, char *buf, size_t cap, double *conn_ms, double *conn_per_s,
                         double *conn_cpu, double *conn_cpu_per)
{
    *conn_ms = x->t_ready ? (double)(x->t_ready - x->t0) / 1e3 : -1;
    *conn_per_s = *conn_ms > 0 ? x->ready_subs * 1e3 / *conn_ms : -1;
    *conn_cpu = x->cpu_connect0 >= 0 && x->cpu_connected >= 0 ? x->cpu_connected - x->cpu_connect0 : -1;
    *conn_cpu_per = *conn_cpu >= 0 && x->ready_subs ? *conn_cpu * 1e6 / x->ready_subs : -1;
    int n = snprintf(buf, cap,
                     "\"connect_ms\":%.1f,\"connects_per_s\":%.0f,\"connect_cpu_s\":%.4f,\"connect_cpu_us_per_conn\":%.2f,",
                     *conn_ms, *conn_per_s, *conn_cpu, *conn_cpu_per);
    if (x->tls && n > 0 && (size_t)n < cap)
        snprintf(buf + n, cap - (size_t)n,
                 "\"tls\":true,\"tls_version\":\"%s\",\"tls_cipher\":\"%s\",\"tls_handshakes\":%" PRIu64
                 ",\"tls_resumed\":%" PRIu64 ",\"tls_failures\":%" PRIu64 ",\"tls_verify\":%s,",
                 x->tls_version, x->tls_cipher, x->tls_handshakes, x->tls_resumed, x->tls_failures,
                 x->tls_cacert ? "true" : "false");
}

static int report_idle(const lg_ctx_t *x, const char *style, const char *mode, const char *conn_json, double conn_ms,
                       double conn_per_s, double conn_cpu, double conn_cpu_per)
{
    double per = (x->rss_before_kb >= 0 && x->rss_ready_kb >= 0 && x->ready_subs)
                     ? (double)(x->rss_ready_kb - x->rss_before_kb) * 1024.0 / x->ready_subs
                     : -1;
    if (x->json)
        printf("{\"scenario\":\"idle\",\"style\":\"%s\",\"mode\":\"%s\",\"idle_conns\":%u,\"connected\":%u,"
               "\"failed\":%u,\"distinct_channels\":%s,\"rss_before_kb\":%ld,\"rss_after_kb\":%ld,"
               "\"rss_per_conn_bytes\":%.0f,\"rss_held_kb\":%ld,\"ws_deflate_subs\":%u,\"qos\":%u,"
               "\"mqtt_version\":%u,%s\"timed_out\":%s,\"error\":\"%s\"}\n",
               style, mode, x->idle_conns, x->ready_subs, x->failed_subs, x->idle_distinct ? "true" : "false",
               x->rss_before_kb, x->rss_ready_kb, per, x->idle_hold_ms ? x->rss_held_kb : -1, x->ws_deflate_subs,
               x->qos, x->mqtt_version, conn_json, x->timed_out ? "true" : "false", x->first_error);
    else {
        printf("idle connections:   %u requested (%s), %u connected, %u failed (%s)\n", x->idle_conns, mode,
               x->ready_subs, x->failed_subs, x->idle_distinct ? "distinct channels" : "one channel");
        printf("server RSS:         %ld kB before, %ld kB with the connections\n", x->rss_before_kb, x->rss_ready_kb);
        printf("RSS per connection: %.0f bytes\n", per);
        printf("connect:            %.1f ms, %.0f connections/s", conn_ms, conn_per_s);
        if (x->server_pid > 0) printf("; server CPU %.3f s, %.1f us per connection", conn_cpu, conn_cpu_per);
        printf("\n");
        if (x->idle_hold_ms) printf("server RSS held:    %ld kB after holding %u ms\n", x->rss_held_kb, x->idle_hold_ms);
    }
    return (x->ready_subs == x->idle_conns && !x->timed_out) ? 0 : 2;
}

int lgr_final(lg_ctx_t *x)
{
    uint64_t end = lg__now_us();
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double lg_cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
                    ru.ru_stime.tv_usec / 1e6;
    const char *style = x->style == STYLE_NCHAN ? "nchan" : "herald";
    char mbuf[64], conn_json[512];
    const char *mode = modes_name(x, mbuf, sizeof(mbuf));
    double conn_ms, conn_per_s, conn_cpu, conn_cpu_per;
    connect_json(x, conn_json, sizeof(conn_json), &conn_ms, &conn_per_s, &conn_cpu, &conn_cpu_per);
    if (x->idle_conns) return report_idle(x, style, mode, conn_json, conn_ms, conn_per_s, conn_cpu, conn_cpu_per);
    uint64_t expected = x->want;
    uint64_t missing = expected > x->delivered ? expected - x->delivered : 0;
    uint64_t miss_mode[LG_NMODES];
    missing_below(x, x->messages, miss_mode);
    uint64_t last = x->t_last_delivery > x->t_start ? x->t_last_delivery : end;
    double elapsed = x->t_start ? (double)(last - x->t_start) / 1e6 : 0;
    double dps = elapsed > 0 ? (double)x->delivered / elapsed : 0;
    double pub_el = x->t_last_pub_ans > x->t_start ? (double)(x->t_last_pub_ans - x->t_start) / 1e6 : 0;
    double pps = pub_el > 0 ? x->pub_ok / pub_el : 0;
    if (x->nlat) qsort(x->lat, x->nlat, sizeof(*x->lat), cmp_u32);
    double p50 = pct_ms(x->lat, x->nlat, 0.50), p90 = pct_ms(x->lat, x->nlat, 0.90),
           p99 = pct_ms(x->lat, x->nlat, 0.99), mx = x->nlat ? x->lat[x->nlat - 1] / 1000.0 : -1;
    double cpu = (x->cpu_before >= 0 && x->cpu_after >= 0) ? x->cpu_after - x->cpu_before : -1;
    double cpu_per = (cpu >= 0 && x->delivered) ? cpu * 1e6 / (double)x->delivered : -1;
    double cpu_per_pub = (cpu >= 0 && x->pub_ok) ? cpu * 1e6 / (double)x->pub_ok : -1;
    if (x->nalat) qsort(x->alat, x->nalat, sizeof(*x->alat), cmp_u32);
    double a50 = pct_ms(x->alat, x->nalat, 0.50), a99 = pct_ms(x->alat, x->nalat, 0.99);
    const char *op = x->pub_op == OP_READ ? "read" : "publish";
    double rss_per = (x->rss_before_kb >= 0 && x->rss_ready_kb >= 0 && x->ready_subs)
                         ? (double)(x->rss_ready_kb - x->rss_before_kb) * 1024.0 / x->ready_subs
                         : -1;
    if (x->json) {
        printf("{\"scenario\":\"fanout\",\"style\":\"%s\",\"mode\":\"%s\",\"subs\":%u,\"subs_connected\":%u,"
               "\"subs_failed\":%u,\"messages\":%u,\"channels\":%u,\"rate\":%g,\"window\":%u,\"size\":%u,"
               "\"pub_conns\":%u,\"expected\":%" PRIu64 ",\"deliveries\":%" PRIu64 ",\"missing\":%" PRIu64
               ",\"duplicates\":%" PRIu64 ",\"bad_events\":%" PRIu64 ",\"gap_events\":%" PRIu64
               ",\"sub_disconnects\":%" PRIu64 ",\"elapsed_s\":%.3f,\"deliveries_per_s\":%.0f,"
               "\"lat_p50_ms\":%.3f,\"lat_p90_ms\":%.3f,\"lat_p99_ms\":%.3f,\"lat_max_ms\":%.3f,"
               "\"samples\":%zu,\"samples_capped\":%s,\"pub_ok\":%u,\"pub_err\":%u,\"pub_per_s\":%.1f,"
               "\"server_cpu_s\":%.3f,\"cpu_us_per_delivery\":%.3f,\"rss_before_kb\":%ld,"
               "\"rss_connected_kb\":%ld,\"rss_end_kb\":%ld,\"rss_per_conn_bytes\":%.0f,"
               "\"loadgen_cpu_s\":%.3f,\"lp_requests\":%" PRIu64 ",\"payload\":\"%s\",\"ws_deflate_subs\":%u,"
               "\"ws_context_subs\":%u,\"ws_messages\":%" PRIu64 ",\"ws_compressed\":%" PRIu64
               ",\"ws_wire_bytes\":%" PRIu64 ",\"ws_frames\":%" PRIu64 ",\"ws_pings\":%" PRIu64
               ",\"ws_closes\":%" PRIu64 ",\"qos\":%u,\"mqtt_version\":%u,\"pub_via\":\"%s\","
               "\"mqtt_granted_qos\":%d,\"mqtt_publish_rx\":%" PRIu64 ",\"mqtt_publish_rx_qos\":[%" PRIu64 ",%" PRIu64
               ",%" PRIu64 "],\"mqtt_dup_rx\":%" PRIu64 ",\"mqtt_acks_sent\":%" PRIu64 ",\"mqtt_pubrel_rx\":%" PRIu64
               ",%s\"timed_out\":%s,\"error\":\"%s\"",
               style, mode, x->nsubs, x->ready_subs, x->failed_subs, x->messages, x->channels ? x->channels : 1,
               x->rate, x->window, x->size, x->pub_conns, expected, x->delivered, missing, x->duplicates,
               x->bad_events, x->gap_events, x->sub_disconnects, elapsed, dps, p50, p90, p99, mx, x->nlat,
               x->samples_capped ? "true" : "false", x->pub_ok, x->pub_err, pps, cpu, cpu_per, x->rss_before_kb,
               x->rss_ready_kb, x->rss_end_kb, rss_per, lg_cpu, x->lp_requests, x->payload == PAYLOAD_JSON ? "json" : "x",
               x->ws_deflate_subs, x->ws_ctx_subs, x->ws_msgs, x->ws_compressed, x->ws_wire_bytes, x->ws_frames,
               x->ws_pings, x->ws_closes, x->qos, x->mqtt_version, x->pub_mqtt ? "mqtt" : "http",
               x->mq_granted_min > 2 ? -1 : (int)x->mq_granted_min, x->mq_publish_rx, x->mq_qos_rx[0],
               x->mq_qos_rx[1], x->mq_qos_rx[2], x->mq_dup_rx, x->mq_acks_sent, x->mq_pubrel_rx, conn_json,
               x->timed_out ? "true" : "false", x->first_error);
        printf(",\"pub_op\":\"%s\",\"read_events\":%s,\"sub_path\":\"%s\",\"unread_events\":%" PRIu64
               ",\"unread_unmatched\":%" PRIu64 ",\"ack_p50_ms\":%.3f,\"ack_p99_ms\":%.3f,\"cpu_us_per_publish\":%.3f"
               ",\"server_pids\":%u",
               op, x->read_events ? "true" : "false", x->sub_path ? x->sub_path : "", x->unread_events, x->unread_early,
               a50, a99, cpu_per_pub, x->npids);
        if (x->nmodes > 1) print_by_mode(x, x->mode_delivered, miss_mode);
        printf("}\n");
    } else {
        printf("server style:       %s, mode %s\n", style, mode);
        printf("subscribers:        %u connected of %u (%u failed, %" PRIu64 " disconnected)\n", x->ready_subs,
               x->nsubs, x->failed_subs, x->sub_disconnects);
        printf("connect:            %.1f ms, %.0f connections/s", conn_ms, conn_per_s);
        if (x->server_pid > 0) printf("; server CPU %.3f s, %.1f us per connection", conn_cpu, conn_cpu_per);
        printf("\n");
        printf("messages:           %u of %u bytes (%s), ", x->messages, x->size,
               x->payload == PAYLOAD_JSON ? "JSON-like" : "x padding");
        if (x->channels > 1) printf("spread over %u channels, ", x->channels);
        if (x->rate > 0) printf("rate %g/s, %u publisher conn(s)\n", x->rate, x->pub_conns);
        else printf("flat out, window %u, %u publisher conn(s)\n", x->window, x->pub_conns);
        printf("%s:%*s%u ok, %u failed, %.1f answers/s; answer latency ms p50 %.3f p99 %.3f\n",
               x->pub_op == OP_READ ? "reads" : "publishes", x->pub_op == OP_READ ? 15 : 11, "", x->pub_ok, x->pub_err,
               pps, a50, a99);
        if (x->unread_events || x->pub_op == OP_READ)
            printf("unread events:      %" PRIu64 " received (%" PRIu64 " not matched to a read of this run)\n",
                   x->unread_events, x->unread_early);
        printf("deliveries:         %" PRIu64 " of %" PRIu64 " (missing %" PRIu64 ", duplicates %" PRIu64
               ", unparsed %" PRIu64 ", gaps %" PRIu64 ")\n",
               x->delivered, expected, missing, x->duplicates, x->bad_events, x->gap_events);
        for (uint32_t i = 0; x->nmodes > 1 && i < x->nmodes; i++) {
            int m = x->modes[i];
            printf("  %-17s %" PRIu64 " subscribers, %" PRIu64 " deliveries, %" PRIu64 " missing\n",
                   lg__mode_name(x, m), x->mode_subs[m], x->mode_delivered[m], miss_mode[m]);
        }
        if (has_mode(x, MODE_WS)) {
            printf("websocket:          %" PRIu64 " messages in %" PRIu64 " frames, %" PRIu64
                   " payload bytes on the wire (%.1f per message)\n",
                   x->ws_msgs, x->ws_frames, x->ws_wire_bytes, x->ws_msgs ? (double)x->ws_wire_bytes / x->ws_msgs : 0);
            if (x->deflate)
                printf("permessage-deflate: agreed by %u subscribers (%u keep a context), %" PRIu64
                       " messages compressed\n",
                       x->ws_deflate_subs, x->ws_ctx_subs, x->ws_compressed);
            if (x->ws_pings || x->ws_closes)
                printf("control frames:     %" PRIu64 " pings answered, %" PRIu64 " closes\n", x->ws_pings,
                       x->ws_closes);
        }
        if (has_mode(x, MODE_MQTT) || x->pub_mqtt)
            printf("mqtt:               v%u, QoS %u, publishing over %s; %" PRIu64 " PUBLISH received (QoS 0/1/2: %" PRIu64
                   "/%" PRIu64 "/%" PRIu64 ", %" PRIu64 " DUP), %" PRIu64 " acks sent\n",
                   x->mqtt_version == MQTT_V5 ? 5 : 3, x->qos, x->pub_mqtt ? "MQTT" : "HTTP", x->mq_publish_rx,
                   x->mq_qos_rx[0], x->mq_qos_rx[1], x->mq_qos_rx[2], x->mq_dup_rx, x->mq_acks_sent);
        printf("elapsed:            %.3f s (first publish -> last delivery)%s\n", elapsed,
               x->timed_out ? "  TIMED OUT" : "");
        printf("deliveries/s:       %.0f\n", dps);
        printf("latency ms:         p50 %.3f  p90 %.3f  p99 %.3f  max %.3f  (%zu samples%s)\n", p50, p90, p99, mx,
               x->nlat, x->samples_capped ? ", capped" : "");
        if (x->server_pid > 0) {
            printf("server CPU:         %.3f s, %.3f us per delivery, %.3f us per %s (%u process%s)\n", cpu, cpu_per,
                   cpu_per_pub, x->pub_op == OP_READ ? "read" : "publish", x->npids, x->npids > 1 ? "es" : "");
            printf("server RSS:         %ld kB before, %ld kB connected, %ld kB at end; %.0f bytes per subscriber\n",
                   x->rss_before_kb, x->rss_ready_kb, x->rss_end_kb, rss_per);
        }
        printf("loadgen CPU:        %.3f s\n", lg_cpu);
        if (x->first_error[0]) printf("first error:        %s\n", x->first_error);
    }
    return (missing == 0 && !x->timed_out && x->failed_subs == 0 && x->pub_err == 0) ? 0 : 2;
}
