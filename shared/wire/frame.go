package wire

import (
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
)

// Frame kinds.
const (
	KindModel      = "model"       // a global model, encoded without delta
	KindUpdate     = "update"      // a client's update, with or without delta
	KindModelDelta = "model_delta" // a global model as a delta from an older version
)

// frameMagic starts every binary frame: "QFL" and the protocol version.
var frameMagic = [3]byte{'Q', 'F', 'L'}

// framePrefix is the size of magic, version byte and header length.
const framePrefix = 8

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Limits bounds what ParseFrame and Decode accept. A zero or negative
// field takes its default (see DefaultLimits). Servers narrow the limits
// per run: MaxParams to the run's model, MaxFrameBytes to the upload limit.
type Limits struct {
	// MaxFrameBytes bounds a whole binary frame. Default 64 MiB.
	MaxFrameBytes int
	// MaxHeaderBytes bounds a frame's JSON header. Default 16 KiB.
	MaxHeaderBytes int
	// MaxParams bounds the parameter count. Default 16 Mi (16,777,216).
	MaxParams int
	// MaxDecodedBytes bounds both the bytes a payload decompresses to and
	// the decoded vector (4 bytes a parameter). Default 4*MaxParams.
	// Dense pipelines decompress to less than 4 bytes a parameter plus
	// int8 scales; a topk:F+float32 stream with F above about 0.8 can
	// exceed it, and needs a larger value.
	MaxDecodedBytes int
}

// Default limits.
const (
	DefaultMaxFrameBytes  = 64 << 20
	DefaultMaxHeaderBytes = 16 << 10
	DefaultMaxParams      = 16 << 20
)

// DefaultLimits returns the default limits, the widest this package
// expects: 64 MiB frames, 16 KiB headers, 16 Mi parameters and 64 MiB
// decoded.
func DefaultLimits() Limits {
	return Limits{
		MaxFrameBytes:   DefaultMaxFrameBytes,
		MaxHeaderBytes:  DefaultMaxHeaderBytes,
		MaxParams:       DefaultMaxParams,
		MaxDecodedBytes: 4 * DefaultMaxParams,
	}
}

// withDefaults fills zero or negative fields with their defaults.
func (l Limits) withDefaults() Limits {
	if l.MaxFrameBytes <= 0 {
		l.MaxFrameBytes = DefaultMaxFrameBytes
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if l.MaxParams <= 0 {
		l.MaxParams = DefaultMaxParams
	}
	if l.MaxDecodedBytes <= 0 {
		l.MaxDecodedBytes = 4 * l.MaxParams
	}
	return l
}

// FrameHeader is the JSON header of a binary frame.
type FrameHeader struct {
	Kind string `json:"kind"` // KindModel, KindUpdate or KindModelDelta
	Run  string `json:"run"`
	// Round is the round the frame belongs to.
	Round int `json:"round"`
	// ModelVersion is, for a model, its version; for an update, the version
	// the client trained from; for a model delta, the base version the delta
	// applies to.
	ModelVersion int64  `json:"model_version"`
	Codec        string `json:"codec"`           // pipeline of the payload
	Params       int    `json:"params"`          // parameter count
	Model        string `json:"model,omitempty"` // model name, informational
	// Samples, Loss, Accuracy, TrainMS and SamplesPerS are an update's
	// training sample count and the client's local metrics.
	Samples      int     `json:"samples,omitempty"`
	Loss         float64 `json:"loss,omitempty"`
	Accuracy     float64 `json:"accuracy,omitempty"`
	TrainMS      int64   `json:"train_ms,omitempty"`
	SamplesPerS  float64 `json:"samples_per_s,omitempty"`
	PayloadCRC32 uint32  `json:"payload_crc32"` // CRC-32C (Castagnoli) of the payload
}

// Pipeline parses the header's codec.
func (h *FrameHeader) Pipeline() (Pipeline, error) { return ParsePipeline(h.Codec) }

// AppendFrame appends a binary frame holding h and payload to dst: magic
// "QFL", version byte, little-endian uint32 header length, the JSON header
// and the payload. It fills in the payload checksum itself (h is not
// modified) and checks h against the default limits, so a frame it builds
// parses with DefaultLimits.
func AppendFrame(dst []byte, h *FrameHeader, payload []byte) ([]byte, error) {
	hdr, err := frameHeader(h, payload)
	if err != nil {
		return dst, err
	}
	dst = append(dst, frameMagic[:]...)
	dst = append(dst, Version)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(hdr)))
	dst = append(dst, hdr...)
	return append(dst, payload...), nil
}

// FrameLen returns the length of the frame AppendFrame would build from h
// and payload, without building it.
func FrameLen(h *FrameHeader, payload []byte) (int, error) {
	hdr, err := frameHeader(h, payload)
	if err != nil {
		return 0, err
	}
	return framePrefix + len(hdr) + len(payload), nil
}

