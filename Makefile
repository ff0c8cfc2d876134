# S2Scope — the two quick-start commands are `make demo` and `make test`.
SHELL := /bin/bash
SWIFT ?= swift
DEMO ?= fixtures/lab/prosody-prosody.pcap

.PHONY: all deps build release install uninstall demo test fixtures lab lab-test bench hostile-scaling fuzz sanitize tsan-stress clean \
	keylog-shim install-keylog-shim tls-lab tls-lab-test spark-test

all: build

deps:
	@scripts/install-deps.sh build

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

# Installs the release binary and the systemd unit of the live sensor (s2scope-live@IFACE.service),
# the logrotate example beside the documentation, and the key-log shim (install-keylog-shim, below).
# Starts nothing. PREFIX and DESTDIR as usual:
#   make install                          # /usr/local/bin, /usr/local/lib/systemd/system
#   make install PREFIX=/usr DESTDIR=pkg  # staged, for a package
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
UNITDIR ?= $(PREFIX)/lib/systemd/system
DOCDIR ?= $(PREFIX)/share/doc/s2scope
install: release
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(DOCDIR)
	install -m 0755 .build/release/s2scope $(DESTDIR)$(BINDIR)/s2scope
	sed 's|/usr/local/bin/s2scope|$(BINDIR)/s2scope|g' packaging/systemd/s2scope-live@.service > $(DESTDIR)$(UNITDIR)/s2scope-live@.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/s2scope-live@.service
	install -m 0644 packaging/logrotate/s2scope-live $(DESTDIR)$(DOCDIR)/logrotate-s2scope-live
	@echo "installed $(DESTDIR)$(BINDIR)/s2scope and $(DESTDIR)$(UNITDIR)/s2scope-live@.service; nothing was started."
	@echo "To run the sensor on eth0: systemctl daemon-reload && systemctl enable --now s2scope-live@eth0.service"
	@echo "Log rotation: cp $(DOCDIR)/logrotate-s2scope-live /etc/logrotate.d/s2scope-live"

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/s2scope $(DESTDIR)$(UNITDIR)/s2scope-live@.service $(DESTDIR)$(DOCDIR)/logrotate-s2scope-live \
		$(DESTDIR)$(PREFIX)/lib/s2scope/libs2scope-keylog.so
	-rmdir $(DESTDIR)$(DOCDIR) $(DESTDIR)$(PREFIX)/lib/s2scope 2>/dev/null

# Builds the analyzer and runs it on a capture of two real Prosody servers federating with dialback.
demo: release
	@test -f $(DEMO) || DEMO=fixtures/reassembly/in-order.pcap
	.build/release/s2scope analyze $(DEMO) || test $$? -eq 1
	@echo
	@echo "JSON (first lines):"
	.build/release/s2scope analyze --format json $(DEMO) | head -40 || true

# The whole test suite: unit, property, rule-example, fixture, golden and CLI tests.
test:
	@scripts/install-deps.sh test
	$(SWIFT) build --build-tests
	@mkdir -p .build
	set -o pipefail; $(SWIFT) test --disable-xctest 2>&1 | tee .build/test.log

# The Spark job (spark/, docs/FACTS.md) in local mode against `s2scope analyze` on every lab capture
# split per host: Java from Debian (install-deps.sh test), pyspark from PyPI into a venv beside the build.
SPARK_VENV ?= .build-spark-venv
spark-test:
	@scripts/install-deps.sh test
	$(SWIFT) build
	test -x $(SPARK_VENV)/bin/python || python3 -m venv $(SPARK_VENV)
	$(SPARK_VENV)/bin/pip install -q -r spark/requirements.txt
	S2SCOPE=$(CURDIR)/.build/debug/s2scope $(SPARK_VENV)/bin/python spark/test_spark.py

# Regenerates the synthetic decode/reassembly fixtures (byte-identical on every run).
fixtures:
	python3 scripts/make-fixtures.py

# Re-runs the real-server lab (root; network namespaces) into fixtures/lab.
lab:
	@scripts/install-deps.sh lab
	scripts/lab/run-lab.sh fixtures/lab

# Re-runs the lab into a temporary folder and checks fresh captures against the ground truth.
lab-test: build
	@scripts/install-deps.sh lab
	scripts/lab/lab-test.sh

# Real Prosody and ejabberd with STARTTLS required under the key-log shim (dialback inside TLS,
# SASL EXTERNAL; TLS 1.3 and 1.2), captured offline and by `s2scope live --keylog`, into fixtures/tls.
tls-lab: build keylog-shim
	@scripts/install-deps.sh lab
	scripts/lab/tls-servers.sh fixtures/tls

# The same into a temporary folder, with every capture analysed against its truth (run by .ci/run).
tls-lab-test: build keylog-shim
	@scripts/install-deps.sh lab
	scripts/lab/tls-lab-test.sh

