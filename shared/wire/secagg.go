package wire

import (
	"encoding/binary"
	"math"
	"slices"
)

// Secure aggregation messages. They travel in WebSocket binary frames of
// their own (not FrameHeader frames): their key material and ciphertexts
// are of fixed sizes and would grow by a third in JSON. Every such frame
// starts with secAggMagic, the protocol version and a type byte:
//
//	offset  size  content
//	0       3     magic "QFS"
//	3       1     protocol version (Version)
//	4       1     message type (see SecAggType)
//	5       4     round, uint32 little-endian
//	9       rest  the body of that type, little-endian, described at each type
//
// AppendSecAgg writes them and ParseSecAgg reads them, checking every count
// against SecAggLimits and the remaining bytes before it allocates. The
// sizes of keys, signatures and sealed envelopes are fixed by the
// primitives the protocol uses (package secagg): ML-KEM-768 encapsulation
// keys, ML-DSA-65 public keys and signatures, HPKE (ML-KEM-768,
// HKDF-SHA256, ChaCha20-Poly1305) ciphertexts of fixed plaintexts.
const (
	// MLKEMKeySize is the size of an ML-KEM-768 encapsulation key.
	MLKEMKeySize = 1184
	// IdentityKeySize is the size of an ML-DSA-65 public key.
	IdentityKeySize = 1952
	// SignatureSize is the size of an ML-DSA-65 signature.
	SignatureSize = 3309
	// SealedSharesSize is the size of an HPKE-sealed pair of Shamir shares:
	// the ML-KEM-768 ciphertext (1088), 64 bytes of shares and a 16-byte
	// tag.
	SealedSharesSize = 1088 + 64 + 16
	// SealedSeedSize is the size of an HPKE-sealed 32-byte pairwise mask
	// seed.
	SealedSeedSize = 1088 + 32 + 16
	// DigestSize is the size of a roster member's key digest (SHA3-256).
	DigestSize = 32
	// ShareSize is the size of one Shamir share's value (a scalar).
	ShareSize = 32
)

// secAggMagic starts every secure aggregation frame.
var secAggMagic = [3]byte{'Q', 'F', 'S'}

// secAggPrefix is the size of magic, version, type and round.
const secAggPrefix = 9

// SecAggType is a secure aggregation message's type byte.
type SecAggType uint8

// Secure aggregation message types, in the order a round uses them.
const (
	TypeSAKeys   SecAggType = 1 + iota // client → server: signed round keys (advertise keys)
	TypeSARoster                       // server → client: the round's members and neighbours' keys
	TypeSAShares                       // client → server: sealed shares and seeds for each neighbour (share keys)
	TypeSAInbox                        // server → client: what its neighbours sealed for it
	TypeSAMasked                       // client → server: the masked input (masked input collection)
	TypeSAUnmask                       // server → client: who sent masked inputs
	TypeSAReveal                       // client → server: the shares that unmask the sum (unmasking)
)

// Limits on secure aggregation messages.
const (
	// MaxSecAggMembers bounds the members of one secure round.
	MaxSecAggMembers = 5000
	maxClientIDLen   = maxIDLen
)

// SecAggLimits bounds what ParseSecAgg accepts; zero fields take the
// defaults (MaxSecAggMembers members, DefaultMaxParams+1 values).
type SecAggLimits struct {
	MaxMembers int // members of a roster, envelopes of a message, survivors, shares
	MaxValues  int // values of a masked input
}

func (l SecAggLimits) withDefaults() SecAggLimits {
	if l.MaxMembers <= 0 || l.MaxMembers > MaxSecAggMembers {
		l.MaxMembers = MaxSecAggMembers
	}
	if l.MaxValues <= 0 {
		l.MaxValues = DefaultMaxParams + 1
	}
	return l
}

// SecAggMessage is a secure aggregation message: one of *SAKeys,
// *SARoster, *SAShares, *SAInbox, *SAMasked, *SAUnmask, *SAReveal. It is a
// Message too (Type and Validate), so that a client handles it like a
// control message, but it is written with AppendSecAgg, never Marshal.
type SecAggMessage interface {
	Message
	// SecAggType returns the message's type byte.
	SecAggType() SecAggType
	// RoundNo returns the round the message belongs to.
	RoundNo() int
	appendBody(b []byte) []byte
	parseBody(r *reader, lim SecAggLimits) error
}

