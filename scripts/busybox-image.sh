#!/usr/bin/env bash
# Create the local test image pylog-test/busybox:latest from the static busybox binary
# (Debian's busybox-static), without any registry. Skips if the image already exists.
#
# Environment: DOCKER (client), PYLOG_BUSYBOX_IMAGE (image name), BUSYBOX (binary).
set -euo pipefail

DOCKER=${DOCKER:-docker}
IMAGE=${PYLOG_BUSYBOX_IMAGE:-pylog-test/busybox:latest}
BUSYBOX=${BUSYBOX:-/bin/busybox}

log() { printf '[busybox-image] %s\n' "$*" >&2; }

if "$DOCKER" image inspect "$IMAGE" >/dev/null 2>&1; then
    log "$IMAGE already exists"
    exit 0
fi

if ! [[ -x "$BUSYBOX" ]] || [[ "$(head -c 4 "$BUSYBOX" | tail -c 3)" != ELF ]]; then
    log "ERROR: $BUSYBOX missing or not an ELF binary (apt-get install busybox-static)"
    exit 1
fi
if ldd "$BUSYBOX" >/dev/null 2>&1; then
    log "ERROR: $BUSYBOX is dynamically linked; the image needs busybox-static"
    exit 1
fi

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir"/{bin,etc,tmp,proc,sys,dev,root,var/tmp}
chmod 1777 "$dir/tmp" "$dir/var/tmp"
cp "$BUSYBOX" "$dir/bin/busybox"

# Every applet busybox was built with, so tests can use any of them.
# The ones the e2e tests rely on are checked explicitly below.
applets=$("$dir/bin/busybox" --list)
for a in $applets; do
    [[ "$a" == busybox ]] && continue
    ln -s busybox "$dir/bin/$a"
done
for need in sh echo seq yes head cat sleep printf tr dd awk sed env true false date wc od; do
    if ! [[ -e "$dir/bin/$need" ]]; then
        log "ERROR: busybox at $BUSYBOX has no '$need' applet"
        exit 1
    fi
done
echo 'root:x:0:0:root:/root:/bin/sh' >"$dir/etc/passwd"
echo 'root:x:0:' >"$dir/etc/group"

tar -C "$dir" -c . | "$DOCKER" import \
    -c 'ENV PATH=/bin' -c 'CMD ["sh"]' \
    -m 'pylog e2e test image (static busybox)' - "$IMAGE" >/dev/null
log "created $IMAGE ($(wc -w <<<"$applets") applets)"
