package tsdb

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testSegmentSize is the WAL segment size of testOpts: small, so that
// tests rotate segments often, also past a segment's end, and do not write
// 64 MiB of zeros for every flush.
const testSegmentSize = 64 << 10

func testOpts() *Options {
	return &Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), walSegmentSize: testSegmentSize}
}

func openTest(t testing.TB, dir string, o *Options) *DB {
	t.Helper()
	if o == nil {
		o = testOpts()
	}
	db, err := Open(dir, o)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return db
}

// mergeAll merges parts until no merge is due.
func mergeAll(t testing.TB, db *DB) {
	t.Helper()
	for {
		merged, err := db.mergeOnce()
		if err != nil {
			t.Fatal(err)
		}
		if !merged {
			return
		}
	}
}

// collect returns every sample of ref in [mint, maxt).
func collect(t testing.TB, db *DB, ref SeriesRef, mint, maxt int64) ([]int64, []float64) {
	t.Helper()
	var ts []int64
	var vs []float64
	err := db.Scan(ref, mint, maxt, func(a []int64, b []float64) bool {
		ts = append(ts, a...)
		vs = append(vs, b...)
		return true
	})
	if err != nil {
		t.Fatalf("scan: %v", err)
	}
	return ts, vs
}

func TestAppendScanReopen(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir, nil)
	a, err := db.GetOrCreate([]byte("cpu"), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := db.GetOrCreate([]byte("cpu"), []Label{{"host", "x"}, {"dc", "1"}})
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatalf("same ref for different labels")
	}
	if r, ok := db.Lookup([]byte("cpu"), []Label{{"dc", "1"}, {"host", "x"}}); !ok || r != b {
		t.Fatalf("lookup with unsorted labels: %v %v", r, ok)
	}
	if err := db.Append([]Sample{{a, 2000, 1.5}, {b, 1000, 2}, {a, 1000, 0.25}, {a, 2000, 1.5}}); err != nil {
		t.Fatal(err)
	}
	check := func(db *DB) {
		t.Helper()
		ts, vs := collect(t, db, a, 0, 1<<62)
		if fmt.Sprint(ts, vs) != "[1000 2000 2000] [0.25 1.5 1.5]" {
			t.Fatalf("series a: %v %v", ts, vs)
		}
		ts, _ = collect(t, db, b, 0, 1001)
		if len(ts) != 1 {
			t.Fatalf("series b: %v", ts)
		}
		if got := db.Names("cp"); fmt.Sprint(got) != "[cpu]" {
			t.Fatalf("names: %v", got)
		}
		if got := db.RefsByName([]byte("cpu")); len(got) != 2 {
			t.Fatalf("refs by name: %v", got)
		}
	}
	check(db)
	if _, err := Open(dir, testOpts()); !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v, want ErrLocked", err)
	}
	db.kill()
	db = openTest(t, dir, nil)
	check(db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTest(t, dir, nil)
	check(db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Append([]Sample{{a, 1, 1}}); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
}

func TestConcurrentAppend(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir, nil)
	const writers, batches, per = 4, 50, 100
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			ref, err := db.GetOrCreate([]byte(fmt.Sprintf("s%d", w)), nil)
			if err != nil {
				t.Error(err)
				return
			}
			for i := 0; i < batches; i++ {
				ss := make([]Sample, per)
				for j := range ss {
					ss[j] = Sample{ref, int64(i*per + j), float64(j)}
				}
				if err := db.Append(ss); err != nil {
					t.Error(err)
					return
				}
				if ts, _ := collect(t, db, ref, 0, 1<<62); len(ts) != (i+1)*per {
					t.Errorf("after append %d: %d samples visible", i, len(ts))
					return
				}
			}
		}(w)
	}
	wg.Wait()
	db.kill()
	db = openTest(t, dir, nil)
	defer db.Close()
	for w := 0; w < writers; w++ {
		ref, ok := db.Lookup([]byte(fmt.Sprintf("s%d", w)), nil)
		if !ok {
			t.Fatalf("series s%d lost", w)
		}
		if ts, _ := collect(t, db, ref, 0, 1<<62); len(ts) != batches*per {
			t.Fatalf("s%d: %d samples after reopen", w, len(ts))
		}
	}
}

