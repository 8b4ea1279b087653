package client

import (
	"math"
	"runtime/metrics"
	"slices"
)

// The series RuntimeMetrics reports, before Prefix and templates.
const (
	// RuntimeGoroutines is a gauge: the number of live goroutines.
	RuntimeGoroutines = "go.goroutines"
	// RuntimeHeapInuse is a gauge: bytes in in-use heap spans, as
	// runtime.MemStats.HeapInuse.
	RuntimeHeapInuse = "go.heap.inuse.bytes"
	// RuntimeGCCount is a meter: completed GC cycles since start.
	RuntimeGCCount = "go.gc.count"
	// RuntimeGCPause is a counter: seconds the world was stopped for GC
	// during the interval, estimated from the runtime's pause histogram
	// (each pause counted at the middle of its bucket).
	RuntimeGCPause = "go.gc.pause.seconds"
)

// RuntimeMetrics registers the Go runtime's metrics, read with
// runtime/metrics once per period: RuntimeGoroutines, RuntimeHeapInuse,
// RuntimeGCCount and RuntimeGCPause. Calling it again does nothing.
func (c *Client) RuntimeMetrics() {
	c.register("go.runtime", "runtime", func(string) entry {
		r := newRuntimeSampler(c.name)
		return entry{r, r}
	})
}

type runtimeSampler struct {
	names     []string // goroutines, heap, gc count, gc pause
	samples   []metrics.Sample
	prevPause []uint64 // bucket counts at the previous sample
}

func newRuntimeSampler(name func(string) string) *runtimeSampler {
	r := &runtimeSampler{
		names: []string{name(RuntimeGoroutines), name(RuntimeHeapInuse), name(RuntimeGCCount), name(RuntimeGCPause)},
		samples: []metrics.Sample{
			{Name: "/sched/goroutines:goroutines"},
			{Name: "/memory/classes/heap/objects:bytes"},
			{Name: "/memory/classes/heap/unused:bytes"},
			{Name: "/gc/cycles/total:gc-cycles"},
			{Name: "/sched/pauses/total/gc:seconds"},
		},
	}
	// The pauses so far are the baseline, so that the first interval
	// reports its own pauses as every later one does.
	metrics.Read(r.samples)
	if v := r.samples[4].Value; v.Kind() == metrics.KindFloat64Histogram {
		r.prevPause = slices.Clone(v.Float64Histogram().Counts)
	}
	return r
}

func (r *runtimeSampler) kind() string     { return "runtime" }
func (r *runtimeSampler) series() []string { return r.names }

func (r *runtimeSampler) collect(dst []point, ts int64) []point {
	metrics.Read(r.samples)
	num := func(i int) (float64, bool) {
		switch v := r.samples[i].Value; v.Kind() {
		case metrics.KindUint64:
			return float64(v.Uint64()), true
		case metrics.KindFloat64:
			return v.Float64(), true
		}
		return 0, false // not supported by this Go version
	}
	if v, ok := num(0); ok {
		dst = append(dst, point{name: r.names[0], v: v, ts: ts})
	}
	if a, ok := num(1); ok {
		if b, ok := num(2); ok {
			dst = append(dst, point{name: r.names[1], v: a + b, ts: ts})
		}
	}
	if v, ok := num(3); ok {
		dst = append(dst, point{name: r.names[2], v: v, ts: ts})
	}
	if r.samples[4].Value.Kind() == metrics.KindFloat64Histogram {
		h := r.samples[4].Value.Float64Histogram()
		first := r.prevPause == nil
		if first {
			r.prevPause = make([]uint64, len(h.Counts))
		}
		var pause float64
		for i, n := range h.Counts {
			if d := n - r.prevPause[i]; d > 0 && !first {
				pause += float64(d) * histMid(h.Buckets[i], h.Buckets[i+1])
			}
			r.prevPause[i] = n
		}
		if !first && pause > 0 {
			dst = append(dst, point{name: r.names[3], v: pause, ts: ts})
		}
	}
	return dst
}

// histMid returns the middle of the bucket [lo, hi), or its finite bound
// when the other is infinite.
func histMid(lo, hi float64) float64 {
	switch {
	case math.IsInf(lo, -1):
		return hi
	case math.IsInf(hi, 1):
		return lo
	}
	return (lo + hi) / 2
}
