// Package shardwire is the protocol between an edge shard and the server
// it aggregates for (the origin): one WebSocket per shard, opened by the
// shard with "Authorization: Bearer SHARD_TOKEN" at GET /shard.
//
// The shard holds its tabs' WebSockets. It relays their control messages
// to the origin and the origin's to them, so the origin admits, selects and
// accounts for every tab as it does a directly connected client; model
// frames come down once per shard and fan out from there. Update frames
// stay at the shard: it validates them with shared/wire, exactly as the
// origin does, folds the accepted ones into an fl.Partial, sends the origin
// one Update (metadata and verdict) per update, and, when the round's tabs
// have answered or the origin asks (Flush), the partial.
//
// # Messages
//
// Every message is binary: the magic "QS", the version byte, a Kind, a
// little-endian uint32 ID (a tab of the shard, or a cached model frame) and
// a body. Bodies are JSON objects (decoded strictly), a tab's control
// message verbatim, a model frame, or a chunk of a partial:
//
//	shard → origin                     origin → shard
//	Hello        JSON Hello            Welcome   JSON Welcome
//	TabOpen      tab, JSON TabOpen     Run       JSON Run (before its rounds)
//	TabText      tab, control message  Round     JSON Round (before its tasks)
//	TabClose     tab                   Frame     frame id, a model frame to keep
//	Update       tab, JSON Update      TabFrame  tab, frame id: send it the frame
//	Partial      JSON PartialHeader,   TabText   tab, control message
//	             uint32 length first,  TabClose  tab, JSON Close
//	             then a chunk          Flush     JSON Flush
//
// # Frames
//
// The origin sends a model frame once (Frame) and then names it for each
// tab (TabFrame). Both ends keep the last FrameCache frames they saw, in
// order, so the origin knows which ones the shard still holds.
//
// # Partials
//
// A partial travels as the zstd compression of fl.Partial's binary
// encoding, in chunks of at most ChunkBytes, each with a PartialHeader;
// the last says Last. See EncodePartial and DecodePartial.
//
// # Limits
//
// A message is at most MaxMessage bytes (the WebSocket message limit of
// Cloudflare Workers and workerd); JSON bodies at most MaxJSON; a relayed
// control message at most wire.MaxMessageBytes. Everything is checked
// before it is decoded.
package shardwire

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/qflare/qflare/shared/wire"
)

// Version is the protocol version; both ends must speak the same.
const Version = 1

// Limits.
const (
	// MaxMessage is the largest link message: the 32 MiB WebSocket message
	// limit of Cloudflare Workers and of workerd (measured: 32 MiB passes,
	// 33 MiB is closed with 1009).
	MaxMessage = 32 << 20
	// MaxJSON bounds a JSON body.
	MaxJSON = 64 << 10
	// ChunkBytes bounds a partial's chunk.
	ChunkBytes = 4 << 20
	// FrameCache is how many model frames each end keeps: one, the frame
	// being fanned out (a mnist-cnn frame is 6.65 MB of a shard's 128 MB).
	FrameCache = 1
	// MaxTabs is the most tabs one shard may hold open at once.
	MaxTabs = 1 << 16
	// prefix is the size of magic, version, kind and ID.
	prefix = 8
)

// Kind is what a message carries.
type Kind uint8

// Message kinds: 1..63 from the shard, 64.. from the origin; TabText
// travels both ways.
const (
	KindHello    Kind = 1
	KindTabOpen  Kind = 2
	KindTabText  Kind = 3
	KindTabClose Kind = 4
	KindUpdate   Kind = 5
	KindPartial  Kind = 6
	KindWelcome  Kind = 64
	KindRun      Kind = 65
	KindRound    Kind = 66
	KindFrame    Kind = 67
	KindTabFrame Kind = 68
	KindFlush    Kind = 69
)

