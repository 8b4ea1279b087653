package tsdb

import (
	"bytes"
	"errors"
	"flag"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
// of 10 samples each, then crashes it, and returns the one WAL segment.
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
	segs, err := walSegments(filepath.Join(dir, "wal"))
	if err != nil || len(segs) != 1 {
		t.Fatalf("segments %v %v", segs, err)
	}
	return dir, segmentPath(filepath.Join(dir, "wal"), segs[0])
}

// recordEnds returns the end offset of every frame in a segment.
func recordEnds(t *testing.T, data []byte) []int {
	var ends []int
	off := 0
	for off < len(data) {
		_, _, n, err := readFrame(data[off:])
		if err != nil {
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
	// Every record boundary and the bytes around it, and every third byte.
	cuts := map[int]bool{0: true, len(data): true}
	for _, e := range ends {
		cuts[e-1], cuts[e], cuts[e+1] = true, true, e+1 <= len(data)
	}
	for c := 0; c < len(data); c += 3 {
		cuts[c] = true
	}
	for cut := 0; cut <= len(data); cut++ {
		if !cuts[cut] {
			continue
		}
		complete := 0 // complete records before the cut
		for _, e := range ends {
			if e <= cut {
				complete++
			}
		}
		atBoundary := cut == 0 || (complete > 0 && ends[complete-1] == cut)
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, "wal"), 0o755); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "wal", filepath.Base(seg))
		if err := os.WriteFile(path, data[:cut], 0o644); err != nil {
			t.Fatal(err)
		}
		db, err := Open(dir, testOpts())
		if err != nil {
			t.Fatalf("cut %d: open: %v", cut, err)
		}
		wantSamples := 0
		if complete > 1 {
			wantSamples = (complete - 1) * 10
		}
		if got := countSamples(t, db); got != wantSamples {
			t.Fatalf("cut %d: %d samples, want %d", cut, got, wantSamples)
		}
		st := db.Stats()
		if wantTorn := int64(0); !atBoundary {
			wantTorn = 1
			if st.TornTails != wantTorn {
				t.Fatalf("cut %d: torn tails %d, want 1", cut, st.TornTails)
			}
		} else if st.TornTails != 0 {
			t.Fatalf("cut %d at a record boundary reported a torn tail", cut)
		}
		// The torn bytes are gone from the file, and new appends survive.
		if fi, err := os.Stat(path); err != nil || (complete > 0 && fi.Size() != int64(ends[complete-1])) || (complete == 0 && fi.Size() != 0) {
			t.Fatalf("cut %d: segment not truncated to the last record: %v %v", cut, fi.Size(), err)
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
			t.Fatalf("cut %d: after reopen %d samples, want %d", cut, got, wantSamples+1)
		}
		db.Close()
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

// TestWALFixtures checks the testdata fixtures: a WAL whose last record is
// torn, and one whose last record has a bad checksum. Both recover the
// three complete sample records and report the torn tail.
func TestWALFixtures(t *testing.T) {
	if *update {
		_, seg := writeWALFixture(t, 4)
		data, _ := os.ReadFile(seg)
		ends := recordEnds(t, data)
		torn := data[:ends[len(ends)-1]-7]
		bad := append([]byte(nil), data...)
		bad[ends[len(ends)-2]+walFrameHeader+3] ^= 0xff // a body byte of the last record
		os.WriteFile("testdata/wal-torn-record.wal", torn, 0o644)
		os.WriteFile("testdata/wal-bad-checksum.wal", bad, 0o644)
	}
	for _, fixture := range []string{"wal-torn-record.wal", "wal-bad-checksum.wal"} {
		t.Run(fixture, func(t *testing.T) {
			var log bytes.Buffer
			db, path, err := openFixture(t, fixture, &log)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"truncating torn WAL tail", "wal_records=4", "wal_samples=30", "duration="} {
				if !strings.Contains(log.String(), want) {
					t.Errorf("log lacks %q:\n%s", want, log.String())
				}
			}
			defer db.Close()
			if got := countSamples(t, db); got != 30 {
				t.Errorf("%d samples, want 30", got)
			}
			st := db.Stats()
			if st.TornTails != 1 || st.ReplayedSamples != 30 {
				t.Errorf("stats: %+v", st)
			}
			data, _ := os.ReadFile(path)
			if ends := recordEnds(t, data); len(ends) != 4 {
				t.Errorf("%d records left in the segment, want 4", len(ends))
			}
		})
	}
}

// A bad checksum before the last segment is not a torn tail: Open refuses.
func TestWALCorruptMiddleSegment(t *testing.T) {
	data, err := os.ReadFile("testdata/wal-bad-checksum.wal")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "wal"), 0o755)
	os.WriteFile(segmentPath(filepath.Join(dir, "wal"), 1), data, 0o644)
	os.WriteFile(segmentPath(filepath.Join(dir, "wal"), 2), nil, 0o644)
	_, err = Open(dir, testOpts())
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open: %v, want ErrCorrupt", err)
	}
}
