package tsdb

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/zstd"
)

// A part file (docs/format/parts.md):
//
//	magic "VGPART\x00\x01" | blocks... | index | footer
//
// block: u32 CRC-32C of the rest | flags byte | payload (zstd if flags&1)
// footer: u64 index offset | u32 index length | u32 CRC-32C of index | magic
const (
	partMagic      = "VGPART\x00\x01"
	partFooterSize = 8 + 4 + 4 + 8
	blockZstd      = 1
	blockHeader    = 5
)

// blockMeta locates one block of a series in a part.
type blockMeta struct {
	off        uint64
	length     uint32
	count      uint32
	minT, maxT int64
}

// partIndex is a part's decoded index: series refs in ascending order and
// their blocks.
type partIndex struct {
	refs       []SeriesRef
	first      []uint32 // blocks of refs[i] are blocks[first[i]:first[i+1]]
	blocks     []blockMeta
	minT, maxT int64
	samples    int64
}

// part is an immutable part file, shared by readers with a reference count:
// the current part set holds one reference and every Scan using it another.
type part struct {
	kind    uint8 // kindRaw, or the archive resolution (archive.go)
	bucket  int64 // partition: days since the unix epoch for raw parts
	id, seq uint64
	path    string
	size    int64
	f       *os.File
	partIndex

	rc       atomic.Int64
	obsolete atomic.Bool // remove the file when the last reference goes
}

func (p *part) seriesBlocks(ref SeriesRef) []blockMeta {
	i := sort.Search(len(p.refs), func(i int) bool { return p.refs[i] >= ref })
	if i == len(p.refs) || p.refs[i] != ref {
		return nil
	}
	return p.blocks[p.first[i]:p.first[i+1]]
}

func (p *part) decRef() {
	if p.rc.Add(-1) != 0 {
		return
	}
	p.f.Close()
	if p.obsolete.Load() {
		os.Remove(p.path)
		os.Remove(filepath.Dir(p.path)) // the partition directory, once empty
	}
}

// readBlock reads and decodes one block. The returned slices live in d.
func (p *part) readBlock(bm *blockMeta, d *blockDecoder) ([]int64, []float64, error) {
	payload, err := p.readPayload(bm, d)
	if err != nil {
		return nil, nil, err
	}
	d.ts, d.vs, d.ints, err = decodeBlockInto(payload, d.ts, d.vs, d.ints)
	if err != nil {
		return nil, nil, fmt.Errorf("part %s block at %d: %w", p.path, bm.off, err)
	}
	if len(d.ts) != int(bm.count) {
		return nil, nil, fmt.Errorf("%w: part %s block at %d: %d samples, index says %d", ErrCorrupt, p.path, bm.off, len(d.ts), bm.count)
	}
	return d.ts, d.vs, nil
}

// readPayload reads one block, checks it and returns its encoded form.
func (p *part) readPayload(bm *blockMeta, d *blockDecoder) ([]byte, error) {
	d.raw = growBytes(d.raw, int(bm.length))
	if _, err := p.f.ReadAt(d.raw, int64(bm.off)); err != nil {
		return nil, fmt.Errorf("read block of %s at %d: %w", p.path, bm.off, err)
	}
	payload, err := d.payload(d.raw)
	if err != nil {
		return nil, fmt.Errorf("part %s block at %d: %w", p.path, bm.off, err)
	}
	return payload, nil
}

func growBytes(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n, n+n/4)
	}
	return b[:n]
}

var (
	zstdOnce sync.Once
	zstdEnc  *zstd.Encoder
	zstdDec  *zstd.Decoder
)

func zstdCodecs() (*zstd.Encoder, *zstd.Decoder) {
	zstdOnce.Do(func() {
		var err error
		zstdEnc, err = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault))
		if err != nil {
			panic(err)
		}
		zstdDec, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(4<<20))
		if err != nil {
			panic(err)
		}
	})
	return zstdEnc, zstdDec
}

// blockDecoder holds reusable buffers for decoding blocks. The zero value
// is ready to use; it is not safe for concurrent use.
type blockDecoder struct {
	raw, dec []byte
	ts       []int64
	vs       []float64
	ints     []int64
}

// decode checks and decodes a stored block (CRC, flags, payload). The
// returned slices are valid until the next call.
func (d *blockDecoder) decode(b []byte) ([]int64, []float64, error) {
	payload, err := d.payload(b)
	if err != nil {
		return nil, nil, err
	}
	d.ts, d.vs, d.ints, err = decodeBlockInto(payload, d.ts, d.vs, d.ints)
	if err != nil {
		return nil, nil, err
	}
	return d.ts, d.vs, nil
}

