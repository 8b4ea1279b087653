package client

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// DroppedMetric is the name (before Prefix and templates) of the meter in
// which a Client reports how many points it dropped since it started
// because its backlog was full. It is sent in every interval in which the
// total grew.
const DroppedMetric = "vigia.client.dropped"

// Client accumulates metrics per interval and delivers them to a server.
// Make one with New and stop it with Close. Its methods may be called
// concurrently.
type Client struct {
	opts   Options
	log    *slog.Logger
	name   func(string) string
	period int64 // ms
	clock  clock

	mu       sync.Mutex
	byName   map[string]entry  // by full name
	seriesBy map[string]string // series name -> full name of the metric reporting it
	metrics  []metric          // in creation order
	dropName string

	collectMu sync.Mutex
	curStart  int64 // start of the open interval, Unix ms
	scratch   []point
	onCollect func([]point) // tests only

	backlog *backlog
	sender  *sender
	invalid atomic.Uint64 // NaN or infinite updates ignored by meters and histograms

	closed      atomic.Bool
	closeOnce   sync.Once
	closeErr    error
	stopCollect chan struct{}
	collectDone chan struct{}
}

// entry is a registered metric and the value handed to the user.
type entry struct {
	m    metric
	user any
}

// New returns a Client configured by opts (nil for every default) and
// starts its collector and sender goroutines. It does not connect: the
// first delivery does, and failures only delay delivery.
func New(opts *Options) (*Client, error) {
	return newClient(opts, realClock{}, nil)
}

// newClient is New with the clock and, for tests, a function that sees the
// points of every collection.
func newClient(opts *Options, clk clock, onCollect func([]point)) (*Client, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("client options: %w", err)
	}
	c := &Client{
		opts:        o,
		log:         o.Logger.With("component", "vigia-client", "addr", o.Addr, "protocol", o.Protocol.String()),
		name:        newNamer(o.Prefix, o.Substitutions),
		period:      o.Period.Milliseconds(),
		clock:       clk,
		byName:      make(map[string]entry),
		seriesBy:    make(map[string]string),
		backlog:     newBacklog(o.MaxPoints),
		stopCollect: make(chan struct{}),
		collectDone: make(chan struct{}),
		onCollect:   onCollect,
	}
	c.dropName = c.name(DroppedMetric)
	if err := validName(c.dropName); err != nil {
		return nil, fmt.Errorf("client options: prefix: %w", err)
	}
	c.curStart = c.intervalStart(clk.Now())
	c.sender = newSender(c)
	go c.sender.run()
	go c.collectLoop()
	return c, nil
}

// intervalStart returns the start of the interval holding t, Unix ms.
func (c *Client) intervalStart(t time.Time) int64 {
	ms := t.UnixMilli()
	s := ms - ms%c.period
	if ms%c.period < 0 {
		s -= c.period
	}
	return s
}

// Period returns the length of an interval.
func (c *Client) Period() time.Duration { return c.opts.Period }

// register returns the metric named name (before templates) made by mk,
// or the existing one if it was made before with the same kind.
func (c *Client) register(name, kind string, mk func(full string) entry) any {
	if name == "" {
		panic("vigia client: metric name is empty")
	}
	full := c.name(name)
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byName[full]; ok {
		if e.m.kind() != kind {
			panic(fmt.Sprintf("vigia client: metric %q is a %s, not a %s", full, e.m.kind(), kind))
		}
		return e.user
	}
	e := mk(full)
	for _, s := range e.m.series() {
		if err := validName(s); err != nil {
			panic("vigia client: " + err.Error())
		}
		if s == c.dropName {
			panic(fmt.Sprintf("vigia client: metric name %q is reserved", s))
		}
		if other, ok := c.seriesBy[s]; ok {
			// Two metrics writing one series would mix their points.
			panic(fmt.Sprintf("vigia client: %s %q reports series %q, which metric %q reports already", kind, full, s, other))
		}
	}
	for _, s := range e.m.series() {
		c.seriesBy[s] = full
	}
	c.byName[full] = e
	c.metrics = append(c.metrics, e.m)
	return e.user
}

// Counter returns the counter named name, making it on first use. Prefix
// and templates are applied to name once, here. It panics if name is not
// a valid series name (1 to 255 bytes, no whitespace or control
// characters) or names a metric of another type.
func (c *Client) Counter(name string) *Counter {
	return c.register(name, "counter", func(full string) entry {
		m := &Counter{name: full}
		return entry{m, m}
	}).(*Counter)
}

