package main

import (
	"bytes"
	"flag"
	"net"
	"strings"
	"testing"
	"time"
)

// TestServeConfigFromEnv: every serve flag can come from its QFLARE_
// variable, a flag on the command line beats the variable, and bad values
// are errors that name the variable.
func TestServeConfigFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    serveConfig
		wantErr string
	}{
		{name: "defaults", want: serveConfig{addr: "127.0.0.1:8080", db: "qflare.db", grace: 20 * time.Second}},
		{name: "every variable", env: map[string]string{
			"QFLARE_ADDR": "0.0.0.0:9090", "QFLARE_DB": "/data/q.db", "QFLARE_DEMO": "true", "QFLARE_ADMIN_TOKEN": "s3cret",
			"QFLARE_PUBLIC_URL": "https://fl.example.org", "QFLARE_ALLOW_ORIGINS": "https://a.example", "QFLARE_DATA_DIR": "/datasets",
			"QFLARE_LOG_JSON": "1", "QFLARE_GRACE": "45s"},
			want: serveConfig{addr: "0.0.0.0:9090", db: "/data/q.db", demo: true, adminToken: "s3cret", publicURL: "https://fl.example.org",
				origins: "https://a.example", dataDir: "/datasets", logJSON: true, grace: 45 * time.Second}},
		{name: "flag beats variable", args: []string{"--addr", "127.0.0.1:7000", "--demo=false", "--grace", "5s"},
			env:  map[string]string{"QFLARE_ADDR": "0.0.0.0:9090", "QFLARE_DEMO": "true", "QFLARE_GRACE": "45s", "QFLARE_DB": "/data/q.db"},
			want: serveConfig{addr: "127.0.0.1:7000", db: "/data/q.db", grace: 5 * time.Second}},
		{name: "empty variable is unset", env: map[string]string{"QFLARE_DB": ""},
			want: serveConfig{addr: "127.0.0.1:8080", db: "qflare.db", grace: 20 * time.Second}},
		{name: "bad bool", env: map[string]string{"QFLARE_DEMO": "yes please"}, wantErr: "$QFLARE_DEMO"},
		{name: "bad duration", env: map[string]string{"QFLARE_GRACE": "soon"}, wantErr: "$QFLARE_GRACE"},
		{name: "grace too long", env: map[string]string{"QFLARE_GRACE": "1h"}, wantErr: "--grace 1h0m0s is not in"},
		{name: "grace too short", args: []string{"--grace", "10ms"}, wantErr: "--grace 10ms is not in"},
		{name: "unknown variables are ignored", env: map[string]string{"QFLARE_NOPE": "x", "QFLARE_CHROME": "/usr/bin/chromium"},
			want: serveConfig{addr: "127.0.0.1:8080", db: "qflare.db", grace: 20 * time.Second}},
		{name: "stray argument", args: []string{"extra"}, wantErr: "unexpected argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lookup := func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }
			var stderr bytes.Buffer
			got, err := parseServe(tt.args, lookup, &stderr)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseServe(%q, %v) = %v; want an error containing %q", tt.args, tt.env, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseServe(%q, %v) = %v", tt.args, tt.env, err)
			}
			if *got != tt.want {
				t.Errorf("parseServe(%q, %v) = %+v; want %+v", tt.args, tt.env, *got, tt.want)
			}
		})
	}
}

// TestServeHelpListsVariables: serve --help names every flag's variable.
func TestServeHelpListsVariables(t *testing.T) {
	var stderr bytes.Buffer
	if _, err := parseServe([]string{"--help"}, func(string) (string, bool) { return "", false }, &stderr); err != flag.ErrHelp {
		t.Fatalf("parseServe(--help) = %v; want flag.ErrHelp", err)
	}
	help := stderr.String()
	for _, name := range []string{"addr", "db", "demo", "admin-token", "public-url", "allow-origins", "data-dir", "log-json", "grace"} {
		if v := envName(name); !strings.Contains(help, "--"+name) || !strings.Contains(help, "($"+v+")") {
			t.Errorf("serve --help does not list --%s with $%s:\n%s", name, v, help)
		}
	}
}

func TestEnvName(t *testing.T) {
	for in, want := range map[string]string{"addr": "QFLARE_ADDR", "admin-token": "QFLARE_ADMIN_TOKEN", "log-json": "QFLARE_LOG_JSON"} {
		if got := envName(in); got != want {
			t.Errorf("envName(%q) = %q; want %q", in, got, want)
		}
	}
}

func TestReachableAddr(t *testing.T) {
	ips := func(ss ...string) []net.IP {
		var out []net.IP
		for _, s := range ss {
			out = append(out, net.ParseIP(s))
		}
		return out
	}
	tests := []struct {
		listen string
		addrs  []net.IP
		want   string
	}{
		{"127.0.0.1:8080", ips("192.168.1.5"), "127.0.0.1:8080"},
		{"192.168.1.5:9000", ips("10.0.0.2"), "192.168.1.5:9000"},
		{"0.0.0.0:8080", ips("127.0.0.1", "fe80::1", "2001:db8::5", "192.168.1.5"), "192.168.1.5:8080"},
		{"0.0.0.0:8080", ips("127.0.0.1", "169.254.3.4", "2001:db8::5"), "[2001:db8::5]:8080"},
		{"[::]:8080", ips("::1", "127.0.0.1"), "127.0.0.1:8080"},
		{"0.0.0.0:8080", nil, "127.0.0.1:8080"},
	}
	for _, tt := range tests {
		ln, err := net.ResolveTCPAddr("tcp", tt.listen)
		if err != nil {
			t.Fatal(err)
		}
		if got := reachableAddr(ln, tt.addrs); got != tt.want {
			t.Errorf("reachableAddr(%s, %v) = %s; want %s", tt.listen, tt.addrs, got, tt.want)
		}
	}
}
