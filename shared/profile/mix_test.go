package profile

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseMix(t *testing.T) {
	tests := []struct {
		in   string
		want string // String() of the result, or the error's text
		err  bool
	}{
		{"laptop", "laptop", false},
		{" laptop ", "laptop", false},
		{"laptop:1", "laptop", false},
		{"phone-low:0.3,laptop:0.5,desktop:0.2", "phone-low:0.3,laptop:0.5,desktop:0.2", false},
		{"phone-low: 0.3 , laptop:0.7", "phone-low:0.3,laptop:0.7", false},
		{"iot:0.1,phone-low:0.2,phone-high:0.3,laptop:0.25,desktop:0.15", "iot:0.1,phone-low:0.2,phone-high:0.3,laptop:0.25,desktop:0.15", false},
		{"phone-low:0.3333333,laptop:0.6666667", "phone-low:0.3333333,laptop:0.6666667", false}, // within 1e-6
		{"", "empty mix", true},
		{"tablet", "unknown profile", true},
		{"laptop:0.5,tablet:0.5", "unknown profile", true},
		{"laptop:0.5,phone-low", "phone-low has no share", true},
		{"laptop:0.5,laptop:0.5", "laptop twice", true},
		{"laptop:0.5,phone-low:0.4", "sum to 0.9", true},
		{"laptop:0.6,phone-low:0.6", "sum to 1.2", true},
		{"laptop:0", "not a number in (0, 1]", true},
		{"laptop:-0.5,desktop:1.5", "not a number in (0, 1]", true},
		{"laptop:NaN", "not a number in (0, 1]", true},
		{"laptop:x", "not a number in (0, 1]", true},
		{"laptop:0.5,", "unknown profile", true},
		{"Laptop", "unknown profile", true},
	}
	for _, tt := range tests {
		m, err := ParseMix(tt.in)
		switch {
		case tt.err && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("ParseMix(%q) = %v, %v; want an error with %q", tt.in, m, err, tt.want)
		case !tt.err && err != nil:
			t.Errorf("ParseMix(%q) = %v; want %s", tt.in, err, tt.want)
		case !tt.err && m.String() != tt.want:
			t.Errorf("ParseMix(%q).String() = %q; want %q", tt.in, m.String(), tt.want)
		}
	}
	if _, err := ParseMix("tablet"); !errors.Is(err, ErrUnknown) {
		t.Errorf("ParseMix(tablet) = %v; want ErrUnknown", err)
	}
}

// TestMixRoundTrip: ParseMix reads back what String writes.
func TestMixRoundTrip(t *testing.T) {
	for _, s := range []string{"laptop", "phone-low:0.3,laptop:0.5,desktop:0.2", "iot:0.125,desktop:0.875"} {
		m, err := ParseMix(s)
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseMix(m.String())
		if err != nil || !reflect.DeepEqual(back, m) {
			t.Errorf("ParseMix(%q) = %v, %v; want %v", m.String(), back, err, m)
		}
	}
}

func TestCounts(t *testing.T) {
	tests := []struct {
		mix  string
		n    int
		want []int
	}{
		{"phone-low:0.3,laptop:0.5,desktop:0.2", 100, []int{30, 50, 20}},
		{"phone-low:0.3,laptop:0.5,desktop:0.2", 10, []int{3, 5, 2}},
		// Quotas 2.1, 3.5, 1.4: floors 2, 3, 1 and one left for the
		// largest remainder (laptop's 0.5).
		{"phone-low:0.3,laptop:0.5,desktop:0.2", 7, []int{2, 4, 1}},
		// Quotas 0.3, 0.5, 0.2: the one device goes to laptop.
		{"phone-low:0.3,laptop:0.5,desktop:0.2", 1, []int{0, 1, 0}},
		// Equal remainders: the earlier part wins.
		{"phone-low:0.5,laptop:0.5", 3, []int{2, 1}},
		{"iot:0.1,phone-low:0.2,phone-high:0.3,laptop:0.25,desktop:0.15", 9, []int{1, 2, 3, 2, 1}},
		{"laptop", 5, []int{5}},
		{"laptop:0.29,desktop:0.71", 100, []int{29, 71}},
		{"laptop", 0, []int{0}},
	}
	for _, tt := range tests {
		m, err := ParseMix(tt.mix)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Counts(tt.n); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseMix(%q).Counts(%d) = %v; want %v", tt.mix, tt.n, got, tt.want)
		}
	}
}

func TestAssign(t *testing.T) {
	m, _ := ParseMix("phone-low:0.3,laptop:0.5,desktop:0.2")
	a := m.Assign(100, 7)
	count := map[string]int{}
	for _, p := range a {
		count[p.Name]++
	}
	if want := map[string]int{"phone-low": 30, "laptop": 50, "desktop": 20}; !reflect.DeepEqual(count, want) {
		t.Errorf("Assign(100, 7) counts %v; want %v", count, want)
	}
	if b := m.Assign(100, 7); !reflect.DeepEqual(names(a), names(b)) {
		t.Error("Assign(100, 7) twice gave different orders; want the same")
	}
	if c := m.Assign(100, 8); reflect.DeepEqual(names(a), names(c)) {
		t.Error("Assign with seeds 7 and 8 gave the same order; want it shuffled by the seed")
	}
	if first := names(a)[:30]; allSame(first) {
		t.Errorf("the first 30 devices are all %s; want the order shuffled", first[0])
	}
	if got := m.Assign(0, 1); len(got) != 0 {
		t.Errorf("Assign(0, 1) = %v; want none", got)
	}
}

// TestAssignIsStable pins the order for one seed, so a change of shuffle
// (which would change every simulation's population) is noticed.
func TestAssignIsStable(t *testing.T) {
	m, _ := ParseMix("phone-low:0.5,laptop:0.5")
	got := strings.Join(names(m.Assign(6, 1)), ",")
	if want := "phone-low,phone-low,laptop,laptop,laptop,phone-low"; got != want {
		t.Errorf("Assign(6, 1) = %s; want %s", got, want)
	}
}

func TestAssignPanics(t *testing.T) {
	for name, f := range map[string]func(){
		"negative n": func() { Single(All()[0]).Assign(-1, 1) },
		"empty mix":  func() { Mix{}.Assign(3, 1) },
	} {
		func() {
			defer func() {
				if r := recover(); r == nil || !strings.HasPrefix(r.(string), "profile:") {
					t.Errorf("%s: recovered %v; want a panic starting with profile:", name, r)
				}
			}()
			f()
		}()
	}
}

func names(ps []Profile) []string {
	n := make([]string, len(ps))
	for i, p := range ps {
		n[i] = p.Name
	}
	return n
}

func allSame(s []string) bool {
	for _, v := range s {
		if v != s[0] {
			return false
		}
	}
	return true
}
