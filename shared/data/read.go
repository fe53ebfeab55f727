package data

import (
	"errors"
	"fmt"
	"io"
	"slices"
)

// eagerBytes is how much readN allocates before any data has arrived; past
// it, the buffer doubles as data arrives, so a header that announces more
// than the input holds cannot make a reader allocate much more than the
// input's size.
const eagerBytes = 1 << 24

// readN reads exactly n bytes from r. On a short read it returns an error
// that says how many bytes were expected and how many arrived.
func readN(r io.Reader, n int) ([]byte, error) {
	buf := make([]byte, 0, min(n, eagerBytes))
	for len(buf) < n {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(n-len(buf), len(buf)))
		}
		end := min(n, cap(buf))
		got, err := io.ReadFull(r, buf[len(buf):end])
		buf = buf[:len(buf)+got]
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, fmt.Errorf("truncated: want %d bytes, got %d", n, len(buf))
			}
			return nil, err
		}
	}
	return buf, nil
}

// expectEOF returns an error unless r is at its end. Reading to the end also
// lets a gzip reader verify its checksum.
func expectEOF(r io.Reader) error {
	var b [1]byte
	for range 100 {
		n, err := r.Read(b[:])
		if n > 0 {
			return errors.New("trailing bytes after the data")
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return io.ErrNoProgress
}
