# jitsi-prosody-security: build, test and demo.
#   make build  -> build/lua/jitsi_security.so (Lua 5.4 C module)
#   make test   -> installs what is missing, builds, runs every test
#   make demo   -> a local Prosody with the plugins and a ready token
#   make deb    -> target/debian/jitsi-prosody-security_<version>_<host arch>.deb
#   make deb-arm64 -> the same package cross-built for arm64
#   make test-install -> (root) installs, runs, upgrades and removes that .deb
#   make fuzz   -> each fuzz target for FUZZ_SECONDS (60) s; not part of make test

SHELL := /bin/bash
CARGO ?= cargo
SO := build/lua/jitsi_security.so

.PHONY: all build deps deps-apt deps-npm deps-synapse test test-rust test-lua test-e2e test-e2e-13 lint demo bench deb test-install fuzz clean

all: build

build: $(SO)

$(SO): Cargo.toml $(wildcard src/*.rs src/*/*.rs src/*/*/*.rs)
	$(CARGO) build --release --locked
	mkdir -p build/lua
	# Copy then rename: a Prosody running the old .so keeps its (unlinked) file.
	cp target/release/libjitsi_security.so $(SO).tmp && mv -f $(SO).tmp $(SO)

deps: deps-apt deps-npm deps-synapse

deps-apt:
	@./.ci/install-deps

deps-npm:
	cd tests/e2e && (npm ci --no-audit --no-fund --loglevel=error || npm install --no-audit --no-fund --loglevel=error)

# A real Synapse in build/synapse-venv for the direct-homeserver e2e tests (cached).
deps-synapse:
	./tests/synapse/install.sh

test: deps build test-rust test-lua lint test-e2e test-e2e-13
	@echo "make test: all suites passed"

test-rust:
	$(CARGO) test --locked --no-default-features --features vendored

test-lua: $(SO)
	LUA_CPATH="$(CURDIR)/build/lua/?.so;;" lua5.4 tests/lua/exports_test.lua

lint:
	luacheck --no-color -q lua tests/prosody tests/lua

# The e2e suite, then the Prosody logs it saved must be clean
# (tests/e2e/check_logs.js; checked even when a test failed).
# $(call E2E_SUITE,<log dir>,<extra environment>)
E2E_SUITE = rm -rf $(1); \
	(cd tests/e2e && E2E_LOG_DIR=$(CURDIR)/$(1) $(2) node --experimental-websocket --test --test-concurrency=1 *.test.js); \
	rc=$$?; node tests/e2e/check_logs.js $(1) || rc=1; exit $$rc

test-e2e: $(SO)
	$(call E2E_SUITE,build/e2e-logs/system,)

# The same suite on Prosody 13 (Debian bookworm-backports, unpacked in build/).
build/prosody13/prosody: .ci/fetch-prosody13
	./.ci/fetch-prosody13 >/dev/null
	touch $@

test-e2e-13: $(SO) build/prosody13/prosody
	$(call E2E_SUITE,build/e2e-logs/13,PROSODY_BIN=$(CURDIR)/build/prosody13/prosody)

# The Debian package (cargo-deb, installed on first use); docs/packaging.md.
# The .so is built here with the default `module` feature, whatever else last
# used target/release. --multiarch=same puts it under
# usr/lib/<Debian multiarch tuple of the Rust target>/lua/5.4/ (Lua 5.4's
# default cpath there), so no triplet is written anywhere.
# DEB_VERSION=<version> overrides the package version, DEB_DIR the output dir.
DEB_DIR ?= target/debian
DEB_VERSION ?=
DEB_ARGS = --no-build --multiarch=same --output $(DEB_DIR)/ $(if $(DEB_VERSION),--deb-version $(DEB_VERSION))
CARGO_DEB_VERSION := ^3.8
define NEED_CARGO_DEB
@$(CARGO) deb --version >/dev/null 2>&1 || { echo "make deb: installing cargo-deb (once, a few minutes)"; $(CARGO) install cargo-deb --locked --version "$(CARGO_DEB_VERSION)"; }
endef

