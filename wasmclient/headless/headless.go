//go:build !js

// Package headless is the native QFLARE participant: it joins a running
// server over a real WebSocket, like a browser tab does, with the same
// participant logic, and can run many clients of different emulated speeds
// and reliability (and, for robustness studies, malicious ones) from one
// machine: a slowdown factor, or device profiles (package profile) that set
// each client's compute, network and availability. Command wasmclient's
// native build is its command line.
package headless

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/qflare/qflare/shared/adversary"
	"github.com/qflare/qflare/shared/data"
	"github.com/qflare/qflare/shared/link"
	"github.com/qflare/qflare/shared/participant"
	"github.com/qflare/qflare/shared/profile"
	"github.com/qflare/qflare/shared/wire"
)

// Options are the headless client's flags.
// Options configures a set of headless clients.
type Options struct {
	Server, Run, Token string
	Clients            int
	// SlowMin and SlowMax spread the clients' training slowdowns
	// geometrically (1 = full speed).
	SlowMin, SlowMax float64
	// Drop is each client's chance per round to drop its connection in the
	// middle of training.
	Drop float64
	// Profiles, unless zero, gives the clients device profiles in these
	// proportions (profile.Mix.Assign with Seed). A client with a profile
	// trains, downloads and uploads at its device's pace, drops rounds
	// with its DropProb instead of Drop, ignores the slowdown, and goes
	// offline between sessions when the profile has offline periods.
	Profiles profile.Mix
	// Attack is what the attacking clients (a fraction Attackers of them,
	// chosen with Seed) do.
	Attack    adversary.Attack
	Attackers float64
	Seed      uint64
	// Log receives the clients' notable events (default: discarded).
	Log *slog.Logger
	// Events, when set, also receives every client's events.
	Events func(client int, e participant.Event)
}

// ParseFlags reads the command line of the headless client.
func ParseFlags(args []string, stderr io.Writer) (*Options, *slog.Logger, error) {
	fs := flag.NewFlagSet("wasmclient", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &Options{}
	fs.StringVar(&o.Server, "server", "http://127.0.0.1:8080", "server base URL")
	fs.StringVar(&o.Run, "run", "", "run id (or give --join)")
	fs.StringVar(&o.Token, "token", "", "the run's join token")
	join := fs.String("join", "", "a join URL as printed by the server (sets --server, --run and --token)")
	fs.IntVar(&o.Clients, "clients", 1, "participants to run, each on its own connection")
	slow := fs.String("slowdown", "1", "training slowdown factor F, or a range MIN-MAX spread over the clients (emulates slow devices; --profile/--profiles win over it)")
	fs.Float64Var(&o.Drop, "drop", 0, "chance per round that a client drops its connection mid-training (emulates flaky devices; a profile's own drop chance replaces it)")
	mix := fs.String("profiles", "", "device profiles of the clients in proportions, e.g. phone-low:0.3,laptop:0.5,desktop:0.2 (profiles: "+strings.Join(profile.Names(), ", ")+")")
	one := fs.String("profile", "", "one device profile for every client (same as --profiles NAME)")
	attack := fs.String("attack", "none", "attack of the malicious clients: sign-flip, gaussian, scale:K, label-flip")
	fs.Float64Var(&o.Attackers, "attackers", 0, "fraction of the clients that attack")
	fs.Uint64Var(&o.Seed, "seed", 1, "seed for drops, attacks and the choice of attackers")
	quiet := fs.Bool("q", false, "log only warnings and errors")
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	if fs.NArg() > 0 {
		return nil, nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *join != "" {
		if err := o.fromJoinURL(*join); err != nil {
			return nil, nil, err
		}
	}
	var err error
	if o.SlowMin, o.SlowMax, err = parseSlowdown(*slow); err != nil {
		return nil, nil, err
	}
	if o.Attack, err = adversary.Parse(*attack); err != nil {
		return nil, nil, err
	}
	if o.Profiles, err = parseProfiles(*mix, *one); err != nil {
		return nil, nil, err
	}
	if err := o.validate(); err != nil {
		return nil, nil, err
	}
	level := slog.LevelInfo
	if *quiet {
		level = slog.LevelWarn
	}
	return o, slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})), nil
}

// fromJoinURL reads server, run and token from http://HOST/join/RUN?token=T.
func (o *Options) fromJoinURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("--join %q is not a URL: %v", s, err)
	}
	if err := checkServer(u); err != nil {
		return fmt.Errorf("--join %q: %w; give the whole join URL the server prints, like http://host:8080/join/RUN?token=T", s, err)
	}
	run, ok := strings.CutPrefix(u.Path, "/join/")
	if !ok || run == "" || strings.Contains(run, "/") || u.Query().Get("token") == "" {
		return fmt.Errorf("--join %q is not a join URL like http://host:8080/join/RUN?token=T", s)
	}
	o.Server, o.Run, o.Token = u.Scheme+"://"+u.Host, run, u.Query().Get("token")
	return nil
}

