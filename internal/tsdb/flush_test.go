package tsdb

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
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
	// The flushed segments are gone: what is left is the segment written
	// next, empty, and at most the one prepared after it.
	db.commitMu.Lock()
	cut := db.walCut
	db.commitMu.Unlock()
	segs, _ := walSegments(filepath.Join(dir, "wal"))
	if len(segs) == 0 || len(segs) > 2 || segs[0] != cut {
		t.Fatalf("wal segments after flush: %v, cut at %d", segs, cut)
	}
	for _, s := range segs {
		if unused, err := unusedSegment(segmentPath(filepath.Join(dir, "wal"), s)); err != nil || !unused {
			t.Fatalf("wal segment %d after flush holds records (%v)", s, err)
		}
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
	mergeAll(t, db)
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

func TestPickMerge(t *testing.T) {
	tests := []struct {
		sizes []int64
		want  string // indexes of the picked parts
	}{
		{[]int64{10, 10, 10}, "[]"},
		{[]int64{10, 10, 10, 10}, "[0 1 2 3]"},
		{[]int64{1000, 10, 10, 10}, "[1 2 3]"},
		{[]int64{1000, 10, 10, 10, 10, 10, 10, 10, 10, 10}, "[1 2 3 4 5 6 7 8]"},
		{[]int64{1000, 100, 1, 1}, "[2 3]"},
		{[]int64{1000, 1, 1000, 1}, "[0 1 2 3]"},
		{[]int64{1 << 20, 1 << 10, 1, 1 << 30}, "[]"},
		// Each part 4 times the previous one: none qualifies, but past
		// mergeForce parts the cheapest run is merged anyway.
		{pow4(16), "[]"},
		{pow4(17), "[0 1 2 3 4 5 6 7]"},
	}
	for _, tc := range tests {
		parts := make([]*part, len(tc.sizes))
		for i, s := range tc.sizes {
			parts[i] = &part{size: s, seq: uint64(i)}
		}
		var got []int
		for _, p := range pickMerge(parts) {
			got = append(got, int(p.seq))
		}
		if g := fmt.Sprint(got); g != tc.want && !(tc.want == "[]" && got == nil) {
			t.Errorf("sizes %v: picked %s, want %s", tc.sizes, g, tc.want)
		}
	}
}

func pow4(n int) []int64 {
	s := make([]int64, n)
	for i := range s {
		s[i] = 1 << (2 * i)
	}
	return s
}

// smallHead opens a store that flushes every 100 samples, whose Appends
// wait at most wait for room once its head holds 4 x 100, and returns it
// with batch, which makes the i-th batch of 100 samples of one series.
func smallHead(t *testing.T, wait time.Duration) (db *DB, batch func(i int) []Sample) {
	t.Helper()
	old := headRoomWait
	headRoomWait = wait
	t.Cleanup(func() { headRoomWait = old })
	o := testOpts()
	o.FlushSamples = 100
	db = openTest(t, t.TempDir(), o)
	t.Cleanup(func() { db.Close() })
	ref, _ := db.GetOrCreate([]byte("m"), nil)
	base := time.Now().UnixMilli()
	return db, func(i int) []Sample {
		ss := make([]Sample, 100)
		for k := range ss {
			ss[k] = Sample{ref, base + int64(i*100+k), 1}
		}
		return ss
	}
}

// While flushes cannot keep up, the head stops growing at 4 x FlushSamples:
// Append waits for room, then reports ErrOverloaded; once a flush runs it
// succeeds again.
func TestHeadIsBounded(t *testing.T) {
	db, batch := smallHead(t, 50*time.Millisecond)
	db.flushMu.Lock() // a flush that does not finish
	var err error
	i := 0
	for ; i < 10 && err == nil; i++ {
		err = db.Append(batch(i))
	}
	if !errors.Is(err, ErrOverloaded) {
		db.flushMu.Unlock()
		t.Fatalf("append with a full head: %v", err)
	}
	if h := db.Stats().HeadSamples; h > 4*100+100 {
		t.Errorf("head grew to %d samples", h)
	}
	db.flushMu.Unlock()
	headRoomWait = 5 * time.Second // time for the flush to write its part
	if err := db.Append(batch(i)); err != nil {
		t.Fatalf("append once flushes run again: %v", err)
	}
}

// TestHeadIsBoundedWhileFlushesFail: flushes that fail do not make room,
// so the head stops growing at 4 x FlushSamples and Append reports
// ErrOverloaded. A failed flush used to wake the waiting Appends when it
// froze the head, and put the head back when it failed: every attempt let
// one more batch in, and the head grew without bound.
func TestHeadIsBoundedWhileFlushesFail(t *testing.T) {
	testHookBeforeManifest = func() error { return errors.New("disk on fire") }
	t.Cleanup(func() { testHookBeforeManifest = nil }) // after the store closes
	db, batch := smallHead(t, 200*time.Millisecond)
	var err error
	for i := 0; i < 20 && err == nil; i++ {
		err = db.Append(batch(i))
	}
	if !errors.Is(err, ErrOverloaded) {
		t.Fatalf("append while every flush fails: %v", err)
	}
	if n := db.Stats().AppendedSamples; n > 4*100 {
		t.Errorf("%d samples appended while flushes fail, want at most 400", n)
	}
}

// A flush that fails after writing its parts, before the manifest, loses
// and duplicates nothing: the head stays readable, a later flush succeeds,
// and a crash at that point leaves only the WAL to replay.
func TestFailedFlush(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir, nil)
	ref, _ := db.GetOrCreate([]byte("m"), nil)
	base := time.Now().UnixMilli()
	var ss []Sample
	for i := 0; i < 1000; i++ {
		ss = append(ss, Sample{ref, base + int64(i%300)*1000, float64(i)})
	}
	if err := db.Append(ss[:500]); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprint(collect(t, db, ref, 0, 1<<62))
	testHookBeforeManifest = func() error { return errors.New("disk on fire") }
	defer func() { testHookBeforeManifest = nil }()
	if err := db.Flush(); err == nil {
		t.Fatal("flush did not fail")
	}
	if got := fmt.Sprint(collect(t, db, ref, 0, 1<<62)); got != want {
		t.Fatalf("after a failed flush:\n%s\nwant\n%s", got, want)
	}
	// Appends after the failure, then a crash: strays are removed, the WAL
	// replays everything once.
	if err := db.Append(ss[500:]); err != nil {
		t.Fatal(err)
	}
	want = fmt.Sprint(collect(t, db, ref, 0, 1<<62))
	db.kill()
	testHookBeforeManifest = nil
	db = openTest(t, dir, nil)
	if got := fmt.Sprint(collect(t, db, ref, 0, 1<<62)); got != want {
		t.Fatalf("after a crash following a failed flush: %d samples", len(collect2(t, db, ref)))
	}
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(collect(t, db, ref, 0, 1<<62)); got != want {
		t.Fatal("data changed by a flush after recovery")
	}
	files, _ := filepath.Glob(filepath.Join(dir, partsDirName, "*", "*"))
	if st := db.Stats(); len(files) != st.Parts {
		t.Fatalf("files %v, %d parts in the manifest", files, st.Parts)
	}
	db.Close()
}

