package query

import (
	"cmp"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/vigia-mon/vigia/internal/tsdb"
)

type sample struct {
	t int64
	v float64
}

// model computes q over samples (time-sorted) the slow way.
func model(samples []sample, q Spec) []Point {
	w := Windows{Op: q.Op, Step: q.Step, Start: q.From, HasStart: q.HasFrom}
	for _, s := range samples {
		if q.HasFrom && s.t < q.From || q.HasTo && s.t >= q.To {
			continue
		}
		w.Add([]int64{s.t}, []float64{s.v})
	}
	return w.Result()
}

func samePoints(got, want []Point, exact bool) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i].Start != want[i].Start {
			return false
		}
		g, w := got[i].Value, want[i].Value
		if exact && g != w || math.Abs(g-w) > 1e-9*math.Max(1, math.Abs(w)) {
			return false
		}
	}
	return true
}

// TestExecutorArchives queries a series whose older days only survive as
// archives: windows aligned to an archive answer as the raw data did,
// others answer from the raw data that is left.
func TestExecutorArchives(t *testing.T) {
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	dir := t.TempDir()
	// First without retention passes (they run every MergeInterval, an
	// hour here), then reopened with frequent ones.
	opts := &tsdb.Options{
		Now:           func() time.Time { return now },
		RawRetention:  48 * time.Hour,
		MergeInterval: time.Hour,
	}
	db, err := tsdb.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { db.Close() }()
	ref, _ := db.GetOrCreate([]byte("m"), nil)
	r := rand.New(rand.NewPCG(1, 1))
	start := now.Add(-5 * 24 * time.Hour).UnixMilli()
	var all []sample
	var batch []tsdb.Sample
	for ts := start; ts < now.UnixMilli(); ts += 7000 + r.Int64N(6000) {
		v := math.Round(r.NormFloat64()*1000) / 100
		all = append(all, sample{ts, v})
		batch = append(batch, tsdb.Sample{Ref: ref, T: ts, V: v})
	}
	if err := db.Append(batch); err != nil {
		t.Fatal(err)
	}
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	day := int64(86400000)
	from := start/day*day + day // an aligned from, in the archived days
	queries := []Spec{
		{Op: Max, Step: 60000},
		{Op: Count, Step: 3600000, From: from, HasFrom: true},
		{Op: Min, Step: day, From: from, HasFrom: true},
		{Op: Last, Step: 600000, From: from, HasFrom: true, To: now.UnixMilli() - 3600000, HasTo: true},
		{Op: Avg, Step: 3600000, From: from, HasFrom: true},
		{Op: Sum, Step: 2 * day, From: from - day, HasFrom: true},
	}
	var ex Executor
	for _, q := range queries {
		q.Name = []byte("m")
		got, err := ex.Run(db, q)
		if err != nil || !samePoints(got, model(all, q), true) {
			t.Fatalf("before retention: %+v: %v", q, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	opts.MergeInterval = 5 * time.Millisecond
	if db, err = tsdb.Open(dir, opts); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for db.ArchivedTo() == math.MinInt64 {
		if time.Now().After(deadline) {
			t.Fatal("retention did not archive")
		}
		time.Sleep(5 * time.Millisecond)
	}
	archived := db.ArchivedTo()
	if archived <= from {
		t.Fatalf("archived to %d, before the queries' from %d", archived, from)
	}
	for _, q := range queries {
		q.Name = []byte("m")
		got, err := ex.Run(db, q)
		exact := q.Op != Avg && q.Op != Sum // sums add up in another order
		want := model(all, q)
		if !q.HasFrom {
			// The first window starts at the first archive point, the
			// start of the first sample's minute.
			q.From, q.HasFrom = start/60000*60000, true
			want = model(all, q)
		}
		if err != nil || !samePoints(got, want, exact) {
			t.Fatalf("after retention: %+v: %v\ngot  %v\nwant %v", q, err, head(got), head(want))
		}
	}
	// Windows that archive points do not fit: only the raw data left answers.
	q := Spec{Name: []byte("m"), Op: Count, Step: 60000, From: from + 30000, HasFrom: true}
	got, _ := ex.Run(db, q)
	var left []sample
	for _, s := range all {
		if s.t >= archived {
			left = append(left, s)
		}
	}
	if want := model(left, q); !samePoints(got, want, true) {
		t.Fatalf("unaligned: got %v, want %v", head(got), head(want))
	}
	if _, err := ex.Run(db, Spec{Name: []byte("nope"), Op: Max, Step: 1000}); !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
}

func head(p []Point) []Point { return p[:min(len(p), 5)] }

// TestExecutorArchivesLastAcrossSeries: LAST over archived windows of a
// name with several series takes the latest sample of all of them, not
// the last series' (archive points carry their last sample's time).
func TestExecutorArchivesLastAcrossSeries(t *testing.T) {
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	opts := &tsdb.Options{Now: func() time.Time { return now }, RawRetention: 48 * time.Hour, MergeInterval: 5 * time.Millisecond}
	db, err := tsdb.Open(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	day := now.Add(-5*24*time.Hour).UnixMilli() / 86400000 * 86400000
	a, _ := db.GetOrCreate([]byte("m"), []tsdb.Label{{Name: "k", Value: "a"}})
	b, _ := db.GetOrCreate([]byte("m"), []tsdb.Label{{Name: "k", Value: "b"}})
	if err := db.Append([]tsdb.Sample{{Ref: a, T: day + 50000, V: 1}, {Ref: b, T: day + 10000, V: 2}}); err != nil {
		t.Fatal(err)
	}
	var ex Executor
	q := Spec{Name: []byte("m"), Op: Last, Step: 60000, From: day, HasFrom: true}
	if got, err := ex.Run(db, q); err != nil || len(got) != 1 || got[0].Value != 1 {
		t.Fatalf("from the raw data: %v, %v; want [1]", got, err)
	}
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); db.ArchivedTo() <= day; {
		if time.Now().After(deadline) {
			t.Fatal("retention did not archive")
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, step := range []int64{60000, 3600000} {
		q.Step = step
		if got, err := ex.Run(db, q); err != nil || len(got) != 1 || got[0].Value != 1 {
			t.Fatalf("from the archives, step %d: %v, %v; want [1]", step, got, err)
		}
	}
}

// archiveStore is a Store of one series, "m", whose samples all lie before
// ArchivedTo: only its 1-minute archive points answer.
type archiveStore struct {
	archivedTo int64
	points     []tsdb.Aggregate
}

func (s *archiveStore) RefsByName(name []byte) []tsdb.SeriesRef {
	if string(name) != "m" {
		return nil
	}
	return []tsdb.SeriesRef{1}
}

func (s *archiveStore) Scan(tsdb.SeriesRef, int64, int64, func([]int64, []float64) bool) error {
	return nil
}

func (s *archiveStore) ScanAggregates(_ tsdb.SeriesRef, res time.Duration, mint, maxt int64, fn func([]tsdb.Aggregate) bool) error {
	if res != time.Minute {
		return nil
	}
	var in []tsdb.Aggregate
	for _, a := range s.points {
		if a.T >= mint && a.T < maxt {
			in = append(in, a)
		}
	}
	fn(in)
	return nil
}

func (s *archiveStore) ArchivedTo() int64 { return s.archivedTo }

// TestExecutorMaxPointsArchived: the bound on windows holds for a query
// the archives answer whole, as for one that reaches the raw data.
func TestExecutorMaxPointsArchived(t *testing.T) {
	const day = 86400000
	st := &archiveStore{archivedTo: day}
	for i := range int64(10) {
		st.points = append(st.points, tsdb.Aggregate{T: i * 60000, Count: 1, Sum: 1, Min: 1, Max: 1, Last: 1, LastT: i * 60000})
	}
	var ex Executor
	for _, q := range []Spec{
		{Name: []byte("m"), Op: Count, Step: 60000, MaxPoints: 5},
		{Name: []byte("m"), Op: Count, Step: 60000, From: 0, HasFrom: true, To: day, HasTo: true, MaxPoints: 5},
		{Name: []byte("m"), Op: Count, Step: 60000, To: 3600000, HasTo: true, MaxPoints: 5},
	} {
		if got, err := ex.Run(st, q); !errors.Is(err, ErrTooManyPoints) {
			t.Errorf("%+v: %d points, %v; want ErrTooManyPoints", q, len(got), err)
		}
	}
	q := Spec{Name: []byte("m"), Op: Count, Step: 60000, To: 3600000, HasTo: true, MaxPoints: 10}
	if got, err := ex.Run(st, q); err != nil || len(got) != 10 {
		t.Errorf("%+v: %d points, %v; want 10", q, len(got), err)
	}
}

// genStore is a Store of series generated as they are scanned: series i
// has n[i] samples at times start[i] + j*step[i] (j = 0, 1, ...), of value
// i*1e9 + j. It reuses its chunk buffer, spoiling it once a chunk is
// passed on, as the store's slices are valid only during the call.
type genStore struct {
	n, start, step []int64
	fail           int // Scan of series fail-1 fails after its first chunk
	produced       int64
}

func (s *genStore) RefsByName([]byte) []tsdb.SeriesRef {
	refs := make([]tsdb.SeriesRef, len(s.n))
	for i := range refs {
		refs[i] = tsdb.SeriesRef(i)
	}
	return refs
}

func (s *genStore) Scan(ref tsdb.SeriesRef, mint, maxt int64, fn func([]int64, []float64) bool) error {
	i := int(ref)
	ts, vs := make([]int64, 0, 8192), make([]float64, 0, 8192)
	for j := int64(0); j < s.n[i]; j++ {
		t := s.start[i] + j*s.step[i]
		if t < mint || t >= maxt {
			continue
		}
		ts, vs = append(ts, t), append(vs, float64(i)*1e9+float64(j))
		if len(ts) == cap(ts) || j == s.n[i]-1 {
			s.produced += int64(len(ts))
			if !fn(ts, vs) {
				return nil
			}
			for k := range ts {
				ts[k], vs[k] = -1, -1
			}
			ts, vs = ts[:0], vs[:0]
			if s.fail == i+1 {
				return errors.New("checksum mismatch")
			}
		}
	}
	if len(ts) > 0 {
		s.produced += int64(len(ts))
		fn(ts, vs)
	}
	return nil
}

func (s *genStore) ScanAggregates(tsdb.SeriesRef, time.Duration, int64, int64, func([]tsdb.Aggregate) bool) error {
	return nil
}

func (s *genStore) ArchivedTo() int64 { return 0 }

// TestScanMerged: the samples of several series come in time order, equal
// times in the order of the series, whether they are merged in memory or
// as they stream.
func TestScanMerged(t *testing.T) {
	for _, n := range []int64{1000, 3000, mergeBudget/2 + 5000} {
		st := &genStore{n: []int64{n, n, n / 3}, start: []int64{0, 500, 0}, step: []int64{1000, 1000, 3000}}
		var want []sample
		for i := range st.n {
			for j := range st.n[i] {
				want = append(want, sample{st.start[i] + j*st.step[i], float64(i)*1e9 + float64(j)})
			}
		}
		slices.SortStableFunc(want, func(a, b sample) int { return cmp.Compare(a.t, b.t) })
		var got []sample
		err := ScanMerged(st, st.RefsByName(nil), 0, math.MaxInt64, nil, func(ts []int64, vs []float64) bool {
			for i := range ts {
				got = append(got, sample{ts[i], vs[i]})
			}
			return true
		})
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("%d samples a series: %v, %d samples; want %d", n, err, len(got), len(want))
		}
	}
}

// TestScanMergedStreams: merging long series passes samples on before it
// has read them all, and stops reading when told to.
func TestScanMergedStreams(t *testing.T) {
	const n = 4 * mergeBudget
	st := &genStore{n: []int64{n, n}, start: []int64{0, 0}, step: []int64{1000, 1000}}
	calls := 0
	err := ScanMerged(st, st.RefsByName(nil), 0, math.MaxInt64, nil, func(ts []int64, vs []float64) bool {
		calls++
		return calls < 3
	})
	if err != nil || st.produced > 2*mergeBudget {
		t.Errorf("%v; read %d samples of %d to pass on 3 chunks", err, st.produced, 2*n)
	}
	st = &genStore{n: []int64{n, n}, start: []int64{0, 0}, step: []int64{1000, 1000}, fail: 2}
	err = ScanMerged(st, st.RefsByName(nil), 0, math.MaxInt64, nil, func([]int64, []float64) bool { return true })
	if err == nil || err.Error() != "checksum mismatch" {
		t.Errorf("a scan failing: %v, want its error", err)
	}
}

// BenchmarkScanMerged merges 4 series of 256 Ki samples each, interleaved,
// as they stream.
func BenchmarkScanMerged(b *testing.B) {
	const n = 1 << 18
	st := &genStore{n: []int64{n, n, n, n}, start: []int64{0, 250, 500, 750}, step: []int64{1000, 1000, 1000, 1000}}
	refs := st.RefsByName(nil)
	b.SetBytes(4 * n)
	b.ReportAllocs()
	for b.Loop() {
		ScanMerged(st, refs, 0, math.MaxInt64, nil, func([]int64, []float64) bool { return true })
	}
}
