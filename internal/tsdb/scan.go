package tsdb

import (
	"math"
	"sync"
)

// run is one time-sorted source of a series' samples: a part's blocks or
// a slice of the head copy. Runs are kept in arrival order.
type run struct {
	p          *part
	blocks     []blockMeta // for a part run
	lo, hi     int         // for a head run: range of scanState.hts
	minT, maxT int64
}

// scanState holds the reusable buffers of one Scan.
type scanState struct {
	hts  []int64
	hvs  []float64
	runs []run
	dec  blockDecoder
	mts  []int64 // merge buffers (slow path)
	mvs  []float64
	mts2 []int64
	mvs2 []float64
	bnd  []int
	head [2]run // the frozen and the active head's runs, if any
	nh   int

	cursors []cursor        // scanMerged's, one per run
	decs    []*blockDecoder // one per part run of scanMerged
}

var scanPool = sync.Pool{New: func() any { return new(scanState) }}

const scanChunk = 8192

// Scan calls fn with consecutive chunks of the samples of series ref with
// mint <= T < maxt, in non-decreasing T order; samples with equal T come in
// arrival order. The slices are valid only during the call and must not be
// modified. fn returning false stops the scan.
func (db *DB) Scan(ref SeriesRef, mint, maxt int64, fn func(ts []int64, vs []float64) bool) error {
	s := db.idx.get(ref)
	if s == nil {
		return ErrUnknownSeries
	}
	if mint >= maxt {
		return nil
	}
	st := scanPool.Get().(*scanState)
	defer scanPool.Put(st)
	v := db.takeView(s, st, mint, maxt, false)
	defer v.ps.release()
	return db.scanRuns(ref, st, v.ps, mint, maxt, fn)
}

// scanView is what one scan reads, taken at one moment (under viewMu):
// the part set, with a reference the scan releases, the time before which
// raw samples are archived, and the series' head samples in range (in
// scanState). Taking them together matters: a flush that publishes its
// parts then drops its frozen head, which a scan must read unless its
// part set holds those parts.
type scanView struct {
	ps      *partSet
	rawFrom int64 // db.archivedTo
	from    int64 // the head was read from here on
}

