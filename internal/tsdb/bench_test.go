package tsdb

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// refStart is the reference data set's first point (unix seconds): one
// hour into the current UTC day, so that retention keeps it.
var refStart = time.Now().UTC().Truncate(24*time.Hour).Unix() + 3600

// loadReference appends the reference data set (nseries x npoints, loadgen's
// model) with a few concurrent writers, one Append per series.
func loadReference(tb testing.TB, db *DB, nseries, npoints int) {
	tb.Helper()
	const writers = 4
	var wg sync.WaitGroup
	var next atomic.Int64
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ss := make([]Sample, npoints)
			for {
				i := int(next.Add(1) - 1)
				if i >= nseries {
					return
				}
				kind := "gauge"
				if i%2 == 1 {
					kind = "counter"
				}
				ref, err := db.GetOrCreate([]byte(fmt.Sprintf("bench.%s.s%06d", kind, i)), nil)
				if err != nil {
					errs <- err
					return
				}
				ts, vs := refPoints(42, i, npoints, refStart)
				for j := range ss {
					ss[j] = Sample{ref, ts[j], vs[j]}
				}
				if err := db.Append(ss); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Fatal(err)
	}
}

// dirSize returns the bytes of every file under dir.
func dirSize(tb testing.TB, dir string) int64 {
	var n int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			n += info.Size()
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// BenchmarkBytesPerSample loads the reference data set (10,000 series x
// 1,000 points), flushes it and reports the bytes on disk per sample. The
// WAL left after the flush holds no record but its preallocated segment
// files, whatever the data: they are reported apart, in MB.
func BenchmarkBytesPerSample(b *testing.B) {
	const nseries, npoints = 10000, 1000
	b.ReportAllocs()
	b.SetBytes(nseries * npoints * 16)
	for i := 0; i < b.N; i++ {
		dir := b.TempDir()
		o := testOpts()
		o.walSegmentSize = defaultWALSegmentSize
		db := openTest(b, dir, o)
		loadReference(b, db, nseries, npoints)
		if err := db.Flush(); err != nil {
			b.Fatal(err)
		}
		st := db.Stats()
		db.Close()
		wal := dirSize(b, filepath.Join(dir, "wal"))
		total := dirSize(b, dir) - wal + st.WALBytes
		b.ReportMetric(float64(total)/float64(nseries*npoints), "bytes/sample")
		b.ReportMetric(float64(st.PartBytes)/float64(nseries*npoints), "part-bytes/sample")
		b.ReportMetric(float64(wal)/1e6, "wal-file-MB")
	}
}

// longSeries builds a DB with one reference gauge of n points, flushed
// into parts or left in the head.
func longSeries(tb testing.TB, n int, flush bool) (*DB, SeriesRef) {
	tb.Helper()
	db := openTest(tb, tb.TempDir(), nil)
	ref, err := db.GetOrCreate([]byte("long"), nil)
	if err != nil {
		tb.Fatal(err)
	}
	ts, vs := refPoints(42, 0, n, refStart)
	ss := make([]Sample, 0, 100000)
	for j := range ts {
		ss = append(ss, Sample{ref, ts[j], vs[j]})
		if len(ss) == cap(ss) || j == len(ts)-1 {
			if err := db.Append(ss); err != nil {
				tb.Fatal(err)
			}
			ss = ss[:0]
		}
	}
	if flush {
		if err := db.Flush(); err != nil {
			tb.Fatal(err)
		}
	}
	return db, ref
}

// BenchmarkScan1M scans a 1,000,000-sample series and computes MAX over
// 60 s windows, as QUERY id MAX 60 does: from parts, from the head, and
// from parts with a late sample in the head (runs merged by time).
func BenchmarkScan1M(b *testing.B) {
	for _, name := range []string{"parts", "head", "late"} {
		b.Run(name, func(b *testing.B) {
			const n = 1_000_000
			db, ref := longSeries(b, n, name != "head")
			defer func() { b.StopTimer(); db.Close() }()
			if name == "late" {
				if err := db.Append([]Sample{{ref, refStart + 1, 1}}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.SetBytes(n * 16)
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				var windows int
				var cur float64
				wend := int64(-1 << 62)
				err := db.Scan(ref, 0, 1<<62, func(ts []int64, vs []float64) bool {
					for k, t := range ts {
						if t >= wend {
							windows++
							wend = t - t%60000 + 60000
							cur = vs[k]
						} else if vs[k] > cur {
							cur = vs[k]
						}
					}
					return true
				})
				if err != nil || windows < n/60 {
					b.Fatalf("windows %d err %v", windows, err)
				}
			}
			b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(b.N)/n, "ns/sample")
		})
	}
}

func BenchmarkBlockEncode(b *testing.B) {
	ts, vs := refPoints(42, 0, maxBlockSamples, refStart)
	var e blockEncoder
	var buf, out, z []byte
	b.ReportAllocs()
	b.SetBytes(int64(len(ts)) * 16)
	for i := 0; i < b.N; i++ {
		buf = e.appendBlock(buf[:0], ts, vs)
		out = appendStoredBlock(out[:0], buf, &z)
	}
	b.ReportMetric(float64(len(out))/float64(len(ts)), "bytes/sample")
}

func BenchmarkBlockDecode(b *testing.B) {
	for _, kind := range []struct {
		name string
		i    int
	}{{"gauge", 0}, {"counter", 1}} {
		b.Run(kind.name, func(b *testing.B) {
			ts, vs := refPoints(42, kind.i, maxBlockSamples, refStart)
			var e blockEncoder
			var z []byte
			blk := appendStoredBlock(nil, e.appendBlock(nil, ts, vs), &z)
			var d blockDecoder
			b.ReportAllocs()
			b.SetBytes(int64(len(ts)) * 16)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, _, err := d.decode(blk); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(ts)), "ns/sample")
		})
	}
}

