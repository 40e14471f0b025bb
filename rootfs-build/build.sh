#!/usr/bin/env bash
# Build the managed-plugin directory rootfs-build/out/plugin/{config.json,rootfs/}
# from Debian (debootstrap) and PyPI only.
#
# The expensive part -- debootstrap, the venv at /opt/pylog and the third-party
# dependencies -- is cached in rootfs-build/cache/base-<key>/, keyed by a hash of
# pyproject.toml's dependencies and build requirements (plus this recipe's version).
# The pylog package itself is always installed fresh from the checkout, offline, as a
# wheel built on the host (its C part, pylog._speedups, needs a compiler the rootfs does
# not have) by the project's venv (PYLOG_WHEEL_PYTHON, default .venv/bin/python; its
# Python must be the rootfs's, bookworm's 3.11), so a code change rebuilds in seconds.
#
# Environment: DEBIAN_MIRROR (default: the host's apt mirror or deb.debian.org),
# DEBIAN_SUITE (bookworm), PYLOG_ROOTFS_REBUILD=1 (ignore the cache).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
CACHE="$HERE/cache"
OUT="$HERE/out/plugin"
SUITE=${DEBIAN_SUITE:-bookworm}
INCLUDE=python3,python3-venv,ca-certificates
# Bump when the base recipe below changes in a way the key does not capture.
RECIPE_VERSION=1
VENV=/opt/pylog

START=$SECONDS
log() { printf '[rootfs %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}

[[ $EUID -eq 0 ]] || die "must run as root (debootstrap, chroot)"
command -v debootstrap >/dev/null || die "debootstrap missing (scripts/engine.sh start installs it)"
command -v python3 >/dev/null || die "host python3 missing"

# ---------------------------------------------------------------- cache key
# The third-party part of the rootfs depends only on these pyproject fields.
deps_json=$(
    python3 - "$REPO/pyproject.toml" <<'EOF'
import json, sys, tomllib
with open(sys.argv[1], "rb") as f:
    d = tomllib.load(f)
print(json.dumps({
    "dependencies": d["project"].get("dependencies", []),
    "requires-python": d["project"].get("requires-python", ""),
    "build-requires": d.get("build-system", {}).get("requires", []),
}, sort_keys=True))
EOF
)
key=$(printf '%s\n' "$RECIPE_VERSION" "$SUITE" "$INCLUDE" "$deps_json" | sha256sum | cut -c1-16)
BASE="$CACHE/base-$key"

mirror() {
    if [[ -n "${DEBIAN_MIRROR:-}" ]]; then
        echo "$DEBIAN_MIRROR"
        return
    fi
    local m=""
    if [[ -r /etc/apt/sources.list.d/debian.sources ]]; then
        m=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
    fi
    echo "${m:-http://deb.debian.org/debian}"
}

# Run a command inside a rootfs with a clean environment. PyPI may sit behind a TLS
# proxy whose CA only the host trusts: the host bundle is copied in for the build only.
in_chroot() {
    local root=$1
    shift
    local envs=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
        HOME=/root LANG=C.UTF-8 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
        PIP_DEFAULT_TIMEOUT="${PIP_DEFAULT_TIMEOUT:-120}" PIP_CERT=/tmp/pylog-build/ca.crt)
    local v
    for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY PIP_INDEX_URL; do
        [[ -n "${!v:-}" ]] && envs+=("$v=${!v}")
    done
    env -i "${envs[@]}" chroot "$root" "$@"
}

build_tmp_setup() {
    local root=$1
    mkdir -p "$root/tmp/pylog-build"
    local ca=${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}
    cp "$ca" "$root/tmp/pylog-build/ca.crt"
}

