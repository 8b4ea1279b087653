package client

import (
	"math"
	"runtime"
	"sync/atomic"
	"time"
)

// Point is one value of one series for one interval.
type Point struct {
	// Name is the series name, after Prefix and templates.
	Name string
	// Value is the interval's value.
	Value float64
	// Time is the start of the interval the value belongs to.
	Time time.Time
}

// point is a Point as held in the backlog: ts is the interval's start in
// Unix milliseconds, seq orders points by when they were collected.
type point struct {
	name string
	v    float64
	ts   int64
	seq  uint64
}

func (p *point) public() Point {
	return Point{Name: p.name, Value: p.v, Time: time.UnixMilli(p.ts)}
}

// metric is what the collector closes at the end of an interval.
type metric interface {
	// kind names the metric's type in panics and docs.
	kind() string
	// series returns the names the metric reports under.
	series() []string
	// collect appends the points of the closing interval, stamped ts, and
	// resets the interval's accumulators. Calls are serialized.
	collect(dst []point, ts int64) []point
}

// addFloat adds delta to the float64 whose bits a holds.
func addFloat(a *atomic.Uint64, delta float64) {
	for {
		old := a.Load()
		if a.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+delta)) {
			return
		}
	}
}

// Counter counts events: it reports, per interval, the sum of what was
// added during the interval. An interval whose sum is zero yields no point.
//
// A Counter is made by Client.Counter; its methods may be called
// concurrently and neither allocate nor lock.
type Counter struct {
	// One atomic add per update. Striping the counter over cache lines
	// (as Java's LongAdder) was tried: on the 2-core test machine it made
	// the single-goroutine case 2-3 times slower and gave no measurable
	// gain with 2 goroutines contending, so it was left out.
	ints atomic.Int64  // integral deltas
	frac atomic.Uint64 // float64 bits of the other deltas
	name string
}

// Inc adds 1.
func (c *Counter) Inc() { c.ints.Add(1) }

// Add adds delta, which may be fractional or negative.
func (c *Counter) Add(delta float64) {
	// Integral deltas, the common case, take one atomic add; others a
	// compare-and-swap loop on a float. Deltas of 2^32 and more go to the
	// float, so that the integer cannot overflow: that would take 2^31
	// additions within one interval.
	if i := int64(delta); float64(i) == delta && -1<<32 < i && i < 1<<32 {
		c.ints.Add(i)
		return
	}
	addFloat(&c.frac, delta)
}

// Value returns the sum added in the current, still open, interval.
func (c *Counter) Value() float64 {
	return float64(c.ints.Load()) + math.Float64frombits(c.frac.Load())
}

func (c *Counter) kind() string     { return "counter" }
func (c *Counter) series() []string { return []string{c.name} }
func (c *Counter) collect(dst []point, ts int64) []point {
	v := float64(c.ints.Swap(0)) + math.Float64frombits(c.frac.Swap(0))
	if v == 0 {
		return dst
	}
	return append(dst, point{name: c.name, v: v, ts: ts})
}

// Meter holds a monotonically growing total, such as bytes written since
// start, and reports it as is for every interval in which it was updated.
// A NaN or infinite Set or Add is ignored, as it would spoil the total for
// good, and counted in Stats.Invalid.
//
// A Meter is made by Client.Meter; its methods may be called concurrently
// and neither allocate nor lock.
type Meter struct {
	bits    atomic.Uint64
	dirty   atomic.Bool
	name    string
	invalid *atomic.Uint64 // the Client's count of ignored updates
}

// Set sets the total.
func (m *Meter) Set(total float64) {
	if math.IsNaN(total) || math.IsInf(total, 0) {
		m.invalid.Add(1)
		return
	}
	m.bits.Store(math.Float64bits(total))
	markDirty(&m.dirty)
}

// Add adds delta to the total.
func (m *Meter) Add(delta float64) {
	if math.IsNaN(delta) || math.IsInf(delta, 0) {
		m.invalid.Add(1)
		return
	}
	addFloat(&m.bits, delta)
	markDirty(&m.dirty)
}

