package alert

import (
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/vigia-mon/vigia/internal/query"
	"github.com/vigia-mon/vigia/internal/tsdb"
)

// fillDB makes db behave as on a full disk: it caps the file at its size
// and fills every free page, so that the next write transaction fails.
// Setting db.MaxSize to 0 makes room again.
func fillDB(t *testing.T, db *bbolt.DB) {
	t.Helper()
	fi, err := os.Stat(db.Path())
	if err != nil {
		t.Fatal(err)
	}
	db.MaxSize = int(fi.Size())
	for size, i := 1<<16, uint32(0); size > 0; i++ {
		err := db.Update(func(tx *bbolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("junk"))
			if err != nil {
				return err
			}
			return b.Put(binary.BigEndian.AppendUint32(nil, i), make([]byte, size))
		})
		if errors.Is(err, berrors.ErrMaxSizeReached) {
			size /= 2
		} else if err != nil {
			t.Fatal(err)
		}
	}
	// The smallest write rewrites no more than the root's page.
	for i := uint32(0); ; i++ {
		err := db.Update(func(tx *bbolt.Tx) error {
			_, err := tx.CreateBucket(binary.BigEndian.AppendUint32([]byte("junk"), i))
			return err
		})
		if errors.Is(err, berrors.ErrMaxSizeReached) {
			return
		} else if err != nil {
			t.Fatal(err)
		}
	}
}

// TestStatesStoredAfterAWriteFailure: a check whose write fails (a full
// disk) still notifies, and the states and notifications it could not
// store are stored by the next check that can, so that a restart finds
// the alert firing and its notification in the history.
func TestStatesStoredAfterAWriteFailure(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	st := newFakeStore("cpu")
	db := openDB(t, path)
	m := newTestMonitor(t, st, Options{DB: db, NotifyChangesOnly: true})
	id, err := m.AddRule("cpu", query.Max, 10, 90, "")
	if err != nil {
		t.Fatal(err)
	}
	events, cancel := m.Subscribe()
	defer cancel()

	fillDB(t, db)
	m.Observe([]tsdb.Sample{sample(1, 1000, 95)})
	m.check()
	if n := m.Stats().PersistenceErrors; n != 1 {
		t.Fatalf("%d persistence errors; the test wants its write to fail", n)
	}
	if got := drain(events); len(got) != 1 {
		t.Fatalf("a failed write must not hold the notification back: %q", got)
	}
	db.MaxSize = 0 // room again
	m.Observe([]tsdb.Sample{sample(1, 2000, 96)})
	m.check() // still firing: with NotifyChangesOnly, nothing new to store
	if n := m.Stats().PersistenceErrors; n != 1 {
		t.Fatalf("%d persistence errors after the disk has room", n)
	}
	db.Close()

	db = openDB(t, path)
	defer db.Close()
	m2 := newTestMonitor(t, st, Options{DB: db})
	if a := list(t, m2); len(a) != 1 || a[0].ID != id || a[0].State != "firing" {
		t.Fatalf("after a restart: %+v, want alert %d firing", a, id)
	}
	hist, _, err := m2.history(0, math.MaxInt64, 0, 100, nil)
	if err != nil || strings.Count(string(hist), `"state":"firing"`) != 1 {
		t.Fatalf("history after a restart: %s %v", hist, err)
	}
}
