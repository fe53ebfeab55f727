package data

import (
	"strings"
	"testing"
)

func TestParseScheme(t *testing.T) {
	tests := []struct {
		in   string
		want Scheme
		str  string
	}{
		{"iid", Scheme{Kind: KindIID}, "iid"},
		{"IID", Scheme{Kind: KindIID}, "iid"},
		{"dirichlet:0.5", Scheme{Kind: KindDirichlet, Alpha: 0.5}, "dirichlet:0.5"},
		{"dirichlet:1e-3", Scheme{Kind: KindDirichlet, Alpha: 0.001}, "dirichlet:0.001"},
		{"dirichlet:100", Scheme{Kind: KindDirichlet, Alpha: 100}, "dirichlet:100"},
		{"dirichlet:0.1", Scheme{Kind: KindDirichlet, Alpha: 0.1}, "dirichlet:0.1"},
		{"shards:2", Scheme{Kind: KindShards, Shards: 2}, "shards:2"},
		{"Shards:10", Scheme{Kind: KindShards, Shards: 10}, "shards:10"},
	}
	for _, tt := range tests {
		got, err := ParseScheme(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseScheme(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			continue
		}
		if s := got.String(); s != tt.str {
			t.Errorf("ParseScheme(%q).String() = %q; want %q", tt.in, s, tt.str)
		}
		if back, err := ParseScheme(got.String()); err != nil || back != got {
			t.Errorf("ParseScheme(%q) = %+v, %v; want %+v", got.String(), back, err, got)
		}
	}
}

func TestParseSchemeErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "unknown partition scheme"},
		{"foo", "unknown partition scheme"},
		{"iid:3", "iid takes no parameter"},
		{"dirichlet", "want dirichlet:ALPHA"},
		{"dirichlet:", "want dirichlet:ALPHA"},
		{"dirichlet:-1", "want dirichlet:ALPHA"},
		{"dirichlet:0", "want dirichlet:ALPHA"},
		{"dirichlet:NaN", "want dirichlet:ALPHA"},
		{"dirichlet:inf", "want dirichlet:ALPHA"},
		{"dirichlet:1e400", "want dirichlet:ALPHA"},
		{"dirichlet:x", "want dirichlet:ALPHA"},
		{"shards:0", "want shards:K"},
		{"shards:-2", "want shards:K"},
		{"shards:1.5", "want shards:K"},
		{"shards", "want shards:K"},
		{"shards:99999999", "want shards:K"},
	}
	for _, tt := range tests {
		got, err := ParseScheme(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "\""+tt.in+"\"") {
			t.Errorf("ParseScheme(%q) = %+v, %v; want error quoting the input and containing %q", tt.in, got, err, tt.want)
		}
	}
}

func TestSchemeStringInvalid(t *testing.T) {
	if got, want := (Scheme{}).String(), "Scheme(0)"; got != want {
		t.Errorf("Scheme{}.String() = %q; want %q", got, want)
	}
}
