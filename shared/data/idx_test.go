package data

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// idxBytes encodes dims and data as raw IDX, failing the test on error.
func idxBytes(t testing.TB, dims []int, data []uint8) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := WriteIDX(&b, dims, data); err != nil {
		t.Fatalf("WriteIDX(%v) = %v", dims, err)
	}
	return b.Bytes()
}

func gzipBytes(t testing.TB, raw []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write(raw); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func seq(n int) []uint8 {
	b := make([]uint8, n)
	for i := range b {
		b[i] = uint8(i * 7)
	}
	return b
}

func TestIDXRoundTrip(t *testing.T) {
	tests := [][]int{{1}, {5}, {3, 4}, {2, 3, 4}, {2, 3, 4, 2}, {300}}
	for _, dims := range tests {
		n, _ := product(dims, 1<<30)
		data := seq(n)
		raw := idxBytes(t, dims, data)
		if len(raw) != 4+4*len(dims)+n {
			t.Errorf("WriteIDX(%v) wrote %d bytes; want %d", dims, len(raw), 4+4*len(dims)+n)
		}
		for _, in := range [][]byte{raw, gzipBytes(t, raw)} {
			gotDims, got, err := ReadIDX(bytes.NewReader(in), n)
			if err != nil {
				t.Errorf("ReadIDX(%v) = %v", dims, err)
				continue
			}
			if !slices.Equal(gotDims, dims) || !bytes.Equal(got, data) {
				t.Errorf("ReadIDX(WriteIDX(%v)) = %v, %d bytes; want the input back", dims, gotDims, len(got))
			}
		}
	}
}

func TestReadIDXErrors(t *testing.T) {
	good := idxBytes(t, []int{2, 3}, seq(6))
	hdr := func(b ...byte) []byte { return b }
	tests := []struct {
		name     string
		in       []byte
		maxElems int
		want     string
	}{
		{"empty", nil, 100, "header"},
		{"short header", hdr(0, 0), 100, "header"},
		{"bad magic", hdr(1, 0, 8, 1, 0, 0, 0, 1, 0), 100, "bad magic"},
		{"float type", hdr(0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0), 100, "element type 0x0d (float32) not supported"},
		{"no dims", hdr(0, 0, 8, 0), 100, "0 dimensions, want 1 to 4"},
		{"five dims", hdr(0, 0, 8, 5), 100, "5 dimensions, want 1 to 4"},
		{"zero dim", hdr(0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 0), 100, "dimension 1 of 2 is 0"},
		{"short dims", hdr(0, 0, 8, 2, 0, 0, 0, 2), 100, "header"},
		{"over limit", good, 5, "hold more than 5 elements"},
		{"huge dims", hdr(0, 0, 8, 4, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255), 1 << 30, "hold more than"},
		{"truncated", good[:len(good)-2], 100, "truncated: want 6 bytes, got 4"},
		{"trailing", append(slices.Clone(good), 0), 100, "trailing bytes"},
		{"gzip truncated", gzipBytes(t, good)[:20], 100, "truncated: want 6 bytes, got 0"},
		{"gzip trailing garbage", append(gzipBytes(t, good), 1, 2, 3), 100, "after the gzip stream: trailing bytes"},
		{"two gzip members", append(gzipBytes(t, good), gzipBytes(t, good)...), 100, "after the gzip stream: trailing bytes"},
		{"gzip data trailing", gzipBytes(t, append(slices.Clone(good), 9)), 100, "trailing bytes"},
		{"gzip bad checksum", corruptCRC(gzipBytes(t, good)), 100, "checksum"},
	}
	for _, tt := range tests {
		dims, data, err := ReadIDX(bytes.NewReader(tt.in), tt.maxElems)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "data: idx: ") {
			t.Errorf("ReadIDX(%s) = %v, %d bytes, %v; want error containing %q", tt.name, dims, len(data), err, tt.want)
		}
	}
}

// corruptCRC flips a bit of the CRC-32 in a gzip stream's trailer.
func corruptCRC(b []byte) []byte {
	b = slices.Clone(b)
	b[len(b)-8] ^= 1
	return b
}

func TestReadIDXTruncatedLargeClaimAllocatesLittle(t *testing.T) {
	// A header announcing 1<<30 bytes followed by 10 bytes of data.
	in := []byte{0, 0, 8, 1, 0x40, 0, 0, 0}
	in = append(in, make([]byte, 10)...)
	allocated := bytesAllocated(func() {
		if _, _, err := ReadIDX(bytes.NewReader(in), 1<<30); err == nil {
			t.Errorf("ReadIDX(truncated 1 GiB claim) = nil error; want one")
		}
	})
	if allocated > 2*eagerBytes {
		t.Errorf("ReadIDX(truncated 1 GiB claim) allocated %d bytes; want at most %d", allocated, 2*eagerBytes)
	}
}

func TestWriteIDXErrors(t *testing.T) {
	tests := []struct {
		dims []int
		n    int
	}{
		{nil, 0},
		{[]int{1, 1, 1, 1, 1}, 1},
		{[]int{0}, 0},
		{[]int{-1}, 0},
		{[]int{1 << 32}, 0},
		{[]int{2, 3}, 5},
	}
	for _, tt := range tests {
		if err := WriteIDX(&bytes.Buffer{}, tt.dims, make([]uint8, tt.n)); err == nil {
			t.Errorf("WriteIDX(%v, %d bytes) = nil; want error", tt.dims, tt.n)
		}
	}
}