var kindNames = map[Kind]string{KindHello: "hello", KindTabOpen: "tab_open", KindTabText: "tab_text",
	KindTabClose: "tab_close", KindUpdate: "update", KindPartial: "partial", KindWelcome: "welcome",
	KindRun: "run", KindRound: "round", KindFrame: "frame", KindTabFrame: "tab_frame", KindFlush: "flush"}

func (k Kind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("kind(%d)", k)
}

// ErrMalformed is wrapped by every error about a message that does not
// follow the protocol.
var ErrMalformed = errors.New("shardwire: malformed message")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// Msg is one parsed message. Body is a subslice of the input.
type Msg struct {
	Kind Kind
	ID   uint32
	Body []byte
}

// Append appends a message to dst.
func Append(dst []byte, k Kind, id uint32, body []byte) []byte {
	dst = append(dst, 'Q', 'S', Version, byte(k))
	dst = binary.LittleEndian.AppendUint32(dst, id)
	return append(dst, body...)
}

// Parse splits a message, checking its size, magic, version and kind, and
// the size of its body for the kind, before anything is decoded.
func Parse(b []byte) (Msg, error) {
	switch {
	case len(b) > MaxMessage:
		return Msg{}, malformed("message of %d bytes exceeds %d", len(b), MaxMessage)
	case len(b) < prefix || b[0] != 'Q' || b[1] != 'S':
		return Msg{}, malformed("not a shard message")
	case b[2] != Version:
		return Msg{}, malformed("protocol version %d; this side speaks %d", b[2], Version)
	}
	m := Msg{Kind: Kind(b[3]), ID: binary.LittleEndian.Uint32(b[4:]), Body: b[prefix:]}
	limit := MaxJSON
	switch m.Kind {
	case KindTabText:
		limit = wire.MaxMessageBytes
	case KindFrame, KindPartial:
		limit = MaxMessage
	case KindTabClose, KindTabFrame, KindHello, KindTabOpen, KindUpdate, KindWelcome, KindRun, KindRound, KindFlush:
	default:
		return Msg{}, malformed("unknown kind %d", b[3])
	}
	if len(m.Body) > limit {
		return Msg{}, malformed("%s body of %d bytes exceeds %d", m.Kind, len(m.Body), limit)
	}
	return m, nil
}

// validator is a JSON body that checks itself.
type validator interface{ validate() error }

// Encode appends a message with a JSON body to dst.
func Encode(dst []byte, k Kind, id uint32, v validator) ([]byte, error) {
	if err := v.validate(); err != nil {
		return dst, err
	}
	body, err := json.Marshal(v)
	if err != nil {
		return dst, err
	}
	if len(body) > MaxJSON {
		return dst, malformed("%s body of %d bytes exceeds %d", k, len(body), MaxJSON)
	}
	return Append(dst, k, id, body), nil
}

