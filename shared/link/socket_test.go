package link

import (
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeSocket counts pings; reads block until it is closed.
type fakeSocket struct {
	pings  atomic.Int32
	closed chan struct{}
	once   sync.Once
}

func newFakeSocket() *fakeSocket { return &fakeSocket{closed: make(chan struct{})} }

func (s *fakeSocket) NextReader() (int, io.Reader, error) {
	<-s.closed
	return 0, nil, io.EOF
}
func (s *fakeSocket) WriteMessage(int, []byte) error { return nil }
func (s *fakeSocket) WriteControl(typ int, _ []byte, _ time.Time) error {
	if typ == PingMessage {
		s.pings.Add(1)
	}
	return nil
}
func (s *fakeSocket) SetReadDeadline(time.Time) error   { return nil }
func (s *fakeSocket) SetWriteDeadline(time.Time) error  { return nil }
func (s *fakeSocket) SetPongHandler(func(string) error) {}
func (s *fakeSocket) SetReadLimit(int64)                {}
func (s *fakeSocket) Close() error {
	s.once.Do(func() { close(s.closed) })
	return nil
}

func TestSocketPingsUntilClosed(t *testing.T) {
	s := newFakeSocket()
	c := FromSocket(s, SocketOptions{PongWait: 10 * time.Millisecond})
	deadline := time.Now().Add(5 * time.Second)
	for s.pings.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("pings after 5 s = %d; want 3", s.pings.Load())
		}
		time.Sleep(time.Millisecond)
	}
	c.Close()
	time.Sleep(20 * time.Millisecond) // a ping being written as Close ran
	n := s.pings.Load()
	time.Sleep(50 * time.Millisecond)
	if got := s.pings.Load(); got != n {
		t.Errorf("pings after Close = %d; want %d (none more)", got, n)
	}
}

func TestSocketWithoutPongWaitNeverPings(t *testing.T) {
	s := newFakeSocket()
	c := FromSocket(s, SocketOptions{})
	time.Sleep(20 * time.Millisecond)
	c.Close()
	if n := s.pings.Load(); n != 0 {
		t.Errorf("pings = %d; want 0", n)
	}
}
