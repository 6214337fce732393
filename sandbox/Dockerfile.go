# The go toolchain image (codebot-sandbox:go) for machines that reach a registry:
# sandbox/Dockerfile plus Debian's golang-go, with the variables that
# sandbox/build-toolchain-images.sh sets when it builds the same image offline.
# Build: docker build -f sandbox/Dockerfile.go -t codebot-sandbox:go sandbox/
FROM debian:bookworm-slim
# The base image's lines, unchanged, so the build cache shares them with sandbox/Dockerfile.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-pip python3-venv python3-pytest git ca-certificates procps \
 && rm -rf /var/lib/apt/lists/*
ARG RUFF_VERSION=0.14.10
RUN python3 -m pip install --break-system-packages --no-cache-dir "ruff==${RUFF_VERSION}"
RUN mkdir -p /workspace /home/sandbox && chown 65534:65534 /workspace /home/sandbox
# No C compiler, so cgo is off and the standard library is prebuilt that way (else the first
# `go test` of anything using net or os/user recompiles it).
RUN apt-get update \
 && apt-get install -y --no-install-recommends golang-go \
 && rm -rf /var/lib/apt/lists/* \
 && GOCACHE=/tmp/gocache CGO_ENABLED=0 go install std && rm -rf /tmp/gocache
# Read-only root and HOME=/tmp at run time: Go's caches go to the writable /tmp.
# GOTOOLCHAIN=local: a go.mod asking for a newer Go never starts a toolchain download.
ENV LANG=C.UTF-8 HOME=/home/sandbox PYTHONDONTWRITEBYTECODE=1 \
    GOCACHE=/tmp/.cache/go-build GOPATH=/tmp/go CGO_ENABLED=0 GOTOOLCHAIN=local
WORKDIR /workspace
USER 65534:65534
CMD ["sleep", "infinity"]
