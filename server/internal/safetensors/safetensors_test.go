package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	in := []Tensor{
		{Name: "fc1.weight", Shape: []int{2, 3}, Data: []float32{1, 2, 3, 4, 5, 6}},
		{Name: "fc1.bias", Shape: []int{2}, Data: []float32{-1, 0.5}},
		{Name: "scalar", Shape: []int{}, Data: []float32{7}},
	}
	var buf bytes.Buffer
	if err := Write(&buf, in, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	n := binary.LittleEndian.Uint64(b)
	if (8+n)%8 != 0 {
		t.Errorf("data starts at byte %d; want 8-byte alignment", 8+n)
	}
	var header map[string]json.RawMessage
	if err := json.Unmarshal(b[8:8+n], &header); err != nil {
		t.Fatalf("header is not JSON: %v", err)
	}
	if !strings.Contains(string(header["fc1.weight"]), `"dtype":"F32","shape":[2,3],"data_offsets":[0,24]`) {
		t.Errorf("fc1.weight entry = %s; want F32, [2,3], offsets [0,24]", header["fc1.weight"])
	}
	out, meta, err := Read(b)
	if err != nil {
		t.Fatal(err)
	}
	if meta["format"] != "pt" || len(out) != len(in) {
		t.Fatalf("Read = %d tensors, metadata %v; want %d and format pt", len(out), meta, len(in))
	}
	for i := range in {
		if out[i].Name != in[i].Name || len(out[i].Data) != len(in[i].Data) {
			t.Fatalf("tensor %d = %s %v; want %s %v", i, out[i].Name, out[i].Shape, in[i].Name, in[i].Shape)
		}
		for j := range in[i].Data {
			if out[i].Data[j] != in[i].Data[j] {
				t.Errorf("%s[%d] = %g; want %g", in[i].Name, j, out[i].Data[j], in[i].Data[j])
			}
		}
	}
}

func TestWriteRejects(t *testing.T) {
	cases := map[string][]Tensor{
		"empty name":     {{Name: "", Shape: []int{1}, Data: []float32{1}}},
		"duplicate":      {{Name: "a", Shape: []int{1}, Data: []float32{1}}, {Name: "a", Shape: []int{1}, Data: []float32{1}}},
		"shape mismatch": {{Name: "a", Shape: []int{2, 2}, Data: []float32{1}}},
		"reserved name":  {{Name: "__metadata__", Shape: []int{1}, Data: []float32{1}}},
	}
	for name, ts := range cases {
		if err := Write(&bytes.Buffer{}, ts, nil); err == nil {
			t.Errorf("Write(%s) succeeded; want an error", name)
		}
	}
}

func TestReadRejects(t *testing.T) {
	var good bytes.Buffer
	Write(&good, []Tensor{{Name: "a", Shape: []int{2}, Data: []float32{1, 2}}}, nil)
	g := good.Bytes()
	header := func(h string) []byte {
		b := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
		return append(append(b, h...), make([]byte, 8)...)
	}
	cases := map[string][]byte{
		"short":            g[:4],
		"header too long":  append(binary.LittleEndian.AppendUint64(nil, 1<<40), g[8:]...),
		"truncated data":   g[:len(g)-1],
		"trailing data":    append(append([]byte(nil), g...), 0, 0, 0, 0),
		"not json":         header("{nope"),
		"other dtype":      header(`{"a":{"dtype":"F16","shape":[4],"data_offsets":[0,8]}}`),
		"offsets mismatch": header(`{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,8]}}`),
		"gap":              header(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`),
		"negative shape":   header(`{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}`),
	}
	for name, b := range cases {
		if _, _, err := Read(b); err == nil {
			t.Errorf("Read(%s) succeeded; want an error", name)
		}
	}
}
