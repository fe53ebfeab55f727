package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/qflare/qflare/server/internal/api"
	"github.com/qflare/qflare/server/internal/coord"
	"github.com/qflare/qflare/server/internal/datasets"
	"github.com/qflare/qflare/server/internal/store"
	"github.com/qflare/qflare/shared/data"
	"github.com/qflare/qflare/www"
)

// demoConfig is the run --demo creates: mnist-2nn, which trains a round in a
// second or two in a tab; every connected tab takes part in every round.
func demoConfig() coord.Config {
	return coord.Config{Name: "demo: mnist-2nn on MNIST", Model: "mnist-2nn", Dataset: "mnist", Partition: "iid",
		Clients: 100, Rounds: 200, Fraction: 1, MinClients: 1, LocalEpochs: 1, // batch and lr: the model's defaults
		RoundDeadline: coord.Duration(60 * time.Second), EvalLimit: 2000, Seed: 1, Public: true}
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8080", "address to listen on")
	dbPath := fs.String("db", "qflare.db", "SQLite database file (created if missing)")
	demo := fs.Bool("demo", false, "create a ready demo run on MNIST (or keep the unfinished one)")
	adminToken := fs.String("admin-token", os.Getenv("QFLARE_ADMIN_TOKEN"), "admin token (default: $QFLARE_ADMIN_TOKEN, else a new random one)")
	publicURL := fs.String("public-url", "", "base URL printed for joining (default: http://ADDR)")
	origins := fs.String("allow-origins", "", "comma-separated extra origins allowed to open WebSockets")
	dataDir := fs.String("data-dir", "", "dataset folder (default: MNIST from the GoMNIST module)")
	logJSON := fs.Bool("log-json", false, "log as JSON lines")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var handler slog.Handler = slog.NewTextHandler(stderr, nil)
	if *logJSON {
		handler = slog.NewJSONHandler(stderr, nil)
	}
	log := slog.New(handler)
	if *adminToken == "" {
		*adminToken = rand.Text()[:24]
	}
	st, err := store.Open(ctx, *dbPath)
	if err != nil {
		return err
	}
	defer st.Close()
	c := coord.New(coord.Deps{Store: st, Log: log,
		Data: func(name string) (*data.Set, *data.Set, error) { return datasets.Load(name, *dataDir) }})
	defer c.Close()
	if err := c.Resume(ctx); err != nil {
		return err
	}
	var demoRun *coord.Run
	if *demo {
		if demoRun, err = ensureDemo(ctx, c); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	base := *publicURL
	if base == "" {
		base = "http://" + ln.Addr().String()
	}
	base = strings.TrimRight(base, "/")
	var allowed []string
	if *origins != "" {
		allowed = strings.Split(*origins, ",")
	}
	srv := &http.Server{
		Handler:           api.New(api.Options{Coord: c, AdminToken: *adminToken, Assets: www.Handler(), Log: log, AllowedOrigins: allowed}),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(handler, slog.LevelWarn),
	}
	fmt.Fprintf(stdout, "QFLARE is serving on %s (database %s)\n", base, *dbPath)
	if demoRun != nil {
		fmt.Fprintf(stdout, "  join:        %s%s\n", base, api.JoinPath(demoRun.ID(), demoRun.Token()))
		fmt.Fprintf(stdout, "               (or just %s/ : the demo run is public)\n", base)
	}
	fmt.Fprintf(stdout, "  dashboard:   %s/dashboard#admin=%s\n", base, *adminToken)
	fmt.Fprintf(stdout, "  admin token: %s\n", *adminToken)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c.Close() // ends runs' loops and their WebSockets; runs stay resumable
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// ensureDemo returns the unfinished public demo run, creating one if needed.
func ensureDemo(ctx context.Context, c *coord.Coordinator) (*coord.Run, error) {
	want := demoConfig()
	for _, r := range c.Runs() {
		if cfg := r.Config(); cfg.Public && cfg.Name == want.Name {
			return r, nil
		}
	}
	return c.CreateRun(ctx, want)
}
