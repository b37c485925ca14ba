#!/usr/bin/env bash
# Builds the service's image from the working tree:  scripts/ci/build-image.sh [TAG]
# TAG defaults to $DR_IMAGE, else disaster-recovery-service:local. The base is $BASE_IMAGE when set, else the
# locally made Node base (scripts/ci/build-local-base-images.sh) when it exists, else the official
# node:22-bookworm-slim. Prints the image's size in bytes and the build time in seconds on stderr.
set -euo pipefail
if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
  sed -n '2,5s/^# \{0,1\}//p' "$0" | sed '1s/^Builds/Usage: build-image.sh [TAG]\nBuilds/'
  exit 0
fi
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=local-base-images.env
source "$here/local-base-images.env"
tag="${1:-${DR_IMAGE:-disaster-recovery-service:local}}"
base="${BASE_IMAGE:-}"
if [ -z "$base" ]; then
  if docker image inspect "$DR_LOCAL_NODE_IMAGE" >/dev/null 2>&1; then base="$DR_LOCAL_NODE_IMAGE"; else base=node:22-bookworm-slim; fi
fi
start=$(date +%s)
docker build --build-arg "BASE_IMAGE=$base" -t "$tag" "$here/../.."
size=$(docker image inspect --format '{{.Size}}' "$tag")
echo "build-image: $tag from $base: $size bytes, built in $(( $(date +%s) - start )) s" >&2
