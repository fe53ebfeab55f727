// Package data holds labelled image datasets compactly and reads, writes and
// partitions them for federated learning.
//
// It compiles for the server (native) and for the browser (GOOS=js
// GOARCH=wasm): it uses no networking, no os/exec and no syscall/js.
//
// # Layout
//
// A [Set] keeps its pixels as uint8 in HWC order (height, width, channel;
// the channel varies fastest), one image after another, so the 60000 MNIST
// training images take 47 MB. [Set.Fill] turns chosen samples into float32
// (pixel/255) for training without allocating.
//
// # Formats
//
//   - IDX, the MNIST family's format ([ReadIDX], [WriteIDX], [LoadIDX],
//     [LoadMNIST]), raw or gzip-compressed. Only unsigned-byte data (type
//     0x08) is supported.
//   - CIFAR-10 binary batches ([ReadCIFAR10], [LoadCIFAR10]): records of one
//     label byte and 3072 pixel bytes in CHW order, converted to HWC.
//   - QDS1, the compact transport format for one client's slice
//     ([WriteSet], [ReadSet]), described below.
//
// # Transport format
//
// A QDS1 stream is a header followed by the pixels and the labels; all
// integers are little-endian and nothing may follow the labels:
//
//	magic   [4]byte  "QDS1"
//	namelen uint16   at most MaxNameLen
//	name    [namelen]byte, UTF-8 without control characters
//	H, W, C uint32   image shape, H*W*C at most MaxDim
//	classes uint32   1 to MaxClasses
//	N       uint32   number of samples, at most the reader's cap
//	images  [N*H*W*C]byte, HWC per image
//	labels  [N]byte, each < classes
//
// # Limits
//
// Every reader checks the sizes a header announces against explicit limits
// ([MaxSamples], [MaxDim], [MaxBytes], [MaxClasses], [MaxNameLen] and the
// caller's own cap) before it allocates, and grows its buffers as the data
// actually arrives, so a short hostile input cannot make it allocate much.
// Malformed input yields an error, never a panic; misuse by the caller (an
// index out of range, a destination too short) panics with a message that
// starts with "data:".
//
// # Partitions
//
// [Partition] splits sample indices among clients by a [Scheme]: IID, label
// skew drawn from a Dirichlet distribution, or the label-sorted shards of
// McMahan et al. (2017). Partitions are seeded and deterministic: the same
// labels, scheme and seed give the same result on every platform and Go
// release, because the package uses the PCG generator of math/rand/v2 only
// for raw 64-bit words and does its own shuffling, integer ranges, normal
// and gamma sampling, with its own portable log and exp.
package data
