package shardwire

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/qflare/qflare/shared/fl"
)

func TestMessagesRoundTrip(t *testing.T) {
	msgs := []struct {
		k Kind
		v validator
		p validator
	}{
		{KindHello, &Hello{V: Version, Shard: "eu-1"}, &Hello{}},
		{KindUpdate, &Update{Run: "r", Round: 3, Client: "c-x", Accepted: true, Samples: 600, Bytes: 1234, Codec: "int8+zstd", Loss: 0.3}, &Update{}},
		{KindUpdate, &Update{Run: "r", Round: 3, Client: "c-x", Code: "norm", Reason: "too big", Bytes: 9}, &Update{}},
		{KindRun, &Run{Run: "run-a", Params: 6, Shapes: [][]int{{2, 2}, {2}}, MaxFrameBytes: 100, MaxSamples: 600}, &Run{}},
		{KindRound, &Round{Run: "run-a", Round: 1, Version: 0, Frame: 7, DeadlineUnixMS: 1e12, Clip: 1.5}, &Round{}},
		{KindTabClose, &Close{Code: 1012, Reason: "restart"}, &Close{}},
	}
	for _, m := range msgs {
		b, err := Encode(nil, m.k, 42, m.v)
		if err != nil {
			t.Fatalf("Encode(%s) = %v", m.k, err)
		}
		got, err := Parse(b)
		if err != nil || got.Kind != m.k || got.ID != 42 {
			t.Fatalf("Parse(Encode(%s)) = %+v, %v", m.k, got, err)
		}
		if err := Decode(got.Body, m.p); err != nil {
			t.Errorf("Decode(%s) = %v", m.k, err)
		}
	}
}

// TestHostileMessages: every malformed message is an error wrapping
// ErrMalformed, never a panic.
func TestHostileMessages(t *testing.T) {
	good, _ := Encode(nil, KindRun, 0, &Run{Run: "r", Params: 4, Shapes: [][]int{{4}}, MaxFrameBytes: 10, MaxSamples: 1})
	cases := map[string][]byte{
		"empty":         nil,
		"bad magic":     append([]byte("XS"), good[2:]...),
		"bad version":   append([]byte{'Q', 'S', 9}, good[3:]...),
		"unknown kind":  Append(nil, 200, 0, []byte("{}")),
		"huge json":     Append(nil, KindRun, 0, bytes.Repeat([]byte(" "), MaxJSON+1)),
		"huge text":     Append(nil, KindTabText, 1, make([]byte, 64<<10+1)),
		"too long":      make([]byte, MaxMessage+1),
		"shapes lie":    Append(nil, KindRun, 0, []byte(`{"run":"r","params":5,"shapes":[[4]],"max_frame_bytes":10,"max_samples":1}`)),
		"unknown field": Append(nil, KindRun, 0, []byte(`{"run":"r","params":4,"shapes":[[4]],"max_frame_bytes":10,"max_samples":1,"x":1}`)),
		"trailing":      Append(nil, KindFlush, 0, []byte(`{"run":"r","round":1} {}`)),
		"bad run id":    Append(nil, KindFlush, 0, []byte(`{"run":"../x","round":1}`)),
		"nan":           Append(nil, KindRound, 0, []byte(`{"run":"r","round":1,"version":0,"frame":1,"deadline_unix_ms":0,"clip":-1}`)),
		"refused no code": Append(nil, KindUpdate, 0, []byte(`{"run":"r","round":1,"client":"c","accepted":false,"samples":1,"bytes":1,"base_version":0,
			"loss":0,"accuracy":0,"train_ms":0,"samples_per_s":0}`)),
		"huge tensor": Append(nil, KindRun, 0, []byte(`{"run":"r","params":4,"shapes":[[65536,65536,65536]],"max_frame_bytes":10,"max_samples":1}`)),
	}
	for name, b := range cases {
		m, err := Parse(b)
		if err == nil {
			var v validator
			switch m.Kind {
			case KindRun:
				v = &Run{}
			case KindFlush:
				v = &Flush{}
			case KindRound:
				v = &Round{}
			case KindUpdate:
				v = &Update{}
			default:
				t.Errorf("%s: Parse accepted it as %s", name, m.Kind)
				continue
			}
			err = Decode(m.Body, v)
		}
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: error %v; want one wrapping ErrMalformed", name, err)
		}
	}
}

