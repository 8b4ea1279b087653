package alert

import (
	"io"
	"log/slog"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/vigia-mon/vigia/internal/query"
	"github.com/vigia-mon/vigia/internal/tsdb"
)

const benchSeries = 10_000

// benchMonitor registers one rule per series over benchSeries series
// (refs 1..benchSeries, metrics "m0".."m9999"), on a bbolt file that syncs
// as the server's does, logging as JSON to nowhere (formatting included).
func benchMonitor(b *testing.B, limit float64) *Monitor {
	b.Helper()
	st := &fakeStore{refs: make(map[string][]tsdb.SeriesRef, benchSeries)}
	for i := range benchSeries {
		st.refs["m"+strconv.Itoa(i)] = []tsdb.SeriesRef{tsdb.SeriesRef(i + 1)}
	}
	db, err := bbolt.Open(filepath.Join(b.TempDir(), "meta.db"), 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	db.NoSync = true // registering 10,000 rules one fsync each is not what is measured
	defer func() { db.NoSync = false }()
	m, err := New(Options{DB: db, Refs: st.Refs, Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	ops := []query.Op{query.Avg, query.Max, query.Min, query.Count}
	for i := range benchSeries {
		if _, err := m.AddRule("m"+strconv.Itoa(i), ops[i%len(ops)], 10, limit, ""); err != nil {
			b.Fatal(err)
		}
	}
	return m
}

// BenchmarkCheck10kRules measures one check of 10,000 rules over 10,000
// series, each series having received one sample per second over a 60 s
// period (600,000 samples per check). "quiet": no rule crosses its limit;
// "all-firing": every rule fires, so the check also writes 10,000 states
// and history entries and logs and publishes 10,000 notifications.
func BenchmarkCheck10kRules(b *testing.B) {
	for _, bc := range []struct {
		name  string
		limit float64
	}{{"quiet", 1e9}, {"all-firing", -1}} {
		b.Run(bc.name, func(b *testing.B) {
			m := benchMonitor(b, bc.limit)
			batch := make([]tsdb.Sample, benchSeries)
			t0 := time.Now().UnixMilli()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				for s := range 60 {
					for j := range batch {
						batch[j] = tsdb.Sample{Ref: tsdb.SeriesRef(j + 1), T: t0 + int64(i*60+s)*1000, V: float64(j % 100)}
					}
					m.Observe(batch)
				}
				b.StartTimer()
				m.check()
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/check")
		})
	}
}

// BenchmarkObserve measures Observe per sample, in batches of 1,000, with
// 10,000 rules registered: "unwatched" feeds series no rule watches (the
// common case, which must cost about nothing), "watched" series that have
// rules.
func BenchmarkObserve(b *testing.B) {
	for _, bc := range []struct {
		name string
		base tsdb.SeriesRef
	}{{"unwatched", benchSeries + 1}, {"watched", 1}} {
		b.Run(bc.name, func(b *testing.B) {
			m := benchMonitor(b, 1e9)
			batch := make([]tsdb.Sample, 1000)
			for j := range batch {
				batch[j] = tsdb.Sample{Ref: bc.base + tsdb.SeriesRef(j*7%benchSeries), T: int64(j), V: 1}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				m.Observe(batch)
				if i%1000 == 999 {
					b.StopTimer()
					m.check() // keep memory bounded, as the schedule would
					b.StartTimer()
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/sample")
		})
	}
}

// BenchmarkObserveParallel is the unwatched case from every core at once:
// no shared lock or counter is touched.
func BenchmarkObserveParallel(b *testing.B) {
	m := benchMonitor(b, 1e9)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		batch := make([]tsdb.Sample, 1000)
		for j := range batch {
			batch[j] = tsdb.Sample{Ref: benchSeries + 1 + tsdb.SeriesRef(j), T: int64(j), V: 1}
		}
		for pb.Next() {
			m.Observe(batch)
		}
	})
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/sample")
}
