package alert

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigia-mon/vigia/internal/query"
	"github.com/vigia-mon/vigia/internal/tsdb"
)

// TestScheduleDoesNotDrift runs the real Run loop with a 200 ms period and
// checks made slow by a hook: 150 ms each (a "P + processing time" loop
// would slip 150 ms per tick), and one of 450 ms that overruns into the
// next two ticks.
//
// The scheduled times are compared exactly: each must be t0 + k·P for an
// integer k, k increasing, never started before it is due, with exactly
// the overlapped ticks skipped. Which ticks a check overlapped is decided
// by when it ended, measured in the test as the end of the hook plus the
// check's own duration (Stats.LastCheck); Run takes its own reading a few
// instructions later. Only when that reading falls within slack of a tick
// may the two disagree, and then either tick is accepted. How late each
// tick started depends on the machine (this runs with -race on 2 shared
// cores): it is logged, not asserted.
func TestScheduleDoesNotDrift(t *testing.T) {
	const (
		P         = 200 * time.Millisecond
		slow      = 150 * time.Millisecond
		overrun   = 450 * time.Millisecond
		overrunAt = 4 // tick index whose check overruns
		ticks     = 11
		slack     = P / 10
	)
	m := newTestMonitor(t, newFakeStore(), Options{Interval: P})
	// prevCheck is how long the previous check took, read when the next
	// tick starts.
	type tick struct {
		due, start, end time.Time
		prevCheck       time.Duration
	}
	var (
		mu  sync.Mutex
		got []tick
	)
	ctx, cancel := context.WithCancel(context.Background())
	m.beforeCheck = func(due time.Time) {
		start := time.Now()
		prevCheck := m.Stats().LastCheck
		mu.Lock()
		n := len(got)
		mu.Unlock()
		d := slow
		if n == overrunAt {
			d = overrun
		}
		time.Sleep(d)
		mu.Lock()
		got = append(got, tick{due, start, time.Now(), prevCheck})
		if len(got) == ticks {
			cancel()
		}
		mu.Unlock()
	}
	done := make(chan error)
	go func() { done <- m.Run(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not finish")
	}
	stats := m.Stats()

	t0 := got[0].due
	// next returns the ticks Run may take next after a check that ended
	// at about end, when the last one it ran was prevK: the first tick
	// after the end, or prevK+1 when the check fit in its period.
	next := func(prevK int64, end time.Time) (lo, hi int64) {
		k := func(end time.Time) int64 { return max(prevK+1, int64(end.Sub(t0)/P)+1) }
		return k(end), k(end.Add(slack))
	}
	var late []string
	prevK := int64(-1)
	overruns, skipped := 0, int64(0)
	for i, tk := range got {
		off := tk.due.Sub(t0)
		if off%P != 0 {
			t.Fatalf("tick %d scheduled at t0+%v, not a multiple of %v", i, off, P)
		}
		k := int64(off / P)
		if i > 0 {
			end := got[i-1].end.Add(tk.prevCheck)
			lo, hi := next(prevK, end)
			if k != lo && k != hi {
				t.Fatalf("tick %d: k = %d, want %d (the previous check ended at about t0+%v)", i, k, lo, end.Sub(t0))
			}
			if k != lo {
				t.Logf("tick %d: k = %d: the previous check ended within %v of tick %d", i, k, slack, lo)
			}
			if k > prevK+1 {
				overruns++
				skipped += k - prevK - 1
			}
		}
		if l := tk.start.Sub(tk.due); l < 0 {
			t.Errorf("tick %d (k=%d) started %v before its scheduled time", i, k, -l)
		} else {
			late = append(late, l.Round(100*time.Microsecond).String())
		}
		prevK = k
	}
	t.Logf("ticks started late by %v", late)
	if overruns < 1 || skipped < 2 {
		t.Errorf("%d overruns skipping %d ticks; the %v check should have skipped 2 at least", overruns, skipped, overrun)
	}
	if last := got[len(got)-1]; int64(last.due.Sub(t0)/P) < ticks+1 {
		t.Errorf("last tick k=%d: the overrun skipped no tick", last.due.Sub(t0)/P)
	}
	// The last check ran after Run was cancelled; it counts as an overrun
	// too when it ended after the next tick.
	last := got[len(got)-1]
	lo, hi := next(prevK, last.end.Add(stats.LastCheck))
	okStats := false
	for _, k := range []int64{lo, hi} {
		o, s := overruns, skipped
		if k > prevK+1 {
			o, s = o+1, s+k-prevK-1
		}
		okStats = okStats || stats.Overruns == uint64(o) && stats.SkippedTicks == uint64(s)
	}
	if !okStats {
		t.Errorf("stats: %d overruns, %d skipped ticks; the ticks say %d and %d, plus the last check's (k = %d next, or %d)",
			stats.Overruns, stats.SkippedTicks, overruns, skipped, lo, hi)
	}
}

// TestEachSampleInExactlyOneCheck observes samples from several goroutines
// while checks run back to back (a 1 ms period, so samples constantly land
// right at check boundaries) and asserts that the COUNTs the checks report
// add up to exactly what was observed: nothing missed, nothing twice.
func TestEachSampleInExactlyOneCheck(t *testing.T) {
	st := newFakeStore("a", "b")
	m := newTestMonitor(t, st, Options{Interval: time.Millisecond, SubscriberBuffer: 1 << 16})
	// COUNT over one-hour windows: every check that holds samples of a
	// series fires once with their number (the samples span < 1 h).
	m.AddRule("a", query.Count, 3600, 0, "")
	m.AddRule("b", query.Count, 3600, 0, "")
	events, cancelSub := m.Subscribe()
	var (
		counted  = map[string]float64{}
		checks   int
		consumed = make(chan struct{})
	)
	go func() {
		defer close(consumed)
		for batch := range events {
			for _, b := range batch {
				e := decodeEvent(t, b)
				counted[e.Metric] += e.Value
				checks++
			}
		}
	}()

	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan struct{})
	go func() { m.Run(ctx); close(runDone) }()

	var observed [3]atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(400 * time.Millisecond)
	for g := range 3 {
		wg.Go(func() {
			var ts int64 = 1_000_000
			batch := make([]tsdb.Sample, 0, 8)
			for i := 0; time.Now().Before(deadline); i++ {
				batch = batch[:0]
				for j := range 1 + i%7 {
					ref := tsdb.SeriesRef(1 + (g+j)%3) // 3 is not watched
					ts++
					batch = append(batch, sample(ref, ts, 1))
					observed[ref-1].Add(1)
				}
				m.Observe(batch)
				if i%64 == 0 {
					runtime.Gosched() // 2 shared cores: let the checks run too
				}
			}
		})
	}
	wg.Wait()
	waitFor(t, 20*time.Second, "the last samples to be checked", func() bool { return m.Stats().PendingSamples == 0 })
	ms := m.Stats().Checks
	waitFor(t, 20*time.Second, "one more check", func() bool { return m.Stats().Checks > ms })
	cancel()
	<-runDone
	cancelSub()
	<-consumed

	if s := m.Stats(); s.SubscriberDrops != 0 || s.DroppedSamples != 0 {
		t.Fatalf("drops make the count meaningless: %+v", s)
	}
	for i, name := range []string{"a", "b"} {
		if got, want := int64(counted[name]), observed[i].Load(); got != want {
			t.Errorf("metric %s: checks counted %d samples, %d were observed", name, got, want)
		}
	}
	if checks < 10 {
		t.Errorf("only %d checks saw samples; the boundaries were hardly exercised", checks)
	}
	t.Logf("%d+%d samples over %d firing checks (%d checks)", observed[0].Load(), observed[1].Load(), checks, m.Stats().Checks)
}

// TestRunOnce: a second Run is refused, and Run returns promptly when its
// context ends, closing the subscriptions.
func TestRunOnce(t *testing.T) {
	m := newTestMonitor(t, newFakeStore(), Options{Interval: time.Hour})
	events, _ := m.Subscribe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- m.Run(ctx) }()
	waitFor(t, 20*time.Second, "Run to start", m.running.Load)
	if err := m.Run(ctx); err != errRunning {
		t.Fatalf("second Run: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, ok := <-events; ok {
		t.Fatal("subscription still open after Run returned")
	}
}