func collect2(t *testing.T, db *DB, ref SeriesRef) []int64 {
	ts, _ := collect(t, db, ref, 0, 1<<62)
	return ts
}

// The series index file is appended to: a torn tail, zeros included (which
// a WAL segment would take for its clean end), is cut off before the next
// flush appends to it, so that series persisted later are not lost behind
// it.
func TestSeriesIndexTornTail(t *testing.T) {
	for _, tail := range [][]byte{make([]byte, 50), {9, 0, 0, 0, 1, 2}} {
		dir := t.TempDir()
		db := openTest(t, dir, nil)
		if _, err := db.GetOrCreate([]byte("a"), nil); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, seriesName)
		data, err := os.ReadFile(path)
		if err != nil || len(data) == 0 {
			t.Fatalf("series file: %d bytes, %v", len(data), err)
		}
		if err := os.WriteFile(path, append(data, tail...), 0o644); err != nil {
			t.Fatal(err)
		}
		db = openTest(t, dir, nil)
		if fi, err := os.Stat(path); err != nil || fi.Size() != int64(len(data)) {
			t.Fatalf("tail %v: series file not truncated to its records", tail)
		}
		if _, err := db.GetOrCreate([]byte("b"), nil); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil { // flushes: b goes into the series file, the WAL is emptied
			t.Fatal(err)
		}
		db = openTest(t, dir, nil)
		for _, name := range []string{"a", "b"} {
			if _, ok := db.Lookup([]byte(name), nil); !ok {
				t.Errorf("tail %v: series %s lost", tail, name)
			}
		}
		db.Close()
	}
}

// waitFor waits until cond holds, and reports whether it did within 10 s
// (time for background work to happen, not a measurement).
func waitFor(cond func() bool) bool {
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
	return true
}

