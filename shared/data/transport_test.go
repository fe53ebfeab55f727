package data

import (
	"bytes"
	"encoding/binary"
	"errors"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// setBytes encodes s with WriteSet, failing the test on error.
func setBytes(t testing.TB, s *Set) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := WriteSet(&b, s); err != nil {
		t.Fatalf("WriteSet(%q) = %v", s.Name, err)
	}
	return b.Bytes()
}

func TestSetRoundTrip(t *testing.T) {
	tests := []*Set{
		tinySet(5, 3),
		tinySet(0, 1),
		{Name: "", H: 1, W: 1, C: 1, Classes: 256, Images: []uint8{7}, Labels: []uint8{255}},
		{Name: "mnist/client 7 ü", H: 28, W: 28, C: 1, Classes: 10, Images: make([]uint8, 2*784), Labels: []uint8{9, 0}},
	}
	for _, s := range tests {
		b := setBytes(t, s)
		if want := 4 + 2 + len(s.Name) + 20 + len(s.Images) + len(s.Labels); len(b) != want {
			t.Errorf("WriteSet(%q) wrote %d bytes; want %d", s.Name, len(b), want)
		}
		got, err := ReadSet(bytes.NewReader(b), 100)
		if err != nil {
			t.Errorf("ReadSet(WriteSet(%q)) = %v", s.Name, err)
			continue
		}
		if got.Name != s.Name || got.H != s.H || got.W != s.W || got.C != s.C || got.Classes != s.Classes ||
			!bytes.Equal(got.Images, s.Images) || !bytes.Equal(got.Labels, s.Labels) {
			t.Errorf("ReadSet(WriteSet(%q)) = %+v; want %+v", s.Name, got, s)
		}
	}
}

func TestWriteSetInvalid(t *testing.T) {
	s := tinySet(3, 2)
	s.Labels[0] = 2
	if err := WriteSet(&bytes.Buffer{}, s); err == nil {
		t.Errorf("WriteSet(bad label) = nil; want error")
	}
	w := failWriter{}
	if err := WriteSet(w, tinySet(3, 2)); !errors.Is(err, errWrite) {
		t.Errorf("WriteSet(failing writer) = %v; want %v", err, errWrite)
	}
}

var errWrite = errors.New("write failed")

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errWrite }

// header builds a QDS1 header with the given name and fields.
func header(name string, h, w, c, classes, n uint32) []byte {
	b := []byte("QDS1")
	b = binary.LittleEndian.AppendUint16(b, uint16(len(name)))
	b = append(b, name...)
	for _, v := range []uint32{h, w, c, classes, n} {
		b = binary.LittleEndian.AppendUint32(b, v)
	}
	return b
}

func TestReadSetErrors(t *testing.T) {
	good := setBytes(t, tinySet(4, 3))
	badLabel := slices.Clone(good)
	badLabel[len(badLabel)-2] = 3
	longName := []byte("QDS1")
	longName = binary.LittleEndian.AppendUint16(longName, MaxNameLen+1)
	tests := []struct {
		name string
		in   []byte
		max  int
		want string
	}{
		{"empty", nil, 10, "header"},
		{"bad magic", append([]byte("QDS2"), good[4:]...), 10, "bad magic"},
		{"long name", longName, 10, "name of 65 bytes exceeds limit 64"},
		{"control name", header("a\x00", 1, 1, 1, 2, 0), 10, "control character"},
		{"short header", good[:20], 10, "header"},
		{"zero width", header("x", 2, 0, 1, 2, 0), 10, "not positive"},
		{"huge image", header("x", 65, 64, 4, 2, 0), 10, "exceeds limit of 16384 bytes"},
		{"max uint32 shape", header("x", 0xffffffff, 0xffffffff, 0xffffffff, 2, 0), 10, "exceeds limit"},
		{"no classes", header("x", 1, 1, 1, 0, 0), 10, "0 classes"},
		{"too many classes", header("x", 1, 1, 1, 257, 0), 10, "257 classes"},
		{"too many samples", good, 3, "4 samples exceed limit 3"},
		{"over MaxSamples", header("x", 1, 1, 1, 2, MaxSamples+1), 1 << 30, "1048577 samples exceed limit 1048576"},
		{"over MaxBytes", header("x", 64, 64, 4, 2, MaxSamples), 1 << 30, "exceed limit 1073741824"},
		{"truncated images", good[:40], 10, "images: truncated: want 48 bytes, got 10"},
		{"truncated labels", good[:len(good)-1], 10, "labels: truncated: want 4 bytes, got 3"},
		{"bad label", badLabel, 10, "label 3 at index 2 >= classes 3"},
		{"trailing", append(slices.Clone(good), 0), 10, "trailing bytes"},
	}
	for _, tt := range tests {
		s, err := ReadSet(bytes.NewReader(tt.in), tt.max)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "data: qds1: ") {
			t.Errorf("ReadSet(%s) = %v, %v; want error containing %q", tt.name, s, err, tt.want)
		}
	}
}

func TestReadSetTruncatedLargeClaimAllocatesLittle(t *testing.T) {
	in := append(header("x", 28, 28, 1, 10, MaxSamples), make([]byte, 100)...)
	allocated := bytesAllocated(func() {
		if _, err := ReadSet(bytes.NewReader(in), MaxSamples); err == nil {
			t.Errorf("ReadSet(truncated %d-sample claim) = nil error; want one", MaxSamples)
		}
	})
	if allocated > 2*eagerBytes {
		t.Errorf("ReadSet(truncated %d-sample claim) allocated %d bytes; want at most %d", MaxSamples, allocated, 2*eagerBytes)
	}
}

func TestReadSetPanics(t *testing.T) {
	if got, want := catchPanic(func() { ReadSet(bytes.NewReader(nil), 0) }), "data: ReadSet maxSamples 0 is not positive"; got != want {
		t.Errorf("ReadSet(maxSamples 0) panic %q; want %q", got, want)
	}
}

// bytesAllocated returns how many bytes f allocates on the heap.
func bytesAllocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func TestReadN(t *testing.T) {
	// Crosses the eager allocation size so that the buffer has to grow.
	n := eagerBytes + eagerBytes/2 + 3
	src := make([]byte, n)
	for i := range src {
		src[i] = byte(i * 31)
	}
	got, err := readN(bytes.NewReader(src), n)
	if err != nil || !bytes.Equal(got, src) {
		t.Errorf("readN(%d) = %d bytes, %v; want the input", n, len(got), err)
	}
	if _, err := readN(bytes.NewReader(src[:n-1]), n); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("readN(%d of %d) = %v; want truncated", n-1, n, err)
	}
}