trim() {
    local root=$1
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin \
        "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/debconf/*-old \
        "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
        "$root"/usr/share/locale/* "$root"/usr/share/lintian "$root"/var/log/*.log \
        "$root"/root/.cache "$root"/tmp/pylog-build
    # Byte-code of the venv's third-party packages is kept: it makes the plugin start
    # faster (dockerd gives it ~9.5 s to listen). Stale caches of pip itself go.
    find "$root$VENV/lib" -path '*/pip/*' -name __pycache__ -type d -prune -exec rm -rf {} + 2>/dev/null || true
}

build_base() {
    local tmp="$CACHE/tmp-base-$key"
    rm -rf "$tmp"
    mkdir -p "$tmp" "$CACHE/debs"
    local root="$tmp/rootfs" m
    m=$(mirror)
    log "debootstrap $SUITE ($INCLUDE) from $m -- about a minute"
    local t0=$SECONDS
    # Its stage lines ("Installing core packages...") as progress; the full log is kept.
    if ! debootstrap --variant=minbase --include="$INCLUDE" --cache-dir="$CACHE/debs" \
        "$SUITE" "$root" "$m" 2>&1 | tee "$tmp/debootstrap.log" \
        | awk '/^I: .*(\.\.\.|successfully\.)$/ && !/^I: [A-Za-z]+ [^ ]+\.\.\.$/ {
            print "[rootfs]   " substr($0, 4); fflush() }' >&2; then
        tail -n 30 "$tmp/debootstrap.log" >&2
        [[ -f "$root/debootstrap/debootstrap.log" ]] && tail -n 30 "$root/debootstrap/debootstrap.log" >&2
        die "debootstrap failed (full log: $tmp/debootstrap.log)"
    fi
    log "debootstrap done in $((SECONDS - t0)) s"

    cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
    build_tmp_setup "$root"

    log "creating venv $VENV"
    in_chroot "$root" /usr/bin/python3 -m venv "$VENV"

    local reqs
    mapfile -t reqs < <(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print("\n".join(d["build-requires"]+d["dependencies"]))' "$deps_json")
    log "pip install into $VENV: ${reqs[*]}"
    t0=$SECONDS
    in_chroot "$root" "$VENV/bin/pip" install --progress-bar off -q "${reqs[@]}" wheel
    log "third-party packages installed in $((SECONDS - t0)) s"
    in_chroot "$root" "$VENV/bin/pip" check

    trim "$root"
    # Filled by docker (bind mounts) when the plugin runs; keep them empty in the image.
    : >"$root/etc/resolv.conf"
    [[ -e "$root/etc/hosts" ]] || : >"$root/etc/hosts"
    in_chroot "$root" "$VENV/bin/pip" freeze >"$tmp/freeze.txt" 2>/dev/null || true
    printf '%s\n' "$deps_json" >"$tmp/key.json"

    rm -rf "$BASE"
    mv "$tmp" "$BASE"
    # Only the current base is worth keeping (each is a few hundred MB).
    local old
    for old in "$CACHE"/base-*; do
        [[ "$old" == "$BASE" ]] || rm -rf "$old"
    done
}

# ---------------------------------------------------------------- base (cached)
mkdir -p "$CACHE"
if [[ "${PYLOG_ROOTFS_REBUILD:-0}" == 1 ]]; then rm -rf "$BASE"; fi
if [[ -d "$BASE/rootfs" ]]; then
    log "using cached base $BASE"
else
    log "no cached base for key $key: building it"
    build_base
fi

# ---------------------------------------------------------------- plugin dir
log "assembling $OUT (copying the base)"
t0=$SECONDS
rm -rf "$OUT"
mkdir -p "$OUT"
cp -a --reflink=auto "$BASE/rootfs" "$OUT/rootfs"
log "base copied in $((SECONDS - t0)) s"
cp "$REPO/config.json" "$OUT/config.json"
ROOT="$OUT/rootfs"

# The package from the checkout: pyproject.toml, setup.py, README.md and plugin/ only,
# copied first so that nothing built or left in the checkout (build/, *.so, a module
# since deleted) can end up in the wheel.
WHEEL_PY=${PYLOG_WHEEL_PYTHON:-$REPO/.venv/bin/python}
[[ -x "$WHEEL_PY" ]] || die "$WHEEL_PY missing: run make venv (or set PYLOG_WHEEL_PYTHON)"
host_py=$("$WHEEL_PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
root_py=$(in_chroot "$ROOT" "$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[[ "$host_py" == "$root_py" ]] || die "$WHEEL_PY is Python $host_py, the rootfs has $root_py: the compiled part would not load"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
SRC="$WORK/src"
mkdir -p "$SRC" "$WORK/wheel"
cp "$REPO/pyproject.toml" "$REPO/setup.py" "$SRC/"
[[ -f "$REPO/README.md" ]] && cp "$REPO/README.md" "$SRC/"
tar -C "$REPO" --exclude='__pycache__' --exclude='*.pyc' --exclude='*.egg-info' --exclude='*.so' \
    -cf - plugin | tar -C "$SRC" -xf -
log "building the pylog wheel on the host ($WHEEL_PY)"
t0=$SECONDS
"$WHEEL_PY" -m pip wheel --progress-bar off -q --no-index --no-deps --no-build-isolation \
    -w "$WORK/wheel" "$SRC" || die "building the wheel failed (make venv installs gcc and python3-dev)"
wheel=$(find "$WORK/wheel" -name 'pylog-*.whl' -print -quit)
[[ -n "$wheel" ]] || die "no pylog wheel in $WORK/wheel"
build_tmp_setup "$ROOT"
cp "$wheel" "$ROOT/tmp/pylog-build/"
log "installing $(basename "$wheel") (built in $((SECONDS - t0)) s)"
in_chroot "$ROOT" "$VENV/bin/pip" install --progress-bar off -q \
    --no-index --no-deps "/tmp/pylog-build/$(basename "$wheel")"
rm -rf "$ROOT/tmp/pylog-build" "$ROOT/root/.cache"

if ! in_chroot "$ROOT" "$VENV/bin/python" -c \
    'import importlib.util, sys; sys.exit(importlib.util.find_spec("pylog.server") is None)'; then
    die "the installed package has no pylog.server module (entrypoint: python -m pylog.server)"
fi
in_chroot "$ROOT" "$VENV/bin/python" -c 'import flask, gunicorn, google.protobuf, pylog.wire.entry_pb2' \
    || die "the installed package does not import"
in_chroot "$ROOT" "$VENV/bin/python" -c 'import sys, pylog.speedups as s; sys.exit(not s.COMPILED)' \
    || die "the installed package has no compiled pylog._speedups"

mkdir -p "$ROOT/run/docker/plugins" "$ROOT/var/lib/pylog"
python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$OUT/config.json" || die "config.json is not valid JSON"
log "done in $((SECONDS - START)) s: $OUT ($(du -sh "$ROOT" | cut -f1) rootfs)"
