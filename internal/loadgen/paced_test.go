package loadgen

import (
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// TestPaceStampsDueTimes: a sender that runs late (here it starts a second
// after its schedule's start) stamps each burst with the time its first
// request was due, not with the time it was written, so that the wait
// before sending counts in the latency (no coordinated omission).
func TestPaceStampsDueTimes(t *testing.T) {
	const rate, n = 1000.0, 1500
	var src pacedSource
	for i := range n {
		src.buf = fmt.Appendf(src.buf, "LOG m %d\n", i)
		src.ends = append(src.ends, len(src.buf))
	}
	client, server := net.Pipe()
	defer client.Close()
	go io.Copy(io.Discard, server)
	fifo := make(chan pacedBatch, n+1)
	start := time.Now().Add(-time.Second)
	if _, err := pace([]net.Conn{client}, []pacedSource{src}, []chan pacedBatch{fifo}, start, rate, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	k := 0
	for b := range fifo {
		want := time.Duration(float64(k) / rate * float64(time.Second))
		if d := b.due - want; d < -time.Microsecond || d > time.Microsecond {
			t.Fatalf("burst of requests %d..%d stamped %v after their schedule's start, want %v (the first one's due time)",
				k, k+b.n-1, b.due, want)
		}
		if b.sent < b.due {
			t.Fatalf("burst of requests %d..%d written at %v, before it was due (%v)", k, k+b.n-1, b.sent, b.due)
		}
		if b.step != time.Millisecond {
			t.Fatalf("step %v, want 1ms at %v requests/s", b.step, rate)
		}
		k += b.n
	}
	if k != n {
		t.Fatalf("%d requests queued, want %d", k, n)
	}
}

// TestPacedReadOffsets: replies of one burst read in several reads are
// reported with their place in the burst.
func TestPacedReadOffsets(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	fifo := make(chan pacedBatch, 3)
	fifo <- pacedBatch{n: 3}
	fifo <- pacedBatch{n: 2}
	close(fifo)
	go func() {
		server.Write([]byte("201 Metric Inserted\n201 Metric Inserted\n"))
		time.Sleep(10 * time.Millisecond)
		server.Write([]byte("201 Metric Inserted\n201 Metric Inserted\n201 Metric Inserted\n200 PONG\n"))
	}()
	var got []string
	err := pacedRead(client, fifo, time.Second, func(b pacedBatch, off, n int, at time.Time) {
		got = append(got, fmt.Sprintf("%d:%d+%d", b.n, off, n))
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[3:0+2 3:2+1 2:0+2]" {
		t.Fatalf("reported %v, want [3:0+2 3:2+1 2:0+2]", got)
	}
}
