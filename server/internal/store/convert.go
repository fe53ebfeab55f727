package store

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"time"
)

// msOrNull encodes t as unix milliseconds, or NULL when t is zero.
func msOrNull(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMilli()
}

// msOrNow encodes t as unix milliseconds, using now() when t is zero.
func (s *Store) msOrNow(t time.Time) int64 {
	if t.IsZero() {
		t = s.now()
	}
	return t.UnixMilli()
}

// fromMS decodes a nullable unix-millisecond column; NULL is the zero time.
func fromMS(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMilli(v.Int64).UTC()
}

// textOrNull stores "" as NULL.
func textOrNull(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// blobOrNull stores an empty byte slice as NULL.
func blobOrNull(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

// jsonOrNull checks that b is valid JSON and returns it as TEXT, or NULL
// when b is empty. (A json.RawMessage bound as is would be stored as a BLOB.)
func jsonOrNull(what string, b json.RawMessage) (any, error) {
	if len(b) == 0 {
		return nil, nil
	}
	if !json.Valid(b) {
		return nil, fmt.Errorf("%s is not valid JSON", what)
	}
	return string(b), nil
}

// rawJSON returns a nullable TEXT column as JSON; NULL is nil.
func rawJSON(v sql.NullString) json.RawMessage {
	if !v.Valid {
		return nil
	}
	return json.RawMessage(v.String)
}

// marshalList encodes a list as a JSON array; nil encodes as NULL.
func marshalList[T any](list []T) any {
	if list == nil {
		return nil
	}
	b, err := json.Marshal(list)
	if err != nil {
		panic("store: marshal list: " + err.Error()) // strings and ints always marshal
	}
	return string(b)
}

// unmarshalList decodes a JSON array column; NULL and [] decode as nil.
func unmarshalList[T any](what string, v sql.NullString) ([]T, error) {
	if !v.Valid {
		return nil, nil
	}
	var list []T
	if err := json.Unmarshal([]byte(v.String), &list); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if len(list) == 0 {
		return nil, nil
	}
	return list, nil
}

// boolInt encodes a bool as the 0/1 INTEGER the schema checks for.
func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// floatPtr encodes a *float64 as REAL or NULL.
func floatPtr(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

// ptrFloat decodes a nullable REAL column; NULL is nil.
func ptrFloat(v sql.NullFloat64) *float64 {
	if !v.Valid {
		return nil
	}
	f := v.Float64
	return &f
}
