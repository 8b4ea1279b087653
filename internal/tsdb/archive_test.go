package tsdb

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// expectSorted computes the aggregates of time-sorted samples at
// resolution res over the whole windows intersecting [mint, maxt).
func expectSorted(s []modelSample, res, mint, maxt int64) []Aggregate {
	lo := floorDiv(mint, res) * res
	hi := floorDiv(maxt-1, res)*res + res
	var a aggregator
	a.reset(res)
	var ts [1]int64
	var vs [1]float64
	for _, x := range s {
		if x.t >= lo && x.t < hi {
			ts[0], vs[0] = x.t, x.v
			a.add(ts[:], vs[:])
		}
	}
	return a.pts
}

func scanAggregates(t *testing.T, db *DB, ref SeriesRef, res time.Duration, mint, maxt int64) []Aggregate {
	t.Helper()
	var out []Aggregate
	err := db.ScanAggregates(ref, res, mint, maxt, func(a []Aggregate) bool {
		out = append(out, a...)
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameAggregates(got, want []Aggregate) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d points, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		// Sums of flushes are added in another order than the model's.
		if g.T != w.T || g.Count != w.Count || g.Min != w.Min || g.Max != w.Max || g.Last != w.Last ||
			math.Abs(g.Sum-w.Sum) > 1e-9*math.Max(1, math.Abs(w.Sum)) {
			return fmt.Errorf("point %d: got %+v want %+v", i, g, w)
		}
	}
	return nil
}

// retentionOpts returns test options whose clock reads *now (which the
// test moves) and that keep raw samples 48 hours, so that older days are
// archived.
func retentionOpts(now *time.Time) *Options {
	o := testOpts()
	o.Now = func() time.Time { return *now }
	o.RawRetention = 48 * time.Hour
	return o
}

// TestArchives appends 5 days of samples (out of order, duplicates, late
// samples into windows already archived) with several flushes, then checks
// the 1m, 1h and 1d aggregates, for the windows served from the raw data
// and those served from the archives, before and after retention drops
// the raw days, and after a reopen.
func TestArchives(t *testing.T) {
	now := time.Now().UTC()
	o := retentionOpts(&now)
	dir := t.TempDir()
	db := openTest(t, dir, o)
	ref, _ := db.GetOrCreate([]byte("m"), nil)
	r := rand.New(rand.NewPCG(5, 6))
	start := now.Add(-8 * 24 * time.Hour).UnixMilli()
	span := now.UnixMilli() - start
	var model []modelSample
	for f := 0; f < 6; f++ {
		ss := make([]Sample, 3000)
		for i := range ss {
			tt := start + r.Int64N(span)
			if i > 0 && r.IntN(5) == 0 {
				tt = ss[i-1].T // duplicate timestamp
			}
			ss[i] = Sample{ref, tt, math.Round(r.NormFloat64()*1000) / 100}
			model = append(model, modelSample{tt, ss[i].V})
		}
		if err := db.Append(ss); err != nil {
			t.Fatal(err)
		}
		if err := db.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	// Head samples too.
	if err := db.Append([]Sample{{ref, now.UnixMilli() - 1000, 42}}); err != nil {
		t.Fatal(err)
	}
	model = append(model, modelSample{now.UnixMilli() - 1000, 42})
	if st := db.Stats(); st.ArchiveParts != 0 {
		t.Fatalf("archive parts while the raw data is kept: %+v", st)
	}
	check := func(what string) {
		t.Helper()
		sorted := append([]modelSample(nil), model...)
		sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].t < sorted[j].t })
		for _, res := range ArchiveResolutions {
			rm := res.Milliseconds()
			for _, rng := range [][2]int64{{math.MinInt64 / 2, math.MaxInt64 / 2}, {start + span/3, start + span/2}, {start, start + 1}} {
				got := scanAggregates(t, db, ref, res, rng[0], rng[1])
				want := expectSorted(sorted, rm, rng[0], rng[1])
				if err := sameAggregates(got, want); err != nil {
					t.Fatalf("%s: res %v range %v: %v", what, res, rng, err)
				}
			}
		}
	}
	check("before retention")
	if err := db.applyRetention(); err != nil {
		t.Fatal(err)
	}
	if ts, _ := collect(t, db, ref, 0, now.Add(-72*time.Hour).UnixMilli()); len(ts) != 0 {
		t.Fatalf("raw retention kept %d samples", len(ts))
	}
	if st := db.Stats(); st.ArchiveParts == 0 || st.Partitions != 3 {
		t.Fatalf("after retention: %+v", st)
	}
	check("after retention")
	// A late sample for an archived day, and a duplicate of an archived
	// window's last timestamp: archived by the next retention pass.
	// The time of the last sample of the second day, already archived.
	dayEnd := (dayOf(start) + 2) * dayMillis
	var tLast int64
	for _, m := range model {
		if m.t < dayEnd && m.t > tLast {
			tLast = m.t
		}
	}
	late := []Sample{{ref, start + 3600_000, 1234.5}, {ref, start + 3600_000, -1}, {ref, tLast, 777}}
	if err := db.Append(late); err != nil {
		t.Fatal(err)
	}
	for _, s := range late {
		model = append(model, modelSample{s.T, s.V})
	}
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := db.applyRetention(); err != nil {
		t.Fatal(err)
	}
	check("after archiving a late sample")
	before := db.Stats().ArchiveParts
	mergeAll(t, db)
	if after := db.Stats().ArchiveParts; after >= before {
		t.Fatalf("archive parts not merged: %d -> %d", before, after)
	}
	check("after merges")
	db.kill()
	db = openTest(t, dir, o)
	defer db.Close()
	check("after reopen")

	// Archive retention: past 1m retention only 1h and 1d remain.
	now = now.Add(90*24*time.Hour + 7*24*time.Hour)
	if err := db.applyRetention(); err != nil {
		t.Fatal(err)
	}
	if got := scanAggregates(t, db, ref, time.Minute, math.MinInt64/2, math.MaxInt64/2); len(got) != 0 {
		t.Fatalf("1m archive after its retention: %d points", len(got))
	}
	if got := scanAggregates(t, db, ref, time.Hour, math.MinInt64/2, math.MaxInt64/2); len(got) < 100 {
		t.Fatalf("1h archive dropped too early: %d points", len(got))
	}
}