// Decode decodes a JSON body strictly (one object, no unknown fields, no
// trailing data) and validates it.
func Decode(body []byte, v validator) error {
	if len(body) > MaxJSON {
		return malformed("body of %d bytes exceeds %d", len(body), MaxJSON)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return malformed("%v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return malformed("trailing data after the JSON object")
	}
	return v.validate()
}

// Hello opens a link: the shard's name and protocol version.
type Hello struct {
	V     int    `json:"v"`
	Shard string `json:"shard"` // the shard's name, [A-Za-z0-9_-]{1,64}
}

// Welcome answers Hello.
type Welcome struct {
	V int `json:"v"`
}

// TabOpen announces a tab; its hello follows as TabText.
type TabOpen struct {
	Remote string `json:"remote"` // the tab's address, as the shard sees it
}

// Close closes a tab, with a WebSocket close code and reason.
type Close struct {
	Code   int    `json:"code"`
	Reason string `json:"reason"`
}

// Update is an update a tab sent the shard: accepted (validated and folded
// into the round's partial, not yet durable) or refused, with the code and
// reason the origin would have given. The rest is what the frame's header
// claimed, as stored in the updates table.
type Update struct {
	Run         string  `json:"run"`
	Round       int     `json:"round"`
	Client      string  `json:"client"`
	Accepted    bool    `json:"accepted"`
	Code        string  `json:"code,omitempty"`
	Reason      string  `json:"reason,omitempty"`
	Samples     int     `json:"samples"` // the weight it was folded with (capped), or as claimed
	Bytes       int     `json:"bytes"`   // the frame's size
	Codec       string  `json:"codec,omitempty"`
	BaseVersion int64   `json:"base_version"`
	Loss        float64 `json:"loss"`
	Accuracy    float64 `json:"accuracy"`
	TrainMS     int64   `json:"train_ms"`
	SamplesPerS float64 `json:"samples_per_s"`
	Clipped     bool    `json:"clipped,omitempty"` // DP: clipped to the round's clip norm
}

// Run is what a shard needs to validate a run's updates; the origin sends
// it before the run's first Round on the link.
type Run struct {
	Run           string  `json:"run"`
	Params        int     `json:"params"`
	Shapes        [][]int `json:"shapes"`
	MaxFrameBytes int     `json:"max_frame_bytes"`
	MaxSamples    int     `json:"max_samples"`     // the weight cap (the largest slice)
	MaxUpdateNorm float64 `json:"max_update_norm"` // 0: none
	DP            bool    `json:"dp,omitempty"`    // clip at the shard (Round.Clip), weight 1
}

// Round is a round of a run: the model version its tasks train (as frame
// Frame, which decodes to the exact weights), its deadline and, with DP,
// its clip norm. It precedes the tasks of the round on the link.
type Round struct {
	Run            string  `json:"run"`
	Round          int     `json:"round"`
	Version        int64   `json:"version"`
	Frame          uint32  `json:"frame"`
	DeadlineUnixMS int64   `json:"deadline_unix_ms"` // 0: none
	Clip           float64 `json:"clip,omitempty"`
}

// Flush asks for a round's partial now.
type Flush struct {
	Run   string `json:"run"`
	Round int    `json:"round"`
}

// PartialHeader precedes each chunk of a partial. Seq numbers the
// shard's partials; Part counts the chunks of one from 0.
type PartialHeader struct {
	Run   string `json:"run"`
	Round int    `json:"round"`
	Seq   uint32 `json:"seq"`
	Part  int    `json:"part"`
	Last  bool   `json:"last"`
	Count int    `json:"count"` // updates in the partial
}

// Bounds of fields.
const (
	maxRound    = 1 << 20
	maxParams   = wire.DefaultMaxParams
	maxTensors  = 1 << 10
	maxText     = 256
	maxCodeLen  = 32
	maxFrameLen = wire.DefaultMaxFrameBytes
)

func checkID(field, s string, empty bool) error {
	if s == "" && empty {
		return nil
	}
	if s == "" || len(s) > 64 {
		return malformed("%s has length %d; want 1..64", field, len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return malformed("%s has byte %q; want [A-Za-z0-9_-]", field, c)
		}
	}
	return nil
}

func checkText(field, s string) error {
	if len(s) > maxText {
		return malformed("%s is %d bytes long; limit %d", field, len(s), maxText)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == 0xfffd {
			return malformed("%s has a control or invalid character", field)
		}
	}
	return nil
}

func checkFloat(field string, v, lo, hi float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) || v < lo || v > hi {
		return malformed("%s = %v; want a finite number in [%g, %g]", field, v, lo, hi)
	}
	return nil
}

func checkInt(field string, v, lo, hi int64) error {
	if v < lo || v > hi {
		return malformed("%s = %d; want %d..%d", field, v, lo, hi)
	}
	return nil
}

