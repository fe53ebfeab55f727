package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/qflare/qflare/wasmclient/headless"
)

// TestSecureRoundsOverPostQuantumTLS runs the server binary with
// --tls-self-signed and five headless clients that pin its certificate's
// fingerprint: two secure rounds complete over real WebSockets, and every
// client's connection is recorded with the key exchange X25519MLKEM768.
// A client pinning another fingerprint cannot connect.
func TestSecureRoundsOverPostQuantumTLS(t *testing.T) {
	bin := serverBinary(t)
	addr := freeAddr(t)
	base := "https://" + addr
	p := startTLSServer(t, bin, addr, filepath.Join(t.TempDir(), "q.db"))
	m := regexp.MustCompile(`certificate SHA-256 ([0-9A-F:]{95})`).FindStringSubmatch(p.logs.String())
	if m == nil {
		t.Fatalf("serve --tls-self-signed printed no fingerprint:\n%s", p.logs.String())
	}
	fingerprint := m[1]
	api := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}

	var run createdRun
	call(t, api, "POST", base+"/api/runs", map[string]any{"model": "mlp:16", "rounds": 2, "clients": 5, "fraction": 1,
		"start_clients": 5, "min_clients": 5, "eval_limit": 500, "round_deadline": "5m",
		"secure_agg": map[string]any{"graph": "complete", "threshold": 0.6}}, &run)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := headless.Dial(ctx, base); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a client that trusts only the system's roots connected to a self-signed server (%v)", err)
	}
	wrong := strings.Repeat("AB:", 31) + "AB"
	bad := &headless.Options{Server: base, Run: run.ID, Token: run.token(), Clients: 1, TLSFingerprint: wrong}
	if err := headless.Run(ctx, bad); err == nil || !strings.Contains(err.Error(), "pinned") {
		t.Errorf("a client pinning another fingerprint: %v; want it refused", err)
	}
	done := make(chan error, 1)
	go func() {
		done <- headless.Run(ctx, &headless.Options{Server: base, Run: run.ID, Token: run.token(), Clients: 5,
			SlowMin: 1, SlowMax: 1, Seed: 3, TLSFingerprint: fingerprint})
	}()
	if err := <-done; err != nil {
		t.Fatalf("headless clients: %v", err)
	}
	var rounds []struct {
		Status  string
		Metrics map[string]float64 `json:"metrics"`
		Error   string
	}
	call(t, api, "GET", base+"/api/runs/"+run.ID+"/rounds", nil, &rounds)
	if len(rounds) != 2 {
		t.Fatalf("rounds %+v; want 2", rounds)
	}
	for i, r := range rounds {
		if r.Status != "aggregated" || r.Metrics["secagg_survivors"] != 5 {
			t.Errorf("round %d: %s (%s) with %v survivors; want aggregated from 5 masked inputs", i+1, r.Status, r.Error, r.Metrics["secagg_survivors"])
		}
	}
	var clients []struct {
		ID          string `json:"id"`
		KeyExchange string `json:"key_exchange"`
	}
	call(t, api, "GET", base+"/api/runs/"+run.ID+"/clients", nil, &clients)
	if len(clients) != 5 {
		t.Fatalf("clients %+v; want 5", clients)
	}
	for _, c := range clients {
		if c.KeyExchange != "X25519MLKEM768" {
			t.Errorf("client %s connected with key exchange %q; want X25519MLKEM768", c.ID, c.KeyExchange)
		}
	}
}

// startTLSServer runs the server binary with --tls-self-signed and waits
// until it says where it serves.
func startTLSServer(t *testing.T, bin, addr, db string) *process {
	t.Helper()
	return startServerUntil(t, bin, addr, db, "the server to serve", func(logs *syncBuffer) bool {
		return strings.Contains(logs.String(), "TLS:")
	}, "--tls-self-signed")
}

// call sends a request as the admin and decodes the JSON answer into out.
func call(t *testing.T, c *http.Client, method, url string, body, out any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, rd)
	req.Header.Set("Authorization", "Bearer admin")
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		t.Fatalf("%s %s = %s: %s", method, url, resp.Status, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("%s %s: %v in %s", method, url, err, b)
	}
}
