#!/bin/sh
# Builds the browser client into OUT_DIR (default www/static):
#   client.wasm       GOOS=js GOARCH=wasm ./wasmclient with this Go (scalar GEMM)
#   client-simd.wasm  the same with GOTOOLCHAIN=$SIMD_TOOLCHAIN GOEXPERIMENT=simd
#                     (SIMD128 GEMM), when that toolchain can be fetched; the join
#                     page loads it where the browser supports SIMD
#   wasm_exec.js      of the toolchain that built client.wasm
# and gzip -9 siblings, which www serves to browsers that accept gzip.
#
#   build/wasm.sh [OUT_DIR]
#
# GO selects the go command (default: go); SIMD_TOOLCHAIN (default go1.27.3)
# the toolchain of the SIMD build, or "none" to skip it.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/www/static}
go=${GO:-go}
simd=${SIMD_TOOLCHAIN:-go1.27.3}
mkdir -p "$out"
cd "$root"
build() { # build OUT ENV...
	target=$1
	shift
	env "$@" GOOS=js GOARCH=wasm "$go" build -trimpath -ldflags='-s -w' -o "$out/$target.tmp" ./wasmclient
	mv "$out/$target.tmp" "$out/$target"
}
build client.wasm
cp "$("$go" env GOROOT)/lib/wasm/wasm_exec.js" "$out/wasm_exec.js"
chmod 644 "$out/wasm_exec.js"
files="client.wasm wasm_exec.js"
rm -f "$out/client-simd.wasm" "$out/client-simd.wasm.gz"
if [ "$simd" != none ] && simdroot=$(GOTOOLCHAIN=$simd "$go" env GOROOT 2>/dev/null); then
	# One wasm_exec.js serves both builds, so they must agree on it.
	if cmp -s "$simdroot/lib/wasm/wasm_exec.js" "$out/wasm_exec.js"; then
		build client-simd.wasm GOTOOLCHAIN="$simd" GOEXPERIMENT=simd
		files="$files client-simd.wasm"
	else
		echo "wasm: $simd has another wasm_exec.js; skipping the SIMD build" >&2
	fi
else
	echo "wasm: toolchain $simd unavailable; the page will use the scalar build" >&2
fi
for f in $files; do
	gzip -9 -n -c "$out/$f" >"$out/$f.gz.tmp"
	mv "$out/$f.gz.tmp" "$out/$f.gz"
done
for f in $files; do
	case $f in *.wasm) echo "wasm: $out/$f $(wc -c <"$out/$f") bytes, gzipped $(wc -c <"$out/$f.gz")" ;; esac
done