func first(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func (h *Hello) validate() error {
	if h.V != Version {
		return malformed("shard speaks version %d; this side speaks %d", h.V, Version)
	}
	return checkID("hello.shard", h.Shard, false)
}

func (w *Welcome) validate() error {
	if w.V != Version {
		return malformed("origin speaks version %d; this side speaks %d", w.V, Version)
	}
	return nil
}

func (t *TabOpen) validate() error { return checkText("tab_open.remote", t.Remote) }

func (c *Close) validate() error {
	return first(checkInt("close.code", int64(c.Code), 1000, 4999), checkText("close.reason", c.Reason))
}

func (u *Update) validate() error {
	err := first(
		checkID("update.run", u.Run, false),
		checkInt("update.round", int64(u.Round), 0, maxRound),
		checkID("update.client", u.Client, false),
		checkText("update.reason", u.Reason),
		checkInt("update.samples", int64(u.Samples), 0, 1<<30),
		checkInt("update.bytes", int64(u.Bytes), 0, maxFrameLen),
		checkText("update.codec", u.Codec),
		checkInt("update.base_version", u.BaseVersion, 0, 1<<40),
		checkFloat("update.loss", u.Loss, 0, 1e30),
		checkFloat("update.accuracy", u.Accuracy, 0, 1),
		checkInt("update.train_ms", u.TrainMS, 0, 1<<53),
		checkFloat("update.samples_per_s", u.SamplesPerS, 0, 1e12),
	)
	if err != nil {
		return err
	}
	switch {
	case u.Accepted && (u.Code != "" || u.Reason != ""):
		return malformed("an accepted update with code %q", u.Code)
	case !u.Accepted && (u.Code == "" || len(u.Code) > maxCodeLen || u.Reason == ""):
		return malformed("a refused update needs a code and a reason")
	case u.Accepted && u.Samples < 1:
		return malformed("an accepted update of %d samples", u.Samples)
	}
	return nil
}

func (r *Run) validate() error {
	err := first(
		checkID("run.run", r.Run, false),
		checkInt("run.params", int64(r.Params), 1, maxParams),
		checkInt("run.tensors", int64(len(r.Shapes)), 1, maxTensors),
		checkInt("run.max_frame_bytes", int64(r.MaxFrameBytes), 1, maxFrameLen),
		checkInt("run.max_samples", int64(r.MaxSamples), 1, 1<<24),
		checkFloat("run.max_update_norm", r.MaxUpdateNorm, 0, math.MaxFloat64),
	)
	if err != nil {
		return err
	}
	total := 0
	for _, s := range r.Shapes {
		k := 1
		if len(s) < 1 || len(s) > 8 {
			return malformed("run.shapes: a tensor of %d dimensions", len(s))
		}
		for _, d := range s {
			if d < 1 || d > maxParams {
				return malformed("run.shapes: dimension %d", d)
			}
			k *= d
			if k > maxParams {
				return malformed("run.shapes: a tensor beyond %d parameters", maxParams)
			}
		}
		if total += k; total > maxParams {
			return malformed("run.shapes hold more than %d parameters", maxParams)
		}
	}
	if total != r.Params {
		return malformed("run.shapes hold %d parameters; run.params says %d", total, r.Params)
	}
	return nil
}

func (r *Round) validate() error {
	return first(
		checkID("round.run", r.Run, false),
		checkInt("round.round", int64(r.Round), 1, maxRound),
		checkInt("round.version", r.Version, 0, 1<<40),
		checkInt("round.deadline_unix_ms", r.DeadlineUnixMS, 0, 1<<53),
		checkFloat("round.clip", r.Clip, 0, math.MaxFloat64),
	)
}

func (f *Flush) validate() error {
	return first(checkID("flush.run", f.Run, false), checkInt("flush.round", int64(f.Round), 1, maxRound))
}

func (h *PartialHeader) validate() error {
	return first(
		checkID("partial.run", h.Run, false),
		checkInt("partial.round", int64(h.Round), 1, maxRound),
		checkInt("partial.part", int64(h.Part), 0, MaxMessage),
		checkInt("partial.count", int64(h.Count), 1, 1<<19),
	)
}