// RoundKeys are a member's public keys for one round, signed with its
// long-term identity key.
type RoundKeys struct {
	EncKey   []byte // ML-KEM-768 encapsulation key that shares are sealed to (MLKEMKeySize)
	MaskKey  []byte // ML-KEM-768 encapsulation key derived from the member's key root (MLKEMKeySize)
	Identity []byte // ML-DSA-65 public key (IdentityKeySize)
	Sig      []byte // ML-DSA-65 signature over the run, round, client id and both keys (SignatureSize)
}

// SAKeys advertises a client's round keys (phase 0, advertise keys).
//
// Body: EncKey, MaskKey, Identity, Sig, each of its fixed size.
type SAKeys struct {
	Round int
	Keys  RoundKeys
}

// SAMember is one member of a secure round as the roster lists it.
type SAMember struct {
	Index    int // the member's index in the round, 0..N-1
	ClientID string
	Keys     RoundKeys
}

// SARoster tells a member who is in the round: every member's key digest
// (from which the neighbour graph is derived; a member finds its own index
// by its digest) and the full keys of the members it shares with (with the
// complete graph, every member's, so that one roster serves all).
//
// Body: n uint32, n digests of DigestSize, m uint32, then m entries: index
// uint32, id length uint8, id, EncKey, MaskKey, Identity, Sig.
type SARoster struct {
	Round   int
	Digests [][]byte // every member's key digest, by index (len N)
	Members []SAMember
}

// SAEnvelope is what one member seals for another: its two Shamir shares,
// sealed to the recipient's EncKey, and, when it owns the pair, the pair's
// mask seed sealed to the recipient's MaskKey.
type SAEnvelope struct {
	Peer   int    // the recipient (in SAShares) or the sender (in SAInbox)
	Shares []byte // SealedSharesSize bytes
	Seed   []byte // SealedSeedSize bytes, or empty
}

// SAShares carries a member's envelopes for its neighbours (phase 1,
// share keys).
//
// Body: count uint32, then count envelopes: peer uint32, has-seed uint8
// (0 or 1), Shares, Seed when has-seed is 1.
type SAShares struct {
	Round     int
	Envelopes []SAEnvelope
}

// SAInbox delivers to a member the envelopes its neighbours sealed for it;
// Peer is the sender. Its body is SAShares's.
type SAInbox struct {
	Round     int
	Envelopes []SAEnvelope
}

// SAMasked is a member's masked input (phase 2, masked input collection)
// with the local metrics an update frame carries.
//
// Body: model version uint64, loss float64, accuracy float64, train_ms
// uint64, samples_per_s float64, n uint32, n values uint32.
type SAMasked struct {
	Round        int
	ModelVersion int64
	Loss         float64
	Accuracy     float64
	TrainMS      int64
	SamplesPerS  float64
	Values       []uint32
}

// SAUnmask lists the members whose masked inputs the server holds (phase
// 3, unmasking).
//
// Body: count uint32, count indices uint32, strictly increasing.
type SAUnmask struct {
	Round     int
	Survivors []int
}

// Kinds of revealed shares.
const (
	ShareSelf = 1 // a share of a surviving member's self-mask seed
	ShareRoot = 2 // a share of a dropped member's key root
)

// SAShare is one revealed Shamir share: of member Of's self-mask seed or
// key root.
type SAShare struct {
	Of    int
	Kind  uint8 // ShareSelf or ShareRoot
	Value []byte
}

// SAReveal carries a member's revealed shares.
//
// Body: count uint32, then count shares: of uint32, kind uint8, value of
// ShareSize.
type SAReveal struct {
	Round  int
	Shares []SAShare
}

// Type returns "sa_keys".
func (*SAKeys) Type() string { return "sa_keys" }

// Type returns "sa_roster".
func (*SARoster) Type() string { return "sa_roster" }

// Type returns "sa_shares".
func (*SAShares) Type() string { return "sa_shares" }

// Type returns "sa_inbox".
func (*SAInbox) Type() string { return "sa_inbox" }

// Type returns "sa_masked".
func (*SAMasked) Type() string { return "sa_masked" }

// Type returns "sa_unmask".
func (*SAUnmask) Type() string { return "sa_unmask" }

// Type returns "sa_reveal".
func (*SAReveal) Type() string { return "sa_reveal" }

// SecAggType returns TypeSAKeys.
func (*SAKeys) SecAggType() SecAggType { return TypeSAKeys }

// SecAggType returns TypeSARoster.
func (*SARoster) SecAggType() SecAggType { return TypeSARoster }

