package nn

import (
	"strings"
	"testing"
)

// TestEveryModelHasDefaults: each built-in model has its own entry (the
// fallback is for mlp:... specs only), and every default trains.
func TestEveryModelHasDefaults(t *testing.T) {
	for _, name := range Models {
		d, ok := modelDefaults[name]
		if strings.HasPrefix(name, "mlp:") {
			d, ok = DefaultsFor("mlp:8"), true
		}
		if !ok {
			t.Errorf("model %q has no entry in modelDefaults", name)
			continue
		}
		if !(d.LR > 0 && d.LR <= 1) || d.Batch < 1 || d.Batch > 4096 {
			t.Errorf("DefaultsFor(%q) = %+v; want lr in (0, 1] and batch in 1..4096", name, d)
		}
		if got := AllDefaults()[name]; got != d {
			t.Errorf("AllDefaults()[%q] = %+v; want %+v", name, got, d)
		}
	}
}
