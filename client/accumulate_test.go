package client

import (
	"context"
	"log/slog"
	"math"
	"math/big"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"
)

// quietLogger keeps the expected delivery failures out of test output.
var quietLogger = slog.New(slog.DiscardHandler)

// t0 is a Unix time (ms) that is a multiple of every period used here.
const t0 = 1_700_000_000_000

// newManualClient returns a Client whose intervals close only when the
// test calls collect, with its clock at t0.
func newManualClient(t *testing.T, opts *Options) (*Client, *manualClock) {
	t.Helper()
	clk := &manualClock{t: time.UnixMilli(t0)}
	o := Options{Period: 10 * time.Second, Addr: "127.0.0.1:1"}
	if opts != nil {
		o = *opts
		if o.Addr == "" {
			o.Addr = "127.0.0.1:1"
		}
	}
	if o.Logger == nil {
		o.Logger = quietLogger
	}
	c, err := newClient(&o, clk, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		defer cancel()
		c.Close(ctx)
	})
	return c, clk
}

// at returns the time ms milliseconds after t0.
func at(ms int64) time.Time { return time.UnixMilli(t0 + ms) }

// tickNow runs the collector's tick for the open interval, as its timer
// does at the interval's end.
func tickNow(c *Client) {
	c.collectMu.Lock()
	start := c.curStart
	c.collectMu.Unlock()
	c.tick(start)
}

type pt struct {
	name string
	v    float64
	ms   int64 // after t0
}

func points(ps []Point) []pt {
	out := make([]pt, len(ps))
	for i, p := range ps {
		out[i] = pt{p.Name, p.Value, p.Time.UnixMilli() - t0}
	}
	return out
}

func TestIntervalBucketing(t *testing.T) {
	c, clk := newManualClient(t, nil)
	ctr := c.Counter("req")
	step := func(now int64, tick bool, updates ...float64) {
		for _, u := range updates {
			ctr.Add(u)
		}
		clk.set(at(now))
		if tick {
			tickNow(c)
		} else {
			c.collect() // as a Flush does
		}
	}
	clk.set(at(1000))
	step(10_003, true, 1, 2.5)      // interval [0,10s) closes 3 ms late
	step(35_000, true, 4)           // a late tick: the point keeps its interval's start
	step(40_000, true)              // nothing added: no point
	step(41_000, false, 1)          // a Flush closes [40s,50s) early...
	step(50_000, true, 2)           // ...and the rest of it makes a second point
	step(60_000, true, -1, 0.25, 1) // fractional and negative deltas
	want := []pt{
		{"req", 3.5, 0},
		{"req", 4, 10_000},
		{"req", 1, 40_000},
		{"req", 2, 40_000},
		{"req", 0.25, 50_000},
	}
	if got := points(c.Get("req")); !slices.Equal(got, want) {
		t.Errorf("points\n got %v\nwant %v", got, want)
	}
}

// TestFlushBetweenBoundaryAndTick: a Flush made just after an interval's
// end, before the collector's timer fires, closes that interval; the late
// tick then leaves the next interval open, so its updates keep their own
// start instead of being stamped one period later.
func TestFlushBetweenBoundaryAndTick(t *testing.T) {
	c, clk := newManualClient(t, nil)
	ctr := c.Counter("req")
	ctr.Add(1)
	clk.set(at(10_001)) // [0,10s) ended; the timer has not fired yet
	c.collect()         // a Flush
	ctr.Add(2)
	c.tick(t0) // the timer set for the end of [0,10s)
	ctr.Add(4)
	clk.set(at(20_000))
	c.tick(t0 + 10_000)
	want := []pt{{"req", 1, 0}, {"req", 6, 10_000}}
	if got := points(c.Get("req")); !slices.Equal(got, want) {
		t.Errorf("points\n got %v\nwant %v", got, want)
	}
}

