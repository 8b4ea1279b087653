package tsdb

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// FuzzWALSegment feeds arbitrary bytes to the WAL segment reader and to
// replay (the record decoders, the index and the head), and checks what
// the reader says about where the intact records end. Seeds: the testdata
// fixtures and fresh records.
func FuzzWALSegment(f *testing.F) {
	fixtures, _ := filepath.Glob("testdata/wal-*.wal")
	for _, fx := range fixtures {
		if b, err := os.ReadFile(fx); err == nil {
			f.Add(b)
		}
	}
	seed := appendSeriesRecord(nil, 1, "cpu", []Label{{"host", "a"}})
	seed = appendSamplesRecord(seed, []Sample{{1, 1000, 1.5}, {1, 999, math.Pi}, {2, 1 << 40, -1e300}})
	f.Add(seed)
	f.Add(append(seed, make([]byte, 100)...))
	f.Add([]byte{})
	// Samples of refs no series has, the largest past the largest int.
	f.Add(appendSamplesRecord(appendSeriesRecord(nil, 1, "a", nil), []Sample{{1, 1, 1}, {7, 2, 2}, {1 << 63, 3, 3}, {1<<64 - 1, 4, 4}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		var buf []Sample
		decode := func(typ byte, body []byte) error {
			switch typ {
			case recSeries:
				_, _, _, err := decodeSeriesRecord(body)
				return err
			case recSamples:
				var err error
				buf, err = decodeSamplesRecord(body, buf[:0])
				return err
			}
			return nil
		}
		db := &DB{idx: newSeriesIndex(), flushCh: make(chan struct{}, 1)}
		scanSegment(data, func(typ byte, body []byte) error {
			var err error
			buf, err = db.replayRecord(typ, body, buf[:0])
			return err
		})
		n, err := scanSegment(data, decode)
		if n < 0 || n > len(data) {
			t.Fatalf("intact prefix of %d bytes in %d", n, len(data))
		}
		// A clean end is the end of the data or zeros only; a torn tail
		// is never all zeros.
		if err == nil && !allZero(data[n:]) {
			t.Fatalf("clean end at %d of %d with non-zero bytes after it", n, len(data))
		}
		if (errors.Is(err, errTorn) || errors.Is(err, errChecksum)) && allZero(data[n:]) {
			t.Fatalf("zeros after %d reported as %v", n, err)
		}
		// The intact prefix reads back alone as a clean segment of the
		// same records.
		if errors.Is(err, errTorn) || errors.Is(err, errChecksum) || err == nil {
			if m, err := scanSegment(data[:n], decode); err != nil || m != n {
				t.Fatalf("intact prefix of %d bytes rescans as %d, %v", n, m, err)
			}
		}
	})
}

// FuzzSamplesRecord fuzzes the body of a samples record (past the checksum).
func FuzzSamplesRecord(f *testing.F) {
	rec := appendSamplesRecord(nil, []Sample{{1, 1000, 1.5}, {3, 999, math.Pi}, {2, -7, 0.001}})
	f.Add(rec[walFrameHeader+1:])
	f.Fuzz(func(t *testing.T, body []byte) {
		ss, err := decodeSamplesRecord(body, nil)
		if err != nil {
			return
		}
		// What decodes re-encodes to the same samples.
		re := appendSamplesRecord(nil, ss)
		ss2, err := decodeSamplesRecord(re[walFrameHeader+1:], nil)
		if err != nil || len(ss2) != len(ss) {
			t.Fatalf("re-decode: %v", err)
		}
		for i := range ss {
			if ss[i].Ref != ss2[i].Ref || ss[i].T != ss2[i].T || math.Float64bits(ss[i].V) != math.Float64bits(ss2[i].V) {
				t.Fatalf("sample %d: %+v != %+v", i, ss[i], ss2[i])
			}
		}
	})
}

// storedBlock frames a block payload as stored in a part, with a valid
// checksum, so that the fuzzer reaches the decoder.
func storedBlock(flags byte, payload []byte) []byte {
	b := make([]byte, 5, 5+len(payload))
	b[4] = flags
	b = append(b, payload...)
	binary.LittleEndian.PutUint32(b, crc32.Checksum(b[4:], castagnoli))
	return b
}

// FuzzBlockDecode fuzzes the block decoder, raw and zstd-compressed.
func FuzzBlockDecode(f *testing.F) {
	var e blockEncoder
	ts, vs := refPoints(42, 0, 300, refStart)
	f.Add(byte(0), e.appendBlock(nil, ts, vs))
	ts, vs = refPoints(42, 1, 50, refStart)
	f.Add(byte(0), e.appendBlock(nil, ts, vs))
	f.Add(byte(0), e.appendBlock(nil, []int64{1, 5, 2, 9}, []float64{math.NaN(), 1, math.Inf(1), 0.1}))
	enc, _ := zstdCodecs()
	f.Add(byte(1), enc.EncodeAll(e.appendBlock(nil, []int64{1, 2, 3, 4, 5, 6, 7, 8}, []float64{1, 1, 1, 1, 1, 1, 1, 1}), nil))
	f.Fuzz(func(t *testing.T, flags byte, payload []byte) {
		var d blockDecoder
		ts, vs, err := d.decode(storedBlock(flags, payload))
		if err != nil {
			return
		}
		if len(ts) != len(vs) || len(ts) > maxBlockSamples {
			t.Fatalf("%d timestamps, %d values", len(ts), len(vs))
		}
		// What decodes re-encodes to the same samples.
		ts = append([]int64(nil), ts...)
		vs = append([]float64(nil), vs...)
		var e blockEncoder
		ts2, vs2, _, err := decodeBlockInto(e.appendBlock(nil, ts, vs), nil, nil, nil)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		for i := range ts {
			if ts[i] != ts2[i] || math.Float64bits(vs[i]) != math.Float64bits(vs2[i]) {
				t.Fatalf("sample %d differs", i)
			}
		}
	})
}

// FuzzPartIndex fuzzes the part index decoder.
func FuzzPartIndex(f *testing.F) {
	dir := f.TempDir()
	w, err := createPart(dir+"/x.part", partBuf)
	if err != nil {
		f.Fatal(err)
	}
	ts, vs := refPoints(42, 0, 10000, refStart)
	w.addSeries(3, ts, vs)
	w.addSeries(9, ts[:10], vs[:10])
	if _, err := w.finish(); err != nil {
		f.Fatal(err)
	}
	data, err := os.ReadFile(dir + "/x.part")
	if err != nil {
		f.Fatal(err)
	}
	ioff := binary.LittleEndian.Uint64(data[len(data)-partFooterSize:])
	f.Add(data[ioff:len(data)-partFooterSize], ioff)
	f.Add([]byte{0}, uint64(8))
	f.Fuzz(func(t *testing.T, idx []byte, dataEnd uint64) {
		pi, err := decodePartIndex(idx, dataEnd)
		if err != nil {
			return
		}
		if len(pi.first) != len(pi.refs)+1 {
			t.Fatalf("first %d refs %d", len(pi.first), len(pi.refs))
		}
		for i := 1; i < len(pi.refs); i++ {
			if pi.refs[i] <= pi.refs[i-1] {
				t.Fatalf("refs not ascending")
			}
		}
		for _, b := range pi.blocks {
			if b.off+uint64(b.length) > dataEnd || b.maxT < b.minT {
				t.Fatalf("bad block %+v", b)
			}
		}
	})
}

// FuzzPartFile fuzzes the opening of a part file: its footer, then its
// index. A file that does not open is reported as corrupt.
func FuzzPartFile(f *testing.F) {
	dir := f.TempDir()
	w, err := createPart(dir+"/x.part", partBuf)
	if err != nil {
		f.Fatal(err)
	}
	ts, vs := refPoints(42, 0, 300, refStart)
	w.addSeries(3, ts, vs)
	if _, err := w.finish(); err != nil {
		f.Fatal(err)
	}
	data, err := os.ReadFile(dir + "/x.part")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	// An index offset past the end, whose sum with the index length
	// wraps around to the footer's offset.
	bad := append([]byte(nil), data...)
	foot := bad[len(bad)-partFooterSize:]
	ioff := binary.LittleEndian.Uint64(foot)
	binary.LittleEndian.PutUint64(foot, math.MaxUint64)
	binary.LittleEndian.PutUint32(foot[8:], binary.LittleEndian.Uint32(foot[8:])+uint32(ioff)+1)
	f.Add(bad)
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "fuzz.part") // each worker has its own dir
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		p, err := openPart(path)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("not reported as corrupt: %v", err)
			}
			return
		}
		p.decRef()
	})
}

