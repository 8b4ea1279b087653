package alert

import (
	"bytes"
	"errors"
	"log/slog"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/vigia-mon/vigia/internal/query"
	"github.com/vigia-mon/vigia/internal/tsdb"
)

// rulesBucket returns a copy of every stored rule record.
func rulesBucket(t *testing.T, db *bbolt.DB) map[string]string {
	t.Helper()
	out := map[string]string{}
	db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketRules).ForEach(func(k, v []byte) error {
			out[string(k)] = string(v)
			return nil
		})
	})
	return out
}

func TestBadRulesChangeNothing(t *testing.T) {
	st := newFakeStore("cpu")
	db := openDB(t, filepath.Join(t.TempDir(), "meta.db"))
	defer db.Close()
	m := newTestMonitor(t, st, Options{DB: db})
	if _, err := m.AddRule("cpu", query.Max, 60, 90, ""); err != nil {
		t.Fatal(err)
	}
	beforeList, _ := m.ListJSON()
	beforeDB := rulesBucket(t, db)
	beforeIdx := m.idx.Load()

	for _, tc := range []struct {
		name   string
		metric string
		op     query.Op
		secs   int64
		limit  float64
		cmp    string
	}{
		{"unknown op 0", "cpu", 0, 60, 1, ""},
		{"unknown op 99", "cpu", 99, 60, 1, ""},
		{"secs 0", "cpu", query.Avg, 0, 1, ""},
		{"secs negative", "cpu", query.Avg, -5, 1, ""},
		{"secs too large", "cpu", query.Avg, MaxSecs + 1, 1, ""},
		{"limit NaN", "cpu", query.Avg, 60, math.NaN(), ""},
		{"limit +Inf", "cpu", query.Avg, 60, math.Inf(1), ""},
		{"limit -Inf", "cpu", query.Avg, 60, math.Inf(-1), ""},
		{"cmp ==", "cpu", query.Avg, 60, 1, "=="},
		{"cmp !=", "cpu", query.Avg, 60, 1, "!="},
		{"cmp gt", "cpu", query.Avg, 60, 1, "gt"},
		{"empty metric", "", query.Avg, 60, 1, ""},
		{"metric with space", "c pu", query.Avg, 60, 1, ""},
		{"metric with newline", "cpu\n", query.Avg, 60, 1, ""},
		{"metric with an em space", "c\u2003pu", query.Avg, 60, 1, ""},
		{"metric with a C1 control", "c\u0085pu", query.Avg, 60, 1, ""},
		{"metric too long", string(bytes.Repeat([]byte{'a'}, 256)), query.Avg, 60, 1, ""},
		{"bad rule on a missing metric", "nope", 0, 60, 1, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := m.AddRule(tc.metric, tc.op, tc.secs, tc.limit, tc.cmp)
			if !errors.Is(err, ErrBadRule) || id != 0 {
				t.Fatalf("AddRule = %d, %v; want ErrBadRule", id, err)
			}
		})
	}
	if _, err := m.AddRule("nope", query.Min, 1, 1, ""); !errors.Is(err, ErrMetricNotFound) {
		t.Fatalf("missing metric: %v, want ErrMetricNotFound", err)
	}
	afterList, _ := m.ListJSON()
	if !bytes.Equal(beforeList, afterList) {
		t.Errorf("ListJSON changed:\n%s\n%s", beforeList, afterList)
	}
	if after := rulesBucket(t, db); len(after) != len(beforeDB) {
		t.Errorf("stored rules changed: %d -> %d", len(beforeDB), len(after))
	}
	if m.idx.Load() != beforeIdx {
		t.Error("series index replaced by a rejected rule")
	}
}

