package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/qflare/qflare/server/internal/api"
	"github.com/qflare/qflare/server/internal/coord"
	"github.com/qflare/qflare/server/internal/datasets"
	"github.com/qflare/qflare/server/internal/demo"
	"github.com/qflare/qflare/server/internal/metrics"
	"github.com/qflare/qflare/server/internal/store"
	"github.com/qflare/qflare/shared/data"
	"github.com/qflare/qflare/www"
)

// Bounds of --grace.
const (
	minGrace = time.Second
	maxGrace = 10 * time.Minute
)

// serveConfig is what serve's flags (or their environment variables) say.
type serveConfig struct {
	addr, db, adminToken, publicURL, origins, hosts, dataDir string
	shardToken                                               string
	demo, logJSON                                            bool
	grace                                                    time.Duration
	tlsCert, tlsKey                                          string
	tlsSelfSigned                                            bool
}

// parseServe reads serve's flags, then the environment (lookup) for the
// flags not given.
func parseServe(args []string, lookup func(string) (string, bool), stderr io.Writer) (*serveConfig, error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c serveConfig
	fs.StringVar(&c.addr, "addr", "127.0.0.1:8080", "`HOST:PORT` to listen on (0.0.0.0:8080: every interface)")
	fs.StringVar(&c.db, "db", "qflare.db", "SQLite database `FILE` (created if missing)")
	fs.BoolVar(&c.demo, "demo", false, "keep a public demo run on MNIST going (a fresh one starts when one ends)")
	fs.StringVar(&c.adminToken, "admin-token", "", "admin `TOKEN` for the dashboard, run control and pprof (default: a new random one, printed)")
	fs.StringVar(&c.publicURL, "public-url", "", "base `URL` printed for joining and in the QR code (default: http://ADDR)")
	fs.StringVar(&c.origins, "allow-origins", "", "comma-separated extra `ORIGINS` allowed to open WebSockets and send API requests")
	fs.StringVar(&c.hosts, "allow-hosts", "", "comma-separated extra host `NAMES` the server answers to (besides IP addresses, localhost and --public-url's host)")
	fs.StringVar(&c.dataDir, "data-dir", "", "dataset `DIR` (default: MNIST from the GoMNIST module)")
	fs.BoolVar(&c.logJSON, "log-json", false, "log as JSON lines")
	fs.StringVar(&c.shardToken, "shard-token", "", "let edge shards link at /shard with this `TOKEN` (at least 16 characters; see README, Edge shards)")
	fs.DurationVar(&c.grace, "grace", 20*time.Second, "on SIGTERM or SIGINT, how long to finish the open step and tell clients before exiting anyway")
	fs.StringVar(&c.tlsCert, "tls-cert", "", "serve HTTPS with this certificate chain `FILE` (PEM; with --tls-key)")
	fs.StringVar(&c.tlsKey, "tls-key", "", "the certificate's private key `FILE` (PEM)")
	fs.BoolVar(&c.tlsSelfSigned, "tls-self-signed", false, "serve HTTPS with a fresh self-signed certificate (LAN demos: browsers warn once; its SHA-256 fingerprint is printed)")
	envUsage(fs, "usage: server serve [flags]\n\nStarts the server: pages, API, participant WebSockets, rounds, SQLite.")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("serve: unexpected argument %q", fs.Arg(0))
	}
	if err := applyEnv(fs, lookup); err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	if c.grace < minGrace || c.grace > maxGrace {
		return nil, fmt.Errorf("serve: --grace %v is not in %v..%v", c.grace, minGrace, maxGrace)
	}
	if c.db == "" || c.addr == "" {
		return nil, errors.New("serve: --addr and --db must not be empty")
	}
	if err := checkTLSFlags(&c); err != nil {
		return nil, err
	}
	if err := checkShardToken(c.shardToken); err != nil {
		return nil, err
	}
	return &c, nil
}

