package wire

import (
	"errors"
	"fmt"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// zstdSlack is the spare capacity given to the decoder beyond a frame's
// content size, so it keeps its fast path (it wants 32 bytes to spare).
const zstdSlack = 64

// zstdMaxWindow caps the window a multi-segment frame may ask for (our
// encoders write single-segment frames, whose window is their content
// size). Decoding with DecodeAll writes into the output buffer, so the
// window is not what bounds memory: the content-size check is.
const zstdMaxWindow = 8 << 20

// zstdMaxMemory is the decoder's own ceiling on a frame's output, above any
// limit this package allows; the per-call limits are checked first.
const zstdMaxMemory = 1 << 30

// zstdLevels maps pipeline levels onto klauspost's four encoder levels:
// 1-2 fastest, 3-5 default, 6-9 better, 10-22 best.
var zstdEncoders [4]struct {
	once sync.Once
	enc  *zstd.Encoder
}

// zstdEncoder returns the shared encoder for a pipeline level 1..22.
// Encoders are expensive to create and safe for concurrent EncodeAll.
func zstdEncoder(level int) *zstd.Encoder {
	l := zstd.EncoderLevelFromZstd(level)
	slot := &zstdEncoders[l-zstd.SpeedFastest]
	slot.once.Do(func() {
		// Single-segment frames always declare their content size, which
		// the decoder requires. Quantized weights have few matches: their
		// gain is in the literals' entropy coding, which klauspost skips
		// below "better" unless told (int8 at level 3: 4.0x -> 4.6x).
		enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(l),
			zstd.WithAllLitEntropyCompression(true),
			zstd.WithZeroFrames(true), zstd.WithSingleSegment(true))
		if err != nil {
			panic("wire: creating zstd encoder: " + err.Error())
		}
		slot.enc = enc
	})
	return slot.enc
}

var (
	zstdDecOnce sync.Once
	zstdDec     *zstd.Decoder
)

// zstdDecoder returns the shared decoder, which is safe for concurrent
// DecodeAll and limits each call's output to the capacity it is given.
func zstdDecoder() *zstd.Decoder {
	zstdDecOnce.Do(func() {
		dec, err := zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(0),
			zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(zstdMaxMemory),
			zstd.WithDecoderMaxMemory(zstdMaxMemory),
			zstd.WithDecodeAllCapLimit(true))
		if err != nil {
			panic("wire: creating zstd decoder: " + err.Error())
		}
		zstdDec = dec
	})
	return zstdDec
}

// unzstd decompresses a single zstd frame into buf (reused when large
// enough). The frame must declare its content size, which must not exceed
// limit: that is checked from the frame header before anything is
// allocated or decoded, so a small payload that claims a large output fails
// at once with ErrTooLarge. The decoder is held to that size, and input
// holding more than one frame is rejected.
func unzstd(buf, payload []byte, limit int) ([]byte, error) {
	var h zstd.Header
	if err := h.Decode(payload); err != nil {
		return buf, errorf(ErrMalformed, "wire: bad zstd frame header: %v", err)
	}
	switch {
	case h.Skippable:
		return buf, errorf(ErrMalformed, "wire: zstd payload starts with a skippable frame")
	case h.DictionaryID != 0:
		return buf, errorf(ErrMalformed, "wire: zstd frame needs dictionary %d", h.DictionaryID)
	case !h.HasFCS:
		return buf, errorf(ErrMalformed, "wire: zstd frame does not declare its content size")
	case h.FrameContentSize > uint64(limit):
		return buf, errorf(ErrTooLarge, "wire: zstd frame declares %d bytes; limit %d", h.FrameContentSize, limit)
	case !h.SingleSegment && h.WindowSize > zstdMaxWindow:
		return buf, errorf(ErrTooLarge, "wire: zstd window of %d bytes exceeds limit %d", h.WindowSize, zstdMaxWindow)
	}
	size := int(h.FrameContentSize)
	if cap(buf) < size+zstdSlack {
		buf = make([]byte, 0, size+zstdSlack)
	}
	out, err := zstdDecoder().DecodeAll(payload, buf[:0:size+zstdSlack])
	if err != nil {
		if errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrWindowSizeExceeded) ||
			errors.Is(err, zstd.ErrFrameSizeExceeded) {
			return buf, errorf(ErrTooLarge, "wire: zstd payload decodes to more than %d bytes", size)
		}
		return buf, errorf(ErrMalformed, "wire: bad zstd payload: %v", err)
	}
	if len(out) != size {
		return buf, errorf(ErrMalformed, "wire: zstd payload holds %d bytes in more than one frame; want %d", len(out), size)
	}
	return out, nil
}

// appendZstd appends the zstd frame of src at the given level to dst.
func appendZstd(dst, src []byte, level int) []byte {
	if level < 1 || level > 22 {
		panic(fmt.Sprintf("wire: zstd level %d outside 1..22", level))
	}
	return zstdEncoder(level).EncodeAll(src, dst)
}
