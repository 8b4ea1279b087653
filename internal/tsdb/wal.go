package tsdb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// WAL records are framed as
//
//	u32 LE length of type+body | u32 LE CRC-32C of type+body | type | body
//
// See docs/format/wal.md.
const (
	walFrameHeader = 8
	walMaxRecord   = 256 << 20
	recSeries      = 1
	recSamples     = 2
	walValueRaw    = 31 // value code tag: 8 raw bytes follow
	walMaxDecimalE = 6  // WAL values use decimal codes up to 10^-6
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var (
	errTorn     = errors.New("incomplete record")
	errChecksum = errors.New("checksum mismatch")
)

// beginFrame reserves a frame header and writes the type byte.
func beginFrame(dst []byte, typ byte) ([]byte, int) {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0, typ)
	return dst, start
}

// endFrame fills in the length and checksum of the frame begun at start.
func endFrame(dst []byte, start int) []byte {
	body := dst[start+walFrameHeader:]
	binary.LittleEndian.PutUint32(dst[start:], uint32(len(body)))
	binary.LittleEndian.PutUint32(dst[start+4:], crc32.Checksum(body, castagnoli))
	return dst
}

// AppendSeriesRecord appends a framed series record to dst.
func appendSeriesRecord(dst []byte, ref SeriesRef, name string, labels []Label) []byte {
	dst, start := beginFrame(dst, recSeries)
	dst = binary.AppendUvarint(dst, uint64(ref))
	dst = binary.AppendUvarint(dst, uint64(len(name)))
	dst = append(dst, name...)
	dst = binary.AppendUvarint(dst, uint64(len(labels)))
	dst = appendLabelsKey(dst, labels)
	return endFrame(dst, start)
}

// appendSamplesRecord appends a framed samples record to dst.
func appendSamplesRecord(dst []byte, samples []Sample) []byte {
	dst, start := beginFrame(dst, recSamples)
	dst = binary.AppendUvarint(dst, uint64(len(samples)))
	var pref SeriesRef
	var pt int64
	for _, s := range samples {
		dst = binary.AppendVarint(dst, int64(s.Ref-pref))
		dst = binary.AppendVarint(dst, s.T-pt)
		dst = appendWALValue(dst, s.V)
		pref, pt = s.Ref, s.T
	}
	return endFrame(dst, start)
}

var pow10 = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9,
	1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18}

// decimalAt returns m such that float64(m)/10^e is exactly v, if any.
func decimalAt(v float64, e int) (int64, bool) {
	f := v * pow10[e]
	if !(f > -9.2e18 && f < 9.2e18) {
		return 0, false
	}
	m := int64(math.Round(f))
	if math.Float64bits(float64(m)/pow10[e]) != math.Float64bits(v) {
		return 0, false
	}
	return m, true
}

func zigzag(v int64) uint64   { return uint64(v<<1) ^ uint64(v>>63) }
func unzigzag(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }

func appendWALValue(dst []byte, v float64) []byte {
	for e := 0; e <= walMaxDecimalE; e++ {
		if m, ok := decimalAt(v, e); ok {
			if z := zigzag(m); z < 1<<58 {
				return binary.AppendUvarint(dst, z<<5|uint64(e))
			}
			break
		}
	}
	dst = append(dst, walValueRaw)
	return binary.LittleEndian.AppendUint64(dst, math.Float64bits(v))
}

// readFrame parses the frame at the start of buf.
func readFrame(buf []byte) (typ byte, body []byte, n int, err error) {
	if len(buf) < walFrameHeader+1 {
		return 0, nil, 0, errTorn
	}
	l := binary.LittleEndian.Uint32(buf)
	if l == 0 || l > walMaxRecord {
		return 0, nil, 0, errTorn
	}
	if uint64(len(buf)-walFrameHeader) < uint64(l) {
		return 0, nil, 0, errTorn
	}
	rec := buf[walFrameHeader : walFrameHeader+int(l)]
	if crc32.Checksum(rec, castagnoli) != binary.LittleEndian.Uint32(buf[4:]) {
		return 0, nil, 0, errChecksum
	}
	return rec[0], rec[1:], walFrameHeader + int(l), nil
}

