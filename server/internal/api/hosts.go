package api

import (
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// hostPolicy decides which Host headers the server answers. A DNS
// rebinding attack makes a victim's browser send requests to this server
// under the attacker's domain name, so requests naming a host the server
// does not serve are refused: allowed are IP addresses (a rebinding needs a
// name), localhost, the public URL's host and the configured names.
type hostPolicy struct {
	names []string // lower case, without port
}

func newHostPolicy(publicURL string, extra []string) hostPolicy {
	p := hostPolicy{names: []string{"localhost"}}
	if u, err := url.Parse(publicURL); err == nil && u.Hostname() != "" {
		p.names = append(p.names, strings.ToLower(u.Hostname()))
	}
	for _, h := range extra {
		if h = strings.ToLower(strings.TrimSpace(h)); h != "" {
			p.names = append(p.names, h)
		}
	}
	return p
}

// allows reports whether host (a Host header, maybe with a port) is served.
func (p hostPolicy) allows(host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	h = strings.ToLower(strings.TrimSuffix(strings.Trim(h, "[]"), "."))
	if net.ParseIP(h) != nil {
		return true
	}
	return slices.Contains(p.names, h) || strings.HasSuffix(h, ".localhost")
}

// unguarded are the read-only endpoints that probes and scrapers reach by
// a name the server cannot know (a pod's or a service's): they reveal
// nothing a rebinding page could use.
var unguarded = map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true}

// guard refuses requests for hosts the server does not serve (except GETs
// of the unguarded endpoints).
func (p hostPolicy) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !p.allows(r.Host) && !(r.Method == http.MethodGet && unguarded[r.URL.Path]) {
			writeError(w, http.StatusMisdirectedRequest, "this server does not serve host "+r.Host+
				": open it by its address or its --public-url, or start it with --allow-hosts")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Failed-hello limits per remote address: a burst of helloBurst failures,
// then one more every helloRefill. Guessing a 20-character join token at
// that rate would take longer than the universe has.
const (
	helloBurst    = 10
	helloRefill   = 6 * time.Second
	maxLimitedIPs = 10000
)

// limiter counts failed hellos per remote IP with a token bucket. Safe for
// concurrent use; it forgets addresses whose bucket is full again, and
// holds at most maxLimitedIPs (when full, it refuses newcomers' failures
// only after their own burst, treating the overflow as one address).
type limiter struct {
	now func() time.Time
	mu  sync.Mutex
	ips map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newLimiter(now func() time.Time) *limiter { return &limiter{now: now, ips: map[string]*bucket{}} }

// key is the address a request counts against: its IP, without the port.
func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// refill brings b up to date.
func (l *limiter) refill(b *bucket, now time.Time) {
	b.tokens = min(helloBurst, b.tokens+now.Sub(b.at).Seconds()/helloRefill.Seconds())
	b.at = now
}

// wait returns how long ip must wait before its next hello is heard (0:
// now).
func (l *limiter) wait(ip string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.ips[ip]
	if b == nil && len(l.ips) >= maxLimitedIPs {
		b = l.ips["overflow"]
	}
	if b == nil {
		return 0
	}
	now := l.now()
	l.refill(b, now)
	if b.tokens >= 1 {
		return 0
	}
	return time.Duration((1 - b.tokens) * float64(helloRefill))
}

// fail counts a failed hello from ip.
func (l *limiter) fail(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b := l.ips[ip]
	if b == nil {
		if len(l.ips) >= maxLimitedIPs {
			l.sweep(now)
		}
		if len(l.ips) >= maxLimitedIPs {
			ip = "overflow"
			if b = l.ips[ip]; b == nil {
				b = &bucket{tokens: helloBurst, at: now}
				l.ips[ip] = b
			}
		} else {
			b = &bucket{tokens: helloBurst, at: now}
			l.ips[ip] = b
		}
	}
	l.refill(b, now)
	b.tokens = max(b.tokens-1, -helloBurst) // a debt caps how long one waits
}

// sweep forgets the addresses whose bucket is full again.
func (l *limiter) sweep(now time.Time) {
	for ip, b := range l.ips {
		l.refill(b, now)
		if b.tokens >= helloBurst {
			delete(l.ips, ip)
		}
	}
}