// BenchmarkAppendParallel measures group-committed Append throughput from
// concurrent callers with batches of 1,000 samples over 1,000 series.
func BenchmarkAppendParallel(b *testing.B) {
	db := openTest(b, b.TempDir(), &Options{Logger: testOpts().Logger, FlushSamples: 1 << 30})
	defer func() { b.StopTimer(); db.Close() }()
	refs := make([]SeriesRef, 1000)
	for i := range refs {
		refs[i], _ = db.GetOrCreate([]byte(fmt.Sprintf("s%d", i)), nil)
	}
	var tick atomic.Int64
	b.ReportAllocs()
	b.SetBytes(1000 * 16)
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ss := make([]Sample, 1000)
		for pb.Next() {
			t := tick.Add(1) * 1000
			for i := range ss {
				ss[i] = Sample{refs[i], t, float64(i) * 0.25}
			}
			if err := db.Append(ss); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)*1000/b.Elapsed().Seconds(), "samples/s")
}

// BenchmarkHeadAppend measures adding committed samples to the head.
func BenchmarkHeadAppend(b *testing.B) {
	db := openTest(b, b.TempDir(), &Options{Logger: testOpts().Logger, FlushSamples: 1 << 30})
	defer func() { b.StopTimer(); db.Close() }()
	refs := make([]SeriesRef, 1000)
	for i := range refs {
		refs[i], _ = db.GetOrCreate([]byte(fmt.Sprintf("s%d", i)), nil)
	}
	ss := make([]Sample, 1000)
	b.ReportAllocs()
	b.SetBytes(int64(len(ss)) * 24)
	for i := 0; i < b.N; i++ {
		for k := range ss {
			ss[k] = Sample{refs[k], int64(i) * 1000, 1.5}
		}
		db.commitMu.Lock()
		db.applySamples([][]Sample{ss})
		db.commitMu.Unlock()
		if i%1000 == 999 {
			db.flush()
		}
	}
}

func BenchmarkWALRecordEncode(b *testing.B) {
	ss := make([]Sample, 1000)
	for i := range ss {
		ss[i] = Sample{SeriesRef(i + 1), 1_700_000_000_000, float64(i) * 0.01}
	}
	var buf []byte
	b.ReportAllocs()
	b.SetBytes(int64(len(ss)) * 24)
	for i := 0; i < b.N; i++ {
		buf = appendSamplesRecord(buf[:0], ss)
	}
	b.ReportMetric(float64(len(buf))/float64(len(ss)), "bytes/sample")
}

// BenchmarkReplay10M crashes a store holding the reference data set
// (10 M samples) only in its WAL, and measures Open.
func BenchmarkReplay10M(b *testing.B) {
	const nseries, npoints = 10000, 1000
	o := testOpts()
	o.FlushSamples = 1 << 30
	o.walSegmentSize = defaultWALSegmentSize
	dir := b.TempDir()
	db := openTest(b, dir, o)
	loadReference(b, db, nseries, npoints)
	walBytes := db.Stats().WALBytes
	db.kill()
	b.SetBytes(walBytes)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		db := openTest(b, dir, o)
		b.StopTimer()
		if st := db.Stats(); st.ReplayedSamples != nseries*npoints {
			b.Fatalf("replayed %d samples", st.ReplayedSamples)
		}
		db.kill()
		b.StartTimer()
	}
	b.ReportMetric(float64(walBytes)/float64(nseries*npoints), "wal-bytes/sample")
}

