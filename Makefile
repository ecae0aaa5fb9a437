# herald - one hand-written Makefile.
#   make            build build/herald (optimized, -Wall -Wextra -Werror)
#   make run        build and start `herald serve` with the embedded defaults
#   make test       install missing packages, build normal + ASan/UBSan, run every test
#   make fuzz       build the libFuzzer targets (clang); make fuzz-smoke runs each briefly
#   make bench      build and run the benchmark against nchan (bench/compare_nchan.sh)
#   make bench-mqtt the MQTT benchmark against mosquitto (bench/compare_mosquitto.sh)
#   make bench-soak 10 minutes of mixed traffic on every transport: memory, latency, loss (bench/soak.sh)
#   make bench-users 10,000 users on their own channels and read state, against nchan (bench/users.sh)

CC      ?= cc
CSTD     = -std=c11 -D_GNU_SOURCE
WARN     = -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter
CFLAGS  ?= -O2 -g
LDLIBS   = -linih -lcrypto -lz -ljansson -llmdb -lhiredis -lm
DEPFLAGS = -MMD -MP

LIB_SRC  = $(filter-out src/app/main.c,$(wildcard src/*/*.c)) build/gen/web_assets.c
WEB_FILES = $(sort $(wildcard web/*.html web/*.js web/*.mjs web/*.css))
BENCH_SRC = $(wildcard bench/*.c)
MAIN_SRC = src/app/main.c
UNIT_SRC = $(wildcard tests/unit/test_*.c)
FUZZ_SRC = $(wildcard fuzz/fuzz_*.c)

# $(1) = build dir, $(2) = extra flags
OBJS = $(patsubst %.c,$(1)/%.o,$(LIB_SRC))

B        = build
BA       = build/asan
BF       = build/fuzz
SANFLAGS = -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -O1 -g

all: $(B)/herald

build/gen/web_assets.c: $(WEB_FILES) tools/embed.sh
	@mkdir -p $(dir $@)
	bash tools/embed.sh $@ $(WEB_FILES)

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo '  CC      $<'
	@$(CC) $(CSTD) $(WARN) $(CFLAGS) $(DEPFLAGS) -c $< -o $@

$(BA)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo '  CC asan $<'
	@$(CC) $(CSTD) $(WARN) $(SANFLAGS) $(DEPFLAGS) -c $< -o $@

$(B)/libherald.a: $(call OBJS,$(B))
	@rm -f $@; ar rcs $@ $^
$(BA)/libherald.a: $(call OBJS,$(BA))
	@rm -f $@; ar rcs $@ $^

$(B)/herald: $(B)/src/app/main.o $(patsubst %.c,$(B)/%.o,$(BENCH_SRC)) $(B)/libherald.a
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)
$(BA)/herald: $(BA)/src/app/main.o $(patsubst %.c,$(BA)/%.o,$(BENCH_SRC)) $(BA)/libherald.a
	$(CC) $(SANFLAGS) -o $@ $^ $(LDLIBS)

UNIT_BIN  = $(patsubst tests/unit/%.c,$(B)/tests/%,$(UNIT_SRC))
UNIT_ABIN = $(patsubst tests/unit/%.c,$(BA)/tests/%,$(UNIT_SRC))
$(B)/tests/%: $(B)/tests/unit/%.o $(B)/libherald.a
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)
$(BA)/tests/%: $(BA)/tests/unit/%.o $(BA)/libherald.a
	$(CC) $(SANFLAGS) -o $@ $^ $(LDLIBS)

# Fuzz targets: clang + libFuzzer, with ASan and UBSan; the library is rebuilt with coverage.
FUZZ_CC    = clang
FUZZ_FLAGS = -g -O1 -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
FUZZ_BIN   = $(patsubst fuzz/%.c,$(BF)/%,$(FUZZ_SRC))
$(BF)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo '  CC fuzz $<'
	@$(FUZZ_CC) $(CSTD) $(WARN) $(FUZZ_FLAGS) $(DEPFLAGS) -c $< -o $@
$(BF)/libherald.a: $(call OBJS,$(BF))
	@rm -f $@; ar rcs $@ $^
$(BF)/fuzz_%: $(BF)/fuzz/fuzz_%.o $(BF)/libherald.a
	$(FUZZ_CC) -g -fsanitize=fuzzer,address,undefined -o $@ $^ $(LDLIBS)

build-all: $(B)/herald $(BA)/herald $(UNIT_BIN) $(UNIT_ABIN)

run: build-deps
	@$(MAKE) --no-print-directory $(B)/herald
	./$(B)/herald serve

deps:
	@bash tests/install-deps.sh

build-deps:
	@bash tests/install-deps.sh --build

test: deps
	@$(MAKE) --no-print-directory build-all fuzz
	@bash tests/run

fuzz: $(FUZZ_BIN)

fuzz-smoke: fuzz
	@bash tests/fuzz-smoke.sh

bench: $(B)/herald
	bash bench/compare_nchan.sh

bench-mqtt: $(B)/herald
	bash bench/compare_mosquitto.sh

bench-store: $(B)/herald
	bash bench/store.sh

bench-cluster: $(B)/herald
	bash bench/cluster.sh

bench-auth: $(B)/herald
	bash bench/auth.sh

bench-soak: $(B)/herald
	bash bench/soak.sh

bench-users: $(B)/herald
	bash bench/users.sh

clean:
	rm -rf build

.PHONY: all run deps build-deps test fuzz fuzz-smoke bench bench-mqtt bench-store bench-cluster bench-auth bench-soak bench-users clean build-all
.SECONDARY:

-include $(shell find build -name '*.d' 2>/dev/null)
