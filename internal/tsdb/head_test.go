package tsdb

import (
	"fmt"
	"math"
	"runtime"
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
	if first, _ := s.list.Load().at(0); !s.unsorted.Load() || first != base+rounds*per {
		t.Fatalf("active head reordered: first sample %d", first-base)
	}
	t.Logf("%d scans", scans)
}

// In a steady flow the active head takes the chunks of the generation
// flushed before it from the pool, so appends allocate nothing; a series
// that had no sample for idleGens flushes in a row gives its chunk lists
// up, and not before.
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
		// (allocating their chunks would take 900).
		t.Errorf("%.0f allocations for a flushed generation of 30,000 samples", allocs)
	}
	idle := db.idx.get(refs[0])
	for k := 0; k < idleGens; k++ {
		db.flushMu.Lock()
		idleList, idleSpare := idle.list.Load(), idle.spare
		db.flushMu.Unlock()
		if idleList == nil || idleSpare == nil {
			t.Fatalf("a series idle for %d flushes gave its chunk lists up", k)
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
	idleList, idleSpare := idle.list.Load(), idle.spare
	db.flushMu.Unlock()
	if idleList != nil || idleSpare != nil {
		t.Errorf("a series idle for %d flushes keeps its chunk lists", idleGens)
	}
}

// The chunked head reads back like a plain slice: every sample at its
// position, and the same ranges, across chunk boundaries.
func TestChunkListRanges(t *testing.T) {
	var pool chunkPool
	pool.maxBig = 100
	s := &memSeries{}
	var ts []int64
	var vs []float64
	for i := 0; i < chunkSmall+3*chunkBig+5; i++ {
		tt := int64(i/3) * 10 // runs of equal timestamps
		s.appendHead(tt, float64(i), &pool)
		ts, vs = append(ts, tt), append(vs, float64(i))
	}
	l, n := s.list.Load(), s.n.Load()
	if n != int64(len(ts)) || chunksFor(n) != 5 {
		t.Fatalf("%d samples in %d chunks", n, chunksFor(n))
	}
	for i := range ts {
		if gt, gv := l.at(int64(i)); gt != ts[i] || gv != vs[i] {
			t.Fatalf("sample %d: (%d, %v), want (%d, %v)", i, gt, gv, ts[i], vs[i])
		}
	}
	for mint := int64(-10); mint <= ts[len(ts)-1]+20; mint += 5 {
		for _, span := range []int64{0, 1, 10, 30, 400, 1 << 40} {
			lo, hi := l.searchRange(n, mint, mint+span)
			wlo, whi := searchRange(ts, mint, mint+span)
			if lo != int64(wlo) || hi != int64(whi) {
				t.Fatalf("[%d, %d): range %d-%d, want %d-%d", mint, mint+span, lo, hi, wlo, whi)
			}
			gts, gvs := l.appendRange(nil, nil, lo, hi)
			if fmt.Sprint(gts, gvs) != fmt.Sprint(ts[wlo:whi], vs[wlo:whi]) {
				t.Fatalf("[%d, %d): samples differ", mint, mint+span)
			}
		}
	}
}

// A scan whose runs overlap in time (a late sample among a flushed series)
// merges them block by block: its memory does not grow with the samples
// in range. It used to decode the whole range into memory, twice over
// for the merge, so that one late sample made every query of a busy
// series take hundreds of bytes per sample.
func TestScanMergedMemory(t *testing.T) {
	db := openTest(t, t.TempDir(), nil)
	defer db.Close()
	ref, _ := db.GetOrCreate([]byte("m"), nil)
	const n = 1 << 20
	ss := make([]Sample, 1<<16)
	for i := 0; i < n; i += len(ss) {
		for k := range ss {
			ss[k] = Sample{ref, int64(i+k) * 10, float64(k % 100)}
		}
		if err := db.Append(ss); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	late := []Sample{{ref, n * 5, -1}, {ref, n * 5, -2}, {ref, -1, -3}}
	if err := db.Append(late); err != nil {
		t.Fatal(err)
	}
	scanPool = sync.Pool{New: func() any { return new(scanState) }}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	count, prev := 0, int64(math.MinInt64)
	var lateVs []float64
	err := db.Scan(ref, math.MinInt64, math.MaxInt64, func(ts []int64, vs []float64) bool {
		for i, x := range ts {
			if x < prev {
				t.Fatalf("sample %d at %d after %d", count, x, prev)
			}
			if vs[i] < 0 {
				lateVs = append(lateVs, vs[i])
			}
			prev = x
			count++
		}
		return true
	})
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if count != n+len(late) || fmt.Sprint(lateVs) != "[-3 -1 -2]" {
		t.Fatalf("%d samples, late ones %v; want %d, [-3 -1 -2]", count, lateVs, n+len(late))
	}
	if b := after.TotalAlloc - before.TotalAlloc; b > 4<<20 {
		t.Errorf("a scan of %d samples in overlapping runs allocated %d bytes", count, b)
	}
}
