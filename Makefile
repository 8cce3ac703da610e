# depsera: one binary, its unit tests, integration tests, benchmarks.
# Sources are listed explicitly: adding a file is a visible decision.

-include config.mk

SRCS = \
	src/main.c \
	src/core/config.c \
	src/core/envfile.c \
	src/core/log.c \
	src/core/util.c \
	src/core/proc.c \
	src/core/background.c \
	src/core/password.c \
	src/db/db.c \
	src/db/listen.c \
	src/db/migrate.c \
	src/db/bootstrap.c \
	src/db/audit.c \
	src/http/router.c \
	src/http/request.c \
	src/http/session.c \
	src/http/clientip.c \
	src/http/limiter.c \
	src/http/jsonbuf.c \
	src/http/response.c \
	src/http/worker.c \
	src/http/balance.c \
	src/ingest/pgarray.c \
	src/ingest/upsert.c \
	src/http/supervisor.c \
	src/api/routes.c \
	src/api/health.c \
	src/api/auth.c \
	src/api/teams.c \
	src/api/users.c \
	src/api/services.c \
	src/api/services_validate.c \
	src/api/admin.c \
	src/poll/poller.c \
	src/poll/ssrf.c \
	src/otlp/percentile.c \
	src/otlp/mapping.c \
	src/otlp/unicase.c \
	src/otlp/discover.c \
	src/prune/pruner.c \
	src/cli/commands.c \
	src/cli/migrate.c \
	src/cli/user.c

# SQL migrations compiled into the binary, applied in this order.
MIGRATIONS = \
	schema/001_core \
	schema/002_dependencies \
	schema/003_api_keys \
	schema/004_spans

UNIT_TESTS = \
	tests/unit/check_config \
	tests/unit/check_log \
	tests/unit/check_router \
	tests/unit/check_migrate \
	tests/unit/check_util \
	tests/unit/check_limiter \
	tests/unit/check_clientip \
	tests/unit/check_session \
	tests/unit/check_ssrf \
	tests/unit/check_jsonbuf \
	tests/unit/check_balance \
	tests/unit/check_pgarray \
	tests/unit/check_otlp_percentile \
	tests/unit/check_otlp_mapping \
	tests/unit/check_unicase \
	tests/unit/check_otlp_discover

BUILD      = build
GEN_MIGR   = $(BUILD)/gen/migrations_data.c
OBJS       = $(SRCS:%.c=$(BUILD)/%.o) $(BUILD)/gen/migrations_data.o
LIB_OBJS   = $(filter-out $(BUILD)/src/main.o,$(OBJS))
WARN       = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
ALL_CFLAGS = -std=gnu11 $(OPT_CFLAGS) $(WARN) $(SAN_CFLAGS) -Iinclude -D_GNU_SOURCE -DH2O_USE_LIBUV=0 \
             -DDPS_VERSION=\"$(VERSION)\" $(LIB_CFLAGS) $(CONF_CPPFLAGS) $(CONF_CFLAGS)
ALL_LDFLAGS = $(SAN_LDFLAGS) -Wl,--as-needed $(CONF_LDFLAGS)
PYTHON     ?= /usr/bin/python3

# Sanitizer runs: leaks are errors; children that exit normally are checked too.
export ASAN_OPTIONS  ?= detect_leaks=1:abort_on_error=0:halt_on_error=1:detect_stack_use_after_return=0
export LSAN_OPTIONS  ?= suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0
export UBSAN_OPTIONS ?= print_stacktrace=1:halt_on_error=1

FUZZ_TARGETS = fuzz_router fuzz_log fuzz_ssrf fuzz_otlp_url
FUZZ_SECONDS ?= 30
FUZZ_CC      ?= clang
FUZZ_FLAGS    = -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -D_GNU_SOURCE $(LIB_CFLAGS)
fuzz_router_SRCS = src/http/router.c
fuzz_log_SRCS    = src/core/log.c src/core/util.c
fuzz_ssrf_SRCS   = src/poll/ssrf.c
fuzz_otlp_url_SRCS = src/otlp/discover.c src/otlp/unicase.c