// checkServer accepts an absolute http or https URL with a host.
func checkServer(u *url.URL) error {
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("not an absolute http:// or https:// URL")
	case u.Host == "":
		return fmt.Errorf("the URL names no host")
	}
	return nil
}

// validate checks the options Run needs, so that a client that cannot
// work fails at once instead of reconnecting forever.
func (o *Options) validate() error {
	u, err := url.Parse(o.Server)
	if err != nil {
		return fmt.Errorf("--server %q is not a URL: %v", o.Server, err)
	}
	if err := checkServer(u); err != nil {
		return fmt.Errorf("--server %q: %w", o.Server, err)
	}
	switch {
	case o.Run == "" || o.Token == "":
		return errors.New("give --run and --token, or --join URL (the server prints the join URL at start-up)")
	case o.Clients < 1 || o.Clients > 10000:
		return fmt.Errorf("--clients %d is not in 1..10000", o.Clients)
	case !(o.Drop >= 0 && o.Drop <= 1), !(o.Attackers >= 0 && o.Attackers <= 1):
		return fmt.Errorf("--drop %g and --attackers %g must be in [0, 1]", o.Drop, o.Attackers)
	}
	return nil
}

func parseSlowdown(s string) (lo, hi float64, err error) {
	a, b, isRange := strings.Cut(s, "-")
	lo, err1 := strconv.ParseFloat(a, 64)
	hi = lo
	var err2 error
	if isRange {
		hi, err2 = strconv.ParseFloat(b, 64)
	}
	if err1 != nil || err2 != nil || lo < 1 || hi < lo || hi > 1000 {
		return 0, 0, fmt.Errorf("--slowdown %q is not F or MIN-MAX with 1 ≤ MIN ≤ MAX ≤ 1000", s)
	}
	return lo, hi, nil
}

// parseProfiles reads --profiles MIX or --profile NAME (not both; neither
// gives the zero Mix).
func parseProfiles(mix, one string) (profile.Mix, error) {
	switch {
	case mix != "" && one != "":
		return profile.Mix{}, errors.New("give --profiles MIX or --profile NAME, not both")
	case one != "":
		p, err := profile.Lookup(one)
		if err != nil {
			return profile.Mix{}, fmt.Errorf("--profile: %w", err)
		}
		return profile.Single(p), nil
	case mix != "":
		m, err := profile.ParseMix(mix)
		if err != nil {
			return profile.Mix{}, fmt.Errorf("--profiles: %w", err)
		}
		return m, nil
	}
	return profile.Mix{}, nil
}

// profiles returns each client's device profile (nil without --profiles).
func (o *Options) profiles() []profile.Profile {
	if o.Profiles.IsZero() {
		return nil
	}
	return o.Profiles.Assign(o.Clients, o.Seed)
}

// slowdown spreads client i's slowdown geometrically over [slowMin, slowMax].
func (o *Options) slowdown(i int) float64 {
	if o.Clients == 1 || o.SlowMax == o.SlowMin {
		return o.SlowMin
	}
	t := float64(i) / float64(o.Clients-1)
	return o.SlowMin * math.Pow(o.SlowMax/o.SlowMin, t)
}

