// Package workerd runs the edge shard's Worker bundle (make edge) under
// workerd, the open-source runtime of Cloudflare Workers (npm package
// workerd, which runs on node 20): one process per shard on a loopback
// port, with its Durable Object in memory and the static assets served
// from a folder. The edge tests, make edge-dev and the load benchmark use
// it; Cloudflare itself is reached with wrangler (server/edge/wrangler.toml).
package workerd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/qflare/qflare/server/internal/shard"
)

// Version is the workerd the tests are written against
// (build/edge/package.json pins it).
const Version = "1.20261117.1"

// Find returns the workerd executable: $QFLARE_WORKERD, the one npm ci
// installs under build/edge in the repository at root, or workerd on
// PATH; or why there is none.
func Find(root string) (path, why string) {
	if p := os.Getenv("QFLARE_WORKERD"); p != "" {
		return p, ""
	}
	local, err := filepath.Abs(filepath.Join(root, "build", "edge", "node_modules", ".bin", "workerd"))
	if _, serr := os.Stat(local); err == nil && serr == nil {
		return local, ""
	}
	if p, err := exec.LookPath("workerd"); err == nil {
		return p, ""
	}
	return "", "no workerd found (npm ci --prefix build/edge installs it; .ci/run does; or set QFLARE_WORKERD): skipping the edge shard's tests under workerd"
}

// Options configure one shard.
type Options struct {
	Bin    string // the workerd executable (Find)
	Bundle string // the bundle folder: worker.mjs, shard.mjs, wasm_exec.js, edge.wasm
	Assets string // the static assets folder (www/static with client.wasm); "" serves none
	Name   string // SHARD_NAME
	Origin string // ORIGIN_URL, the server's base URL
	Token  string // SHARD_TOKEN (serve --shard-token)
	// Addr is where to listen; "" picks a free loopback port.
	Addr string
	// Dir holds the configuration (a temporary folder when "").
	Dir string
	// Log receives workerd's output (default: discarded).
	Log io.Writer
}

// Shard is a running workerd process serving one shard.
type Shard struct {
	URL  string // http://ADDR
	opt  Options
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited
	err  error         // its exit status, once done
	tmp  string
}

// config is the workerd configuration: the Worker (the bundle's modules),
// its Durable Object namespace kept in memory, the assets as a disk
// service, an outbound network that may reach the origin on a private or
// loopback address, and one HTTP socket.
const config = `using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "edge", worker = .edge),
    (name = "internet", network = (allow = ["public", "private", "local"])),
    %s
  ],
  sockets = [ (name = "http", address = %q, http = (), service = "edge") ],
);

const edge :Workerd.Worker = (
  modules = [
    (name = "worker.mjs", esModule = embed "worker.mjs"),
    (name = "shard.mjs", esModule = embed "shard.mjs"),
    (name = "wasm_exec.js", esModule = embed "wasm_exec.js"),
    (name = "edge.wasm", wasm = embed "edge.wasm"),
  ],
  compatibilityDate = "2025-09-01",
  durableObjectNamespaces = [ (className = "Shard", uniqueKey = "qflare-edge-shard") ],
  durableObjectStorage = (inMemory = void),
  bindings = [
    (name = "SHARD", durableObjectNamespace = "Shard"),
    (name = "SHARD_NAME", text = %q),
    (name = "ORIGIN_URL", text = %q),
    (name = "SHARD_TOKEN", text = %q),
    %s
  ],
);
`

// printable rejects what cannot go into the configuration's strings.
func printable(field, s string) error {
	for _, c := range s {
		if c < ' ' || c == '"' || c == '\\' || c > '~' {
			return fmt.Errorf("workerd: %s %q has characters a configuration string cannot hold", field, s)
		}
	}
	return nil
}