// SecAggType returns TypeSAShares.
func (*SAShares) SecAggType() SecAggType { return TypeSAShares }

// SecAggType returns TypeSAInbox.
func (*SAInbox) SecAggType() SecAggType { return TypeSAInbox }

// SecAggType returns TypeSAMasked.
func (*SAMasked) SecAggType() SecAggType { return TypeSAMasked }

// SecAggType returns TypeSAUnmask.
func (*SAUnmask) SecAggType() SecAggType { return TypeSAUnmask }

// SecAggType returns TypeSAReveal.
func (*SAReveal) SecAggType() SecAggType { return TypeSAReveal }

// RoundNo returns the message's round.
func (m *SAKeys) RoundNo() int { return m.Round }

// RoundNo returns the message's round.
func (m *SARoster) RoundNo() int { return m.Round }

// RoundNo returns the message's round.
func (m *SAShares) RoundNo() int { return m.Round }

// RoundNo returns the message's round.
func (m *SAInbox) RoundNo() int { return m.Round }

// RoundNo returns the message's round.
func (m *SAMasked) RoundNo() int { return m.Round }

// RoundNo returns the message's round.
func (m *SAUnmask) RoundNo() int { return m.Round }

// RoundNo returns the message's round.
func (m *SAReveal) RoundNo() int { return m.Round }

// IsSecAgg reports whether a binary frame is a secure aggregation message
// (by its magic; ParseSecAgg checks the rest).
func IsSecAgg(b []byte) bool { return len(b) >= 3 && [3]byte(b[:3]) == secAggMagic }

// AppendSecAgg validates m and appends its frame to dst.
func AppendSecAgg(dst []byte, m SecAggMessage) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return dst, err
	}
	if mi, ok := m.(*SAMasked); ok {
		dst = slices.Grow(dst, secAggPrefix+44+4*len(mi.Values))
	}
	dst = append(dst, secAggMagic[:]...)
	dst = append(dst, Version, byte(m.SecAggType()))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(m.RoundNo()))
	return m.appendBody(dst), nil
}