// Meter returns the meter named name, making it on first use; see Counter
// for names and panics.
func (c *Client) Meter(name string) *Meter {
	return c.register(name, "meter", func(full string) entry {
		m := &Meter{name: full, invalid: &c.invalid}
		return entry{m, m}
	}).(*Meter)
}

// Gauge returns the gauge named name in Options.GaugeMode, making it on
// first use; see Counter for names and panics.
func (c *Client) Gauge(name string) *Gauge { return c.GaugeWithMode(name, c.opts.GaugeMode) }

// GaugeWithMode returns the gauge named name, making it in mode on first
// use; an existing gauge keeps the mode it was made with. See Counter for
// names and panics.
func (c *Client) GaugeWithMode(name string, mode GaugeMode) *Gauge {
	return c.register(name, "gauge", func(full string) entry {
		m := &Gauge{name: full, mode: mode}
		m.bits.Store(unset)
		return entry{m, m}
	}).(*Gauge)
}

// Histogram returns the histogram named name, making it on first use. It
// reports the series name.count, name.sum, name.min, name.max and one per
// quantile in Options.Quantiles (name.p50, name.p99...). See Counter for
// names and panics.
func (c *Client) Histogram(name string) *Histogram {
	return c.register(name, "histogram", func(full string) entry {
		h := newHistogram(full, c.opts.Quantiles, &c.invalid)
		return entry{h, h}
	}).(*Histogram)
}

// Timer returns the timer named name, making it on first use. It reports
// the series of a Histogram of seconds. See Counter for names and panics.
func (c *Client) Timer(name string) *Timer {
	return c.register(name, "timer", func(full string) entry {
		t := &Timer{h: *newHistogram(full, c.opts.Quantiles, &c.invalid)}
		return entry{timerMetric{&t.h}, t}
	}).(*Timer)
}

// timerMetric collects a Timer's histogram under its own kind, so that a
// name cannot be both.
type timerMetric struct{ *Histogram }

func (timerMetric) kind() string { return "timer" }

// Register samples f once per period, at the close of each interval, and
// reports its value as a point of that interval according to kind. f is
// called from the collector goroutine and must return quickly. Registering
// a name again replaces nothing and returns at once. It panics if f is nil;
// see Counter for names and other panics.
func (c *Client) Register(name string, f func() float64, kind Kind) {
	if kind < KindGauge || kind > KindCounter {
		panic(fmt.Sprintf("vigia client: Register %q: unknown kind %d", name, int(kind)))
	}
	if f == nil {
		// Here rather than in the collector, where it would crash the
		// program at the end of the interval.
		panic(fmt.Sprintf("vigia client: Register %q: nil function", name))
	}
	c.register(name, "sampled", func(full string) entry {
		s := &sampled{name: full, f: f, k: kind}
		return entry{s, s}
	})
}

// sampled is a metric read from a function at each collection.
type sampled struct {
	name string
	f    func() float64
	k    Kind
	prev float64
	seen bool
}

func (s *sampled) kind() string     { return "sampled" }
func (s *sampled) series() []string { return []string{s.name} }
func (s *sampled) collect(dst []point, ts int64) []point {
	v := s.f()
	if s.k != KindCounter || math.IsNaN(v) || math.IsInf(v, 0) {
		// A value that is not finite goes on to be counted as invalid;
		// a counter keeps its baseline for the next finite total.
		return append(dst, point{name: s.name, v: v, ts: ts})
	}
	prev, seen := s.prev, s.seen
	s.prev, s.seen = v, true
	inc := v - prev
	if v < prev {
		// A decrease is a reset, as Prometheus' rate() takes it: the
		// total started again from zero.
		inc = v
	}
	if !seen || inc == 0 {
		return dst
	}
	return append(dst, point{name: s.name, v: inc, ts: ts})
}

// seriesOf returns the set of series names reported for name (before
// templates): a histogram's or timer's series, or the name itself.
func (c *Client) seriesOf(name string) map[string]bool {
	full := c.name(name)
	set := map[string]bool{full: true}
	c.mu.Lock()
	if e, ok := c.byName[full]; ok {
		for _, s := range e.m.series() {
			set[s] = true
		}
	}
	c.mu.Unlock()
	return set
}

// Get returns copies of the points held for the metric named name (before
// templates, as given to Counter and the others), oldest first: the closed
// intervals not yet acknowledged by the server. For a histogram or timer
// it returns the points of all its series. The open interval is not a
// point yet and is not included.
func (c *Client) Get(name string) []Point {
	set := c.seriesOf(name)
	return c.backlog.snapshot(func(s string) bool { return set[s] })
}

