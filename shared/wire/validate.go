package wire

import (
	"math"
	"strings"
	"unicode/utf8"
)

// Bounds on message fields. Strings are measured in bytes.
const (
	maxIDLen     = 64      // client, run, model and dataset identifiers
	maxTextLen   = 256     // reasons, names, tokens, codecs, URLs
	maxSecretLen = 64      // client secrets
	maxAgentLen  = 512     // device.user_agent (user agents run long)
	maxCodecs    = 32      // hello.codecs entries
	maxLabels    = 1000    // slice.label_counts entries
	maxCount     = 1 << 30 // samples, bytes, clients and other counts
	maxRounds    = 1 << 20 // round numbers and run lengths
	maxEpochs    = 1000    // local epochs
	maxVersion   = 1 << 40 // model versions
	maxCores     = 4096    // device.cores
	maxWorkers   = 1024    // device.workers
	maxMemoryGB  = 1 << 20 // device.memory_gb
	maxRate      = 1e12    // samples_per_s
	maxLoss      = 1e30    // losses
	maxHyper     = 1e6     // lr, weight_decay, mu
	maxTimeMS    = 1 << 53 // unix milliseconds, train_ms
	maxCodeLen   = 32      // rejected.code
	maxProfile   = 32      // device.profile (profile.MaxNameLen)
	maxClaimedV  = 1 << 16 // hello.v: any version parses, so the server can answer it
	maxUpdateCap = 1 << 31 // limits.max_update_bytes
)

// firstErr returns the first non-nil error of errs.
func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// isIDByte reports whether c may appear in an identifier: [A-Za-z0-9_-].
func isIDByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// checkID checks that s is an identifier of at most maxIDLen bytes of
// [A-Za-z0-9_-], non-empty unless allowEmpty.
func checkID(field, s string, allowEmpty bool) error {
	if s == "" {
		if allowEmpty {
			return nil
		}
		return errorf(ErrMalformed, "wire: %s is empty", field)
	}
	if len(s) > maxIDLen {
		return errorf(ErrMalformed, "wire: %s is %d bytes long; limit %d", field, len(s), maxIDLen)
	}
	for i := 0; i < len(s); i++ {
		if !isIDByte(s[i]) {
			return errorf(ErrMalformed, "wire: %s has byte %q at %d; want [A-Za-z0-9_-]", field, s[i], i)
		}
	}
	return nil
}

// checkText checks that s is valid UTF-8 of at most max bytes without
// control characters.
// checkSpec checks a model or strategy spec ("mnist-cnn", "mlp:200,200",
// "trimmed-mean:0.2", "fedavg,dp-clip=1"): non-empty, bounded, and made of
// letters, digits and _ - . : , = + only.
func checkSpec(field, s string) error {
	if s == "" {
		return errorf(ErrMalformed, "wire: %s is empty", field)
	}
	if len(s) > maxTextLen {
		return errorf(ErrMalformed, "wire: %s is %d bytes long; limit %d", field, len(s), maxTextLen)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isIDByte(c) && !strings.ContainsRune(".:,=+", rune(c)) {
			return errorf(ErrMalformed, "wire: %s has byte %q at %d; want [A-Za-z0-9_.:,=+-]", field, c, i)
		}
	}
	return nil
}

func checkOptionalSpec(field, s string) error {
	if s == "" {
		return nil
	}
	return checkSpec(field, s)
}

func checkText(field, s string, max int) error {
	if len(s) > max {
		return errorf(ErrMalformed, "wire: %s is %d bytes long; limit %d", field, len(s), max)
	}
	if !utf8.ValidString(s) {
		return errorf(ErrMalformed, "wire: %s is not valid UTF-8", field)
	}
	for i, r := range s {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return errorf(ErrMalformed, "wire: %s has control or invalid character %U at %d", field, r, i)
		}
	}
	return nil
}

// checkInt checks lo <= v <= hi.
func checkInt(field string, v, lo, hi int64) error {
	if v < lo || v > hi {
		return errorf(ErrMalformed, "wire: %s = %d; want %d..%d", field, v, lo, hi)
	}
	return nil
}

// checkFloat checks that v is finite and lo <= v <= hi.
func checkFloat(field string, v, lo, hi float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return errorf(ErrNotFinite, "wire: %s = %v is not finite", field, v)
	}
	if v < lo || v > hi {
		return errorf(ErrMalformed, "wire: %s = %g; want %g..%g", field, v, lo, hi)
	}
	return nil
}

// checkOneOf checks that s is one of the allowed values.
func checkOneOf(field, s string, allowed ...string) error {
	for _, a := range allowed {
		if s == a {
			return nil
		}
	}
	return errorf(ErrMalformed, "wire: %s = %.32q; want one of %q", field, s, allowed)
}

// checkCode checks a short machine code: 1..maxCodeLen bytes of [a-z0-9_].
func checkCode(field, s string) error {
	if s == "" || len(s) > maxCodeLen {
		return errorf(ErrMalformed, "wire: %s has length %d; want 1..%d", field, len(s), maxCodeLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return errorf(ErrMalformed, "wire: %s has byte %q at %d; want [a-z0-9_]", field, c, i)
		}
	}
	return nil
}

// checkRelURL checks a relative URL path: it starts with a single '/', is
// printable ASCII of at most maxTextLen bytes, and has no scheme or host.
func checkRelURL(field, s string) error {
	if len(s) > maxTextLen {
		return errorf(ErrMalformed, "wire: %s is %d bytes long; limit %d", field, len(s), maxTextLen)
	}
	if len(s) == 0 || s[0] != '/' || len(s) > 1 && (s[1] == '/' || s[1] == '\\') {
		return errorf(ErrMalformed, "wire: %s = %.32q; want a path starting with a single '/'", field, s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f || s[i] == '\\' {
			return errorf(ErrMalformed, "wire: %s has byte %q at %d", field, s[i], i)
		}
	}
	return nil
}

// checkPipeline checks that s parses as a pipeline.
func checkPipeline(field, s string) error {
	if _, err := ParsePipeline(s); err != nil {
		return errorf(ErrMalformed, "wire: %s: %v", field, err)
	}
	return nil
}

// checkProfile checks an optional device profile name: at most maxProfile
// bytes of [a-z0-9-]. The server decides whether it knows the profile.
func checkProfile(field, s string) error {
	if len(s) > maxProfile {
		return errorf(ErrMalformed, "wire: %s is %d bytes long; limit %d", field, len(s), maxProfile)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return errorf(ErrMalformed, "wire: %s has byte %q at %d; want [a-z0-9-]", field, c, i)
		}
	}
	return nil
}

// ClipText makes s fit a message's text field (reasons, names): valid
// UTF-8 without control characters (each becomes a space), at most
// maxTextLen bytes, cut at a character boundary; so that any error's text
// goes out as a valid message.
func ClipText(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, " "))
	if len(s) <= maxTextLen {
		return s
	}
	for i := maxTextLen; i > 0; i-- {
		if utf8.RuneStart(s[i]) {
			return s[:i]
		}
	}
	return ""
}
