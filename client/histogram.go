package client

import (
	"math"
	"sync/atomic"
	"time"
)

// Histogram records a distribution of values and reports, per interval in
// which it observed something, these series:
//
//	name.count  number of observations
//	name.sum    their sum
//	name.min    the smallest
//	name.max    the largest
//	name.p50    one series per quantile in Options.Quantiles (p90, p99, p999...)
//
// Count, sum, min and max are exact. A quantile is the nearest-rank
// quantile (the ⌈q·n⌉-th smallest observation) to within a relative error
// of 1/128 (0.79%) for magnitudes between 2^-40 (about 1e-12) and 2^40
// (about 1e12); smaller magnitudes are reported as 0, larger ones as the
// interval's min or max. Non-finite observations (NaN, ±Inf) are ignored.
//
// Values are counted in log-linear buckets, 64 per power of two, allocated
// the first time a power of two is seen; afterwards Observe does not
// allocate and does not lock.
//
// A Histogram is made by Client.Histogram; its methods may be called
// concurrently.
type Histogram struct {
	name      string
	quantiles []float64
	names     []string // count, sum, min, max, then one per quantile

	hc      hotCold
	cells   [2]histCell
	invalid *atomic.Uint64 // the Client's count of ignored values
}

const (
	subBits    = 6 // 2^subBits buckets per power of two
	subCount   = 1 << subBits
	minExp     = -40 // smallest power of two bucketed; below is zero
	maxExp     = 40  // first power of two not bucketed; above is clamped
	octaves    = maxExp - minExp
	mantShift  = 52 - subBits
	expBias    = 1023
	maxRelErr  = 1.0 / (2 * subCount) // half a bucket's width relative to its low end
	zeroCutoff = 0x1p-40
	overCutoff = 0x1p40
)

type octave [subCount]atomic.Uint64

// sketch counts the magnitudes of one sign.
type sketch [octaves]atomic.Pointer[octave]

type histCell struct {
	done atomic.Uint64 // observations finished; also the count
	sum  atomic.Uint64
	min  atomic.Uint64
	max  atomic.Uint64
	zero atomic.Uint64 // |v| < 2^-40
	pos  sketch
	neg  sketch
	// |v| >= 2^40, reported as the interval's max or min.
	posOver atomic.Uint64
	negOver atomic.Uint64
}

func (c *histCell) reset() {
	c.sum.Store(0)
	c.min.Store(math.Float64bits(math.Inf(1)))
	c.max.Store(math.Float64bits(math.Inf(-1)))
	c.zero.Store(0)
	c.posOver.Store(0)
	c.negOver.Store(0)
	for _, s := range []*sketch{&c.pos, &c.neg} {
		for i := range s {
			if o := s[i].Load(); o != nil {
				for j := range o {
					o[j].Store(0)
				}
			}
		}
	}
	c.done.Store(0)
}

// bucket returns the octave and sub-bucket of magnitude a, which is at
// least 2^-40 and below 2^40.
func bucket(a float64) (oct, sub int) {
	b := math.Float64bits(a)
	e := int(b>>52) - expBias
	return e - minExp, int(b>>mantShift) & (subCount - 1)
}

// bucketMid returns the middle of bucket (oct, sub).
func bucketMid(oct, sub int) float64 {
	return math.Ldexp(1+(float64(sub)+0.5)/subCount, oct+minExp)
}

func (s *sketch) add(a float64) {
	oct, sub := bucket(a)
	o := s[oct].Load()
	if o == nil {
		o = new(octave)
		if !s[oct].CompareAndSwap(nil, o) {
			o = s[oct].Load()
		}
	}
	o[sub].Add(1)
}

// Observe records v. NaN and infinite values are ignored and counted in
// Stats.Invalid.
func (h *Histogram) Observe(v float64) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		h.invalid.Add(1)
		return
	}
	c := &h.cells[h.hc.start()]
	switch a := math.Abs(v); {
	case a < zeroCutoff:
		c.zero.Add(1)
	case a >= overCutoff && v > 0:
		c.posOver.Add(1)
	case a >= overCutoff:
		c.negOver.Add(1)
	case v > 0:
		c.pos.add(a)
	default:
		c.neg.add(a)
	}
	addFloat(&c.sum, v)
	for {
		old := c.min.Load()
		if v >= math.Float64frombits(old) || c.min.CompareAndSwap(old, math.Float64bits(v)) {
			break
		}
	}
	for {
		old := c.max.Load()
		if v <= math.Float64frombits(old) || c.max.CompareAndSwap(old, math.Float64bits(v)) {
			break
		}
	}
	c.done.Add(1)
}