// payload checks a stored block and returns its encoded form, decompressed
// into d.dec if needed.
func (d *blockDecoder) payload(b []byte) ([]byte, error) {
	if len(b) < blockHeader {
		return nil, errBlock
	}
	if crc32.Checksum(b[4:], castagnoli) != binary.LittleEndian.Uint32(b) {
		return nil, fmt.Errorf("%w: block checksum mismatch", ErrCorrupt)
	}
	payload := b[blockHeader:]
	switch b[4] {
	case 0:
		return payload, nil
	case blockZstd:
		_, dec := zstdCodecs()
		var err error
		d.dec, err = dec.DecodeAll(payload, d.dec[:0])
		if err != nil {
			return nil, fmt.Errorf("%w: block: %v", ErrCorrupt, err)
		}
		return d.dec, nil
	}
	return nil, errBlock
}

// appendStoredBlock appends a block as stored in a part: it is compressed
// with zstd when that saves at least 1/8 of its size.
func appendStoredBlock(dst, raw []byte, zbuf *[]byte) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, 0)
	if len(raw) >= 64 {
		enc, _ := zstdCodecs()
		*zbuf = enc.EncodeAll(raw, (*zbuf)[:0])
		if len(*zbuf) < len(raw)-len(raw)/8 {
			dst[start+4] = blockZstd
			raw = *zbuf
		}
	}
	dst = append(dst, raw...)
	binary.LittleEndian.PutUint32(dst[start:], crc32.Checksum(dst[start+4:], castagnoli))
	return dst
}

// partWriter writes one part file: series in ascending ref order, each with
// its samples sorted by time.
type partWriter struct {
	path, tmp string
	f         *os.File
	bw        *bufio.Writer
	off       uint64
	enc       blockEncoder
	raw, blk  []byte
	zbuf      []byte
	idx       []byte
	nseries   uint64
	lastRef   SeriesRef
	prevMinT  int64
	samples   int64
}

// partBuf is the write buffer of a part; a flush that writes many parts at
// once (samples of many days: a backfill) gives the parts after its first
// few partBufSmall instead, so that a year of days does not take 100 MB.
const (
	partBuf      = 256 << 10
	partBufSmall = 16 << 10
)

// testHookPartDir, if set, runs between making a part's directory and
// creating its file.
var testHookPartDir func(dir string)

// createPart starts writing a part at path, with a write buffer of bufSize
// bytes.
func createPart(path string, bufSize int) (*partWriter, error) {
	tmp := path + ".tmp"
	var f *os.File
	for try := 0; ; try++ {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, fmt.Errorf("create partition dir: %w", err)
		}
		if testHookPartDir != nil {
			testHookPartDir(filepath.Dir(path))
		}
		var err error
		f, err = os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err == nil {
			break
		}
		// The last part of a partition, released meanwhile, removes the
		// directory once empty (part.decRef): make it again.
		if !errors.Is(err, fs.ErrNotExist) || try == 3 {
			return nil, fmt.Errorf("create part: %w", err)
		}
	}
	w := &partWriter{path: path, tmp: tmp, f: f, bw: bufio.NewWriterSize(f, bufSize)}
	w.bw.WriteString(partMagic)
	w.off = uint64(len(partMagic))
	return w, nil
}

// addSeries writes the blocks of one series; ref must be above the last.
func (w *partWriter) addSeries(ref SeriesRef, ts []int64, vs []float64) error {
	return w.addBlocks(ref, ts, func(dst []byte, i, j int) []byte {
		return w.enc.appendBlock(dst, ts[i:j], vs[i:j])
	})
}

// addBlocks writes one series as blocks of at most maxBlockSamples points
// with times ts (sorted); encode appends the encoding of points [i, j).
func (w *partWriter) addBlocks(ref SeriesRef, ts []int64, encode func(dst []byte, i, j int) []byte) error {
	if len(ts) == 0 {
		return nil
	}
	if err := w.beginSeries(ref, (len(ts)+maxBlockSamples-1)/maxBlockSamples); err != nil {
		return err
	}
	for i := 0; i < len(ts); i += maxBlockSamples {
		j := min(i+maxBlockSamples, len(ts))
		w.raw = encode(w.raw[:0], i, j)
		w.blk = appendStoredBlock(w.blk[:0], w.raw, &w.zbuf)
		if err := w.writeBlock(w.blk, j-i, ts[i], ts[j-1]); err != nil {
			return err
		}
	}
	return nil
}

