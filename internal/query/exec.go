package query

import (
	"cmp"
	"errors"
	"iter"
	"math"
	"slices"
	"time"

	"github.com/vigia-mon/vigia/internal/tsdb"
)

// ErrNotFound is returned by Run for a metric name with no series.
var ErrNotFound = errors.New("metric not found")

// ErrTooManyPoints is returned by Run when the result would hold more than
// Spec.MaxPoints windows.
var ErrTooManyPoints = errors.New("too many windows")

// Store is the store queries read. *tsdb.DB implements it.
type Store interface {
	RefsByName(name []byte) []tsdb.SeriesRef
	Scan(ref tsdb.SeriesRef, mint, maxt int64, fn func(ts []int64, vs []float64) bool) error
	ScanAggregates(ref tsdb.SeriesRef, res time.Duration, mint, maxt int64, fn func([]tsdb.Aggregate) bool) error
	ArchivedTo() int64
}

var _ Store = (*tsdb.DB)(nil)

// Spec is one windowed query: QUERY <Name> <Op> <Step/1000> [From] [To].
type Spec struct {
	Name           []byte
	Op             Op
	Step           int64 // window width in milliseconds, > 0
	From, To       int64 // bounds in unix ms: From inclusive, To exclusive
	HasFrom, HasTo bool
	// MaxPoints bounds the windows of the result (and so the memory a
	// query takes); 0 means no bound.
	MaxPoints int
	// Budget, if not nil, is charged with the memory of the result beyond
	// a small allowance (128 KiB) as it grows, until Release: Run returns
	// ErrBusy when other queries hold what it needs, ErrTooLarge when it
	// needs more than all of it.
	Budget *Budget
}

// Executor runs queries, reusing its buffers. The zero value is ready; an
// Executor is not safe for concurrent use. Call Release once done with a
// result, so that a big one's memory is not kept until the next Run.
type Executor struct {
	win  Windows
	aggs []tsdb.Aggregate

	charge  Charge // the query's, until Release
	winHeld int64  // of charge, for the result's room
}

// Charge returns the charge of the last Run, for the caller to add what
// the result takes next (a reply). Release gives it back.
func (e *Executor) Charge() *Charge { return &e.charge }

// Run computes q's windows: one point per window holding samples, oldest
// first. Raw samples answer wherever the store still keeps them, so the
// result is exact; for older times, which the store keeps only as 1-minute,
// 1-hour and 1-day archives, the coarsest archive whose points fit inside
// the windows answers (Step and, when given, From and To must be multiples
// of its resolution; otherwise those times hold no points). The returned
// slice is valid until the next Run.
func (e *Executor) Run(st Store, q Spec) ([]Point, error) {
	e.Release()
	pts, err := e.run(st, q)
	if err != nil {
		e.Release()
		return nil, err
	}
	return pts, nil
}

func (e *Executor) run(st Store, q Spec) ([]Point, error) {
	refs := st.RefsByName(q.Name)
	if len(refs) == 0 {
		return nil, ErrNotFound
	}
	e.charge.b = q.Budget
	w := &e.win
	w.Op, w.Step = q.Op, q.Step
	if q.HasFrom {
		w.Start, w.HasStart = q.From, true
	}
	// Stored times lie in [MinTime, MaxTime]; bounds beyond would only
	// overflow window arithmetic.
	mint, maxt := MinTime, MaxTime+1
	if q.HasFrom {
		mint = q.From
	}
	if q.HasTo {
		maxt = q.To
	}
	if mint >= maxt {
		return w.Result(), nil
	}
	if archived := st.ArchivedTo(); mint < archived {
		if res := archiveFor(q, archived); res > 0 {
			if err := e.addArchived(st, refs, res, mint, min(maxt, archived)); err != nil {
				return nil, err
			}
		}
		mint = archived // ScanMerged scans nothing when the archives answered all
	}
	var cerr error
	err := ScanMerged(st, refs, mint, maxt, &e.charge, func(ts []int64, vs []float64) bool {
		w.Add(ts, vs)
		if cerr = e.grow(); cerr != nil {
			return false
		}
		return q.MaxPoints == 0 || len(w.points) <= q.MaxPoints
	})
	if err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	pts := w.Result()
	if q.MaxPoints > 0 && len(pts) > q.MaxPoints {
		return nil, ErrTooManyPoints // Run's Release lets go of them
	}
	if err := e.grow(); err != nil { // the window Result closed
		return nil, err
	}
	return pts, nil
}

