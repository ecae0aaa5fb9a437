/* loadgen.h - the load generator behind `herald bench`. */
#ifndef HERALD_LOADGEN_H
#define HERALD_LOADGEN_H

/* Runs the benchmark with argv (argv[0] is the first option after "bench"); returns the exit code. */
int bench_main(int argc, char **argv);

#endif
