#!/usr/bin/env bash
# Build the toolchain sandbox images with no container registry: each is the base image plus
# one layer of Debian packages. apt runs as root in a throwaway container on the host's
# network (Debian's mirror must be reachable, a registry need not be), and the container is
# committed with the base's user, workdir and command, its environment plus the toolchain's
# variables. Nothing is debootstrapped again: every variant shares the base's layer.
#
#   build-toolchain-images.sh [--if-missing] BASE_IMAGE TOOLCHAIN...
#
# TOOLCHAIN is node (nodejs, npm), go (golang-go) or polyglot (both); each is tagged
# <base repository>:<toolchain>, e.g. codebot-sandbox:node. --if-missing skips present ones.
set -euo pipefail

# Read-only root and HOME=/tmp at run time: every cache goes to the writable /tmp.
node_env='npm_config_cache=/tmp/.npm npm_config_update_notifier=false npm_config_audit=false npm_config_fund=false'
# No C compiler in the image, so cgo is off and the standard library is prebuilt that way
# (else the first `go test` of anything using net or os/user recompiles it into GOCACHE).
# GOTOOLCHAIN=local: a go.mod asking for a newer Go never starts a toolchain download.
go_env='GOCACHE=/tmp/.cache/go-build GOPATH=/tmp/go CGO_ENABLED=0 GOTOOLCHAIN=local'
go_prebuild='GOCACHE=/tmp/gocache CGO_ENABLED=0 go install std && rm -rf /tmp/gocache'

if_missing=0
if [ "${1:-}" = "--if-missing" ]; then if_missing=1; shift; fi
[ $# -ge 2 ] || { echo "usage: $0 [--if-missing] BASE_IMAGE node|go|polyglot..." >&2; exit 2; }
base="$1"; shift
for toolchain in "$@"; do
  case "$toolchain" in node | go | polyglot) ;; *)
    echo "build-toolchain-images: unknown toolchain '$toolchain' (node, go, polyglot)" >&2; exit 2 ;;
  esac
done
base_id="$(docker image inspect -f '{{.Id}}' "$base" 2>/dev/null)" \
  || { echo "build-toolchain-images: base image $base is missing; build it first" >&2; exit 1; }

# The base's repository (a registry's host:port holds a colon too, but a tag has no slash).
repo="${base%:*}"; case "${base##*:}" in */*) repo="$base" ;; esac
image_of() { echo "$repo:$1"; }
wanted() {
  case " $requested " in *" $1 "*) ;; *) return 1 ;; esac
  [ "$if_missing" = 0 ] || ! docker image inspect "$(image_of "$1")" >/dev/null 2>&1
}
requested="$*"

# The build containers and one apt cache for them all (Docker volumes, so that a non-root
# caller can remove what apt wrote; polyglot reuses node's and go's packages) are named after
# this run and removed on every exit.
run_tag="$$-$(date +%s)"
cleanup() {
  docker ps -aq --filter "name=codebot-toolchain-.*-$run_tag" | xargs -r docker rm -f >/dev/null 2>&1 || true
  docker volume ls -q --filter "name=codebot-toolchain-.*-$run_tag" | xargs -r docker volume rm >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# build TOOLCHAIN PARENT "PACKAGES" "ENV" "AFTER": PARENT + PACKAGES (then the AFTER
# command, as root), committed as the toolchain's image.
build() {
  local toolchain="$1" parent="$2" packages="$3" env="$4" after="$5" started=$SECONDS
  local target container user workdir cmd
  target="$(image_of "$toolchain")"
  container="codebot-toolchain-$toolchain-$run_tag"
  user="$(docker image inspect -f '{{.Config.User}}' "$base")"
  workdir="$(docker image inspect -f '{{.Config.WorkingDir}}' "$base")"
  cmd="$(docker image inspect -f '{{json .Config.Cmd}}' "$base")"
  echo "build-toolchain-images: $target = $parent + $packages"
  # Settings go in as the script's arguments, never `docker run -e`: the commit would keep
  # those in the image's environment. In the background, so that a signal's trap runs at once.
  docker run --name "$container" --network host --user 0:0 \
    -v "codebot-toolchain-debs-$run_tag:/var/cache/apt/archives" \
    -v "codebot-toolchain-lists-$run_tag:/var/lib/apt/lists" \
    "$parent" sh -c '
      export DEBIAN_FRONTEND=noninteractive
      if [ -n "$1" ]; then export http_proxy="$1"; fi
      if [ -n "$2" ]; then export https_proxy="$2"; fi
      { apt-get update -qq && apt-get install -y -qq --no-install-recommends \
          -o Dpkg::Options::=--force-unsafe-io $3; } >/tmp/apt.log 2>&1 \
        || { tail -n 25 /tmp/apt.log >&2; exit 1; }
      rm -f /tmp/apt.log /var/cache/apt/*.bin
      if [ -n "$4" ]; then sh -c "$4" || exit 1; fi' \
    sh "${http_proxy:-}" "${https_proxy:-}" "$packages" "$after" &
  wait "$!"
  docker commit -m "codebot toolchain $toolchain: $packages" \
    -c "ENV $env" -c "WORKDIR $workdir" -c "USER $user" -c "CMD $cmd" \
    -c "LABEL codebot.toolchain=$toolchain codebot.base=$base_id" \
    "$container" "$target" >/dev/null
  docker rm "$container" >/dev/null
  echo "build-toolchain-images: $target done in $((SECONDS - started))s" \
    "($(docker image inspect -f '{{.Size}}' "$target" | awk '{printf "%.0f MB", $1/1e6}'))"
}

# In turn: side by side they took as long in all (dpkg and the commit, not the download,
# are the time). go before polyglot, which is go's image plus node's packages when that image
# was made from this base, so that the two share go's layer.
if wanted node; then build node "$base" "nodejs npm" "$node_env" ""; fi
if wanted go; then build go "$base" "golang-go" "$go_env" "$go_prebuild"; fi
if wanted polyglot; then
  if [ "$(docker image inspect -f '{{index .Config.Labels "codebot.base"}}' "$(image_of go)" 2>/dev/null)" = "$base_id" ]; then
    build polyglot "$(image_of go)" "nodejs npm" "$go_env $node_env" ""
  else
    build polyglot "$base" "nodejs npm golang-go" "$go_env $node_env" "$go_prebuild"
  fi
fi