// grow charges the budget with what the result's room has grown to beyond
// the free allowance.
func (e *Executor) grow() error {
	return e.charge.raise(&e.winHeld, int64(cap(e.win.points))*pointBytes+int64(cap(e.aggs))*aggregateBytes-freeBytes)
}

// archiveFor returns the coarsest archive resolution whose points each fall
// inside one of q's windows, or 0 when none does.
func archiveFor(q Spec, archived int64) time.Duration {
	for _, res := range slices.Backward(tsdb.ArchiveResolutions) {
		r := res.Milliseconds()
		if q.Step%r == 0 && (!q.HasFrom || q.From%r == 0) && (!q.HasTo || q.To >= archived || q.To%r == 0) {
			return res
		}
	}
	return 0
}

// addArchived feeds the archive points of refs in [mint, maxt) to the
// windows, in time order.
func (e *Executor) addArchived(st Store, refs []tsdb.SeriesRef, res time.Duration, mint, maxt int64) error {
	e.aggs = e.aggs[:0]
	for _, ref := range refs {
		var cerr error
		err := st.ScanAggregates(ref, res, mint, maxt, func(a []tsdb.Aggregate) bool {
			e.aggs = append(e.aggs, a...)
			cerr = e.grow()
			return cerr == nil
		})
		if err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	if len(refs) > 1 {
		// By window, then by the time of the last sample, so that LAST
		// takes the latest sample of all the series (equal times: the
		// order of refs, as for raw samples).
		slices.SortStableFunc(e.aggs, func(a, b tsdb.Aggregate) int {
			return cmp.Or(cmp.Compare(a.T, b.T), cmp.Compare(a.LastT, b.LastT))
		})
	}
	for _, a := range e.aggs {
		e.win.AddAggregate(a.T, a.Count, a.Sum, a.Min, a.Max, a.Last)
	}
	return e.grow()
}

// Release ends the use of the last result, letting go of its memory if it
// was big.
func (e *Executor) Release() {
	e.win.Reset()
	if cap(e.aggs)*aggregateBytes > freeBytes {
		e.aggs = nil
	}
	e.charge.Release()
	e.charge.b, e.winHeld = nil, 0
}

// ScanMerged calls fn with the samples of every ref in [mint, maxt) in
// time order; samples with equal times keep the order of refs. fn returning
// false stops. One series streams in the store's chunks. Several (a name
// with several label sets) are merged in memory when they hold at most
// mergeBudget samples in range; beyond, up to maxStreamed of them are
// merged as they stream, each holding one open scan, so that a long range
// does not take memory in proportion to its samples, and more are merged
// in memory. What a merge takes is added to c (nil: no bound) while it
// runs: it returns ErrBusy or ErrTooLarge when c's budget refuses.
func ScanMerged(st Store, refs []tsdb.SeriesRef, mint, maxt int64, c *Charge, fn func(ts []int64, vs []float64) bool) error {
	if mint >= maxt {
		return nil
	}
	if len(refs) == 1 {
		return st.Scan(refs[0], mint, maxt, fn)
	}
	var held int64 // of c, for the merge
	defer func() { c.Give(held) }()
	grow := func(need int64) error { return c.raise(&held, need) }
	// In memory, at most half the budget: the caller's windows, charged
	// while the merged samples are still held, must fit beside them
	// whenever the samples stream would.
	limit := mergeBudget
	if c != nil && c.b != nil {
		limit = int(min(int64(limit), c.b.size/(2*mergedBytes)))
	}
	if len(refs) > maxStreamed {
		limit = math.MaxInt // more open scans would take more memory than the samples
	}
	var ts []int64
	var vs []float64
	var cerr error
	for _, ref := range refs {
		err := st.Scan(ref, mint, maxt, func(t []int64, v []float64) bool {
			ts = append(ts, t...)
			vs = append(vs, v...)
			cerr = grow(int64(cap(ts)) * mergedBytes)
			return cerr == nil && len(ts) <= limit
		})
		if err != nil {
			return err
		}
		if cerr != nil && len(refs) > maxStreamed {
			return cerr
		}
		if cerr != nil || len(ts) > limit {
			// Too many samples, or not enough of the budget, to merge in
			// memory: streamed, they take less.
			ts, vs = nil, nil
			c.Give(held)
			held = 0
			if err := grow(int64(len(refs)) * streamedBytes); err != nil {
				if errors.Is(cerr, ErrBusy) {
					return cerr // in memory, it fits once others are done
				}
				return err
			}
			return streamMerged(st, refs, mint, maxt, fn)
		}
	}
	idx := make([]int32, len(ts))
	for i := range idx {
		idx[i] = int32(i)
	}
	slices.SortStableFunc(idx, func(a, b int32) int { return cmp.Compare(ts[a], ts[b]) })
	st2, sv2 := make([]int64, len(ts)), make([]float64, len(ts))
	for i, j := range idx {
		st2[i], sv2[i] = ts[j], vs[j]
	}
	ts, vs, idx = nil, nil, nil
	c.Give(held - int64(len(st2))*pointBytes) // only st2 and sv2 stay while fn runs
	held = min(held, int64(len(st2))*pointBytes)
	fn(st2, sv2)
	return nil
}

// mergeBudget is the most samples ScanMerged merges in memory (36 bytes
// each); maxStreamed is the most series it merges as they stream (each
// open scan holds a decoded block of up to 8192 samples, a few hundred KB).
const (
	mergeBudget = 1 << 18
	maxStreamed = 256
)

// cursor is one series' scan, paused between its chunks.
type cursor struct {
	next   func() ([]int64, []float64, bool)
	err    error
	ts     []int64
	vs     []float64
	i, ord int // position in ts; order of the series among refs
}

// advance moves to the next sample, reading the next chunk when the
// current one is used up, and reports whether there is one.
func (c *cursor) advance() bool {
	c.i++
	for c.i >= len(c.ts) {
		var ok bool
		if c.ts, c.vs, ok = c.next(); !ok {
			return false
		}
		c.i = 0
	}
	return true
}

func (c *cursor) before(d *cursor) bool {
	a, b := c.ts[c.i], d.ts[d.i]
	return a < b || a == b && c.ord < d.ord
}

// streamMerged merges the scans of refs through a heap of cursors, passing
// fn chunks of up to 8192 samples.
func streamMerged(st Store, refs []tsdb.SeriesRef, mint, maxt int64, fn func(ts []int64, vs []float64) bool) error {
	var h []*cursor
	var stops []func()
	defer func() {
		for _, stop := range stops {
			stop()
		}
	}()
	for i, ref := range refs {
		c := &cursor{ord: i, i: -1}
		next, stop := iter.Pull2(func(yield func([]int64, []float64) bool) {
			c.err = st.Scan(ref, mint, maxt, yield)
		})
		c.next = next
		stops = append(stops, stop)
		if !c.advance() {
			if c.err != nil {
				return c.err
			}
			continue
		}
		h = append(h, c)
		for j := len(h) - 1; j > 0 && h[j].before(h[(j-1)/2]); j = (j - 1) / 2 { // sift up
			h[j], h[(j-1)/2] = h[(j-1)/2], h[j]
		}
	}
	const chunk = 8192
	ts, vs := make([]int64, 0, chunk), make([]float64, 0, chunk)
	for len(h) > 0 {
		c := h[0]
		ts, vs = append(ts, c.ts[c.i]), append(vs, c.vs[c.i])
		if len(ts) == chunk {
			if !fn(ts, vs) {
				return nil
			}
			ts, vs = ts[:0], vs[:0]
		}
		if !c.advance() {
			if c.err != nil {
				return c.err
			}
			h[0] = h[len(h)-1]
			h = h[:len(h)-1]
		}
		for j := 0; ; { // sift down
			m := j
			if l := 2*j + 1; l < len(h) && h[l].before(h[m]) {
				m = l
			}
			if r := 2*j + 2; r < len(h) && h[r].before(h[m]) {
				m = r
			}
			if m == j {
				break
			}
			h[j], h[m] = h[m], h[j]
			j = m
		}
	}
	if len(ts) > 0 {
		fn(ts, vs)
	}
	return nil
}
