package api_test

import (
	"net/http"
	"reflect"
	"testing"

	"github.com/qflare/qflare/shared/nn"
)

// TestModelDefaults: /api/info lists every model's default learning rate
// and batch size, and a run created without them gets its model's.
func TestModelDefaults(t *testing.T) {
	ts := newTestServer(t)
	var info struct {
		Models map[string]nn.Defaults `json:"models"`
	}
	if code := ts.do("GET", "/api/info", "", nil, &info); code != http.StatusOK {
		t.Fatalf("GET /api/info = %d; want 200", code)
	}
	if want := nn.AllDefaults(); !reflect.DeepEqual(info.Models, want) {
		t.Errorf("/api/info models = %v; want %v", info.Models, want)
	}
	for _, c := range []struct {
		body map[string]any
		want nn.Defaults
	}{
		{map[string]any{"model": "mnist-cnn"}, nn.DefaultsFor("mnist-cnn")},
		{map[string]any{}, nn.DefaultsFor("mnist-2nn")},
		{map[string]any{"model": "mnist-cnn", "lr": 0.3, "batch": 7}, nn.Defaults{LR: 0.3, Batch: 7}},
	} {
		c.body["eval_limit"] = 100
		var r runResp
		if code := ts.do("POST", "/api/runs", adminToken, c.body, &r); code != http.StatusCreated {
			t.Fatalf("POST /api/runs %v = %d (%s); want 201", c.body, code, r.Error)
		}
		var got struct {
			Config struct {
				LR    float64 `json:"lr"`
				Batch int     `json:"batch"`
			} `json:"config"`
		}
		ts.do("GET", "/api/runs/"+r.ID, "", nil, &got)
		if g := (nn.Defaults{LR: got.Config.LR, Batch: got.Config.Batch}); g != c.want {
			t.Errorf("run created with %v has lr %g, batch %d; want %g, %d", c.body, g.LR, g.Batch, c.want.LR, c.want.Batch)
		}
	}
}
