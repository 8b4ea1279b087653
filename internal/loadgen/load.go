package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// LoadOptions configures Load. A zero field means its default.
type LoadOptions struct {
	// Addr is the server's native protocol address. Default
	// 127.0.0.1:7574.
	Addr string
	// Clients is the number of test clients, one connection each.
	// Default 1.
	Clients int
	// Rate is the LOG requests each client sends per second, evenly
	// spread. Default 10.
	Rate float64
	// Metrics is the number of metric names each client writes, in turn:
	// <Prefix>.c<client>.m<k>. Default 10.
	Metrics int
	// Prefix starts every metric name. Default "load".
	Prefix string
	// Duration ends the run; 0 runs until ctx is done.
	Duration time.Duration
	// Window bounds the requests a client has sent and not yet seen
	// answered; requests due beyond it are skipped (and counted), so a
	// slow server is not buried under a backlog. Default 10,000.
	Window int
	// Interval is the period of the report lines. Default 1s.
	Interval time.Duration
	// Out receives a report line every Interval and a summary at the end.
	// Default io.Discard.
	Out io.Writer
	// Logger receives connection events (lost, refused, reconnected).
	// Default slog.Default().
	Logger *slog.Logger
	// Seed seeds the values' random walks.
	Seed uint64
}

func (o LoadOptions) withDefaults() LoadOptions {
	if o.Addr == "" {
		o.Addr = "127.0.0.1:7574"
	}
	if o.Clients <= 0 {
		o.Clients = 1
	}
	if o.Rate <= 0 {
		o.Rate = 10
	}
	if o.Metrics <= 0 {
		o.Metrics = 10
	}
	if o.Prefix == "" {
		o.Prefix = "load"
	}
	if o.Window <= 0 {
		o.Window = 10000
	}
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	o.Logger = o.Logger.With("component", "load")
	return o
}

// LoadTotals is what Load's clients did.
type LoadTotals struct {
	Sent       uint64 // LOG requests written, or being written when the connection broke
	Acked      uint64 // answered 201 Metric Inserted
	Errors     uint64 // failed connects, lost connections and replies other than 201 and 503
	Busy       uint64 // answered 503, or refused with it at connect (the server then closes the connection)
	Lost       uint64 // sent and never answered: the connection broke first
	Skipped    uint64 // due but not sent: the window was full or the client disconnected
	Reconnects uint64 // connections made after a client's first
	Elapsed    time.Duration
	P50, P99   time.Duration // LOG round trip, from when the request was due to its reply
	Max        time.Duration
}

// loadCounters are shared by the clients and read by the reporter.
type loadCounters struct {
	sent, acked, errors, busy, lost, skipped, reconnects atomic.Uint64
	up                                                   atomic.Int64 // connected clients
}

func (c *loadCounters) totals() LoadTotals {
	return LoadTotals{
		Sent: c.sent.Load(), Acked: c.acked.Load(), Errors: c.errors.Load(), Busy: c.busy.Load(),
		Lost: c.lost.Load(), Skipped: c.skipped.Load(), Reconnects: c.reconnects.Load(),
	}
}

