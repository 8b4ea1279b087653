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
	hist        HistSnapshot  // round trips of the requests due after the warm-up, from their burst's scheduled time
	fromWrite   HistSnapshot  // the same requests' round trips from the write of their burst

	// The round trips answered in each whole second after the first,
	// apart: the seconds in which the server flushed or merged, and the
	// others. Empty when the server does not say.
	busy, quiet         HistSnapshot
	busySecs, quietSecs int
}

// pacedTick is the period of the paced bursts.
const pacedTick = time.Millisecond

// pacedConn is the reader side of one connection of a paced run. Each
// reader owns its counters, so that readers do not contend.
type pacedConn struct {
	hist, all Histogram    // after the warm-up; every request, for progress
	fromWrite Histogram    // after the warm-up, from the write of the burst
	acked     atomic.Int64 // replies read
	last      atomic.Int64 // unix ns of the last reply
}

// pacedRun sends each source on its own connection at rate requests per
// second per connection, in bursts every pacedTick, for d (or until a
// source runs out), and measures each request's round trip from the time
// its burst was scheduled to the read of its reply. Request j is due at
// start + j/rate and goes in the burst scheduled at the first tick
// (start + k*pacedTick) at or after that; a sender running late (a burst
// written after its tick, the cores busy) counts the wait too: no
// coordinated omission. Requests due in the first warmup are answered but
// not measured. Any reply other than 201 fails it.
// background, if not nil, returns the server's time spent flushing and
// merging so far; each second is then counted as busy or quiet.
func pacedRun(ctx context.Context, addr string, srcs []pacedSource, rate float64, d, warmup, stall time.Duration, progress io.Writer, background func() (flushing, merging float64, ok bool)) (pacedResult, error) {
	var res pacedResult
	conns, err := dialAll(ctx, addr, len(srcs))
	if err != nil {
		return res, err
	}
	defer closeAll(conns)
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
		sent     int64
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
	fifos := make([]chan pacedBatch, len(srcs))
	pcs := make([]*pacedConn, len(srcs))
	for i, src := range srcs {
		nc := conns[i]
		fifos[i] = make(chan pacedBatch, min(len(src.ends), int(d/pacedTick)+2)+1) // a burst a tick at most
		pc := new(pacedConn)
		pcs[i] = pc
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := pacedRead(nc, fifos[i], stall, func(b pacedBatch, off, n int, at time.Time) {
				pc.acked.Add(int64(n))
				el := at.Sub(start)
				due := b.due + time.Duration(off)*b.step
				if scheduledAt(due) >= warmup {
					pc.fromWrite.RecordN(el-b.sent, uint64(n))
				}
				// The requests of one tick share their scheduled time, and
				// so their round trip: record them together.
				for left := n; left > 0; {
					sched := scheduledAt(due)
					k := left
					if b.step > 0 {
						k = min(int((sched-due+time.Microsecond)/b.step)+1, left)
					}
					rtt := el - sched
					pc.all.RecordN(rtt, uint64(k))
					if sched >= warmup {
						pc.hist.RecordN(rtt, uint64(k))
					}
					due += time.Duration(k) * b.step
					left -= k
				}
				pc.last.Store(at.UnixNano())
			})
			if err != nil {
				fail(fmt.Errorf("connection %d: %w", i, err))
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		var err error
		sent, err = pace(conns, srcs, fifos, start, rate, d)
		if err != nil {
			fail(err)
		}
	}()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var prev, cur, one HistSnapshot
	var flPrev, mgPrev float64
	bgOK := false
	if background != nil {
		flPrev, mgPrev, bgOK = background()
	}
	second := 0
	for waiting := true; waiting; {
		select {
		case <-done:
			waiting = false
		case <-tick.C:
			second++
			cur = HistSnapshot{}
			for _, pc := range pcs {
				pc.all.Snapshot(&one)
				cur.Add(&one)
			}
			iv := cur
			iv.Sub(&prev)
			prev = cur
			now := time.Now()
			note := ""
			if bgOK {
				fl, mg, ok := background()
				switch {
				case !ok:
					bgOK = false
				case fl > flPrev || mg > mgPrev:
					note = fmt.Sprintf(", the server flushing %.2f s, merging %.2f s", fl-flPrev, mg-mgPrev)
					if second > 1 {
						res.busy.Add(&iv)
						res.busySecs++
					}
				case second > 1:
					res.quiet.Add(&iv)
					res.quietSecs++
				}
				flPrev, mgPrev = fl, mg
			}
			fmt.Fprintf(progress, "  latency: %s %5.1fs %d acknowledged in the last second: p50 %.3f ms, p99 %.3f ms, max so far %.3f ms%s\n",
				now.UTC().Format("15:04:05.000"), now.Sub(start).Seconds(), iv.N, ms(iv.Quantile(0.5)), ms(iv.Quantile(0.99)), ms(cur.Max), note)
		}
	}
	res.sent = sent
	var last int64
	for _, pc := range pcs {
		res.acked += pc.acked.Load()
		last = max(last, pc.last.Load())
		pc.hist.Snapshot(&one)
		res.hist.Add(&one)
		pc.fromWrite.Snapshot(&one)
		res.fromWrite.Add(&one)
	}
	res.elapsed = time.Unix(0, last).Sub(start)
	return res, firstErr
}

// pace writes each source's requests to its connection at rate per second
// from start, for d, then a PING that marks the end. It queues each burst
// on the connection's fifo before writing it, and closes the fifos when
// done. It returns the requests written.
func pace(conns []net.Conn, srcs []pacedSource, fifos []chan pacedBatch, start time.Time, rate float64, d time.Duration) (int64, error) {
	defer func() {
		for _, f := range fifos {
			close(f)
		}
	}()
	sent := make([]int, len(srcs))
	var total int64
	step := time.Duration(float64(time.Second) / rate)
	dueAt := func(j int) time.Duration { return time.Duration(float64(j) / rate * float64(time.Second)) }
	for {
		now := time.Now()
		el := now.Sub(start)
		if el >= d {
			break
		}
		target := scheduledBy(el/pacedTick*pacedTick, rate)
		more := false
		for i, src := range srcs {
			due := min(target, len(src.ends)) - sent[i]
			if due <= 0 {
				more = more || sent[i] < len(src.ends)
				continue
			}
			from := 0
			if sent[i] > 0 {
				from = src.ends[sent[i]-1]
			}
			fifos[i] <- pacedBatch{n: due, due: dueAt(sent[i]), step: step, sent: time.Since(start)}
			if _, err := conns[i].Write(src.buf[from:src.ends[sent[i]+due-1]]); err != nil {
				return total, fmt.Errorf("connection %d: send: %w", i, err)
			}
			sent[i] += due
			total += int64(due)
			more = more || sent[i] < len(src.ends)
		}
		if !more {
			break
		}
		// Sleep until the tick the next request's burst is scheduled at
		// (not for a tick from now, which would drift off the schedule).
		time.Sleep(time.Until(start.Add(scheduledAt(dueAt(target)))))
	}
	for i, nc := range conns {
		if _, err := nc.Write([]byte("PING\n")); err != nil {
			return total, fmt.Errorf("connection %d: send: %w", i, err)
		}
	}
	return total, nil
}

// scheduledAt returns when the burst of a request due at due (since the
// phase's start) is scheduled: the first tick at or after due.
func scheduledAt(due time.Duration) time.Duration {
	d := due - time.Microsecond // due on a tick, give or take rounding: that tick
	return max((d+pacedTick-1)/pacedTick*pacedTick, 0)
}

// scheduledBy returns how many requests, at rate per second, have their
// burst scheduled at or before tick: those due by then, with scheduledAt's
// slack of a microsecond, so that the sender and the reader agree on every
// request.
func scheduledBy(tick time.Duration, rate float64) int {
	return int((tick+time.Microsecond).Seconds()*rate) + 1
}

// pacedBatch is a burst on its way: n requests, the first due at due, each
// next one step later, written at sent (times since the phase's start).
// It holds no pointer, so that the GC need not scan the fifos.
type pacedBatch struct {
	n               int
	due, step, sent time.Duration
}

var errNoRequest = errors.New("a reply to no request")

// pacedRead reads the replies to the bursts pace queues on fifo until the
// PONG that ends the run. For each burst with replies in a read, it calls
// fn with the burst, the index in the burst of the first of them, the
// number of its 201 replies in the read, and the time the read returned.
func pacedRead(nc net.Conn, fifo <-chan pacedBatch, stall time.Duration, fn func(b pacedBatch, off, n int, at time.Time)) error {
	rr := newReplyReader(nc)
	var cur pacedBatch
	left, k := 0, 0 // replies of cur still due; read in this read
	var bad error
	done := false
	for !done && bad == nil {
		nc.SetReadDeadline(time.Now().Add(stall))
		err := rr.read(func(line []byte) {
			if done || bad != nil {
				return
			}
			if left == 0 {
				if k > 0 {
					fn(cur, cur.n-k, k, rr.at)
					k = 0
				}
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
			k++
		})
		if k > 0 {
			fn(cur, cur.n-left-k, k, rr.at)
			k = 0
		}
		if bad != nil {
			return bad
		}
		if err != nil && !done {
			return err
		}
	}
	return nil
}