func TestAddDuplicateAndDelete(t *testing.T) {
	st := newFakeStore("cpu", "mem")
	m := newTestMonitor(t, st, Options{})
	a, err := m.AddRule("cpu", query.Max, 60, 90, "")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := m.AddRule("cpu", query.Max, 60, 90, ">")
	if a != b {
		t.Errorf("same rule registered twice: ids %d and %d", a, b)
	}
	c, _ := m.AddRule("cpu", query.Max, 60, 90, ">=")
	if c == a {
		t.Error("a different comparison reused the id")
	}
	if err := m.DeleteRule(a); err != nil {
		t.Fatal(err)
	}
	if err := m.DeleteRule(a); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v, want ErrNotFound", err)
	}
	ls := list(t, m)
	if len(ls) != 1 || ls[0].ID != c || ls[0].Cmp != ">=" {
		t.Fatalf("after delete: %+v", ls)
	}
	// The series stays watched while rule c needs it, and is dropped with it.
	m.Observe([]tsdb.Sample{sample(1, 1000, 1)})
	if m.pending.Load() != 1 {
		t.Fatalf("pending = %d, want 1", m.pending.Load())
	}
	m.DeleteRule(c)
	if m.idx.Load() != nil || m.pending.Load() != 0 {
		t.Fatalf("after deleting the last rule: index %v, pending %d", m.idx.Load(), m.pending.Load())
	}
	d, _ := m.AddRule("mem", query.Avg, 1, 1, "")
	if d <= c {
		t.Errorf("id %d reused or lower than deleted %d", d, c)
	}
}

// TestStates walks an alert through inactive, firing, firing again,
// resolved and firing again, checking what each check sends.
func TestStates(t *testing.T) {
	st := newFakeStore("cpu")
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	m := newTestMonitor(t, st, Options{Now: func() time.Time { return now }})
	events, cancel := m.Subscribe()
	defer cancel()
	id, _ := m.AddRule("cpu", query.Max, 10, 90, "")

	step := func(samples ...tsdb.Sample) []eventJSON {
		t.Helper()
		now = now.Add(time.Minute)
		m.Observe(samples)
		m.check()
		var out []eventJSON
		for _, b := range drain(events) {
			out = append(out, decodeEvent(t, b))
		}
		return out
	}
	state := func() alertJSON { t.Helper(); return list(t, m)[0] }

	if s := state(); s.State != "inactive" || s.LastValue != nil {
		t.Fatalf("new alert: %+v", s)
	}
	if ev := step(sample(1, 1_000, 50)); len(ev) != 0 || state().State != "inactive" {
		t.Fatalf("below limit: events %v, state %s", ev, state().State)
	}
	// Windows of 10 s from the first sample (1 s): [1,11) [11,21) [21,31).
	ev := step(sample(1, 1_000, 10), sample(1, 12_000, 95), sample(1, 15_000, 97), sample(1, 25_000, 91))
	if len(ev) != 1 {
		t.Fatalf("crossing: %d events", len(ev))
	}
	e := ev[0]
	if e.ID != id || e.State != "firing" || e.Value != 97 || e.WindowStart != "1970-01-01T00:00:11.000Z" ||
		e.Windows != 2 || e.Metric != "cpu" || e.Op != "MAX" || e.Secs != 10 || e.Limit != 90 || e.Cmp != ">" {
		t.Fatalf("firing event: %+v", e)
	}
	firedAt := e.Time
	if s := state(); s.State != "firing" || s.Since != firedAt || *s.ActiveAt != firedAt || *s.LastValue != 97 {
		t.Fatalf("firing state: %+v", s)
	}
	if ev := step(sample(1, 40_000, 99)); len(ev) != 1 || ev[0].State != "firing" || ev[0].ActiveAt != firedAt {
		t.Fatalf("still firing: %+v", ev)
	}
	if ev := step(); len(ev) != 0 || state().State != "firing" {
		t.Fatalf("no samples must change nothing: %+v %s", ev, state().State)
	}
	ev = step(sample(1, 50_000, 20))
	if len(ev) != 1 || ev[0].State != "resolved" || ev[0].Value != 20 {
		t.Fatalf("resolving: %+v", ev)
	}
	if s := state(); s.State != "resolved" || s.Since != ev[0].Time || *s.ActiveAt != firedAt {
		t.Fatalf("resolved state: %+v", s)
	}
	if ev := step(sample(1, 60_000, 30)); len(ev) != 0 {
		t.Fatalf("resolved and quiet: %+v", ev)
	}
	if ev := step(sample(1, 70_000, 100)); len(ev) != 1 || ev[0].State != "firing" || ev[0].ActiveAt == firedAt {
		t.Fatalf("firing again: %+v", ev)
	}
}

