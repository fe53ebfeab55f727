package secagg

import (
	"crypto/hpke"
	"crypto/sha3"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/qflare/qflare/shared/wire"
)

// Identity is a member's long-term ML-DSA-65 signing key. It signs the
// member's fresh round keys every round, so that a server relaying the
// keys cannot substitute its own: the other members check the signature
// against the identity key they pinned for that client id the first time
// they saw it. Safe for concurrent use.
type Identity struct {
	seed [mldsa65.SeedSize]byte
	pk   *mldsa65.PublicKey
	sk   *mldsa65.PrivateKey
	pub  []byte
}

// IdentitySeedSize is the size of an identity's seed.
const IdentitySeedSize = mldsa65.SeedSize

// NewIdentity derives an identity from its 32-byte seed (kept by a tab in
// localStorage).
func NewIdentity(seed []byte) (*Identity, error) {
	if len(seed) != IdentitySeedSize {
		return nil, fmt.Errorf("secagg: identity seed of %d bytes; want %d", len(seed), IdentitySeedSize)
	}
	id := &Identity{}
	copy(id.seed[:], seed)
	id.pk, id.sk = mldsa65.NewKeyFromSeed(&id.seed)
	id.pub = id.pk.Bytes()
	return id, nil
}

// GenerateIdentity draws a new identity from rnd.
func GenerateIdentity(rnd io.Reader) (*Identity, error) {
	seed := make([]byte, IdentitySeedSize)
	if _, err := io.ReadFull(rnd, seed); err != nil {
		return nil, fmt.Errorf("secagg: reading randomness: %w", err)
	}
	return NewIdentity(seed)
}

// Seed returns the seed the identity derives from: keep it secret.
func (id *Identity) Seed() []byte { return append([]byte(nil), id.seed[:]...) }

// Public returns the identity's public key (wire.IdentityKeySize bytes).
func (id *Identity) Public() []byte { return id.pub }

// Fingerprint returns a short hex digest of an identity public key, for
// people to compare.
func Fingerprint(pub []byte) string {
	h := sha3.Sum256(pub)
	return fmt.Sprintf("%x", h[:8])
}

// sigContext is the ML-DSA context string of round-key signatures.
var sigContext = []byte("qflare secagg round keys v1")

// signedMessage is what a member signs: the run, round and client id, and
// both round keys, length-prefixed.
func signedMessage(run string, round int, clientID string, enc, mask []byte) []byte {
	b := make([]byte, 0, 16+len(run)+len(clientID)+len(enc)+len(mask))
	for _, f := range [][]byte{[]byte(run), []byte(clientID), enc, mask} {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	return binary.LittleEndian.AppendUint64(b, uint64(round))
}

// sign signs the round keys (hedged: fresh randomness in every signature).
func (id *Identity) sign(msg []byte) ([]byte, error) {
	sig := make([]byte, mldsa65.SignatureSize)
	if err := mldsa65.SignTo(id.sk, msg, sigContext, true, sig); err != nil {
		return nil, fmt.Errorf("secagg: signing round keys: %w", err)
	}
	return sig, nil
}

// verifyKeys checks that keys are signed by their identity key for run,
// round and clientID.
func verifyKeys(run string, round int, clientID string, k *wire.RoundKeys) error {
	var pk mldsa65.PublicKey
	if err := pk.UnmarshalBinary(k.Identity); err != nil {
		return fmt.Errorf("%w: client %s: identity key: %v", ErrSignature, clientID, err)
	}
	if !mldsa65.Verify(&pk, signedMessage(run, round, clientID, k.EncKey, k.MaskKey), sigContext, k.Sig) {
		return fmt.Errorf("%w: client %s: the signature of its round %d keys does not verify", ErrSignature, clientID, round)
	}
	return nil
}

// Digest is a member's key digest: SHA3-256 of its client id and keys
// (with its identity key; the signature over them is checked apart). The
// roster lists every member's; the graph derives from them.
func Digest(clientID string, k *wire.RoundKeys) []byte {
	h := sha3.New256()
	for _, f := range [][]byte{[]byte(clientID), k.EncKey, k.MaskKey, k.Identity} {
		var n [4]byte
		binary.LittleEndian.PutUint32(n[:], uint32(len(f)))
		h.Write(n[:])
		h.Write(f)
	}
	return h.Sum(nil)
}

// graphSeed derives a round's graph from its members' digests, so that
// which members neighbour which follows from keys nobody chose alone.
func graphSeed(run string, round int, digests [][]byte) [32]byte {
	h := sha3.New256()
	h.Write([]byte("qflare/secagg/v1/graph"))
	h.Write(signedMessage(run, round, "", nil, nil))
	for _, d := range digests {
		h.Write(d)
	}
	var s [32]byte
	h.Sum(s[:0])
	return s
}

// The HPKE suite envelopes are sealed with: ML-KEM-768 (post-quantum),
// HKDF-SHA256, ChaCha20-Poly1305 (fast without AES instructions, as in a
// browser's WebAssembly).
var (
	kem  = hpke.MLKEM768()
	kdf  = hpke.HKDFSHA256()
	aead = hpke.ChaCha20Poly1305()
)

// maskKeyLabel separates the derivation of the mask key from the root.
var maskKeyLabel = []byte("qflare/secagg/v1/mask-key")

// maskPrivate derives a member's mask key pair from its key root, so that
// the server, having recovered the root of a dropped member, can open the
// pair seeds sealed to it.
func maskPrivate(root []byte) (hpke.PrivateKey, error) {
	return kem.DeriveKeyPair(append(append([]byte(nil), maskKeyLabel...), root...))
}

// pairSeed is the mask seed the owner of pair (o, p) picks: a PRF of its
// key root, so that the server can recompute it once the root is
// recovered.
func pairSeed(root []byte, run string, round, o, p int) []byte {
	h := sha3.New256()
	h.Write([]byte("qflare/secagg/v1/pair"))
	h.Write(root)
	h.Write(signedMessage(run, round, "", nil, nil))
	var idx [8]byte
	binary.LittleEndian.PutUint32(idx[:4], uint32(o))
	binary.LittleEndian.PutUint32(idx[4:], uint32(p))
	h.Write(idx[:])
	return h.Sum(nil)
}

// envelopeInfo is the HPKE info of what member from seals for member to:
// kind ("shares" or "seed"), run, round, from, to.
func envelopeInfo(kind, run string, round, from, to int) []byte {
	b := []byte("qflare/secagg/v1/" + kind)
	b = append(b, signedMessage(run, round, "", nil, nil)...)
	b = binary.LittleEndian.AppendUint32(b, uint32(from))
	return binary.LittleEndian.AppendUint32(b, uint32(to))
}

// seal seals plaintext to an ML-KEM-768 encapsulation key.
func seal(pub []byte, info, plaintext []byte) ([]byte, error) {
	pk, err := kem.NewPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: a member's key is not an ML-KEM-768 key: %v", ErrProtocol, err)
	}
	return hpke.Seal(pk, kdf, aead, info, plaintext)
}

// open opens an envelope sealed to priv.
func open(priv hpke.PrivateKey, info, ct []byte) ([]byte, error) {
	pt, err := hpke.Open(priv, kdf, aead, info, ct)
	if err != nil {
		return nil, fmt.Errorf("%w: an envelope does not open", ErrBadShare)
	}
	return pt, nil
}