// beginSeries starts the index entry of a series of nblocks blocks, which
// writeBlock then writes; ref must be above the last.
func (w *partWriter) beginSeries(ref SeriesRef, nblocks int) error {
	if ref <= w.lastRef {
		return fmt.Errorf("part writer: series %d after %d", ref, w.lastRef)
	}
	w.idx = binary.AppendUvarint(w.idx, uint64(ref-w.lastRef))
	w.idx = binary.AppendUvarint(w.idx, uint64(nblocks))
	w.lastRef = ref
	w.nseries++
	return nil
}

// writeBlock writes one stored block (appendStoredBlock's form) of count
// samples from minT to maxT, and its index entry.
func (w *partWriter) writeBlock(blk []byte, count int, minT, maxT int64) error {
	if _, err := w.bw.Write(blk); err != nil {
		return fmt.Errorf("write part: %w", err)
	}
	w.off += uint64(len(blk))
	w.idx = binary.AppendUvarint(w.idx, uint64(len(blk)))
	w.idx = binary.AppendUvarint(w.idx, uint64(count))
	w.idx = binary.AppendVarint(w.idx, minT-w.prevMinT)
	w.idx = binary.AppendUvarint(w.idx, uint64(maxT-minT))
	w.prevMinT = minT
	w.samples += int64(count)
	return nil
}

// copyBlock writes blk, a block of another part read by a blockReader,
// unchanged, after checking its checksum.
func (w *partWriter) copyBlock(blk []byte, bm *blockMeta) error {
	if len(blk) < blockHeader || crc32.Checksum(blk[4:], castagnoli) != binary.LittleEndian.Uint32(blk) {
		return fmt.Errorf("%w: block at %d: checksum mismatch", ErrCorrupt, bm.off)
	}
	return w.writeBlock(blk, int(bm.count), bm.minT, bm.maxT)
}

// blockReadAhead is how much of a part a blockReader reads at once.
const blockReadAhead = 1 << 20

// blockReader reads the stored blocks of one part in file order, the way
// a merge goes through them, in reads of blockReadAhead bytes.
type blockReader struct {
	p   *part
	buf []byte
	off int64 // the file offset of buf[0]
}

// block returns the stored bytes of bm, valid until the next call.
func (r *blockReader) block(bm *blockMeta) ([]byte, error) {
	start, end := int64(bm.off), int64(bm.off)+int64(bm.length)
	if start < r.off || end > r.off+int64(len(r.buf)) {
		n := max(int64(bm.length), blockReadAhead)
		n = min(n, r.p.size-start)
		if n < int64(bm.length) {
			return nil, fmt.Errorf("%w: block at %d past the end", ErrCorrupt, bm.off)
		}
		r.buf = growBytes(r.buf, int(n))
		if _, err := r.p.f.ReadAt(r.buf, start); err != nil {
			return nil, fmt.Errorf("read at %d: %w", start, err)
		}
		r.off = start
	}
	return r.buf[start-r.off : end-r.off], nil
}

// finish writes the index and footer, fsyncs and renames the file into
// place. The caller fsyncs the directory.
func (w *partWriter) finish() (int64, error) {
	idx := binary.AppendUvarint(nil, w.nseries)
	idx = append(idx, w.idx...)
	var footer [partFooterSize]byte
	binary.LittleEndian.PutUint64(footer[0:], w.off)
	binary.LittleEndian.PutUint32(footer[8:], uint32(len(idx)))
	binary.LittleEndian.PutUint32(footer[12:], crc32.Checksum(idx, castagnoli))
	copy(footer[16:], partMagic)
	w.bw.Write(idx)
	w.bw.Write(footer[:])
	size := int64(w.off) + int64(len(idx)) + partFooterSize
	err := w.bw.Flush()
	if err == nil {
		err = w.f.Sync()
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(w.tmp, w.path)
	}
	if err != nil {
		os.Remove(w.tmp)
		return 0, fmt.Errorf("write part %s: %w", w.path, err)
	}
	return size, nil
}

func (w *partWriter) abort() {
	w.f.Close()
	os.Remove(w.tmp)
}

// openPart opens a part file and loads its index.
func openPart(path string) (*part, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open part: %w", err)
	}
	p, err := loadPart(f, path)
	if err != nil {
		f.Close()
		return nil, err
	}
	p.rc.Store(1)
	return p, nil
}

