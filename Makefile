# Postern -- one plain Makefile. `make` builds build/postern; `make test`,
# `make run`, `make bench`, `make clean`. Build and test install missing
# Debian packages first when run as root (.ci/deps), else print the line.

CC	 = gcc
PKGS	 = libunbound opendkim libmicrohttpd openssl sqlite3 libpcre2-8 libpsl \
	   jansson gmime-3.0 inih libxxhash
# libspf2 ships no pkg-config file; it is linked by name.
CFLAGS	?= -O2 -g
CFLAGS	+= -Wall -Wextra -Werror -std=gnu11 -pthread -D_GNU_SOURCE \
	   -Iproxy -Ipolicy -Irules -Idns -Idb -Iweb \
	   $(PKG_CFLAGS)
LDLIBS	 = $(PKG_LIBS) -lspf2 -pthread -lm
# Before .ci/deps has run, pkg-config fails; the deps target comes first and
# the variables are only expanded when a compile runs.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   = $(shell pkg-config --libs $(PKGS))

B	 = build
SRCS	 = $(sort $(wildcard proxy/*.c policy/*.c rules/*.c dns/*.c db/*.c web/*.c))
# The dashboard's static files and Debian's Chart.js, compiled in.
CHARTJS	?= /usr/share/javascript/chart.js/chart.min.js
ASSETS	 = $(sort $(wildcard web/static/*))
GENSRCS	 = $(B)/gen/web_assets.c
LIBSRCS	 = $(filter-out proxy/main.c,$(SRCS)) $(GENSRCS)
OBJS	 = $(LIBSRCS:%.c=$(B)/obj/%.o)
ASANOBJS = $(LIBSRCS:%.c=$(B)/asan/%.o)
UNITSRC	 = $(sort $(wildcard tests/unit/*_test.c))
UNITS	 = $(UNITSRC:tests/unit/%.c=$(B)/tests/%)
UNITS_ASAN = $(UNITSRC:tests/unit/%.c=$(B)/tests-asan/%)
BENCHSRC = $(sort $(wildcard bench/*.c))
BENCHES	 = $(BENCHSRC:bench/%.c=$(B)/bench/%)
ASANFLAGS = -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
	   -fno-sanitize-recover=undefined
PYTHON	 = /usr/bin/python3
CONF	?= etc/postern.conf

.PHONY: all deps test-deps unit unit-asan integration integration-asan test run bench bench-spf bench-rules bench-detect spf-compare fuzz fuzz-build clean
.DEFAULT_GOAL := all

all: deps $(B)/postern

deps:
	@sh .ci/deps build

test-deps:
	@sh .ci/deps test

$(B)/gen/web_assets.c: $(ASSETS) $(CHARTJS) tools/embed.sh
	@mkdir -p $(dir $@)
	@sh tools/embed.sh $@ $(ASSETS) chart.js=$(CHARTJS)

$(B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(B)/asan/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(ASANFLAGS) -MMD -MP -c -o $@ $<

$(B)/libpostern.a: $(OBJS)
	@rm -f $@
	ar rcs $@ $^

$(B)/libpostern-asan.a: $(ASANOBJS)
	@rm -f $@
	ar rcs $@ $^

$(B)/postern: $(B)/obj/proxy/main.o $(B)/libpostern.a
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(B)/tests/%: tests/unit/%.c tests/unit/t.h $(B)/libpostern.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/unit -o $@ $< $(B)/libpostern.a $(LDLIBS)

$(B)/tests-asan/%: tests/unit/%.c tests/unit/t.h $(B)/libpostern-asan.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(ASANFLAGS) -Itests/unit -o $@ $< $(B)/libpostern-asan.a $(LDLIBS)

$(B)/bench/%: bench/%.c $(B)/libpostern.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(B)/libpostern.a $(LDLIBS)

unit: deps $(UNITS)
	@sh tests/run-unit $(UNITS)

unit-asan: deps $(UNITS_ASAN)
	@ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 sh tests/run-unit $(UNITS_ASAN)

# A hung test fails alone after TEST_TIMEOUT seconds (pytest-timeout, with
# its traceback) instead of eating the whole CI budget; -rfE lists failures
# and errors again above the closing "N passed, N failed" line.
TEST_TIMEOUT ?= 300
PYTEST	 = $(PYTHON) -m pytest -q -p no:cacheprovider -rfE --timeout=$(TEST_TIMEOUT)

integration: test-deps $(B)/postern
	$(PYTEST) tests/integration

# The integration tests against an ASan+UBSan build of the daemon: the
# harness fails a test whose Postern log shows a sanitizer report.
$(B)/postern-asan: $(B)/asan/proxy/main.o $(B)/libpostern-asan.a
	$(CC) $(CFLAGS) $(ASANFLAGS) -o $@ $^ $(LDLIBS)

integration-asan: test-deps $(B)/postern-asan
	POSTERN_BIN=$(CURDIR)/$(B)/postern-asan POSTERN_TEST_TIME_SCALE=3 ASAN_OPTIONS=detect_leaks=1 \
	UBSAN_OPTIONS=print_stacktrace=1 $(PYTEST) tests/integration

test: test-deps all unit unit-asan integration

run: all
	@mkdir -p var/spool
	$(B)/postern serve -c $(CONF)

bench: all $(BENCHES)
	@sh .ci/deps bench
	$(B)/bench/rules_bench
	$(PYTHON) bench/spf_bench.py
	$(PYTHON) bench/auth_bench.py
	$(PYTHON) bench/policy_bench.py
	$(PYTHON) bench/run.py

# Rules: per-message cost (500 rules, 100 KB) and proxy throughput with the
# starter rule set loaded.
bench-rules: all $(B)/bench/rules_bench
	@sh .ci/deps bench
	$(B)/bench/rules_bench
	$(PYTHON) bench/run.py --quick --rules etc/rules.txt

bench-spf: all $(B)/bench/spf_bench
	$(PYTHON) bench/spf_bench.py

# Detection: five-fold cross-validation of rules, classifier and both over
# the labelled training corpus (docs/bayes.md). The corpus is fetched once
# (npm) into CORPUS; fold databases are learned into $(B)/bench-detect
# (DETECT_ARGS=--relearn learns again; DETECT_ARGS=bayes.min_dev=0.2 tries
# a setting).
CORPUS	?= $(B)/corpus-train
GET_TRAIN ?= ../shared/corpus/get-train.py
bench-detect: all $(B)/bench/bayes_cv $(B)/bench/bayes_bench
	@test -f $(CORPUS)/labels.tsv || $(PYTHON) $(GET_TRAIN) $(CORPUS)
	$(B)/bench/bayes_cv $(B)/postern $(CORPUS) $(B)/bench-detect --relearn $(DETECT_ARGS)
	$(B)/bench/bayes_bench

# libspf2 on our resolver against the RFC 7208 cases (docs/spf.md).
spf-compare: all $(B)/bench/spf_libspf2
	$(PYTHON) bench/spf_compare.py

# Fuzzing (not part of `make test`): one libFuzzer target per parser of
# hostile input, tests/fuzz/fuzz_<name>.c, run FUZZ_SECONDS each from the
# seeds in tests/fuzz/corpus/<name>/. FUZZ=name1,name2 picks some.
FUZZCC	 = clang
FUZZFLAGS = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
	   -fno-sanitize-recover=undefined
FUZZ_SECONDS ?= 60
FUZZSRC	 = $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZERS	 = $(FUZZSRC:tests/fuzz/%.c=$(B)/fuzz/%)
FUZZOBJS = $(LIBSRCS:%.c=$(B)/fuzzobj/%.o)

$(B)/fuzzobj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZCC) $(CFLAGS) $(FUZZFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c -o $@ $<

$(B)/libpostern-fuzz.a: $(FUZZOBJS)
	@rm -f $@
	ar rcs $@ $^

# A target may replace a library function (e.g. dns_query with a fake
# resolver); its own definition comes first and wins.
$(B)/fuzz/%: tests/fuzz/%.c $(B)/libpostern-fuzz.a
	@mkdir -p $(dir $@)
	$(FUZZCC) $(CFLAGS) $(FUZZFLAGS) -fsanitize=fuzzer -o $@ $< \
	    $(B)/libpostern-fuzz.a $(LDLIBS) -Wl,--allow-multiple-definition

fuzz-build: deps $(FUZZERS)

fuzz: fuzz-build
	@sh .ci/deps bench
	FUZZ_SECONDS=$(FUZZ_SECONDS) sh tests/fuzz/run $(B)/fuzz $(FUZZERS)

clean:
	rm -rf $(B)

-include $(OBJS:.o=.d) $(ASANOBJS:.o=.d) $(FUZZOBJS:.o=.d) $(B)/obj/proxy/main.d $(B)/asan/proxy/main.d
