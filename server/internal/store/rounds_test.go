package store

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"
)

// roundEqual compares rounds, times with Equal.
func roundEqual(a, b Round) bool {
	epsEqual := (a.Epsilon == nil) == (b.Epsilon == nil) && (a.Epsilon == nil || *a.Epsilon == *b.Epsilon)
	return a.RunID == b.RunID && a.Round == b.Round && a.Status == b.Status &&
		a.StartedAt.Equal(b.StartedAt) && a.DeadlineAt.Equal(b.DeadlineAt) &&
		a.FinishedAt.Equal(b.FinishedAt) && slices.Equal(a.Selected, b.Selected) &&
		a.NSelected == b.NSelected && a.NReceived == b.NReceived && a.NAccepted == b.NAccepted &&
		a.TestAccuracy == b.TestAccuracy && a.TestLoss == b.TestLoss && a.BytesUp == b.BytesUp &&
		a.BytesDown == b.BytesDown && epsEqual && a.ModelVersion == b.ModelVersion &&
		string(a.Metrics) == string(b.Metrics) && a.Error == b.Error
}

func TestOpenRound(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openMem(t)
	mustRun(t, s, "r")
	start := t0.Add(time.Hour)
	tests := []struct {
		in   Round
		want Round
	}{
		{
			in:   Round{RunID: "r", Round: 1},
			want: Round{RunID: "r", Round: 1, Status: RoundOpen, StartedAt: t0.Add(time.Second)},
		},
		{
			in: Round{RunID: "r", Round: 2, StartedAt: start, DeadlineAt: start.Add(time.Minute),
				Selected: []string{"a", "b", "c"}, Metrics: json.RawMessage(`{"lr":0.1}`)},
			want: Round{RunID: "r", Round: 2, Status: RoundOpen, StartedAt: start,
				DeadlineAt: start.Add(time.Minute), Selected: []string{"a", "b", "c"}, NSelected: 3,
				Metrics: json.RawMessage(`{"lr":0.1}`)},
		},
	}
	for _, tt := range tests {
		r := tt.in
		if err := s.OpenRound(ctx, &r); err != nil {
			t.Fatalf("OpenRound(%d): %v", tt.in.Round, err)
		}
		if r.Status != RoundOpen || !r.StartedAt.Equal(tt.want.StartedAt) || r.NSelected != tt.want.NSelected {
			t.Errorf("OpenRound(%d) left r = %+v; want status, start and n_selected of %+v", tt.in.Round, r, tt.want)
		}
		got, err := s.Round(ctx, "r", tt.in.Round)
		if err != nil {
			t.Fatal(err)
		}
		if !roundEqual(*got, tt.want) {
			t.Errorf("Round(%d) = %+v; want %+v", tt.in.Round, *got, tt.want)
		}
		run, err := s.Run(ctx, "r")
		if err != nil || run.CurrentRound != tt.in.Round {
			t.Errorf("run current_round after OpenRound(%d) = %d, %v; want %d", tt.in.Round, run.CurrentRound, err, tt.in.Round)
		}
	}
}

func TestOpenRoundResume(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openMem(t)
	mustRun(t, s, "r")
	orig := Round{RunID: "r", Round: 1, StartedAt: t0.Add(time.Hour), Selected: []string{"a", "b"}}
	if err := s.OpenRound(ctx, &orig); err != nil {
		t.Fatal(err)
	}
	mustClients(t, s, "r", "a")
	mustAdd(t, s, Update{RunID: "r", Round: 1, ClientID: "a", Accepted: true, Bytes: 10, Blob: []byte{1}})
	want, err := s.Round(ctx, "r", 1)
	if err != nil {
		t.Fatal(err)
	}

	again := Round{RunID: "r", Round: 1, StartedAt: t0.Add(2 * time.Hour), Selected: []string{"z"}}
	if err := s.OpenRound(ctx, &again); !errors.Is(err, ErrResumed) {
		t.Fatalf("OpenRound(open round again) = %v; want ErrResumed", err)
	}
	if !roundEqual(again, *want) {
		t.Errorf("OpenRound(resume) filled r = %+v; want the stored %+v", again, *want)
	}
	if got, err := s.Round(ctx, "r", 1); err != nil || !roundEqual(*got, *want) {
		t.Errorf("Round after resume = %+v, %v; want unchanged %+v", got, err, *want)
	}
}

func TestOpenRoundErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openMem(t)
	mustRun(t, s, "r")
	mustOpenRound(t, s, "r", 1)
	if err := s.FailRound(ctx, "r", 1, "too few clients"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		round Round
		want  error // nil: any error
	}{
		{"round 0", Round{RunID: "r", Round: 0}, nil},
		{"unknown run", Round{RunID: "nosuch", Round: 1}, ErrNotFound},
		{"closed round", Round{RunID: "r", Round: 1}, ErrDuplicate},
		{"bad metrics", Round{RunID: "r", Round: 2, Metrics: json.RawMessage(`nope`)}, nil},
	}
	for _, tt := range tests {
		err := s.OpenRound(ctx, &tt.round)
		if err == nil || errors.Is(err, ErrResumed) || (tt.want != nil && !errors.Is(err, tt.want)) {
			t.Errorf("OpenRound(%s) = %v; want an error (%v)", tt.name, err, tt.want)
		}
	}
	if run, err := s.Run(ctx, "r"); err != nil || run.CurrentRound != 1 {
		t.Errorf("current_round after failed opens = %d, %v; want 1", run.CurrentRound, err)
	}
}

func TestRoundsAndRoundBytes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openMem(t)
	mustRun(t, s, "r")
	for _, n := range []int{3, 1, 2} {
		mustOpenRound(t, s, "r", n)
	}
	if err := s.tx(ctx, "fail_round", func(t *Tx) error { return t.FailRound(&Failure{RunID: "r", Round: 2, Reason: "test", BytesDown: 1234}) }); err != nil {
		t.Fatal(err)
	}
	rounds, err := s.Rounds(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	var nums []int
	for _, r := range rounds {
		nums = append(nums, r.Round)
		want := int64(0)
		if r.Round == 2 {
			want = 1234
		}
		if r.BytesDown != want {
			t.Errorf("round %d bytes_down = %d; want %d", r.Round, r.BytesDown, want)
		}
	}
	if want := []int{1, 2, 3}; !slices.Equal(nums, want) {
		t.Errorf("Rounds() = %v; want %v (oldest first)", nums, want)
	}
	if _, err := s.Round(ctx, "r", 9); !errors.Is(err, ErrNotFound) {
		t.Errorf("Round(9) = %v; want ErrNotFound", err)
	}
}

func TestFailRound(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openMem(t)
	mustRun(t, s, "r")
	mustClients(t, s, "r", "a")
	mustOpenRound(t, s, "r", 1)
	mustAdd(t, s, Update{RunID: "r", Round: 1, ClientID: "a", Accepted: true, Blob: blob(1, 64)})
	if err := s.FailRound(ctx, "r", 1, "deadline passed with 1 of 3 updates"); err != nil {
		t.Fatal(err)
	}
	r, err := s.Round(ctx, "r", 1)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != RoundFailed || r.Error != "deadline passed with 1 of 3 updates" || r.FinishedAt.IsZero() {
		t.Errorf("Round after FailRound = %+v; want failed with the reason and a finish time", *r)
	}
	pending, err := s.PendingUpdates(ctx, "r", 1)
	if err != nil || len(pending) != 1 || pending[0].Blob != nil {
		t.Errorf("PendingUpdates after FailRound = %d updates, %v; want 1 with its blob cleared", len(pending), err)
	}
	wantErr(t, "FailRound(failed round)", s.FailRound(ctx, "r", 1, "again"), ErrNotOpen)
	wantErr(t, "FailRound(unknown round)", s.FailRound(ctx, "r", 2, "x"), ErrNotFound)
}