func loadPart(f *os.File, path string) (*part, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := st.Size()
	if size < int64(len(partMagic)+partFooterSize) {
		return nil, fmt.Errorf("%w: part %s: %d bytes", ErrCorrupt, path, size)
	}
	var footer [partFooterSize]byte
	if _, err := f.ReadAt(footer[:], size-partFooterSize); err != nil {
		return nil, fmt.Errorf("read part footer %s: %w", path, err)
	}
	if string(footer[16:]) != partMagic {
		return nil, fmt.Errorf("%w: part %s: bad footer magic", ErrCorrupt, path)
	}
	ioff := binary.LittleEndian.Uint64(footer[0:])
	ilen := uint64(binary.LittleEndian.Uint32(footer[8:]))
	if ioff < uint64(len(partMagic)) || ioff > uint64(size) || ioff+ilen != uint64(size-partFooterSize) {
		return nil, fmt.Errorf("%w: part %s: bad index location", ErrCorrupt, path)
	}
	idx := make([]byte, ilen)
	if _, err := f.ReadAt(idx, int64(ioff)); err != nil {
		return nil, fmt.Errorf("read part index %s: %w", path, err)
	}
	if crc32.Checksum(idx, castagnoli) != binary.LittleEndian.Uint32(footer[12:]) {
		return nil, fmt.Errorf("%w: part %s: index checksum mismatch", ErrCorrupt, path)
	}
	pi, err := decodePartIndex(idx, ioff)
	if err != nil {
		return nil, fmt.Errorf("part %s: %w", path, err)
	}
	return &part{path: path, size: size, f: f, partIndex: pi}, nil
}

// decodePartIndex decodes a part index whose blocks end at dataEnd.
func decodePartIndex(idx []byte, dataEnd uint64) (partIndex, error) {
	var pi partIndex
	r := byteReader{b: idx}
	n := r.uvarint()
	if n > uint64(len(idx)) {
		return pi, fmt.Errorf("%w: part index: %d series", ErrCorrupt, n)
	}
	pi.refs = make([]SeriesRef, 0, n)
	pi.first = make([]uint32, 0, n+1)
	off := uint64(len(partMagic))
	var ref SeriesRef
	var prevMinT int64
	for i := uint64(0); i < n && r.err == nil; i++ {
		d := r.uvarint()
		nb := r.uvarint()
		if d == 0 || nb == 0 || nb > uint64(len(r.b)) || ref+SeriesRef(d) < ref {
			return pi, fmt.Errorf("%w: part index entry %d", ErrCorrupt, i)
		}
		ref += SeriesRef(d)
		pi.refs = append(pi.refs, ref)
		pi.first = append(pi.first, uint32(len(pi.blocks)))
		for k := uint64(0); k < nb && r.err == nil; k++ {
			l := r.uvarint()
			c := r.uvarint()
			minT := prevMinT + r.varint()
			span := r.uvarint()
			maxT := minT + int64(span)
			if l < blockHeader || l > 1<<30 || c == 0 || c > maxBlockSamples || off+l > dataEnd || span > 1<<63-1 || maxT < minT {
				return pi, fmt.Errorf("%w: part index entry %d block %d", ErrCorrupt, i, k)
			}
			pi.blocks = append(pi.blocks, blockMeta{off: off, length: uint32(l), count: uint32(c), minT: minT, maxT: maxT})
			off += l
			prevMinT = minT
			if len(pi.blocks) == 1 || minT < pi.minT {
				pi.minT = minT
			}
			if len(pi.blocks) == 1 || maxT > pi.maxT {
				pi.maxT = maxT
			}
			pi.samples += int64(c)
		}
	}
	if r.err != nil {
		return pi, r.err
	}
	if len(r.b) != 0 || off != dataEnd {
		return pi, fmt.Errorf("%w: part index does not cover the blocks", ErrCorrupt)
	}
	pi.first = append(pi.first, uint32(len(pi.blocks)))
	return pi, nil
}

// partSet is an immutable list of parts ordered by kind, partition, then
// sequence.
type partSet struct {
	parts []*part
}

func (ps *partSet) acquire() {
	for _, p := range ps.parts {
		p.rc.Add(1)
	}
}

func (ps *partSet) release() {
	for _, p := range ps.parts {
		p.decRef()
	}
}

func sortParts(ps []*part) {
	sort.Slice(ps, func(i, j int) bool {
		if ps[i].kind != ps[j].kind {
			return ps[i].kind < ps[j].kind
		}
		if ps[i].bucket != ps[j].bucket {
			return ps[i].bucket < ps[j].bucket
		}
		return ps[i].seq < ps[j].seq
	})
}
