package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"testing"
)

func filled(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }

func testKeys(b byte) RoundKeys {
	return RoundKeys{EncKey: filled(MLKEMKeySize, b), MaskKey: filled(MLKEMKeySize, b+1),
		Identity: filled(IdentityKeySize, b+2), Sig: filled(SignatureSize, b+3)}
}

// validSecAgg returns one valid message of each secure aggregation type.
func validSecAgg() []SecAggMessage {
	return []SecAggMessage{
		&SAKeys{Round: 3, Keys: testKeys(1)},
		&SARoster{Round: 3, Digests: [][]byte{filled(32, 1), filled(32, 2), filled(32, 3)},
			Members: []SAMember{{Index: 0, ClientID: "c-a", Keys: testKeys(4)}, {Index: 2, ClientID: "c-c", Keys: testKeys(8)}}},
		&SAShares{Round: 3, Envelopes: []SAEnvelope{{Peer: 0, Shares: filled(SealedSharesSize, 5), Seed: filled(SealedSeedSize, 6)},
			{Peer: 2, Shares: filled(SealedSharesSize, 7)}}},
		&SAInbox{Round: 3, Envelopes: []SAEnvelope{{Peer: 4, Shares: filled(SealedSharesSize, 5)}}},
		&SAMasked{Round: 3, ModelVersion: 2, Loss: 0.25, Accuracy: 0.9, TrainMS: 1234, SamplesPerS: 500, Values: []uint32{1, 1 << 31, 7}},
		&SAUnmask{Round: 3, Survivors: []int{0, 2, 5}},
		&SAReveal{Round: 3, Shares: []SAShare{{Of: 0, Kind: ShareSelf, Value: filled(ShareSize, 9)}, {Of: 4, Kind: ShareRoot, Value: filled(ShareSize, 1)}}},
	}
}

func TestSecAggRoundTrip(t *testing.T) {
	for _, m := range validSecAgg() {
		b, err := AppendSecAgg(nil, m)
		if err != nil {
			t.Fatalf("AppendSecAgg(%s) = %v", m.Type(), err)
		}
		if !IsSecAgg(b) {
			t.Errorf("IsSecAgg(AppendSecAgg(%s)) = false", m.Type())
		}
		got, err := ParseSecAgg(b, SecAggLimits{})
		if err != nil {
			t.Fatalf("ParseSecAgg(%s) = %v", m.Type(), err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("ParseSecAgg(AppendSecAgg(%s)) = %+v; want %+v", m.Type(), got, m)
		}
		// Every truncation is refused.
		for n := 0; n < len(b); n += 1 + len(b)/97 {
			if _, err := ParseSecAgg(b[:n], SecAggLimits{}); err == nil {
				t.Fatalf("ParseSecAgg(%s truncated to %d of %d bytes) = nil error", m.Type(), n, len(b))
			}
		}
		if _, err := ParseSecAgg(append(b, 0), SecAggLimits{}); err == nil {
			t.Errorf("ParseSecAgg(%s with a trailing byte) = nil error", m.Type())
		}
	}
}

func TestSecAggHostile(t *testing.T) {
	hdr := func(typ SecAggType) []byte {
		return binary.LittleEndian.AppendUint32([]byte{'Q', 'F', 'S', Version, byte(typ)}, 3)
	}
	count := func(typ SecAggType, n uint32) []byte { return binary.LittleEndian.AppendUint32(hdr(typ), n) }
	for _, c := range []struct {
		name string
		b    []byte
		lim  SecAggLimits
		want error
	}{
		{"huge masked count", append(binary.LittleEndian.AppendUint32(append(hdr(TypeSAMasked), make([]byte, 40)...), 1<<30), 1, 2, 3, 4), SecAggLimits{MaxValues: 1000}, ErrTooLarge},
		{"masked count beyond the bytes", append(binary.LittleEndian.AppendUint32(append(hdr(TypeSAMasked), make([]byte, 40)...), 500), 1, 2, 3, 4), SecAggLimits{MaxValues: 1000}, ErrMalformed},
		{"envelopes beyond the limit", count(TypeSAShares, 6000), SecAggLimits{}, ErrTooLarge},
		{"envelopes beyond the bytes", count(TypeSAShares, 3), SecAggLimits{}, ErrMalformed},
		{"survivors beyond the limit", count(TypeSAUnmask, 100), SecAggLimits{MaxMembers: 10}, ErrTooLarge},
		{"unsorted survivors", binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(count(TypeSAUnmask, 2), 5), 5), SecAggLimits{}, ErrMalformed},
		{"unknown type", hdr(99), SecAggLimits{}, ErrMalformed},
		{"other version", []byte{'Q', 'F', 'S', Version + 1, 1, 0, 0, 0, 0}, SecAggLimits{}, ErrVersion},
		{"round 0", binary.LittleEndian.AppendUint32([]byte{'Q', 'F', 'S', Version, byte(TypeSAUnmask)}, 0), SecAggLimits{}, ErrMalformed},
	} {
		m, err := ParseSecAgg(c.b, c.lim)
		if !errors.Is(err, c.want) || m != nil {
			t.Errorf("ParseSecAgg(%s) = %v, %v; want an error matching %v", c.name, m, err, c.want)
		}
	}
	// A roster whose member indices do not increase, or exceed its
	// members, does not validate.
	r := validSecAgg()[1].(*SARoster)
	r.Members[1].Index = 3
	if _, err := AppendSecAgg(nil, r); err == nil {
		t.Error("AppendSecAgg(roster with member index 3 of 3) = nil error")
	}
	r.Members[1].Index = 0
	if _, err := AppendSecAgg(nil, r); err == nil {
		t.Error("AppendSecAgg(roster with repeated member index) = nil error")
	}
}

func FuzzParseSecAgg(f *testing.F) {
	for _, m := range validSecAgg() {
		b, err := AppendSecAgg(nil, m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("QFS\x01\x05\x01\x00\x00\x00"))
	lim := SecAggLimits{MaxMembers: 64, MaxValues: 4096}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseSecAgg(b, lim)
		if err != nil {
			if m != nil {
				t.Fatalf("ParseSecAgg returned %v with error %v", m, err)
			}
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrVersion) && !errors.Is(err, ErrNotFinite) {
				t.Fatalf("ParseSecAgg error %v matches no sentinel", err)
			}
			return
		}
		// What parses writes back to the same bytes.
		again, err := AppendSecAgg(nil, m)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("AppendSecAgg(ParseSecAgg(%x)) = %x, %v", b, again, err)
		}
	})
}
