package link

import (
	"context"
	"errors"
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