// Value returns the total.
func (m *Meter) Value() float64 { return math.Float64frombits(m.bits.Load()) }

func (m *Meter) kind() string     { return "meter" }
func (m *Meter) series() []string { return []string{m.name} }
func (m *Meter) collect(dst []point, ts int64) []point {
	if !m.dirty.Swap(false) {
		return dst
	}
	return append(dst, point{name: m.name, v: m.Value(), ts: ts})
}

// markDirty sets d, writing only when needed so that concurrent updaters
// mostly share the cache line.
func markDirty(d *atomic.Bool) {
	if !d.Load() {
		d.Store(true)
	}
}

// Gauge reports, per interval in which it was set, the last value set or
// the mean of the values set (see GaugeMode). Every Set counts in exactly
// one interval: the one open when it happened.
//
// A Gauge is made by Client.Gauge or Client.GaugeWithMode; its methods may
// be called concurrently and neither allocate nor lock.
type Gauge struct {
	mode GaugeMode
	name string

	// GaugeLast: the value's bits, or unset.
	bits atomic.Uint64

	// GaugeMean: a hot and a cold cell, see hotCold.
	hc   hotCold
	mean [2]meanCell
}

// unset marks a GaugeLast not set in the open interval. It is a NaN with a
// payload arithmetic does not produce; a Set of exactly this NaN counts as
// no Set, which loses nothing as a NaN is never reported.
const unset = 0x7ff8_dead_beef_0001

type meanCell struct {
	done atomic.Uint64
	sum  atomic.Uint64
}

// Set records v.
func (g *Gauge) Set(v float64) {
	if g.mode == GaugeLast {
		// One store: a Set costs a single write to the gauge's cache
		// line, however many goroutines set it.
		g.bits.Store(math.Float64bits(v))
		return
	}
	c := &g.mean[g.hc.start()]
	addFloat(&c.sum, v)
	c.done.Add(1)
}

func (g *Gauge) kind() string     { return "gauge" }
func (g *Gauge) series() []string { return []string{g.name} }
func (g *Gauge) collect(dst []point, ts int64) []point {
	if g.mode == GaugeLast {
		b := g.bits.Swap(unset)
		if b == unset {
			return dst
		}
		return append(dst, point{name: g.name, v: math.Float64frombits(b), ts: ts})
	}
	idx, n := g.hc.flip()
	c := &g.mean[idx]
	waitDone(&c.done, n)
	if n == 0 {
		return dst
	}
	sum := math.Float64frombits(c.sum.Swap(0))
	c.done.Store(0)
	return append(dst, point{name: g.name, v: sum / float64(n), ts: ts})
}

// hotCold lets many updaters write a multi-word cell without a lock while
// the collector closes intervals, as Prometheus' histograms do. Updaters
// count themselves in and write into the hot cell; the collector flips hot
// and cold, and waits until every updater that entered the now cold cell
// is done before reading and resetting it.
type hotCold struct {
	// Bit 63 is the index of the hot cell, the other bits count the
	// updates started since the last flip.
	countAndHot atomic.Uint64
}

// start counts an update in and returns the index of the cell to write.
// The caller increments that cell's done counter when finished.
func (h *hotCold) start() uint64 { return h.countAndHot.Add(1) >> 63 }

// flip makes the cold cell hot and returns the index of the cell that was
// hot and the number of updates started in it. Only one goroutine may
// flip at a time.
func (h *hotCold) flip() (cold, started uint64) {
	hot := h.countAndHot.Load() >> 63
	n := h.countAndHot.Swap((hot ^ 1) << 63)
	return n >> 63, n & (1<<63 - 1)
}

// waitDone waits until done reaches n: every update started in a cold cell
// has finished. They are a few instructions away, so this yields rather
// than sleeps.
func waitDone(done *atomic.Uint64, n uint64) {
	for done.Load() != n {
		runtime.Gosched()
	}
}