// TestPartialTransport: a partial sent in chunks decodes to the same sum;
// damaged or oversized input is refused.
func TestPartialTransport(t *testing.T) {
	const n = 1_000_000 // more than one chunk compressed
	rng := rand.New(rand.NewPCG(1, 2))
	p := fl.NewPartial(n)
	d := make([]float32, n)
	for c := range 3 {
		for i := range d {
			d[i] = float32(rng.NormFloat64())
		}
		if err := p.Add(fl.Update{Client: strings.Repeat("c", c+1), Samples: 10, Delta: d}); err != nil {
			t.Fatal(err)
		}
	}
	var msgs [][]byte
	if err := EncodePartial(p, PartialHeader{Run: "r", Round: 2, Seq: 5}, func(m []byte) error {
		msgs = append(msgs, bytes.Clone(m))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d chunks, last %d bytes", len(msgs), len(msgs[len(msgs)-1]))
	if len(msgs) < 2 {
		t.Fatalf("%d chunks; want several (the test is about chunking)", len(msgs))
	}
	var z []byte
	for i, b := range msgs {
		m, err := Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		h, chunk, err := ParsePartial(m.Body)
		if err != nil {
			t.Fatal(err)
		}
		if h.Part != i || h.Last != (i == len(msgs)-1) || h.Count != 3 || h.Seq != 5 {
			t.Errorf("chunk %d header %+v", i, h)
		}
		z = append(z, chunk...)
	}
	q, err := DecodePartial(z, n, 3)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := p.MarshalBinary()
	b, _ := q.MarshalBinary()
	if !bytes.Equal(a, b) {
		t.Error("the partial decoded from the link differs from the one sent")
	}
	if _, err := DecodePartial(z, n, 4); err == nil {
		t.Error("DecodePartial(wrong count) = nil; want an error")
	}
	if _, err := DecodePartial(z, n+1, 3); err == nil {
		t.Error("DecodePartial(wrong model size) = nil; want an error")
	}
	if _, err := DecodePartial(z[:len(z)/2], n, 3); err == nil {
		t.Error("DecodePartial(half) = nil; want an error")
	}
	bad := bytes.Clone(z)
	bad[len(bad)/2] ^= 0xff
	if _, err := DecodePartial(bad, n, 3); err == nil {
		t.Error("DecodePartial(damaged) = nil; want an error")
	}
}

// TestSmallPartial: a partial smaller than the compressor's window
// decodes (the decoder allows the window, and holds the output to the
// partial's size).
func TestSmallPartial(t *testing.T) {
	p := fl.NewPartial(10)
	if err := p.Add(fl.Update{Client: "a", Samples: 3, Delta: make([]float32, 10)}); err != nil {
		t.Fatal(err)
	}
	var z []byte
	if err := EncodePartial(p, PartialHeader{Run: "r", Round: 1, Seq: 1}, func(m []byte) error {
		msg, _ := Parse(m)
		_, chunk, err := ParsePartial(msg.Body)
		z = append(z, chunk...)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := DecodePartial(z, 10, 1); err != nil {
		t.Errorf("DecodePartial(a 10-parameter partial) = %v", err)
	}
}

func FuzzParse(f *testing.F) {
	good, _ := Encode(nil, KindRound, 3, &Round{Run: "r", Round: 1, Frame: 2})
	f.Add(good)
	f.Add(Append(nil, KindPartial, 0, []byte{3, 0, 0, 0, '{', '}', 1}))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			return
		}
		switch m.Kind {
		case KindPartial:
			ParsePartial(m.Body)
		case KindRun:
			Decode(m.Body, &Run{})
		case KindRound:
			Decode(m.Body, &Round{})
		case KindUpdate:
			Decode(m.Body, &Update{})
		}
	})
}