func (h *Histogram) kind() string     { return "histogram" }
func (h *Histogram) series() []string { return h.names }

func (h *Histogram) collect(dst []point, ts int64) []point {
	idx, n := h.hc.flip()
	c := &h.cells[idx]
	waitDone(&c.done, n)
	if n == 0 {
		return dst
	}
	lo := math.Float64frombits(c.min.Load())
	hi := math.Float64frombits(c.max.Load())
	dst = append(dst,
		point{name: h.names[0], v: float64(n), ts: ts},
		point{name: h.names[1], v: math.Float64frombits(c.sum.Load()), ts: ts},
		point{name: h.names[2], v: lo, ts: ts},
		point{name: h.names[3], v: hi, ts: ts},
	)
	for i, q := range h.quantiles {
		v := c.quantile(q, n)
		v = math.Max(lo, math.Min(hi, v))
		dst = append(dst, point{name: h.names[4+i], v: v, ts: ts})
	}
	c.reset()
	return dst
}

// quantile returns the estimated ⌈q·n⌉-th smallest of the n observations.
func (c *histCell) quantile(q float64, n uint64) float64 {
	rank := nearestRank(q, n)
	// Out of range magnitudes return an infinity that the caller clamps
	// to the interval's min or max.
	seen := c.negOver.Load()
	if seen >= rank {
		return math.Inf(-1)
	}
	// Negative values, from the largest magnitude down.
	for oct := octaves - 1; oct >= 0; oct-- {
		o := c.neg[oct].Load()
		if o == nil {
			continue
		}
		for sub := subCount - 1; sub >= 0; sub-- {
			if seen += o[sub].Load(); seen >= rank {
				return -bucketMid(oct, sub)
			}
		}
	}
	if seen += c.zero.Load(); seen >= rank {
		return 0
	}
	for oct := 0; oct < octaves; oct++ {
		o := c.pos[oct].Load()
		if o == nil {
			continue
		}
		for sub := 0; sub < subCount; sub++ {
			if seen += o[sub].Load(); seen >= rank {
				return bucketMid(oct, sub)
			}
		}
	}
	return math.Inf(1) // the positive out of range magnitudes
}

// Timer is a Histogram of durations, in seconds: it reports the same
// series (name.count, name.sum, name.min, name.max, name.p50...).
//
// A Timer is made by Client.Timer; its methods may be called concurrently.
type Timer struct {
	h Histogram
}

// Observe records d.
func (t *Timer) Observe(d time.Duration) { t.h.Observe(d.Seconds()) }

// Since records the time elapsed since start:
//
//	defer timer.Since(time.Now())
func (t *Timer) Since(start time.Time) { t.h.Observe(time.Since(start).Seconds()) }

// Time calls f and records how long it took.
func (t *Timer) Time(f func()) {
	start := time.Now()
	defer t.Since(start)
	f()
}

func newHistogram(name string, quantiles []float64, invalid *atomic.Uint64) *Histogram {
	h := &Histogram{name: name, quantiles: quantiles, invalid: invalid}
	h.names = []string{name + ".count", name + ".sum", name + ".min", name + ".max"}
	for _, q := range quantiles {
		h.names = append(h.names, name+"."+quantileSuffix(q))
	}
	h.cells[0].reset()
	h.cells[1].reset()
	return h
}

// nearestRank returns ⌈q·n⌉, from 1 to n, with q·n taken as the decimal
// quantile means: a product that rounding put just above an integer
// (0.07·100 is 7.000000000000001 in floating point) counts as that
// integer, not the next.
func nearestRank(q float64, n uint64) uint64 {
	x := q * float64(n)
	rank := uint64(math.Ceil(x - x*1e-12))
	return min(max(rank, 1), n)
}
