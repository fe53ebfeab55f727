package shardwire

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/qflare/qflare/shared/fl"
)

// A partial on the link: the zstd compression (fastest level, one
// goroutine, a 1 MiB window, so that a shard in a 128 MB isolate can afford
// it) of fl.Partial's binary encoding, cut into chunks. Measured on sums of
// 20 random updates: mnist-2nn 3.19 MB → 1.47 MB, mnist-cnn 26.6 MB →
// 12.3 MB; byte-shuffling the limbs first did not help.

// encoderWindow is the zstd window partials are compressed with, and the
// largest a decoder accepts.
const encoderWindow = 1 << 20

// EncodePartial writes p, compressed, as a sequence of Partial messages
// (h with Part and Last filled in), handing each to send as soon as it is
// full: at no point is the whole encoding in memory. send must not keep
// the message after it returns.
func EncodePartial(p *fl.Partial, h PartialHeader, send func(msg []byte) error) error {
	return new(PartialEncoder).Encode(p, h, send)
}

// PartialEncoder is EncodePartial with its compressor and buffers kept
// from one partial to the next (a shard in a 128 MB isolate sends one a
// round). Not safe for concurrent use.
type PartialEncoder struct {
	enc *zstd.Encoder
	c   chunker
}

// Encode is EncodePartial.
func (e *PartialEncoder) Encode(p *fl.Partial, h PartialHeader, send func(msg []byte) error) error {
	h.Count = p.Count
	e.c.h, e.c.send, e.c.buf = h, send, e.c.buf[:0]
	if e.enc == nil {
		enc, err := zstd.NewWriter(&e.c, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1),
			zstd.WithWindowSize(encoderWindow), zstd.WithLowerEncoderMem(true))
		if err != nil {
			return err
		}
		e.enc = enc
	} else {
		e.enc.Reset(&e.c)
	}
	if _, err := p.WriteTo(e.enc); err != nil {
		e.enc.Close()
		return err
	}
	if err := e.enc.Close(); err != nil {
		return err
	}
	return e.c.flush(true)
}

// chunker cuts what is written to it into Partial messages.
type chunker struct {
	h    PartialHeader
	buf  []byte
	msg  []byte
	send func([]byte) error
}

func (c *chunker) Write(b []byte) (int, error) {
	if c.buf == nil {
		c.buf = make([]byte, 0, ChunkBytes)
	}
	n := len(b)
	for len(b) > 0 {
		k := min(len(b), ChunkBytes-len(c.buf))
		c.buf = append(c.buf, b[:k]...)
		b = b[k:]
		if len(c.buf) == ChunkBytes {
			if err := c.flush(false); err != nil {
				return n - len(b), err
			}
		}
	}
	return n, nil
}

func (c *chunker) flush(last bool) error {
	c.h.Last = last
	hdr, err := Encode(nil, KindPartial, 0, &c.h)
	if err != nil {
		return err
	}
	body := hdr[prefix:]
	c.msg = Append(c.msg[:0], KindPartial, 0, nil)
	c.msg = binary.LittleEndian.AppendUint32(c.msg, uint32(len(body)))
	c.msg = append(append(c.msg, body...), c.buf...)
	c.h.Part++
	c.buf = c.buf[:0]
	return c.send(c.msg)
}

// ParsePartial splits a Partial message's body into its header and chunk.
func ParsePartial(body []byte) (PartialHeader, []byte, error) {
	var h PartialHeader
	if len(body) < 4 {
		return h, nil, malformed("partial chunk of %d bytes", len(body))
	}
	n := binary.LittleEndian.Uint32(body)
	if n > MaxJSON || int(n) > len(body)-4 {
		return h, nil, malformed("partial header of %d bytes in a %d-byte body", n, len(body))
	}
	if err := Decode(body[4:4+n], &h); err != nil {
		return h, nil, err
	}
	chunk := body[4+n:]
	if len(chunk) > ChunkBytes {
		return h, nil, malformed("partial chunk of %d bytes exceeds %d", len(chunk), ChunkBytes)
	}
	return h, chunk, nil
}

// MaxCompressed is the largest compressed partial accepted for a model of
// n parameters and count updates: its largest encoding plus zstd's
// worst-case overhead.
func MaxCompressed(n, count int) int {
	raw := fl.MaxPartialSize(n, count)
	return raw + raw/128 + 1<<16
}

// DecodePartial decompresses and decodes a partial for a model of n
// parameters that should hold count updates. The output is held to the
// largest encoding such a partial can have before it is decoded.
func DecodePartial(z []byte, n, count int) (*fl.Partial, error) {
	if len(z) > MaxCompressed(n, count) {
		return nil, malformed("compressed partial of %d bytes exceeds %d", len(z), MaxCompressed(n, count))
	}
	limit := fl.MaxPartialSize(n, count)
	dec, err := zstd.NewReader(bytes.NewReader(z), zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxMemory(uint64(max(limit, encoderWindow))+1), zstd.WithDecoderMaxWindow(encoderWindow))
	if err != nil {
		return nil, err
	}
	defer dec.Close()
	var out bytes.Buffer
	out.Grow(min(limit, fl.PartialSize(n, count, 0)+count*16))
	if _, err := io.Copy(&out, io.LimitReader(dec, int64(limit)+1)); err != nil {
		return nil, malformed("decompressing a partial: %v", err)
	}
	if out.Len() > limit {
		return nil, malformed("partial decompresses beyond %d bytes", limit)
	}
	p, err := fl.UnmarshalPartial(out.Bytes(), n)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if p.Count != count {
		return nil, malformed("partial holds %d updates; its header says %d", p.Count, count)
	}
	return p, nil
}
