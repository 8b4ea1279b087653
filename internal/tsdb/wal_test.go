package tsdb

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the testdata fixtures")

func TestSamplesRecordRoundTrip(t *testing.T) {
	in := []Sample{
		{1, 1000, 1.5}, {3, 999, -2.25}, {2, -5, 0}, {2, math.MaxInt64, 1e16},
		{7, math.MinInt64, math.Copysign(0, -1)}, {1, 1, math.NaN()}, {1, 2, math.Inf(-1)},
		{1, 3, 0.1}, {1, 4, 1.0 / 3}, {1, 5, 123456.789012}, {1, 6, 5e-324}, {1 << 40, 7, -1e300},
	}
	rec := appendSamplesRecord(nil, in)
	typ, body, n, err := readFrame(rec)
	if err != nil || typ != recSamples || n != len(rec) {
		t.Fatalf("frame: typ %d n %d err %v", typ, n, err)
	}
	out, err := decodeSamplesRecord(body, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("%d samples, want %d", len(out), len(in))
	}
	for i := range in {
		if out[i].Ref != in[i].Ref || out[i].T != in[i].T || math.Float64bits(out[i].V) != math.Float64bits(in[i].V) {
			t.Errorf("sample %d: got %+v want %+v", i, out[i], in[i])
		}
	}
	// A flipped bit anywhere is caught by the checksum or the framing.
	for i := 0; i < len(rec); i++ {
		bad := append([]byte(nil), rec...)
		bad[i] ^= 0x10
		if _, _, _, err := readFrame(bad); err == nil {
			t.Fatalf("flipped bit in byte %d not detected", i)
		}
	}
}

func TestSeriesRecordRoundTrip(t *testing.T) {
	rec := appendSeriesRecord(nil, 42, "cpu.load", []Label{{"host", "a b"}, {"type", ""}})
	typ, body, _, err := readFrame(rec)
	if err != nil || typ != recSeries {
		t.Fatal(typ, err)
	}
	ref, name, labels, err := decodeSeriesRecord(body)
	if err != nil || ref != 42 || name != "cpu.load" || len(labels) != 2 || labels[0] != (Label{"host", "a b"}) || labels[1] != (Label{"type", ""}) {
		t.Fatalf("got %d %q %v %v", ref, name, labels, err)
	}
}

