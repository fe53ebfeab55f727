package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// roundFixture is a run "r" with model version 0, clients a..d, and open
// round 1 holding accepted updates from a, b and d and a rejected one from c.
type roundFixture struct {
	s   *Store
	ids map[string]int64 // update ID by client
}

func newRoundFixture(t *testing.T) *roundFixture {
	t.Helper()
	ctx := context.Background()
	s := openMem(t)
	mustRun(t, s, "r")
	mustClients(t, s, "r", "a", "b", "c", "d")
	if err := s.SaveModel(ctx, &Model{RunID: "r", Params: 2, Weights: EncodeFloat32s(nil, []float32{0, 0})}); err != nil {
		t.Fatal(err)
	}
	mustOpenRound(t, s, "r", 1)
	f := &roundFixture{s: s, ids: map[string]int64{}}
	for i, c := range []string{"a", "b", "c", "d"} {
		f.ids[c] = mustAdd(t, s, Update{RunID: "r", Round: 1, ClientID: c, Accepted: c != "c",
			Bytes: 64, Blob: blob(i, 64)})
	}
	return f
}

// commit returns a valid commit of round 1 producing model version 1.
func (f *roundFixture) commit() Commit {
	eps := 1.5
	return Commit{RunID: "r", Round: 1, FinishedAt: t0.Add(time.Hour), TestAccuracy: 0.91, TestLoss: 0.3,
		Epsilon: &eps, Metrics: json.RawMessage(`{"clients":3}`),
		Model: Model{Version: 1, Params: 2, Weights: EncodeFloat32s(nil, []float32{0.5, -0.25}), TestAccuracy: 0.91, TestLoss: 0.3},
		Verdicts: []Verdict{
			{UpdateID: f.ids["a"], Score: 1, Cosine: 0.9, NormRatio: 1.1},
			{UpdateID: f.ids["b"], Score: 0.8, Cosine: 0.7, NormRatio: 0.9},
			{UpdateID: f.ids["d"], Score: -3, Cosine: -0.5, NormRatio: 9, Excluded: true, Reason: "anomaly"},
		},
		StrategyState: []byte("adam m v"),
	}
}

func TestCommitRound(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name             string
		keepBlobs, final bool
	}{
		{"clear blobs", false, false},
		{"keep blobs", true, false},
		{"final", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			f := newRoundFixture(t)
			s := f.s
			c := f.commit()
			c.KeepBlobs, c.Final = tt.keepBlobs, tt.final
			if err := s.CommitRound(ctx, &c); err != nil {
				t.Fatalf("CommitRound: %v", err)
			}
			r, err := s.Round(ctx, "r", 1)
			if err != nil {
				t.Fatal(err)
			}
			if r.Status != RoundAggregated || !r.FinishedAt.Equal(c.FinishedAt) || r.ModelVersion != 1 ||
				r.TestAccuracy != 0.91 || r.TestLoss != 0.3 || r.Epsilon == nil || *r.Epsilon != 1.5 ||
				string(r.Metrics) != `{"clients":3}` {
				t.Errorf("Round after CommitRound = %+v", *r)
			}
			m, err := s.Model(ctx, "r", -1)
			if err != nil || m.Version != 1 || m.Round != 1 || !bytes.Equal(m.Weights, c.Model.Weights) || !m.CreatedAt.Equal(c.FinishedAt) {
				t.Errorf("Model(latest) after CommitRound = %+v, %v; want version 1 of round 1", m, err)
			}
			run, err := s.Run(ctx, "r")
			if err != nil {
				t.Fatal(err)
			}
			wantStatus, wantEnd := RunWaiting, time.Time{}
			if tt.final {
				wantStatus, wantEnd = RunFinished, c.FinishedAt
			}
			if run.ModelVersion != 1 || string(run.StrategyState) != "adam m v" || run.Status != wantStatus || !run.FinishedAt.Equal(wantEnd) {
				t.Errorf("Run after CommitRound = %+v; want model_version 1, the strategy state, status %q finished %v",
					*run, wantStatus, wantEnd)
			}
			ups, err := s.PendingUpdates(ctx, "r", 1)
			if err != nil || len(ups) != 3 {
				t.Fatalf("PendingUpdates = %d, %v; want 3", len(ups), err)
			}
			for i, u := range ups {
				v := c.Verdicts[i]
				if u.ID != v.UpdateID || u.Score != v.Score || u.Cosine != v.Cosine || u.NormRatio != v.NormRatio ||
					u.Excluded != v.Excluded || u.Reason != v.Reason {
					t.Errorf("update %d after CommitRound = %+v; want verdict %+v", u.ID, u, v)
				}
				if kept := u.Blob != nil; kept != tt.keepBlobs {
					t.Errorf("update %d blob kept = %v; want %v", u.ID, kept, tt.keepBlobs)
				}
			}
			wantErr(t, "CommitRound(again)", s.CommitRound(ctx, &c), ErrNotOpen)
		})
	}
}

