/* loadgen.h - the load generator behind `herald bench`.
 *
 * One process, one epoll loop, non-blocking loopback sockets. It opens N subscribers
 * (SSE, long poll, WebSocket with or without permessage-deflate, or MQTT at QoS 0/1/2, or a mix)
 * on a channel (or spread over K channels), publishes M timestamped messages over keep-alive
 * publisher connections (HTTP POST, or MQTT PUBLISH with --pub-via mqtt, so MQTT-only brokers
 * such as Mosquitto can be measured too), and reports deliveries/s, end-to-end latency
 * percentiles, missing/duplicate deliveries and, given the server's pid, its CPU time and RSS
 * (at the end, and on SIGUSR2 with --intervals).
 * It speaks both herald's API (docs/api.md) and nginx+nchan's, so the two servers can be
 * compared with the same client. See bench/README.md for the options and figures. */
#ifndef HERALD_LOADGEN_H
#define HERALD_LOADGEN_H

/* Runs the benchmark with the arguments that follow the word "bench": argv[0] is the
 * first option (main passes argv + 2). Prints a report on stdout (one JSON line with
 * --json) and errors on stderr. Returns 0 when every expected delivery arrived, 2 when
 * the run ended with deliveries missing or on its timeout, 1 on a usage or setup error.
 * Keeps no global state. */
int bench_main(int argc, char **argv);

#endif
