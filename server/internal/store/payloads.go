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

	mu     sync.Mutex
	files  map[string]*logFile // by path, open for appending
	failed error               // a buffered write failed (see flush)

	unlinking sync.WaitGroup // dropped files being deleted
	spare     []byte         // a dropped file's buffer, for the next file
}

// logFile is a round's payload file open for appending. Records are
// gathered in buf and written in one call when it fills and before the
// file is synced (or read), so a batch of small payloads costs a few
// writes rather than one per record; end is the file's size with buf
// written, which the log keeps itself rather than asking the file.
type logFile struct {
	f   *os.File
	end int64
	buf []byte
}

// logFlushBytes is the most a round file's buffer holds before it is
// written out.
const logFlushBytes = 1 << 20

// flush writes lf's buffered records. A failed write leaves the file's end
// unknown and records lost that rows of the writer's open transaction
// point at, so the log is marked failed: the next append or sync fails
// (that transaction rolls back) and reopens every file, asking each for
// its size.
func (l *payloadLog) flush(lf *logFile) error {
	if len(lf.buf) == 0 {
		return nil
	}
	_, err := lf.f.Write(lf.buf)
	lf.buf = lf.buf[:0]
	if err != nil {
		l.failed = fmt.Errorf("store: payload log: %w", err)
		return l.failed
	}
	return nil
}

// takeFailure reports a failed write (see flush) once and closes every file,
// so that the next append starts from the files as they are.
func (l *payloadLog) takeFailure() error {
	err := l.failed
	if err == nil {
		return nil
	}
	for p, lf := range l.files {
		lf.f.Close()
		delete(l.files, p)
	}
	l.failed = nil
	return err
}

// payloadRef locates a payload in the log.
type payloadRef struct {
	offset int64
	length int
	crc    uint32
}

func newPayloadLog(dbPath string) *payloadLog {
	return &payloadLog{dir: dbPath + "-payloads", files: map[string]*logFile{}}
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
	if err := l.takeFailure(); err != nil {
		return payloadRef{}, err
	}
	p := l.path(run, round)
	lf := l.files[p]
	if lf == nil {
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return payloadRef{}, fmt.Errorf("store: payload log: %w", err)
		}
		f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o600)
		if err != nil {
			return payloadRef{}, fmt.Errorf("store: payload log: %w", err)
		}
		end, err := f.Seek(0, io.SeekEnd)
		if err != nil {
			f.Close()
			return payloadRef{}, fmt.Errorf("store: payload log: %w", err)
		}
		lf = &logFile{f: f, end: end, buf: l.spare[:0]}
		l.spare = nil
		l.files[p] = lf
	}
	ref := payloadRef{offset: lf.end, length: len(payload), crc: crc32.Checksum(payload, castagnoli)}
	// The record is copied into the file's buffer: the file is synced
	// before anything points at the record, and a record cut short by a
	// crash fails its length or CRC check.
	if len(lf.buf) > 0 && len(lf.buf)+payloadRecordHeader+len(payload) > logFlushBytes {
		if err := l.flush(lf); err != nil {
			return payloadRef{}, err
		}
	}
	lf.buf = binary.LittleEndian.AppendUint32(lf.buf, uint32(len(payload)))
	lf.buf = binary.LittleEndian.AppendUint32(lf.buf, ref.crc)
	lf.buf = append(lf.buf, payload...)
	lf.end += payloadRecordHeader + int64(len(payload))
	if len(lf.buf) >= logFlushBytes {
		if err := l.flush(lf); err != nil {
			return payloadRef{}, err
		}
	}
	return ref, nil
}

// syncAll makes every appended record durable.
func (l *payloadLog) syncAll() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	for _, lf := range l.files {
		if l.flush(lf) != nil {
			break // takeFailure below reports it
		}
		if err := lf.f.Sync(); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, l.takeFailure())
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
	p := l.path(run, round)
	// A record still in the buffer belongs to the writer's open
	// transaction (its settling of a round it has just filled): write it
	// out. Committed records are always written already, so a reader of
	// those never touches the writer's buffer.
	if lf := l.files[p]; lf != nil && ref.offset+payloadRecordHeader+int64(ref.length) > lf.end-int64(len(lf.buf)) {
		if err := l.flush(lf); err != nil {
			return nil, err
		}
	}
	f, err := os.Open(p)
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

// drop deletes run's round file. The file is renamed out of the way at
// once and unlinked in the background: freeing a round's worth of payloads
// (187 MB for 1,000 mnist-2nn updates) takes the kernel about as long as
// the round's whole commit, which would hold up the round's close. A
// round's number is never reused, and Open sweeps what a crash left.
func (l *payloadLog) drop(run string, round int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.path(run, round)
	if lf := l.files[p]; lf != nil {
		lf.f.Close()
		delete(l.files, p)
		if cap(lf.buf) > cap(l.spare) {
			l.spare = lf.buf // the next round's file takes it
		}
	}
	trash := p + droppedSuffix
	if err := os.Rename(p, trash); err != nil {
		os.Remove(filepath.Dir(p)) // only when empty
		return
	}
	l.unlinking.Add(1)
	go func() {
		defer l.unlinking.Done()
		os.Remove(trash)
		// Under the lock: an append between creating the directory and
		// its file would fail if the directory went in between.
		l.mu.Lock()
		os.Remove(filepath.Dir(p)) // only when empty
		l.mu.Unlock()
	}()
}

// droppedSuffix marks a round file that is being deleted.
const droppedSuffix = ".dropped"

// sweep deletes the files of rounds for which keep is false, and the
// files of dropped rounds that a crash left behind.
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
			name, ok := strings.CutSuffix(f.Name(), ".log")
			n, err := strconv.Atoi(name)
			switch {
			case !ok || err != nil:
				os.Remove(filepath.Join(l.dir, r.Name(), f.Name()))
			case !keep(r.Name(), n):
				l.drop(r.Name(), n)
			}
		}
		os.Remove(filepath.Join(l.dir, r.Name()))
	}
	return nil
}

// close closes the open files and waits for the dropped ones to go.
func (l *payloadLog) close() error {
	l.mu.Lock()
	var errs []error
	for p, lf := range l.files {
		errs = append(errs, l.flush(lf), lf.f.Close())
		delete(l.files, p)
	}
	l.mu.Unlock()
	l.unlinking.Wait()
	return errors.Join(errs...)
}