func TestGetOrCreateExistingDoesNotAllocate(t *testing.T) {
	db := openTest(t, t.TempDir(), nil)
	defer db.Close()
	name := []byte("cpu.load")
	labels := []Label{{"host", "a"}, {"dc", "x"}} // unsorted on purpose
	if _, err := db.GetOrCreate(name, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := db.GetOrCreate(name, labels); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() {
		db.GetOrCreate(name, nil)
		db.GetOrCreate(name, labels)
		db.Lookup(name, labels)
	}); n != 0 {
		t.Fatalf("%v allocations per lookup of existing series", n)
	}
}

// Readers, writers, flushes and merges run together; every scan sees a
// consistent, complete prefix of what each writer appended.
func TestConcurrentScanFlushMerge(t *testing.T) {
	o := testOpts()
	o.FlushSamples = 500
	db := openTest(t, t.TempDir(), o)
	defer db.Close()
	const writers, rounds = 3, 60
	refs := make([]SeriesRef, writers)
	for i := range refs {
		refs[i], _ = db.GetOrCreate([]byte(fmt.Sprint("w", i)), nil)
	}
	base := time.Now().UnixMilli() / 1000 * 1000
	var acked [writers]atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				ss := make([]Sample, 50)
				for i := range ss {
					ss[i] = Sample{refs[w], base + int64(r*50+i)*1000, float64(i)}
				}
				if err := db.Append(ss); err != nil {
					t.Error(err)
					return
				}
				acked[w].Store(int64((r + 1) * 50))
			}
		}(w)
	}
	var bg sync.WaitGroup
	bg.Add(2)
	go func() {
		defer bg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := db.Flush(); err != nil {
				t.Error(err)
			}
			if _, err := db.mergeOnce(); err != nil {
				t.Error(err)
			}
		}
	}()
	go func() {
		defer bg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			for w := 0; w < writers; w++ {
				min := acked[w].Load()
				var n int64
				prev := base - 1000
				err := db.Scan(refs[w], 0, 1<<62, func(ts []int64, _ []float64) bool {
					for _, x := range ts {
						if x != prev+1000 {
							t.Errorf("writer %d: %d after %d", w, x, prev)
							return false
						}
						prev = x
						n++
					}
					return true
				})
				if err != nil {
					t.Error(err)
				}
				if n < min {
					t.Errorf("writer %d: scan saw %d samples, %d were acknowledged", w, n, min)
				}
			}
		}
	}()
	wg.Wait()
	close(stop)
	bg.Wait()
	if st := db.Stats(); st.Flushes == 0 || st.Merges == 0 {
		t.Errorf("no flush or merge ran: %+v", st)
	} else if st.FlushTime <= 0 || st.MergeTime <= 0 {
		t.Errorf("flushes and merges ran, but took no time: %+v", st)
	}
}

func TestPostings(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir, nil)
	mk := func(name string, ls ...Label) SeriesRef {
		ref, err := db.GetOrCreate([]byte(name), ls)
		if err != nil {
			t.Fatal(err)
		}
		return ref
	}
	a := mk("up", Label{"job", "api"}, Label{"host", "a"})
	b := mk("up", Label{"job", "db"}, Label{"host", "a"})
	c := mk("load", Label{"host", "b"})
	mk("plain")
	check := func(db *DB) {
		t.Helper()
		if got, want := fmt.Sprint(db.Postings("host", "a")), fmt.Sprint([]SeriesRef{a, b}); got != want {
			t.Errorf("host=a: %s, want %s", got, want)
		}
		if got, want := fmt.Sprint(db.Postings("host", "b")), fmt.Sprint([]SeriesRef{c}); got != want {
			t.Errorf("host=b: %s, want %s", got, want)
		}
		if got := db.Postings("job", "nope"); len(got) != 0 {
			t.Errorf("job=nope: %v", got)
		}
		if got := fmt.Sprint(db.LabelValues("job")); got != "[api db]" {
			t.Errorf("job values: %s", got)
		}
		if got := fmt.Sprint(db.Names("")); got != "[load plain up]" {
			t.Errorf("names: %s", got)
		}
	}
	check(db)
	db.Close()
	db = openTest(t, dir, nil)
	defer db.Close()
	check(db)
}

