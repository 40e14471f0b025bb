#!/usr/bin/env bash
# Fetch a pinned Apache Kafka broker (KRaft) and its runtime classpath from
# Maven Central into a cache directory outside git, using pom.xml beside this
# script and `mvn dependency:copy-dependencies`.
#
#   scripts/kafka/fetch.sh            # prints the libs directory on stdout
#   scripts/kafka/fetch.sh tools      # the same for Kafka's command-line tools
#                                     # (kafka-tools, tools-pom.xml), for the bench's
#                                     # ProducerPerformance ceiling
#
# Each set has its own pom, cache directory and marker, so fetching the tools
# never invalidates the broker's classpath.
#
# Environment:
#   KAFKA_VERSION   Kafka version to fetch (default: pinned below)
#   PYLOG_CACHE     cache root (default: $HOME/.cache/pylog)
#   PYLOG_M2_REPO   Maven local repository (default: $PYLOG_CACHE/m2)
#
# Idempotent: when $PYLOG_CACHE/kafka-$KAFKA_VERSION/libs is complete (marker
# file written last) nothing is downloaded. Concurrent runs are serialised with
# flock. Everything but the final path goes to stderr.
set -euo pipefail

KAFKA_VERSION="${KAFKA_VERSION:-4.4.0}"
CACHE="${PYLOG_CACHE:-$HOME/.cache/pylog}"
M2_REPO="${PYLOG_M2_REPO:-$CACHE/m2}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
case "${1:-broker}" in
    broker) POM="$HERE/pom.xml" DEST="$CACHE/kafka-$KAFKA_VERSION"
            ARTIFACT=kafka_2.13 JAR="kafka_2.13-$KAFKA_VERSION.jar" ;;
    tools)  POM="$HERE/tools-pom.xml" DEST="$CACHE/kafka-tools-$KAFKA_VERSION"
            ARTIFACT=kafka-tools JAR="kafka-tools-$KAFKA_VERSION.jar" ;;
    *) echo "usage: fetch.sh [broker|tools]" >&2; exit 2 ;;
esac
LIBS="$DEST/libs"
MARKER="$DEST/.complete"

# Stamp: version + pom content, so editing the pom invalidates the cache.
stamp() {
    printf 'kafka=%s\n' "$KAFKA_VERSION"
    sha256sum "$POM" | cut -d' ' -f1
}

complete() {
    [[ -f "$MARKER" && -d "$LIBS" ]] && [[ "$(cat "$MARKER")" == "$(stamp)" ]] \
        && compgen -G "$LIBS/$JAR" >/dev/null
}

if complete; then
    echo "$LIBS"
    exit 0
fi

for tool in mvn java; do
    command -v "$tool" >/dev/null || { echo "fetch.sh: '$tool' not found on PATH" >&2; exit 2; }
done

mkdir -p "$DEST"
exec 9>"$DEST/.lock"
flock 9
if complete; then  # another process finished while we waited
    echo "$LIBS"
    exit 0
fi

echo "fetch.sh: resolving org.apache.kafka:$ARTIFACT:$KAFKA_VERSION into $LIBS" >&2
start=$(date +%s)
tmp="$DEST/libs.tmp.$$"
rm -rf "$tmp"
trap 'rm -rf "$tmp"' EXIT
mvn -B -q -f "$POM" \
    -Dmaven.repo.local="$M2_REPO" \
    -Dkafka.version="$KAFKA_VERSION" \
    dependency:copy-dependencies \
    -DincludeScope=runtime \
    -DoutputDirectory="$tmp" >&2

[[ -f "$tmp/$JAR" ]] || {
    echo "fetch.sh: $JAR missing after resolution" >&2
    exit 1
}
rm -rf "$LIBS"
mv "$tmp" "$LIBS"
stamp >"$MARKER"
echo "fetch.sh: $(ls "$LIBS" | wc -l) jars, $(du -sh "$LIBS" | cut -f1), $(( $(date +%s) - start ))s" >&2
echo "$LIBS"