// Start writes the configuration and starts workerd; the shard serves at
// URL once Start returns (it links to the origin by itself: WaitLinked).
func Start(ctx context.Context, opt Options) (*Shard, error) {
	for _, f := range [][2]string{{"name", opt.Name}, {"origin", opt.Origin}, {"token", opt.Token}, {"assets", opt.Assets}} {
		if err := printable(f[0], f[1]); err != nil {
			return nil, err
		}
	}
	s := &Shard{opt: opt, done: make(chan struct{})}
	if opt.Dir == "" {
		dir, err := os.MkdirTemp("", "qflare-workerd-")
		if err != nil {
			return nil, err
		}
		s.tmp, opt.Dir = dir, dir
	}
	for _, f := range []string{"worker.mjs", "shard.mjs", "wasm_exec.js", "edge.wasm"} {
		if err := link(filepath.Join(opt.Bundle, f), filepath.Join(opt.Dir, f)); err != nil {
			s.cleanup()
			return nil, fmt.Errorf("workerd: the bundle (make edge): %w", err)
		}
	}
	if opt.Addr == "" {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			s.cleanup()
			return nil, err
		}
		opt.Addr = ln.Addr().String()
		ln.Close()
	}
	var assetService, assetBinding string
	if opt.Assets != "" {
		abs, err := filepath.Abs(opt.Assets)
		if err != nil {
			s.cleanup()
			return nil, err
		}
		assetService = fmt.Sprintf(`(name = "assets", disk = (path = %q, writable = false)),`, abs)
		assetBinding = `(name = "ASSETS", service = "assets"),`
	}
	cfg := fmt.Sprintf(config, assetService, opt.Addr, opt.Name, opt.Origin, opt.Token, assetBinding)
	path := filepath.Join(opt.Dir, "config.capnp")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		s.cleanup()
		return nil, err
	}
	s.cmd = exec.Command(opt.Bin, "serve", path, "--verbose")
	s.cmd.Dir = opt.Dir
	if opt.Log != nil {
		s.cmd.Stdout, s.cmd.Stderr = opt.Log, opt.Log
	}
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		s.cleanup()
		return nil, fmt.Errorf("workerd: %w", err)
	}
	go func() { s.err = s.cmd.Wait(); close(s.done) }()
	s.URL = "http://" + opt.Addr
	s.opt = opt
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", opt.Addr, time.Second)
		if err == nil {
			c.Close()
			return s, nil
		}
		select {
		case <-s.done:
			s.cleanup()
			return nil, fmt.Errorf("workerd exited before listening: %v", s.err)
		case <-ctx.Done():
			s.Kill()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Kill()
			return nil, errors.New("workerd did not listen within 30 s")
		}
	}
}

// link hard-links src to dst, or copies it.
func link(src, dst string) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}

func (s *Shard) cleanup() {
	if s.tmp != "" {
		os.RemoveAll(s.tmp)
	}
}

// Status returns the shard's counters (GET /shard/status).
func (s *Shard) Status() (shard.Stats, error) {
	var st shard.Stats
	c := http.Client{Timeout: 10 * time.Second}
	res, err := c.Get(s.URL + "/shard/status")
	if err != nil {
		return st, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 1<<10))
		return st, fmt.Errorf("workerd: /shard/status: %s: %s", res.Status, strings.TrimSpace(string(b)))
	}
	err = json.NewDecoder(io.LimitReader(res.Body, 1<<16)).Decode(&st)
	return st, err
}

// WaitLinked waits until the shard has linked to the origin.
func (s *Shard) WaitLinked(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		st, err := s.Status()
		if err == nil && st.Linked {
			return nil
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("workerd: shard %s did not link to the origin within %v (last: %v)", s.opt.Name, timeout, last)
}

// Kill ends workerd at once (SIGKILL): the Durable Object goes with its
// memory, as when Cloudflare evicts it.
func (s *Shard) Kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
	s.cleanup()
}

// Stop ends workerd (SIGTERM, then SIGKILL after 5 s).
func (s *Shard) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
	s.cleanup()
}

// Restart starts the same shard again on the same port after Kill or Stop:
// a fresh Durable Object.
func (s *Shard) Restart(ctx context.Context) error {
	opt := s.opt
	opt.Dir = ""
	n, err := Start(ctx, opt)
	if err != nil {
		return err
	}
	*s = *n
	return nil
}