.PHONY: all check unit integration bench fuzz man-check install uninstall clean distclean format man run deps
all: depsera

# Bootstrap on a fresh clone: install packages, generate and run configure.
config.mk: configure.ac config.mk.in
	scripts/install-deps.sh
	autoreconf -fi
	./configure

deps:
	scripts/install-deps.sh

depsera: $(OBJS)
	$(CC) $(ALL_LDFLAGS) -o $@ $(OBJS) $(LIB_LIBS)

$(BUILD)/%.o: %.c config.mk
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/tools/embed: tools/embed.c
	@mkdir -p $(dir $@)
	$(CC) -O1 -Wall -Wextra -o $@ $<

$(GEN_MIGR): $(BUILD)/tools/embed $(MIGRATIONS:%=%.up.sql) $(MIGRATIONS:%=%.down.sql)
	@mkdir -p $(dir $@)
	$(BUILD)/tools/embed $(MIGRATIONS) > $@.tmp && mv $@.tmp $@

$(BUILD)/gen/migrations_data.o: $(GEN_MIGR)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

# Unit tests: one Check suite per module, linked against every object but main.
$(BUILD)/tests/unit/%: tests/unit/%.c $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) $(ALL_LDFLAGS) -o $@ $< $(LIB_OBJS) $(LIB_LIBS) $(CHECK_LIBS)

unit: $(UNIT_TESTS:%=$(BUILD)/%)
	@fail=0; for t in $(UNIT_TESTS:%=$(BUILD)/%); do \
	  CK_FORK=yes $$t || fail=1; done; exit $$fail

integration: depsera
	DEPSERA_BIN=$(CURDIR)/depsera $(PYTHON) -m pytest -q -p no:cacheprovider tests/integration

check: deps all unit integration man-check

man-check: depsera
	./depsera config --roff | scripts/man-env.sh check man/depsera.1

man: depsera
	./depsera config --roff | scripts/man-env.sh update man/depsera.1

# libFuzzer targets for every decoder of client input; each runs FUZZ_SECONDS from its seed corpus.
$(BUILD)/fuzz/%: tests/fuzz/%.c config.mk $(SRCS) $(wildcard include/depsera/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $< $($*_SRCS) $(LIB_LIBS)

fuzz: $(FUZZ_TARGETS:%=$(BUILD)/fuzz/%)
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(BUILD)/fuzz/corpus-$$t && \
	  echo "fuzzing $$t for $(FUZZ_SECONDS)s" && \
	  if ! $(BUILD)/fuzz/$$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 -artifact_prefix=$(BUILD)/fuzz/ \
	      $(BUILD)/fuzz/corpus-$$t tests/fuzz/corpus/$$t > $(BUILD)/fuzz/$$t.log 2>&1; then \
	    tail -40 $(BUILD)/fuzz/$$t.log; exit 1; fi; \
	  grep -E "stat::number_of_executed_units|stat::peak_rss" $(BUILD)/fuzz/$$t.log; done

bench: depsera
	tests/bench/run.sh ./depsera
	tests/bench/services.sh ./depsera

# Start a local PostgreSQL under .pgdata/ unless DATABASE_URL is set, migrate, serve.
run: deps depsera
	scripts/run-local.sh ./depsera

install: depsera
	$(INSTALL) -d $(DESTDIR)$(bindir) $(DESTDIR)$(mandir)/man1
	$(INSTALL) -m 755 depsera $(DESTDIR)$(bindir)/depsera
	$(INSTALL) -m 644 man/depsera.1 $(DESTDIR)$(mandir)/man1/depsera.1

uninstall:
	rm -f $(DESTDIR)$(bindir)/depsera $(DESTDIR)$(mandir)/man1/depsera.1

format:
	clang-format -i $(SRCS) include/depsera/*.h tests/unit/*.c tools/*.c

clean:
	rm -rf $(BUILD) depsera

distclean: clean
	rm -rf config.mk config.log config.status configure autom4te.cache aclocal.m4 install-sh

-include $(OBJS:.o=.d)
