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
	"mnist-2nn":   {LR: 0.05, Batch: 10},
	"mnist-cnn":   {LR: 0.05, Batch: 10},
	"mnist-net":   {LR: 0.05, Batch: 10},
	"cifar10-cnn": {LR: 0.05, Batch: 10}, // mnist-cnn's structure; not measured (no CIFAR-10 here)
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