// errGrace is returned when the shutdown outlasts --grace.
var errGrace = errors.New("shutdown took longer than --grace; exiting anyway (the database is safe: runs resume as after a crash)")

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseServe(args, os.LookupEnv, stderr)
	if err != nil {
		return err
	}
	var handler slog.Handler = slog.NewTextHandler(stderr, nil)
	if cfg.logJSON {
		handler = slog.NewJSONHandler(stderr, nil)
	}
	log := slog.New(handler)
	if cfg.adminToken == "" {
		cfg.adminToken = rand.Text()[:24]
	}

	var c *coord.Coordinator // set before the listener accepts a scrape
	m := metrics.New(metrics.Options{Go: true, Runs: func() []metrics.Run { return runStates(c) }})
	st, err := store.Open(ctx, cfg.db, store.WithWriteObserver(m.ObserveWrite))
	if err != nil {
		return err
	}
	c = coord.New(coord.Deps{Store: st, Log: log, Observer: m,
		Data: func(name string) (*data.Set, *data.Set, error) { return datasets.Load(name, cfg.dataDir) }})
	var allowed, names []string
	if cfg.origins != "" {
		allowed = strings.Split(cfg.origins, ",")
	}
	if cfg.hosts != "" {
		names = strings.Split(cfg.hosts, ",")
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		c.Close()
		st.Close()
		return err
	}
	tlsCfg, fingerprint, err := serverTLS(cfg, interfaceAddrs())
	if err != nil {
		ln.Close()
		c.Close()
		st.Close()
		return err
	}
	scheme := "http://"
	if tlsCfg != nil {
		scheme = "https://"
		ln = tls.NewListener(ln, tlsCfg)
	}
	publicURL := strings.TrimRight(cfg.publicURL, "/")
	if publicURL == "" && ln.Addr().(*net.TCPAddr).IP.IsUnspecified() {
		// Listening on every interface: the QR code needs an address
		// phones reach, not 0.0.0.0.
		publicURL = scheme + reachableAddr(ln.Addr().(*net.TCPAddr), interfaceAddrs())
	}
	a := api.New(api.Options{Coord: c, AdminToken: cfg.adminToken, Assets: www.Handler(), Log: log,
		AllowedOrigins: allowed, AllowedHosts: names, Metrics: m, Starting: true, PublicURL: publicURL, ShardToken: cfg.shardToken,
		Routes: map[string]http.Handler{"POST /api/fl/run_real_training": &seedHandler{c: c}}})
	srv := &http.Server{
		Handler:           a,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(handler, slog.LevelWarn),
	}
	// Listen first, so that probes get answers (/healthz 200, /readyz 503)
	// while stored runs resume; participants get 503 until then.
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	var keeper sync.WaitGroup
	kctx, stopKeeper := context.WithCancel(ctx)
	defer stopKeeper()
	start := func() error {
		if err := c.Resume(ctx); err != nil {
			return err
		}
		base := publicURL
		if base == "" {
			base = scheme + ln.Addr().String()
		}
		var demoRun *coord.Run
		if cfg.demo {
			var err error
			if demoRun, err = demo.Ensure(ctx, c, log); err != nil {
				return err
			}
			keeper.Go(func() {
				demo.Keep(kctx, c, demoRun, demo.RestartDelay, log, func(r *coord.Run) {
					log.Info("a fresh demo run started", "run", r.ID(), "join", base+api.JoinPath(r.ID(), r.Token()))
				})
			})
		}
		a.MarkReady()
		fmt.Fprintf(stdout, "QFLARE is serving on %s (database %s)\n", base, cfg.db)
		if tlsCfg != nil {
			fmt.Fprintf(stdout, "  TLS:         certificate SHA-256 %s; each connection's key exchange is recorded (X25519MLKEM768: post-quantum)\n", fingerprint)
		}
		if demoRun != nil {
			fmt.Fprintf(stdout, "  join:        %s%s\n", base, api.JoinPath(demoRun.ID(), demoRun.Token()))
			fmt.Fprintf(stdout, "               (or just %s/ : the demo run is public)\n", base)
			fmt.Fprintf(stdout, "  presenter:   %s/present\n", base)
		}
		fmt.Fprintf(stdout, "  dashboard:   %s/dashboard#admin=%s\n", base, cfg.adminToken)
		if cfg.shardToken != "" {
			fmt.Fprintf(stdout, "  edge shards: link at %s/shard with the shard token\n", "ws"+strings.TrimPrefix(base, "http"))
		}
		fmt.Fprintf(stdout, "  admin token: %s\n", cfg.adminToken)
		return nil
	}
	if err := start(); err != nil {
		stopKeeper()
		keeper.Wait()
		if shutdown(cfg.grace, log, a, srv, c) == nil {
			st.Close()
		}
		return err
	}
	select {
	case err := <-errc:
		stopKeeper()
		keeper.Wait()
		c.Close()
		st.Close()
		return err
	case <-ctx.Done():
	}
	stopKeeper()
	keeper.Wait()
	err = shutdown(cfg.grace, log, a, srv, c)
	if err == nil {
		st.Close() // after every loop ended; a timed-out shutdown leaves it to the exit
	}
	return err
}

