package data

import (
	"bytes"
	"testing"
)

func FuzzReadSet(f *testing.F) {
	f.Add(setBytes(f, tinySet(4, 3)))
	f.Add(setBytes(f, tinySet(0, 1)))
	f.Add(header("x", 28, 28, 1, 10, 1000))
	f.Add([]byte("QDS1"))
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := ReadSet(bytes.NewReader(in), 1000)
		if err != nil {
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("ReadSet accepted a Set that fails Validate: %v", err)
		}
		// The encoding is canonical: what was accepted writes back the same.
		var b bytes.Buffer
		if err := WriteSet(&b, s); err != nil {
			t.Fatalf("WriteSet(ReadSet(in)) = %v", err)
		}
		if !bytes.Equal(b.Bytes(), in) {
			t.Fatalf("WriteSet(ReadSet(in)) = %x; want %x", b.Bytes(), in)
		}
	})
}

func FuzzReadIDX(f *testing.F) {
	raw := idxBytes(f, []int{2, 3, 2}, seq(12))
	f.Add(raw)
	f.Add(gzipBytes(f, raw))
	f.Add(idxBytes(f, []int{5}, seq(5)))
	f.Add([]byte{0, 0, 8, 4, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 9})
	f.Fuzz(func(t *testing.T, in []byte) {
		const maxElems = 1 << 16
		dims, data, err := ReadIDX(bytes.NewReader(in), maxElems)
		if err != nil {
			return
		}
		if n, ok := product(dims, maxElems); !ok || n != len(data) || len(dims) < 1 || len(dims) > 4 {
			t.Fatalf("ReadIDX accepted dims %v with %d bytes", dims, len(data))
		}
		if len(in) > 1 && in[0] == 0x1f && in[1] == 0x8b {
			return // gzip input does not re-encode byte for byte
		}
		var b bytes.Buffer
		if err := WriteIDX(&b, dims, data); err != nil {
			t.Fatalf("WriteIDX(ReadIDX(in)) = %v", err)
		}
		if !bytes.Equal(b.Bytes(), in) {
			t.Fatalf("WriteIDX(ReadIDX(in)) = %x; want %x", b.Bytes(), in)
		}
	})
}

func FuzzReadCIFAR10(f *testing.F) {
	f.Add(cifarRecords(2))
	f.Add(cifarRecords(1)[:100])
	f.Fuzz(func(t *testing.T, in []byte) {
		s, err := ReadCIFAR10(bytes.NewReader(in), 8)
		if err != nil {
			return
		}
		if err := s.Validate(); err != nil || s.Len()*cifarRecord != len(in) {
			t.Fatalf("ReadCIFAR10 accepted %d bytes as %d records: %v", len(in), s.Len(), err)
		}
	})
}