// ParseSecAgg reads a secure aggregation frame. It checks the magic,
// version and type, then reads the body strictly (every count against lim
// and the bytes left before anything is allocated, no trailing bytes),
// then validates the message. Errors wrap ErrMalformed, ErrVersion or
// ErrTooLarge. The message's keys, digests, envelopes and shares are
// subslices of b (as ParseFrame's payload is): one roster frame delivered
// to many members is held once; b must not change afterwards.
func ParseSecAgg(b []byte, lim SecAggLimits) (SecAggMessage, error) {
	lim = lim.withDefaults()
	switch {
	case len(b) < secAggPrefix:
		return nil, errorf(ErrMalformed, "wire: secure aggregation frame of %d bytes is shorter than its %d-byte prefix", len(b), secAggPrefix)
	case !IsSecAgg(b):
		return nil, errorf(ErrMalformed, "wire: frame does not start with magic %q", secAggMagic[:])
	case b[3] != Version:
		return nil, errorf(ErrVersion, "wire: secure aggregation frame is protocol version %d; this side speaks version %d", b[3], Version)
	}
	round := binary.LittleEndian.Uint32(b[5:9])
	if round > maxRounds {
		return nil, errorf(ErrMalformed, "wire: secure aggregation round %d exceeds %d", round, maxRounds)
	}
	var m SecAggMessage
	switch SecAggType(b[4]) {
	case TypeSAKeys:
		m = &SAKeys{Round: int(round)}
	case TypeSARoster:
		m = &SARoster{Round: int(round)}
	case TypeSAShares:
		m = &SAShares{Round: int(round)}
	case TypeSAInbox:
		m = &SAInbox{Round: int(round)}
	case TypeSAMasked:
		m = &SAMasked{Round: int(round)}
	case TypeSAUnmask:
		m = &SAUnmask{Round: int(round)}
	case TypeSAReveal:
		m = &SAReveal{Round: int(round)}
	default:
		return nil, errorf(ErrMalformed, "wire: unknown secure aggregation message type %d", b[4])
	}
	r := &reader{b: b[secAggPrefix:], what: m.Type()}
	if err := m.parseBody(r, lim); err != nil {
		return nil, err
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) != 0 {
		return nil, errorf(ErrMalformed, "wire: %s has %d trailing bytes", m.Type(), len(r.b))
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// reader reads a body, remembering the first error; reads after an error
// return zero values.
type reader struct {
	b    []byte
	err  error
	what string
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = errorf(ErrMalformed, "wire: "+r.what+": "+format, args...)
	}
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.fail("truncated: %d bytes needed, %d left", n, len(r.b))
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8() uint8 {
	if b := r.take(1); b != nil {
		return b[0]
	}
	return 0
}

func (r *reader) u32() uint32 {
	if b := r.take(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if b := r.take(8); b != nil {
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}

func (r *reader) f64() float64 { return math.Float64frombits(r.u64()) }

// count reads a count and checks it against limit and against the bytes
// left, each item taking at least minItem bytes, so that no allocation
// exceeds what the frame can hold.
func (r *reader) count(field string, limit, minItem int) int {
	n := r.u32()
	if r.err != nil {
		return 0
	}
	if int64(n) > int64(limit) {
		if r.err == nil {
			r.err = errorf(ErrTooLarge, "wire: %s.%s = %d exceeds limit %d", r.what, field, n, limit)
		}
		return 0
	}
	if int64(n)*int64(minItem) > int64(len(r.b)) {
		r.fail("%s = %d does not fit in the %d bytes left", field, n, len(r.b))
		return 0
	}
	return int(n)
}

// bytes returns the next n bytes, aliasing the frame (see ParseSecAgg).
func (r *reader) bytes(n int) []byte { return r.take(n) }

func appendKeys(b []byte, k *RoundKeys) []byte {
	b = append(b, k.EncKey...)
	b = append(b, k.MaskKey...)
	b = append(b, k.Identity...)
	return append(b, k.Sig...)
}

func parseKeys(r *reader) RoundKeys {
	return RoundKeys{EncKey: r.bytes(MLKEMKeySize), MaskKey: r.bytes(MLKEMKeySize),
		Identity: r.bytes(IdentityKeySize), Sig: r.bytes(SignatureSize)}
}

const roundKeysSize = 2*MLKEMKeySize + IdentityKeySize + SignatureSize

func (m *SAKeys) appendBody(b []byte) []byte { return appendKeys(b, &m.Keys) }

func (m *SAKeys) parseBody(r *reader, _ SecAggLimits) error {
	m.Keys = parseKeys(r)
	return nil
}

func (m *SARoster) appendBody(b []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(m.Digests)))
	for _, d := range m.Digests {
		b = append(b, d...)
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(m.Members)))
	for i := range m.Members {
		e := &m.Members[i]
		b = binary.LittleEndian.AppendUint32(b, uint32(e.Index))
		b = append(b, byte(len(e.ClientID)))
		b = append(b, e.ClientID...)
		b = appendKeys(b, &e.Keys)
	}
	return b
}

func (m *SARoster) parseBody(r *reader, lim SecAggLimits) error {
	n := r.count("digests", lim.MaxMembers, DigestSize)
	if n > 0 {
		m.Digests = make([][]byte, n)
		for i := range m.Digests {
			m.Digests[i] = r.bytes(DigestSize)
		}
	}
	k := r.count("members", lim.MaxMembers, 4+1+roundKeysSize)
	if k > 0 {
		m.Members = make([]SAMember, k)
		for i := range m.Members {
			e := &m.Members[i]
			e.Index = int(r.u32())
			idLen := int(r.u8())
			if idLen > maxClientIDLen {
				r.fail("member client id of %d bytes; limit %d", idLen, maxClientIDLen)
			}
			e.ClientID = string(r.take(idLen))
			e.Keys = parseKeys(r)
		}
	}
	return nil
}

func appendEnvelopes(b []byte, envs []SAEnvelope) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(envs)))
	for i := range envs {
		e := &envs[i]
		b = binary.LittleEndian.AppendUint32(b, uint32(e.Peer))
		has := byte(0)
		if len(e.Seed) > 0 {
			has = 1
		}
		b = append(b, has)
		b = append(b, e.Shares...)
		b = append(b, e.Seed...)
	}
	return b
}

func parseEnvelopes(r *reader, lim SecAggLimits) []SAEnvelope {
	n := r.count("envelopes", lim.MaxMembers, 4+1+SealedSharesSize)
	if n == 0 {
		return nil
	}
	envs := make([]SAEnvelope, n)
	for i := range envs {
		e := &envs[i]
		e.Peer = int(r.u32())
		has := r.u8()
		if has > 1 {
			r.fail("envelope has-seed flag %d; want 0 or 1", has)
		}
		e.Shares = r.bytes(SealedSharesSize)
		if has == 1 {
			e.Seed = r.bytes(SealedSeedSize)
		}
	}
	return envs
}

