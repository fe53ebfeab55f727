#!/bin/sh
# Builds the edge shard's Worker bundle (make edge) into $1 (default
# bin/edge): edge.wasm (server/edge for js/wasm, with standard Go), the
# hand-written glue (server/edge/worker.mjs and shard.mjs), and the Go
# runtime glue of github.com/syumai/workers (wasm_exec.js), written by its
# workers-assets-gen. Deploy it with wrangler (server/edge/wrangler.toml)
# or run it under workerd (make edge-dev).
set -eu
GO=${GO:-go}
out=${1:-bin/edge}
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$GO" run github.com/syumai/workers/cmd/workers-assets-gen -mode=go -o "$tmp/gen" >/dev/null
cp "$tmp/gen/wasm_exec.js" "$out/wasm_exec.js"
cp server/edge/worker.mjs server/edge/shard.mjs "$out/"
GOOS=js GOARCH=wasm "$GO" build -trimpath -ldflags=-s -o "$out/edge.wasm" ./server/edge
size=$(wc -c < "$out/edge.wasm")
gz=$(gzip -c "$out/edge.wasm" | wc -c)
echo "edge: $out/edge.wasm $size bytes ($gz gzipped), worker.mjs, shard.mjs, wasm_exec.js"