// frameHeader checks h (with payload's checksum filled in) and encodes it.
func frameHeader(h *FrameHeader, payload []byte) ([]byte, error) {
	hc := *h
	hc.PayloadCRC32 = crc32.Checksum(payload, castagnoli)
	lim := DefaultLimits()
	if err := hc.validate(lim); err != nil {
		return nil, err
	}
	hdr, err := json.Marshal(&hc)
	if err != nil {
		return nil, err
	}
	if len(hdr) > lim.MaxHeaderBytes {
		return nil, errorf(ErrTooLarge, "wire: frame header of %d bytes exceeds limit %d", len(hdr), lim.MaxHeaderBytes)
	}
	if total := framePrefix + len(hdr) + len(payload); total > lim.MaxFrameBytes {
		return nil, errorf(ErrTooLarge, "wire: frame of %d bytes exceeds limit %d", total, lim.MaxFrameBytes)
	}
	return hdr, nil
}

// ParseFrame splits a binary frame into its header and payload (a subslice
// of b). Before allocating anything it checks, in order: the frame size
// against lim.MaxFrameBytes, the magic, the version byte, the header
// length; then it decodes the header strictly and checks the kind, the
// parameter count (1..lim.MaxParams), that the codec parses (with a delta
// stage for a model delta and without for a model), the other fields'
// bounds, and last the payload checksum. Errors wrap ErrTooLarge,
// ErrVersion, ErrNotFinite or ErrMalformed.
func ParseFrame(b []byte, lim Limits) (FrameHeader, []byte, error) {
	lim = lim.withDefaults()
	var h FrameHeader
	switch {
	case len(b) > lim.MaxFrameBytes:
		return h, nil, errorf(ErrTooLarge, "wire: frame of %d bytes exceeds limit %d", len(b), lim.MaxFrameBytes)
	case len(b) < framePrefix:
		return h, nil, errorf(ErrMalformed, "wire: frame of %d bytes is shorter than its %d-byte prefix", len(b), framePrefix)
	case [3]byte(b[:3]) != frameMagic:
		return h, nil, errorf(ErrMalformed, "wire: frame does not start with magic %q", frameMagic[:])
	case b[3] != Version:
		return h, nil, errorf(ErrVersion, "wire: frame is protocol version %d; this side speaks version %d", b[3], Version)
	}
	hl := binary.LittleEndian.Uint32(b[4:8])
	switch {
	case hl > uint32(lim.MaxHeaderBytes):
		return h, nil, errorf(ErrTooLarge, "wire: frame header of %d bytes exceeds limit %d", hl, lim.MaxHeaderBytes)
	case int(hl) > len(b)-framePrefix:
		return h, nil, errorf(ErrMalformed, "wire: frame header of %d bytes overruns the %d-byte frame", hl, len(b))
	}
	if err := strictUnmarshal(b[framePrefix:framePrefix+int(hl)], &h); err != nil {
		return FrameHeader{}, nil, errorf(ErrMalformed, "wire: bad frame header: %v", err)
	}
	if err := h.validate(lim); err != nil {
		return FrameHeader{}, nil, err
	}
	payload := b[framePrefix+int(hl):]
	if c := crc32.Checksum(payload, castagnoli); c != h.PayloadCRC32 {
		return FrameHeader{}, nil, errorf(ErrMalformed, "wire: payload checksum %08x; header says %08x", c, h.PayloadCRC32)
	}
	return h, payload, nil
}

// validate checks the header's fields: kind, params, codec, then the rest.
func (h *FrameHeader) validate(lim Limits) error {
	if err := checkOneOf("frame.kind", h.Kind, KindModel, KindUpdate, KindModelDelta); err != nil {
		return err
	}
	if h.Params < 1 {
		return errorf(ErrMalformed, "wire: frame.params = %d; want at least 1", h.Params)
	}
	if h.Params > lim.MaxParams {
		return errorf(ErrTooLarge, "wire: frame.params = %d exceeds limit %d", h.Params, lim.MaxParams)
	}
	p, err := ParsePipeline(h.Codec)
	if err != nil {
		return errorf(ErrMalformed, "wire: frame.codec: %v", err)
	}
	if h.Kind == KindModelDelta && !p.Delta || h.Kind == KindModel && p.Delta {
		return errorf(ErrMalformed, "wire: frame of kind %s has codec %q", h.Kind, h.Codec)
	}
	return firstErr(
		checkID("frame.run", h.Run, false),
		checkInt("frame.round", int64(h.Round), 0, maxRounds),
		checkInt("frame.model_version", h.ModelVersion, 0, maxVersion),
		checkOptionalSpec("frame.model", h.Model),
		checkInt("frame.samples", int64(h.Samples), 0, maxCount),
		checkFloat("frame.loss", h.Loss, 0, maxLoss),
		checkFloat("frame.accuracy", h.Accuracy, 0, 1),
		checkInt("frame.train_ms", h.TrainMS, 0, maxTimeMS),
		checkFloat("frame.samples_per_s", h.SamplesPerS, 0, maxRate),
	)
}
