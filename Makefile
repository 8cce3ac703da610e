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
	src/core/password.c \
	src/db/db.c \
	src/db/listen.c \
	src/db/migrate.c \
	src/db/bootstrap.c \
	src/db/audit.c \
	src/db/stmt.c \
	src/http/router.c \
	src/http/request.c \
	src/http/session.c \
	src/http/clientip.c \
	src/limit/limits.c \
	src/limit/limits_pg.c \
	src/limit/usage.c \
	src/http/limit_req.c \
	src/http/bucket.c \
	src/http/jsonbuf.c \
	src/http/compress.c \
	src/http/response.c \
	src/http/worker.c \
	src/http/worker_listen.c \
	src/http/balance.c \
	src/http/tls.c \
	src/ingest/pgarray.c \
	src/ingest/upsert.c \
	src/http/supervisor.c \
	src/api/routes.c \
	src/api/guards.c \
	src/api/health.c \
	src/api/auth.c \
	src/api/teams.c \
	src/api/api_keys.c \
	src/api/rate_limits.c \
	src/api/usage.c \
	src/api/otlp_stats.c \
	src/api/users.c \
	src/api/services.c \
	src/api/services_validate.c \
	src/api/poll_history.c \
	src/api/test_schema.c \
	src/api/manual_poll.c \
	src/api/graph_cache.c \
	src/api/dependencies.c \
	src/api/associations.c \
	src/api/aliases.c \
	src/api/canonical_overrides.c \
	src/api/external_nodes.c \
	src/api/graph.c \
	src/api/graph_avg.c \
	src/api/history.c \
	src/api/admin.c \
	src/otlp/apikey.c \
	src/otlp/arena.c \
	src/otlp/decode.c \
	src/otlp/encode.c \
	src/otlp/ingest.c \
	src/otlp/service.c \
	src/otlp/traces.c \
	src/otlp/metrics.c \
	src/otlp/ttlcache.c \
	src/poll/poller.c \
	src/poll/fetch.c \
	src/poll/schedule.c \
	src/poll/backoff.c \
	src/poll/limits.c \
	src/poll/sanitize.c \
	src/poll/ssrf.c \
	src/poll/parse_common.c \
	src/poll/parse_default.c \
	src/poll/parse_schema.c \
	src/poll/parse_prometheus.c \
	src/otlp/percentile.c \
	src/otlp/mapping.c \
	src/otlp/unicase.c \
	src/otlp/discover.c \
	src/prune/schedule.c \
	src/prune/run.c \
	src/prune/rollup.c \
	src/prune/pruner.c \
	src/cli/commands.c \
	src/cli/migrate.c \
	src/cli/user.c

# SQL migrations compiled into the binary, applied in this order.
MIGRATIONS = \
	schema/001_core \
	schema/002_dependencies \
	schema/003_api_keys \
	schema/004_spans \
	schema/005_ingest_path \
	schema/006_pruner \
	schema/007_rate_limits \
	schema/008_poller \
	schema/009_poll_requests \
	schema/010_latency_rollup \
	schema/011_latency_epoch

UNIT_TESTS = \
	tests/unit/check_config \
	tests/unit/check_log \
	tests/unit/check_router \
	tests/unit/check_migrate \
	tests/unit/check_util \
	tests/unit/check_limits \
	tests/unit/check_usage \
	tests/unit/check_bucket \
	tests/unit/check_clientip \
	tests/unit/check_tls \
	tests/unit/check_session \
	tests/unit/check_ssrf \
	tests/unit/check_jsonbuf \
	tests/unit/check_compress \
	tests/unit/check_graph_avg \
	tests/unit/check_balance \
	tests/unit/check_pgarray \
	tests/unit/check_otlp_percentile \
	tests/unit/check_otlp_mapping \
	tests/unit/check_unicase \
	tests/unit/check_otlp_discover \
	tests/unit/check_apikey \
	tests/unit/check_ttlcache \
	tests/unit/check_arena \
	tests/unit/check_otlp_decode \
	tests/unit/check_poll_default \
	tests/unit/check_poll_schema \
	tests/unit/check_poll_prometheus \
	tests/unit/check_poll_schedule \
	tests/unit/check_prune

# OTLP protobuf definitions (proto/README.md); their C is generated into $(GEN_PROTO) at build time.
PROTO_FILES = \
	opentelemetry/proto/common/v1/common \
	opentelemetry/proto/resource/v1/resource \
	opentelemetry/proto/trace/v1/trace \
	opentelemetry/proto/metrics/v1/metrics \
	opentelemetry/proto/collector/trace/v1/trace_service \
	opentelemetry/proto/collector/metrics/v1/metrics_service

BUILD      = build
GEN_MIGR   = $(BUILD)/gen/migrations_data.c
GEN_PROTO  = $(BUILD)/gen/proto
PROTO_C    = $(PROTO_FILES:%=$(GEN_PROTO)/%.pb-c.c)
OBJS       = $(SRCS:%.c=$(BUILD)/%.o) $(BUILD)/gen/migrations_data.o $(PROTO_C:.c=.o)
LIB_OBJS   = $(filter-out $(BUILD)/src/main.o,$(OBJS))
WARN       = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
ALL_CFLAGS = -std=gnu11 $(OPT_CFLAGS) $(WARN) $(SAN_CFLAGS) -Iinclude -I$(GEN_PROTO) -D_GNU_SOURCE -DH2O_USE_LIBUV=0 \
             -DDPS_VERSION=\"$(VERSION)\" $(LIB_CFLAGS) $(CONF_CPPFLAGS) $(CONF_CFLAGS)
