package tsdb

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// walFiles returns the WAL segments of dir with their sizes, and the names
// of other files in the WAL directory.
func walFiles(t *testing.T, dir string) (map[uint64]int64, []string) {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, "wal"))
	if err != nil {
		t.Fatal(err)
	}
	segs, err := walSegments(filepath.Join(dir, "wal"))
	if err != nil {
		t.Fatal(err)
	}
	sizes := map[uint64]int64{}
	for _, s := range segs {
		fi, err := os.Stat(segmentPath(filepath.Join(dir, "wal"), s))
		if err != nil {
			t.Fatal(err)
		}
		sizes[s] = fi.Size()
	}
	var other []string
	for _, e := range ents {
		if len(e.Name()) != len("0000000000000000.wal") || filepath.Ext(e.Name()) != ".wal" {
			other = append(other, e.Name())
		}
	}
	return sizes, other
}

// waitPrepared waits until the segment after the current one is prepared.
func waitPrepared(t *testing.T, db *DB) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		db.commitMu.Lock()
		p := db.prep
		db.commitMu.Unlock()
		if p != nil {
			select {
			case <-p.done:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the next WAL segment is not prepared")
		}
	}
}

// Segments are created at their full size and the next one is prepared
// ahead. Open goes on writing the last segment where its records end, with
// the unused segment after it as the next one, instead of starting a new
// segment: crashes in a row leave no pile of unused segments. It removes a
// preparation a crash interrupted.
func TestWALSegmentsPreallocated(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir, nil)
	ref, _ := db.GetOrCreate([]byte("m"), nil)
	if err := db.Append([]Sample{{ref, 1000, 1}}); err != nil {
		t.Fatal(err)
	}
	waitPrepared(t, db)
	sizes, other := walFiles(t, dir)
	if len(sizes) != 2 || sizes[0] != testSegmentSize || sizes[1] != testSegmentSize || len(other) != 0 {
		t.Fatalf("wal files %v, others %v; want segments 0 and 1 of %d bytes", sizes, other, testSegmentSize)
	}
	walBytes := db.Stats().WALBytes
	db.kill()

	for crash := 0; crash < 3; crash++ {
		// A preparation cut short by a crash, and an unused segment too many.
		stray := segmentPath(filepath.Join(dir, "wal"), 3) + ".tmp"
		if err := os.WriteFile(stray, make([]byte, 100), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(segmentPath(filepath.Join(dir, "wal"), 2), make([]byte, testSegmentSize), 0o644); err != nil {
			t.Fatal(err)
		}
		db = openTest(t, dir, nil)
		if st := db.Stats(); st.WALBytes != walBytes || st.TornTails != 0 || st.ReplayedSamples != int64(1+crash) {
			t.Fatalf("after reopen: %+v; want %d WAL bytes replayed", st, walBytes)
		}
		if err := db.Append([]Sample{{ref, int64(2+crash) * 1000, 2}}); err != nil {
			t.Fatal(err)
		}
		db.commitMu.Lock()
		seq, off := db.segSeq, db.segOff
		db.commitMu.Unlock()
		walBytes = db.Stats().WALBytes
		if seq != 0 || off != walBytes {
			t.Fatalf("writing segment %d at %d after reopen, want segment 0 at %d", seq, off, walBytes)
		}
		sizes, other = walFiles(t, dir)
		if len(sizes) != 2 || sizes[1] != testSegmentSize || len(other) != 0 {
			t.Fatalf("wal files %v, others %v after reopen", sizes, other)
		}
		db.kill()
	}
	db = openTest(t, dir, nil)
	defer db.Close()
	if ts, _ := collect(t, db, ref, 0, 1<<62); len(ts) != 4 {
		t.Fatalf("%d samples after four crashes, want 4", len(ts))
	}
}

// Commits that fill a segment move on to the next one, a batch larger than
// a whole segment extends one, and everything replays in order.
func TestWALRotation(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir, nil)
	ref, _ := db.GetOrCreate([]byte("m"), nil)
	var n int64
	batch := func(size int) []Sample {
		ss := make([]Sample, size)
		for i := range ss {
			ss[i] = Sample{ref, n * 1000, float64(n) * 0.5}
			n++
		}
		return ss
	}
	for i := 0; i < 200; i++ {
		if err := db.Append(batch(100)); err != nil {
			t.Fatal(err)
		}
	}
	big := batch(3 * testSegmentSize / 4) // about 4 bytes a sample: 3 segments
	if err := db.Append(big); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		if err := db.Append(batch(100)); err != nil {
			t.Fatal(err)
		}
	}
	st := db.Stats()
	db.kill()
	sizes, _ := walFiles(t, dir)
	var extended int
	for _, size := range sizes {
		if size > testSegmentSize {
			extended++
		} else if size != testSegmentSize {
			t.Fatalf("segment of %d bytes: %v", size, sizes)
		}
	}
	if st.WALSegments < 3 || extended != 1 {
		t.Fatalf("%d segments in use, %d extended by the big batch: %v", st.WALSegments, extended, sizes)
	}
	db = openTest(t, dir, nil)
	defer db.Close()
	if got := db.Stats(); got.WALBytes != st.WALBytes || got.TornTails != 0 {
		t.Fatalf("replayed %d WAL bytes (%d torn tails), %d were written", got.WALBytes, got.TornTails, st.WALBytes)
	}
	ts, vs := collect(t, db, ref, 0, 1<<62)
	if int64(len(ts)) != n {
		t.Fatalf("%d samples, want %d", len(ts), n)
	}
	for i := range ts {
		if ts[i] != int64(i)*1000 || vs[i] != float64(i)*0.5 {
			t.Fatalf("sample %d is (%d, %v)", i, ts[i], vs[i])
		}
	}
}

