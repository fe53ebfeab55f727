package wire

import (
	"errors"
	"fmt"
)

// Sentinel errors that callers branch on with errors.Is. Every error this
// package returns for bad input wraps exactly one of them, so that a server
// can answer with the matching Rejected code (see RejectCode).
var (
	// ErrMalformed reports bytes that do not follow the wire format:
	// bad magic, bad JSON, truncated or trailing data, a checksum mismatch,
	// out-of-range indices or fields.
	ErrMalformed = errors.New("wire: malformed input")

	// ErrVersion reports a frame or message from another protocol version.
	ErrVersion = errors.New("wire: unsupported protocol version")

	// ErrTooLarge reports input beyond a limit: frame, header, message,
	// parameter count or decoded size.
	ErrTooLarge = errors.New("wire: input too large")

	// ErrNotFinite reports a NaN or infinite value where only finite values
	// are allowed.
	ErrNotFinite = errors.New("wire: value not finite")

	// ErrShape reports vectors or shapes whose sizes do not match.
	ErrShape = errors.New("wire: shape mismatch")
)

// Codes sent in Rejected.Code. Servers may send other short codes; these are
// the ones this package and the server use.
const (
	CodeLate        = "late"
	CodeBadFrame    = "bad_frame"
	CodeShape       = "shape"
	CodeNotFinite   = "not_finite"
	CodeTooLarge    = "too_large"
	CodeNotSelected = "not_selected"
	CodeAuth        = "auth"
	CodeAnomaly     = "anomaly"
	CodeRunOver     = "run_over" // a hello for a run that has ended
	CodeFull        = "full"     // a hello for a run whose data slices are all taken
)

// RejectCode returns the Rejected code that matches err: CodeTooLarge,
// CodeNotFinite, CodeShape, or CodeBadFrame for any other error
// (malformed input, another version, or an error from elsewhere).
func RejectCode(err error) string {
	switch {
	case errors.Is(err, ErrTooLarge):
		return CodeTooLarge
	case errors.Is(err, ErrNotFinite):
		return CodeNotFinite
	case errors.Is(err, ErrShape):
		return CodeShape
	default:
		return CodeBadFrame
	}
}

// wireError is an error with its own message that matches one sentinel.
type wireError struct {
	kind error
	msg  string
}

func (e *wireError) Error() string { return e.msg }
func (e *wireError) Unwrap() error { return e.kind }

// errorf returns an error whose message is the formatted string (which
// starts with "wire: ") and which matches kind under errors.Is.
func errorf(kind error, format string, args ...any) error {
	return &wireError{kind: kind, msg: fmt.Sprintf(format, args...)}
}
