# Postern -- one plain Makefile. `make` builds build/postern; `make test`,
# `make run`, `make bench`, `make install`, `make clean`. Build and test
# install missing Debian packages first when run as root (.ci/deps), else
# print the line.

CC	 = gcc
PKGS	 = libunbound opendkim libmicrohttpd openssl sqlite3 libpcre2-8 libpsl \
	   jansson gmime-3.0 inih libxxhash libpq
CFLAGS	?= -O2 -g
CFLAGS	+= -Wall -Wextra -Werror -std=gnu11 -pthread -D_GNU_SOURCE \
	   -I. \
	   $(PKG_CFLAGS)
LDLIBS	 = $(PKG_LIBS) -pthread -lm
# Before .ci/deps has run, pkg-config fails; the deps target comes first and
# the variables are only expanded when a compile runs.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   = $(shell pkg-config --libs $(PKGS))

B	 = build
SRCS	 = $(sort $(wildcard lib/*.c proxy/*.c policy/*.c rules/*.c dns/*.c db/*.c web/*.c))
# The front door (`postern COMMAND`, main() included) goes into the binary
# only: tests and benches link the library.
CLISRCS	 = $(sort $(wildcard cli/*.c))
# The dashboard's static files and Debian's Chart.js, compiled in.
CHARTJS	?= /usr/share/javascript/chart.js/chart.min.js
ASSETS	 = $(sort $(wildcard web/static/*))
GENSRCS	 = $(B)/gen/web_assets.c
LIBSRCS	 = $(SRCS) $(GENSRCS)
OBJS	 = $(LIBSRCS:%.c=$(B)/obj/%.o)
ASANOBJS = $(LIBSRCS:%.c=$(B)/asan/%.o)
CLIOBJS	 = $(CLISRCS:%.c=$(B)/obj/%.o)
CLIASANOBJS = $(CLISRCS:%.c=$(B)/asan/%.o)
UNITSRC	 = $(sort $(wildcard tests/unit/*_test.c))
UNITS	 = $(UNITSRC:tests/unit/%.c=$(B)/tests/%)
UNITS_ASAN = $(UNITSRC:tests/unit/%.c=$(B)/tests-asan/%)
BENCHSRC = $(sort $(wildcard bench/*.c))
BENCHES	 = $(BENCHSRC:bench/%.c=$(B)/bench/%)
ASANFLAGS = -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
	   -fno-sanitize-recover=undefined
PYTHON	 = /usr/bin/python3
CONF	?= etc/postern.conf

.PHONY: all deps test-deps man install uninstall unit unit-asan integration integration-pg integration-asan test run bench bench-postfix bench-spf bench-rules bench-all bench-cluster bench-detect spf-compare fuzz fuzz-build clean
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
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

$(B)/asan/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(ASANFLAGS) -MMD -MP -c -o $@ $<

$(B)/libpostern.a: $(OBJS)
	@rm -f $@
	ar rcs $@ $^

$(B)/libpostern-asan.a: $(ASANOBJS)
	@rm -f $@
	ar rcs $@ $^

$(B)/postern: $(CLIOBJS) $(B)/libpostern.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# every test rebuilds when a shared test header changes (bayes_db.h, edit_db.h, ...)
UNITH	 = $(wildcard tests/unit/*.h)

$(B)/tests/%: tests/unit/%.c $(UNITH) $(B)/libpostern.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -Itests/unit -o $@ $< $(B)/libpostern.a $(LDLIBS)

$(B)/tests-asan/%: tests/unit/%.c $(UNITH) $(B)/libpostern-asan.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(ASANFLAGS) -Itests/unit -o $@ $< $(B)/libpostern-asan.a $(LDLIBS)

$(B)/bench/%: bench/%.c $(B)/libpostern.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(B)/libpostern.a $(LDLIBS)

# Only spf-compare's runner uses libspf2 (Postern has its own SPF evaluator,
# docs/spf.md); libspf2 ships no pkg-config file, so it is linked by name.
$(B)/bench/spf_libspf2: bench/spf_libspf2.c $(B)/libpostern.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(B)/libpostern.a $(LDLIBS) -lspf2

unit: deps $(UNITS)
	@sh tests/run-unit $(UNITS)

unit-asan: deps $(UNITS_ASAN)
	@ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 sh tests/run-unit $(UNITS_ASAN)

# A hung test fails alone after TEST_TIMEOUT seconds (pytest-timeout, with
# its traceback) instead of eating the whole CI budget; -rfE lists failures
# and errors again above the closing "N passed, N failed" line.
TEST_TIMEOUT ?= 300
# Integration tests run in TEST_JOBS processes (pytest-xdist), one test file
# per process at a time (--dist loadfile keeps a module's fixtures, e.g. one
# testssl run, in one process). Most of a test's time is spent waiting on
# servers, so three processes on two cores cut the suite from about 14 to
# about 6 minutes. Every test picks its own ports and temporary root.
# TEST_JOBS=0 runs them in this process, one after another.
TEST_JOBS ?= 3
PYTEST	 = $(PYTHON) -m pytest -q -p no:cacheprovider -rfE --timeout=$(TEST_TIMEOUT) \
	   $(if $(filter-out 0,$(TEST_JOBS)),-n $(TEST_JOBS) --dist loadfile)

integration: test-deps $(B)/postern
	$(PYTEST) tests/integration

# The integration tests that touch state (greylist, access lists, rules,
# the quarantine, verdicts and stats, learning, the web API), again with
# every Postern on PostgreSQL (db.url; tests/integration/harness/pg.py
# starts one server per test process, a fresh database per test).
# test_pg.py, in the pass above, covers what only PostgreSQL brings.
PG_TESTS = test_access test_api test_bayes_web test_greylist test_policy \
	   test_quarantine test_rules
integration-pg: test-deps $(B)/postern
	POSTERN_TEST_DB=pg $(PYTEST) $(PG_TESTS:%=tests/integration/%.py)

# The integration tests against an ASan+UBSan build of the daemon: the
# harness fails a test whose Postern log shows a sanitizer report.
$(B)/postern-asan: $(CLIASANOBJS) $(B)/libpostern-asan.a
	$(CC) $(CFLAGS) $(ASANFLAGS) -o $@ $^ $(LDLIBS)

integration-asan: test-deps $(B)/postern-asan
	POSTERN_BIN=$(CURDIR)/$(B)/postern-asan POSTERN_TEST_TIME_SCALE=3 ASAN_OPTIONS=detect_leaks=1 \
	UBSAN_OPTIONS=print_stacktrace=1 $(PYTEST) tests/integration

test: test-deps all unit unit-asan integration integration-pg

run: all
	@mkdir -p var/spool
	$(B)/postern serve -c $(CONF)

bench: all $(BENCHES)
	@sh .ci/deps bench
	$(B)/bench/rules_bench
	$(B)/bench/dompol_bench
	$(PYTHON) bench/spf_bench.py
	$(PYTHON) bench/auth_bench.py
	$(PYTHON) bench/policy_bench.py
	$(PYTHON) bench/run.py
	$(PYTHON) bench/run.py $(BENCH_ALL)
	$(PYTHON) bench/run.py $(BENCH_CLUSTER)
	$(PYTHON) bench/postfix_bench.py
	$(PYTHON) bench/pg_rate.py

# Every check on (rDNS, SPF, DKIM, DMARC, one DNS list, the starter rules,
# the trained classifier) against direct, in the cells issue 14 names
# (bench/results/all.txt): 2,000 / 1,500 messages per run, three
# interleaved repetitions, about 2 minutes.
BENCH_ALL = --policy all --sizes 1,10 --conc 10,100 --no-memory --scale 2 --out all.txt
bench-all: all
	@sh .ci/deps bench
	$(PYTHON) bench/run.py $(BENCH_ALL)

# One node against two nodes on one store, load split between them, each
# against direct in the same run (bench/results/cluster.txt; docs/cluster.md).
# The store is PostgreSQL (a server of its own) once the pg test harness is
# there, else one SQLite file both nodes open.
BENCH_CLUSTER = --policy default,cluster --sizes 1,10 --conc 10,100 --no-memory --scale 2 --eod \
	--out cluster.txt $(if $(wildcard tests/integration/harness/pg.py),--pg)
bench-cluster: all
	@sh .ci/deps bench
	$(PYTHON) bench/run.py $(BENCH_CLUSTER)

# ---- install ------------------------------------------------------------
# `make install` (PREFIX=/usr/local, DESTDIR to stage, as a package build
# does) lays out the binary, the configuration, the starter rules, the man
# pages, the docs and the systemd unit with its sysusers.d and tmpfiles.d
# entries. GNU directory variables; localstatedir is /var whatever the
# prefix, because the unit's ReadWritePaths= and tmpfiles.d name
# /var/lib/postern (database) and /var/spool/postern (spool). The files in
# etc/ and docs/man/ carry the default paths, rewritten here for others.
# An existing postern.conf or rules.txt is never replaced (the new one goes
# beside it as .new). Without DESTDIR, as root, the user and the directories
# are created at once (systemd-sysusers, systemd-tmpfiles).
PREFIX	?= /usr/local
prefix	?= $(PREFIX)
exec_prefix ?= $(prefix)
sbindir	?= $(exec_prefix)/sbin
sysconfdir ?= $(prefix)/etc
localstatedir ?= /var
datarootdir ?= $(prefix)/share
mandir	?= $(datarootdir)/man
docdir	?= $(datarootdir)/doc/postern
systemdunitdir ?= $(prefix)/lib/systemd/system
sysusersdir ?= $(prefix)/lib/sysusers.d
tmpfilesdir ?= $(prefix)/lib/tmpfiles.d
INSTALL	?= install
confdir	 = $(sysconfdir)/postern
statedir = $(localstatedir)/lib/postern
spooldir = $(localstatedir)/spool/postern
SUBST_PATHS = sed -e 's|/usr/local/sbin/|$(sbindir)/|g' \
	   -e 's|/usr/local/etc/postern|$(confdir)|g' \
	   -e 's|/usr/local/share/doc/postern|$(docdir)|g' \
	   -e 's|/var/lib/postern|$(statedir)|g' \
	   -e 's|/var/spool/postern|$(spooldir)|g'
DOCS	 = README.md $(sort $(wildcard docs/*.md))

man: $(B)/man/postern.8 $(B)/man/postern.conf.5

$(B)/man/postern.8: docs/man/postern.8
	@mkdir -p $(dir $@)
	cp docs/man/postern.8 $@

# Its KEYS section comes from README.md's configuration table.
$(B)/man/postern.conf.5: docs/man/postern.conf.5.in README.md tools/confman.sh
	@mkdir -p $(dir $@)
	sh tools/confman.sh docs/man/postern.conf.5.in README.md > $@.tmp && mv $@.tmp $@

install: all man
	$(INSTALL) -d $(DESTDIR)$(sbindir) $(DESTDIR)$(confdir) $(DESTDIR)$(docdir) \
	    $(DESTDIR)$(mandir)/man5 $(DESTDIR)$(mandir)/man8 $(DESTDIR)$(systemdunitdir) \
	    $(DESTDIR)$(sysusersdir) $(DESTDIR)$(tmpfilesdir) $(B)/install
	$(INSTALL) -m 0755 $(B)/postern $(DESTDIR)$(sbindir)/postern
	sh tools/sysconf.sh etc/postern.conf $(confdir) $(statedir) $(spooldir) > $(B)/install/postern.conf
	sh tools/install-conf.sh $(B)/install/postern.conf $(DESTDIR)$(confdir)/postern.conf
	sh tools/install-conf.sh etc/rules.txt $(DESTDIR)$(confdir)/rules.txt
	@for f in etc/postern.service etc/postern.sysusers etc/postern.tmpfiles \
	    $(B)/man/postern.8 $(B)/man/postern.conf.5; do \
		$(SUBST_PATHS) $$f > $(B)/install/$${f##*/} || exit 1; \
	done
	$(INSTALL) -m 0644 $(B)/install/postern.service $(DESTDIR)$(systemdunitdir)/postern.service
	$(INSTALL) -m 0644 $(B)/install/postern.sysusers $(DESTDIR)$(sysusersdir)/postern.conf
	$(INSTALL) -m 0644 $(B)/install/postern.tmpfiles $(DESTDIR)$(tmpfilesdir)/postern.conf
	$(INSTALL) -m 0644 $(B)/install/postern.8 $(DESTDIR)$(mandir)/man8/postern.8
	$(INSTALL) -m 0644 $(B)/install/postern.conf.5 $(DESTDIR)$(mandir)/man5/postern.conf.5
	$(INSTALL) -m 0644 $(DOCS) $(DESTDIR)$(docdir)/
	@if [ -n "$(DESTDIR)" ] || [ "$$(id -u)" != 0 ]; then :; \
	elif command -v systemd-sysusers >/dev/null; then \
		systemd-sysusers $(sysusersdir)/postern.conf && \
		systemd-tmpfiles --create $(tmpfilesdir)/postern.conf && \
		echo "install: now edit $(confdir)/postern.conf, then" \
		     "systemctl daemon-reload && systemctl enable --now postern"; \
	else \
		echo "install: no systemd-sysusers here; create the user postern and" \
		     "$(statedir), $(spooldir) as $(tmpfilesdir)/postern.conf says"; \
	fi

# Keeps what is the admin's: the configuration, the database, the spool and
# the postern user.
uninstall:
	rm -f $(DESTDIR)$(sbindir)/postern $(DESTDIR)$(systemdunitdir)/postern.service \
	    $(DESTDIR)$(sysusersdir)/postern.conf $(DESTDIR)$(tmpfilesdir)/postern.conf \
	    $(DESTDIR)$(mandir)/man8/postern.8 $(DESTDIR)$(mandir)/man5/postern.conf.5 \
	    $(addprefix $(DESTDIR)$(docdir)/,$(notdir $(DOCS)))
	-rmdir $(DESTDIR)$(docdir)
	@echo "uninstall: kept $(confdir), $(statedir), $(spooldir) and the user postern"

# Rules: per-message cost (500 rules, 100 KB) and proxy throughput with the
# starter rule set loaded.
bench-rules: all $(B)/bench/rules_bench
	@sh .ci/deps bench
	$(B)/bench/rules_bench
	$(PYTHON) bench/run.py --quick --rules etc/rules.txt

bench-postfix: all
	@sh .ci/deps bench
	$(PYTHON) bench/postfix_bench.py

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

-include $(OBJS:.o=.d) $(ASANOBJS:.o=.d) $(FUZZOBJS:.o=.d) $(CLIOBJS:.o=.d) $(CLIASANOBJS:.o=.d)
