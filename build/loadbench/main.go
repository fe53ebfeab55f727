// Command loadbench is `make bench-load`: it builds the server, starts it
// as its own process (so its memory is its own), and drives it over real
// WebSockets with a load generator that replays valid pre-encoded updates,
// so training costs nothing and the server's ingest is what is measured.
// It prints one JSON line per figure:
//
//	{"what":"load","model":...,"clients":...,"updates_per_s":...,"limit_updates_per_s":...,...}
//	{"what":"idle","sockets":10000,"bytes_per_socket":...,...}
//	{"what":"soak","round":...,"heap_mb":...,"rss_mb":...}   (with -soak N)
//
// With -shard the load clients join through an edge shard instead (-shard
// auto: one shard under workerd, from the bundle make edge builds, in
// front of the server it starts), and the load line adds what the shard
// itself measured: shard_updates_per_s (updates it validated and folded
// per second of its own time: one shard's capacity on this machine) and
// its wasm memory.
//
// limit_updates_per_s is the rate at which this process decodes and folds
// the same updates on all cores, measured in the same run (before and after
// the load, averaged; limit_before_after gives both): the limit of the
// machine. The load generator runs on the same cores as the server,
// and other work on the machine takes its share too, so a load line also
// says where the CPU went over the measured rounds: server_cpu_share and
// generator_cpu_share (of all cores), load_avg, and the comparison that
// neither changes, updates_per_server_cpu_s against
// limit_updates_per_cpu_s (cpu_ratio_to_limit). Progress goes to stderr.
//
//	go run ./build/loadbench [-clients 1000] [-rounds 6] [-idle 10000] [-soak 0] [-pprof DIR] [-bin FILE] [-shard auto|URL]
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"github.com/qflare/qflare/server/edge/workerd"
	"github.com/qflare/qflare/shared/fl"
	"github.com/qflare/qflare/shared/nn"
	"github.com/qflare/qflare/shared/wire"
)

var (
	clients  = flag.Int("clients", 1000, "load clients per run")
	rounds   = flag.Int("rounds", 6, "rounds per load run (the first is not measured)")
	models   = flag.String("models", "mlp:32,mnist-2nn", `models to load ("none": no load run)`)
	codec    = flag.String("codec", "int8+zstd", "update pipeline")
	idle     = flag.Int("idle", 10000, "idle joined sockets to hold (0: skip)")
	soak     = flag.Int("soak", 0, "rounds of a soak of mlp:32 with -clients, memory every 10 (0: skip)")
	quick    = flag.Bool("quick", false, "a small run of everything, to check the harness")
	attach   = flag.String("server", "", "drive this running server (base URL) instead of starting one; its admin token comes from -admin-token")
	pid      = flag.Int("pid", 0, "with -server: the server's process id, for memory figures")
	binPath  = flag.String("bin", "", "run this server binary instead of building ./server (to compare two builds under the same generator)")
	profDir  = flag.String("pprof", "", "write the server's profiles to this `DIR`: CPU (the generator's too) and an execution trace over the measured load rounds, heap and goroutines with the idle sockets held, and the server's /metrics after each load run")
	shardArg = flag.String("shard", "", `drive the load through an edge shard: "auto" (one under workerd, in front of the server started here) or a running shard's base URL`)
	bundle   = flag.String("bundle", "bin/edge", "with -shard auto: the edge bundle (make edge)")
	adminTok = "loadbench-admin"
	shardTok = "loadbench-shard-token"
	out      = json.NewEncoder(os.Stdout)
)

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func main() {
	flag.StringVar(&adminTok, "admin-token", adminTok, "with -server: the server's admin token")
	flag.StringVar(&shardTok, "shard-token", shardTok, "with -shard auto and -server: the server's shard token")
	flag.Parse()
	if *quick {
		*clients, *rounds, *idle = 50, 3, 200
		if *soak > 0 {
			*soak = 20
		}
	}
	dir, err := os.MkdirTemp("", "loadbench")
	if err != nil {
		fatal(err)
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "qflare")
	if *binPath != "" {
		bin = *binPath
	} else if *attach == "" {
		logf("building the server")
		build := exec.Command("go", "build", "-o", bin, "./server")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fatal(fmt.Errorf("building the server: %w", err))
		}
	}
	for _, m := range strings.Split(*models, ",") {
		if m == "none" || m == "" {
			continue
		}
		if err := loadRun(bin, dir, m); err != nil {
			fatal(err)
		}
	}
	if *idle > 0 {
		if err := idleRun(bin, dir); err != nil {
			fatal(err)
		}
	}
	if *soak > 0 {
		if err := soakRun(bin, dir); err != nil {
			fatal(err)
		}
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "loadbench:", err)
	os.Exit(1)
}

