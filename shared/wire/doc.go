// Package wire is QFLARE's protocol between the server and its clients:
// the JSON control messages, the binary frame that carries models and
// updates, and the codec pipelines that turn a weight vector into bytes
// and back. It compiles natively and for js/wasm.
//
// # Control messages
//
// Control messages are JSON objects in WebSocket text frames, with a
// "type" member naming one of the message structs (Hello, Welcome, Wait,
// RoundStart, Progress, Accepted, Rejected, RoundEnd, RunEnd, Bye).
// Marshal writes them; ParseMessage reads them strictly: size first, then
// the type, then the fields (unknown fields, wrong types and trailing data
// are errors), then each field's bounds.
//
// # Binary frames
//
// Models and updates travel in WebSocket binary frames:
//
//	offset  size  content
//	0       3     magic "QFL"
//	3       1     protocol version (Version)
//	4       4     header length L, uint32 little-endian (<= MaxHeaderBytes)
//	8       L     FrameHeader as JSON
//	8+L     rest  payload, encoded with the header's codec pipeline
//
// The header carries the payload's CRC-32C (Castagnoli). AppendFrame
// writes frames and ParseFrame checks them (see Limits).
//
// # Secure aggregation frames
//
// The messages of a secure round (SAKeys … SAReveal, see secagg.go) travel
// in binary frames of their own that start with "QFS": fixed-size keys and
// ciphertexts, counts checked against SecAggLimits before allocation.
// AppendSecAgg writes them and ParseSecAgg reads them; IsSecAgg tells them
// from update and model frames.
//
// # Codec pipelines
//
// A pipeline string names stages joined by '+', in this order:
//
//	delta            encode x - ref, ref being a vector both sides hold
//	topk:F           keep the ceil(F*n) entries of largest magnitude, with
//	                 error feedback (the Encoder keeps what it did not send)
//	float32          value format, exactly one (float32 if none is named):
//	float16          IEEE half, round to nearest even
//	bfloat16         bfloat16, round to nearest even
//	int8[:row][:nearest]
//	                 int8 with a float32 scale maxabs/127 per tensor (per
//	                 row with :row; a row is a slice along the first
//	                 dimension of a tensor of rank >= 2, a tensor of rank
//	                 0 or 1 is one row), stochastic rounding (unbiased)
//	                 unless :nearest
//	shuffle          byte-plane transpose of the values
//	zstd[:LEVEL]     zstd, level 1..22 (default DefaultZstdLevel)
//
// The stream a pipeline produces before zstd is, with m = n values dense
// or m = ceil(F*n) with topk:
//
//	[topk]  uvarint m, then m uvarints: the first index, then the gap from
//	        each index to the next (indices strictly increasing, < n)
//	[int8]  one float32 little-endian scale per group (tensor or row)
//	        in flat order, also for groups with no value sent
//	values  m values of 4, 2 or 1 bytes, little-endian; with shuffle
//	        written as byte planes (byte b of value j at b*m + j)
//
// Uvarints must be minimally encoded. With zstd the stream is one zstd
// frame that declares its content size. A decoded int8 value is
// float32(q)*scale; with delta, ref[i] + value. Decode refuses anything
// else, and any non-finite result.
//
// # Concurrency
//
// Messages, frames, Pipeline values and Decode are safe for concurrent
// use; an Encoder is not (each client holds its own).
package wire