// Append refuses a whole batch holding a time outside [MinTime, MaxTime].
// Times near the ends of int64 used to be stored: a sample at
// math.MaxInt64 could never be scanned (Scan's bound is exclusive), the
// window of one near math.MinInt64 overflowed and came first in
// ScanAggregates with a start near math.MaxInt64, and retention archived
// its day into partitions 292 million years ahead that no retention ever
// dropped.
func TestAppendTimeRange(t *testing.T) {
	now := time.Now().UTC()
	db := openTest(t, t.TempDir(), retentionOpts(&now))
	defer db.Close()
	ref, _ := db.GetOrCreate([]byte("m"), nil)
	for _, tt := range []int64{math.MinInt64, MinTime - 1, MaxTime + 1, math.MaxInt64} {
		err := db.Append([]Sample{{ref, now.UnixMilli(), 1}, {ref, tt, 2}})
		if !errors.Is(err, ErrTimeRange) {
			t.Errorf("append at %d: %v, want ErrTimeRange", tt, err)
		}
	}
	if ts, _ := collect(t, db, ref, math.MinInt64, math.MaxInt64); len(ts) != 0 {
		t.Fatalf("refused batches stored %v", ts)
	}
	ss := []Sample{{ref, MinTime, 1}, {ref, MinTime + 1, 2}, {ref, now.UnixMilli(), 3}, {ref, MaxTime, 4}}
	if err := db.Append(ss); err != nil {
		t.Fatal(err)
	}
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	if ts, _ := collect(t, db, ref, math.MinInt64, math.MaxInt64); len(ts) != len(ss) {
		t.Fatalf("scan found %v, want the %d samples", ts, len(ss))
	}
	for _, res := range ArchiveResolutions {
		r := res.Milliseconds()
		got := scanAggregates(t, db, ref, res, math.MinInt64, math.MaxInt64)
		if len(got) != 3 {
			t.Fatalf("res %v: %+v, want 3 windows", res, got)
		}
		for i, a := range got {
			if a.T > a.LastT || a.LastT-a.T >= r || i > 0 && a.T <= got[i-1].T {
				t.Errorf("res %v: window %d %+v", res, i, a)
			}
		}
	}
	// The oldest day is past every retention: dropped, not archived.
	if err := db.applyRetention(); err != nil {
		t.Fatal(err)
	}
	if st := db.Stats(); st.ArchiveParts != 0 {
		t.Errorf("%d archive parts for a day past every retention", st.ArchiveParts)
	}
}

// TestManifestOtherVersion: a data dir whose manifest another format
// version wrote is refused with a message that says so, not as damage.
func TestManifestOtherVersion(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := db.GetOrCreate([]byte("a"), nil)
	if err := db.Append([]Sample{{ref, 1000, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, manifestName)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(manifestMagic)-1] = '9'
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Open(dir, nil)
	if err == nil || errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), `format "VGMANIF9"`) {
		t.Fatalf("Open: %v; want an error naming the other format, not ErrCorrupt", err)
	}
}

// TestErrAfterWALFailure: once a write of the write-ahead log failed, Err
// says so (a health check reports it), and Append refuses.
func TestErrAfterWALFailure(t *testing.T) {
	db := openTest(t, t.TempDir(), nil)
	defer db.Close()
	ref, _ := db.GetOrCreate([]byte("a"), nil)
	if err := db.Append([]Sample{{ref, 1000, 1}}); err != nil || db.Err() != nil {
		t.Fatalf("append %v, Err %v", err, db.Err())
	}
	db.commitMu.Lock()
	db.seg.Close() // the next write of the segment fails
	db.commitMu.Unlock()
	if err := db.Append([]Sample{{ref, 2000, 1}}); err == nil {
		t.Fatal("append after the WAL failed: no error")
	}
	if err := db.Err(); err == nil || !strings.Contains(err.Error(), "wal segment") {
		t.Fatalf("Err = %v", err)
	}
}
