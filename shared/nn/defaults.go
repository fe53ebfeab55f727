package nn

import "strings"

// Defaults are the training settings a model is known to train well with
// under plain SGD: the learning rate and batch size that runs, simulations,
// centralized training and the dashboard use when none is given. The
// README's "Learning rate and initialisation" section shows the experiments
// behind each value.
type Defaults struct {
	LR    float64 `json:"lr"`    // SGD learning rate
	Batch int     `json:"batch"` // batch size
}

// modelDefaults holds the defaults of the built-in models; "mlp:..." models
// take mnist-2nn's.
var modelDefaults = map[string]Defaults{
	// 31 rounds to 97% (IID, E=1), 163 on shards:2; 44 IID at lr 0.05.
	"mnist-2nn": {LR: 0.1, Batch: 10},
	// 99% in 19 rounds (IID, E=5), 0.9444 after round 1.
	"mnist-cnn": {LR: 0.1, Batch: 10},
	// One probe only (600 images, one epoch, seed 1): 0.6775 at 0.05,
	// 0.6226 at 0.1; no federated run.
	"mnist-net": {LR: 0.05, Batch: 10},
	// mnist-cnn's structure; not measured (no CIFAR-10 here).
	"cifar10-cnn": {LR: 0.1, Batch: 10},
}

// DefaultsFor returns the defaults of the named model: a built-in name or an
// "mlp:..." spec. A name New does not know gets the MLP defaults, so callers
// can fill defaults before validating the name.
func DefaultsFor(model string) Defaults {
	if d, ok := modelDefaults[model]; ok {
		return d
	}
	return modelDefaults["mnist-2nn"]
}

// AllDefaults returns the defaults of every built-in model, keyed by name,
// with the "mlp:H1,H2,..." pattern's under its entry in Models.
func AllDefaults() map[string]Defaults {
	out := make(map[string]Defaults, len(Models))
	for _, name := range Models {
		if strings.HasPrefix(name, "mlp:") {
			out[name] = DefaultsFor("mlp:")
			continue
		}
		out[name] = DefaultsFor(name)
	}
	return out
}
