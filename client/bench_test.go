package client

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Run with -cpu 2 (the default on a 2-core machine): the Parallel
// benchmarks then run 2 goroutines, and the Contended ones always do. Give
// the Parallel ones a time (-benchtime 1s), not a count (1000000x): with a
// count RunParallel cannot size its batches and its own shared iteration
// counter, updated every few iterations, dominates the figure.
//
//	go test -run - -bench . -benchtime 1s ./client/

func benchClient(b *testing.B) *Client {
	b.Helper()
	c, err := newClient(&Options{Addr: "127.0.0.1:1", Logger: quietLogger, Period: time.Hour}, realClock{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		defer cancel()
		c.Close(ctx)
	})
	return c
}

// contended runs f b.N times split across 2 goroutines.
func contended(b *testing.B, f func(i int)) {
	b.ReportAllocs()
	var ready, wg sync.WaitGroup
	start := make(chan struct{})
	for g := 0; g < 2; g++ {
		ready.Add(1)
		wg.Add(1)
		go func(n int) {
			defer wg.Done()
			ready.Done()
			<-start // both begin together, so that they overlap
			for i := 0; i < n; i++ {
				f(i)
			}
		}(b.N/2 + g*(b.N%2))
	}
	ready.Wait()
	b.ResetTimer()
	close(start)
	wg.Wait()
}

func BenchmarkCounterAdd(b *testing.B) {
	ctr := benchClient(b).Counter("c")
	b.ReportAllocs()
	for b.Loop() {
		ctr.Add(1)
	}
}

func BenchmarkCounterAddContended(b *testing.B) {
	ctr := benchClient(b).Counter("c")
	contended(b, func(int) { ctr.Add(1) })
}

func BenchmarkCounterAddParallel(b *testing.B) {
	ctr := benchClient(b).Counter("c")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			ctr.Add(1)
		}
	})
}

func BenchmarkCounterAddFraction(b *testing.B) {
	ctr := benchClient(b).Counter("c")
	b.ReportAllocs()
	for b.Loop() {
		ctr.Add(0.5)
	}
}

func BenchmarkGaugeSet(b *testing.B) {
	g := benchClient(b).Gauge("g")
	b.ReportAllocs()
	v := 0.0
	for b.Loop() {
		v++
		g.Set(v)
	}
}

func BenchmarkGaugeSetContended(b *testing.B) {
	g := benchClient(b).Gauge("g")
	contended(b, func(i int) { g.Set(float64(i)) })
}

func BenchmarkGaugeSetParallel(b *testing.B) {
	g := benchClient(b).Gauge("g")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		v := 0.0
		for pb.Next() {
			v++
			g.Set(v)
		}
	})
}

func BenchmarkGaugeSetMean(b *testing.B) {
	g := benchClient(b).GaugeWithMode("g", GaugeMean)
	b.ReportAllocs()
	v := 0.0
	for b.Loop() {
		v++
		g.Set(v)
	}
}

func BenchmarkGaugeSetMeanContended(b *testing.B) {
	g := benchClient(b).GaugeWithMode("g", GaugeMean)
	contended(b, func(i int) { g.Set(float64(i)) })
}

func BenchmarkMeterSet(b *testing.B) {
	m := benchClient(b).Meter("m")
	b.ReportAllocs()
	v := 0.0
	for b.Loop() {
		v++
		m.Set(v)
	}
}

func BenchmarkHistogramObserve(b *testing.B) {
	h := benchClient(b).Histogram("h")
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		h.Observe(float64(i&1023) * 0.001)
	}
}

func BenchmarkHistogramObserveContended(b *testing.B) {
	h := benchClient(b).Histogram("h")
	contended(b, func(i int) { h.Observe(float64(i&1023) * 0.001) })
}

func BenchmarkTimerObserve(b *testing.B) {
	t := benchClient(b).Timer("t")
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		t.Observe(time.Duration(i&1023) * time.Microsecond)
	}
}

// benchFlush measures closing an interval of n updated counters and
// delivering it to addr, acknowledged.
func benchFlush(b *testing.B, addr string, n int) {
	c, err := New(&Options{Addr: addr, Logger: quietLogger, Period: time.Hour, MaxPoints: 4 * n})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close(context.Background())
	ctrs := make([]*Counter, n)
	for i := range ctrs {
		ctrs[i] = c.Counter("bench.metric." + strconv.Itoa(i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, ctr := range ctrs {
			ctr.Inc()
		}
		if err := c.Flush(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if st := c.Stats(); st.Delivered != uint64(b.N*n) {
		b.Fatalf("delivered %d, want %d", st.Delivered, b.N*n)
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/flush")
}

func BenchmarkFlush10k(b *testing.B) {
	srv := newFakeServer(b)
	srv.mu.Lock()
	srv.count = true
	srv.mu.Unlock()
	benchFlush(b, srv.addr, 10_000)
}
