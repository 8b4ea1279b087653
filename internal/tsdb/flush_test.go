package tsdb

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestFlushPartsAndWALTruncation(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir, nil)
	ref, _ := db.GetOrCreate([]byte("m"), nil)
	day := int64(dayMillis)
	base := (dayOf(time.Now().UnixMilli()) - 1) * day
	var want []int64
	// Three days, out of order, with duplicates.
	for _, d := range []int64{2, 0, 1, 0} {
		ss := make([]Sample, 100)
		for i := range ss {
			ss[i] = Sample{ref, base + d*day + int64(i)*1000, float64(i)}
			want = append(want, ss[i].T)
		}
		if err := db.Append(ss); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	st := db.Stats()
	if st.Parts != 3 || st.Partitions != 3 || st.HeadSamples != 0 || st.FlushedSamples != 400 {
		t.Fatalf("stats after flush: %+v", st)
	}
	segs, _ := walSegments(filepath.Join(dir, "wal"))
	if len(segs) != 1 {
		t.Fatalf("wal segments after flush: %v", segs)
	}
	check := func(db *DB) {
		t.Helper()
		ts, _ := collect(t, db, ref, 0, 1<<62)
		if len(ts) != len(want) {
			t.Fatalf("%d samples, want %d", len(ts), len(want))
		}
		for i := 1; i < len(ts); i++ {
			if ts[i] < ts[i-1] {
				t.Fatalf("not sorted at %d", i)
			}
		}
		ts, _ = collect(t, db, ref, base+day, base+day+5000)
		if len(ts) != 5 {
			t.Fatalf("range scan: %v", ts)
		}
	}
	check(db)
	// More samples in the head on top of parts, then a crash.
	if err := db.Append([]Sample{{ref, base + 10, 7}}); err != nil {
		t.Fatal(err)
	}
	want = append(want, base+10)
	check(db)
	db.kill()
	db = openTest(t, dir, nil)
	check(db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTest(t, dir, nil)
	defer db.Close()
	check(db)
	if st := db.Stats(); st.ReplayedSamples != 0 {
		t.Fatalf("replayed %d samples after a clean close", st.ReplayedSamples)
	}
}

func TestMergeAndRetention(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	o := testOpts()
	o.Now = func() time.Time { return now }
	o.RawRetention = 48 * time.Hour
	db := openTest(t, dir, o)
	ref, _ := db.GetOrCreate([]byte("m"), []Label{{"a", "b"}})
	today := now.Truncate(24 * time.Hour).UnixMilli()
	// Six flushes into today, each with a duplicate of the previous one's
	// last timestamp, so merge order matters.
	for f := 0; f < 6; f++ {
		ss := []Sample{{ref, today + int64(f)*1000, float64(f)}, {ref, today + int64(f+1)*1000, float64(f) + 0.5}}
		if err := db.Append(ss); err != nil {
			t.Fatal(err)
		}
		if err := db.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	// An old day that retention will drop.
	if err := db.Append([]Sample{{ref, today - 5*dayMillis, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	before := fmt.Sprint(collect(t, db, ref, today, today+dayMillis))
	for {
		merged, err := db.mergeOnce()
		if err != nil {
			t.Fatal(err)
		}
		if !merged {
			break
		}
	}
	if st := db.Stats(); st.Merges == 0 || st.Parts > mergeMinParts {
		t.Fatalf("after merges: %+v", st)
	}
	if after := fmt.Sprint(collect(t, db, ref, today, today+dayMillis)); after != before {
		t.Fatalf("merge changed data:\n%s\n%s", before, after)
	}
	if err := db.applyRetention(); err != nil {
		t.Fatal(err)
	}
	if ts, _ := collect(t, db, ref, 0, today); len(ts) != 0 {
		t.Fatalf("retention kept %v", ts)
	}
	old := filepath.Join(dir, partsDirName, dayDirName(dayOf(today-5*dayMillis)))
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Fatalf("old partition dir still there: %v", err)
	}
	db.Close()
	db = openTest(t, dir, o)
	defer db.Close()
	if after := fmt.Sprint(collect(t, db, ref, today, today+dayMillis)); after != before {
		t.Fatalf("reopen changed data:\n%s\n%s", before, after)
	}
}
