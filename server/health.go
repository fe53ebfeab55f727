package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
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
	status, body, err := healthGet(ctx, http.DefaultClient, "http://"+net.JoinHostPort(host, port)+path)
	if err == nil && status == http.StatusBadRequest && strings.Contains(string(body), "HTTPS") {
		// The server serves TLS (--tls-cert or --tls-self-signed): ask again
		// over HTTPS. This checks the local server is alive, not who it is,
		// so the certificate is not verified.
		insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
		status, body, err = healthGet(ctx, insecure, "https://"+net.JoinHostPort(host, port)+path)
	}
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	if status != http.StatusOK {
		return fmt.Errorf("health: %s: %d %s: %s", path, status, http.StatusText(status), body)
	}
	fmt.Fprintf(stdout, "%s", body)
	return nil
}

// healthGet gets url and returns the status and the first 4 KiB of the
// body.
func healthGet(ctx context.Context, c *http.Client, url string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, body, nil
}
