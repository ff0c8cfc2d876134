# S2Scope — the two quick-start commands are `make demo` and `make test`.
SHELL := /bin/bash
SWIFT ?= swift
DEMO ?= fixtures/lab/prosody-prosody.pcap

.PHONY: all deps build release demo test fixtures lab lab-test bench fuzz sanitize clean

all: build

deps:
	@scripts/install-deps.sh build

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

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

# libFuzzer targets of the Fuzz/ package (decode, reassembly, xmpp, pipeline), FUZZ_SECONDS each
# (default 600); FUZZ_TARGETS picks some. Crashes land in Fuzz/.work/artifacts/<target>/.
FUZZ_SECONDS ?= 600
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh $(FUZZ_TARGETS)

# The whole test suite under AddressSanitizer, then under ThreadSanitizer, each in its own build
# folder. Suppressed leaks are not S2Scope's: objects kept until exit by libXCTest, Foundation's
# Process and FileManager, and ArgumentParser's error path in the (sanitized) s2scope children.
sanitize:
	@scripts/install-deps.sh test
	mkdir -p .build-asan
	printf 'leak:libXCTest.so\nleak:libFoundation.so\nleak:libFoundationEssentials.so\nleak:ArgumentParser\n' > .build-asan/lsan-suppressions.txt
	SWIFT_BACKTRACE=enable=no LSAN_OPTIONS=suppressions=$(CURDIR)/.build-asan/lsan-suppressions.txt \
		$(SWIFT) test --sanitize=address --scratch-path .build-asan
	SWIFT_BACKTRACE=enable=no $(SWIFT) test --sanitize=thread --scratch-path .build-tsan

# s2scope (--threads 1, 2, 4) against the C yardstick of issue #17 (../shared/perf/ceiling, every
# s2scope figure as a ratio to it in the same run), a libpcap read loop and tshark on generated s2s
# captures (100M and 1G by default); allocations and instructions per MB (package-benchmark suite in
# Benchmarks/, valgrind); peak RSS against the budget; identical reports for every thread count on the
# bench captures and fixtures/, verdicts against the generator's truth; `live` on a veth pair (root).
# Writes docs/BENCH.md. Quick check: make bench BENCH_SIZES=10M BENCH_RUNS=1 BENCH_MD= (all the
# BENCH_* variables: scripts/bench.sh).
bench:
	scripts/bench.sh

clean:
	rm -rf .build
