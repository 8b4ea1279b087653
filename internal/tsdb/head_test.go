package tsdb

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The committer appends to active heads without a lock while readers scan
// them: scans running alongside appends that arrive out of order and grow
// the head's buffer see every acknowledged sample, once, sorted, and no
// sample twice; and the active head, sorted in copies, stays in arrival
// order until a flush sorts it.
func TestHeadScanWhileAppending(t *testing.T) {
	o := testOpts()
	o.FlushSamples = 1 << 30
	db := openTest(t, t.TempDir(), o)
	defer db.Close()
	ref, _ := db.GetOrCreate([]byte("h"), nil)
	base := time.Now().UnixMilli()
	const rounds, per = 200, 37
	var acked atomic.Int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		for r := 0; r < rounds; r++ {
			ss := make([]Sample, per)
			for i := range ss {
				// Each batch in descending time, below the previous one.
				k := int64(rounds*per - (r*per + i))
				ss[i] = Sample{ref, base + k, float64(k)}
			}
			if err := db.Append(ss); err != nil {
				t.Error(err)
				return
			}
			acked.Store(int64((r + 1) * per))
		}
	}()
	scans := 0
	for stop := false; !stop; scans++ {
		select {
		case <-done:
			stop = true
		default:
		}
		min := acked.Load()
		var n int64
		prev := int64(-1)
		seen := map[int64]bool{}
		err := db.Scan(ref, 0, 1<<62, func(ts []int64, vs []float64) bool {
			for i, x := range ts {
				if x < prev || seen[x] || vs[i] != float64(x-base) {
					t.Errorf("scan %d: sample (%d, %v) after %d", scans, x, vs[i], prev)
					return false
				}
				prev = x
				seen[x] = true
				n++
			}
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
		if n < min {
			t.Fatalf("scan %d saw %d samples, %d were acknowledged", scans, n, min)
		}
	}
	wg.Wait()
	if ts, _ := collect(t, db, ref, 0, 1<<62); len(ts) != rounds*per {
		t.Fatalf("%d samples, want %d", len(ts), rounds*per)
	}
	// Scans sorted copies; the head itself is still in arrival order.
	s := db.idx.get(ref)
	if b := s.buf.Load(); !s.unsorted.Load() || b.ts[0] != base+rounds*per {
		t.Fatalf("active head reordered: first sample %d", b.ts[0]-base)
	}
	t.Logf("%d scans", scans)
}

// In a steady flow the active head takes over the buffers of the
// generation flushed before it, so appends allocate nothing; a series that
// had no sample for idleGens flushes in a row gives its buffers up, and
// not before.
func TestHeadBuffersReused(t *testing.T) {
	o := testOpts()
	o.FlushSamples = 1 << 30
	db := openTest(t, t.TempDir(), o)
	defer db.Close()
	refs := make([]SeriesRef, 100)
	for i := range refs {
		refs[i], _ = db.GetOrCreate([]byte(fmt.Sprint("s", i)), nil)
	}
	ss := make([]Sample, len(refs))
	var tick int64
	generation := func() {
		for k := 0; k < 300; k++ {
			tick++
			for i := range ss {
				ss[i] = Sample{refs[i], tick * 1000, 1.5}
			}
			db.commitMu.Lock()
			db.applySamples([][]Sample{ss})
			db.commitMu.Unlock()
		}
		if err := db.flush(); err != nil {
			t.Fatal(err)
		}
	}
	generation()
	generation() // both buffers exist now
	if allocs := testing.AllocsPerRun(3, generation); allocs > 400 {
		// A flush allocates about 120 times for its part writer, index
		// and manifest; the 30,000 appended samples allocate nothing
		// (growing 100 heads from scratch to 300 samples takes 1,900).
		t.Errorf("%.0f allocations for a flushed generation of 30,000 samples", allocs)
	}
	idle := db.idx.get(refs[0])
	for k := 0; k < idleGens; k++ {
		db.flushMu.Lock()
		idleBuf, idleSpare := idle.buf.Load(), idle.spare
		db.flushMu.Unlock()
		if idleBuf == nil || idleSpare == nil {
			t.Fatalf("a series idle for %d flushes gave its head buffers up", k)
		}
		ss := []Sample{{refs[1], (tick + int64(k) + 1) * 1000, 1}}
		if err := db.Append(ss); err != nil {
			t.Fatal(err)
		}
		if err := db.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	db.flushMu.Lock()
	idleBuf, idleSpare := idle.buf.Load(), idle.spare
	db.flushMu.Unlock()
	if idleBuf != nil || idleSpare != nil {
		t.Errorf("a series idle for %d flushes keeps its head buffers", idleGens)
	}
}
