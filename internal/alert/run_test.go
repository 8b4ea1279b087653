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
// integer k, k increasing, with exactly the overlapped ticks skipped. Only
// the start lateness (actual start - scheduled time) depends on the
// machine: it is timer wake-up latency, a few ms normally, but this runs
// with -race on 2 shared cores, often busy with other tests, so the
// tolerance is 120 ms, and a third of the ticks may miss it. That is under
// the 150 ms a drifting loop adds on its first slow tick and every tick
// after, so accumulated drift cannot hide in it. A machine slow enough to make a 150 ms check overrun
// too is allowed for: the expected overruns are counted from the checks'
// actual end times.
func TestScheduleDoesNotDrift(t *testing.T) {
	const (
		P         = 200 * time.Millisecond
		slow      = 150 * time.Millisecond
		overrun   = 450 * time.Millisecond
		overrunAt = 4 // tick index whose check overruns
		ticks     = 11
		tolerance = 120 * time.Millisecond
	)
	m := newTestMonitor(t, newFakeStore(), Options{Interval: P})
	type tick struct{ due, start, end time.Time }
	var (
		mu  sync.Mutex
		got []tick
	)
	ctx, cancel := context.WithCancel(context.Background())
	m.beforeCheck = func(due time.Time) {
		start := time.Now()
		mu.Lock()
		n := len(got)
		mu.Unlock()
		d := slow
		if n == overrunAt {
			d = overrun
		}
		time.Sleep(d)
		mu.Lock()
		got = append(got, tick{due, start, time.Now()})
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
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not finish")
	}

	t0 := got[0].due
	prevK := int64(-1)
	overruns, lateTicks := 0, 0
	for i, tk := range got {
		off := tk.due.Sub(t0)
		if off%P != 0 {
			t.Fatalf("tick %d scheduled at t0+%v, not a multiple of %v", i, off, P)
		}
		k := int64(off / P)
		wantK := prevK + 1
		if i > 0 && got[i-1].end.After(t0.Add(time.Duration(wantK)*P)) {
			// The previous check overran: the next tick is the first
			// after it ended, not one it overlapped (no pile-up).
			wantK = int64(got[i-1].end.Sub(t0)/P) + 1
			overruns++
		}
		if k != wantK {
			t.Fatalf("tick %d: k = %d, want %d (previous ended at t0+%v)", i, k, wantK, got[i-1].end.Sub(t0))
		}
		if late := tk.start.Sub(tk.due); late < 0 {
			t.Errorf("tick %d (k=%d) started %v before its scheduled time", i, k, -late)
		} else if late > tolerance {
			t.Logf("tick %d (k=%d) started %v after its scheduled time; tolerance %v", i, k, late, tolerance)
			lateTicks++
		}
		prevK = k
	}
	if lateTicks > len(got)/3 {
		t.Errorf("%d of %d ticks started late", lateTicks, len(got))
	}
	if last := got[len(got)-1]; last.end.After(t0.Add(time.Duration(prevK+1) * P)) {
		overruns++ // the last check, ended after Run was cancelled
	}
	if s := m.Stats(); s.Overruns != uint64(overruns) || overruns < 1 || s.SkippedTicks < 2 {
		t.Errorf("stats: %d overruns, %d skipped ticks; want %d (at least 1) and >= 2", s.Overruns, s.SkippedTicks, overruns)
	}
	if last := got[len(got)-1]; int64(last.due.Sub(t0)/P) < ticks+1 {
		t.Errorf("last tick k=%d: the overrun skipped no tick", last.due.Sub(t0)/P)
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
	waitFor(t, 5*time.Second, "the last samples to be checked", func() bool { return m.Stats().PendingSamples == 0 })
	ms := m.Stats().Checks
	waitFor(t, 5*time.Second, "one more check", func() bool { return m.Stats().Checks > ms })
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
	waitFor(t, time.Second, "Run to start", m.running.Load)
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