// Delete drops the points held for the metric named name, as Get selects
// them, and returns how many it dropped. The metric itself stays
// registered and keeps accumulating.
func (c *Client) Delete(name string) int {
	set := c.seriesOf(name)
	return c.backlog.remove(func(s string) bool { return set[s] })
}

// Snapshot returns copies of all the points held, oldest first.
func (c *Client) Snapshot() []Point { return c.backlog.snapshot(nil) }

// Stats are a Client's counters since New.
type Stats struct {
	Held      int    // points held, waiting for delivery
	Delivered uint64 // points acknowledged (Native) or written (Graphite)
	Rejected  uint64 // points the server refused (400 or 404); not retried
	Dropped   uint64 // points dropped because the backlog was full
	Invalid   uint64 // NaN or infinite values: points never held, Meter updates and observations ignored
	Failures  uint64 // failed delivery attempts
	// Unanswered counts the LOG lines written on connections that failed
	// before their reply arrived. They are sent again; those the server
	// had stored are then stored twice, so this bounds the duplicates.
	Unanswered uint64
	LastError  error // the last delivery error, nil after a success
}

// Stats returns the Client's counters.
func (c *Client) Stats() Stats {
	dropped, invalid := c.backlog.counts()
	st := Stats{Held: c.backlog.len(), Dropped: dropped, Invalid: invalid + c.invalid.Load()}
	c.sender.stats(&st)
	return st
}

// collectLoop closes each interval at its end.
func (c *Client) collectLoop() {
	defer close(c.collectDone)
	for {
		c.collectMu.Lock()
		start := c.curStart
		c.collectMu.Unlock()
		wait := time.Duration(start+c.period-c.clock.Now().UnixMilli()) * time.Millisecond
		select {
		case <-c.clock.After(wait):
		case <-c.stopCollect:
			return
		}
		c.tick(start)
		c.sender.kick()
	}
}

// tick closes the interval that started at start, at its end. A Flush made
// after that end, before the tick, closed it already and opened the
// interval holding the Flush's time; the tick leaves that one open until
// its own end.
func (c *Client) tick(start int64) {
	c.collectMu.Lock()
	defer c.collectMu.Unlock()
	if c.curStart == start {
		c.collectLocked(true)
	}
}

// collect collects early, for a Flush or Close: the interval stays open,
// so later updates in it make a second point with the same timestamp.
func (c *Client) collect() {
	c.collectMu.Lock()
	defer c.collectMu.Unlock()
	c.collectLocked(false)
}

// collectLocked closes the open interval: every metric's accumulated
// values become points stamped with the interval's start. At a period
// boundary (tick) the next interval opens. Callers hold collectMu.
func (c *Client) collectLocked(tick bool) {
	c.mu.Lock()
	metrics := c.metrics
	c.mu.Unlock()

	ts := c.curStart
	now := c.intervalStart(c.clock.Now())
	if tick {
		c.curStart = max(now, ts+c.period)
	} else {
		c.curStart = max(now, ts)
	}
	pts := c.scratch[:0]
	for _, m := range metrics {
		pts = m.collect(pts, ts)
	}
	if c.onCollect != nil {
		c.onCollect(pts)
	}
	c.backlog.push(pts, c.dropName, ts)
	clear(pts)
	if cap(pts) <= 1<<16 {
		c.scratch = pts[:0]
	}
}

// Flush closes the open interval and delivers every point held, retrying
// until it succeeds or ctx is done. It returns nil once all of them were
// delivered (or refused by the server, see Stats.Rejected), else an error
// wrapping ctx's error and the last delivery error.
func (c *Client) Flush(ctx context.Context) error {
	if c.closed.Load() {
		return ErrClosed
	}
	c.collect()
	return c.sender.flush(ctx, c.backlog.lastSeq())
}

// Close stops the Client: it closes the open interval, delivers what is
// held as Flush does, stops its goroutines and closes its connection.
// Points still held when ctx is done are lost, and Close returns an error
// saying how many. Updates after Close are ignored. Close may be called
// more than once; later calls return the first result.
func (c *Client) Close(ctx context.Context) error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		close(c.stopCollect)
		<-c.collectDone
		c.collect()
		err := c.sender.flush(ctx, c.backlog.lastSeq())
		c.sender.stop()
		if err != nil {
			c.closeErr = fmt.Errorf("close: %d points not delivered: %w", c.backlog.len(), err)
		}
	})
	return c.closeErr
}
