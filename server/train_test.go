package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/qflare/qflare/shared/nn"
)

// TestTrainTakesModelDefaults: `train` without --lr and --batch trains with
// the model's defaults, and the flags override them.
func TestTrainTakesModelDefaults(t *testing.T) {
	d := nn.DefaultsFor("mnist-2nn")
	for _, c := range []struct {
		args  []string
		lr    float64
		batch int
	}{
		{nil, d.LR, d.Batch},
		{[]string{"--lr", "0.3", "--batch", "7"}, 0.3, 7},
	} {
		var stderr bytes.Buffer
		args := append([]string{"--model", "mnist-2nn", "--limit", "30"}, c.args...)
		if err := runTrain(context.Background(), args, io.Discard, &stderr); err != nil {
			t.Fatalf("train %s: %v", strings.Join(args, " "), err)
		}
		if want := fmt.Sprintf("batch %d, lr %g\n", c.batch, c.lr); !strings.Contains(stderr.String(), want) {
			t.Errorf("train %s said %q; want it to train with %q", strings.Join(args, " "), strings.SplitN(stderr.String(), "\n", 2)[0], want)
		}
	}
}