// TestCommitRoundAtomic checks that a commit failing at any step writes
// nothing: the round stays open, its blobs and the run stay as they were.
func TestCommitRoundAtomic(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		before func(*roundFixture) error
		change func(*roundFixture, *Commit)
		want   error // nil: any error
	}{
		{
			name: "model version exists",
			before: func(f *roundFixture) error {
				return f.s.SaveModel(context.Background(), &Model{RunID: "r", Version: 1, Params: 1, Weights: make([]byte, 4)})
			},
			want: ErrDuplicate,
		},
		{
			name:   "verdict for an unknown update",
			change: func(f *roundFixture, c *Commit) { c.Verdicts[2].UpdateID = 999 },
			want:   ErrNotFound,
		},
		{
			name:   "verdict for a rejected update",
			change: func(f *roundFixture, c *Commit) { c.Verdicts[2].UpdateID = f.ids["c"] },
			want:   ErrNotFound,
		},
		{
			name:   "weights too short",
			change: func(f *roundFixture, c *Commit) { c.Model.Weights = c.Model.Weights[:7] },
		},
		{
			name:   "model of another round",
			change: func(f *roundFixture, c *Commit) { c.Model.Round = 2 },
		},
		{
			name:   "bad metrics",
			change: func(f *roundFixture, c *Commit) { c.Metrics = json.RawMessage(`{`) },
		},
		{
			name:   "unknown round",
			change: func(f *roundFixture, c *Commit) { c.Round, c.Model.Round = 5, 5 },
			want:   ErrNotFound,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			f := newRoundFixture(t)
			if tt.before != nil {
				if err := tt.before(f); err != nil {
					t.Fatal(err)
				}
			}
			runBefore, err := f.s.Run(ctx, "r")
			if err != nil {
				t.Fatal(err)
			}
			versionsBefore, err := f.s.ModelVersions(ctx, "r")
			if err != nil {
				t.Fatal(err)
			}
			c := f.commit()
			c.Final = true
			if tt.change != nil {
				tt.change(f, &c)
			}
			err = f.s.CommitRound(ctx, &c)
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("CommitRound(%s) = %v; want an error (%v)", tt.name, err, tt.want)
			}

			r, err := f.s.Round(ctx, "r", 1)
			if err != nil || r.Status != RoundOpen || r.ModelVersion != 0 || !r.FinishedAt.IsZero() || r.Metrics != nil {
				t.Errorf("round after failed commit = %+v, %v; want it still open and untouched", r, err)
			}
			ups, err := f.s.PendingUpdates(ctx, "r", 1)
			if err != nil || len(ups) != 3 {
				t.Fatalf("PendingUpdates after failed commit = %d, %v; want 3", len(ups), err)
			}
			for _, u := range ups {
				if len(u.Blob) != 64 || u.Score != 0 || u.Excluded || u.Reason != "" {
					t.Errorf("update %d after failed commit = %d blob bytes, score %v excluded %v; want blob kept, no verdict",
						u.ID, len(u.Blob), u.Score, u.Excluded)
				}
			}
			run, err := f.s.Run(ctx, "r")
			if err != nil || !runEqual(*run, *runBefore) {
				t.Errorf("run after failed commit = %+v, %v; want unchanged %+v", run, err, runBefore)
			}
			versions, err := f.s.ModelVersions(ctx, "r")
			if err != nil || len(versions) != len(versionsBefore) {
				t.Errorf("model versions after failed commit = %d, %v; want %d", len(versions), err, len(versionsBefore))
			}
		})
	}
}