// server is a started qflare serve process.
type server struct {
	cmd  *exec.Cmd
	base string
	done chan error
}

// startServer runs `qflare serve` on a free port with a fresh database, or
// attaches to -server.
func startServer(bin, dir, name string) (*server, error) {
	if *attach != "" {
		s := &server{base: strings.TrimRight(*attach, "/")}
		if *pid > 0 {
			s.cmd = &exec.Cmd{Process: &os.Process{Pid: *pid}}
		}
		return s, nil
	}
	db := filepath.Join(dir, name+".db")
	os.Remove(db)
	cmd := exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--db", db, "--admin-token", adminTok, "--shard-token", shardTok)
	stdout, _ := cmd.StdoutPipe()
	logFile, _ := os.Create(filepath.Join(dir, name+".log"))
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, done: make(chan error, 1)}
	go func() { s.done <- cmd.Wait() }()
	sc := bufio.NewScanner(stdout)
	re := regexp.MustCompile(`serving on (http://\S+)`)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			s.base = m[1]
			go io.Copy(io.Discard, stdout)
			return s, nil
		}
	}
	return nil, fmt.Errorf("the server did not start (see %s)", logFile.Name())
}

// stop ends the server (once; a no-op when attached).
func (s *server) stop() {
	if s.done == nil {
		return
	}
	s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		s.cmd.Process.Kill()
	}
	s.done = nil
}

// rssMB reads the server's resident set (current and peak) in MB.
func (s *server) rssMB() (cur, peak float64) {
	if s.cmd == nil {
		return 0, 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0, 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "VmRSS:":
			cur = kb / 1024
		case "VmHWM:":
			peak = kb / 1024
		}
	}
	return cur, peak
}

// heapMB reads the server's Go heap in use from its admin pprof endpoint
// (0 when it has none).
func (s *server) heapMB() float64 {
	req, _ := http.NewRequest("GET", s.base+"/debug/pprof/heap?debug=1", nil)
	req.Header.Set("Authorization", "Bearer "+adminTok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "# HeapInuse = "); ok {
			n, _ := strconv.ParseFloat(v, 64)
			return n / (1 << 20)
		}
	}
	return 0
}

// profile saves what the server answers at path (an admin URL such as
// "/debug/pprof/heap" or "/debug/pprof/profile?seconds=5") under -pprof as
// name; a no-op without it.
func (s *server) profile(path, name string) {
	if *profDir == "" {
		return
	}
	req, _ := http.NewRequest("GET", s.base+path, nil)
	req.Header.Set("Authorization", "Bearer "+adminTok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		logf("profile %s: %v", path, err)
		return
	}
	defer resp.Body.Close()
	os.MkdirAll(*profDir, 0o755)
	f, err := os.Create(filepath.Join(*profDir, name))
	if err != nil {
		logf("profile %s: %v", path, err)
		return
	}
	defer f.Close()
	io.Copy(f, resp.Body)
}

// profileSelf writes the generator's own CPU profile over the next
// seconds (with -pprof): what the load costs on the client side.
func profileSelf(seconds int, name string) {
	if *profDir == "" {
		return
	}
	os.MkdirAll(*profDir, 0o755)
	f, err := os.Create(filepath.Join(*profDir, name))
	if err != nil {
		logf("profile: %v", err)
		return
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		logf("profile: %v", err)
		return
	}
	time.Sleep(time.Duration(seconds) * time.Second)
	pprof.StopCPUProfile()
}

