package tsdb

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

// Series without labels are found without a lock once they are no longer
// recent: creating many moves them into the lock-free map in copies of
// growing size, and lookups of the last ones created move those too. A
// reader looking names up while they are created finds each one once it
// exists, and always the same series.
func TestPlainLookupWithoutLock(t *testing.T) {
	db := openTest(t, t.TempDir(), nil)
	defer db.Close()
	const n = 5000
	names := make([][]byte, n)
	for i := range names {
		names[i] = []byte(fmt.Sprint("plain.", i))
	}
	refs := make([]SeriesRef, n)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range names {
			var err error
			if refs[i], err = db.GetOrCreate(names[i], nil); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	seen := make([]SeriesRef, n)
	for round := 0; round < 20; round++ {
		for i := range names {
			if ref, ok := db.Lookup(names[i], nil); ok {
				if seen[i] != 0 && seen[i] != ref {
					t.Fatalf("%s: ref %d, then %d", names[i], seen[i], ref)
				}
				seen[i] = ref
			}
		}
	}
	wg.Wait()
	x := db.idx
	x.mu.Lock()
	recent := len(x.recent)
	x.mu.Unlock()
	if recent > n/8+64 {
		t.Fatalf("%d of %d series still recent after they were created", recent, n)
	}
	// Each round looks every recent series up at least once: promoteAfter
	// rounds are enough to copy them into the map.
	for round := 0; round < promoteAfter && recent > 0; round++ {
		for i := range names {
			if ref, ok := db.Lookup(names[i], nil); !ok || ref != refs[i] {
				t.Fatalf("%s: ref %d %v, created as %d", names[i], ref, ok, refs[i])
			}
		}
		x.mu.Lock()
		recent = len(x.recent)
		x.mu.Unlock()
	}
	if recent != 0 {
		t.Fatalf("%d series still looked up under the lock after %d rounds of lookups", recent, promoteAfter)
	}
}

// A series without labels, once created, is always found, also while
// lookups and creations move recent series into a new lock-free map: a
// lookup that missed the map it loaded, and then found the series gone
// from recent because it moved into the next map, used to report it
// missing (the native protocol then takes an existing series for a new
// one, and may refuse it at --max-series).
func TestPlainLookupDuringPromotion(t *testing.T) {
	db := openTest(t, t.TempDir(), nil)
	defer db.Close()
	names := make([][]byte, 20000)
	for i := range names {
		names[i] = []byte(fmt.Sprint("p", i))
	}
	var created atomic.Int64
	var misses atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range names {
			if _, err := db.GetOrCreate(names[i], nil); err != nil {
				t.Error(err)
				created.Store(int64(len(names)))
				return
			}
			created.Store(int64(i + 1))
		}
	}()
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The last series created are the recent ones, and their
			// lookups make copies too.
			for c := created.Load(); c < int64(len(names)); c = created.Load() {
				for k := c - 1; k >= 0 && k > c-50; k-- {
					if _, ok := db.Lookup(names[k], nil); !ok {
						misses.Add(1)
					}
				}
			}
		}()
	}
	wg.Wait()
	if n := misses.Load(); n > 0 {
		t.Fatalf("%d lookups did not find a series that existed", n)
	}
}

// A series file whose record names a ref far past the series before it
// (bytes that pass their checksum but were not written by vigia) fails
// Open with ErrCorrupt. Such a ref used to make Open panic (a ref past
// the largest int) or allocate a slot for every ref below it until the
// process ran out of memory. A few refs without a series, which a failed
// WAL write at close leaves, still open, take no samples, and new series
// come after them.
func TestSeriesIndexRefBounds(t *testing.T) {
	for _, tc := range []struct {
		refs []SeriesRef
		ok   bool
	}{
		{[]SeriesRef{1, 1 << 63}, false},
		{[]SeriesRef{1, 1 << 40}, false},
		{[]SeriesRef{1, 2 + maxRefHoles + 1}, false},
		{[]SeriesRef{1, maxRefHoles / 2, maxRefHoles + 10}, false},
		{[]SeriesRef{1, 3}, true},
		{[]SeriesRef{1, 2 + maxRefHoles}, true},
	} {
		dir := t.TempDir()
		var data []byte
		for _, ref := range tc.refs {
			data = appendSeriesRecord(data, ref, fmt.Sprintf("s%d", ref), nil)
		}
		if err := os.WriteFile(filepath.Join(dir, seriesName), data, 0o644); err != nil {
			t.Fatal(err)
		}
		db, err := Open(dir, testOpts())
		if !tc.ok {
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("refs %v: open: %v, want ErrCorrupt", tc.refs, err)
			}
			if err == nil {
				db.Close()
			}
			continue
		}
		if err != nil {
			t.Fatalf("refs %v: open: %v", tc.refs, err)
		}
		// A ref without a series takes no samples: they would be
		// acknowledged, then skipped.
		if err := db.Append([]Sample{{Ref: 2, T: 1, V: 1}}); !errors.Is(err, ErrUnknownSeries) {
			t.Errorf("refs %v: append to ref 2: %v, want ErrUnknownSeries", tc.refs, err)
		}
		last := tc.refs[len(tc.refs)-1]
		ref, err := db.GetOrCreate([]byte("new"), nil)
		if err != nil || ref != last+1 {
			t.Fatalf("refs %v: new series got ref %d, %v; want %d", tc.refs, ref, err, last+1)
		}
		if n, want := db.NumSeries(), len(tc.refs)+1; n != want || db.Stats().Series != want {
			t.Errorf("refs %v and a new one: NumSeries %d, Stats.Series %d; want %d (the refs without series are not series)", tc.refs, n, db.Stats().Series, want)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		db = openTest(t, dir, nil)
		for _, r := range append(tc.refs, last+1) {
			if name, _, ok := db.SeriesInfo(r); !ok || (r <= last && name != fmt.Sprintf("s%d", r)) {
				t.Errorf("refs %v: series %d after reopen: %q, %v", tc.refs, r, name, ok)
			}
		}
		db.Close()
	}
}

// TestHugeRefs: refs past the int range are unknown series to every
// method that takes one, not an index out of range.
func TestHugeRefs(t *testing.T) {
	db := openTest(t, t.TempDir(), nil)
	defer db.Close()
	db.GetOrCreate([]byte("a"), nil)
	for _, ref := range []SeriesRef{1 << 63, 1<<64 - 1} {
		if err := db.Scan(ref, 0, 10, func([]int64, []float64) bool { return true }); !errors.Is(err, ErrUnknownSeries) {
			t.Errorf("Scan(%d): %v", ref, err)
		}
		if _, _, ok := db.SeriesInfo(ref); ok {
			t.Errorf("SeriesInfo(%d) found a series", ref)
		}
		if err := db.Append([]Sample{{ref, 1, 1}}); !errors.Is(err, ErrUnknownSeries) {
			t.Errorf("Append(%d): %v", ref, err)
		}
	}
}
