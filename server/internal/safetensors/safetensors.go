// Package safetensors writes and reads the safetensors format
// (https://github.com/huggingface/safetensors): an 8-byte little-endian
// header length, a JSON header mapping tensor names to dtype, shape and
// byte offsets (plus optional "__metadata__" strings), then the raw
// little-endian tensor data back to back. Files it writes load with
// safetensors.torch.load_file into named torch tensors.
package safetensors

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
)

// Tensor is one named float32 tensor.
type Tensor struct {
	Name  string
	Shape []int
	Data  []float32
}

type entry struct {
	DType   string   `json:"dtype"`
	Shape   []int    `json:"shape"`
	Offsets [2]int64 `json:"data_offsets"`
}

// MaxHeader caps the JSON header Read accepts.
const MaxHeader = 1 << 20

// Write writes tensors (in the given order) and metadata as a safetensors
// file. Names must be unique and non-empty, and each tensor's data must
// match its shape.
func Write(w io.Writer, tensors []Tensor, metadata map[string]string) error {
	header := map[string]any{}
	if len(metadata) > 0 {
		header["__metadata__"] = metadata
	}
	var off int64
	for _, t := range tensors {
		if t.Name == "" || t.Name == "__metadata__" || header[t.Name] != nil {
			return fmt.Errorf("safetensors: bad or duplicate tensor name %q", t.Name)
		}
		n := 1
		for _, d := range t.Shape {
			n *= d
		}
		if n != len(t.Data) {
			return fmt.Errorf("safetensors: tensor %s has shape %v but %d values", t.Name, t.Shape, len(t.Data))
		}
		header[t.Name] = entry{DType: "F32", Shape: t.Shape, Offsets: [2]int64{off, off + 4*int64(n)}}
		off += 4 * int64(n)
	}
	h, err := json.Marshal(header)
	if err != nil {
		return err
	}
	// Pad the header with spaces so the data starts 8-byte aligned.
	if pad := (8 - len(h)%8) % 8; pad > 0 {
		h = append(h, strings.Repeat(" ", pad)...)
	}
	var lenb [8]byte
	binary.LittleEndian.PutUint64(lenb[:], uint64(len(h)))
	if _, err := w.Write(lenb[:]); err != nil {
		return err
	}
	if _, err := w.Write(h); err != nil {
		return err
	}
	buf := make([]byte, 0, 64<<10)
	for _, t := range tensors {
		for _, v := range t.Data {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
			if len(buf) == cap(buf) {
				if _, err := w.Write(buf); err != nil {
					return err
				}
				buf = buf[:0]
			}
		}
	}
	_, err = w.Write(buf)
	return err
}

// Read parses a safetensors file of F32 tensors, checking the header the
// way the reference implementation does (offsets in bounds, contiguous, no
// overlap, sizes matching shapes). Tensors come back sorted by offset.
func Read(b []byte) ([]Tensor, map[string]string, error) {
	if len(b) < 8 {
		return nil, nil, fmt.Errorf("safetensors: file of %d bytes has no header", len(b))
	}
	n := binary.LittleEndian.Uint64(b)
	if n > MaxHeader || n > uint64(len(b)-8) {
		return nil, nil, fmt.Errorf("safetensors: header length %d is out of bounds", n)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b[8:8+n], &raw); err != nil {
		return nil, nil, fmt.Errorf("safetensors: header: %w", err)
	}
	data := b[8+n:]
	var meta map[string]string
	type item struct {
		name string
		e    entry
	}
	var items []item
	for name, v := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(v, &meta); err != nil {
				return nil, nil, fmt.Errorf("safetensors: metadata: %w", err)
			}
			continue
		}
		var e entry
		if err := json.Unmarshal(v, &e); err != nil {
			return nil, nil, fmt.Errorf("safetensors: tensor %s: %w", name, err)
		}
		if e.DType != "F32" {
			return nil, nil, fmt.Errorf("safetensors: tensor %s has dtype %s; only F32 is supported", name, e.DType)
		}
		items = append(items, item{name, e})
	}
	sort.Slice(items, func(i, j int) bool { return items[i].e.Offsets[0] < items[j].e.Offsets[0] })
	var end int64
	out := make([]Tensor, 0, len(items))
	for _, it := range items {
		size := int64(4)
		for _, d := range it.e.Shape {
			if d < 0 || d > 1<<31 {
				return nil, nil, fmt.Errorf("safetensors: tensor %s has bad shape %v", it.name, it.e.Shape)
			}
			size *= int64(d)
		}
		if it.e.Offsets[0] != end || it.e.Offsets[1]-it.e.Offsets[0] != size || it.e.Offsets[1] > int64(len(data)) {
			return nil, nil, fmt.Errorf("safetensors: tensor %s has offsets %v, want [%d %d] within %d data bytes", it.name, it.e.Offsets, end, end+size, len(data))
		}
		t := Tensor{Name: it.name, Shape: it.e.Shape, Data: make([]float32, size/4)}
		for i := range t.Data {
			t.Data[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[it.e.Offsets[0]+4*int64(i):]))
		}
		out = append(out, t)
		end = it.e.Offsets[1]
	}
	if end != int64(len(data)) {
		return nil, nil, fmt.Errorf("safetensors: %d trailing data bytes", int64(len(data))-end)
	}
	return out, meta, nil
}
