# jitsi-prosody-security: build, test and demo.
#   make build  -> build/lua/jitsi_security.so (Lua 5.4 C module)
#   make test   -> installs what is missing, builds, runs every test
#   make demo   -> a local Prosody with the plugins and a ready token

SHELL := /bin/bash
CARGO ?= cargo
SO := build/lua/jitsi_security.so

.PHONY: all build deps deps-apt deps-npm test test-rust test-lua test-e2e lint demo bench deb clean

all: build

build: $(SO)

$(SO): Cargo.toml $(wildcard src/*.rs src/*/*.rs)
	$(CARGO) build --release --locked
	mkdir -p build/lua
	cp target/release/libjitsi_security.so $(SO)

deps: deps-apt deps-npm

deps-apt:
	@./.ci/install-deps

deps-npm:
	cd tests/e2e && (npm ci --no-audit --no-fund --loglevel=error || npm install --no-audit --no-fund --loglevel=error)

test: deps build test-rust test-lua lint test-e2e
	@echo "make test: all suites passed"

test-rust:
	$(CARGO) test --locked --no-default-features --features vendored

test-lua: $(SO)
	LUA_CPATH="$(CURDIR)/build/lua/?.so;;" lua5.4 tests/lua/exports_test.lua

lint:
	luacheck --no-color -q lua tests/prosody tests/lua

test-e2e: $(SO)
	cd tests/e2e && node --experimental-websocket --test --test-concurrency=1 *.test.js

demo: deps-apt build
	./examples/demo.sh

clean:
	rm -rf build target tests/e2e/node_modules

bench:
	$(CARGO) run --release --locked --no-default-features --features vendored --example bench
