#!/usr/bin/env bash
# Make a Docker engine reachable on this machine (Debian 12, root, no registry).
#
#   scripts/engine.sh start    install docker.io & friends if missing, start dockerd
#   scripts/engine.sh stop     SIGTERM the dockerd we know of (pidfile) and wait for it
#   scripts/engine.sh status   exit 0 if `docker info` answers
#   scripts/engine.sh packages only install the Debian packages that are missing
#   scripts/engine.sh build-tools  only the C compiler and Python headers that
#                              `pip install` needs to build pylog._speedups (make venv)
#
# Idempotent: `start` does nothing when `docker info` already answers.
# Environment: DOCKER (client, default `docker`), PYLOG_DOCKERD_LOG (daemon log),
# PYLOG_DOCKERD_DATA_ROOT, PYLOG_DOCKERD_PIDFILE, PYLOG_ENGINE_TIMEOUT (seconds),
# PYLOG_DOCKERD_ARGS (extra dockerd flags, split on spaces, e.g. `--live-restore` or
# `--config-file /tmp/daemon.json`; the e2e tests that reconfigure the engine use it and
# start it again without it afterwards).
set -euo pipefail

DOCKER=${DOCKER:-docker}
PIDFILE=${PYLOG_DOCKERD_PIDFILE:-/var/run/docker.pid}
DATA_ROOT=${PYLOG_DOCKERD_DATA_ROOT:-/var/lib/docker-test}
LOG=${PYLOG_DOCKERD_LOG:-/var/log/pylog-dockerd.log}
TIMEOUT=${PYLOG_ENGINE_TIMEOUT:-60}
read -r -a EXTRA_ARGS <<<"${PYLOG_DOCKERD_ARGS:-}"
# docker-compose (v1): tests/e2e/test_e2e_compose.py runs the README's compose example.
# prometheus: its promtool checks ops/prometheus's alert rules and the dashboard's
# queries; prometheus-node-exporter: the README's textfile scrape of `pylog metrics`
# (both in tests/unit/test_ops_kit.py). Their servers are not started (see below).
APT_PACKAGES=(docker.io debootstrap busybox-static docker-registry docker-compose prometheus
    prometheus-node-exporter)
# pylog._speedups (plugin/pylog/_speedups.c) is compiled by pip on the host, for the
# venv and for the wheel installed in the plugin's rootfs (rootfs-build/build.sh).
BUILD_PACKAGES=(gcc libc6-dev python3-dev)

log() { printf '[engine] %s\n' "$*" >&2; }

reachable() { "$DOCKER" info >/dev/null 2>&1; }

pid_alive() { [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null; }

daemon_pid() {
    local pid=""
    [[ -s "$PIDFILE" ]] && pid=$(cat "$PIDFILE" 2>/dev/null || true)
    if pid_alive "$pid"; then echo "$pid"; return 0; fi
    # A dockerd may run with another pidfile: find it by exact process name.
    pid=$(pgrep -x dockerd | head -n1 || true)
    if pid_alive "$pid"; then echo "$pid"; return 0; fi
    return 1
}

missing_packages() {
    local pkg missing=()
    for pkg in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$pkg")
        fi
    done
    echo "${missing[@]:-}"
}

install_packages() {
    local missing
    missing=$(missing_packages "$@")
    if [[ -z "${missing// /}" ]]; then
        return 0
    fi
    log "installing: $missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # Packages with a service (prometheus, node-exporter, docker-registry) would start it from their
    # init script where no policy-rc.d forbids it; the tests start what they need.
    local policy=/usr/sbin/policy-rc.d made_policy=""
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && made_policy=1
    fi
    local rc=0
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $missing || rc=$?
    if [[ -n $made_policy ]]; then rm -f "$policy"; fi
    return "$rc"
}

# The docker client to talk to the daemon. The machine's /usr/local/bin/docker (28.x)
# negotiates API 1.41 with the 20.10 daemon; fall back to Debian's client if no docker
# client is on PATH at all (fresh machine without the 28.x client).
ensure_client() {
    if ! command -v "$DOCKER" >/dev/null 2>&1; then
        if [[ -x /usr/bin/docker ]]; then DOCKER=/usr/bin/docker; fi
    fi
}

tail_log() {
    log "---- last lines of $LOG ----"
    tail -n 40 "$LOG" >&2 2>/dev/null || true
    log "----"
}

start() {
    ensure_client
    if reachable; then
        log "Docker engine already reachable"
        return 0
    fi
    install_packages "${APT_PACKAGES[@]}"
    ensure_client

    local pid
    if pid=$(daemon_pid); then
        log "dockerd (pid $pid) is running but not answering yet; waiting"
    else
        [[ -e "$PIDFILE" ]] && { log "removing stale $PIDFILE"; rm -f "$PIDFILE"; }
        mkdir -p "$(dirname "$LOG")"
        log "starting dockerd${EXTRA_ARGS[*]:+ ${EXTRA_ARGS[*]}} (log: $LOG)"
        # setsid + nohup: the daemon must outlive this script and make's shell.
        # It must not inherit descriptors either: one holding a lock (say, of a
        # `flock` around a test run that restarts the engine) would hold it for
        # as long as dockerd runs.
        (
            for fd in /proc/self/fd/*; do
                fd=${fd##*/}
                if ((fd > 2)); then eval "exec $fd>&-" 2>/dev/null || true; fi
            done
            exec setsid nohup dockerd \
                --iptables=false --ip-forward=false --bridge=none \
                --storage-driver=vfs --data-root "$DATA_ROOT" \
                --pidfile "$PIDFILE" ${EXTRA_ARGS[@]+"${EXTRA_ARGS[@]}"} \
                </dev/null >>"$LOG" 2>&1
        ) &
        pid=$!
        disown "$pid" 2>/dev/null || true
    fi

    local deadline=$((SECONDS + TIMEOUT))
    until reachable; do
        if ! pid_alive "$pid"; then
            log "ERROR: dockerd exited before answering"
            tail_log
            return 1
        fi
        if ((SECONDS >= deadline)); then
            log "ERROR: dockerd did not answer \`docker info\` within ${TIMEOUT}s"
            tail_log
            return 1
        fi
        sleep 0.5
    done
    log "Docker engine is up ($("$DOCKER" version --format '{{.Server.Version}} API {{.Server.APIVersion}}' 2>/dev/null || echo '?'))"
}

stop() {
    local pid
    if ! pid=$(daemon_pid); then
        log "no dockerd running"
        return 0
    fi
    log "stopping dockerd (pid $pid)"
    kill -TERM "$pid"
    local deadline=$((SECONDS + TIMEOUT))
    while pid_alive "$pid"; do
        if ((SECONDS >= deadline)); then
            log "ERROR: dockerd (pid $pid) still alive after ${TIMEOUT}s"
            return 1
        fi
        sleep 0.5
    done
    log "dockerd stopped"
}

status() {
    ensure_client
    if reachable; then
        "$DOCKER" version --format 'engine: {{.Server.Version}} (API {{.Server.APIVersion}}), client {{.Client.Version}}'
        return 0
    fi
    echo "engine: not reachable"
    return 1
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
packages) install_packages "${APT_PACKAGES[@]}" "${BUILD_PACKAGES[@]}" ;;
build-tools) install_packages "${BUILD_PACKAGES[@]}" ;;
*)
    echo "usage: $0 start|stop|status|packages|build-tools" >&2
    exit 2
    ;;
esac
