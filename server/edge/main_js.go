//go:build js && wasm

package main

import (
	"runtime/debug"
	"syscall/js"

	"github.com/syumai/workers"
)

// main runs as the shard when the Durable Object's glue gave it an io
// object, else as the Worker's per-request HTTP handler.
func main() {
	io := js.Global().Get("context").Get("io")
	if io.IsUndefined() {
		workers.Serve(frontHandler())
		return
	}
	// One Go instance lives as long as the Durable Object, inside the
	// isolate's 128 MB with the JS heap: collect early rather than grow
	// (wasm memory never shrinks).
	debug.SetGCPercent(10)
	debug.SetMemoryLimit(memoryLimit)
	h := newHost(io)
	workers.ServeNonBlock(h.statusHandler())
	h.bind()
	workers.Ready()
	go h.keepLinked()
	select {}
}
