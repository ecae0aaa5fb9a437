# herald - one hand-written Makefile.
#   make            build build/herald (optimized, -Wall -Wextra -Werror)
#   make run        build and start `herald serve` with the embedded defaults
#   make test       install missing packages, build normal + ASan/UBSan, run every test
#   make fuzz       build the libFuzzer targets (clang); make fuzz-smoke runs each briefly
#   make bench      build and run the benchmark against nchan (bench/compare_nchan.sh)
#   make bench-mqtt the MQTT benchmark against mosquitto (bench/compare_mosquitto.sh)
#   make bench-soak 10 minutes of mixed traffic on every transport: memory, latency, loss (bench/soak.sh)
#   make bench-users 10,000 users on their own channels and read state, against nchan (bench/users.sh)
#   make bench-tls  fan-out, handshakes and idle memory over TLS, against nchan and mosquitto (bench/tls.sh)
#   make install    installs build/herald, the systemd unit, the man page and a sample herald.conf
#                   (PREFIX=/usr/local, DESTDIR, BINDIR, SYSCONFDIR=/etc, MANDIR, UNITDIR); make uninstall
#
# The distribution's CPPFLAGS, CFLAGS and LDFLAGS are honoured on every compile and link line
# (the fuzz targets, built with clang, take CPPFLAGS and LDFLAGS only). HERALD_VERSION names the
# release (`herald --version`); the revision comes from git (HERALD_REVISION=... overrides it).

CC      ?= cc
CSTD     = -std=c11 -D_GNU_SOURCE
WARN     = -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter
CFLAGS  ?= -O2 -g
CPPFLAGS ?=
LDFLAGS ?=
HERALD_VERSION ?= 0.9.0
HERALD_REVISION ?=
LDLIBS   = -linih -lssl -lcrypto -lz -ljansson -llmdb -lhiredis -lm
DEPFLAGS = -MMD -MP

LIB_SRC  = $(filter-out src/app/main.c,$(wildcard src/*/*.c)) build/gen/web_assets.c build/gen/version.c
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

# Run on every make, rewritten only when its text changes (a commit, the tree turning dirty or
# clean, another HERALD_VERSION, another day): only then is version.o rebuilt and herald relinked.
build/gen/version.c: FORCE
	@mkdir -p $(dir $@)
	@bash tools/version.sh $@ '$(HERALD_VERSION)' '$(HERALD_REVISION)'
FORCE:

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo '  CC      $<'
	@$(CC) $(CSTD) $(WARN) $(CPPFLAGS) $(CFLAGS) $(DEPFLAGS) -c $< -o $@

$(BA)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo '  CC asan $<'
	@$(CC) $(CSTD) $(WARN) $(CPPFLAGS) $(CFLAGS) $(SANFLAGS) $(DEPFLAGS) -c $< -o $@

$(B)/libherald.a: $(call OBJS,$(B))
	@rm -f $@; ar rcs $@ $^
$(BA)/libherald.a: $(call OBJS,$(BA))
	@rm -f $@; ar rcs $@ $^

$(B)/herald: $(B)/src/app/main.o $(patsubst %.c,$(B)/%.o,$(BENCH_SRC)) $(B)/libherald.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BA)/herald: $(BA)/src/app/main.o $(patsubst %.c,$(BA)/%.o,$(BENCH_SRC)) $(BA)/libherald.a
	$(CC) $(CFLAGS) $(SANFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

UNIT_BIN  = $(patsubst tests/unit/%.c,$(B)/tests/%,$(UNIT_SRC))
UNIT_ABIN = $(patsubst tests/unit/%.c,$(BA)/tests/%,$(UNIT_SRC))
$(B)/tests/%: $(B)/tests/unit/%.o $(B)/libherald.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BA)/tests/%: $(BA)/tests/unit/%.o $(BA)/libherald.a
	$(CC) $(CFLAGS) $(SANFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Fuzz targets: clang + libFuzzer, with ASan and UBSan; the library is rebuilt with coverage.
FUZZ_CC    = clang
FUZZ_FLAGS = -g -O1 -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
FUZZ_BIN   = $(patsubst fuzz/%.c,$(BF)/%,$(FUZZ_SRC))
$(BF)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo '  CC fuzz $<'
	@$(FUZZ_CC) $(CSTD) $(WARN) $(CPPFLAGS) $(FUZZ_FLAGS) $(DEPFLAGS) -c $< -o $@
$(BF)/libherald.a: $(call OBJS,$(BF))
	@rm -f $@; ar rcs $@ $^
$(BF)/fuzz_%: $(BF)/fuzz/fuzz_%.o $(BF)/libherald.a
	$(FUZZ_CC) -g -fsanitize=fuzzer,address,undefined $(LDFLAGS) -o $@ $^ $(LDLIBS)

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

bench-tls: $(B)/herald
	bash bench/tls.sh

# Installation. The unit's paths follow BINDIR and SYSCONFDIR; an existing herald.conf is never
# overwritten (the new sample goes beside it as herald.conf.sample), and uninstall removes it
# only when it is still the sample. The binary installed is the one built: no rebuild here
# beyond what `make` itself would do.
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
SYSCONFDIR ?= /etc
MANDIR     ?= $(PREFIX)/share/man
UNITDIR    ?= $(PREFIX)/lib/systemd/system
INSTALL    ?= install
CONF        = $(DESTDIR)$(SYSCONFDIR)/herald/herald.conf

install: $(B)/herald
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(SYSCONFDIR)/herald
	$(INSTALL) -m 0755 $(B)/herald $(DESTDIR)$(BINDIR)/herald
	sed -e 's|/usr/local/bin/herald|$(BINDIR)/herald|g' -e 's|/etc/herald/|$(SYSCONFDIR)/herald/|g' \
	    packaging/herald.service > $(DESTDIR)$(UNITDIR)/herald.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/herald.service
	$(INSTALL) -m 0644 packaging/herald.1 $(DESTDIR)$(MANDIR)/man1/herald.1
	@if [ -e $(CONF) ] && ! cmp -s packaging/herald.conf $(CONF); then \
	    echo "keeping $(CONF); the new sample is $(CONF).sample"; \
	    $(INSTALL) -m 0644 packaging/herald.conf $(CONF).sample; \
	else \
	    echo "$(INSTALL) -m 0644 packaging/herald.conf $(CONF)"; \
	    $(INSTALL) -m 0644 packaging/herald.conf $(CONF); \
	fi

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/herald $(DESTDIR)$(UNITDIR)/herald.service $(DESTDIR)$(MANDIR)/man1/herald.1 \
	    $(CONF).sample
	@if [ -e $(CONF) ] && ! cmp -s packaging/herald.conf $(CONF); then \
	    echo "keeping $(CONF): it was changed"; \
	else \
	    rm -f $(CONF); rmdir $(DESTDIR)$(SYSCONFDIR)/herald 2>/dev/null || true; \
	fi

clean:
	rm -rf build

.PHONY: all run deps build-deps test fuzz fuzz-smoke bench bench-mqtt bench-store bench-cluster bench-auth bench-soak bench-users bench-tls clean build-all install uninstall FORCE
.SECONDARY:

-include $(shell find build -name '*.d' 2>/dev/null)