// FuzzManifest fuzzes the manifest decoder.
func FuzzManifest(f *testing.F) {
	f.Add(encodeManifest(manifest{walCut: 3, nextID: 9, archivedTo: 1 << 40, parts: []manifestEntry{{0, 20000, 4, 4}, {kind1h, 677, 8, 5}}}))
	f.Add(encodeManifest(manifest{}))
	f.Fuzz(func(t *testing.T, b []byte) {
		decodeManifest(b)
	})
}

// FuzzArchiveBlock fuzzes the archive block decoder.
func FuzzArchiveBlock(f *testing.F) {
	var e blockEncoder
	var a aggregator
	a.reset(60_000)
	ts, vs := refPoints(42, 0, 600, refStart)
	a.add(ts, vs)
	f.Add(e.appendArchiveBlock(nil, a.pts))
	f.Add(e.appendArchiveBlock(nil, a.pts[:1]))
	f.Fuzz(func(t *testing.T, b []byte) {
		var d archiveDecoder
		if err := d.decodeArchiveBlock(b); err != nil {
			if len(d.pts) != 0 {
				t.Fatalf("%d points left after an error", len(d.pts))
			}
			return
		}
	})
}

// FuzzSeriesIndex fuzzes the loading of the series file by Open: series
// records added to the index. Whatever the bytes, it does not panic, holds
// a slot for at most maxRefHoles refs without a series, finds every series
// it holds by its name and labels, and reads the intact prefix it reports
// alone the same way.
func FuzzSeriesIndex(f *testing.F) {
	var seed []byte
	seed = appendSeriesRecord(seed, 1, "cpu", nil)
	seed = appendSeriesRecord(seed, 2, "cpu", []Label{{"host", "a"}, {"ds", "x"}})
	seed = appendSeriesRecord(seed, 4, "mem", []Label{{"a", ""}, {"b", "2"}})
	f.Add(seed)
	f.Add(append(seed, make([]byte, 30)...))
	f.Add(appendSeriesRecord(append([]byte(nil), seed...), 1<<40, "far", nil))
	f.Add(appendSeriesRecord(nil, 2, "x", []Label{{"b", "1"}, {"a", "2"}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		x := newSeriesIndex()
		n, err := x.loadRecords(data)
		if n < 0 || n > len(data) {
			t.Fatalf("intact prefix of %d bytes in %d", n, len(data))
		}
		holes := 0
		for i, s := range x.byRef {
			if s == nil {
				holes++
				continue
			}
			if s.ref != SeriesRef(i+1) {
				t.Fatalf("series %d at slot of ref %d", s.ref, i+1)
			}
			if got := x.lookup([]byte(s.name), s.labels); got != s {
				t.Fatalf("series %d (%q %v) not found by its name and labels", s.ref, s.name, s.labels)
			}
		}
		if holes != x.holes || holes > maxRefHoles {
			t.Fatalf("%d refs without a series, index counts %d", holes, x.holes)
		}
		if err == nil {
			y := newSeriesIndex()
			if m, err := y.loadRecords(data[:n]); err != nil || m != n || len(y.byRef) != len(x.byRef) {
				t.Fatalf("intact prefix of %d bytes reloads as %d, %v", n, m, err)
			}
		}
	})
}