// takeView takes the view of series s for [mint, maxt): with raw set, the
// head from max(mint, archivedTo) on only, as the raw part of a scan of
// aggregates.
func (db *DB) takeView(s *memSeries, st *scanState, mint, maxt int64, raw bool) scanView {
	st.hts, st.hvs, st.runs, st.nh = st.hts[:0], st.hvs[:0], st.runs[:0], 0
	db.viewMu.RLock()
	defer db.viewMu.RUnlock()
	v := scanView{ps: db.parts, rawFrom: db.archivedTo, from: mint}
	v.ps.acquire()
	if raw {
		v.from = max(mint, v.rawFrom)
	}
	if v.from >= maxt {
		return v
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fgen > db.published {
		start := len(st.hts)
		st.hts, st.hvs = s.appendFrozen(st.hts, st.hvs, v.from, maxt)
		if len(st.hts) > start {
			st.head[st.nh] = run{lo: start, hi: len(st.hts), minT: st.hts[start], maxT: st.hts[len(st.hts)-1]}
			st.nh++
		}
	}
	start := len(st.hts)
	st.hts, st.hvs = s.appendActive(st.hts, st.hvs, v.from, maxt)
	if len(st.hts) > start {
		st.head[st.nh] = run{lo: start, hi: len(st.hts), minT: st.hts[start], maxT: st.hts[len(st.hts)-1]}
		st.nh++
	}
	return v
}

// scanRuns is the rest of a scan of [mint, maxt) once its view is taken:
// the runs of the parts of ps and of the head read into st, streamed in
// time order.
func (db *DB) scanRuns(ref SeriesRef, st *scanState, ps *partSet, mint, maxt int64, fn func(ts []int64, vs []float64) bool) error {
	// Part runs in arrival order (raw parts are ordered by day, then sequence).
	for _, p := range ps.parts {
		if p.kind != kindRaw || p.maxT < mint || p.minT >= maxt {
			continue
		}
		bs := p.seriesBlocks(ref)
		i, j := 0, len(bs)
		for i < j && bs[i].maxT < mint {
			i++
		}
		for j > i && bs[j-1].minT >= maxt {
			j--
		}
		if i < j {
			st.runs = append(st.runs, run{p: p, blocks: bs[i:j], minT: bs[i].minT, maxT: bs[j-1].maxT})
		}
	}
	st.runs = append(st.runs, st.head[:st.nh]...)

	ordered := true
	for i := 1; i < len(st.runs); i++ {
		if st.runs[i].minT < st.runs[i-1].maxT {
			ordered = false
			break
		}
	}
	if ordered {
		return db.scanOrdered(st, mint, maxt, fn)
	}
	return db.scanMerged(st, mint, maxt, fn)
}

// scanOrdered streams runs that do not overlap in time, block by block.
func (db *DB) scanOrdered(st *scanState, mint, maxt int64, fn func([]int64, []float64) bool) error {
	for _, r := range st.runs {
		if r.p == nil {
			for i := r.lo; i < r.hi; i += scanChunk {
				j := min(i+scanChunk, r.hi)
				if !fn(st.hts[i:j], st.hvs[i:j]) {
					return nil
				}
			}
			continue
		}
		for k := range r.blocks {
			ts, vs, err := r.p.readBlock(&r.blocks[k], &st.dec)
			if err != nil {
				return err
			}
			lo, hi := searchRange(ts, mint, maxt)
			if lo < hi && !fn(ts[lo:hi], vs[lo:hi]) {
				return nil
			}
		}
	}
	return nil
}

// cursor is where scanMerged is in one run: the samples of the run at
// hand not yet emitted (the rest of the block decoded last, or of the head
// copy), and the blocks left to decode.
type cursor struct {
	ts     []int64
	vs     []float64
	p      *part
	blocks []blockMeta
	dec    *blockDecoder
}

// next returns the time of the cursor's next sample or, when it has none
// at hand, a lower bound of it: the first time of its next block. ok is
// false once the run is done.
func (c *cursor) next() (t int64, ok bool) {
	if len(c.ts) > 0 {
		return c.ts[0], true
	}
	if len(c.blocks) > 0 {
		return c.blocks[0].minT, true
	}
	return 0, false
}

// scanMerged streams runs that overlap in time, merged by time; among
// equal times, the samples of an earlier run come first. It decodes a
// block only when the merge reaches it, so that it holds at most one
// block per run, however many samples are in range.
func (db *DB) scanMerged(st *scanState, mint, maxt int64, fn func([]int64, []float64) bool) error {
	cs := st.cursors[:0]
	ndec := 0
	for _, r := range st.runs {
		c := cursor{p: r.p, blocks: r.blocks}
		if r.p == nil {
			c.ts, c.vs = st.hts[r.lo:r.hi], st.hvs[r.lo:r.hi]
		} else {
			if ndec == len(st.decs) {
				st.decs = append(st.decs, new(blockDecoder))
			}
			c.dec = st.decs[ndec]
			ndec++
		}
		cs = append(cs, c)
	}
	st.cursors = cs
	ots, ovs := st.mts[:0], st.mvs[:0]
	defer func() {
		st.mts, st.mvs = ots, ovs
		clear(cs) // let go of the parts
	}()
	for {
		// The cursor whose next sample comes first: the earliest time,
		// the earliest run among equals.
		i, ti := -1, int64(0)
		for k := range cs {
			if t, ok := cs[k].next(); ok && (i < 0 || t < ti) {
				i, ti = k, t
			}
		}
		if i < 0 {
			break
		}
		c := &cs[i]
		if len(c.ts) == 0 {
			ts, vs, err := c.p.readBlock(&c.blocks[0], c.dec)
			if err != nil {
				return err
			}
			c.blocks = c.blocks[1:]
			lo, hi := searchRange(ts, mint, maxt)
			c.ts, c.vs = ts[lo:hi], vs[lo:hi]
			continue
		}
		// Emit c's samples up to the next sample of another run: before
		// it, or at its time too if that run came later.
		lim, incl := int64(math.MaxInt64), true
		for k := range cs {
			if t, ok := cs[k].next(); ok && k != i {
				if t < lim {
					lim, incl = t, k > i
				} else if t == lim && k < i {
					incl = false
				}
			}
		}
		n, m := 1, min(len(c.ts), scanChunk-len(ots))
		for n < m && (c.ts[n] < lim || incl && c.ts[n] == lim) {
			n++
		}
		ots = append(ots, c.ts[:n]...)
		ovs = append(ovs, c.vs[:n]...)
		c.ts, c.vs = c.ts[n:], c.vs[n:]
		if len(ots) >= scanChunk {
			if !fn(ots, ovs) {
				return nil
			}
			ots, ovs = ots[:0], ovs[:0]
		}
	}
	if len(ots) > 0 {
		fn(ots, ovs)
	}
	return nil
}

// mergeRuns merges the sorted runs st.mts[bnd[i]:bnd[i+1]] pairwise, keeping
// the earlier run first among equal timestamps.
func (st *scanState) mergeRuns() ([]int64, []float64) {
	ts, vs := st.mts, st.mvs
	bnd := st.bnd
	for len(bnd) > 2 {
		st.mts2 = growInt64(st.mts2, len(ts))
		st.mvs2 = growFloat64(st.mvs2, len(ts))
		ots, ovs := st.mts2, st.mvs2
		nb := bnd[:1]
		for i := 0; i+1 < len(bnd); i += 2 {
			a0, a1 := bnd[i], bnd[i+1]
			if i+2 >= len(bnd) {
				copy(ots[a0:a1], ts[a0:a1])
				copy(ovs[a0:a1], vs[a0:a1])
				nb = append(nb, a1)
				continue
			}
			b1 := bnd[i+2]
			mergeTwo(ots[a0:b1], ovs[a0:b1], ts[a0:a1], vs[a0:a1], ts[a1:b1], vs[a1:b1])
			nb = append(nb, b1)
		}
		bnd = nb
		st.mts, st.mts2 = ots, ts
		st.mvs, st.mvs2 = ovs, vs
		ts, vs = ots, ovs
	}
	st.bnd = bnd
	return ts, vs
}

func mergeTwo(dt []int64, dv []float64, at []int64, av []float64, bt []int64, bv []float64) {
	i, j, k := 0, 0, 0
	for i < len(at) && j < len(bt) {
		if bt[j] < at[i] {
			dt[k], dv[k] = bt[j], bv[j]
			j++
		} else {
			dt[k], dv[k] = at[i], av[i]
			i++
		}
		k++
	}
	for ; i < len(at); i, k = i+1, k+1 {
		dt[k], dv[k] = at[i], av[i]
	}
	for ; j < len(bt); j, k = j+1, k+1 {
		dt[k], dv[k] = bt[j], bv[j]
	}
}

func growInt64(b []int64, n int) []int64 {
	if cap(b) < n {
		return make([]int64, n, n+n/4)
	}
	return b[:n]
}

func growFloat64(b []float64, n int) []float64 {
	if cap(b) < n {
		return make([]float64, n, n+n/4)
	}
	return b[:n]
}