// One full head makes one flush: the commits that find the head full while
// a flush waits to start each signal it, and the signal left over is
// dropped when that flush freezes the head, instead of making a second,
// small flush right after it.
func TestFullHeadFlushesOnce(t *testing.T) {
	o := testOpts()
	o.FlushSamples = 1000
	db := openTest(t, t.TempDir(), o)
	defer db.Close()
	ref, _ := db.GetOrCreate([]byte("m"), nil)
	base := time.Now().UnixMilli()
	var n int64
	batch := func() []Sample {
		ss := make([]Sample, 1000)
		for i := range ss {
			ss[i] = Sample{ref, base + n, 1}
			n++
		}
		return ss
	}
	db.flushMu.Lock() // the background flush waits to start
	if err := db.Append(batch()); err != nil {
		db.flushMu.Unlock()
		t.Fatal(err)
	}
	if !waitFor(func() bool { return len(db.flushCh) == 0 }) {
		db.flushMu.Unlock()
		t.Fatal("the full head was not signalled to the background loop")
	}
	// The background loop took the signal and waits for flushMu; these
	// commits find the head full and signal again.
	for i := 0; i < 2; i++ {
		if err := db.Append(batch()); err != nil {
			db.flushMu.Unlock()
			t.Fatal(err)
		}
	}
	left := -1
	testHookBeforeManifest = func() error { left = len(db.flushCh); return nil }
	defer func() { testHookBeforeManifest = nil }()
	db.flushMu.Unlock()
	if !waitFor(func() bool { return db.Stats().Flushes > 0 }) {
		t.Fatal("no background flush")
	}
	if left != 0 {
		t.Errorf("%d signals of a full head left after the flush that emptied it", left)
	}
	if st := db.Stats(); st.FlushedSamples != 3000 || st.Parts != 1 {
		t.Errorf("flushed %d samples into %d parts, want 3000 in 1", st.FlushedSamples, st.Parts)
	}
}

// Flushes run apart from merges: while a merge or retention pass holds
// mergeMu for long, the head is still flushed whenever it fills.
func TestFlushNotHeldUpByMerges(t *testing.T) {
	o := testOpts()
	o.FlushSamples = 1000
	db := openTest(t, t.TempDir(), o)
	defer db.Close()
	ref, _ := db.GetOrCreate([]byte("m"), nil)
	base := time.Now().UnixMilli()
	db.mergeMu.Lock() // a merge that does not end
	defer db.mergeMu.Unlock()
	for round := int64(1); round <= 3; round++ {
		ss := make([]Sample, 1000)
		for i := range ss {
			ss[i] = Sample{ref, base + round*1000 + int64(i), 1}
		}
		if err := db.Append(ss); err != nil {
			t.Fatal(err)
		}
		if !waitFor(func() bool { return db.Stats().Flushes >= round }) {
			t.Fatalf("flush %d did not happen while a merge runs", round)
		}
	}
}

