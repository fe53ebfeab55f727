package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"
)

// TestStudyCodecs runs a two-round codec study and reads its table: one row
// per grid entry, the strategy of a PIPELINE@STRATEGY entry, and float16's
// halving of the bytes.
func TestStudyCodecs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	args := []string{"codecs", "--grid", "float32+zstd,float16@fedavg:2", "--clients", "100", "--per-round", "3",
		"--rounds", "2", "--eval-limit", "500"}
	if err := runStudy(ctx, args, &out, io.Discard); err != nil {
		t.Fatalf("study %s: %v", strings.Join(args, " "), err)
	}
	var rows [][]string
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(l, "| `") {
			rows = append(rows, strings.Split(strings.Trim(l, "| "), " | "))
		}
	}
	if len(rows) != 2 {
		t.Fatalf("table has %d rows; want 2:\n%s", len(rows), out.String())
	}
	if rows[0][0] != "`float32+zstd`" || rows[0][1] != "`fedavg`" || rows[1][0] != "`float16`" || rows[1][1] != "`fedavg:2`" {
		t.Errorf("rows start %q and %q; want float32+zstd with fedavg, float16 with fedavg:2", rows[0][:2], rows[1][:2])
	}
	if rows[1][3] != "2.00x" {
		t.Errorf("float16 sends %s fewer bytes than raw float32; want 2.00x", rows[1][3])
	}
}

// TestStudyCodecsBadEntry: a grid entry with an unknown strategy fails with
// the entry named, before anything runs.
func TestStudyCodecsBadEntry(t *testing.T) {
	err := runStudy(context.Background(), []string{"codecs", "--grid", "int8+zstd@fastavg", "--rounds", "1"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "int8+zstd@fastavg") || !strings.Contains(err.Error(), "unknown strategy") {
		t.Errorf("study codecs --grid int8+zstd@fastavg = %v; want an error naming the entry and the unknown strategy", err)
	}
}