// byteReader reads varints from a body, remembering the first error.
type byteReader struct {
	b   []byte
	err error
}

func (r *byteReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		if r.err == nil {
			r.err = fmt.Errorf("%w: bad varint", ErrCorrupt)
		}
		r.b = nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *byteReader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		if r.err == nil {
			r.err = fmt.Errorf("%w: bad varint", ErrCorrupt)
		}
		r.b = nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *byteReader) bytes(n uint64) []byte {
	if n > uint64(len(r.b)) {
		if r.err == nil {
			r.err = fmt.Errorf("%w: short record", ErrCorrupt)
		}
		r.b = nil
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *byteReader) u64() uint64 {
	b := r.bytes(8)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint64(b)
}

// decodeSeriesRecord decodes the body of a series record.
func decodeSeriesRecord(body []byte) (SeriesRef, string, []Label, error) {
	r := byteReader{b: body}
	ref := SeriesRef(r.uvarint())
	name := string(r.bytes(r.uvarint()))
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		return 0, "", nil, fmt.Errorf("%w: series record: %d labels", ErrCorrupt, n)
	}
	var labels []Label
	for i := uint64(0); i < n && r.err == nil; i++ {
		ln := string(r.bytes(r.uvarint()))
		lv := string(r.bytes(r.uvarint()))
		labels = append(labels, Label{ln, lv})
	}
	if r.err != nil {
		return 0, "", nil, r.err
	}
	// Labels are written sorted by name; unsorted, they would give the
	// series another key than the one a lookup of its labels builds.
	if ref == 0 || len(r.b) != 0 || !labelsSorted(labels) {
		return 0, "", nil, fmt.Errorf("%w: series record", ErrCorrupt)
	}
	return ref, name, labels, nil
}

// decodeSamplesRecord decodes the body of a samples record, appending to dst.
func decodeSamplesRecord(body []byte, dst []Sample) ([]Sample, error) {
	r := byteReader{b: body}
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		return dst, fmt.Errorf("%w: samples record: count %d", ErrCorrupt, n)
	}
	var ref SeriesRef
	var t int64
	for i := uint64(0); i < n; i++ {
		ref += SeriesRef(r.varint())
		t += r.varint()
		code := r.uvarint()
		var v float64
		if e := code & 31; e == walValueRaw {
			v = math.Float64frombits(r.u64())
		} else if e <= walMaxDecimalE {
			v = float64(unzigzag(code>>5)) / pow10[e]
		} else if r.err == nil {
			r.err = fmt.Errorf("%w: samples record: value code %d", ErrCorrupt, e)
		}
		if r.err != nil {
			return dst, r.err
		}
		dst = append(dst, Sample{Ref: ref, T: t, V: v})
	}
	if len(r.b) != 0 {
		return dst, fmt.Errorf("%w: samples record: %d trailing bytes", ErrCorrupt, len(r.b))
	}
	return dst, nil
}

// walSegments lists the segment numbers in dir, ascending.
func walSegments(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var seqs []uint64
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, ".wal") {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSuffix(name, ".wal"), 16, 64)
		if err != nil {
			continue
		}
		seqs = append(seqs, n)
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	return seqs, nil
}

func segmentPath(dir string, seq uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%016x.wal", seq))
}

// scanSegment calls fn for every intact record of buf. It returns the length
// of the intact prefix and the error that ended it: nil at a clean end,
// which is the end of buf or a remainder of zero bytes (the part of a
// preallocated segment not written yet); errTorn or errChecksum when
// anything else follows the intact prefix; or fn's error.
func scanSegment(buf []byte, fn func(typ byte, body []byte) error) (int, error) {
	off := 0
	for off < len(buf) {
		typ, body, n, err := readFrame(buf[off:])
		if err != nil {
			if allZero(buf[off:]) {
				return off, nil
			}
			return off, err
		}
		if err := fn(typ, body); err != nil {
			return off, err
		}
		off += n
	}
	return off, nil
}
