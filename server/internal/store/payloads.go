package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// Payload log. A file database keeps the payloads of accepted updates out
// of SQLite, in append-only files beside it, one per run and round:
//
//	DB-payloads/RUN/ROUND.log
//
// A record is a little-endian uint32 payload length, the payload's CRC-32C
// (uint32) and the payload; the update's row holds the record's offset,
// length and CRC. The writer appends a batch's payloads, fsyncs each file it
// touched once, and only then commits the rows, so a committed row always
// points at a durable payload. Writing a payload to a file costs a copy; a
// SQLite blob costs a B-tree of overflow pages (1.8 ms for 200 KB here),
// which capped ingest. A round's file is deleted once the round is
// committed or failed (its payloads then go into the rows only when the run
// keeps blobs); files of rounds that are no longer open are swept at Open.
// An in-memory database keeps payloads in its rows.

// payloadRecordHeader is the size of a record's header.
const payloadRecordHeader = 8

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// payloadLog is the payload files of one database. Its methods are called
// from the writer goroutine, and read from Open and PendingUpdates; a mutex
// keeps them apart.
type payloadLog struct {
	dir string

	mu    sync.Mutex
	files map[string]*os.File // by path, open for appending
}

// payloadRef locates a payload in the log.
type payloadRef struct {
	offset int64
	length int
	crc    uint32
}

func newPayloadLog(dbPath string) *payloadLog {
	return &payloadLog{dir: dbPath + "-payloads", files: map[string]*os.File{}}
}

func (l *payloadLog) path(run string, round int) string {
	return filepath.Join(l.dir, run, strconv.Itoa(round)+".log")
}

// appendPayload writes one record to run's round file (not synced: see
// syncAll) and returns where it is.
func (l *payloadLog) appendPayload(run string, round int, payload []byte) (payloadRef, error) {
	if strings.ContainsAny(run, `/\`) || run == "" || run == "." || run == ".." {
		return payloadRef{}, fmt.Errorf("store: payload log: bad run id %q", run)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.path(run, round)
	f := l.files[p]
	if f == nil {
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return payloadRef{}, fmt.Errorf("store: payload log: %w", err)
		}
		var err error
		if f, err = os.OpenFile(p, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o600); err != nil {
			return payloadRef{}, fmt.Errorf("store: payload log: %w", err)
		}
		l.files[p] = f
	}
	off, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return payloadRef{}, fmt.Errorf("store: payload log: %w", err)
	}
	ref := payloadRef{offset: off, length: len(payload), crc: crc32.Checksum(payload, castagnoli)}
	var hdr [payloadRecordHeader]byte
	binary.LittleEndian.PutUint32(hdr[:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(hdr[4:], ref.crc)
	// Two writes rather than a copy of the payload: the file is synced
	// before anything points at the record, and a record cut short by a
	// crash fails its length or CRC check.
	if _, err := f.Write(hdr[:]); err != nil {
		return payloadRef{}, fmt.Errorf("store: payload log: %w", err)
	}
	if _, err := f.Write(payload); err != nil {
		return payloadRef{}, fmt.Errorf("store: payload log: %w", err)
	}
	return ref, nil
}

// syncAll makes every appended record durable.
func (l *payloadLog) syncAll() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	for _, f := range l.files {
		if err := f.Sync(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("store: payload log: sync: %w", err)
	}
	return nil
}

// read returns the payload at ref in run's round file, checked against its
// length and CRC (a record cut short by a crash, or damaged, is an error).
func (l *payloadLog) read(run string, round int, ref payloadRef) ([]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f, err := os.Open(l.path(run, round))
	if err != nil {
		return nil, fmt.Errorf("store: payload log: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if ref.offset < 0 || ref.length < 0 || ref.offset+payloadRecordHeader+int64(ref.length) > st.Size() {
		return nil, fmt.Errorf("store: payload log: record at %d of %d bytes is past the end of %s", ref.offset, ref.length, f.Name())
	}
	b := make([]byte, payloadRecordHeader+ref.length)
	if _, err := f.ReadAt(b, ref.offset); err != nil {
		return nil, fmt.Errorf("store: payload log: %w", err)
	}
	n, crc := binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint32(b[4:])
	payload := b[payloadRecordHeader:]
	if int(n) != ref.length || crc != ref.crc || crc32.Checksum(payload, castagnoli) != crc {
		return nil, fmt.Errorf("store: payload log: record at %d of %s is damaged", ref.offset, f.Name())
	}
	return payload, nil
}

// drop deletes run's round file.
func (l *payloadLog) drop(run string, round int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.path(run, round)
	if f := l.files[p]; f != nil {
		f.Close()
		delete(l.files, p)
	}
	os.Remove(p)
	os.Remove(filepath.Dir(p)) // only when empty
}

// sweep deletes the files of rounds for which keep is false.
func (l *payloadLog) sweep(keep func(run string, round int) bool) error {
	runs, err := os.ReadDir(l.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: payload log: %w", err)
	}
	for _, r := range runs {
		files, _ := os.ReadDir(filepath.Join(l.dir, r.Name()))
		for _, f := range files {
			n, err := strconv.Atoi(strings.TrimSuffix(f.Name(), ".log"))
			if err != nil || !keep(r.Name(), n) {
				l.drop(r.Name(), n)
			}
		}
		os.Remove(filepath.Join(l.dir, r.Name()))
	}
	return nil
}

// close closes the open files.
func (l *payloadLog) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	for p, f := range l.files {
		errs = append(errs, f.Close())
		delete(l.files, p)
	}
	return errors.Join(errs...)
}
