package alert

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/vigia-mon/vigia/internal/query"
	"github.com/vigia-mon/vigia/internal/tsdb"
)

// TestPendingBounded: once MaxPending samples wait, further batches are
// dropped and counted, and a check makes room again.
func TestPendingBounded(t *testing.T) {
	st := newFakeStore("x")
	m := newTestMonitor(t, st, Options{MaxPending: 10})
	m.AddRule("x", query.Count, 60, 1e9, "")
	batch := make([]tsdb.Sample, 5)
	for i := range batch {
		batch[i] = sample(1, int64(i), 1)
	}
	for range 5 {
		m.Observe(batch)
	}
	if s := m.Stats(); s.PendingSamples != 10 || s.DroppedSamples != 15 {
		t.Fatalf("pending %d, dropped %d; want 10 and 15", s.PendingSamples, s.DroppedSamples)
	}
	m.check()
	m.Observe(batch)
	if s := m.Stats(); s.PendingSamples != 5 || s.DroppedSamples != 15 {
		t.Fatalf("after a check: pending %d, dropped %d; want 5 and 15", s.PendingSamples, s.DroppedSamples)
	}
}

// TestRulesChangeUnderObserve registers and deletes rules while samples
// stream in: the pending count stays exact (no sample is kept by a series
// no longer watched), and the unwatched series never reach a buffer.
func TestRulesChangeUnderObserve(t *testing.T) {
	st := newFakeStore("a", "b", "c", "d")
	m := newTestMonitor(t, st, Options{})
	var stop atomic.Bool
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Go(func() {
			batch := make([]tsdb.Sample, 16)
			for i := 0; !stop.Load(); i++ {
				for j := range batch {
					batch[j] = sample(tsdb.SeriesRef(1+(i+j+g)%5), int64(i), 1)
				}
				m.Observe(batch)
			}
		})
	}
	names := []string{"a", "b", "c", "d"}
	for i := range 200 {
		id, err := m.AddRule(names[i%4], query.Sum, 1, 0, "")
		if err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 {
			m.check()
		}
		if i%2 == 1 {
			if err := m.DeleteRule(id); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, a := range list(t, m) {
		m.DeleteRule(a.ID)
	}
	stop.Store(true)
	wg.Wait()
	if p := m.Stats().PendingSamples; p != 0 || m.idx.Load() != nil {
		t.Fatalf("no rules left, yet %d samples pending (index %v)", p, m.idx.Load())
	}
}

func TestFilter(t *testing.T) {
	var refs []tsdb.SeriesRef
	for r := tsdb.SeriesRef(1); r <= 1000; r++ {
		refs = append(refs, r*3)
	}
	ix := derive(nil, refs[:500], nil)
	ix = derive(ix, refs[500:], nil)          // grows the filter
	ix = derive(ix, []tsdb.SeriesRef{7}, nil) // same size class: extended in place
	ix = derive(ix, nil, []tsdb.SeriesRef{3, 7})
	for _, r := range refs[1:] {
		if !ix.mayWatch(r) || ix.bufs[r] == nil {
			t.Fatalf("ref %d lost", r)
		}
	}
	if ix.bufs[3] != nil || ix.bufs[7] != nil {
		t.Fatal("removed refs still indexed")
	}
	fp := 0
	for r := tsdb.SeriesRef(1_000_000); r < 1_100_000; r++ {
		if ix.mayWatch(r) {
			fp++
		}
	}
	if fp > 5000 { // 32+ bits per ref: about 3% expected
		t.Errorf("filter passes %d of 100000 unwatched refs", fp)
	}
}

// TestBurstReleasesMergeBuffer: after a burst on a metric of several
// series, the check lets go of the buffer it merged them in, as each
// series lets go of its own, so one burst does not pin its memory for the
// life of the server.
func TestBurstReleasesMergeBuffer(t *testing.T) {
	st := newFakeStore()
	st.set("m", 1, 2)
	m := newTestMonitor(t, st, Options{})
	m.AddRule("m", query.Max, 10, 5, "")
	batch := make([]tsdb.Sample, 4*maxSpare)
	for i := range batch {
		batch[i] = sample(tsdb.SeriesRef(1+i%2), int64(i), 1)
	}
	m.Observe(batch)
	m.check()
	if c := cap(m.mergeTs); c > maxSpare {
		t.Fatalf("the check keeps a merge buffer of %d samples after the burst; at most %d", c, maxSpare)
	}
	// The next, ordinary check still merges both series.
	events, cancel := m.Subscribe()
	defer cancel()
	m.Observe([]tsdb.Sample{sample(1, 1000, 1), sample(2, 2000, 9)})
	m.check()
	if got := drain(events); len(got) != 1 || decodeEvent(t, got[0]).Value != 9 {
		t.Fatalf("after the burst: %q", got)
	}
}

// TestBurstReleasesWindows: after a burst whose samples fall in many
// windows (a backfill of one sample a second, checked with secs 1), the
// check lets go of the windows it aggregated them in, as it does of the
// samples, so that one burst does not pin its memory for the life of the
// server.
func TestBurstReleasesWindows(t *testing.T) {
	st := newFakeStore("m")
	m := newTestMonitor(t, st, Options{})
	m.AddRule("m", query.Max, 1, 5, "")
	batch := make([]tsdb.Sample, 4*maxSpare)
	for i := range batch {
		batch[i] = sample(1, int64(i)*1000, 1)
	}
	m.Observe(batch)
	m.check()
	if c := cap(m.win.Result()); c > maxSpare {
		t.Fatalf("the check keeps %d windows after the burst; at most %d", c, maxSpare)
	}
	// The next, ordinary check still aggregates.
	events, cancel := m.Subscribe()
	defer cancel()
	m.Observe([]tsdb.Sample{sample(1, 1_000_000_000, 1), sample(1, 1_000_001_000, 9)})
	m.check()
	if got := drain(events); len(got) != 1 || decodeEvent(t, got[0]).Value != 9 {
		t.Fatalf("after the burst: %q", got)
	}
}

// TestQuietSeriesReleaseBurst: after a burst on a series, checks that take
// few samples let go of the burst's buffer, so that bursts on series after
// series (a backfill, one series at a time) do not pin a buffer in every
// series for the life of the server.
func TestQuietSeriesReleaseBurst(t *testing.T) {
	const series = 8
	st := newFakeStore()
	for i := range series {
		st.set(string(rune('a'+i)), tsdb.SeriesRef(i+1))
	}
	m := newTestMonitor(t, st, Options{})
	for i := range series {
		if _, err := m.AddRule(string(rune('a'+i)), query.Max, 10, 5, ""); err != nil {
			t.Fatal(err)
		}
	}
	burst := make([]tsdb.Sample, maxSpare/2)
	for i := range series {
		for j := range burst {
			burst[j] = sample(tsdb.SeriesRef(i+1), int64(j), 1)
		}
		m.Observe(burst)
		m.check()
	}
	for k := range 3 {
		for i := range series {
			m.Observe([]tsdb.Sample{sample(tsdb.SeriesRef(i+1), int64(1e6+k), 1)})
		}
		m.check()
	}
	held := 0
	for _, b := range m.idx.Load().bufs {
		b.mu.Lock()
		held += cap(b.ts) + cap(b.spareTs)
		b.mu.Unlock()
	}
	if held > series*1024 {
		t.Fatalf("%d series that each got one sample a check hold buffers of %d samples", series, held)
	}
}

// TestPendingBoundedInOneBatch: one batch bigger than MaxPending (a large
// remote write) keeps MaxPending samples and drops the rest, rather than
// going past the bound by the whole batch.
func TestPendingBoundedInOneBatch(t *testing.T) {
	st := newFakeStore("x", "y")
	m := newTestMonitor(t, st, Options{MaxPending: 10})
	m.AddRule("x", query.Count, 60, 1e9, "")
	m.AddRule("y", query.Count, 60, 1e9, "")
	var batch []tsdb.Sample
	for i := range 8 {
		batch = append(batch, sample(1, int64(i), 1))
	}
	for i := range 8 {
		batch = append(batch, sample(2, int64(i), 1), sample(3, int64(i), 1)) // 3: not watched
	}
	m.Observe(batch)
	if s := m.Stats(); s.PendingSamples != 10 || s.DroppedSamples != 6 {
		t.Fatalf("pending %d, dropped %d; want 10 and 6", s.PendingSamples, s.DroppedSamples)
	}
	events, cancel := m.Subscribe()
	defer cancel()
	m.AddRule("x", query.Count, 60, 7, "")
	m.AddRule("y", query.Count, 60, 1, "")
	m.check()
	got := drain(events)
	if len(got) != 2 || decodeEvent(t, got[0]).Value != 8 || decodeEvent(t, got[1]).Value != 2 {
		t.Fatalf("the check counted %q; want 8 samples of x and the first 2 of y", got)
	}
}
