package hostproc

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"
)

// A restart waits while the old process still holds its port, and no
// longer than it is held.
func TestWaitPortFree(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("https://%s/readyz", l.Addr())
	held := 300 * time.Millisecond
	go func() { time.Sleep(held); l.Close() }()
	start := time.Now()
	waitPortFree(context.Background(), url, 5*time.Second)
	if took := time.Since(start); took < held || took > 3*time.Second {
		t.Errorf("waited %v for a port held %v", took, held)
	}
	// A port that stays taken: the wait ends at its bound.
	l2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	start = time.Now()
	waitPortFree(context.Background(), fmt.Sprintf("https://%s/readyz", l2.Addr()), 400*time.Millisecond)
	if took := time.Since(start); took < 400*time.Millisecond || took > 2*time.Second {
		t.Errorf("waited %v for a port held for good, bound 400ms", took)
	}
	// Not a loopback URL (a socket, say): no wait.
	start = time.Now()
	waitPortFree(context.Background(), "", time.Second)
	if time.Since(start) > 100*time.Millisecond {
		t.Error("waited without a URL")
	}
}