# libFuzzer targets of the Fuzz/ package (decode, reassembly, xmpp, pipeline), FUZZ_SECONDS each
# (default 600); FUZZ_TARGETS picks some. Crashes land in Fuzz/.work/artifacts/<target>/.
FUZZ_SECONDS ?= 600
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh $(FUZZ_TARGETS)

# The whole test suite under AddressSanitizer, then under ThreadSanitizer, each in its own build
# folder. Suppressed leaks are not S2Scope's: objects kept until exit by libXCTest and Foundation's
# Process, ArgumentParser's error path in the (sanitized) s2scope children, and the 4 KiB blocks that
# FoundationEssentials' readBytesFromFile allocates and never frees when the tests read a child's
# output with FileManager.contents(atPath:) (135 reports, 5.4 MB in the whole suite; nothing of ours
# on the stack but that call). Named by that function, not by the library, so that a leak of ours
# which passes through Foundation still fails the run.
sanitize:
	@scripts/install-deps.sh test
	mkdir -p .build-asan
	printf 'leak:libXCTest.so\nleak:libFoundation.so\nleak:FoundationEssentials17readBytesFromFile\nleak:ArgumentParser\n' > .build-asan/lsan-suppressions.txt
	SWIFT_BACKTRACE=enable=no LSAN_OPTIONS=suppressions=$(CURDIR)/.build-asan/lsan-suppressions.txt \
		$(SWIFT) test --sanitize=address --scratch-path .build-asan
	SWIFT_BACKTRACE=enable=no $(SWIFT) test --sanitize=thread --scratch-path .build-tsan

# The parsing threads' stress test alone under ThreadSanitizer (issue #17; run by .ci/run): 8 and 16
# workers on rounds of one byte or one step over every capture of fixtures/, offline and driven as
# live drives the engine (Tests/S2EngineTests/ParallelStressTests.swift), and the memory budget decided
# with rounds in flight (ParallelTests.sameEvictionsUnderAMemoryBudget). The first race report stops
# it and fails it, even where the reports still came out identical. 4.5 min from cold on 2 cores (234 s build, 36 s tests).
tsan-stress:
	@scripts/install-deps.sh test
	mkdir -p .build-tsan
	set -o pipefail; SWIFT_BACKTRACE=enable=no TSAN_OPTIONS=halt_on_error=1 $(SWIFT) test --sanitize=thread --scratch-path .build-tsan \
		--disable-xctest --filter 'ParallelStress|sameEvictionsUnderAMemoryBudget' 2>&1 | tee .build-tsan/tsan-stress.log
	! grep -q "WARNING: ThreadSanitizer" .build-tsan/tsan-stress.log

# s2scope (--threads 1, 2, 4) against the C yardstick of issue #17 (../shared/perf/ceiling, every
# s2scope figure as a ratio to it in the same run), a libpcap read loop and tshark on generated s2s
# captures (100M and 1G by default); allocations and instructions per MB (package-benchmark suite in
# Benchmarks/, valgrind); peak RSS against the budget; identical reports for every thread count on the
# bench captures and fixtures/, verdicts against the generator's truth; `live` on a veth pair (root).
# Writes docs/BENCH.md. Quick check: make bench BENCH_SIZES=10M BENCH_RUNS=1 BENCH_MD= (all the
# BENCH_* variables: scripts/bench.sh).
bench:
	scripts/bench.sh

# The hostile-state corpus (repeated IQ ids, 100,000s of piggybacked requests, header-only connections,
# stream-id reuse, …) at N and 2N under callgrind: doubling an input must at most double the work
# (×2.5 allowed). Instruction counts, not times: repeatable on a shared VM. Builds s2scope in release
# (.build-bench, as `make bench`; S2SCOPE=… for another build); CI runs it after the tests.
hostile-scaling:
	scripts/hostile-scaling.sh

# The key-log shim for OpenSSL-based servers (Prosody, ejabberd): an LD_PRELOAD library that
# appends the NSS key log of every TLS session to $$SSLKEYLOGFILE (tools/keylog-shim, README
# "Keys from real servers"). Needs only a C compiler; no OpenSSL headers.
CC ?= cc
PREFIX ?= /usr/local
KEYLOG_SHIM := .build/keylog-shim/libs2scope-keylog.so
keylog-shim: $(KEYLOG_SHIM)
$(KEYLOG_SHIM): tools/keylog-shim/s2scope-keylog.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -O2 -g -Wall -Wextra -Werror -fPIC -shared -fvisibility=hidden \
		-Wl,-z,relro,-z,now -o $@ $< -ldl -lpthread

install-keylog-shim: $(KEYLOG_SHIM)
	install -d $(DESTDIR)$(PREFIX)/lib/s2scope
	install -m 0644 $(KEYLOG_SHIM) $(DESTDIR)$(PREFIX)/lib/s2scope/libs2scope-keylog.so

install: install-keylog-shim

clean:
	rm -rf .build
