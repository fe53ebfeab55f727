package link

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestPipeDeliversInOrder(t *testing.T) {
	a, b := Pipe(4)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if err := a.Send(ctx, Message{Binary: i == 1, Data: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 3; i++ {
		m, err := b.Recv(ctx)
		if err != nil || m.Data[0] != byte(i) || m.Binary != (i == 1) {
			t.Fatalf("Recv #%d = %+v, %v; want data [%d] binary %v", i, m, err, i, i == 1)
		}
	}
}

func TestPipeCloseWakesBothEnds(t *testing.T) {
	a, b := Pipe(0)
	done := make(chan error)
	go func() { _, err := b.Recv(context.Background()); done <- err }()
	go func() { done <- b.Send(context.Background(), Message{}) }() // nobody reads a's side
	time.Sleep(10 * time.Millisecond)
	a.Close()
	for i := 0; i < 2; i++ {
		if err := <-done; !errors.Is(err, ErrClosed) {
			t.Errorf("blocked call returned %v; want ErrClosed", err)
		}
	}
	if err := a.Send(context.Background(), Message{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Send after Close = %v; want ErrClosed", err)
	}
	a.Close() // second close is fine
}

func TestPipeRecvHonoursContext(t *testing.T) {
	_, b := Pipe(1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := b.Recv(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Recv on idle pipe = %v; want context.DeadlineExceeded", err)
	}
}

// counter is a Tracker that counts.
type counter struct {
	mu sync.Mutex
	n  int
}

func (c *counter) Hold()    { c.mu.Lock(); c.n++; c.mu.Unlock() }
func (c *counter) Release() { c.mu.Lock(); c.n--; c.mu.Unlock() }
func (c *counter) get() int { c.mu.Lock(); defer c.mu.Unlock(); return c.n }

// TestTrackedPipeHolds: a message is held from Send until its reader asks
// for the next one; what was sent before a close is still delivered; a
// close holds one unit per reader until that reader calls Done; Done
// releases the rest.
func TestTrackedPipeHolds(t *testing.T) {
	ctx := context.Background()
	var c counter
	a, b := TrackedPipe(&c)
	for _, s := range []string{"x", "y", "z"} {
		if err := a.Send(ctx, Message{Data: []byte(s)}); err != nil {
			t.Fatal(err)
		}
	}
	if c.get() != 3 {
		t.Fatalf("3 messages in flight hold %d; want 3", c.get())
	}
	m, err := b.Recv(ctx)
	if err != nil || string(m.Data) != "x" || c.get() != 3 {
		t.Fatalf("first Recv = %q, %v, held %d; want x, 3 held (its reader works on it)", m.Data, err, c.get())
	}
	a.Close()
	if c.get() != 5 {
		t.Fatalf("after a close %d are held; want 5 (3 messages, one per end's reader for the close)", c.get())
	}
	a.Close()
	if c.get() != 5 {
		t.Fatalf("a second close changed the units held to %d; want 5", c.get())
	}
	m, err = b.Recv(ctx)
	if err != nil || string(m.Data) != "y" || c.get() != 4 {
		t.Fatalf("Recv after close = %q, %v, held %d; want y (sent before the close), 4 held", m.Data, err, c.get())
	}
	Done(b)
	if c.get() != 1 {
		t.Fatalf("after Done(b) %d are held; want 1 (a's reader has not seen the close)", c.get())
	}
	if _, err := b.Recv(ctx); err != ErrClosed {
		t.Fatalf("Recv after Done and close = %v; want ErrClosed", err)
	}
	Done(a)
	if c.get() != 0 {
		t.Fatalf("after Done(a) %d are held; want 0", c.get())
	}
	d1, d2 := TrackedPipe(&c)
	Done(d1)
	d2.Close()
	if c.get() != 1 {
		t.Fatalf("closing a pipe whose one reader is done holds %d; want 1 (for the other reader)", c.get())
	}
	Done(d2)
	c2, _ := TrackedPipe(&c)
	cctx, cancel := context.WithCancel(ctx)
	go cancel()
	if _, err := c2.Recv(cctx); err != context.Canceled {
		t.Fatalf("a cancelled Recv = %v; want context.Canceled", err)
	}
}