ALL_LDFLAGS = $(SAN_LDFLAGS) -Wl,--as-needed $(CONF_LDFLAGS)
PYTHON     ?= /usr/bin/python3

# Sanitizer runs: leaks are errors; children that exit normally are checked too.
export ASAN_OPTIONS  ?= detect_leaks=1:abort_on_error=0:halt_on_error=1:detect_stack_use_after_return=0
export LSAN_OPTIONS  ?= suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0
export UBSAN_OPTIONS ?= print_stacktrace=1:halt_on_error=1

FUZZ_TARGETS = fuzz_router fuzz_log fuzz_ssrf fuzz_otlp_url fuzz_otlp_protobuf fuzz_otlp_json fuzz_otlp_gzip \
               fuzz_poll_default fuzz_poll_schema fuzz_poll_prometheus
FUZZ_SECONDS ?= 30
FUZZ_CC      ?= clang
FUZZ_FLAGS    = -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -I$(GEN_PROTO) -D_GNU_SOURCE $(LIB_CFLAGS)
fuzz_router_SRCS = src/http/router.c
fuzz_log_SRCS    = src/core/log.c src/core/util.c
fuzz_ssrf_SRCS   = src/poll/ssrf.c
fuzz_otlp_url_SRCS = src/otlp/discover.c src/otlp/unicase.c src/core/util.c
fuzz_otlp_protobuf_SRCS = src/otlp/arena.c src/otlp/decode.c src/otlp/encode.c src/http/jsonbuf.c src/core/util.c $(PROTO_C)
fuzz_otlp_json_SRCS     = $(fuzz_otlp_protobuf_SRCS)
fuzz_otlp_gzip_SRCS     = $(fuzz_otlp_protobuf_SRCS)
fuzz_poll_default_SRCS  = src/poll/parse_common.c src/poll/parse_default.c src/poll/parse_schema.c \
                          src/poll/parse_prometheus.c src/otlp/unicase.c src/otlp/percentile.c src/core/util.c
fuzz_poll_schema_SRCS     = $(fuzz_poll_default_SRCS)
fuzz_poll_prometheus_SRCS = $(fuzz_poll_default_SRCS)

.PHONY: all check unit integration bench bench-decode fuzz man-check install uninstall clean distclean format man run deps
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

# protoc-c 1.4.1 rejects proto3 `optional`; each such field becomes the one-field oneof protoc
# itself makes of it (same wire format and JSON; see proto/README.md).
$(GEN_PROTO)/stamp: $(PROTO_FILES:%=proto/%.proto)
	@rm -rf $(GEN_PROTO) && mkdir -p $(GEN_PROTO)/src && touch $@.tmp
	cp -R proto/opentelemetry $(GEN_PROTO)/src/
	sed -i -E 's/^([[:space:]]*)optional[[:space:]]+([A-Za-z0-9_.]+)[[:space:]]+([A-Za-z0-9_]+)[[:space:]]*=[[:space:]]*([0-9]+)[[:space:]]*;/\1oneof _\3 { \2 \3 = \4; }/' \
	    $(PROTO_FILES:%=$(GEN_PROTO)/src/%.proto)
	! grep -n '^[[:space:]]*optional[[:space:]]' $(PROTO_FILES:%=$(GEN_PROTO)/src/%.proto)
	protoc-c -I$(GEN_PROTO)/src --c_out=$(GEN_PROTO) $(PROTO_FILES:%=%.proto)
	@mv $@.tmp $@  # older than what it stands for, so the outputs are never out of date against it

$(PROTO_C) $(PROTO_C:.c=.h): $(GEN_PROTO)/stamp
	@:

$(GEN_PROTO)/%.pb-c.o: $(GEN_PROTO)/%.pb-c.c config.mk
	$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

# Every object may include a generated header: generate them first (make -j from a clean tree).
$(OBJS): | $(GEN_PROTO)/stamp

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
$(BUILD)/fuzz/%: tests/fuzz/%.c config.mk $(SRCS) $(wildcard include/depsera/*.h tests/fuzz/*.h) $(GEN_PROTO)/stamp
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

# OTLP decoding alone, in-process: 8192-span batches (tests/bench/README.md).
$(BUILD)/tests/bench/%: tests/bench/%.c $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< $(LIB_OBJS) $(LIB_LIBS)

bench-decode: $(BUILD)/tests/bench/bench_otlp_decode
	$(BUILD)/tests/bench/bench_otlp_decode

bench: depsera bench-decode
	tests/bench/run.sh ./depsera
	tests/bench/services.sh ./depsera
	tests/bench/otlp.sh ./depsera
	tests/bench/limits.sh ./depsera
	tests/bench/pruner.sh ./depsera
	tests/bench/graph.sh ./depsera
	tests/bench/history.sh ./depsera
	tests/bench/poller.sh ./depsera

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