// A flush whose frozen head has no record in the open segment (samples
// replayed from segments before it) cuts the WAL at that segment without
// moving to the next, and nothing is replayed twice.
func TestFlushWithoutRecordsInOpenSegment(t *testing.T) {
	data, err := os.ReadFile("testdata/wal-torn-record.wal")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "wal"), 0o755)
	os.WriteFile(segmentPath(filepath.Join(dir, "wal"), 1), data, 0o644)
	db := openTest(t, dir, nil)
	db.commitMu.Lock()
	seq, off := db.segSeq, db.segOff
	db.commitMu.Unlock()
	if seq != 2 || off != 0 {
		t.Fatalf("after replaying a torn segment: writing segment %d at %d, want a new segment 2", seq, off)
	}
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	db.commitMu.Lock()
	seq, cut := db.segSeq, db.walCut
	db.commitMu.Unlock()
	if seq != 2 || cut != 2 {
		t.Fatalf("after the flush: segment %d, cut %d; want 2 and 2", seq, cut)
	}
	if sizes, _ := walFiles(t, dir); sizes[1] != 0 {
		t.Fatalf("flushed segment 1 not removed: %v", sizes)
	}
	db.kill()
	db = openTest(t, dir, nil)
	defer db.Close()
	if got := countSamples(t, db); got != 30 {
		t.Fatalf("%d samples after the flush and a crash, want 30", got)
	}
}

// TestNextSegmentCannotBeCreated: while the next WAL segment cannot be
// created (a full disk), an Append that does not fit in the current one
// fails and writes nothing, and the store stays usable: once the segment
// can be created, Appends succeed again without a restart. After a crash
// every acknowledged sample is there, also those of a series whose record
// was in a commit that failed.
func TestNextSegmentCannotBeCreated(t *testing.T) {
	defer func(d time.Duration) { segRetryPause = d }(segRetryPause)
	segRetryPause = 0
	var full atomic.Bool
	testHookCreateSegment = func(uint64) error {
		if full.Load() {
			return syscall.ENOSPC
		}
		return nil
	}
	defer func() { testHookCreateSegment = nil }()
	dir := t.TempDir()
	db := openTest(t, dir, nil)
	waitPrepared(t, db)
	full.Store(true)

	base := time.Now().UnixMilli()
	a, err := db.GetOrCreate([]byte("a"), nil)
	if err != nil {
		t.Fatal(err)
	}
	var acked int64
	appendA := func(n int) error {
		ss := make([]Sample, n)
		for i := range ss {
			ss[i] = Sample{a, base + acked + int64(i), float64(acked + int64(i))}
		}
		err := db.Append(ss)
		if err == nil {
			acked += int64(n)
		}
		return err
	}
	// The current segment and the one prepared ahead fill up.
	for err == nil {
		if acked > 4*testSegmentSize {
			t.Fatal("no Append failed")
		}
		err = appendA(500)
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Append with no room for the next segment: %v, want ENOSPC", err)
	}
	// A new series whose record does not fit: its sample alone would.
	big, err := db.GetOrCreate(bytes.Repeat([]byte("b"), 2*testSegmentSize/3), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Append([]Sample{{big, base, 1}}); err == nil {
		t.Fatal("Append of a sample whose series record does not fit in the WAL segment succeeded")
	}
	if err := db.Flush(); err == nil {
		t.Fatal("Flush with no room for the next segment succeeded")
	}

	full.Store(false)
	if err := appendA(500); err != nil {
		t.Fatalf("Append once the segment can be created: %v", err)
	}
	if err := db.Append([]Sample{{big, base, 2}}); err != nil {
		t.Fatalf("Append once the segment can be created: %v", err)
	}
	db.kill()

	db = openTest(t, dir, nil)
	defer db.Close()
	if ts, _ := collect(t, db, a, 0, base+acked); int64(len(ts)) != acked {
		t.Errorf("after a crash: %d samples of a, %d acknowledged", len(ts), acked)
	}
	ref, ok := db.Lookup(bytes.Repeat([]byte("b"), 2*testSegmentSize/3), nil)
	if !ok {
		t.Fatal("after a crash: the series with an acknowledged sample is lost")
	}
	if _, vs := collect(t, db, ref, 0, base+1); len(vs) != 1 || vs[0] != 2 {
		t.Errorf("after a crash: the series with an acknowledged sample 2 holds %v", vs)
	}
}
