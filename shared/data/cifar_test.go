package data

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// cifarRecords encodes n CIFAR-10 records: record i has label i%10 and
// channel c of pixel p set to (i + 3*p + 101*c) mod 256.
func cifarRecords(n int) []byte {
	out := make([]byte, 0, n*cifarRecord)
	for i := range n {
		out = append(out, byte(i%10))
		for c := range 3 {
			for p := range cifarPlane {
				out = append(out, byte(i+3*p+101*c))
			}
		}
	}
	return out
}

func TestReadCIFAR10(t *testing.T) {
	s, err := ReadCIFAR10(bytes.NewReader(cifarRecords(12)), 100)
	if err != nil {
		t.Fatalf("ReadCIFAR10(12 records) = %v", err)
	}
	if err := s.Validate(); err != nil {
		t.Errorf("ReadCIFAR10(12 records).Validate() = %v", err)
	}
	if s.Len() != 12 || s.H != 32 || s.W != 32 || s.C != 3 || s.Classes != 10 || s.Name != "cifar10" {
		t.Errorf("ReadCIFAR10(12 records) = %d of %dx%dx%d, %d classes, %q; want 12 of 32x32x3, 10, \"cifar10\"",
			s.Len(), s.H, s.W, s.C, s.Classes, s.Name)
	}
	for i := range s.Len() {
		if s.Labels[i] != uint8(i%10) {
			t.Errorf("ReadCIFAR10 label %d = %d; want %d", i, s.Labels[i], i%10)
		}
		for _, p := range []int{0, 1, 31, 32, 517, 1023} {
			for c := range 3 {
				want := byte(i + 3*p + 101*c)
				if got := s.Images[i*cifarDim+3*p+c]; got != want {
					t.Errorf("ReadCIFAR10 image %d pixel %d channel %d = %d; want %d (HWC)", i, p, c, got, want)
				}
			}
		}
	}
}

func TestReadCIFAR10Errors(t *testing.T) {
	badLabel := cifarRecords(3)
	badLabel[2*cifarRecord] = 10
	tests := []struct {
		name string
		in   []byte
		max  int
		want string
	}{
		{"empty", nil, 10, "data: cifar10: no records"},
		{"partial", cifarRecords(2)[:cifarRecord+5], 10, "data: cifar10: 5 trailing bytes after 1 records, not a whole record of 3073"},
		{"bad label", badLabel, 10, "data: cifar10: label 10 of record 2 >= 10"},
		{"too many", cifarRecords(4), 3, "data: cifar10: more than 3 records"},
	}
	for _, tt := range tests {
		_, err := ReadCIFAR10(bytes.NewReader(tt.in), tt.max)
		if err == nil || err.Error() != tt.want {
			t.Errorf("ReadCIFAR10(%s) = %v; want %q", tt.name, err, tt.want)
		}
	}
}

// writeCIFARDir writes train batches of the given sizes and a test batch
// of m records into dir.
func writeCIFARDir(t *testing.T, dir string, sizes []int, m int) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, name := range CIFAR10TrainFiles {
		if err := os.WriteFile(filepath.Join(dir, name), cifarRecords(sizes[i]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, CIFAR10TestFile), cifarRecords(m), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadCIFAR10(t *testing.T) {
	root := t.TempDir()
	writeCIFARDir(t, filepath.Join(root, "cifar-10-batches-bin"), []int{3, 4, 5, 6, 7}, 8)
	for _, dir := range []string{root, filepath.Join(root, "cifar-10-batches-bin")} {
		train, test, err := LoadCIFAR10(dir)
		if err != nil {
			t.Fatalf("LoadCIFAR10(%q) = %v", dir, err)
		}
		if train.Len() != 25 || test.Len() != 8 {
			t.Errorf("LoadCIFAR10(%q) = %d train, %d test; want 25, 8", dir, train.Len(), test.Len())
		}
		if err := train.Validate(); err != nil {
			t.Errorf("LoadCIFAR10(%q) train.Validate() = %v", dir, err)
		}
		// Sample 3 is the first record of data_batch_2.bin (label 0).
		if train.Labels[3] != 0 || train.Images[3*cifarDim] != 0 {
			t.Errorf("LoadCIFAR10(%q) sample 3 = label %d, first byte %d; want 0, 0", dir, train.Labels[3], train.Images[3*cifarDim])
		}
	}
}

func TestLoadCIFAR10Errors(t *testing.T) {
	dir := t.TempDir()
	_, _, err := LoadCIFAR10(dir)
	if err == nil || !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "data_batch_1.bin") || !strings.Contains(err.Error(), "binary batches") {
		t.Errorf("LoadCIFAR10(empty dir) = %v; want not-exist error naming data_batch_1.bin and the binary batches", err)
	}
	writeCIFARDir(t, dir, []int{1, 1, 1, 1, 1}, 1)
	bad := filepath.Join(dir, "data_batch_3.bin")
	if err := os.WriteFile(bad, cifarRecords(2)[:100], 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err = LoadCIFAR10(dir)
	if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "100 trailing bytes") {
		t.Errorf("LoadCIFAR10(short batch 3) = %v; want error naming %s", err, bad)
	}
}