func TestNotifyChangesOnly(t *testing.T) {
	st := newFakeStore("q")
	m := newTestMonitor(t, st, Options{NotifyChangesOnly: true})
	events, cancel := m.Subscribe()
	defer cancel()
	m.AddRule("q", query.Count, 60, 0, "")
	var states []string
	for i := range 4 {
		m.Observe([]tsdb.Sample{sample(1, int64(i)*1000, 1)})
		m.check()
		for _, b := range drain(events) {
			states = append(states, decodeEvent(t, b).State)
		}
	}
	if len(states) != 1 || states[0] != "firing" {
		t.Fatalf("events %v, want one firing", states)
	}
}

// TestComparisonsAndOps checks every comparison, and that a check
// aggregates exactly as query.Windows does for QUERY, over unsorted input
// and a metric made of two series.
func TestComparisonsAndOps(t *testing.T) {
	ts := []int64{5_000, 1_000, 3_000, 1_000, 9_000, 4_000}
	vs := []float64{6, 2, 4, 1, 10, 5}
	for _, op := range query.Ops {
		for _, c := range []string{">", "<", ">=", "<="} {
			t.Run(op.String()+c, func(t *testing.T) {
				st := newFakeStore()
				st.set("m", 1, 2)
				m := newTestMonitor(t, st, Options{})
				events, cancel := m.Subscribe()
				defer cancel()
				// The limit sits on the value of the window [3 s, 6 s), so
				// the strict and non-strict comparisons differ.
				want := (&query.Windows{Op: op, Step: 3000})
				sorted := byTime{ts: append([]int64(nil), ts...), vs: append([]float64(nil), vs...)}
				sortStable(sorted)
				want.Add(sorted.ts, sorted.vs)
				pts := want.Result()
				limit := pts[1].Value
				m.AddRule("m", op, 3, limit, c)
				for i := range ts {
					m.Observe([]tsdb.Sample{sample(tsdb.SeriesRef(1+i%2), ts[i], vs[i])})
				}
				m.check()
				cc, _ := parseCmp(c)
				var crossing int
				worst := pts[0]
				for _, p := range pts {
					if cc.crosses(p.Value, limit) {
						crossing++
					}
					if cc.worse(p.Value, worst.Value) {
						worst = p
					}
				}
				got := drain(events)
				if crossing == 0 {
					if len(got) != 0 {
						t.Fatalf("fired with no window crossing: %s", got[0])
					}
					return
				}
				if len(got) != 1 {
					t.Fatalf("%d events, want 1 (points %v, limit %v)", len(got), pts, limit)
				}
				e := decodeEvent(t, got[0])
				if e.Windows != crossing || e.Value != worst.Value || e.WindowStart != fmtTime(worst.Start) {
					t.Fatalf("event %+v, want %d crossing, worst %+v", e, crossing, worst)
				}
			})
		}
	}
}

func sortStable(s byTime) {
	// insertion sort: stable, and independent of the code under test
	for i := 1; i < s.Len(); i++ {
		for j := i; j > 0 && s.Less(j, j-1); j-- {
			s.Swap(j, j-1)
		}
	}
}

// TestPersistence registers alerts, fires one, reopens the bbolt file
// with a new Monitor and finds the rules, states and history.
func TestPersistence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	st := newFakeStore("cpu", "disk")
	db := openDB(t, path)
	m := newTestMonitor(t, st, Options{DB: db})
	a, _ := m.AddRule("cpu", query.Avg, 30, 0.5, "<=")
	b, _ := m.AddRule("disk", query.Max, 60, 90, "")
	m.Observe([]tsdb.Sample{sample(2, 1000, 95)})
	m.check()
	before := list(t, m)
	hist, _, _ := m.history(0, math.MaxInt64, 0, 100, nil)
	db.Close()

	db = openDB(t, path)
	defer db.Close()
	m2 := newTestMonitor(t, st, Options{DB: db})
	after := list(t, m2)
	if len(after) != 2 || after[0].ID != a || after[1].ID != b {
		t.Fatalf("after reopen: %+v", after)
	}
	for i := range before {
		x, y := before[i], after[i]
		if x.Metric != y.Metric || x.Op != y.Op || x.Secs != y.Secs || x.Limit != y.Limit || x.Cmp != y.Cmp ||
			x.State != y.State || x.Since != y.Since || x.Created != y.Created || (x.LastValue == nil) != (y.LastValue == nil) {
			t.Errorf("alert %d changed across restart:\n%+v\n%+v", x.ID, x, y)
		}
	}
	if after[1].State != "firing" || *after[1].LastValue != 95 {
		t.Errorf("firing state lost: %+v", after[1])
	}
	hist2, _, _ := m2.history(0, math.MaxInt64, 0, 100, nil)
	if !bytes.Equal(hist, hist2) || bytes.Count(hist2, []byte(`"state":"firing"`)) != 1 {
		t.Errorf("history changed across restart:\n%s\n%s", hist, hist2)
	}
	// The reloaded rule still watches its series and still fires.
	events, cancel := m2.Subscribe()
	defer cancel()
	m2.Observe([]tsdb.Sample{sample(2, 2000, 99)})
	m2.check()
	if got := drain(events); len(got) != 1 || decodeEvent(t, got[0]).ID != b {
		t.Fatalf("reloaded rule did not fire: %q", got)
	}
	if c, _ := m2.AddRule("cpu", query.Count, 1, 1, ""); c <= b {
		t.Errorf("new id %d not above %d", c, b)
	}
}