// createRun creates a run and returns its id and join token.
func (s *server) createRun(cfg map[string]any) (id, token string, err error) {
	b, _ := json.Marshal(cfg)
	req, _ := http.NewRequest("POST", s.base+"/api/runs", bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+adminTok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	var r struct {
		RunID   string `json:"id"`
		JoinURL string `json:"join_url"`
		Error   string `json:"error"`
	}
	json.NewDecoder(resp.Body).Decode(&r)
	if resp.StatusCode != http.StatusCreated {
		return "", "", fmt.Errorf("creating a run: %s: %s", resp.Status, r.Error)
	}
	_, token, _ = strings.Cut(r.JoinURL, "token=")
	return r.RunID, token, nil
}

// cpuProfileSeconds is how long the server's CPU is profiled (with -pprof)
// from the start of the measured rounds; give -rounds enough to cover it.
const cpuProfileSeconds = 5

// payloads pre-encodes k distinct valid updates of the model with the
// codec: weights near a fixed random model, which it returns as base (the
// server decodes weights and subtracts its global model, so any valid
// weights make a valid update).
func payloads(model string, codec string, k int) (shapes [][]int, out [][]byte, base []float32, err error) {
	m, err := nn.New(model, nn.Shape{H: 28, W: 28, C: 1}, 10, 1)
	if err != nil {
		return nil, nil, nil, err
	}
	p, err := wire.ParsePipeline(codec)
	if err != nil {
		return nil, nil, nil, err
	}
	shapes = m.TensorShapes()
	rng := rand.New(rand.NewPCG(7, 7))
	for i := range k {
		w := slices.Clone(m.Params)
		for j := range w {
			w[j] += float32(rng.NormFloat64() * 0.01)
		}
		b, err := wire.NewEncoder(p, shapes, uint64(i)).Encode(nil, w, m.Params)
		if err != nil {
			return nil, nil, nil, err
		}
		out = append(out, b)
	}
	return shapes, out, m.Params, nil
}

// limitRate decodes the payloads against base and folds them on all cores
// for about two seconds and returns updates per second: the machine's
// limit. It also returns the rate per CPU-second, which other work on the
// machine does not change. base is real weights, as the server's global
// model is: a zero vector fresh from make would be read from the kernel's
// one zero page, always in cache, and flatter the limit.
func limitRate(shapes [][]int, codec string, pays [][]byte, base []float32) (perS, perCPUS float64) {
	p, _ := wire.ParsePipeline(codec)
	n := 0
	for _, s := range shapes {
		k := 1
		for _, d := range s {
			k *= d
		}
		n += k
	}
	lim := wire.Limits{MaxParams: n, MaxFrameBytes: 5*n + 1<<20}
	var done atomic.Int64
	stop := time.Now().Add(2 * time.Second)
	var wg sync.WaitGroup
	start, cpu0 := time.Now(), selfCPU()
	for g := range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			part := fl.NewPartial(n)
			buf := make([]float32, n)
			for i := g; time.Now().Before(stop); i++ {
				w, err := wire.Decode(p, pays[i%len(pays)], shapes, base, buf, lim)
				if err != nil {
					panic(err)
				}
				for j := range w {
					w[j] -= base[j]
				}
				if err := part.Add(fl.Update{Client: "x", Samples: 600, Delta: w}); err != nil {
					panic(err)
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	secs, cpu := time.Since(start).Seconds(), selfCPU()-cpu0
	return float64(done.Load()) / secs, float64(done.Load()) / cpu
}

// selfCPU is this process's CPU time (user and system) in seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// cpu is the server's CPU time (user and system) in seconds (0 when
// unknown).
func (s *server) cpu() float64 {
	if s.cmd == nil {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// Fields after the command's closing parenthesis; utime and stime are
	// the 14th and 15th of the line, in clock ticks (100 a second on Linux).
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100
}

// loadAvg is the machine's one-minute load average, as /proc/loadavg says.
func loadAvg() float64 {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// loader is one load client: a WebSocket that answers every task with a
// pre-encoded update at once.
type loader struct {
	conn    *websocket.Conn
	frames  *frameCache
	payload []byte
	run     string
	codec   string
	params  int
	ws      string
	token   string
	secret  string
}

// frameCache holds each round's update frames, one per distinct payload,
// framed and masked once (a websocket.PreparedMessage) and written by every
// loader that sends that payload: the generator then spends its CPU on
// sending bytes, not on building, checksumming and masking the same 190 KB
// a thousand times a round, and leaves the cores to the server it
// measures. Masking every frame with one key is what a client may not do
// on the open internet; it changes nothing for the server, which unmasks
// each frame with the key it carries.
type frameCache struct {
	mu    sync.Mutex
	round int
	m     map[*byte]*preparedFrame
}

type preparedFrame struct {
	pm   *websocket.PreparedMessage
	size int
}

func newFrameCache() *frameCache { return &frameCache{m: map[*byte]*preparedFrame{}} }

// get returns l's update frame for the round rs starts, and its size.
func (c *frameCache) get(l *loader, rs *wire.RoundStart) (*websocket.PreparedMessage, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if rs.Round != c.round {
		c.round, c.m = rs.Round, map[*byte]*preparedFrame{}
	}
	if f := c.m[&l.payload[0]]; f != nil {
		return f.pm, f.size
	}
	b, err := wire.AppendFrame(nil, &wire.FrameHeader{Kind: wire.KindUpdate, Run: l.run, Round: rs.Round,
		ModelVersion: rs.ModelVersion, Codec: l.codec, Params: l.params, Samples: 600}, l.payload)
	if err != nil {
		panic(err)
	}
	pm, err := websocket.NewPreparedMessage(websocket.BinaryMessage, b)
	if err != nil {
		panic(err)
	}
	c.m[&l.payload[0]] = &preparedFrame{pm: pm, size: len(b)}
	return pm, len(b)
}

// roundStats is what the loaders saw of one round.
type roundStats struct {
	mu        sync.Mutex
	accepted  map[int]int
	lastAck   map[int]time.Time
	firstTask map[int]time.Time
	ends      map[int]time.Time
	bytes     map[int]int64
}

func newRoundStats() *roundStats {
	return &roundStats{accepted: map[int]int{}, lastAck: map[int]time.Time{}, firstTask: map[int]time.Time{},
		ends: map[int]time.Time{}, bytes: map[int]int64{}}
}

// join dials and says hello; it returns once welcomed.
func (l *loader) join() error {
	d := websocket.Dialer{HandshakeTimeout: time.Minute, ReadBufferSize: 4096, WriteBufferSize: 4096}
	c, _, err := d.Dial(l.ws, nil)
	if err != nil {
		return err
	}
	l.conn = c
	c.SetReadLimit(64 << 20)
	b, _ := wire.Marshal(&wire.Hello{V: wire.Version, Run: l.run, Token: l.token,
		Device: wire.Device{Kind: wire.DeviceHeadless, UserAgent: "qflare-loadbench"}})
	if err := c.WriteMessage(websocket.TextMessage, b); err != nil {
		return err
	}
	_, msg, err := c.ReadMessage()
	if err != nil {
		return err
	}
	m, err := wire.ParseMessage(msg, wire.MaxMessageBytes)
	if err != nil {
		return err
	}
	if _, ok := m.(*wire.Welcome); !ok {
		return fmt.Errorf("hello answered %s", msg)
	}
	return nil
}

// serve answers tasks until the connection ends; st collects what it saw.
func (l *loader) serve(st *roundStats) {
	var rs *wire.RoundStart
	var text bytes.Buffer
	var h msgHead
	for {
		typ, rd, err := l.conn.NextReader()
		if err != nil {
			return
		}
		if typ == websocket.BinaryMessage {
			// The model: dropped as it is read, into no buffer.
			if _, err := io.Copy(io.Discard, rd); err != nil {
				return
			}
			if rs == nil {
				continue
			}
			f, size := l.frames.get(l, rs)
			if err := l.conn.WritePreparedMessage(f); err != nil {
				return
			}
			st.mu.Lock()
			st.bytes[rs.Round] += int64(size)
			st.mu.Unlock()
			rs = nil
			continue
		}
		text.Reset()
		if _, err := text.ReadFrom(rd); err != nil {
			return
		}
		// Only the type and the round matter here: one plain decode, not
		// the strict checks a client runs (they cost the generator a
		// quarter of its CPU, taken from the server it measures).
		h = msgHead{}
		if json.Unmarshal(text.Bytes(), &h) != nil {
			continue
		}
		now := time.Now()
		switch h.Type {
		case typeRoundStart:
			rs = &wire.RoundStart{Round: h.Round, ModelVersion: h.ModelVersion}
			st.mu.Lock()
			if _, ok := st.firstTask[h.Round]; !ok {
				st.firstTask[h.Round] = now
			}
			st.mu.Unlock()
		case typeAccepted:
			st.mu.Lock()
			st.accepted[h.Round]++
			if now.After(st.lastAck[h.Round]) {
				st.lastAck[h.Round] = now
			}
			st.mu.Unlock()
		case typeRoundEnd:
			st.mu.Lock()
			if _, ok := st.ends[h.Round]; !ok {
				st.ends[h.Round] = now
			}
			st.mu.Unlock()
		case typeRunEnd:
			return
		}
	}
}

// msgHead is what a load client reads of a server message.
type msgHead struct {
	Type         string `json:"type"`
	Round        int    `json:"round"`
	ModelVersion int64  `json:"model_version"`
}

var (
	typeRoundStart = (*wire.RoundStart).Type(nil)
	typeAccepted   = (*wire.Accepted).Type(nil)
	typeRoundEnd   = (*wire.RoundEnd).Type(nil)
	typeRunEnd     = (*wire.RunEnd).Type(nil)
)

// joinAll connects n loaders, 64 at a time.
func joinAll(ls []*loader) error {
	sem := make(chan struct{}, 64)
	errs := make(chan error, len(ls))
	var wg sync.WaitGroup
	for _, l := range ls {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := l.join(); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// loadRun measures ingest for one model: -clients loaders, fraction 1,
// -rounds rounds; the first round (joins, first encodes) is not measured.
func loadRun(bin, dir, model string) error {
	shapes, pays, weights, err := payloads(model, *codec, 16)
	if err != nil {
		return err
	}
	params := 0
	for _, s := range shapes {
		k := 1
		for _, d := range s {
			k *= d
		}
		params += k
	}
	logf("%s: measuring the machine's decode+fold limit", model)
	limit0, limitCPU0 := limitRate(shapes, *codec, pays, weights)
	srv, err := startServer(bin, dir, "load-"+strings.ReplaceAll(model, ":", "-"))
	if err != nil {
		return err
	}
	defer srv.stop()
	run, token, err := srv.createRun(map[string]any{"name": "loadbench " + model, "model": model, "clients": *clients,
		"fraction": 1, "min_clients": *clients, "rounds": *rounds, "codec": *codec, "down_codec": "int8+zstd",
		"eval_limit": 1000, "round_deadline": "10m"})
	if err != nil {
		return err
	}
	base, sh, err := shardFor(srv)
	if err != nil {
		return err
	}
	if sh != nil {
		defer sh.Kill()
	}
	ws := "ws" + strings.TrimPrefix(base, "http") + "/ws"
	ls := make([]*loader, *clients)
	frames := newFrameCache()
	for i := range ls {
		ls[i] = &loader{frames: frames, payload: pays[i%len(pays)], run: run, codec: *codec, params: params, ws: ws, token: token}
	}
	logf("%s: %d clients joining through %s", model, len(ls), base)
	if err := joinAll(ls); err != nil {
		return fmt.Errorf("joining: %w", err)
	}
	st := newRoundStats()
	var wg sync.WaitGroup
	for _, l := range ls {
		wg.Go(func() { l.serve(st) })
	}
	// The CPU both processes spend over the measured rounds, read when
	// round 1 and round R end.
	var cpuServer, cpuGen [2]float64
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for i, n := range []int{1, *rounds} {
			for {
				st.mu.Lock()
				_, ok := st.ends[n]
				st.mu.Unlock()
				if ok {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
			cpuServer[i], cpuGen[i] = srv.cpu(), selfCPU()
			if i == 0 {
				name := strings.ReplaceAll(model, ":", "-")
				go srv.profile(fmt.Sprintf("/debug/pprof/profile?seconds=%d", cpuProfileSeconds), "cpu-"+name+".pb.gz")
				go profileSelf(cpuProfileSeconds, "cpu-generator-"+name+".pb.gz")
				// What a CPU profile cannot show, waiting: go tool trace
				// -pprof=sync (or net, syscall, sched) on it.
				go srv.profile("/debug/pprof/trace?seconds=2", "trace-"+name+".out")
			}
		}
	}()
	wg.Wait()
	<-watched
	for _, l := range ls {
		l.conn.Close()
	}
	// The server's own histograms (commit, decode, evaluation, ...) over the
	// whole run, beside the profiles.
	srv.profile("/metrics", "metrics-"+strings.ReplaceAll(model, ":", "-")+".txt")
	_, peak := srv.rssMB()
	// Other work on the machine comes and goes: the limit is measured again
	// after the load, and the two are averaged.
	srv.stop()
	logf("%s: measuring the limit again", model)
	limit1, limitCPU1 := limitRate(shapes, *codec, pays, weights)
	limit, limitCPU := (limit0+limit1)/2, (limitCPU0+limitCPU1)/2
	// Measured: rounds 2..R, from the end of round 1 to the end of round R.
	st.mu.Lock()
	defer st.mu.Unlock()
	var accepted int
	var bytesUp int64
	var closes, opens, ingests []float64
	for n := 2; n <= *rounds; n++ {
		accepted += st.accepted[n]
		bytesUp += st.bytes[n]
		if !st.lastAck[n].IsZero() && !st.ends[n].IsZero() {
			closes = append(closes, float64(st.ends[n].Sub(st.lastAck[n]).Milliseconds()))
			opens = append(opens, float64(st.firstTask[n].Sub(st.ends[n-1]).Milliseconds()))
			ingests = append(ingests, float64(st.lastAck[n].Sub(st.firstTask[n]).Milliseconds()))
		}
	}
	secs := st.ends[*rounds].Sub(st.ends[1]).Seconds()
	if secs <= 0 || accepted == 0 {
		return fmt.Errorf("%s: no measured rounds completed (accepted %d)", model, accepted)
	}
	rate := float64(accepted) / secs
	cores := float64(runtime.NumCPU())
	srvCPU, genCPU := cpuServer[1]-cpuServer[0], cpuGen[1]-cpuGen[0]
	line := map[string]any{"what": "load", "model": model, "codec": *codec, "clients": *clients,
		"rounds": *rounds - 1, "updates_per_s": round1(rate), "limit_updates_per_s": round1(limit),
		"ratio_to_limit": round3(rate / limit), "limit_before_after": []float64{round1(limit0), round1(limit1)},
		"mb_per_s": round1(float64(bytesUp) / secs / 1e6), "cores": cores, "load_avg": loadAvg(),
		"server_cpu_share": round3(srvCPU / secs / cores), "generator_cpu_share": round3(genCPU / secs / cores),
		"updates_per_server_cpu_s": round1(float64(accepted) / srvCPU), "limit_updates_per_cpu_s": round1(limitCPU),
		"cpu_ratio_to_limit": round3(float64(accepted) / srvCPU / limitCPU), "round_close_ms": median(closes),
		"round_open_ms": median(opens), "round_ingest_ms": median(ingests),
		"round_ms": round1(secs * 1000 / float64(*rounds-1)), "rss_mb": round1(peak),
		"update_bytes": len(pays[0])}
	if base != srv.base {
		line["via"] = "shard"
		if st, err := shardStatus(base); err == nil && st.FoldMS > 0 {
			line["shard_updates_per_s"] = round1(float64(st.Folded) / (st.FoldMS / 1000))
			line["shard_folded"] = st.Folded
			line["shard_memory_mb"] = round1(st.MemoryMB)
		} else {
			logf("the shard's status: %v", err)
		}
	}
	out.Encode(line)
	return nil
}

// idleRun holds -idle joined sockets on one run while another run of 20
// clients keeps going, and reports the server's memory per idle socket and
// the active run's round time with and without them.
func idleRun(bin, dir string) error {
	shapes, pays, _, err := payloads("mlp:32", *codec, 4)
	if err != nil {
		return err
	}
	params := 0
	for _, s := range shapes {
		params += prod(s)
	}
	srv, err := startServer(bin, dir, "idle")
	if err != nil {
		return err
	}
	defer srv.stop()
	ws := "ws" + strings.TrimPrefix(srv.base, "http") + "/ws"
	const active = 20
	measure := func(label string, n int) (float64, error) {
		run, token, err := srv.createRun(map[string]any{"name": "active " + label, "model": "mlp:32", "clients": active,
			"fraction": 1, "min_clients": active, "rounds": n + 1, "codec": *codec, "eval_limit": 1000})
		if err != nil {
			return 0, err
		}
		ls := make([]*loader, active)
		frames := newFrameCache()
		for i := range ls {
			ls[i] = &loader{frames: frames, payload: pays[i%len(pays)], run: run, codec: *codec, params: params, ws: ws, token: token}
		}
		if err := joinAll(ls); err != nil {
			return 0, err
		}
		st := newRoundStats()
		var wg sync.WaitGroup
		for _, l := range ls {
			wg.Go(func() { l.serve(st) })
		}
		wg.Wait()
		var ms []float64
		for r := 2; r <= n+1; r++ {
			ms = append(ms, float64(st.ends[r].Sub(st.ends[r-1]).Milliseconds()))
		}
		return median(ms), nil
	}
	alone, err := measure("alone", 10)
	if err != nil {
		return err
	}
	runtime.GC()
	time.Sleep(2 * time.Second)
	before, _ := srv.rssMB()
	run, token, err := srv.createRun(map[string]any{"name": "idle", "model": "mlp:32", "clients": *idle,
		"start_clients": *idle, "clients_per_round": 1, "rounds": 1, "round_deadline": "24h", "eval_limit": 100})
	if err != nil {
		return err
	}
	logf("idle: %d sockets joining", *idle)
	ls := make([]*loader, *idle)
	for i := range ls {
		ls[i] = &loader{run: run, ws: ws, token: token}
	}
	if err := joinAll(ls); err != nil {
		return fmt.Errorf("idle sockets joining: %w", err)
	}
	// The idle sockets read (and drop) what the server sends.
	for _, l := range ls {
		go func() {
			for {
				if _, _, err := l.conn.ReadMessage(); err != nil {
					return
				}
			}
		}()
	}
	time.Sleep(5 * time.Second)
	after, _ := srv.rssMB()
	srv.profile("/debug/pprof/heap", "idle-heap.pb.gz")
	srv.profile("/debug/pprof/goroutine?debug=1", "idle-goroutines.txt")
	srv.profile("/metrics", "idle-metrics.txt")
	with, err := measure("with idle sockets", 10)
	if err != nil {
		return err
	}
	held := 0
	for _, l := range ls {
		if l.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(time.Second)) == nil {
			held++
		}
	}
	out.Encode(map[string]any{"what": "idle", "sockets": *idle, "held": held,
		"bytes_per_socket": int((after - before) * (1 << 20) / float64(*idle)), "rss_mb_before": round1(before),
		"rss_mb_after": round1(after), "active_round_ms_alone": alone, "active_round_ms_with_idle": with})
	for _, l := range ls {
		l.conn.Close()
	}
	return nil
}

// soakRun runs -soak rounds of mlp:32 with -clients loaders and prints the
// server's memory every 10 rounds.
func soakRun(bin, dir string) error {
	shapes, pays, _, err := payloads("mlp:32", *codec, 16)
	if err != nil {
		return err
	}
	params := 0
	for _, s := range shapes {
		params += prod(s)
	}
	srv, err := startServer(bin, dir, "soak")
	if err != nil {
		return err
	}
	defer srv.stop()
	run, token, err := srv.createRun(map[string]any{"name": "soak", "model": "mlp:32", "clients": *clients, "fraction": 1,
		"min_clients": *clients, "rounds": *soak, "codec": *codec, "down_codec": "int8+zstd", "eval_limit": 1000})
	if err != nil {
		return err
	}
	ws := "ws" + strings.TrimPrefix(srv.base, "http") + "/ws"
	ls := make([]*loader, *clients)
	frames := newFrameCache()
	for i := range ls {
		ls[i] = &loader{frames: frames, payload: pays[i%len(pays)], run: run, codec: *codec, params: params, ws: ws, token: token}
	}
	if err := joinAll(ls); err != nil {
		return err
	}
	st := newRoundStats()
	var wg sync.WaitGroup
	for _, l := range ls {
		wg.Go(func() { l.serve(st) })
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		next := 10
		for ctx.Err() == nil {
			st.mu.Lock()
			_, ok := st.ends[next]
			st.mu.Unlock()
			if ok {
				rss, _ := srv.rssMB()
				out.Encode(map[string]any{"what": "soak", "round": next, "heap_mb": round1(srv.heapMB()), "rss_mb": round1(rss)})
				next += 10
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	wg.Wait()
	cancel()
	if len(st.ends) < *soak {
		return errors.New("soak: the run did not finish")
	}
	return nil
}

func prod(s []int) int {
	k := 1
	for _, d := range s {
		k *= d
	}
	return k
}

func median(x []float64) float64 {
	if len(x) == 0 {
		return 0
	}
	y := slices.Clone(x)
	slices.Sort(y)
	return y[len(y)/2]
}

func round1(v float64) float64 { return float64(int64(v*10+0.5)) / 10 }
func round3(v float64) float64 { return float64(int64(v*1000+0.5)) / 1000 }

// shardFor returns where load clients connect: the server, or with -shard
// the shard (started here under workerd with -shard auto, linked to srv).
func shardFor(srv *server) (base string, sh *workerd.Shard, err error) {
	switch *shardArg {
	case "":
		return srv.base, nil, nil
	case "auto":
		bin, why := workerd.Find(".")
		if bin == "" {
			return "", nil, errors.New(why)
		}
		logFile, _ := os.CreateTemp("", "loadbench-workerd-*.log")
		sh, err = workerd.Start(context.Background(), workerd.Options{Bin: bin, Bundle: *bundle, Name: "loadbench",
			Origin: srv.base, Token: shardTok, Log: logFile})
		if err != nil {
			return "", nil, fmt.Errorf("starting the shard (make edge builds %s): %w", *bundle, err)
		}
		if err := sh.WaitLinked(30 * time.Second); err != nil {
			sh.Kill()
			return "", nil, err
		}
		logf("shard under workerd at %s (log %s)", sh.URL, logFile.Name())
		return sh.URL, sh, nil
	}
	return strings.TrimRight(*shardArg, "/"), nil, nil
}

// shardStatus reads a shard's counters.
func shardStatus(base string) (st struct {
	Folded   int64   `json:"folded"`
	FoldMS   float64 `json:"fold_ms"`
	MemoryMB float64 `json:"memory_mb"`
}, err error) {
	res, err := http.Get(base + "/shard/status")
	if err != nil {
		return st, err
	}
	defer res.Body.Close()
	err = json.NewDecoder(res.Body).Decode(&st)
	return st, err
}
