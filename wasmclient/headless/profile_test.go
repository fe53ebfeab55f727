//go:build !js

package headless

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/qflare/qflare/shared/profile"
	"github.com/qflare/qflare/shared/wire"
)

func TestProfileFlags(t *testing.T) {
	base := []string{"--run", "r", "--token", "t"}
	tests := []struct {
		args []string
		want string // the mix, or the error's text with err
		err  bool
	}{
		{nil, "", false},
		{[]string{"--profile", "phone-low"}, "phone-low", false},
		{[]string{"--profiles", "phone-low:0.3,laptop:0.5,desktop:0.2"}, "phone-low:0.3,laptop:0.5,desktop:0.2", false},
		{[]string{"--profiles", "laptop"}, "laptop", false},
		{[]string{"--profiles", "laptop", "--slowdown", "4"}, "laptop", false},
		{[]string{"--profile", "tablet"}, "--profile: profile: unknown profile \"tablet\" (known: desktop, laptop, phone-high, phone-low, iot)", true},
		{[]string{"--profiles", "laptop:0.5,phone-low:0.4"}, "--profiles: profile: mix shares", true},
		{[]string{"--profiles", "laptop:0.5,phone-low"}, "phone-low has no share", true},
		{[]string{"--profiles", "laptop", "--profile", "iot"}, "not both", true},
	}
	for _, tt := range tests {
		o, _, err := ParseFlags(append(append([]string(nil), base...), tt.args...), io.Discard)
		switch {
		case tt.err && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("ParseFlags(%q) = %v; want an error with %q", tt.args, err, tt.want)
		case !tt.err && err != nil:
			t.Errorf("ParseFlags(%q) = %v; want mix %q", tt.args, err, tt.want)
		case !tt.err && o.Profiles.String() != tt.want:
			t.Errorf("ParseFlags(%q) mix = %q; want %q", tt.args, o.Profiles.String(), tt.want)
		}
	}
}

// TestHelpNamesTheWinner: the help says that a profile wins over
// --slowdown and lists the profiles.
func TestHelpNamesTheWinner(t *testing.T) {
	var b strings.Builder
	ParseFlags([]string{"-h"}, &b)
	help := b.String()
	for _, want := range []string{"--profile/--profiles win over it", "phone-low, iot", "a profile's own drop chance replaces it"} {
		if !strings.Contains(help, want) {
			t.Errorf("help does not say %q:\n%s", want, help)
		}
	}
}

func TestProfilesAssigned(t *testing.T) {
	o, _, err := ParseFlags([]string{"--run", "r", "--token", "t", "--clients", "10", "--seed", "3",
		"--profiles", "phone-low:0.3,laptop:0.5,desktop:0.2"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ps := o.profiles()
	count := map[string]int{}
	for _, p := range ps {
		count[p.Name]++
	}
	if len(ps) != 10 || count["phone-low"] != 3 || count["laptop"] != 5 || count["desktop"] != 2 {
		t.Errorf("10 clients got %v; want 3 phone-low, 5 laptop, 2 desktop", count)
	}
	again := o.profiles()
	for i := range ps {
		if ps[i].Name != again[i].Name {
			t.Fatalf("client %d: %s, then %s; want the same assignment for the same seed", i, ps[i].Name, again[i].Name)
		}
	}
	if (&Options{Clients: 3}).profiles() != nil {
		t.Error("clients without --profiles got profiles")
	}
}

// TestOfflinePeriodsReconnect: a client whose profile goes offline ends
// its session after an online period and comes back after an offline one,
// saying which profile it emulates each time.
func TestOfflinePeriodsReconnect(t *testing.T) {
	blinky := profile.Profile{Name: "blinky", TrainGFLOPS: 1, DownMbps: 1, UpMbps: 1,
		OnlineMean: 20 * time.Millisecond, OfflineMean: 5 * time.Millisecond}
	var mu sync.Mutex
	var hellos []string
	third := make(chan struct{})
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		_, b, err := ws.ReadMessage()
		if err != nil {
			return
		}
		msg, err := wire.ParseMessage(b, wire.MaxMessageBytes)
		if err != nil {
			t.Errorf("bad hello: %v", err)
			return
		}
		mu.Lock()
		hellos = append(hellos, msg.(*wire.Hello).Device.Profile)
		if len(hellos) == 3 {
			close(third)
		}
		mu.Unlock()
		for { // say nothing: the client leaves when its online period ends
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, &Options{Server: srv.URL, Run: "r", Token: "t", Clients: 1, Profiles: profile.Single(blinky)})
	}()
	select {
	case <-third:
	case <-time.After(30 * time.Second):
		t.Fatal("the client did not come back after going offline")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v; want nil after ctx ends", err)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, p := range hellos {
		if p != "blinky" {
			t.Errorf("hello %d: device.profile %q; want blinky", i, p)
		}
	}
}