func (m *SAShares) appendBody(b []byte) []byte { return appendEnvelopes(b, m.Envelopes) }

func (m *SAShares) parseBody(r *reader, lim SecAggLimits) error {
	m.Envelopes = parseEnvelopes(r, lim)
	return nil
}

func (m *SAInbox) appendBody(b []byte) []byte { return appendEnvelopes(b, m.Envelopes) }

func (m *SAInbox) parseBody(r *reader, lim SecAggLimits) error {
	m.Envelopes = parseEnvelopes(r, lim)
	return nil
}

func (m *SAMasked) appendBody(b []byte) []byte {
	b = binary.LittleEndian.AppendUint64(b, uint64(m.ModelVersion))
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(m.Loss))
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(m.Accuracy))
	b = binary.LittleEndian.AppendUint64(b, uint64(m.TrainMS))
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(m.SamplesPerS))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(m.Values)))
	for _, v := range m.Values {
		b = binary.LittleEndian.AppendUint32(b, v)
	}
	return b
}

func (m *SAMasked) parseBody(r *reader, lim SecAggLimits) error {
	m.ModelVersion = int64(r.u64())
	m.Loss, m.Accuracy = r.f64(), r.f64()
	m.TrainMS = int64(r.u64())
	m.SamplesPerS = r.f64()
	n := r.count("values", lim.MaxValues, 4)
	if n > 0 {
		raw := r.take(4 * n)
		if raw != nil {
			m.Values = make([]uint32, n)
			for i := range m.Values {
				m.Values[i] = binary.LittleEndian.Uint32(raw[4*i:])
			}
		}
	}
	return nil
}

func (m *SAUnmask) appendBody(b []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(m.Survivors)))
	for _, s := range m.Survivors {
		b = binary.LittleEndian.AppendUint32(b, uint32(s))
	}
	return b
}

func (m *SAUnmask) parseBody(r *reader, lim SecAggLimits) error {
	n := r.count("survivors", lim.MaxMembers, 4)
	if n > 0 {
		m.Survivors = make([]int, n)
		for i := range m.Survivors {
			m.Survivors[i] = int(r.u32())
		}
	}
	return nil
}

func (m *SAReveal) appendBody(b []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(m.Shares)))
	for _, s := range m.Shares {
		b = binary.LittleEndian.AppendUint32(b, uint32(s.Of))
		b = append(b, s.Kind)
		b = append(b, s.Value...)
	}
	return b
}

func (m *SAReveal) parseBody(r *reader, lim SecAggLimits) error {
	// A member reveals at most one share of each of its neighbours' secrets.
	n := r.count("shares", lim.MaxMembers, 4+1+ShareSize)
	if n > 0 {
		m.Shares = make([]SAShare, n)
		for i := range m.Shares {
			s := &m.Shares[i]
			s.Of, s.Kind, s.Value = int(r.u32()), r.u8(), r.bytes(ShareSize)
		}
	}
	return nil
}

// checkBytes checks that b has exactly size bytes.
func checkBytes(field string, b []byte, size int) error {
	if len(b) != size {
		return errorf(ErrMalformed, "wire: %s has %d bytes; want %d", field, len(b), size)
	}
	return nil
}

func (k *RoundKeys) validate(field string) error {
	return firstErr(
		checkBytes(field+".enc_key", k.EncKey, MLKEMKeySize),
		checkBytes(field+".mask_key", k.MaskKey, MLKEMKeySize),
		checkBytes(field+".identity", k.Identity, IdentityKeySize),
		checkBytes(field+".sig", k.Sig, SignatureSize),
	)
}

func checkSARound(field string, round int) error { return checkInt(field, int64(round), 1, maxRounds) }

// Validate checks the round and the sizes of the keys.
func (m *SAKeys) Validate() error {
	return firstErr(checkSARound("sa_keys.round", m.Round), m.Keys.validate("sa_keys.keys"))
}

