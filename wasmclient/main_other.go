//go:build !js

package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/qflare/qflare/wasmclient/headless"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	o, log, err := headless.ParseFlags(os.Args[1:], os.Stderr)
	if err == nil {
		o.Log = log
		err = headless.Run(ctx, o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "wasmclient:", err)
		os.Exit(1)
	}
}
