// Package secagg is QFLARE's secure aggregation: the server learns the sum
// of the members' inputs and nothing else about any one of them. It is the
// protocol of Bonawitz et al. ("Practical Secure Aggregation for
// Privacy-Preserving Machine Learning", CCS 2017) in its semi-honest form,
// with the k-regular graph of SecAgg+ (Bell et al., "Secure Single-Server
// Aggregation with (Poly)Logarithmic Overhead", CCS 2020) as an option, and
// post-quantum primitives throughout. It builds natively and for js/wasm,
// and gives the same masks and shares on both (testdata/golden.json).
//
// # Phases
//
// A round has four phases. Client and Server hold each side's state; the
// messages are package wire's SA* types.
//
//  0. Advertise keys. Each member draws fresh secrets: b (its self-mask
//     seed), r (its key root) and an ML-KEM-768 key pair, and derives a
//     second ML-KEM-768 key pair, its mask key, from r. It signs both public
//     keys, with the run, round and its client id, with its long-term
//     ML-DSA-65 identity key (Identity), and sends them (SAKeys).
//  1. Share keys. The server fixes the members (the roster) and sends each
//     one every member's key digest and its neighbours' keys (SARoster).
//     The graph (complete, or SecAgg+'s k-regular Harary graph on a
//     shuffled ring) derives from the digests, so no one chooses it alone.
//     A member checks its neighbours' signatures and pinned identities,
//     Shamir-shares b and r (threshold t of its neighbours and itself) and
//     seals each neighbour's two shares to that neighbour's first key;
//     for each pair it owns it also picks the pair's mask seed, a PRF of r,
//     and seals it to the other's mask key (SAShares). The server relays
//     what it cannot open (SAInbox).
//  2. Masked input. A member adds to its quantized input (Quantize) the
//     mask of b and, for each neighbour that shared, ± the pair's mask
//     (SAMasked); the pair masks cancel in the sum.
//  3. Unmask. The server lists the members whose masked inputs it holds
//     (SAUnmask). Each of them reveals, for each neighbour, the share of b
//     if that neighbour survived or of r if it dropped, never both
//     (SAReveal). The server recovers each survivor's b and removes its
//     self mask, and each dropped member's r, from which it recomputes
//     (or, with the mask key r gives, opens) the seeds of the pairs the
//     dropped member had with survivors, and removes those masks.
//
// A member's two kinds of secret are kept apart so that recovering a
// dropped member's root exposes only what was sealed to its mask key (the
// pair seeds), never the shares sealed to its other key. A round aborts
// (ErrBelowThreshold) whenever a secret it needs would have fewer than t
// holders left.
//
// # Primitives
//
//   - Key agreement: ML-KEM-768 through HPKE (crypto/hpke: ML-KEM-768,
//     HKDF-SHA256, ChaCha20-Poly1305); the mask key pair derives from the
//     key root with HPKE's DeriveKeyPair.
//   - Signatures: ML-DSA-65 (github.com/cloudflare/circl), hedged.
//   - Masks: full 32-byte seeds expanded with ChaCha8 (math/rand/v2),
//     keyed through SHA3-256 with the mask's kind; addition in Z_2^32.
//   - Shamir sharing over ristretto255's scalar field (circl's field and
//     polynomials); recovery checks the extra shares for consistency.
//
// # Quantization
//
// Inputs are Length = params + 1 values: each delta clipped to [−C, C],
// weighted by w/W (w its sample count, W the largest slice), scaled by 2^e
// and rounded stochastically; the last value is w. Exponent picks e so that
// the sum of the round's members cannot wrap. Decode reads the sum back as
// exact fixed-point numerators.
//
// # Trust
//
// The server is assumed honest but curious about the protocol's flow (it
// may try to learn inputs from what it receives and stores, but follows
// the phases); against a server that substitutes keys, the members check
// every round key's signature against the identity key they pinned for
// that client id (trust on first use). Members may drop at any phase. A
// member can still send any value it likes: secure aggregation cannot
// bound a malicious input, which is why robust rules and anomaly detection
// are not available with it.
package secagg
