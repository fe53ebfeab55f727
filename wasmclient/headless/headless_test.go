//go:build !js

package headless

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"
)

// TestJoinURLs: a join URL the client cannot use fails at once with a
// clear message, and a malformed one does not panic.
func TestJoinURLs(t *testing.T) {
	tests := []struct {
		args []string
		want string // "" = accepted
	}{
		{[]string{"--join", "http://127.0.0.1:8080/join/run-a?token=T"}, ""},
		{[]string{"--join", "https://example.org/join/run-a?token=T"}, ""},
		{[]string{"--join", "/join/run-a?token=T"}, "absolute"},
		{[]string{"--join", "%zz"}, "not a URL"},
		{[]string{"--join", "ftp://host/join/run-a?token=T"}, "absolute"},
		{[]string{"--join", "http:///join/run-a?token=T"}, "no host"},
		{[]string{"--join", "http://host/elsewhere?token=T"}, "not a join URL"},
		{[]string{"--join", "http://host/join/run-a"}, "not a join URL"},
		{[]string{"--server", "127.0.0.1:8080", "--run", "r", "--token", "t"}, "not a URL"},
		{[]string{"--server", "localhost:8080", "--run", "r", "--token", "t"}, "absolute"},
		{[]string{"--server", "http://127.0.0.1:8080", "--run", "r"}, "--token"},
	}
	for _, tt := range tests {
		_, _, err := ParseFlags(tt.args, io.Discard)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("ParseFlags(%q) = %v; want it accepted", tt.args, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("ParseFlags(%q) = %v; want an error mentioning %q", tt.args, err, tt.want)
		}
	}
}

// TestRunRefusesABadServerAtOnce: Run with a server URL it cannot use
// returns an error instead of reconnecting forever.
func TestRunRefusesABadServerAtOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := Run(ctx, &Options{Server: "/join/run-a", Run: "run-a", Token: "T", Clients: 1})
	if err == nil || ctx.Err() != nil {
		t.Fatalf("Run with server %q = %v after %v; want an error at once", "/join/run-a", err, ctx.Err())
	}
}