// Load runs o.Clients test clients, each sending LOG requests at o.Rate
// per second on its own connection, until o.Duration has passed or ctx is
// done. A client whose connection fails reconnects with exponential
// backoff (100 ms to 5 s). Load writes a line per o.Interval to o.Out,
// then a summary, and returns the totals. Its error is nil on a clean stop,
// even when the server was down: the report says what failed.
func Load(ctx context.Context, o LoadOptions) (LoadTotals, error) {
	o = o.withDefaults()
	if math.IsInf(o.Rate, 0) || math.IsNaN(o.Rate) {
		return LoadTotals{}, fmt.Errorf("rate %v: want a positive number", o.Rate)
	}
	start := time.Now()
	if o.Duration > 0 {
		// The schedule's end: the requests due before it are sent.
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, start.Add(o.Duration))
		defer cancel()
	}
	var (
		ctr  loadCounters
		hist Histogram
		wg   sync.WaitGroup
	)
	for i := 0; i < o.Clients; i++ {
		c := newLoadClient(i, &o, &ctr, &hist, start)
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.run(ctx)
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	var prevT LoadTotals
	var prevH, curH HistSnapshot
	report := func() {
		t := ctr.totals()
		hist.Snapshot(&curH)
		d := curH
		d.Sub(&prevH)
		fmt.Fprintf(o.Out, "%s sent=%d acked=%d errors=%d busy=%d lost=%d skipped=%d p50=%s p99=%s conns=%d/%d total_acked=%d\n",
			time.Now().Format(time.DateTime), t.Sent-prevT.Sent, t.Acked-prevT.Acked, t.Errors-prevT.Errors,
			t.Busy-prevT.Busy, t.Lost-prevT.Lost, t.Skipped-prevT.Skipped,
			fmtLatency(d.N, d.Quantile(0.5)), fmtLatency(d.N, d.Quantile(0.99)), ctr.up.Load(), o.Clients, t.Acked)
		prevT, prevH = t, curH
	}
	tick := time.NewTicker(o.Interval)
	defer tick.Stop()
loop:
	for {
		select {
		case <-tick.C:
			report()
		case <-done:
			break loop
		}
	}
	t := ctr.totals()
	t.Elapsed = time.Since(start)
	hist.Snapshot(&curH)
	t.P50, t.P99, t.Max = curH.Quantile(0.5), curH.Quantile(0.99), curH.Max
	fmt.Fprintf(o.Out, "summary: clients=%d elapsed=%s sent=%d acked=%d (%.1f/s) errors=%d busy=%d lost=%d skipped=%d reconnects=%d p50=%s p99=%s max=%s\n",
		o.Clients, t.Elapsed.Round(time.Millisecond), t.Sent, t.Acked, float64(t.Acked)/t.Elapsed.Seconds(),
		t.Errors, t.Busy, t.Lost, t.Skipped, t.Reconnects,
		fmtLatency(curH.N, t.P50), fmtLatency(curH.N, t.P99), fmtLatency(curH.N, t.Max))
	return t, nil
}

// fmtLatency prints d in milliseconds, or "-" when nothing was measured.
func fmtLatency(n uint64, d time.Duration) string {
	if n == 0 {
		return "-"
	}
	return strconv.FormatFloat(float64(d)/1e6, 'f', 3, 64) + "ms"
}

// loadClient is one test client.
type loadClient struct {
	id   int
	o    *LoadOptions
	ctr  *loadCounters
	hist *Histogram
	log  *slog.Logger

	names [][]byte  // "LOG <name> " per metric
	vals  []float64 // each metric's random walk
	rng   *rand.Rand
	next  int // the metric of the next request

	// The schedule, from the start of the run and kept across
	// reconnections, so that requests due while the client was
	// disconnected count as skipped: requests are due at start + k/rate;
	// k counts those sent or skipped so far.
	start time.Time
	k     int64
	// stopped is when the sender saw the run end (zero: it was not
	// sending then).
	stopped time.Time
}

// LoadSeriesName is the id Load's client sends its metric under.
func LoadSeriesName(prefix string, client, metric int) string {
	return fmt.Sprintf("%s.c%d.m%d", prefix, client, metric)
}

func newLoadClient(id int, o *LoadOptions, ctr *loadCounters, hist *Histogram, start time.Time) *loadClient {
	c := &loadClient{
		id: id, o: o, ctr: ctr, hist: hist, start: start,
		log: o.Logger.With("client", id),
		rng: rand.New(rand.NewPCG(o.Seed, uint64(id))),
	}
	for k := 0; k < o.Metrics; k++ {
		c.names = append(c.names, []byte("LOG "+LoadSeriesName(o.Prefix, id, k)+" "))
		c.vals = append(c.vals, math.Round(c.rng.Float64()*10000)/100)
	}
	return c
}

