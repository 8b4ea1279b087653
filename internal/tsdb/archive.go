package tsdb

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"time"
)

// Archives keep consolidated points (count, sum, min, max, last) over
// 1-minute, 1-hour and 1-day windows for longer than the raw data. They are
// written when retention drops a raw day: the day's samples are folded
// into archive parts in the same manifest update that drops the raw parts,
// so every window is served either from raw data or from archives, never
// both, and no space is spent on archives while the raw data is there.
//
// An archive part has the part format (docs/format/parts.md) with archive
// blocks: uvarint n | timestamps (window starts) | value columns count,
// sum, min, max, last, lastOff (time of the last sample minus the start).
const (
	kindRaw  uint8 = 0
	kind1m   uint8 = 1
	kind1h   uint8 = 2
	kind1d   uint8 = 3
	numKinds       = 4

	aggChunk = 4096
)

var (
	kindRes    = [numKinds]int64{0, 60_000, 3_600_000, dayMillis}
	kindBucket = [numKinds]int64{dayMillis, dayMillis, 30 * dayMillis, 365 * dayMillis}
	kindDir    = [numKinds]string{"parts", "archive/1m", "archive/1h", "archive/1d"}
)

// ArchiveResolutions are the window lengths ScanAggregates accepts.
var ArchiveResolutions = []time.Duration{time.Minute, time.Hour, 24 * time.Hour}

// Aggregate is a consolidated point: the samples of one series with
// T <= t < T + resolution.
type Aggregate struct {
	T     int64 // window start, unix milliseconds, a multiple of the resolution
	Count int64
	Sum   float64
	Min   float64
	Max   float64
	Last  float64 // value of the sample with the greatest time (the latest to arrive among equals)
	LastT int64   // that sample's time
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b < 0 {
		q--
	}
	return q
}

// aggregator folds time-sorted samples into windows of res milliseconds.
type aggregator struct {
	res int64
	pts []Aggregate
}

func (a *aggregator) reset(res int64) {
	a.res, a.pts = res, a.pts[:0]
}

func (a *aggregator) add(ts []int64, vs []float64) {
	for i, t := range ts {
		v := vs[i]
		w := floorDiv(t, a.res) * a.res
		if n := len(a.pts); n > 0 && a.pts[n-1].T == w {
			p := &a.pts[n-1]
			p.Count++
			p.Sum += v
			p.Min = math.Min(p.Min, v)
			p.Max = math.Max(p.Max, v)
			p.Last, p.LastT = v, t
			continue
		}
		a.pts = append(a.pts, Aggregate{T: w, Count: 1, Sum: v, Min: v, Max: v, Last: v, LastT: t})
	}
}

// combine folds b, which arrived later, into a (same window).
func combine(a *Aggregate, b Aggregate) {
	a.Count += b.Count
	a.Sum += b.Sum
	a.Min = math.Min(a.Min, b.Min)
	a.Max = math.Max(a.Max, b.Max)
	if b.LastT >= a.LastT {
		a.Last, a.LastT = b.Last, b.LastT
	}
}

// appendArchiveBlock appends the encoding of archive points.
func (e *blockEncoder) appendArchiveBlock(dst []byte, pts []Aggregate) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(pts)))
	if len(pts) == 0 {
		return dst
	}
	e.ats = e.ats[:0]
	for _, p := range pts {
		e.ats = append(e.ats, p.T)
	}
	dst = e.appendTimestamps(dst, e.ats)
	for f := 0; f < 6; f++ {
		e.avs = e.avs[:0]
		for _, p := range pts {
			var v float64
			switch f {
			case 0:
				v = float64(p.Count)
			case 1:
				v = p.Sum
			case 2:
				v = p.Min
			case 3:
				v = p.Max
			case 4:
				v = p.Last
			case 5:
				v = float64(p.LastT - p.T)
			}
			e.avs = append(e.avs, v)
		}
		dst = e.appendValues(dst, e.avs)
	}
	return dst
}

// archiveDecoder holds reusable buffers for archive blocks.
type archiveDecoder struct {
	blockDecoder
	pts []Aggregate
}

