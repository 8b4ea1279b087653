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

// TestScheduleAgrees: the requests pace sends at a tick are exactly those
// the reader times from that tick (or an earlier one when the sender is
// late), at rates whose due times fall on ticks give or take rounding.
func TestScheduleAgrees(t *testing.T) {
	for _, rate := range []float64{7000, 7100, 12500, 20000, 333333} {
		dueAt := func(j int) time.Duration { return time.Duration(float64(j) / rate * float64(time.Second)) }
		j := 0
		for tick := time.Duration(0); tick < 2*time.Second; tick += pacedTick {
			target := scheduledBy(tick, rate)
			for ; j < target; j++ {
				if s := scheduledAt(dueAt(j)); s != tick {
					t.Fatalf("rate %v: request %d sent at tick %v, timed from %v", rate, j, tick, s)
				}
			}
			if next := scheduledAt(dueAt(target)); next <= tick {
				t.Fatalf("rate %v: after tick %v the next request is scheduled at %v: pace would spin", rate, tick, next)
			}
		}
	}
}
