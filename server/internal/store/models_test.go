package store

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
)

func TestSaveModelAndModel(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openMem(t)
	mustRun(t, s, "r")
	if _, err := s.Model(ctx, "r", -1); !errors.Is(err, ErrNotFound) {
		t.Errorf("Model(latest) of a run with none = %v; want ErrNotFound", err)
	}
	in := []Model{
		{RunID: "r", Version: 0, Params: 3, Weights: EncodeFloat32s(nil, []float32{1, 2, 3})},
		{RunID: "r", Version: 2, Round: 2, Params: 2, Codec: "f16", Weights: []byte{1, 2, 3, 4}, TestAccuracy: 0.5, TestLoss: 1.5},
		{RunID: "r", Version: 1, Round: 1, Params: 1, Weights: EncodeFloat32s(nil, []float32{7})},
	}
	for _, m := range in {
		if err := s.SaveModel(ctx, &m); err != nil {
			t.Fatalf("SaveModel(%d): %v", m.Version, err)
		}
	}
	tests := []struct {
		version int
		want    Model
	}{
		{-1, in[1]}, // latest is the highest version, not the last saved
		{0, in[0]},
		{1, in[2]},
		{2, in[1]},
	}
	for _, tt := range tests {
		got, err := s.Model(ctx, "r", tt.version)
		if err != nil {
			t.Fatalf("Model(%d): %v", tt.version, err)
		}
		wantCodec := tt.want.Codec
		if wantCodec == "" {
			wantCodec = CodecFloat32
		}
		if got.Version != tt.want.Version || got.Round != tt.want.Round || got.Params != tt.want.Params ||
			got.Codec != wantCodec || !bytes.Equal(got.Weights, tt.want.Weights) ||
			got.TestAccuracy != tt.want.TestAccuracy || got.TestLoss != tt.want.TestLoss || got.CreatedAt.IsZero() {
			t.Errorf("Model(%d) = %+v; want %+v", tt.version, *got, tt.want)
		}
	}
	if _, err := s.Model(ctx, "r", 9); !errors.Is(err, ErrNotFound) {
		t.Errorf("Model(9) = %v; want ErrNotFound", err)
	}
	list, err := s.ModelVersions(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	var versions []int
	for _, m := range list {
		versions = append(versions, m.Version)
		if m.Weights != nil || m.Params == 0 {
			t.Errorf("ModelVersions entry %d = %+v; want metadata without weights", m.Version, m)
		}
	}
	if want := []int{0, 1, 2}; !slices.Equal(versions, want) {
		t.Errorf("ModelVersions() = %v; want %v", versions, want)
	}
	if run, err := s.Run(ctx, "r"); err != nil || run.ModelVersion != 2 {
		t.Errorf("run model_version = %d, %v; want 2", run.ModelVersion, err)
	}
}

func TestSaveModelErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openMem(t)
	mustRun(t, s, "r")
	w := EncodeFloat32s(nil, []float32{1, 2})
	if err := s.SaveModel(ctx, &Model{RunID: "r", Params: 2, Weights: w}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		model Model
		want  error // nil: any error
	}{
		{"duplicate version", Model{RunID: "r", Params: 2, Weights: w}, ErrDuplicate},
		{"unknown run", Model{RunID: "nosuch", Params: 2, Weights: w}, ErrNotFound},
		{"float32 length", Model{RunID: "r", Version: 1, Params: 3, Weights: w}, nil},
		{"no weights", Model{RunID: "r", Version: 1, Codec: "f16"}, nil},
		{"negative version", Model{RunID: "r", Version: -1, Params: 2, Weights: w}, nil},
		{"no run ID", Model{Version: 1, Params: 2, Weights: w}, nil},
	}
	for _, tt := range tests {
		err := s.SaveModel(ctx, &tt.model)
		if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
			t.Errorf("SaveModel(%s) = %v; want an error (%v)", tt.name, err, tt.want)
		}
	}
}

func TestPruneModels(t *testing.T) {
	t.Parallel()
	tests := []struct {
		keepLast, keepEvery int
		want                []int
	}{
		{3, 5, []int{0, 5, 10, 11, 12}},
		{1, 0, []int{12}},
		{0, 0, []int{12}}, // never the latest
		{-2, 4, []int{0, 4, 8, 12}},
		{20, 0, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}},
		{2, 1, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}},
	}
	for _, tt := range tests {
		ctx := context.Background()
		s := openMem(t)
		mustRun(t, s, "r")
		mustRun(t, s, "other")
		for v := range 13 {
			for _, run := range []string{"r", "other"} {
				if err := s.SaveModel(ctx, &Model{RunID: run, Version: v, Round: v, Params: 1, Weights: make([]byte, 4)}); err != nil {
					t.Fatal(err)
				}
			}
		}
		n, err := s.PruneModels(ctx, "r", tt.keepLast, tt.keepEvery)
		if err != nil {
			t.Fatal(err)
		}
		list, err := s.ModelVersions(ctx, "r")
		if err != nil {
			t.Fatal(err)
		}
		var got []int
		for _, m := range list {
			got = append(got, m.Version)
		}
		if !slices.Equal(got, tt.want) || n != 13-len(tt.want) {
			t.Errorf("PruneModels(%d, %d) = %d, left %v; want %d, %v", tt.keepLast, tt.keepEvery, n, got, 13-len(tt.want), tt.want)
		}
		if other, err := s.ModelVersions(ctx, "other"); err != nil || len(other) != 13 {
			t.Errorf("PruneModels(%q) touched run %q: %d versions left, %v", "r", "other", len(other), err)
		}
	}
}