// appendRequest appends the client's next LOG request.
func (c *loadClient) appendRequest(dst []byte) []byte {
	k := c.next
	c.next = (k + 1) % len(c.names)
	c.vals[k] = math.Round((c.vals[k]+c.rng.NormFloat64())*100) / 100
	dst = append(dst, c.names[k]...)
	dst = strconv.AppendFloat(dst, c.vals[k], 'f', 2, 64)
	return append(dst, '\n')
}

const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
	// stopGrace is how long a stopping client waits for the replies to
	// what it sent.
	stopGrace = 2 * time.Second
)

// run connects, sends until ctx is done, and reconnects when the
// connection fails.
func (c *loadClient) run(ctx context.Context) {
	// The requests due before the end and not sent (the client was
	// disconnected then) are skipped too.
	defer func() {
		end := c.stopped
		if end.IsZero() {
			end = time.Now()
		}
		if dl, ok := ctx.Deadline(); ok && dl.Before(end) {
			end = dl
		}
		c.skip(int64(math.Ceil(end.Sub(c.start).Seconds() * c.o.Rate)))
	}()
	var backoff time.Duration
	var d net.Dialer
	connected := false
	for ctx.Err() == nil {
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		nc, err := d.DialContext(dctx, "tcp", c.o.Addr)
		cancel()
		if err == nil {
			if connected {
				c.ctr.reconnects.Add(1)
				c.log.Info("reconnected", "addr", c.o.Addr)
			}
			connected = true
			if c.session(ctx, nc) {
				backoff = 0
			}
		} else if !runOver(ctx, time.Now()) {
			c.ctr.errors.Add(1)
		}
		if runOver(ctx, time.Now()) {
			return
		}
		backoff = min(max(2*backoff, minBackoff), maxBackoff)
		wait := backoff - backoff/5 + rand.N(backoff*2/5+1) // +-20% jitter
		if err != nil {
			c.log.Warn("cannot connect", "addr", c.o.Addr, "err", unwrapOp(err), "retry_in", wait.Round(time.Millisecond))
		} else {
			c.log.Info("reconnecting", "retry_in", wait.Round(time.Millisecond))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
}

// runOver reports whether the run has ended: ctx is done, or its deadline
// passed by now, which ends a dial at once, before ctx itself says so.
func runOver(ctx context.Context, now time.Time) bool {
	if ctx.Err() != nil {
		return true
	}
	dl, ok := ctx.Deadline()
	return ok && !now.Before(dl)
}

// pendingBatch is a burst of n requests of the schedule, from request k
// on.
type pendingBatch struct {
	n int
	k int64
}

// session sends paced requests on nc and reads their replies until ctx is
// done (then it waits up to stopGrace for the outstanding replies) or the
// connection fails. It closes nc and reports whether any request was
// acknowledged.
func (c *loadClient) session(ctx context.Context, nc net.Conn) bool {
	defer nc.Close()
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	c.ctr.up.Add(1)
	defer c.ctr.up.Add(-1)

	var outstanding atomic.Int64
	var stopping atomic.Bool
	fifo := make(chan pendingBatch, c.o.Window)
	readDone := make(chan struct{})
	writeDone := make(chan struct{})
	go func() {
		defer close(writeDone)
		c.write(ctx, nc, fifo, &outstanding, readDone)
		stopping.Store(true)
		// Wait for the replies to what was sent, within the grace period.
		if outstanding.Load() == 0 {
			nc.SetReadDeadline(time.Now())
		} else {
			nc.SetReadDeadline(time.Now().Add(stopGrace))
		}
	}()

	acked, busy := false, false
	rr := newReplyReader(nc)
	var cur pendingBatch
	left := 0
	var protoErr error
	var err error
	for err == nil {
		err = rr.read(func(line []byte) {
			if left == 0 {
				select {
				case cur = <-fifo:
					left = cur.n
				default:
					if hasPrefix(line, replyBusy) {
						// Refused at connect (the server's --max-conns):
						// busy, before any request was read.
						c.ctr.busy.Add(1)
						busy = true
						return
					}
					if protoErr == nil {
						protoErr = fmt.Errorf("reply to no request: %q", line)
					}
					return
				}
			}
			// Each request is timed from when it was due, so that a client
			// running late counts the wait (no coordinated omission).
			due := c.dueAt(cur.k + int64(cur.n-left))
			left--
			outstanding.Add(-1)
			switch {
			case hasPrefix(line, replyInserted):
				c.ctr.acked.Add(1)
				c.hist.Record(rr.at.Sub(due))
				acked = true
			case hasPrefix(line, replyBusy):
				c.ctr.busy.Add(1)
				busy = true
			default:
				c.ctr.errors.Add(1)
				c.log.Warn("request failed", "reply", string(line))
			}
		})
		if protoErr != nil {
			c.ctr.errors.Add(1)
			c.log.Error("protocol error, reconnecting", "err", protoErr)
			break
		}
		if stopping.Load() && outstanding.Load() == 0 {
			break
		}
	}
	stopped := stopping.Load()
	close(readDone)
	nc.Close() // unblocks a blocked write
	<-writeDone
	if n := outstanding.Load(); n > 0 {
		c.ctr.lost.Add(uint64(n))
	}
	switch {
	case busy:
		// The server closes the connection after a 503: counted as busy.
		c.log.Warn("server busy (503)")
	case err != nil && !stopped:
		c.ctr.errors.Add(1)
		if errors.Is(err, io.EOF) {
			c.log.Warn("server closed the connection")
		} else {
			c.log.Warn("connection lost", "err", unwrapOp(err))
		}
	}
	return acked
}

func hasPrefix(b, prefix []byte) bool {
	return len(b) >= len(prefix) && string(b[:len(prefix)]) == string(prefix)
}

// skip counts the requests before request n of the schedule that were
// neither sent nor skipped yet as skipped.
func (c *loadClient) skip(n int64) {
	if missed := n - c.k; missed > 0 {
		c.ctr.skipped.Add(uint64(missed))
		c.k += missed
	}
}

// dueAt returns when request k of the client's schedule is due.
func (c *loadClient) dueAt(k int64) time.Time {
	return c.start.Add(time.Duration(float64(k) / c.o.Rate * float64(time.Second)))
}

// write sends requests at the client's rate until ctx is done, the reader
// is done, or a write fails.
func (c *loadClient) write(ctx context.Context, nc net.Conn, fifo chan<- pendingBatch, outstanding *atomic.Int64, readDone <-chan struct{}) {
	rate := c.o.Rate
	// Due while disconnected (all but the last): skipped, not sent in a
	// burst now.
	c.skip(int64(time.Since(c.start).Seconds() * rate))
	var buf []byte
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			c.stopped = time.Now() // not after the wait for the last replies
			return
		case <-readDone:
			return
		case <-t.C:
		}
		now := time.Now() // one reading: a request due after the deadline is not sent
		if runOver(ctx, now) {
			c.stopped = now
			return
		}
		due := int64(now.Sub(c.start).Seconds()*rate) + 1 - c.k
		if due > 0 {
			room := int64(c.o.Window) - outstanding.Load()
			n := max(min(due, room), 0)
			c.ctr.skipped.Add(uint64(due - n)) // the oldest
			first := c.k + due - n
			c.k += due
			if n > 0 {
				buf = buf[:0]
				for range n {
					buf = c.appendRequest(buf)
				}
				outstanding.Add(n)
				fifo <- pendingBatch{n: int(n), k: first}
				// Counted before the write: the reader counts those a
				// failed write leaves unanswered as lost, and lost must
				// not exceed sent.
				c.ctr.sent.Add(uint64(n))
				nc.SetWriteDeadline(now.Add(10 * time.Second))
				if _, err := nc.Write(buf); err != nil {
					// The reader sees the broken connection too, and
					// counts what is outstanding as lost.
					return
				}
			}
		}
		next := c.dueAt(c.k)
		wait := time.Until(next)
		if rate > 1000 {
			wait = max(wait, time.Millisecond) // send in bursts rather than spin
		}
		t.Reset(max(wait, 0))
	}
}

// unwrapOp returns the error under a *net.OpError, which repeats the
// addresses.
func unwrapOp(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		return oe.Err
	}
	return err
}
