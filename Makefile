# pylog: Docker logging-driver managed plugin.
#
#   make test      venv + lint + unit, Kafka and e2e tests (the one "run every test" command)
#   make demo      engine + plugin installed + a container logging through pylog
#   make install   (re)build the rootfs and (re)install the managed plugin `pylog`
#
# Needs root on a Debian 12 machine: the engine and the rootfs build use apt,
# dockerd, debootstrap and chroot. DOCKER selects the client (default `docker`;
# the 28.x client negotiates API 1.41 with Debian's 20.10 daemon).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

DOCKER ?= docker
PYTHON ?= python3
VENV := .venv
VBIN := $(VENV)/bin
PLUGIN := pylog
PLUGIN_DIR := rootfs-build/out/plugin
STATE_DIR := /var/lib/pylog
TEST_IMAGE := pylog-test/busybox:latest
REGISTRY ?= 127.0.0.1:5000
TAG ?= latest
PYTEST_ARGS ?=
# Suites that use no hypothesis skip its pytest plugin: it imports hypothesis lazily
# at the end of the session, and on CPython 3.11 an import (AST build) racing another
# thread's import can fail with "SystemError: AST constructor recursion depth
# mismatch" (cpython gh-106905) -- seen once after tests/kafka, in a fresh venv.
NO_HYPOTHESIS := -p no:hypothesispytest
export DOCKER

.PHONY: help venv proto packages engine engine-stop busybox-image rootfs install uninstall push demo \
	lint test-unit test-kafka test-e2e test bench bench-deps bench-quick bench-kafka

help:
	@echo "targets: venv proto packages engine engine-stop busybox-image rootfs install uninstall push"
	@echo "         demo lint test-unit test-kafka test-e2e test bench bench-quick"

# ------------------------------------------------------------------ python env
venv: $(VENV)/.installed

# setup.py: pip compiles pylog._speedups (a C compiler and Python's headers).
$(VENV)/.installed: pyproject.toml setup.py
	scripts/engine.sh build-tools
	test -x $(VBIN)/python || $(PYTHON) -m venv $(VENV)
	$(VBIN)/python -m pip install -q --upgrade pip
	$(VBIN)/python -m pip install -q -e '.[dev]'
	touch $@

proto: venv
	PATH="$(CURDIR)/$(VBIN):$$PATH" $(VBIN)/python -m grpc_tools.protoc -Iproto \
		--python_out=plugin/pylog/wire --mypy_out=plugin/pylog/wire proto/entry.proto

# ------------------------------------------------------------------ engine & plugin
# The Debian packages the tests use (scripts/engine.sh): the engine's, docker-compose,
# and promtool and node-exporter for the dashboard and alert rules in ops/.
packages:
	scripts/engine.sh packages

engine:
	scripts/engine.sh start

engine-stop:
	scripts/engine.sh stop

busybox-image: engine
	scripts/busybox-image.sh

# venv: the pylog wheel (with its compiled part) is built on the host by the venv's pip.
rootfs: venv
	scripts/engine.sh packages
	@t0=$$EPOCHREALTIME; rootfs-build/build.sh; \
		awk -v a=$$t0 -v b=$$EPOCHREALTIME 'BEGIN {printf "[rootfs] built in %.1f s\n", b - a}'

# dockerd refuses to enable the plugin when a bind-mount source is missing
# ("error mounting /var/lib/pylog ... no such file or directory"): create it first.
# --timeout 0: the plugin's HTTP client then has no timeout. With the default (30 s)
# the timeout also covers ReadLogs bodies and `docker logs -f` is cut after 30 s.
install: engine rootfs
	mkdir -p $(STATE_DIR)
	@if $(DOCKER) plugin inspect $(PLUGIN) >/dev/null 2>&1; then \
		echo "[install] removing the installed $(PLUGIN) (disable -f, rm -f)"; \
		t0=$$EPOCHREALTIME; \
		$(DOCKER) plugin disable -f $(PLUGIN) >/dev/null 2>&1 || true; \
		$(DOCKER) plugin rm -f $(PLUGIN) >/dev/null; \
		awk -v a=$$t0 -v b=$$EPOCHREALTIME 'BEGIN {printf "[install] removed in %.1f s\n", b - a}'; \
	fi
	@echo "[install] docker plugin create $(PLUGIN) $(PLUGIN_DIR) (imports the rootfs)"
	@t0=$$EPOCHREALTIME; $(DOCKER) plugin create $(PLUGIN) $(PLUGIN_DIR) >/dev/null; \
		awk -v a=$$t0 -v b=$$EPOCHREALTIME 'BEGIN {printf "[install] created in %.1f s\n", b - a}'
	@echo "[install] docker plugin enable --timeout 0 $(PLUGIN) (starts it, waits for its socket)"
	@t0=$$EPOCHREALTIME; $(DOCKER) plugin enable --timeout 0 $(PLUGIN) >/dev/null; \
		awk -v a=$$t0 -v b=$$EPOCHREALTIME 'BEGIN {printf "[install] enabled in %.1f s\n", b - a}'
	$(DOCKER) plugin ls