// writeWALFixture builds a data dir with one series and nrec sample records
// of 10 samples each, then crashes it, and returns the WAL segment holding
// them (preallocated: a zero tail follows the records). The only other
// segment is the next one, prepared and unused.
func writeWALFixture(t *testing.T, nrec int) (dir, seg string) {
	t.Helper()
	dir = t.TempDir()
	db := openTest(t, dir, nil)
	ref, err := db.GetOrCreate([]byte("m"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for r := 0; r < nrec; r++ {
		ss := make([]Sample, 10)
		for i := range ss {
			ss[i] = Sample{ref, int64(r*10+i) * 1000, float64(r) + float64(i)/4}
		}
		if err := db.Append(ss); err != nil {
			t.Fatal(err)
		}
	}
	db.kill()
	walDir := filepath.Join(dir, "wal")
	segs, err := walSegments(walDir)
	if err != nil || len(segs) == 0 || len(segs) > 2 {
		t.Fatalf("segments %v %v", segs, err)
	}
	for _, s := range segs[1:] {
		if unused, err := unusedSegment(segmentPath(walDir, s)); err != nil || !unused {
			t.Fatalf("segment %d after the written one is not an unused preallocated one: %v", s, err)
		}
	}
	seg = segmentPath(walDir, segs[0])
	if fi, err := os.Stat(seg); err != nil || fi.Size() != testSegmentSize {
		t.Fatalf("segment %s is not preallocated to %d bytes: %v", seg, testSegmentSize, err)
	}
	return dir, seg
}

// recordEnds returns the end offset of every frame in a segment, up to its
// zero tail.
func recordEnds(t *testing.T, data []byte) []int {
	t.Helper()
	var ends []int
	off := 0
	for off < len(data) {
		_, _, n, err := readFrame(data[off:])
		if err != nil {
			if allZero(data[off:]) {
				break
			}
			t.Fatal(err)
		}
		off += n
		ends = append(ends, off)
	}
	return ends
}

func countSamples(t *testing.T, db *DB) int {
	t.Helper()
	ref, ok := db.Lookup([]byte("m"), nil)
	if !ok {
		return 0
	}
	ts, _ := collect(t, db, ref, math.MinInt64, math.MaxInt64)
	return len(ts)
}

// TestWALTornTailAtEveryCut cuts a WAL segment at every record boundary,
// the bytes around them and every third byte, as a crash in the middle of
// a write leaves it, and checks what Open recovers, reports and leaves in
// the file. Three shapes of segment: cut short (a segment of an older
// version, not preallocated); cut and followed by the zeros of a
// preallocated segment (what a crash leaves now); and, at boundaries,
// followed by zeros and then one stray byte at the end of the file, which
// is not a clean end.
func TestWALTornTailAtEveryCut(t *testing.T) {
	const nrec = 12
	_, seg := writeWALFixture(t, nrec)
	data, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	ends := recordEnds(t, data)
	if len(ends) != nrec+1 {
		t.Fatalf("%d records, want %d", len(ends), nrec+1)
	}
	valid := ends[len(ends)-1]
	data = data[:valid]
	// Every record boundary and the bytes around it, and every third byte.
	cuts := map[int]bool{0: true, valid: true}
	for _, e := range ends {
		cuts[e-1], cuts[e], cuts[e+1] = true, true, e+1 <= valid
	}
	for c := 0; c < valid; c += 3 {
		cuts[c] = true
	}
	type shape int
	const (
		short shape = iota
		zeroTail
		strayByte
	)
	for _, sh := range []shape{short, zeroTail, strayByte} {
		for cut := 0; cut <= valid; cut++ {
			if !cuts[cut] {
				continue
			}
			if sh == strayByte && !slices.Contains(ends, cut) {
				continue
			}
			file := append([]byte(nil), data[:cut]...)
			switch sh {
			case zeroTail:
				file = append(file, make([]byte, testSegmentSize-cut)...)
			case strayByte:
				file = append(file, make([]byte, testSegmentSize-cut)...)
				file[len(file)-1] = 1
			}
			// Complete records: those whose bytes are all in the file (a
			// record cut just before zero bytes of its own is complete in
			// a zero tail).
			complete := 0
			for _, e := range ends {
				if e <= len(file) && bytes.Equal(file[:e], data[:e]) {
					complete++
				}
			}
			good := 0 // end of the last complete record
			if complete > 0 {
				good = ends[complete-1]
			}
			// A torn tail is anything after the last complete record
			// that is not all zeros.
			wantTorn := !allZero(file[good:])
			dir := t.TempDir()
			if err := os.MkdirAll(filepath.Join(dir, "wal"), 0o755); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "wal", filepath.Base(seg))
			if err := os.WriteFile(path, file, 0o644); err != nil {
				t.Fatal(err)
			}
			db, err := Open(dir, testOpts())
			if err != nil {
				t.Fatalf("shape %d cut %d: open: %v", sh, cut, err)
			}
			wantSamples := 0
			if complete > 1 {
				wantSamples = (complete - 1) * 10
			}
			if got := countSamples(t, db); got != wantSamples {
				t.Fatalf("shape %d cut %d: %d samples, want %d", sh, cut, got, wantSamples)
			}
			st := db.Stats()
			if wantTorn && st.TornTails != 1 {
				t.Fatalf("shape %d cut %d: torn tails %d, want 1", sh, cut, st.TornTails)
			}
			if !wantTorn && st.TornTails != 0 {
				t.Fatalf("shape %d cut %d: a clean end reported as a torn tail", sh, cut)
			}
			if st.WALBytes != int64(good) {
				t.Fatalf("shape %d cut %d: WAL bytes %d, want %d", sh, cut, st.WALBytes, good)
			}
			// The torn bytes are gone from the file; a clean end is left
			// as it was. New appends survive.
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if wantTorn && len(got) != good {
				t.Fatalf("shape %d cut %d: segment of %d bytes not truncated to the last record at %d", sh, cut, len(got), good)
			}
			if !wantTorn && !bytes.Equal(got, file) {
				t.Fatalf("shape %d cut %d: segment with a clean end changed", sh, cut)
			}
			ref, err := db.GetOrCreate([]byte("m"), nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Append([]Sample{{ref, 1, 1}}); err != nil {
				t.Fatal(err)
			}
			db.kill()
			db = openTest(t, dir, nil)
			if got := countSamples(t, db); got != wantSamples+1 {
				t.Fatalf("shape %d cut %d: after reopen %d samples, want %d", sh, cut, got, wantSamples+1)
			}
			if st := db.Stats(); st.TornTails != 0 {
				t.Fatalf("shape %d cut %d: torn tail on the second open", sh, cut)
			}
			db.Close()
		}
	}
}

// openFixture opens a data dir whose only WAL segment is the fixture,
// logging into log.
func openFixture(t *testing.T, fixture string, log *bytes.Buffer) (*DB, string, error) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", fixture))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "wal"), 0o755)
	path := segmentPath(filepath.Join(dir, "wal"), 1)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	db, err := Open(dir, &Options{Logger: slog.New(slog.NewTextHandler(log, nil))})
	return db, path, err
}

// fixtureSize is the size of the preallocated segments in testdata: smaller
// than a real one, which changes nothing in how they are read.
const fixtureSize = 8 << 10

// TestWALFixtures checks the testdata fixtures, one per way a segment can
// end, built from a series record and four sample records of 10 samples:
//
//   - wal-torn-record.wal: the last record cut short, at the end of the file
//     (a segment of an older version, not preallocated);
//   - wal-bad-checksum.wal: a body byte of the last record flipped;
//   - wal-zero-tail.wal: every record intact, then zeros to the end of the
//     preallocated segment: a clean end, nothing reported;
//   - wal-torn-zero-tail.wal: the last record cut short, then zeros (a crash
//     in the middle of a write into a preallocated segment);
//   - wal-zeros-then-garbage.wal: every record intact, zeros, then non-zero
//     bytes before the end of the file: not a clean end.
func TestWALFixtures(t *testing.T) {
	if *update {
		_, seg := writeWALFixture(t, 4)
		data, _ := os.ReadFile(seg)
		ends := recordEnds(t, data)
		data = data[:ends[len(ends)-1]]
		torn := data[:ends[len(ends)-1]-7]
		bad := append([]byte(nil), data...)
		bad[ends[len(ends)-2]+walFrameHeader+3] ^= 0xff // a body byte of the last record
		zeroTail := append(append([]byte(nil), data...), make([]byte, fixtureSize-len(data))...)
		tornZero := append(append([]byte(nil), torn...), make([]byte, fixtureSize-len(torn))...)
		garbage := append([]byte(nil), zeroTail...)
		copy(garbage[fixtureSize-200:], data[len(data)-100:])
		os.WriteFile("testdata/wal-torn-record.wal", torn, 0o644)
		os.WriteFile("testdata/wal-bad-checksum.wal", bad, 0o644)
		os.WriteFile("testdata/wal-zero-tail.wal", zeroTail, 0o644)
		os.WriteFile("testdata/wal-torn-zero-tail.wal", tornZero, 0o644)
		os.WriteFile("testdata/wal-zeros-then-garbage.wal", garbage, 0o644)
	}
	for _, tc := range []struct {
		fixture          string
		torn             bool
		records, samples int // replayed
	}{
		{"wal-torn-record.wal", true, 4, 30},
		{"wal-bad-checksum.wal", true, 4, 30},
		{"wal-zero-tail.wal", false, 5, 40},
		{"wal-torn-zero-tail.wal", true, 4, 30},
		{"wal-zeros-then-garbage.wal", true, 5, 40},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			var log bytes.Buffer
			db, path, err := openFixture(t, tc.fixture, &log)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			wants := []string{fmt.Sprint("wal_records=", tc.records), fmt.Sprint("wal_samples=", tc.samples), "duration="}
			if tc.torn {
				wants = append(wants, "truncating torn WAL tail")
			} else if strings.Contains(log.String(), "torn") || strings.Contains(log.String(), "level=WARN") {
				t.Errorf("a clean end is reported:\n%s", log.String())
			}
			for _, want := range wants {
				if !strings.Contains(log.String(), want) {
					t.Errorf("log lacks %q:\n%s", want, log.String())
				}
			}
			if got := countSamples(t, db); got != tc.samples {
				t.Errorf("%d samples, want %d", got, tc.samples)
			}
			st := db.Stats()
			if wantTorn := map[bool]int64{false: 0, true: 1}[tc.torn]; st.TornTails != wantTorn || st.ReplayedSamples != int64(tc.samples) {
				t.Errorf("stats: %+v", st)
			}
			data, _ := os.ReadFile(path)
			if ends := recordEnds(t, data); len(ends) != tc.records {
				t.Errorf("%d records left in the segment, want %d", len(ends), tc.records)
			}
			if fixture, _ := os.ReadFile(filepath.Join("testdata", tc.fixture)); !tc.torn && !bytes.Equal(data, fixture) {
				t.Errorf("a segment with a clean end was changed")
			}
		})
	}
}