// TestCounterLargeDeltas: integral deltas whose sum exceeds an int64
// still add up.
func TestCounterLargeDeltas(t *testing.T) {
	c, clk := newManualClient(t, nil)
	ctr := c.Counter("bytes")
	ctr.Add(5e18)
	ctr.Add(5e18)
	ctr.Add(1)
	ctr.Add(-1 << 40)
	clk.set(at(10_000))
	tickNow(c)
	want := []pt{{"bytes", 1e19 + 1 - 1<<40, 0}}
	if got := points(c.Get("bytes")); !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestGaugeModes(t *testing.T) {
	tests := []struct {
		name string
		mode GaugeMode
		sets [][]float64 // per interval
		want []pt
	}{
		{"last", GaugeLast, [][]float64{{3, 1, 2}, {}, {7}}, []pt{{"g", 2, 0}, {"g", 7, 20_000}}},
		{"mean", GaugeMean, [][]float64{{3, 1, 2}, {}, {7, -1}}, []pt{{"g", 2, 0}, {"g", 3, 20_000}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, clk := newManualClient(t, &Options{Period: 10 * time.Second, GaugeMode: tt.mode})
			g := c.Gauge("g")
			for i, vs := range tt.sets {
				for _, v := range vs {
					g.Set(v)
				}
				clk.set(at(int64(i+1) * 10_000))
				tickNow(c)
			}
			if got := points(c.Get("g")); !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestGaugeMeanConcurrent(t *testing.T) {
	// Every Set counts in exactly one interval, in both its sum and its
	// count, however intervals close meanwhile.
	c, clk := newManualClient(t, nil)
	g := c.GaugeWithMode("g", GaugeMean)
	ctr := c.Counter("n")
	const workers, per = 4, 20_000
	done := make(chan struct{})
	for w := 0; w < workers; w++ {
		go func() {
			for i := 0; i < per; i++ {
				g.Set(1)
				ctr.Inc()
			}
			done <- struct{}{}
		}()
	}
	var ms int64
	for finished := 0; finished < workers; {
		select {
		case <-done:
			finished++
		default:
		}
		ms += 10_000
		clk.set(at(ms))
		tickNow(c)
	}
	ms += 10_000
	clk.set(at(ms))
	tickNow(c)
	// A Set counted in one interval and summed in another would make a
	// mean other than 1.
	for _, p := range c.Get("g") {
		if p.Value != 1 {
			t.Fatalf("mean %v, want 1", p.Value)
		}
	}
	var n float64
	for _, p := range c.Get("n") {
		n += p.Value
	}
	if n != workers*per {
		t.Fatalf("counter total %v, want %v", n, workers*per)
	}
	hc := g.hc.countAndHot.Load() & (1<<63 - 1)
	if hc != 0 {
		t.Fatalf("%d updates started after the last collection", hc)
	}
}

func TestMeter(t *testing.T) {
	c, clk := newManualClient(t, nil)
	m := c.Meter("bytes")
	m.Add(10)
	m.Add(5)
	clk.set(at(10_000))
	tickNow(c)
	clk.set(at(20_000))
	tickNow(c) // not updated: no point
	m.Set(100)
	clk.set(at(30_000))
	tickNow(c)
	want := []pt{{"bytes", 15, 0}, {"bytes", 100, 20_000}}
	if got := points(c.Get("bytes")); !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// TestMeterNonFinite: a NaN or infinite Set or Add is ignored and counted
// once in Stats.Invalid; the total and later points are unharmed.
func TestMeterNonFinite(t *testing.T) {
	c, clk := newManualClient(t, nil)
	m := c.Meter("bytes")
	step := func(ms int64, update func()) {
		update()
		clk.set(at(ms))
		tickNow(c)
	}
	step(10_000, func() { m.Add(10); m.Add(math.NaN()); m.Add(math.Inf(1)) })
	step(20_000, func() { m.Add(5) })
	step(30_000, func() { m.Set(math.NaN()) }) // nothing valid: no point
	step(40_000, func() { m.Add(1) })
	want := []pt{{"bytes", 10, 0}, {"bytes", 15, 10_000}, {"bytes", 16, 30_000}}
	if got := points(c.Get("bytes")); !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if n := c.Stats().Invalid; n != 3 {
		t.Errorf("Stats().Invalid = %d, want 3, one per NaN or infinite update", n)
	}
}

// exactQuantile is the nearest-rank quantile: the ⌈q·n⌉-th smallest, with
// q the decimal its shortest representation spells, in exact arithmetic.
func exactQuantile(sorted []float64, q float64) float64 {
	x, _ := new(big.Rat).SetString(strconv.FormatFloat(q, 'g', -1, 64))
	x.Mul(x, new(big.Rat).SetInt64(int64(len(sorted))))
	r := new(big.Int).Quo(x.Num(), x.Denom()) // floor, x >= 0
	if !x.IsInt() {
		r.Add(r, big.NewInt(1))
	}
	return sorted[max(int(r.Int64()), 1)-1]
}

func TestHistogramQuantiles(t *testing.T) {
	qs := []float64{0.01, 0.07, 0.25, 0.28, 0.5, 0.55, 0.9, 0.99, 0.999, 1}
	rng := rand.New(rand.NewPCG(1, 2))
	tests := []struct {
		name string
		gen  func() float64
	}{
		{"lognormal latencies", func() float64 { return math.Exp(rng.NormFloat64()*2 - 5) }},
		{"uniform with negatives", func() float64 { return rng.Float64()*2000 - 1000 }},
		{"integers with zeros", func() float64 { return float64(rng.IntN(5)) }},
		{"wide range", func() float64 { return math.Pow(10, rng.Float64()*20-10) }},
		{"constant", func() float64 { return 42.42 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, clk := newManualClient(t, &Options{Quantiles: qs})
			h := c.Histogram("h")
			vals := make([]float64, 50_000)
			var sum float64
			for i := range vals {
				vals[i] = tt.gen()
				sum += vals[i]
				h.Observe(vals[i])
			}
			h.Observe(math.NaN()) // ignored
			h.Observe(math.Inf(1))
			clk.set(at(10_000))
			tickNow(c)
			slices.Sort(vals)
			got := map[string]float64{}
			for _, p := range c.Get("h") {
				got[p.Name] = p.Value
			}
			if len(got) != 4+len(qs) {
				t.Fatalf("series %v", got)
			}
			if got["h.count"] != float64(len(vals)) || got["h.min"] != vals[0] || got["h.max"] != vals[len(vals)-1] {
				t.Errorf("count %v min %v max %v, want %v %v %v",
					got["h.count"], got["h.min"], got["h.max"], len(vals), vals[0], vals[len(vals)-1])
			}
			if d := math.Abs(got["h.sum"] - sum); d > 1e-9*math.Max(1, math.Abs(sum)) {
				t.Errorf("sum %v, want %v", got["h.sum"], sum)
			}
			for _, q := range qs {
				name := "h." + quantileSuffix(q)
				want := exactQuantile(vals, q)
				if err := math.Abs(got[name] - want); err > maxRelErr*math.Abs(want) {
					t.Errorf("%s = %v, exact %v: relative error %.4f%% above %.4f%%",
						name, got[name], want, 100*err/math.Abs(want), 100*maxRelErr)
				}
			}
		})
	}
}

// TestHistogramQuantileRank: q·n just above an integer by rounding alone
// (0.07·100) takes that rank, not the next one.
func TestHistogramQuantileRank(t *testing.T) {
	qs := []float64{0.07, 0.28, 0.55, 0.57}
	c, clk := newManualClient(t, &Options{Quantiles: qs})
	h := c.Histogram("h")
	for i := 1; i <= 100; i++ {
		h.Observe(float64(i))
	}
	clk.set(at(10_000))
	tickNow(c)
	got := map[string]float64{}
	for _, p := range c.Get("h") {
		got[p.Name] = p.Value
	}
	for _, q := range qs {
		want := math.Round(q * 100) // the rank, and the value of that rank
		if v := got["h."+quantileSuffix(q)]; math.Abs(v-want) > maxRelErr*want {
			t.Errorf("q %v: %v, want about %v", q, v, want)
		}
	}
}

// TestHistogramOutOfRange: magnitudes of 2^40 and more are reported as
// the interval's max (or min, when negative), whatever else it observed,
// and magnitudes just below 2^40 keep their accuracy.
func TestHistogramOutOfRange(t *testing.T) {
	tests := []struct {
		name string
		vals []float64
		want float64 // p50
	}{
		{"large", []float64{1, 1e13, 2e13}, 2e13},
		{"large negative", []float64{-3e13, -1e13, 1}, -3e13},
		{"just below 2^40", []float64{1.095e12, 1.095e12, 5e13}, 1.095e12},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, clk := newManualClient(t, &Options{Quantiles: []float64{0.5, 1}})
			h := c.Histogram("h")
			for _, v := range tt.vals {
				h.Observe(v)
			}
			clk.set(at(10_000))
			tickNow(c)
			got := map[string]float64{}
			for _, p := range c.Get("h") {
				got[p.Name] = p.Value
			}
			if p50 := got["h.p50"]; math.Abs(p50-tt.want) > maxRelErr*math.Abs(tt.want) {
				t.Errorf("p50 of %v = %v, want %v", tt.vals, p50, tt.want)
			}
			if max := slices.Max(tt.vals); got["h.p100"] != max {
				t.Errorf("p100 of %v = %v, want the max %v", tt.vals, got["h.p100"], max)
			}
		})
	}
}

func TestHistogramIdleAndReset(t *testing.T) {
	c, clk := newManualClient(t, &Options{Quantiles: []float64{0.5}})
	h := c.Histogram("h")
	h.Observe(1000)
	clk.set(at(10_000))
	tickNow(c)
	clk.set(at(20_000))
	tickNow(c) // idle: no points
	h.Observe(2)
	clk.set(at(30_000))
	tickNow(c)
	var got []pt
	for _, p := range points(c.Get("h")) {
		if p.name == "h.max" || p.name == "h.p50" || p.name == "h.count" {
			got = append(got, p)
		}
	}
	want := []pt{{"h.count", 1, 0}, {"h.max", 1000, 0}, {"h.p50", 1000, 0},
		{"h.count", 1, 20_000}, {"h.max", 2, 20_000}, {"h.p50", 2, 20_000}}
	if !slices.Equal(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
}

func TestTimer(t *testing.T) {
	c, clk := newManualClient(t, &Options{Quantiles: []float64{0.5}})
	tm := c.Timer("op")
	tm.Observe(1500 * time.Millisecond)
	tm.Time(func() { time.Sleep(2 * time.Millisecond) })
	tm.Since(time.Now().Add(-3 * time.Second))
	clk.set(at(10_000))
	tickNow(c)
	got := map[string]float64{}
	for _, p := range c.Get("op") {
		got[p.Name] = p.Value
	}
	if got["op.count"] != 3 || got["op.min"] < 0.002 || got["op.min"] > 1 || got["op.max"] < 3 ||
		math.Abs(got["op.p50"]-1.5) > 1.5*maxRelErr {
		t.Errorf("timer series %v", got)
	}
}

func TestRegister(t *testing.T) {
	c, clk := newManualClient(t, nil)
	var total float64
	c.Register("temp", func() float64 { return 21.5 }, KindGauge)
	c.Register("total", func() float64 { return total }, KindMeter)
	c.Register("delta", func() float64 { return total }, KindCounter)
	for i, add := range []float64{5, 0, 7} {
		total += add
		clk.set(at(int64(i+1) * 10_000))
		tickNow(c)
	}
	tests := []struct {
		name string
		want []pt
	}{
		{"temp", []pt{{"temp", 21.5, 0}, {"temp", 21.5, 10_000}, {"temp", 21.5, 20_000}}},
		{"total", []pt{{"total", 5, 0}, {"total", 5, 10_000}, {"total", 12, 20_000}}},
		// The first sample is the baseline; no increase, no point.
		{"delta", []pt{{"delta", 7, 20_000}}},
	}
	for _, tt := range tests {
		if got := points(c.Get(tt.name)); !slices.Equal(got, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestRegisterCounterReset: a total that goes down was reset, as
// Prometheus' rate() assumes: the increase is the new total, from zero.
func TestRegisterCounterReset(t *testing.T) {
	c, clk := newManualClient(t, nil)
	var total float64
	c.Register("served", func() float64 { return total }, KindCounter)
	for i, v := range []float64{10, 25, 3, 3, 8, 0, 4, math.NaN(), 9} {
		total = v
		clk.set(at(int64(i+1) * 10_000))
		tickNow(c)
	}
	want := []pt{
		{"served", 15, 10_000},
		{"served", 3, 20_000}, // reset: 25 -> 3
		{"served", 5, 40_000},
		// 8 -> 0: a reset with no increase yet, no point
		{"served", 4, 60_000},
		// NaN is invalid and leaves the baseline: 4 -> 9.
		{"served", 5, 80_000},
	}
	if got := points(c.Get("served")); !slices.Equal(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
	if inv := c.Stats().Invalid; inv != 1 {
		t.Errorf("Invalid %d after one NaN total, want 1", inv)
	}
}

func TestRuntimeMetrics(t *testing.T) {
	c, clk := newManualClient(t, nil)
	c.RuntimeMetrics()
	c.RuntimeMetrics()
	clk.set(at(10_000))
	tickNow(c)
	runtime.GC()
	clk.set(at(20_000))
	tickNow(c)
	last := map[string]float64{}
	for _, p := range c.Snapshot() {
		last[p.Name] = p.Value
	}
	if last[RuntimeGoroutines] < 2 || last[RuntimeHeapInuse] < 1<<16 || last[RuntimeGCCount] < 1 || last[RuntimeGCPause] <= 0 {
		t.Errorf("runtime metrics %v", last)
	}
}

func TestRuntimeGCPauseFirstInterval(t *testing.T) {
	// The GC pauses of the interval in which RuntimeMetrics was called
	// count in that interval, as those of every later one do.
	c, clk := newManualClient(t, nil)
	c.RuntimeMetrics()
	runtime.GC()
	clk.set(at(10_000))
	tickNow(c)
	if got := c.Get(RuntimeGCPause); len(got) != 1 || got[0].Value <= 0 {
		t.Errorf("first interval's %s points: %v, want one with the pause of its GC", RuntimeGCPause, got)
	}
}

func TestCounterAddIsExactUnderContention(t *testing.T) {
	c, clk := newManualClient(t, nil)
	ctr := c.Counter("n")
	const workers, per = 4, 50_000
	done := make(chan struct{})
	for w := 0; w < workers; w++ {
		go func() {
			for i := 0; i < per; i++ {
				ctr.Inc()
			}
			done <- struct{}{}
		}()
	}
	var ms int64
	for finished := 0; finished <= workers; {
		ms += 10_000
		clk.set(at(ms))
		tickNow(c)
		if finished == workers {
			break
		}
		select {
		case <-done:
			finished++
		default:
		}
	}
	var sum float64
	for _, p := range c.Get("n") {
		sum += p.Value
	}
	if sum != workers*per {
		t.Errorf("sum of points %v, want %v", sum, workers*per)
	}
}

// TestHistogramNonFinite: NaN and infinite observations are left out of
// every series and counted in Stats().Invalid.
func TestHistogramNonFinite(t *testing.T) {
	c, clk := newManualClient(t, nil)
	h := c.Histogram("lat")
	h.Observe(2)
	h.Observe(math.NaN())
	h.Observe(math.Inf(-1))
	clk.set(at(10_000))
	tickNow(c)
	if got := points(c.Get("lat.count")); len(got) != 1 || got[0].v != 1 {
		t.Errorf("lat.count %v, want one point of 1", got)
	}
	if n := c.Stats().Invalid; n != 2 {
		t.Errorf("Stats().Invalid = %d, want 2", n)
	}
}