// Run runs the clients until the run ends (nil), the server refuses them,
// or ctx is done (nil: stopping is not a failure).
func Run(ctx context.Context, o *Options) error {
	if err := o.validate(); err != nil {
		return err
	}
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	attackers, err := adversary.Choose(o.Clients, o.Attackers, o.Seed)
	if err != nil {
		return err
	}
	profiles := o.profiles()
	var wg sync.WaitGroup
	results := make([]error, o.Clients)
	for i := 0; i < o.Clients; i++ {
		po := participant.Options{Run: o.Run, Token: o.Token, Slowdown: o.slowdown(i), DropProb: o.Drop, Seed: o.Seed + uint64(i),
			Device: wire.Device{Kind: wire.DeviceHeadless, UserAgent: "qflare-headless", Platform: runtime.GOOS + "/" + runtime.GOARCH,
				Cores: runtime.NumCPU(), Workers: 1},
			Fetch: o.Fetch}
		if profiles != nil {
			po.Profile, po.Slowdown = &profiles[i], 1
		}
		if attackers[i] {
			po.Attack = o.Attack
		}
		name := fmt.Sprintf("client %d", i+1)
		logEvent := eventLogger(log.With("client", name), name, po.Slowdown, po.Profile, attackers[i])
		po.Events = func(e participant.Event) {
			logEvent(e)
			if o.Events != nil {
				o.Events(i, e)
			}
		}
		cl := participant.New(po)
		avail := rand.New(rand.NewPCG(o.Seed+uint64(i), 0xa7a11ab1e))
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = o.keepConnected(ctx, cl, po.Profile, avail, log.With("client", name))
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return errors.Join(results...)
}

// keepConnected runs sessions with exponential back-off between them until
// the run ends, the server refuses the client, or ctx is done. A client
// whose profile has offline periods (prof, drawn from rng) ends each session
// after a drawn online period and stays away for a drawn offline period.
func (o *Options) keepConnected(ctx context.Context, cl *participant.Client, prof *profile.Profile, rng *rand.Rand, log *slog.Logger) error {
	backoff := 500 * time.Millisecond
	for {
		sctx, cancel := ctx, context.CancelFunc(func() {})
		var online time.Duration
		if prof != nil && !prof.AlwaysOnline() {
			online = prof.OnlinePeriod(rng)
			sctx, cancel = context.WithTimeout(ctx, online)
		}
		conn, err := Dial(sctx, o.Server)
		if err == nil {
			start := time.Now()
			err = cl.Session(sctx, conn)
			if time.Since(start) > time.Minute {
				backoff = 500 * time.Millisecond
			}
		}
		wentOffline := online > 0 && sctx.Err() != nil && ctx.Err() == nil
		cancel()
		var refused *participant.RefusedError
		switch {
		case errors.Is(err, participant.ErrRunEnded):
			return nil
		case errors.As(err, &refused), ctx.Err() != nil:
			return err
		case wentOffline:
			off := prof.OfflinePeriod(rng)
			log.Info("going offline (emulated availability)", "profile", prof.Name, "was_online", online.Round(time.Millisecond),
				"offline_for", off.Round(time.Millisecond))
			if err := sleep(ctx, off); err != nil {
				return err
			}
			backoff = 500 * time.Millisecond
			continue
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		log.Warn("disconnected; reconnecting", "err", err, "in", wait.Round(time.Millisecond))
		if err := sleep(ctx, wait); err != nil {
			return err
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// sleep waits d, or until ctx is done (its error).
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Dial opens a participant WebSocket to the server at base URL server.
func Dial(ctx context.Context, server string) (link.Conn, error) {
	u, err := url.Parse(server)
	if err != nil {
		return nil, err
	}
	if u.Scheme == "https" {
		u.Scheme = "wss"
	} else {
		u.Scheme = "ws"
	}
	u.Path = "/ws"
	ws, resp, err := websocket.DefaultDialer.DialContext(ctx, u.String(), nil)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("connecting to %s: %s", u, resp.Status)
		}
		return nil, fmt.Errorf("connecting to %s: %w", u, err)
	}
	return link.FromSocket(ws, link.SocketOptions{ReadLimit: wire.DefaultMaxFrameBytes}), nil
}

// Fetch downloads a client's data slice (participant.Options.Fetch).
func (o *Options) Fetch(ctx context.Context, w *wire.Welcome) (*data.Set, error) {
	u := strings.TrimRight(o.Server, "/") + w.Slice.URL + "&token=" + url.QueryEscape(o.Token)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return nil, fmt.Errorf("slice download: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	return data.ReadSet(resp.Body, data.MaxSamples)
}

// eventLogger logs a client's notable events.
func eventLogger(log *slog.Logger, name string, slowdown float64, prof *profile.Profile, attacker bool) func(participant.Event) {
	speed := []any{"slowdown", slowdown}
	if prof != nil {
		speed = []any{"profile", prof.Name}
	}
	return func(e participant.Event) {
		switch e.Type {
		case participant.EventWelcome:
			if e.Params > 0 {
				log.Info("joined", append(append([]any{"id", e.ClientID, "model", e.Model, "params", e.Params}, speed...), "attacker", attacker)...)
			}
		case participant.EventUpload:
			log.Info("update sent", "round", e.Round, "bytes", e.Bytes, "loss", round4(e.LocalLoss),
				"accuracy", round4(e.LocalAccuracy), "samples_per_s", math.Round(e.SamplesPerS))
		case participant.EventRejected:
			log.Warn("update rejected", "round", e.Round, "code", e.Code, "reason", e.Message)
		case participant.EventError:
			log.Warn(e.Message, "round", e.Round)
		case participant.EventRoundEnd:
			log.Debug("round ended", "round", e.Round, "test_accuracy", e.TestAccuracy)
		case participant.EventRunEnd:
			log.Warn("run ended", "reason", e.Message, "final_accuracy", round4(e.TestAccuracy))
		}
	}
}

func round4(v float64) float64 { return math.Round(v*1e4) / 1e4 }