// A bad checksum before the last segment is not a torn tail: Open refuses,
// unless every later segment is a preallocated one never written (the next
// segment is prepared while the current one is written, so a crash leaves
// one behind a torn tail).
func TestWALCorruptMiddleSegment(t *testing.T) {
	data, err := os.ReadFile("testdata/wal-bad-checksum.wal")
	if err != nil {
		t.Fatal(err)
	}
	written, err := os.ReadFile("testdata/wal-zero-tail.wal")
	if err != nil {
		t.Fatal(err)
	}
	unused := make([]byte, testSegmentSize)
	for _, tc := range []struct {
		name  string
		later [][]byte
		torn  bool
	}{
		{"empty", [][]byte{nil}, false},
		{"written", [][]byte{written}, false},
		{"unused then written", [][]byte{unused, written}, false},
		{"unused", [][]byte{unused}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			os.MkdirAll(filepath.Join(dir, "wal"), 0o755)
			os.WriteFile(segmentPath(filepath.Join(dir, "wal"), 1), data, 0o644)
			for i, b := range tc.later {
				os.WriteFile(segmentPath(filepath.Join(dir, "wal"), uint64(2+i)), b, 0o644)
			}
			db, err := Open(dir, testOpts())
			if !tc.torn {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("open: %v, want ErrCorrupt", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			defer db.Close()
			if st := db.Stats(); st.TornTails != 1 || countSamples(t, db) != 30 {
				t.Fatalf("torn tails %d, %d samples; want 1, 30", st.TornTails, countSamples(t, db))
			}
		})
	}
}

// TestLargeAppendSplitsRecords: an Append larger than one WAL record may
// hold is written as several records, and all of it replays.
func TestLargeAppendSplitsRecords(t *testing.T) {
	defer func(n int) { maxRecordSamples = n }(maxRecordSamples)
	maxRecordSamples = 1000
	dir := t.TempDir()
	db := openTest(t, dir, nil)
	ref, base := appendRun(t, db, "big", 1, 2500)
	db.kill()
	db = openTest(t, dir, nil)
	defer db.Close()
	st := db.Stats()
	if st.ReplayedSamples != 2500 || st.ReplayedRecords != 1+3 || st.TornTails != 0 {
		t.Fatalf("replayed %d samples in %d records (%d torn tails), want 2500 in 1 series and 3 samples records", st.ReplayedSamples, st.ReplayedRecords, st.TornTails)
	}
	if ts := collect2(t, db, ref); len(ts) != 2500 || ts[0] != base || ts[2499] != base+2499 {
		t.Fatalf("%d samples after replay", len(ts))
	}
}

// TestOpenSyncsReplayedSegments: Open syncs every WAL segment it replayed
// records from, not only the last one, since a crash can leave unsynced
// records in any of them.
func TestOpenSyncsReplayedSegments(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir, nil)
	appendRun(t, db, "m", 300, 200) // about 5 bytes a sample: 300 KB, 4 or more segments
	db.kill()
	var synced []string
	testHookSyncedSegment = func(path string) { synced = append(synced, filepath.Base(path)) }
	defer func() { testHookSyncedSegment = nil }()
	db = openTest(t, dir, nil)
	defer db.Close()
	if len(synced) < 3 {
		t.Fatalf("synced segments %v, want every segment with records (3 or more)", synced)
	}
}

// appendRun creates series name and appends batches Appends of size
// samples to it, one a millisecond from now on, valued by their place in
// their batch; it returns the series and the first time.
func appendRun(t *testing.T, db *DB, name string, batches, size int) (SeriesRef, int64) {
	t.Helper()
	ref, err := db.GetOrCreate([]byte(name), nil)
	if err != nil {
		t.Fatal(err)
	}
	base := time.Now().UnixMilli()
	for i := range batches {
		ss := make([]Sample, size)
		for j := range ss {
			ss[j] = Sample{ref, base + int64(i*size+j), float64(j)}
		}
		if err := db.Append(ss); err != nil {
			t.Fatal(err)
		}
	}
	return ref, base
}