func TestLoadIDX(t *testing.T) {
	img3 := idxBytes(t, []int{3, 2, 2}, seq(12))
	img4 := idxBytes(t, []int{3, 2, 2, 3}, seq(36))
	lab := idxBytes(t, []int{3}, []uint8{0, 4, 2})
	tests := []struct {
		name         string
		images, labs []byte
		classes      int
		wantC        int
		wantErr      string
	}{
		{"3-D", img3, lab, 5, 1, ""},
		{"4-D gzip", gzipBytes(t, img4), gzipBytes(t, lab), 5, 3, ""},
		{"label too big", img3, lab, 4, 0, "label 4 at index 1 >= classes 4"},
		{"label count", img3, idxBytes(t, []int{2}, []uint8{0, 1}), 5, 0, "2 labels for 3 images"},
		{"labels 2-D", img3, idxBytes(t, []int{3, 1}, []uint8{0, 1, 2}), 5, 0, "want 1"},
		{"images 2-D", idxBytes(t, []int{3, 4}, seq(12)), lab, 5, 0, "want 3 (N, H, W) or 4"},
		{"image too big", idxBytes(t, []int{1, 200, 200}, seq(40000)), idxBytes(t, []int{1}, []uint8{0}), 5, 0, "exceeds limit"},
		{"no classes", img3, lab, 0, 0, "0 classes"},
	}
	for _, tt := range tests {
		s, err := LoadIDX("t", bytes.NewReader(tt.images), bytes.NewReader(tt.labs), tt.classes)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("LoadIDX(%s) = %v; want error containing %q", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("LoadIDX(%s) = %v; want nil", tt.name, err)
			continue
		}
		if s.Len() != 3 || s.H != 2 || s.W != 2 || s.C != tt.wantC || s.Classes != tt.classes {
			t.Errorf("LoadIDX(%s) = %dx(%d,%d,%d) %d classes; want 3x(2,2,%d) %d classes", tt.name, s.Len(), s.H, s.W, s.C, s.Classes, tt.wantC, tt.classes)
		}
		if err := s.Validate(); err != nil {
			t.Errorf("LoadIDX(%s).Validate() = %v", tt.name, err)
		}
	}
}

func TestLoadIDXSampleLimit(t *testing.T) {
	// The header alone announces MaxSamples+1 images; nothing is read past it.
	hdr := []byte{0, 0, 8, 3}
	for _, d := range []uint32{MaxSamples + 1, 28, 28} {
		hdr = binary.BigEndian.AppendUint32(hdr, d)
	}
	_, err := LoadIDX("t", bytes.NewReader(hdr), bytes.NewReader(nil), 10)
	if err == nil || !strings.Contains(err.Error(), "exceed limit 1048576") {
		t.Errorf("LoadIDX(%d images) = %v; want limit error", MaxSamples+1, err)
	}
}

// writeMNISTDir writes a small MNIST-named dataset (n train, m test
// samples, 4x4 images) to a new directory, gzipped or raw.
func writeMNISTDir(t *testing.T, n, m int, gz bool) string {
	t.Helper()
	dir := t.TempDir()
	write := func(name string, dims []int, data []uint8) {
		b := idxBytes(t, dims, data)
		if gz {
			b = gzipBytes(t, b)
		} else {
			name = strings.TrimSuffix(name, ".gz")
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	labels := func(k int) []uint8 {
		l := make([]uint8, k)
		for i := range l {
			l[i] = uint8(i % 10)
		}
		return l
	}
	write(MNISTTrainImages, []int{n, 4, 4}, seq(n*16))
	write(MNISTTrainLabels, []int{n}, labels(n))
	write(MNISTTestImages, []int{m, 4, 4}, seq(m*16))
	write(MNISTTestLabels, []int{m}, labels(m))
	return dir
}

func TestLoadMNIST(t *testing.T) {
	for _, gz := range []bool{true, false} {
		dir := writeMNISTDir(t, 30, 20, gz)
		train, test, err := LoadMNIST(dir)
		if err != nil {
			t.Fatalf("LoadMNIST(gz=%v) = %v", gz, err)
		}
		if train.Len() != 30 || test.Len() != 20 || train.Dim() != 16 || train.Name != "mnist" || train.Classes != 10 {
			t.Errorf("LoadMNIST(gz=%v) = %d/%d samples of %d, %q, %d classes; want 30/20 of 16, \"mnist\", 10",
				gz, train.Len(), test.Len(), train.Dim(), train.Name, train.Classes)
		}
		if got, want := train.LabelCounts()[9], 3; got != want {
			t.Errorf("LoadMNIST(gz=%v) train count of label 9 = %d; want %d", gz, got, want)
		}
	}
}

func TestLoadMNISTErrorsNameFile(t *testing.T) {
	dir := writeMNISTDir(t, 30, 20, true)
	if err := os.Remove(filepath.Join(dir, MNISTTestLabels)); err != nil {
		t.Fatal(err)
	}
	_, _, err := LoadMNIST(dir)
	if err == nil || !strings.Contains(err.Error(), "t10k-labels-idx1-ubyte") || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadMNIST(missing labels) = %v; want fs.ErrNotExist naming t10k-labels-idx1-ubyte", err)
	}
	bad := filepath.Join(dir, MNISTTrainImages)
	if err := os.WriteFile(bad, []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err = LoadMNIST(dir)
	if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "bad magic") {
		t.Errorf("LoadMNIST(junk images) = %v; want bad magic naming %s", err, bad)
	}
}
