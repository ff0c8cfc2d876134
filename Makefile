# S2Scope — the two quick-start commands are `make demo` and `make test`.
SWIFT ?= swift
DEMO ?= fixtures/lab/prosody-prosody.pcap

.PHONY: all deps build release demo test fixtures lab lab-test bench fuzz clean

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
	$(SWIFT) test

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

clean:
	rm -rf .build