.PHONY: deb-arm64
deb:
	$(NEED_CARGO_DEB)
	$(CARGO) build --release --locked
	@mkdir -p $(DEB_DIR)
	@deb="$$($(CARGO) deb $(DEB_ARGS))" && \
	  ls -l "$$deb" && echo "make deb: $$deb"

# The same package for arm64 (Debian's arm64 Jitsi hosts), cross-built with
# the Rust target aarch64-unknown-linux-gnu and Debian's gcc-aarch64-linux-gnu
# (both installed on first use: rustup, apt).
ARM64_TARGET := aarch64-unknown-linux-gnu
ARM64_GCC := aarch64-linux-gnu-gcc
deb-arm64:
	$(NEED_CARGO_DEB)
	@rustup target list --installed 2>/dev/null | grep -qx $(ARM64_TARGET) || { echo "make deb-arm64: rustup target add $(ARM64_TARGET)"; rustup target add $(ARM64_TARGET); }
	@command -v $(ARM64_GCC) >/dev/null 2>&1 || { SUDO=""; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; \
	  echo "make deb-arm64: installing gcc-aarch64-linux-gnu libc6-dev-arm64-cross"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq gcc-aarch64-linux-gnu libc6-dev-arm64-cross >/dev/null; }
	CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=$(ARM64_GCC) CC_aarch64_unknown_linux_gnu=$(ARM64_GCC) \
	  $(CARGO) build --release --locked --target $(ARM64_TARGET)
	@mkdir -p $(DEB_DIR)
	@deb="$$($(CARGO) deb --target $(ARM64_TARGET) $(DEB_ARGS))" && \
	  ls -l "$$deb" && echo "make deb-arm64: $$deb"

# As root: writes a jitsi-meet-shaped /etc/prosody/conf.avail/<domain>.cfg.lua,
# runs lintian on the .deb, installs it, logs in with standard and Matrix
# tokens on the system Prosody (0.12) and on Prosody 13, upgrades it (a
# running Prosody service is restarted), removes and purges it, and checks
# that /etc/prosody is untouched throughout (tests/install/run.sh). /etc/prosody
# and the service are put back as they were at the end.
test-install: deps-apt deps-npm build/prosody13/prosody
	@./.ci/install-deps --install-test
	./tests/install/run.sh

demo: deps-apt build
	./examples/demo.sh

clean:
	rm -rf build target tests/e2e/node_modules

# bench: every section of BENCHMARKS.md from one run (tests/bench/run.sh:
# the Rust micro-benchmarks, the Lua API against Lua on lua-luaossl/
# lua-cjson/lua-basexx, callgrind instructions per login, the Matrix login
# burst on a real Prosody, the room state read on a real Synapse).
BENCH_LUA_PKGS := lua-luaossl lua-cjson lua-basexx
bench: $(SO)
	@dpkg-query -W -f '$${Status}\n' $(BENCH_LUA_PKGS) valgrind 2>/dev/null | grep -c 'install ok installed' | grep -qx 4 || { \
	  SUDO=""; [ "$$(id -u)" -eq 0 ] || SUDO=sudo; echo "make bench: installing $(BENCH_LUA_PKGS) valgrind"; \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(BENCH_LUA_PKGS) valgrind >/dev/null || { \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(BENCH_LUA_PKGS) valgrind >/dev/null; }; }
	@test -d tests/e2e/node_modules/@xmpp/client || $(MAKE) deps-npm
	./tests/bench/run.sh

FUZZ_SECONDS ?= 60
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) ./fuzz/run.sh

# Soak (not part of make test): one Prosody, SOAK_CYCLES (10000) mixed login
# cycles, SOAK_CONCURRENCY (20) at a time, at most SOAK_SECONDS (600);
# prints RSS, fds, threads, outcomes and cycles/s (tests/soak/soak.mjs).
.PHONY: soak
soak: $(SO)
	@test -d tests/e2e/node_modules || $(MAKE) deps-npm
	node --experimental-websocket tests/soak/soak.mjs
