// Command edgedev is `make edge-dev`: the server (bin/qflare serve, with
// --shard-token) and edge shards in front of it, each under workerd on its
// own port, as on Cloudflare but on this machine, and a run that takes
// tabs through them (mnist-2nn, FedAvg, without anomaly detection: the
// public demo run scores every update, which shards do not send). Tabs
// open the join link on a shard's host; the shard holds their WebSockets
// and sends the server partials. Ctrl-C stops everything.
//
//	go run ./build/edgedev [-shards 2] [-port 8787] [-addr 127.0.0.1:8080] [-db qflare.db]
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/qflare/qflare/server/edge/workerd"
)

func main() {
	serveBin := flag.String("serve", "bin/qflare", "the server binary (make build)")
	bundle := flag.String("bundle", "bin/edge", "the edge bundle (make edge)")
	assets := flag.String("assets", "www/static", "the static assets with client.wasm (make wasm)")
	addr := flag.String("addr", "127.0.0.1:8080", "the server's address")
	db := flag.String("db", "qflare.db", "the server's database")
	demo := flag.Bool("demo", false, "also keep the public demo run going (it cannot take tabs through shards)")
	shards := flag.Int("shards", 2, "edge shards to run (1..16)")
	port := flag.Int("port", 8787, "the first shard's port; the others follow")
	token := flag.String("token", "", "the shard token (default: a new random one)")
	flag.Parse()
	if *shards < 1 || *shards > 16 {
		fatal(fmt.Errorf("-shards %d is not in 1..16", *shards))
	}
	bin, why := workerd.Find(".")
	if bin == "" {
		fatal(fmt.Errorf("%s", why))
	}
	if *token == "" {
		*token = rand.Text()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	admin := rand.Text()
	args := []string{"serve", "--addr", *addr, "--db", *db, "--shard-token", *token, "--admin-token", admin}
	if *demo {
		args = append(args, "--demo")
	}
	srv := exec.Command(*serveBin, args...)
	srv.Stderr = os.Stderr
	out, _ := srv.StdoutPipe()
	if err := srv.Start(); err != nil {
		fatal(fmt.Errorf("starting %s (make build): %w", *serveBin, err))
	}
	done := make(chan error, 1)
	go func() { done <- srv.Wait() }()
	base := waitServing(out)
	if base == "" {
		srv.Process.Kill()
		fatal(fmt.Errorf("the server did not start"))
	}
	var running []*workerd.Shard
	defer func() {
		for _, s := range running {
			s.Stop()
		}
		srv.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(25 * time.Second):
			srv.Process.Kill()
		}
	}()
	for i := range *shards {
		name := "shard-" + strconv.Itoa(i+1)
		s, err := workerd.Start(ctx, workerd.Options{Bin: bin, Bundle: *bundle, Assets: *assets, Name: name,
			Origin: base, Token: *token, Addr: fmt.Sprintf("127.0.0.1:%d", *port+i), Log: prefixed(name)})
		if err != nil {
			fmt.Fprintln(os.Stderr, "edgedev:", err)
			return
		}
		running = append(running, s)
		if err := s.WaitLinked(30 * time.Second); err != nil {
			fmt.Fprintln(os.Stderr, "edgedev:", err)
			return
		}
		fmt.Printf("  edge %s: %s/ (status: %s/shard/status)\n", name, s.URL, s.URL)
	}
	run, token2, err := createRun(base, admin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "edgedev:", err)
		return
	}
	fmt.Printf("A run for tabs through the shards (mnist-2nn, 30 rounds):\n")
	for _, s := range running {
		fmt.Printf("  join through %s: %s/join/%s?token=%s\n", s.URL, s.URL, run, token2)
	}
	fmt.Println("Ctrl-C stops everything.")
	select {
	case <-ctx.Done():
	case err := <-done:
		fmt.Fprintln(os.Stderr, "edgedev: the server exited:", err)
	}
}

// waitServing copies the server's start-up lines to stdout and returns its
// base URL.
func waitServing(out io.Reader) string {
	sc := bufio.NewScanner(out)
	re := regexp.MustCompile(`serving on (http://\S+)`)
	base := ""
	for sc.Scan() {
		fmt.Println(sc.Text())
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			base = m[1]
		}
		if base != "" && regexp.MustCompile(`admin token`).MatchString(sc.Text()) {
			go io.Copy(os.Stdout, out)
			return base
		}
	}
	return base
}

// prefixed writes workerd's lines to stderr after the shard's name.
func prefixed(name string) io.Writer {
	r, w := io.Pipe()
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			fmt.Fprintf(os.Stderr, "[%s] %s\n", name, sc.Text())
		}
	}()
	return w
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "edgedev:", err)
	os.Exit(1)
}

// createRun creates the run tabs join through the shards.
func createRun(base, admin string) (id, token string, err error) {
	body := `{"name": "edge: mnist-2nn through shards", "model": "mnist-2nn", "rounds": 30, "fraction": 1,
		"min_clients": 1, "clients": 100, "detect": false, "max_update_norm": 1000}`
	req, _ := http.NewRequest("POST", base+"/api/runs", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+admin)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", "", err
	}
	defer res.Body.Close()
	var r struct {
		ID      string `json:"id"`
		JoinURL string `json:"join_url"`
		Error   string `json:"error"`
	}
	if err := json.NewDecoder(res.Body).Decode(&r); err != nil || res.StatusCode != http.StatusCreated {
		return "", "", fmt.Errorf("creating the run: %s %s %v", res.Status, r.Error, err)
	}
	_, token, _ = strings.Cut(r.JoinURL, "token=")
	return r.ID, token, nil
}