// decodeArchiveBlock decodes an archive block, appending to d.pts.
func (d *archiveDecoder) decodeArchiveBlock(src []byte) error {
	un, k := binary.Uvarint(src)
	if k <= 0 || un > maxBlockSamples {
		return errBlock
	}
	n := int(un)
	src = src[k:]
	if n == 0 {
		if len(src) != 0 {
			return errBlock
		}
		return nil
	}
	d.ts = growInt64(d.ts, n)
	d.vs = growFloat64(d.vs, n)
	var err error
	if src, err = decodeTimestamps(src, d.ts); err != nil {
		return err
	}
	start := len(d.pts)
	for i := 0; i < n; i++ {
		d.pts = append(d.pts, Aggregate{T: d.ts[i], LastT: d.ts[i]})
	}
	pts := d.pts[start:]
	for f := 0; f < 6; f++ {
		if src, err = decodeValues(src, d.vs, &d.ints); err != nil {
			d.pts = d.pts[:start]
			return err
		}
		for i, v := range d.vs {
			p := &pts[i]
			switch f {
			case 0:
				p.Count = int64(v)
			case 1:
				p.Sum = v
			case 2:
				p.Min = v
			case 3:
				p.Max = v
			case 4:
				p.Last = v
			case 5:
				p.LastT += int64(v)
			}
		}
	}
	if len(src) != 0 {
		d.pts = d.pts[:start]
		return errBlock
	}
	return nil
}

// readArchiveSeries appends the archive points of ref in p with lo <= T < hi
// to d.pts, in the part's order.
func (p *part) readArchiveSeries(ref SeriesRef, lo, hi int64, d *archiveDecoder) error {
	for _, bm := range p.seriesBlocks(ref) {
		if bm.maxT < lo || bm.minT >= hi {
			continue
		}
		payload, err := p.readPayload(&bm, &d.blockDecoder)
		if err != nil {
			return err
		}
		start := len(d.pts)
		if err := d.decodeArchiveBlock(payload); err != nil {
			return fmt.Errorf("archive part %s block at %d: %w", p.path, bm.off, err)
		}
		if len(d.pts)-start != int(bm.count) {
			return fmt.Errorf("%w: archive part %s block at %d: count mismatch", ErrCorrupt, p.path, bm.off)
		}
		// Keep only [lo, hi).
		out := start
		for i := start; i < len(d.pts); i++ {
			if t := d.pts[i].T; t >= lo && t < hi {
				d.pts[out] = d.pts[i]
				out++
			}
		}
		d.pts = d.pts[:out]
	}
	return nil
}

// combineSorted sorts points by window (stably: arrival order) and folds
// the points of one window together.
func combineSorted(pts []Aggregate) []Aggregate {
	byT := func(a, b Aggregate) int { return cmp.Compare(a.T, b.T) }
	if !slices.IsSortedFunc(pts, byT) {
		slices.SortStableFunc(pts, byT)
	}
	out := pts[:0]
	for _, a := range pts {
		if n := len(out); n > 0 && out[n-1].T == a.T {
			combine(&out[n-1], a)
			continue
		}
		out = append(out, a)
	}
	return out
}

// snapSums rounds each sum to e decimals: when every sample is a decimal
// with at most e digits, the exact sum is too, and this removes the
// floating-point noise of the additions (which would defeat the decimal
// encoding).
func snapSums(pts []Aggregate, e int) {
	if e < 0 {
		return
	}
	for i := range pts {
		f := pts[i].Sum * pow10[e]
		if f > -9e15 && f < 9e15 {
			pts[i].Sum = math.Round(f) / pow10[e]
		}
	}
}