// TestDamagedRecord flips a byte of a stored rule: New reports and skips
// it and keeps the others.
func TestDamagedRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	st := newFakeStore("cpu")
	db := openDB(t, path)
	m := newTestMonitor(t, st, Options{DB: db})
	a, _ := m.AddRule("cpu", query.Avg, 30, 1, "")
	b, _ := m.AddRule("cpu", query.Avg, 30, 2, "")
	db.Update(func(tx *bbolt.Tx) error {
		bk := tx.Bucket(bucketRules)
		v := append([]byte(nil), bk.Get(idKey(a))...)
		v[3] ^= 1
		return bk.Put(idKey(a), v)
	})
	m2 := newTestMonitor(t, st, Options{DB: db})
	ls := list(t, m2)
	if len(ls) != 1 || ls[0].ID != b || m2.Stats().CorruptRecords != 1 {
		t.Fatalf("after damage: %+v, corrupt %d", ls, m2.Stats().CorruptRecords)
	}
	db.Close()
}

func TestHistoryBounded(t *testing.T) {
	st := newFakeStore("x")
	now := time.UnixMilli(1_000_000)
	m := newTestMonitor(t, st, Options{HistoryLimit: 5, HistoryMaxAge: time.Hour, Now: func() time.Time { return now }})
	id, _ := m.AddRule("x", query.Last, 1, 0, "")
	for i := range 8 {
		now = now.Add(time.Second)
		m.Observe([]tsdb.Sample{sample(1, int64(i)*1000, 1)})
		m.check()
	}
	var got []eventJSON
	b, _, _ := m.history(0, math.MaxInt64, id, 100, nil)
	decodeJSON(t, b, &got)
	if len(got) != 5 || got[0].Time != fmtTime(now.UnixMilli()) {
		t.Fatalf("history kept %d entries, newest %v; want the 5 newest", len(got), got)
	}
	// Age: an hour later, one more check prunes everything older.
	now = now.Add(2 * time.Hour)
	m.Observe([]tsdb.Sample{sample(1, 99_000, 1)})
	m.check()
	b, _, _ = m.history(0, math.MaxInt64, 0, 100, nil)
	decodeJSON(t, b, &got)
	if len(got) != 1 {
		t.Fatalf("after max age: %d entries, want 1", len(got))
	}
	// Checks that notify nothing prune too, once the oldest entry is due.
	now = now.Add(2 * time.Hour)
	m.check()
	b, _, _ = m.history(0, math.MaxInt64, 0, 100, nil)
	decodeJSON(t, b, &got)
	if len(got) != 0 {
		t.Fatalf("after max age, with no notification: %d entries, want 0", len(got))
	}
}

// TestNewSeriesWatched: a series created after the rule (a new label set
// of the same metric) is watched from the next check on.
func TestNewSeriesWatched(t *testing.T) {
	st := newFakeStore("m")
	m := newTestMonitor(t, st, Options{})
	events, cancel := m.Subscribe()
	defer cancel()
	m.AddRule("m", query.Max, 60, 10, "")
	st.set("m", 1, 7)
	m.check()
	m.Observe([]tsdb.Sample{sample(7, 1000, 11)})
	m.check()
	if got := drain(events); len(got) != 1 {
		t.Fatalf("sample of the new series: %d events", len(got))
	}
}

