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

	// ErrNorm reports an update that changes the model by more than its
	// receiver allows (see ToDelta).
	ErrNorm = errors.New("wire: update changes the model too much")
)

// Codes sent in Rejected.Code and stored in updates.code: the one
// vocabulary the server, the edge shards and clients use.
const (
	CodeLate        = "late"         // for a round that is over, or an older model version
	CodeBadFrame    = "bad_frame"    // unreadable, or for a round that has not started
	CodeShape       = "shape"        // wrong parameter count or shapes
	CodeNotFinite   = "not_finite"   // NaN or infinite values
	CodeTooLarge    = "too_large"    // beyond a size limit
	CodeNorm        = "norm"         // beyond the run's update norm bound, or a value out of range
	CodeNotSelected = "not_selected" // the client holds no task for the round
	CodeDuplicate   = "duplicate"    // the client already answered the round
	CodeDeclined    = "declined"     // the client sent no update (a decline)
	CodeStore       = "store"        // the server could not store it
	CodeShutdown    = "shutdown"     // the server is shutting down
	CodeAuth        = "auth"         // a hello with a wrong token, or for no active run
	CodeAnomaly     = "anomaly"      // excluded by anomaly detection
	CodeRunOver     = "run_over"     // a hello for a run that has ended
	CodeFull        = "full"         // a hello for a run whose data slices are all held
	CodeRateLimited = "rate_limited" // too many failed hellos from this address
	// CodeShardRefused: a hello through an edge shard for a run whose
	// strategy needs every update (robust rules, anomaly detection) or
	// that is asynchronous.
	CodeShardRefused = "shard_refused"
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
	case errors.Is(err, ErrNorm):
		return CodeNorm
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
