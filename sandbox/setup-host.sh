#!/usr/bin/env bash
# Prepare this machine to run codebot's sandbox: a Docker engine, the base image and the
# toolchain images. Idempotent and offline-friendly: installs docker.io/debootstrap from
# Debian if missing, starts dockerd if no engine answers, builds each image that is absent.
# CODEBOT_TOOLCHAINS picks the toolchain images (default "node go polyglot"; empty for none).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
image="${CODEBOT_SANDBOX_IMAGE:-codebot-sandbox:bookworm}"
toolchains="${CODEBOT_TOOLCHAINS-node go polyglot}"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
  echo "setup: installing $*"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

# An engine that already answers (e.g. on a GitHub runner) is used as it is.
if ! docker info >/dev/null 2>&1 && ! command -v dockerd >/dev/null; then
  apt_install docker.io
fi

if ! docker info >/dev/null 2>&1; then
  echo "setup: starting dockerd"
  as_root bash -c 'nohup dockerd >/var/log/codebot-dockerd.log 2>&1 &'
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { echo "setup: dockerd did not start; see /var/log/codebot-dockerd.log" >&2; exit 1; }
fi

if ! docker image inspect "$image" >/dev/null 2>&1; then
  command -v debootstrap >/dev/null || apt_install debootstrap
  "$here/build-base-image.sh" "$image"
fi
if [ -n "${toolchains// /}" ]; then
  # shellcheck disable=SC2086 # one word per toolchain
  "$here/build-toolchain-images.sh" --if-missing "$image" $toolchains
fi
echo "setup: engine ready, image $image present${toolchains:+, toolchains: $toolchains}"
