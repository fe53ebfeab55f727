//go:build !js

package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "edge: the edge shard runs in a Cloudflare Worker: build it with `make edge` (GOOS=js GOARCH=wasm), run it with `make edge-dev` (workerd) or deploy it with wrangler (server/edge/wrangler.toml)")
	os.Exit(2)
}