// Stats counts the time of a flush while it runs, and keeps it after.
func TestFlushTime(t *testing.T) {
	db := openTest(t, t.TempDir(), nil)
	ref, err := db.GetOrCreate([]byte("a"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Append([]Sample{{ref, 1000, 1}}); err != nil {
		t.Fatal(err)
	}
	if d := db.Stats().FlushTime; d != 0 {
		t.Fatalf("flush time %v before any flush", d)
	}
	var during time.Duration
	testHookBeforeManifest = func() error {
		first := db.Stats().FlushTime
		time.Sleep(20 * time.Millisecond)
		during = db.Stats().FlushTime
		if during-first < 20*time.Millisecond {
			t.Errorf("flush time grew by %v in 20ms of a running flush", during-first)
		}
		return nil
	}
	defer func() { testHookBeforeManifest = nil }()
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	if after := db.Stats().FlushTime; after < during {
		t.Errorf("flush time %v after the flush, %v during it", after, during)
	}
}

// A merge copies the blocks of a series written in time order, in blocks
// of minCopySamples or more, unchanged; it encodes again the samples of a
// series whose parts overlap in time, and those of a sparse series, into
// one block. Either way the data is the same, in the same order, and after
// a restart.
func TestMergeCopiesBlocks(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir, nil)
	day := time.Now().UTC().Truncate(24 * time.Hour).UnixMilli()
	inOrder, _ := db.GetOrCreate([]byte("in.order"), nil)
	overlapping, _ := db.GetOrCreate([]byte("overlapping"), nil)
	sparse, _ := db.GetOrCreate([]byte("sparse"), nil)
	const flushes, per = 5, minCopySamples + 44
	for f := range flushes {
		var ss []Sample
		for i := range per {
			// Each flush starts at the previous one's last time: equal
			// times must stay in flush order.
			at := day + int64(f*(per-1)+i)*1000
			ss = append(ss, Sample{inOrder, at, float64(f*1000+i) / 4})
			// Each flush goes back in time, over the previous one's.
			ss = append(ss, Sample{overlapping, day + int64((flushes-f)*100+i)*1000, float64(f*1000 + i)})
		}
		ss = append(ss, Sample{sparse, day + int64(f)*1000, float64(f)})
		if err := db.Append(ss); err != nil {
			t.Fatal(err)
		}
		if err := db.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	refs := []SeriesRef{inOrder, overlapping, sparse}
	data := func(db *DB) string {
		var b strings.Builder
		for _, ref := range refs {
			ts, vs := collect(t, db, ref, day, day+dayMillis)
			fmt.Fprintln(&b, ref, ts, vs)
		}
		return b.String()
	}
	before := data(db)
	mergeAll(t, db)
	if got := data(db); got != before {
		t.Fatalf("merge changed the data:\n%s\nwant\n%s", got, before)
	}
	db.viewMu.RLock()
	parts := db.parts.parts
	db.viewMu.RUnlock()
	if len(parts) != 1 {
		t.Fatalf("%d parts after merging, want 1", len(parts))
	}
	for _, c := range []struct {
		ref    SeriesRef
		blocks int
	}{{inOrder, flushes}, {overlapping, 1}, {sparse, 1}} {
		if n := len(parts[0].seriesBlocks(c.ref)); n != c.blocks {
			t.Errorf("series %d: %d blocks after merging, want %d", c.ref, n, c.blocks)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTest(t, dir, nil)
	defer db.Close()
	if got := data(db); got != before {
		t.Fatalf("after a restart:\n%s\nwant\n%s", got, before)
	}
}

// A merge that copies blocks checks each: a damaged one fails the merge
// with ErrCorrupt, and the parts stay as they were.
func TestMergeCopyChecksBlocks(t *testing.T) {
	db := openTest(t, t.TempDir(), nil)
	defer db.Close()
	day := time.Now().UTC().Truncate(24 * time.Hour).UnixMilli()
	ref, _ := db.GetOrCreate([]byte("m"), nil)
	for f := range mergeMinParts {
		ss := make([]Sample, minCopySamples)
		for i := range ss {
			ss[i] = Sample{ref, day + int64(f*minCopySamples+i)*1000, float64(i)}
		}
		if err := db.Append(ss); err != nil {
			t.Fatal(err)
		}
		if err := db.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	db.viewMu.RLock()
	parts := db.parts.parts
	db.viewMu.RUnlock()
	bm := parts[1].seriesBlocks(ref)[0]
	f, err := os.OpenFile(parts[1].path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0xff, 0xee}, int64(bm.off)+int64(bm.length)/2); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := db.mergeOnce(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("merge over a damaged block: %v, want ErrCorrupt", err)
	}
	db.viewMu.RLock()
	after := len(db.parts.parts)
	db.viewMu.RUnlock()
	if after != len(parts) {
		t.Errorf("%d parts after the failed merge, want %d", after, len(parts))
	}
}

// TestSeriesWriteFails: a flush whose write to the series file fails
// part-way leaves no partial record behind, so the series that later
// flushes append after it survive a restart.
func TestSeriesWriteFails(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir, nil)
	base := time.Now().UnixMilli()
	add := func(name string) SeriesRef {
		t.Helper()
		ref, err := db.GetOrCreate([]byte(name), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Append([]Sample{{ref, base, 1}}); err != nil {
			t.Fatal(err)
		}
		return ref
	}
	add("a")
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	add("x")
	testHookSeriesWrite = func(f *os.File, b []byte) (int, error) {
		n, _ := f.Write(b[:len(b)/2])
		return n, errors.New("no space left on device")
	}
	err := db.Flush()
	testHookSeriesWrite = nil
	if err == nil {
		t.Fatal("flush did not fail")
	}
	add("y")
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = openTest(t, dir, nil)
	defer db.Close()
	for _, name := range []string{"a", "x", "y"} {
		ref, ok := db.Lookup([]byte(name), nil)
		if !ok {
			t.Fatalf("series %s lost", name)
		}
		if ts := collect2(t, db, ref); len(ts) != 1 {
			t.Fatalf("series %s: %d samples, want 1", name, len(ts))
		}
	}
}

// TestManifestDirSyncFails: when a manifest is renamed into place but its
// directory cannot be synced, the flush or merge takes effect, and no file
// that this manifest or the one before names is deleted: after a crash
// the store opens with every sample.
func TestManifestDirSyncFails(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir, nil)
	ref, _ := db.GetOrCreate([]byte("m"), nil)
	base := time.Now().UnixMilli()
	for i := range 4 {
		if err := db.Append([]Sample{{ref, base + int64(i), float64(i)}}); err != nil {
			t.Fatal(err)
		}
		if err := db.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	testHookDirSync = func(path string) error {
		if filepath.Base(path) == manifestName {
			return errors.New("input/output error")
		}
		return nil
	}
	defer func() { testHookDirSync = nil }()
	if err := db.Append([]Sample{{ref, base + 4, 4}}); err != nil {
		t.Fatal(err)
	}
	if err := db.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
	mergeAll(t, db)
	if !db.keepFiles.Load() {
		t.Fatal("the failed directory sync was not noticed")
	}
	before, _ := filepath.Glob(filepath.Join(dir, partsDirName, "*", "*.part"))
	want := fmt.Sprint(collect(t, db, ref, 0, 1<<62))
	db.kill()
	testHookDirSync = nil
	db = openTest(t, dir, nil)
	defer db.Close()
	if got := fmt.Sprint(collect(t, db, ref, 0, 1<<62)); got != want {
		t.Fatalf("after a crash: %s, want %s", got, want)
	}
	after, _ := filepath.Glob(filepath.Join(dir, partsDirName, "*", "*.part"))
	if len(before) <= db.Stats().Parts || len(after) != db.Stats().Parts {
		t.Fatalf("%d part files before the crash, %d after it, %d parts in the manifest: replaced parts were not kept, or not removed at the next start", len(before), len(after), db.Stats().Parts)
	}
}

// TestFailingFlushesPause: while every flush fails, the background flush
// pauses between attempts instead of retrying at every commit.
func TestFailingFlushesPause(t *testing.T) {
	var attempts atomic.Int64
	testHookBeforeManifest = func() error { attempts.Add(1); return errors.New("disk on fire") }
	t.Cleanup(func() { testHookBeforeManifest = nil }) // after the store closes
	db, batch := smallHead(t, 50*time.Millisecond)
	start := time.Now()
	for i := 0; time.Since(start) < 900*time.Millisecond; i++ {
		db.Append(batch(i)) // ErrOverloaded once the head is full
		time.Sleep(5 * time.Millisecond)
	}
	if n := attempts.Load(); n > 2 {
		t.Errorf("%d flush attempts in 0.9 s while flushes fail, want at most 2 (a pause of a second after a failure)", n)
	}
}

// TestFailedFlushIsRetried: a background flush that fails is tried again
// after its pause, not only at the next FlushInterval or full head.
func TestFailedFlushIsRetried(t *testing.T) {
	var attempts atomic.Int64
	testHookBeforeManifest = func() error {
		if attempts.Add(1) == 1 {
			return errors.New("no space left on device")
		}
		return nil
	}
	t.Cleanup(func() { testHookBeforeManifest = nil }) // after the store closes
	db, batch := smallHead(t, 5*time.Second)
	if err := db.Append(batch(0)); err != nil { // the head is full: a flush starts
		t.Fatal(err)
	}
	if !waitFor(func() bool { return db.Stats().Flushes == 1 }) {
		t.Fatalf("%d flush attempts, none succeeded: a failed flush is not retried", attempts.Load())
	}
}

// TestPartDirRemovedMeanwhile: a flush whose partition directory is
// removed between its making and the part's creation (the last part of
// the partition, released by a reader, removes it once empty) makes it
// again instead of failing.
func TestPartDirRemovedMeanwhile(t *testing.T) {
	var removed atomic.Int32
	testHookPartDir = func(dir string) {
		if removed.Add(1) == 1 {
			if err := os.Remove(dir); err != nil {
				t.Errorf("remove %s: %v", dir, err)
			}
		}
	}
	db := openTest(t, t.TempDir(), nil)
	defer func() {
		db.Close()
		testHookPartDir = nil // once no flush can read it
	}()
	ref, _ := db.GetOrCreate([]byte("a"), nil)
	if err := db.Append([]Sample{{ref, 1000, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := db.Flush(); err != nil {
		t.Fatalf("flush: %v", err)
	}
	if n := removed.Load(); n < 2 {
		t.Fatalf("the directory was made %d times, want it made again", n)
	}
	n := 0
	db.Scan(ref, 0, 2000, func(ts []int64, vs []float64) bool { n += len(ts); return true })
	if n != 1 {
		t.Fatalf("%d samples after the flush, want 1", n)
	}
}
