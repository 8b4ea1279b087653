package alert

import (
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/vigia-mon/vigia/internal/tsdb"
)

// fakeStore maps metric names to series refs, as tsdb's index would.
type fakeStore struct {
	mu   sync.Mutex
	refs map[string][]tsdb.SeriesRef
}

func newFakeStore(names ...string) *fakeStore {
	s := &fakeStore{refs: map[string][]tsdb.SeriesRef{}}
	for i, n := range names {
		s.refs[n] = []tsdb.SeriesRef{tsdb.SeriesRef(i + 1)}
	}
	return s
}

func (s *fakeStore) set(name string, refs ...tsdb.SeriesRef) {
	s.mu.Lock()
	s.refs[name] = refs
	s.mu.Unlock()
}

func (s *fakeStore) Refs(name string) []tsdb.SeriesRef {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]tsdb.SeriesRef(nil), s.refs[name]...)
}

func openDB(t testing.TB, path string) *bbolt.DB {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newTestMonitor returns a monitor on a fresh bbolt file; opts.DB, Refs
// and Logger are filled in when unset.
func newTestMonitor(t testing.TB, st *fakeStore, opts Options) *Monitor {
	t.Helper()
	if opts.DB == nil {
		db := openDB(t, filepath.Join(t.TempDir(), "meta.db"))
		t.Cleanup(func() { db.Close() })
		opts.DB = db
	}
	if opts.Refs == nil {
		opts.Refs = st.Refs
	}
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	m, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// sample builds a tsdb sample at unix ms t.
func sample(ref tsdb.SeriesRef, t int64, v float64) tsdb.Sample {
	return tsdb.Sample{Ref: ref, T: t, V: v}
}

// eventJSON is what a subscriber receives, decoded.
type eventJSON struct {
	ID          int64   `json:"id"`
	Name        string  `json:"name"`
	Metric      string  `json:"metric"`
	Op          string  `json:"op"`
	Secs        int64   `json:"secs"`
	Limit       float64 `json:"limit"`
	Cmp         string  `json:"cmp"`
	State       string  `json:"state"`
	Value       float64 `json:"value"`
	WindowStart string  `json:"window_start"`
	Windows     int     `json:"breaching_windows"`
	ActiveAt    string  `json:"active_at"`
	Time        string  `json:"time"`
}

func decodeEvent(t testing.TB, b []byte) eventJSON {
	t.Helper()
	var e eventJSON
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("event %s: %v", b, err)
	}
	return e
}

// drain returns the events waiting on ch without blocking.
func drain(ch <-chan [][]byte) [][]byte {
	var out [][]byte
	for {
		select {
		case b, ok := <-ch:
			if !ok {
				return out
			}
			out = append(out, b...)
		default:
			return out
		}
	}
}

// list decodes ListJSON.
func list(t testing.TB, m *Monitor) []alertJSON {
	t.Helper()
	b, err := m.ListJSON()
	if err != nil {
		t.Fatal(err)
	}
	var out []alertJSON
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("ListJSON %s: %v", b, err)
	}
	return out
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func decodeJSON(t testing.TB, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
}
