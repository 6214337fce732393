#!/usr/bin/env bash
# Build the default sandbox image with no container registry: debootstrap a minimal Debian
# bookworm with Python, pytest and git, add ruff, and `docker import` the tree.
# Users with a registry can build sandbox/Dockerfile instead; both give the same layout.
set -euo pipefail
image="${1:-codebot-sandbox:bookworm}"
ruff_version="${CODEBOT_RUFF_VERSION:-0.14.10}"
work="$(mktemp -d /tmp/codebot-rootfs.XXXXXX)"
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"

echo "build-base-image: debootstrap bookworm into $root (about a minute)"
debootstrap --variant=minbase \
  --include=python3,python3-pip,python3-venv,python3-pytest,git,ca-certificates,procps \
  bookworm "$root" >"$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log" >&2; exit 1; }

echo "build-base-image: adding ruff $ruff_version"
python3 -m pip download --quiet --no-deps --only-binary=:all: \
  --platform manylinux_2_17_x86_64 --python-version 3.11 -d "$work/wheels" "ruff==$ruff_version"
python3 - "$work/wheels" "$root/usr/local/bin" <<'PY'
import pathlib, sys, zipfile
wheel = next(pathlib.Path(sys.argv[1]).glob("ruff-*.whl"))
with zipfile.ZipFile(wheel) as zf:
    name = next(n for n in zf.namelist() if n.endswith("/scripts/ruff"))
    target = pathlib.Path(sys.argv[2]) / "ruff"
    target.write_bytes(zf.read(name))
    target.chmod(0o755)
PY

# A writable home for the unprivileged sandbox user; the workspace is mounted at run time.
mkdir -p "$root/workspace" "$root/home/sandbox"
chown 65534:65534 "$root/workspace" "$root/home/sandbox"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*

echo "build-base-image: importing as $image"
tar -C "$root" -c . | docker import \
  -c 'ENV PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 HOME=/home/sandbox PYTHONDONTWRITEBYTECODE=1' \
  -c 'WORKDIR /workspace' -c 'USER 65534:65534' -c 'CMD ["sleep", "infinity"]' \
  - "$image" >/dev/null
echo "build-base-image: done ($(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}'))"