// archiveDays folds the raw parts about to be dropped (whole days, sorted by
// day then sequence) into new archive parts, one per resolution and day,
// for the resolutions whose own retention still keeps that day.
func (db *DB) archiveDays(drop []*part, cutoff [numKinds]int64) ([]*part, error) {
	type key struct {
		kind uint8
		day  int64
	}
	writers := map[partKey]*partWriter{}
	ids := map[partKey]uint64{}
	keys := map[key]partKey{}
	var pw []*partWriter
	abort := func() {
		for _, w := range pw {
			w.abort()
		}
	}
	// Each (kind, day) gets its own part even when several days share a
	// partition, since a part's series must ascend; merges combine them.
	var out []*part
	dropOut := func() { // the archive parts of the days before, on failure
		for _, p := range out {
			p.obsolete.Store(true)
			p.decRef()
		}
	}
	var enc blockEncoder
	var agg aggregator
	st := new(scanState)
	pace := newPacer(mergeDuty, db.bgQuit)
	for i := 0; i < len(drop); {
		j := i
		for j < len(drop) && drop[j].bucket == drop[i].bucket {
			j++
		}
		in := drop[i:j]
		day := in[0].bucket
		i = j
		var kinds []uint8
		for k := kind1m; k < numKinds; k++ {
			if floorDiv(day*dayMillis, kindBucket[k]) >= cutoff[k] {
				kinds = append(kinds, k)
			}
		}
		if len(kinds) == 0 {
			continue
		}
		clear(writers)
		clear(ids)
		for _, k := range kinds {
			pk := partKey{k, floorDiv(day*dayMillis, kindBucket[k])}
			id := db.allocID()
			w, err := createPart(db.partPath(k, pk.bucket, id), partBuf)
			if err != nil {
				abort()
				dropOut()
				return nil, err
			}
			pw = append(pw, w)
			writers[pk], ids[pk] = w, id
			keys[key{k, day}] = pk
		}
		err := mergeSeries(in, st, func(ref SeriesRef, ts []int64, vs []float64) error {
			if db.stopping() {
				return errStopped
			}
			pace.step()
			e := blockExponent(vs)
			for _, k := range kinds {
				agg.reset(kindRes[k])
				agg.add(ts, vs)
				snapSums(agg.pts, e)
				w := writers[keys[key{k, day}]]
				pts := agg.pts
				enc.ats = enc.ats[:0]
				for _, p := range pts {
					enc.ats = append(enc.ats, p.T)
				}
				times := append([]int64(nil), enc.ats...)
				if err := w.addBlocks(ref, times, func(dst []byte, i, j int) []byte {
					return enc.appendArchiveBlock(dst, pts[i:j])
				}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			abort()
			dropOut()
			return nil, err
		}
		parts, err := db.finishParts(writers, ids, nil)
		pw = pw[:0]
		if err != nil {
			dropOut()
			return nil, err
		}
		out = append(out, parts...)
	}
	return out, nil
}

// eachSeries calls fn for every series of the parts in (one partition, in
// sequence order), in ref order, with its blocks in each part: blocks[k]
// is empty where in[k] does not hold the series. The slices are valid only
// during the call.
func eachSeries(in []*part, fn func(ref SeriesRef, blocks [][]blockMeta) error) error {
	cursors := make([]int, len(in))
	blocks := make([][]blockMeta, len(in))
	for {
		var ref SeriesRef
		for k, p := range in {
			if c := cursors[k]; c < len(p.refs) && (ref == 0 || p.refs[c] < ref) {
				ref = p.refs[c]
			}
		}
		if ref == 0 {
			return nil
		}
		for k, p := range in {
			blocks[k] = nil
			if c := cursors[k]; c < len(p.refs) && p.refs[c] == ref {
				blocks[k] = p.blocks[p.first[c]:p.first[c+1]]
				cursors[k]++
			}
		}
		if err := fn(ref, blocks); err != nil {
			return err
		}
	}
}

// mergeSeries calls fn for every series of the raw parts in (one
// partition, in sequence order), in ref order, with all its samples merged
// by time (equal times in part order).
func mergeSeries(in []*part, st *scanState, fn func(ref SeriesRef, ts []int64, vs []float64) error) error {
	return eachSeries(in, func(ref SeriesRef, blocks [][]blockMeta) error {
		ts, vs, err := st.readMerged(in, blocks)
		if err != nil {
			return err
		}
		return fn(ref, ts, vs)
	})
}

// readMerged decodes one series' blocks in the parts in and returns its
// samples merged by time (equal times in part order).
func (st *scanState) readMerged(in []*part, blocks [][]blockMeta) ([]int64, []float64, error) {
	st.mts, st.mvs, st.bnd = st.mts[:0], st.mvs[:0], append(st.bnd[:0], 0)
	for k, bs := range blocks {
		if len(bs) == 0 {
			continue
		}
		for b := range bs {
			ts, vs, err := in[k].readBlock(&bs[b], &st.dec)
			if err != nil {
				return nil, nil, err
			}
			st.mts = append(st.mts, ts...)
			st.mvs = append(st.mvs, vs...)
		}
		st.bnd = append(st.bnd, len(st.mts))
	}
	ts, vs := st.mergeRuns()
	return ts, vs, nil
}

// mergeArchiveSeries is mergeSeries for archive parts: the points of each
// window are combined.
func mergeArchiveSeries(in []*part, fn func(ref SeriesRef, pts []Aggregate) error) error {
	cursors := make([]int, len(in))
	var d archiveDecoder
	for {
		var ref SeriesRef
		for k, p := range in {
			if c := cursors[k]; c < len(p.refs) && (ref == 0 || p.refs[c] < ref) {
				ref = p.refs[c]
			}
		}
		if ref == 0 {
			return nil
		}
		d.pts = d.pts[:0]
		for k, p := range in {
			c := cursors[k]
			if c >= len(p.refs) || p.refs[c] != ref {
				continue
			}
			cursors[k]++
			if err := p.readArchiveSeries(ref, math.MinInt64, math.MaxInt64, &d); err != nil {
				return err
			}
		}
		if err := fn(ref, combineSorted(d.pts)); err != nil {
			return err
		}
	}
}

// ArchivedTo returns the time before which raw samples are gone into the
// archives, from which ScanAggregates serves those windows. Scan still
// finds samples older than it that arrived after their day was archived,
// until the next retention pass (at most MergeInterval later) archives
// them too. It is math.MinInt64 until retention first archives a day.
func (db *DB) ArchivedTo() int64 {
	db.viewMu.RLock()
	defer db.viewMu.RUnlock()
	return db.archivedTo
}

// ScanAggregates calls fn with consecutive chunks of the consolidated
// points of series ref at resolution res (one of ArchiveResolutions), for
// every whole window that intersects [mint, maxt), oldest first; windows
// without samples are left out. Windows whose raw data is still kept are
// computed from the raw samples; older ones come from the archives. A
// sample that arrives later than RawRetention after its time shows once
// retention has archived it. The slice is valid only during the call. fn
// returning false stops.
func (db *DB) ScanAggregates(ref SeriesRef, res time.Duration, mint, maxt int64, fn func([]Aggregate) bool) error {
	var kind uint8
	switch res {
	case time.Minute:
		kind = kind1m
	case time.Hour:
		kind = kind1h
	case 24 * time.Hour:
		kind = kind1d
	default:
		return fmt.Errorf("tsdb: no archive of resolution %v (have 1m, 1h, 24h)", res)
	}
	if mint >= maxt {
		return nil
	}
	r := kindRes[kind]
	lo := floorDiv(mint, r) * r
	if lo > mint { // overflow
		lo = math.MinInt64
	}
	hi := floorDiv(maxt-1, r)*r + r
	if hi < maxt { // overflow
		hi = math.MaxInt64
	}
	s := db.idx.get(ref)
	if s == nil {
		return ErrUnknownSeries
	}
	st := scanPool.Get().(*scanState)
	defer scanPool.Put(st)
	v := db.takeView(s, st, lo, hi, true)
	ps, rawFrom := v.ps, v.rawFrom
	defer ps.release()

	if lo < rawFrom {
		var d archiveDecoder
		for _, p := range ps.parts {
			if p.kind != kind || p.maxT < lo || p.minT >= min(hi, rawFrom) {
				continue
			}
			if err := p.readArchiveSeries(ref, lo, min(hi, rawFrom), &d); err != nil {
				return err
			}
		}
		pts := combineSorted(d.pts)
		for i := 0; i < len(pts); i += aggChunk {
			if !fn(pts[i:min(i+aggChunk, len(pts))]) {
				return nil
			}
		}
	}
	from := v.from
	if from >= hi {
		return nil
	}
	var agg aggregator
	agg.reset(r)
	stopped := false
	err := db.scanRuns(ref, st, ps, from, hi, func(ts []int64, vs []float64) bool {
		agg.add(ts, vs)
		if n := len(agg.pts); n > aggChunk {
			// The last point may still grow; keep it.
			if !fn(agg.pts[:n-1]) {
				stopped = true
				return false
			}
			agg.pts[0] = agg.pts[n-1]
			agg.pts = agg.pts[:1]
		}
		return true
	})
	if err != nil || stopped || len(agg.pts) == 0 {
		return err
	}
	fn(agg.pts)
	return nil
}
