package vclock

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// run starts the clock's scheduler for the test.
func run(t *testing.T, c *Clock) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, time.Second) }()
	t.Cleanup(func() { cancel(); <-done })
}

// TestSleepersWakeInOrderOfVirtualTime: three goroutines sleeping 3, 1
// and 2 virtual hours wake in time order, at once in real time, each
// reading its own wake time.
func TestSleepersWakeInOrderOfVirtualTime(t *testing.T) {
	c := New(epoch)
	var mu sync.Mutex
	var order []time.Duration
	var wg sync.WaitGroup
	for _, h := range []int{3, 1, 2} {
		c.Hold() // the goroutine's, before it starts
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Release()
			if err := c.Sleep(context.Background(), time.Duration(h)*time.Hour); err != nil {
				t.Error(err)
			}
			mu.Lock()
			order = append(order, c.Now().Sub(epoch))
			mu.Unlock()
		}()
	}
	start := time.Now()
	run(t, c)
	wg.Wait()
	if len(order) != 3 || order[0] != time.Hour || order[1] != 2*time.Hour || order[2] != 3*time.Hour {
		t.Errorf("wake times %v; want 1h, 2h, 3h", order)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("3 virtual hours took %v of real time", time.Since(start))
	}
}

// TestNamedTiesFireInNameOrder: sleepers due at the same virtual instant
// wake in the order of their views' names, not the order in which they
// went to sleep (which real time decides), and the clock's own timers go
// first.
func TestNamedTiesFireInNameOrder(t *testing.T) {
	c := New(epoch)
	var mu sync.Mutex
	var order []string
	note := func(s string) { mu.Lock(); order = append(order, s); mu.Unlock() }
	noted := func() int { mu.Lock(); defer mu.Unlock(); return len(order) }
	var wg sync.WaitGroup
	for i, name := range []string{"c", "a", "b"} { // set in this order
		c.Hold()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Release()
			if err := c.Named(name).Sleep(context.Background(), time.Minute); err != nil {
				t.Error(err)
			}
			note(name)
		}()
		for c.timerCount() < i+1 {
			time.Sleep(time.Millisecond)
		}
	}
	c.Named("0").AfterFunc(time.Minute, func() { note("0") })
	c.AfterFunc(time.Minute, func() { note("clock") })
	run(t, c)
	wg.Wait()
	for noted() < 5 {
		time.Sleep(time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Join(order, " "); got != "clock 0 a b c" {
		t.Errorf("timers due together fired in the order %q; want \"clock 0 a b c\"", got)
	}
}

// TestHeldWorkStopsTheClock: while a unit is held the clock does not move,
// however long the work takes in real time; it moves once released.
func TestHeldWorkStopsTheClock(t *testing.T) {
	c := New(epoch)
	fired := make(chan time.Time, 1)
	c.Hold()
	c.AfterFunc(time.Minute, func() { fired <- c.Now() })
	run(t, c)
	select {
	case <-fired:
		t.Fatal("the timer fired while work was held")
	case <-time.After(50 * time.Millisecond):
	}
	if c.Elapsed() != 0 {
		t.Fatalf("the clock moved to %v while work was held", c.Elapsed())
	}
	c.Release()
	if at := <-fired; !at.Equal(epoch.Add(time.Minute)) {
		t.Errorf("the timer fired at %v; want 1m", at.Sub(epoch))
	}
}

// TestStoppedTimerAndCancelledSleep: a stopped AfterFunc never fires, and a
// sleep whose context ends returns its error holding a unit again.
func TestStoppedTimerAndCancelledSleep(t *testing.T) {
	c := New(epoch)
	run(t, c)
	c.Hold()
	tm := c.AfterFunc(time.Second, func() { t.Error("a stopped timer fired") })
	if !tm.Stop() || tm.Stop() {
		t.Error("Stop of a pending timer = false, or a second Stop = true")
	}
	ctx, cancel := context.WithCancel(context.Background())
	// The canceller's unit is held before Sleep lets go of the test's:
	// held inside the goroutine, the clock could find nothing in flight
	// first and fire the hour.
	c.Hold()
	go func() {
		defer c.Release()
		cancel()
	}()
	if err := c.Sleep(ctx, time.Hour); err != context.Canceled {
		t.Fatalf("cancelled Sleep = %v; want context.Canceled", err)
	}
	c.Release() // the unit Sleep came back with
}

// TestStallIsReported: nothing held and nothing scheduled: Run says the
// simulation stalled instead of waiting forever.
func TestStallIsReported(t *testing.T) {
	c := New(epoch)
	err := c.Run(context.Background(), 100*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "stalled") {
		t.Fatalf("Run on an idle clock = %v; want a stall error", err)
	}
}

// timerCount is how many timers are pending.
func (c *Clock) timerCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.timers.Len()
}
