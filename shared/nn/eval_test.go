package nn

import (
	"math"
	"testing"

	"github.com/qflare/qflare/shared/data"
)

// TestEvaluateReportLabels: the per-label counts add up to the accuracy,
// and a model that always answers one label is right on that label only.
func TestEvaluateReportLabels(t *testing.T) {
	set := &data.Set{Name: "t", H: 2, W: 2, C: 1, Classes: 3, Images: make([]uint8, 6*4), Labels: []uint8{0, 1, 2, 0, 1, 2}}
	m, err := New("mlp:4", Shape{H: 2, W: 2, C: 1}, 3, 1)
	if err != nil {
		t.Fatal(err)
	}
	// Zero weights but a bias on label 2: every sample is classified 2.
	for i := range m.Params {
		m.Params[i] = 0
	}
	m.Params[len(m.Params)-1] = 1
	r, err := EvaluateReport(m, set, 2)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.LabelAccuracy(); got[0] != 0 || got[1] != 0 || got[2] != 1 {
		t.Errorf("label accuracy %v; want [0 0 1]", got)
	}
	if r.Accuracy != 2.0/6 || r.Total[0] != 2 {
		t.Errorf("accuracy %v, totals %v; want 1/3 and 2 per label", r.Accuracy, r.Total)
	}
	loss, acc, err := Evaluate(m, set, 1)
	if err != nil || acc != r.Accuracy || math.Abs(loss-r.Loss) > 1e-12 {
		t.Errorf("Evaluate = %v, %v, %v; want the report's %v, %v", loss, acc, err, r.Loss, r.Accuracy)
	}
}
