package data

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Kind names a family of partition schemes.
type Kind int

// The partition scheme kinds.
const (
	// KindIID shuffles the samples and deals them out evenly.
	KindIID Kind = iota + 1
	// KindDirichlet skews labels: each class is split among the clients in
	// proportions drawn from a symmetric Dirichlet distribution.
	KindDirichlet
	// KindShards sorts the samples by label, cuts them into equal shards
	// and deals each client the same number of random shards.
	KindShards
)

// maxShardsPerClient bounds the K of "shards:K".
const maxShardsPerClient = 1 << 16

// Scheme describes how Partition splits samples among clients. The zero
// Scheme is invalid; make one with ParseScheme.
type Scheme struct {
	Kind   Kind
	Alpha  float64 // KindDirichlet: concentration, finite and > 0; small is skewed
	Shards int     // KindShards: shards per client, > 0
}

// ParseScheme parses "iid", "dirichlet:ALPHA" (ALPHA a finite number > 0,
// for example "dirichlet:0.5") or "shards:K" (K an integer > 0, for example
// "shards:2"). The kind is not case-sensitive.
func ParseScheme(s string) (Scheme, error) {
	kind, arg, hasArg := strings.Cut(s, ":")
	switch strings.ToLower(kind) {
	case "iid":
		if hasArg {
			return Scheme{}, fmt.Errorf("data: scheme %q: iid takes no parameter", s)
		}
		return Scheme{Kind: KindIID}, nil
	case "dirichlet":
		a, err := strconv.ParseFloat(arg, 64)
		if !hasArg || err != nil || math.IsNaN(a) || math.IsInf(a, 0) || a <= 0 {
			return Scheme{}, fmt.Errorf("data: scheme %q: want dirichlet:ALPHA with ALPHA a finite number > 0, e.g. dirichlet:0.5", s)
		}
		return Scheme{Kind: KindDirichlet, Alpha: a}, nil
	case "shards":
		k, err := strconv.Atoi(arg)
		if !hasArg || err != nil || k < 1 || k > maxShardsPerClient {
			return Scheme{}, fmt.Errorf("data: scheme %q: want shards:K with K an integer from 1 to %d, e.g. shards:2", s, maxShardsPerClient)
		}
		return Scheme{Kind: KindShards, Shards: k}, nil
	}
	return Scheme{}, fmt.Errorf("data: unknown partition scheme %q, want iid, dirichlet:ALPHA or shards:K", s)
}

// String returns the scheme in the form ParseScheme reads, such as
// "dirichlet:0.5"; ParseScheme(s.String()) gives s back.
func (s Scheme) String() string {
	switch s.Kind {
	case KindIID:
		return "iid"
	case KindDirichlet:
		return "dirichlet:" + strconv.FormatFloat(s.Alpha, 'g', -1, 64)
	case KindShards:
		return "shards:" + strconv.Itoa(s.Shards)
	}
	return fmt.Sprintf("Scheme(%d)", int(s.Kind))
}

// validate reports whether s could have come from ParseScheme.
func (s Scheme) validate() error {
	switch {
	case s.Kind == KindIID:
		return nil
	case s.Kind == KindDirichlet && s.Alpha > 0 && !math.IsInf(s.Alpha, 1):
		return nil
	case s.Kind == KindShards && s.Shards >= 1 && s.Shards <= maxShardsPerClient:
		return nil
	}
	return fmt.Errorf("data: invalid scheme %+v", s)
}
