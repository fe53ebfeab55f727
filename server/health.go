package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

// healthTimeout bounds the health command's request.
const healthTimeout = 3 * time.Second

// runHealth asks a local server whether it is ready (or alive), for
// container health checks: the image has no shell or curl, only the
// binary. It exits 0 when the answer is 200.
func runHealth(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8080", "the server's `HOST:PORT` (0.0.0.0 means this host)")
	live := fs.Bool("live", false, "ask /healthz (alive) instead of /readyz (ready for traffic)")
	envUsage(fs, "usage: server health [--addr HOST:PORT] [--live]\n\n"+
		"Exits 0 if the server at ADDR answers /readyz (or /healthz) with 200: a health\n"+
		"check for containers, which have no shell or curl.", "addr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := applyEnv(fs, os.LookupEnv, "addr"); err != nil {
		return fmt.Errorf("health: %w", err)
	}
	host, port, err := net.SplitHostPort(*addr)
	if err != nil {
		return fmt.Errorf("health: --addr %q: %w", *addr, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	path := "/readyz"
	if *live {
		path = "/healthz"
	}
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	url := "http://" + net.JoinHostPort(host, port) + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return errors.New("health: " + url + ": " + resp.Status + ": " + string(body))
	}
	fmt.Fprintf(stdout, "%s", body)
	return nil
}
