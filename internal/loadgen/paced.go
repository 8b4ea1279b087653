package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// pacedSource is what one connection of a paced run sends: requests,
// pregenerated, and the offset just past each.
type pacedSource struct {
	buf  []byte
	ends []int
}

// pacedResult is what pacedRun measured.
type pacedResult struct {
	sent, acked int64
	elapsed     time.Duration // from the first write to the last reply
	hist        HistSnapshot  // round trips of the requests sent after the warm-up
}

// pacedTick is the period of a paced writer's bursts.
const pacedTick = time.Millisecond

// pacedRun sends each source on its own connection at rate requests per
// second per connection, in bursts every pacedTick, for d (or until a
// source runs out), and measures each request's round trip from the write
// of its burst to the read of its reply. Requests sent in the first warmup
// are answered but not measured. Any reply other than 201 fails it.
func pacedRun(ctx context.Context, addr string, srcs []pacedSource, rate float64, d, warmup, stall time.Duration, progress io.Writer) (pacedResult, error) {
	var res pacedResult
	conns := make([]net.Conn, len(srcs))
	defer func() {
		for _, nc := range conns {
			if nc != nil {
				nc.Close()
			}
		}
	}()
	for i := range srcs {
		nc, err := dial(ctx, addr)
		if err != nil {
			return res, err
		}
		conns[i] = nc
	}
	var (
		hist, all    Histogram // after the warm-up; every request, for progress
		sent, acked  atomic.Int64
		wg           sync.WaitGroup
		errOnce      sync.Once
		firstErr     error
		lastReply    atomic.Int64 // unix ns
		measureAfter time.Time
	)
	fail := func(err error) {
		errOnce.Do(func() {
			firstErr = err
			for _, nc := range conns {
				nc.SetDeadline(time.Now())
			}
		})
	}
	stop := context.AfterFunc(ctx, func() { fail(ctx.Err()) })
	defer stop()
	start := time.Now()
	measureAfter = start.Add(warmup)
	for i, src := range srcs {
		nc := conns[i]
		fifo := make(chan pendingBatch, len(src.ends)+1)
		wg.Add(2)
		go func() {
			defer wg.Done()
			n, err := pacedWrite(nc, src, fifo, start, rate, d)
			sent.Add(n)
			if err != nil {
				fail(fmt.Errorf("connection %d: send: %w", i, err))
			}
		}()
		go func() {
			defer wg.Done()
			err := pacedRead(nc, fifo, stall, func(b pendingBatch, at time.Time) {
				acked.Add(1)
				all.Record(at.Sub(b.t))
				if !b.t.Before(measureAfter) {
					hist.Record(at.Sub(b.t))
				}
				lastReply.Store(at.UnixNano())
			})
			if err != nil {
				fail(fmt.Errorf("connection %d: %w", i, err))
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var prev, cur HistSnapshot
	for waiting := true; waiting; {
		select {
		case <-done:
			waiting = false
		case <-tick.C:
			all.Snapshot(&cur)
			iv := cur
			iv.Sub(&prev)
			prev = cur
			fmt.Fprintf(progress, "  latency: %5.1fs %d acknowledged in the last second: p50 %.3f ms, p99 %.3f ms, max so far %.3f ms\n",
				time.Since(start).Seconds(), iv.N, ms(iv.Quantile(0.5)), ms(iv.Quantile(0.99)), ms(cur.Max))
		}
	}
	res.sent, res.acked = sent.Load(), acked.Load()
	res.elapsed = time.Unix(0, lastReply.Load()).Sub(start)
	hist.Snapshot(&res.hist)
	return res, firstErr
}

// pacedWrite writes src's requests at rate per second from start, for d,
// then a PING that marks the end. It queues each burst on fifo before
// writing it, and closes fifo when done. It returns the requests written.
func pacedWrite(nc net.Conn, src pacedSource, fifo chan<- pendingBatch, start time.Time, rate float64, d time.Duration) (int64, error) {
	defer close(fifo)
	sent := 0
	for sent < len(src.ends) {
		now := time.Now()
		el := now.Sub(start)
		if el >= d {
			break
		}
		due := min(int(el.Seconds()*rate)+1, len(src.ends)) - sent
		if due > 0 {
			from := 0
			if sent > 0 {
				from = src.ends[sent-1]
			}
			fifo <- pendingBatch{n: due, t: now}
			if _, err := nc.Write(src.buf[from:src.ends[sent+due-1]]); err != nil {
				return int64(sent), err
			}
			sent += due
		}
		next := start.Add(time.Duration(float64(sent) / rate * float64(time.Second)))
		time.Sleep(max(time.Until(next), pacedTick))
	}
	_, err := nc.Write([]byte("PING\n"))
	return int64(sent), err
}

var errNoRequest = errors.New("a reply to no request")

// pacedRead reads the replies to the bursts pacedWrite queues, calling fn
// for each 201 with its burst and the time it was read, until the PONG
// that ends the run.
func pacedRead(nc net.Conn, fifo <-chan pendingBatch, stall time.Duration, fn func(pendingBatch, time.Time)) error {
	rr := newReplyReader(nc)
	var cur pendingBatch
	left := 0
	var bad error
	done := false
	for !done && bad == nil {
		nc.SetReadDeadline(time.Now().Add(stall))
		err := rr.read(func(line []byte) {
			if done || bad != nil {
				return
			}
			if left == 0 {
				if string(line) == "200 PONG" {
					done = true
					return
				}
				b, ok := <-fifo
				if !ok {
					bad = fmt.Errorf("%w: %q", errNoRequest, line)
					return
				}
				cur, left = b, b.n
			}
			left--
			if !hasPrefix(line, replyInserted) {
				bad = &ReplyError{Request: "LOG", Reply: string(line)}
				return
			}
			fn(cur, rr.at)
		})
		if bad != nil {
			return bad
		}
		if err != nil && !done {
			return err
		}
	}
	return nil
}
