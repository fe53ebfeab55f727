package secagg

import "errors"

// Errors callers branch on with errors.Is. Every error this package returns
// for a round that cannot go on wraps one of them.
var (
	// ErrBelowThreshold: too few members are left for the round to
	// complete (or too few shares came in to recover a secret); the round
	// aborts and reveals nothing.
	ErrBelowThreshold = errors.New("secagg: below the threshold")
	// ErrSignature: a member's round keys are not signed by its identity
	// key, or its identity key changed (a server substituting keys).
	ErrSignature = errors.New("secagg: round keys not signed by the member's identity")
	// ErrProtocol: a message does not fit the round (wrong round, member
	// or phase, a missing or extra envelope, a share of the wrong kind).
	ErrProtocol = errors.New("secagg: protocol violation")
	// ErrBadShare: a sealed envelope does not open, or a share is not a
	// valid field element or not consistent with the others.
	ErrBadShare = errors.New("secagg: bad share")
)
