package loadgen

import (
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestHistIndexContiguous(t *testing.T) {
	// Every value falls in a bucket whose bounds hold it, and buckets are
	// in value order with no gap.
	prev := -1
	for _, v := range []uint64{0, 1, 63, 64, 127, 128, 129, 255, 256, 1000, 12345, 1 << 20, 999_999_999, 1 << 40, 1<<63 - 1, 1<<64 - 1} {
		i := histIndex(v)
		if i < prev || i >= histBuckets {
			t.Fatalf("value %d: bucket %d after %d (of %d)", v, i, prev, histBuckets)
		}
		prev = i
		if up := histUpper(i); up < v {
			t.Fatalf("value %d: bucket %d ends at %d", v, i, up)
		}
		if i > 0 && histUpper(i-1) >= v {
			t.Fatalf("value %d: the bucket before %d ends at %d", v, i, histUpper(i-1))
		}
	}
	for i := 1; i < histBuckets; i++ {
		if histIndex(histUpper(i-1)+1) != i {
			t.Fatalf("bucket %d does not start right after bucket %d", i, i-1)
		}
	}
}

func TestHistQuantiles(t *testing.T) {
	tests := []struct {
		name string
		vals []time.Duration
		q    map[float64]time.Duration // exact value of the nearest rank
	}{
		{"empty", nil, map[float64]time.Duration{0.5: 0, 0.99: 0}},
		{"one", []time.Duration{3 * time.Millisecond}, map[float64]time.Duration{0.5: 3 * time.Millisecond, 0.99: 3 * time.Millisecond, 1: 3 * time.Millisecond}},
		{"small exact", []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, map[float64]time.Duration{0.1: 1, 0.5: 5, 0.9: 9, 0.99: 10}},
		{"1..1000 µs", seq(1000, time.Microsecond), map[float64]time.Duration{0.5: 500 * time.Microsecond, 0.99: 990 * time.Microsecond, 1: time.Millisecond}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var h Histogram
			rand.Shuffle(len(tc.vals), func(i, j int) { tc.vals[i], tc.vals[j] = tc.vals[j], tc.vals[i] })
			for _, v := range tc.vals {
				h.Record(v)
			}
			var s HistSnapshot
			h.Snapshot(&s)
			if s.N != uint64(len(tc.vals)) {
				t.Fatalf("N = %d, want %d", s.N, len(tc.vals))
			}
			for q, want := range tc.q {
				got := s.Quantile(q)
				// Within the bucket width, never below the true value.
				if got < want || float64(got-want) > float64(want)/histSub+1 {
					t.Errorf("Quantile(%v) = %v, want %v (+%.1f%%)", q, got, want, 100.0/histSub)
				}
			}
		})
	}
}

func seq(n int, unit time.Duration) []time.Duration {
	var vs []time.Duration
	for i := 1; i <= n; i++ {
		vs = append(vs, time.Duration(i)*unit)
	}
	return vs
}

func TestHistAgainstSort(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h Histogram
	var vals []time.Duration
	for range 100000 {
		// Log-normal-ish latencies from 10 µs to seconds.
		v := time.Duration(10e3 * (1 + r.ExpFloat64()*r.ExpFloat64()*50))
		vals = append(vals, v)
		h.Record(v)
	}
	slices.Sort(vals)
	var s HistSnapshot
	h.Snapshot(&s)
	for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 0.999, 1} {
		exact := vals[int(q*float64(len(vals)))-1]
		got := s.Quantile(q)
		if got < exact || float64(got-exact) > float64(exact)*1.5/histSub {
			t.Errorf("Quantile(%v) = %v, exact %v", q, got, exact)
		}
	}
	if s.Max != vals[len(vals)-1] {
		t.Errorf("Max = %v, want %v", s.Max, vals[len(vals)-1])
	}
}

func TestHistSubAndConcurrency(t *testing.T) {
	var h Histogram
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 1000 {
				h.Record(time.Duration(g*1000+i) * time.Microsecond)
			}
		}()
	}
	wg.Wait()
	var first HistSnapshot
	h.Snapshot(&first)
	if first.N != 4000 {
		t.Fatalf("N = %d after 4 x 1000 concurrent records", first.N)
	}
	h.RecordN(time.Second, 10)
	var second HistSnapshot
	h.Snapshot(&second)
	second.Sub(&first)
	if second.N != 10 || second.Quantile(0.5) != time.Second {
		t.Fatalf("interval: N %d, p50 %v; want 10 values of 1s", second.N, second.Quantile(0.5))
	}
	h.Record(-time.Second)
	h.Snapshot(&second)
	if second.Counts[0]-first.Counts[0] != 1 {
		t.Fatalf("a negative duration is not counted as 0")
	}
}