// shutdown stops the server within grace: readiness turns 503 and new work
// is refused (a.Drain), the listener closes to new connections, every run's
// loop stops after the step it is in (a round being committed is committed:
// store writes are not interrupted), participants get a bye saying the
// server restarts, and plain HTTP requests finish. Stored runs resume from
// there on the next start, as after a crash. It returns errGrace if that
// takes longer than grace.
func shutdown(grace time.Duration, log *slog.Logger, a *api.Server, srv *http.Server, c *coord.Coordinator) error {
	// A second signal now kills the process at once.
	signal.Reset(os.Interrupt, syscall.SIGTERM)
	start := time.Now()
	log.Info("shutting down: draining", "grace", grace)
	a.Drain()
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		var wg sync.WaitGroup
		var httpErr error
		wg.Go(func() { httpErr = srv.Shutdown(ctx) }) // closes the listener at once
		c.Close()                                     // ends the loops and their WebSockets
		wg.Wait()
		done <- httpErr
	}()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		log.Info("shut down", "took", time.Since(start).Round(time.Millisecond))
		return nil
	case <-ctx.Done():
		log.Error("shutdown outlasted the grace period", "grace", grace)
		return errGrace
	}
}

// reachableAddr is the host:port to print for a listener: its own address,
// or, when it listens on every interface (0.0.0.0 or ::), the first address
// of this machine that others can reach (a private or public IPv4 before
// IPv6, never loopback or link-local); loopback when there is none.
func reachableAddr(ln *net.TCPAddr, addrs []net.IP) string {
	port := strconv.Itoa(ln.Port)
	if !ln.IP.IsUnspecified() {
		return net.JoinHostPort(ln.IP.String(), port)
	}
	var v6 net.IP
	for _, ip := range addrs {
		if ip.IsLoopback() || ip.IsLinkLocalUnicast() || !ip.IsGlobalUnicast() {
			continue
		}
		if ip.To4() != nil {
			return net.JoinHostPort(ip.String(), port)
		}
		if v6 == nil {
			v6 = ip
		}
	}
	if v6 != nil {
		return net.JoinHostPort(v6.String(), port)
	}
	return net.JoinHostPort("127.0.0.1", port)
}

// interfaceAddrs lists this machine's interface addresses (none on error).
func interfaceAddrs() []net.IP {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var ips []net.IP
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			ips = append(ips, n.IP)
		}
	}
	return ips
}

// checkShardToken accepts an empty token (no shards) or one of 16 to 256
// printable ASCII characters without spaces: it travels in a header.
func checkShardToken(t string) error {
	if t == "" {
		return nil
	}
	if len(t) < 16 || len(t) > 256 {
		return fmt.Errorf("serve: --shard-token must be 16 to 256 characters long, not %d", len(t))
	}
	for i := 0; i < len(t); i++ {
		if t[i] <= ' ' || t[i] >= 0x7f {
			return fmt.Errorf("serve: --shard-token may hold only printable ASCII without spaces")
		}
	}
	return nil
}