// TestLogOverflowedValue: a SUM of finite samples that overflows is
// logged as "inf", as in the notification's JSON, by the JSON log format
// too (which cannot encode an infinite number).
func TestLogOverflowedValue(t *testing.T) {
	var logs bytes.Buffer
	st := newFakeStore("bytes")
	m := newTestMonitor(t, st, Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	m.AddRule("bytes", query.Sum, 60, 1, "")
	m.Observe([]tsdb.Sample{sample(1, 1000, 1.5e308), sample(1, 2000, 1.5e308)})
	m.check()
	var line struct {
		Msg   string `json:"msg"`
		Limit any    `json:"limit"`
		Value any    `json:"value"`
	}
	for _, l := range bytes.Split(logs.Bytes(), []byte{'\n'}) {
		if bytes.Contains(l, []byte(`"alert firing"`)) {
			decodeJSON(t, l, &line)
		}
	}
	if line.Msg == "" || line.Value != "inf" || line.Limit != 1.0 {
		t.Fatalf("firing log line: value %#v, limit %#v; want \"inf\" and 1\n%s", line.Value, line.Limit, logs.Bytes())
	}
}

// TestDamagedHistoryRecord: a damaged history entry is skipped, counted
// and logged once, however often the history is read.
func TestDamagedHistoryRecord(t *testing.T) {
	st := newFakeStore("x")
	var logs bytes.Buffer
	db := openDB(t, filepath.Join(t.TempDir(), "meta.db"))
	m := newTestMonitor(t, st, Options{DB: db, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if _, err := m.AddRule("x", query.Last, 1, 0, ""); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		m.Observe([]tsdb.Sample{sample(1, int64(i)*1000, 1)})
		m.check()
	}
	db.Update(func(tx *bbolt.Tx) error {
		bk := tx.Bucket(bucketHistory)
		k, v := bk.Cursor().First()
		v = append([]byte(nil), v...)
		v[3] ^= 1
		return bk.Put(append([]byte(nil), k...), v)
	})
	for range 3 {
		hist, _, err := m.history(0, math.MaxInt64, 0, 100, nil)
		if err != nil {
			t.Fatal(err)
		}
		if n := bytes.Count(hist, []byte(`"state":"firing"`)); n != 1 {
			t.Fatalf("history after damage holds %d entries, want the undamaged one: %s", n, hist)
		}
	}
	if c := m.Stats().CorruptRecords; c != 1 {
		t.Errorf("CorruptRecords %d after three reads of one damaged entry, want 1", c)
	}
	if n := strings.Count(logs.String(), "alert history record is damaged"); n != 1 {
		t.Errorf("damaged entry logged %d times, want once:\n%s", n, logs.String())
	}
}

// TestDeleteFiringResolves: deleting a firing alert notifies its
// resolution, to subscribers and in the history, so that a receiver that
// tracks firing alerts does not keep it firing; deleting a quiet one
// notifies nothing.
func TestDeleteFiringResolves(t *testing.T) {
	st := newFakeStore("cpu")
	now := time.UnixMilli(1_000_000)
	m := newTestMonitor(t, st, Options{Now: func() time.Time { return now }})
	firing, _ := m.AddRule("cpu", query.Max, 60, 90, "")
	quiet, _ := m.AddRule("cpu", query.Max, 60, 99, "")
	events, cancel := m.Subscribe()
	defer cancel()
	m.Observe([]tsdb.Sample{sample(1, 1000, 95)})
	m.check()
	if got := drain(events); len(got) != 1 || decodeEvent(t, got[0]).State != "firing" {
		t.Fatalf("check: %q, want alert %d firing", got, firing)
	}
	now = now.Add(time.Minute)
	if err := m.DeleteRule(quiet); err != nil {
		t.Fatal(err)
	}
	if got := drain(events); len(got) != 0 {
		t.Errorf("deleting a quiet alert notified %q", got)
	}
	if err := m.DeleteRule(firing); err != nil {
		t.Fatal(err)
	}
	got := drain(events)
	if len(got) != 1 {
		t.Fatalf("deleting a firing alert notified %q, want its resolution", got)
	}
	if e := decodeEvent(t, got[0]); e.ID != firing || e.State != "resolved" || e.Value != 95 {
		t.Errorf("resolution on delete: %+v", e)
	}
	hist, _, _ := m.history(0, math.MaxInt64, firing, 100, nil)
	if !bytes.Contains(hist, []byte(`"state":"resolved"`)) {
		t.Errorf("history after deleting a firing alert: %s", hist)
	}
}