// TestScanAggregatesDuringFlush counts a series' samples with
// ScanAggregates while flushes publish: every sample acknowledged before a
// scan starts is counted (a scan used to take the part set and the
// published flush generation at two different moments, and missed the
// frozen head in between).
func TestScanAggregatesDuringFlush(t *testing.T) {
	db := openTest(t, t.TempDir(), nil)
	defer db.Close()
	ref, err := db.GetOrCreate([]byte("s"), nil)
	if err != nil {
		t.Fatal(err)
	}
	base := time.Now().Add(-time.Hour).UnixMilli()
	var acked atomic.Int64
	stop := make(chan struct{})
	writerDone := make(chan error, 1)
	go func() {
		for i := int64(0); ; i++ {
			select {
			case <-stop:
				writerDone <- nil
				return
			default:
			}
			if err := db.Append([]Sample{{Ref: ref, T: base + i, V: 1}}); err != nil {
				writerDone <- err
				return
			}
			acked.Add(1)
			if err := db.Flush(); err != nil {
				writerDone <- err
				return
			}
		}
	}()
	deadline := time.Now().Add(2 * time.Second)
	for scans := 0; time.Now().Before(deadline) || scans < 100; scans++ {
		want := acked.Load()
		var got int64
		err := db.ScanAggregates(ref, time.Hour, 0, math.MaxInt64, func(as []Aggregate) bool {
			for _, a := range as {
				got += a.Count
			}
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
		if got < want {
			t.Fatalf("scan %d counted %d samples; %d were acknowledged before it started", scans, got, want)
		}
	}
	close(stop)
	if err := <-writerDone; err != nil {
		t.Fatal(err)
	}
}

// TestArchiveFailureLeavesNoParts: when retention cannot create the
// archive part of one day, the archive parts it already wrote for the
// days before are closed and removed, not left open and on disk.
func TestArchiveFailureLeavesNoParts(t *testing.T) {
	now := time.Now().UTC()
	o := retentionOpts(&now)
	dir := t.TempDir()
	db := openTest(t, dir, o)
	defer db.Close()
	ref, _ := db.GetOrCreate([]byte("m"), nil)
	day1 := now.Add(-20 * 24 * time.Hour).Truncate(24 * time.Hour)
	day2 := day1.Add(24 * time.Hour)
	if err := db.Append([]Sample{{ref, day1.UnixMilli() + 1000, 1}, {ref, day2.UnixMilli() + 1000, 2}}); err != nil {
		t.Fatal(err)
	}
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	// A file where the second day's 1m archive directory goes.
	if err := os.MkdirAll(filepath.Join(dir, "archive", "1m"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "archive", "1m", day2.Format("2006-01-02")), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := db.applyRetention(); err == nil {
		t.Fatal("retention did not fail")
	}
	parts, _ := filepath.Glob(filepath.Join(dir, "archive", "*", "*", "*.part"))
	if len(parts) != 0 {
		t.Errorf("archive parts left on disk: %v", parts)
	}
	fds, _ := filepath.Glob("/proc/self/fd/*")
	for _, fd := range fds {
		if target, err := os.Readlink(fd); err == nil && strings.HasPrefix(target, filepath.Join(dir, "archive")) {
			t.Errorf("archive file left open: %s", target)
		}
	}
	if got := collect2(t, db, ref); len(got) != 2 {
		t.Errorf("%d raw samples after the failed retention, want 2", len(got))
	}
}

// TestScanAggregatesWholeRange: the whole time range, [math.MinInt64,
// math.MaxInt64), finds every point, archived, in parts and in the head.
// Rounding math.MinInt64 down to a window start overflowed, and the scan
// found nothing.
func TestScanAggregatesWholeRange(t *testing.T) {
	now := time.Now().UTC()
	db := openTest(t, t.TempDir(), retentionOpts(&now))
	defer db.Close()
	ref, _ := db.GetOrCreate([]byte("m"), nil)
	old := now.Add(-5 * 24 * time.Hour).UnixMilli()
	if err := db.Append([]Sample{{ref, old, 1}, {ref, now.UnixMilli() - 2000, 2}}); err != nil {
		t.Fatal(err)
	}
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := db.applyRetention(); err != nil {
		t.Fatal(err)
	}
	if err := db.Append([]Sample{{ref, now.UnixMilli() - 1000, 3}}); err != nil {
		t.Fatal(err)
	}
	for _, res := range ArchiveResolutions {
		want := scanAggregates(t, db, ref, res, math.MinInt64/2, math.MaxInt64/2)
		var n int64
		for _, a := range want {
			n += a.Count
		}
		if n != 3 {
			t.Fatalf("res %v: %d samples in the middle of the time range, want 3", res, n)
		}
		got := scanAggregates(t, db, ref, res, math.MinInt64, math.MaxInt64)
		if err := sameAggregates(got, want); err != nil {
			t.Errorf("res %v, whole range: %v", res, err)
		}
	}
}

// ArchivedTo reports where retention archived up to, also when that is
// the unix epoch itself: it used to report math.MinInt64 then, as if
// nothing were archived, so that callers looked for raw samples that were
// gone.
func TestArchivedToEpoch(t *testing.T) {
	now := time.UnixMilli(2*dayMillis + 3600_000).UTC()
	db := openTest(t, t.TempDir(), retentionOpts(&now))
	defer db.Close()
	ref, _ := db.GetOrCreate([]byte("m"), nil)
	if err := db.Append([]Sample{{ref, -1000, 1}, {ref, 1000, 2}}); err != nil {
		t.Fatal(err)
	}
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := db.ArchivedTo(); got != math.MinInt64 {
		t.Fatalf("ArchivedTo before retention: %d", got)
	}
	if err := db.applyRetention(); err != nil {
		t.Fatal(err)
	}
	if got := db.ArchivedTo(); got != 0 {
		t.Fatalf("ArchivedTo after archiving the day before the epoch: %d, want 0", got)
	}
	if ts, _ := collect(t, db, ref, math.MinInt64, 0); len(ts) != 0 {
		t.Fatalf("raw samples before ArchivedTo: %v", ts)
	}
	if got := scanAggregates(t, db, ref, time.Minute, math.MinInt64, 0); len(got) != 1 || got[0].Count != 1 {
		t.Fatalf("archived windows: %+v", got)
	}
}