// Validate checks the round, that every member index is below the number
// of digests and that they strictly increase, and every digest's and key's
// size and client id.
func (m *SARoster) Validate() error {
	n := len(m.Digests)
	if err := firstErr(
		checkSARound("sa_roster.round", m.Round),
		checkInt("sa_roster.digests", int64(n), 1, MaxSecAggMembers),
		checkInt("sa_roster.members", int64(len(m.Members)), 0, int64(n)),
	); err != nil {
		return err
	}
	for _, d := range m.Digests {
		if err := checkBytes("sa_roster.digests[]", d, DigestSize); err != nil {
			return err
		}
	}
	prev := -1
	for i := range m.Members {
		e := &m.Members[i]
		if err := firstErr(
			checkInt("sa_roster.members[].index", int64(e.Index), int64(prev)+1, int64(n)-1),
			checkID("sa_roster.members[].client_id", e.ClientID, false),
			e.Keys.validate("sa_roster.members[].keys"),
		); err != nil {
			return err
		}
		prev = e.Index
	}
	return nil
}

func validateEnvelopes(field string, envs []SAEnvelope) error {
	if len(envs) > MaxSecAggMembers {
		return errorf(ErrTooLarge, "wire: %s has %d envelopes; limit %d", field, len(envs), MaxSecAggMembers)
	}
	prev := -1
	for i := range envs {
		e := &envs[i]
		if err := checkInt(field+"[].peer", int64(e.Peer), int64(prev)+1, MaxSecAggMembers-1); err != nil {
			return err
		}
		prev = e.Peer
		if err := checkBytes(field+"[].shares", e.Shares, SealedSharesSize); err != nil {
			return err
		}
		if len(e.Seed) > 0 {
			if err := checkBytes(field+"[].seed", e.Seed, SealedSeedSize); err != nil {
				return err
			}
		}
	}
	return nil
}

// Validate checks the round and each envelope: peers strictly increasing
// and below MaxSecAggMembers, sealed sizes exact.
func (m *SAShares) Validate() error {
	return firstErr(checkSARound("sa_shares.round", m.Round), validateEnvelopes("sa_shares.envelopes", m.Envelopes))
}

// Validate checks the round and each envelope as SAShares.Validate does.
func (m *SAInbox) Validate() error {
	return firstErr(checkSARound("sa_inbox.round", m.Round), validateEnvelopes("sa_inbox.envelopes", m.Envelopes))
}

// Validate checks the round, the metrics' ranges and that there is at
// least one value.
func (m *SAMasked) Validate() error {
	return firstErr(
		checkSARound("sa_masked.round", m.Round),
		checkInt("sa_masked.model_version", m.ModelVersion, 0, maxVersion),
		checkFloat("sa_masked.loss", m.Loss, 0, maxLoss),
		checkFloat("sa_masked.accuracy", m.Accuracy, 0, 1),
		checkInt("sa_masked.train_ms", m.TrainMS, 0, maxTimeMS),
		checkFloat("sa_masked.samples_per_s", m.SamplesPerS, 0, maxRate),
		checkInt("sa_masked.values", int64(len(m.Values)), 1, DefaultMaxParams+1),
	)
}

// Validate checks the round and that the survivors strictly increase below
// MaxSecAggMembers.
func (m *SAUnmask) Validate() error {
	if err := checkSARound("sa_unmask.round", m.Round); err != nil {
		return err
	}
	if len(m.Survivors) > MaxSecAggMembers {
		return errorf(ErrTooLarge, "wire: sa_unmask.survivors has %d entries; limit %d", len(m.Survivors), MaxSecAggMembers)
	}
	prev := -1
	for _, s := range m.Survivors {
		if err := checkInt("sa_unmask.survivors[]", int64(s), int64(prev)+1, MaxSecAggMembers-1); err != nil {
			return err
		}
		prev = s
	}
	return nil
}

// Validate checks the round and each share: member below
// MaxSecAggMembers, strictly increasing, a known kind, a value of
// ShareSize.
func (m *SAReveal) Validate() error {
	if err := checkSARound("sa_reveal.round", m.Round); err != nil {
		return err
	}
	if len(m.Shares) > MaxSecAggMembers {
		return errorf(ErrTooLarge, "wire: sa_reveal.shares has %d entries; limit %d", len(m.Shares), MaxSecAggMembers)
	}
	prev := -1
	for _, s := range m.Shares {
		if err := firstErr(
			checkInt("sa_reveal.shares[].of", int64(s.Of), int64(prev)+1, MaxSecAggMembers-1),
			checkInt("sa_reveal.shares[].kind", int64(s.Kind), ShareSelf, ShareRoot),
			checkBytes("sa_reveal.shares[].value", s.Value, ShareSize),
		); err != nil {
			return err
		}
		prev = s.Of
	}
	return nil
}
