package tsdb

import (
	"fmt"
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