# Push the plugin to a registry, for `docker plugin install REGISTRY/pylog:TAG` on any
# host. A plugin is pushed under its own name, so it is created from the same rootfs as
# `make install` under REGISTRY/pylog:TAG, pushed, then removed locally (`pylog` stays).
# 127.0.0.0/8 registries may speak plain HTTP to dockerd; others need TLS.
push: engine rootfs
	@name=$(REGISTRY)/$(PLUGIN):$(TAG); \
	if $(DOCKER) plugin inspect $$name >/dev/null 2>&1; then $(DOCKER) plugin rm -f $$name >/dev/null; fi; \
	echo "[push] docker plugin create $$name $(PLUGIN_DIR)"; \
	$(DOCKER) plugin create $$name $(PLUGIN_DIR) >/dev/null; \
	rc=0; $(DOCKER) plugin push $$name || rc=$$?; \
	$(DOCKER) plugin rm -f $$name >/dev/null; \
	exit $$rc

uninstall:
	if $(DOCKER) plugin inspect $(PLUGIN) >/dev/null 2>&1; then \
		$(DOCKER) plugin disable -f $(PLUGIN) >/dev/null 2>&1 || true; \
		$(DOCKER) plugin rm -f $(PLUGIN); \
	fi

demo: install busybox-image
	@cid=$$($(DOCKER) run -d --network none --log-driver $(PLUGIN) $(TEST_IMAGE) sh -c \
		'for i in 1 2 3; do echo "hello from pylog, line $$i"; sleep 0.2; done; echo "and one line on stderr" >&2'); \
	$(DOCKER) wait $$cid >/dev/null; \
	echo "--- docker logs --timestamps $$cid"; \
	$(DOCKER) logs --timestamps $$cid; \
	$(DOCKER) rm $$cid >/dev/null

# ------------------------------------------------------------------ checks
lint: venv
	$(VBIN)/ruff check .
	$(VBIN)/ruff format --check .
	$(VBIN)/mypy

test-unit: venv
	$(VBIN)/pytest tests/unit $(PYTEST_ARGS)

# A real Kafka broker (jars fetched from Maven Central by scripts/kafka/fetch.sh, run on
# the machine's java); no Docker needed.
test-kafka: venv
	$(VBIN)/pytest $(NO_HYPOTHESIS) tests/kafka $(PYTEST_ARGS)

# install has just run: the e2e fixtures need not install again.
test-e2e: venv engine busybox-image install
	PYLOG_E2E_SKIP_INSTALL=1 $(VBIN)/pytest $(NO_HYPOTHESIS) tests/e2e -m e2e $(PYTEST_ARGS)

# packages first: the unit tests run promtool (ops/), skipped where it is missing.
test: venv packages lint test-unit test-kafka test-e2e

# ------------------------------------------------------------------ benchmark
# Not a test: every workload through none, json-file, local, pylog and pylog+kafka
# on the real engine (docs/performance.md). The engine is shared: hold its lock,
#   flock /tmp/pylog-e2e.lock make bench            (~20 min, plus a few for ceiling and readback)
#   flock /tmp/pylog-e2e.lock make bench-quick      (smoke run, a few minutes)
# BENCH_ARGS passes options (--workloads, --rounds, --drivers, --out DIR).
BENCH_ARGS ?=
BENCH := PYTHONPATH=scripts $(VBIN)/python -m bench

bench-deps: $(VENV)/.bench-installed

$(VENV)/.bench-installed: $(VENV)/.installed
	$(VBIN)/python -m pip install -q -e '.[dev,bench]'
	touch $@

bench: venv bench-deps engine busybox-image install
	$(BENCH) $(BENCH_ARGS)

bench-quick: venv bench-deps engine busybox-image install
	$(BENCH) --quick $(BENCH_ARGS)

# The Kafka figures only, with the ceiling (Kafka's own ProducerPerformance).
bench-kafka: venv bench-deps engine busybox-image install
	$(BENCH) --workloads 1m,10c,ceiling,paced --drivers json-file,pylog,pylog+kafka $(BENCH_ARGS)