// BenchmarkAppendSingle measures one-sample Appends from many concurrent
// callers (a LOG per connection), all sharing group commits.
func BenchmarkAppendSingle(b *testing.B) {
	db := openTest(b, b.TempDir(), &Options{Logger: testOpts().Logger, FlushSamples: 1 << 30})
	defer func() { b.StopTimer(); db.Close() }()
	refs := make([]SeriesRef, 1000)
	for i := range refs {
		refs[i], _ = db.GetOrCreate([]byte(fmt.Sprintf("s%d", i)), nil)
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.SetBytes(16)
	b.SetParallelism(64)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var ss [1]Sample
		for pb.Next() {
			i := next.Add(1)
			ss[0] = Sample{refs[i%1000], i, 1.5}
			if err := db.Append(ss[:]); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "samples/s")
	b.ReportMetric(float64(b.N)/float64(db.Stats().Commits), "samples/commit")
}

// BenchmarkLookup looks up existing series without labels by name, from
// parallel goroutines, as connections do for every LOG: 10,000 names,
// each lookup a different one.
func BenchmarkLookup(b *testing.B) {
	// 10,000 names stay in the caches; 1,000,000 do not, as the series
	// of a busy server do not while it parses and commits.
	for _, n := range []int{10000, 1000000} {
		b.Run(fmt.Sprintf("names=%d", n), func(b *testing.B) { benchLookup(b, n) })
	}
}

func benchLookup(b *testing.B, n int) {
	db := openTest(b, b.TempDir(), nil)
	defer func() { b.StopTimer(); db.Close() }()
	names := make([][]byte, n)
	for i := range names {
		names[i] = []byte(fmt.Sprintf("bench.gauge.s%06d", i))
		if _, err := db.GetOrCreate(names[i], nil); err != nil {
			b.Fatal(err)
		}
	}
	for _, name := range names { // no longer recent
		db.Lookup(name, nil)
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(7919))
		for pb.Next() {
			i = (i + 7919) % len(names)
			if _, ok := db.Lookup(names[i], nil); !ok {
				b.Error("not found")
				return
			}
		}
	})
}

// BenchmarkFlush times the flush of a full head: 10,000 reference series
// of 524 points (5.2 M samples, the default FlushSamples of 5 Mi spread
// over the reference set), into parts, at full speed.
func BenchmarkFlush(b *testing.B) {
	const nseries, npoints = 10000, 524
	b.ReportAllocs()
	var flushing time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		db := openTest(b, b.TempDir(), nil)
		loadReference(b, db, nseries, npoints)
		b.StartTimer()
		start := time.Now()
		if err := db.Flush(); err != nil {
			b.Fatal(err)
		}
		flushing += time.Since(start)
		b.StopTimer()
		db.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(flushing.Nanoseconds())/float64(b.N*nseries*npoints), "ns/sample")
}

// BenchmarkMerge times the merge of four parts, four flushes of 10,000
// reference series of 524 points each, one after the other in time (21 M
// samples), at full speed.
func BenchmarkMerge(b *testing.B) {
	const nseries, npoints, nparts = 10000, 524, 4
	b.ReportAllocs()
	var merging time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		db := openTest(b, b.TempDir(), nil)
		refs := make([]SeriesRef, nseries)
		for s := range refs {
			kind := "gauge"
			if s%2 == 1 {
				kind = "counter"
			}
			refs[s], _ = db.GetOrCreate([]byte(fmt.Sprintf("bench.%s.s%06d", kind, s)), nil)
		}
		ss := make([]Sample, npoints)
		for p := range nparts {
			for s, ref := range refs {
				ts, vs := refPoints(42, s, nparts*npoints, refStart)
				for j := range ss {
					ss[j] = Sample{ref, ts[p*npoints+j], vs[p*npoints+j]}
				}
				if err := db.Append(ss); err != nil {
					b.Fatal(err)
				}
			}
			if err := db.Flush(); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		start := time.Now()
		if merged, err := db.mergeOnce(); err != nil || !merged {
			b.Fatalf("merged %v: %v", merged, err)
		}
		merging += time.Since(start)
		b.StopTimer()
		db.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(merging.Nanoseconds())/float64(b.N*nseries*npoints*nparts), "ns/sample")
}

// BenchmarkFlushBackfill flushes a head holding a year of hourly samples
// of 100 series (a backfill): one part per day, 365 written at once.
func BenchmarkFlushBackfill(b *testing.B) {
	const nseries, days = 100, 365
	b.ReportAllocs()
	o := testOpts()
	o.RawRetention = 10 * 365 * 24 * time.Hour
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		db := openTest(b, b.TempDir(), o)
		start := time.Now().Add(-days * 24 * time.Hour).UnixMilli()
		var ss []Sample
		for s := range nseries {
			ref, _ := db.GetOrCreate([]byte(fmt.Sprintf("backfill.s%03d", s)), nil)
			for h := range days * 24 {
				ss = append(ss, Sample{ref, start + int64(h)*3600_000, float64(h % 100)})
			}
		}
		if err := db.Append(ss); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := db.Flush(); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		db.Close()
		b.StartTimer()
	}
}
