package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
)

// Version is the protocol version this package speaks: the v of Hello and
// the version byte of binary frames.
const Version = 1

// MaxMessageBytes is the default limit on a control message's size; the
// largest message, Welcome, stays far below it.
const MaxMessageBytes = 64 << 10

// Message is a control message: one of *Hello, *Welcome, *Wait,
// *RoundStart, *Progress, *Decline, *Accepted, *Rejected, *RoundEnd,
// *RunEnd, *Bye.
type Message interface {
	// Type returns the message's JSON type name, e.g. "round_start".
	Type() string
	// Validate checks the message's fields against their bounds.
	Validate() error
}

// typeField is embedded in decoding envelopes so that "type" is a known field.
type typeField struct {
	Type string `json:"type"`
}

// ParseMessage decodes one control message. It checks the size against
// maxBytes first (MaxMessageBytes if maxBytes <= 0), then reads the type, then decodes strictly into that
// type's struct (unknown fields, trailing data and wrong types are errors)
// and validates it. The result is one of the pointer types listed at
// Message.
func ParseMessage(b []byte, maxBytes int) (Message, error) {
	if maxBytes <= 0 {
		maxBytes = MaxMessageBytes
	}
	if len(b) > maxBytes {
		return nil, errorf(ErrTooLarge, "wire: message of %d bytes exceeds limit %d", len(b), maxBytes)
	}
	var probe typeField
	if err := json.Unmarshal(b, &probe); err != nil {
		return nil, errorf(ErrMalformed, "wire: bad message: %v", err)
	}
	m, err := decodeTyped(probe.Type, b)
	if err != nil {
		return nil, err
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// decodeTyped decodes b strictly into a new message of type t.
func decodeTyped(t string, b []byte) (Message, error) {
	var m Message
	var err error
	switch t {
	case "hello":
		v := new(Hello)
		m, err = v, strictUnmarshal(b, &struct {
			typeField
			*Hello
		}{Hello: v})
	case "welcome":
		v := new(Welcome)
		m, err = v, strictUnmarshal(b, &struct {
			typeField
			*Welcome
		}{Welcome: v})
	case "wait":
		v := new(Wait)
		m, err = v, strictUnmarshal(b, &struct {
			typeField
			*Wait
		}{Wait: v})
	case "round_start":
		v := new(RoundStart)
		m, err = v, strictUnmarshal(b, &struct {
			typeField
			*RoundStart
		}{RoundStart: v})
	case "progress":
		v := new(Progress)
		m, err = v, strictUnmarshal(b, &struct {
			typeField
			*Progress
		}{Progress: v})
	case "accepted":
		v := new(Accepted)
		m, err = v, strictUnmarshal(b, &struct {
			typeField
			*Accepted
		}{Accepted: v})
	case "rejected":
		v := new(Rejected)
		m, err = v, strictUnmarshal(b, &struct {
			typeField
			*Rejected
		}{Rejected: v})
	case "round_end":
		v := new(RoundEnd)
		m, err = v, strictUnmarshal(b, &struct {
			typeField
			*RoundEnd
		}{RoundEnd: v})
	case "run_end":
		v := new(RunEnd)
		m, err = v, strictUnmarshal(b, &struct {
			typeField
			*RunEnd
		}{RunEnd: v})
	case "decline":
		v := new(Decline)
		m, err = v, strictUnmarshal(b, &struct {
			typeField
			*Decline
		}{Decline: v})
	case "bye":
		v := new(Bye)
		m, err = v, strictUnmarshal(b, &struct {
			typeField
			*Bye
		}{Bye: v})
	default:
		if len(t) > 32 {
			t = t[:32] + "..."
		}
		return nil, errorf(ErrMalformed, "wire: unknown message type %q", t)
	}
	if err != nil {
		return nil, errorf(ErrMalformed, "wire: bad %s message: %v", t, err)
	}
	return m, nil
}

// Marshal validates m and encodes it as a JSON object whose first member is
// "type".
func Marshal(m Message) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	body, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	if len(body) < 2 || body[0] != '{' {
		panic("wire: message " + m.Type() + " does not marshal to a JSON object")
	}
	t := m.Type()
	out := make([]byte, 0, len(body)+len(t)+10)
	out = append(out, `{"type":"`...)
	out = append(out, t...)
	out = append(out, '"')
	if len(body) > 2 {
		out = append(out, ',')
	}
	return append(out, body[1:]...), nil
}

// strictUnmarshal decodes exactly one JSON object from b into v, rejecting
// unknown fields and trailing data.
func strictUnmarshal(b []byte, v any) error {
	if len(bytes.TrimLeft(b, " \t\r\n")) == 0 || bytes.TrimLeft(b, " \t\r\n")[0] != '{' {
		return errors.New("not a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after JSON object")
	}
	return nil
}
