package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

func TestCreateRunAndRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openMem(t)
	created := time.Date(2025, 5, 6, 7, 8, 9, 10e6, time.UTC)
	tests := []struct {
		in   Run
		want Run
	}{
		{
			in:   Run{ID: "defaults"},
			want: Run{ID: "defaults", Status: RunWaiting, CreatedAt: t0},
		},
		{
			in: Run{ID: "full", Name: "MNIST 2NN", Config: json.RawMessage(`{"rounds":10}`),
				JoinToken: "tok", Status: RunRunning, CreatedAt: created,
				StartedAt: created.Add(time.Second), CurrentRound: 3, ModelVersion: 2,
				StrategyState: []byte{1, 2, 3}, Error: "none yet"},
			want: Run{ID: "full", Name: "MNIST 2NN", Config: json.RawMessage(`{"rounds":10}`),
				JoinToken: "tok", Status: RunRunning, CreatedAt: created,
				StartedAt: created.Add(time.Second), CurrentRound: 3, ModelVersion: 2,
				StrategyState: []byte{1, 2, 3}, Error: "none yet"},
		},
	}
	for _, tt := range tests {
		in := tt.in
		if err := s.CreateRun(ctx, &in); err != nil {
			t.Fatalf("CreateRun(%q): %v", tt.in.ID, err)
		}
		if !runEqual(in, tt.in) {
			t.Errorf("CreateRun(%q) modified its input: %+v", tt.in.ID, in)
		}
		got, err := s.Run(ctx, tt.in.ID)
		if err != nil {
			t.Fatalf("Run(%q): %v", tt.in.ID, err)
		}
		if !runEqual(*got, tt.want) {
			t.Errorf("Run(%q) = %+v; want %+v", tt.in.ID, *got, tt.want)
		}
	}
	if _, err := s.Run(ctx, "nosuch"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Run(%q) = %v; want ErrNotFound", "nosuch", err)
	}
}

// runEqual compares runs, times with Equal.
func runEqual(a, b Run) bool {
	return a.ID == b.ID && a.Name == b.Name && bytes.Equal(a.Config, b.Config) &&
		a.JoinToken == b.JoinToken && a.Status == b.Status && a.CreatedAt.Equal(b.CreatedAt) &&
		a.StartedAt.Equal(b.StartedAt) && a.FinishedAt.Equal(b.FinishedAt) &&
		a.CurrentRound == b.CurrentRound && a.ModelVersion == b.ModelVersion &&
		bytes.Equal(a.StrategyState, b.StrategyState) && a.Error == b.Error
}

func TestCreateRunErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openMem(t)
	mustRun(t, s, "taken")
	tests := []struct {
		name string
		run  Run
		want error // nil: any error
	}{
		{"empty ID", Run{}, nil},
		{"bad status", Run{ID: "a", Status: "paused"}, nil},
		{"bad config", Run{ID: "b", Config: json.RawMessage(`{"rounds":`)}, nil},
		{"duplicate ID", Run{ID: "taken"}, ErrDuplicate},
	}
	for _, tt := range tests {
		err := s.CreateRun(ctx, &tt.run)
		if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
			t.Errorf("CreateRun(%s) = %v; want an error (%v)", tt.name, err, tt.want)
		}
	}
	runs, err := s.Runs(ctx)
	if err != nil || len(runs) != 1 {
		t.Errorf("Runs after failed creates = %d runs, %v; want 1", len(runs), err)
	}
}

func TestRunsNewestFirst(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openMem(t)
	if runs, err := s.Runs(ctx); err != nil || len(runs) != 0 {
		t.Errorf("Runs(empty) = %v, %v; want none", runs, err)
	}
	for _, id := range []string{"first", "second", "third"} {
		mustRun(t, s, id) // the test clock moves on one second per call
	}
	runs, err := s.Runs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range runs {
		got = append(got, r.ID)
	}
	want := []string{"third", "second", "first"}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("Runs() IDs = %q; want %q", got, want)
	}
}

func TestSetRunStatus(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openMem(t) // clock: CreateRun uses t0, each SetRunStatus the next second
	mustRun(t, s, "r")
	sec := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }
	steps := []struct {
		status, errText        string
		wantStarted, wantEnded time.Time
	}{
		{RunRunning, "", sec(1), time.Time{}},
		{RunStopped, "", sec(1), sec(2)},
		{RunRunning, "", sec(1), time.Time{}}, // resumed: started_at kept, finished_at cleared
		{RunFailed, "out of memory", sec(1), sec(4)},
		{RunFinished, "", sec(1), sec(5)},
		{RunWaiting, "", sec(1), time.Time{}},
	}
	for i, st := range steps {
		if err := s.SetRunStatus(ctx, "r", st.status, st.errText); err != nil {
			t.Fatalf("step %d: SetRunStatus(%q): %v", i, st.status, err)
		}
		r, err := s.Run(ctx, "r")
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != st.status || r.Error != st.errText || !r.StartedAt.Equal(st.wantStarted) || !r.FinishedAt.Equal(st.wantEnded) {
			t.Errorf("step %d: after SetRunStatus(%q, %q) run = status %q error %q started %v finished %v; want started %v finished %v",
				i, st.status, st.errText, r.Status, r.Error, r.StartedAt, r.FinishedAt, st.wantStarted, st.wantEnded)
		}
	}
	wantErr(t, "SetRunStatus(unknown run)", s.SetRunStatus(ctx, "nosuch", RunRunning, ""), ErrNotFound)
	if err := s.SetRunStatus(ctx, "r", "paused", ""); err == nil {
		t.Errorf("SetRunStatus(%q) succeeded; want an error", "paused")
	}
}
