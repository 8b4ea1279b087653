// Package query computes the windowed aggregates of the native protocol's
// QUERY command and of alert checks: one value per window of a fixed width
// that holds at least one sample, oldest first.
package query

import "math"

// Op is an aggregation over the samples of one window.
type Op uint8

// The aggregations. AVG, MAX, MIN and COUNT are the original protocol's;
// the others are vigia's extensions.
const (
	Avg Op = iota + 1
	Max
	Min
	Count
	Sum
	Last
)

var opNames = [...]string{Avg: "AVG", Max: "MAX", Min: "MIN", Count: "COUNT", Sum: "SUM", Last: "LAST"}

// Ops lists every aggregation in the order HELP prints them.
var Ops = []Op{Avg, Max, Min, Count, Sum, Last}

// String returns the op's protocol name, such as "AVG".
func (op Op) String() string {
	if int(op) < len(opNames) && op != 0 {
		return opNames[op]
	}
	return "UNKNOWN"
}

// ParseOp returns the op named b, matched case-sensitively as the protocol
// spells it ("AVG", "MAX", ...).
func ParseOp(b []byte) (Op, bool) {
	for op := Avg; int(op) < len(opNames); op++ {
		if string(b) == opNames[op] {
			return op, true
		}
	}
	return 0, false
}

// Point is one window's value. Start is the window's first millisecond.
type Point struct {
	Start int64
	Value float64
}

// Windows aggregates a time-ordered stream of samples into windows of Step
// milliseconds: [Start + k*Step, Start + (k+1)*Step). When Start is not set
// (HasStart false) the first sample's time becomes the start. Windows with
// no sample produce no point.
//
// Feed samples with Add in non-decreasing time order; ties may come in any
// order except that, for LAST, the last one added wins. The zero value is
// not usable: set Op and Step (> 0). Not safe for concurrent use.
type Windows struct {
	Op       Op
	Step     int64
	Start    int64
	HasStart bool

	k      int64 // index of the open window, valid when n > 0
	n      int64
	acc    float64
	scaled float64 // AVG: the sum times 2^-64, for when acc overflows
	points []Point
}

// Add folds samples (ts[i], vs[i]) into the windows. Samples before Start
// are ignored.
func (w *Windows) Add(ts []int64, vs []float64) {
	if !w.HasStart && len(ts) > 0 {
		w.Start, w.HasStart = ts[0], true
	}
	// winEnd is the first millisecond after the open window; a sample below
	// it folds into the open window without a division.
	var winEnd int64 = math.MinInt64
	if w.n > 0 {
		winEnd = w.Start + (w.k+1)*w.Step
	}
	for i, t := range ts {
		if w.n == 0 || t >= winEnd {
			if t < w.Start {
				continue
			}
			w.close()
			w.k = (t - w.Start) / w.Step
			winEnd = w.Start + (w.k+1)*w.Step
		}
		v := vs[i]
		if w.n == 0 {
			w.acc, w.scaled = v, v*avgScale
			w.n = 1
			continue
		}
		w.n++
		switch w.Op {
		case Avg:
			w.acc += v
			w.scaled += v * avgScale
		case Sum:
			w.acc += v
		case Max:
			if v > w.acc {
				w.acc = v
			}
		case Min:
			if v < w.acc {
				w.acc = v
			}
		case Last:
			w.acc = v
		}
	}
}

// AddAggregate folds a consolidated point, count samples with times in
// [t, t+res) and their sum, min, max and last value, into the window that
// holds t. The caller makes sure the whole [t, t+res) lies in that window
// (Start and Step multiples of res) and feeds points and samples in time
// order.
func (w *Windows) AddAggregate(t, count int64, sum, lo, hi, last float64) {
	if count <= 0 {
		return
	}
	if !w.HasStart {
		w.Start, w.HasStart = t, true
	}
	if t < w.Start {
		return
	}
	if w.n == 0 || t >= w.Start+(w.k+1)*w.Step {
		w.close()
		w.k = (t - w.Start) / w.Step
	}
	if w.n == 0 {
		switch w.Op {
		case Avg, Sum:
			w.acc, w.scaled = sum, sum*avgScale
		case Max:
			w.acc = hi
		case Min:
			w.acc = lo
		case Last:
			w.acc = last
		}
		w.n = count
		return
	}
	w.n += count
	switch w.Op {
	case Avg:
		w.acc += sum
		w.scaled += sum * avgScale
	case Sum:
		w.acc += sum
	case Max:
		w.acc = max(w.acc, hi)
	case Min:
		w.acc = min(w.acc, lo)
	case Last:
		w.acc = last
	}
}

// avgScale scales AVG's second sum, which cannot overflow unless about
// 2^64 values are near the largest float.
const avgScale = 0x1p-64

func (w *Windows) close() {
	if w.n == 0 {
		return
	}
	v := w.acc
	switch w.Op {
	case Avg:
		v = w.acc / float64(w.n)
		if math.IsInf(v, 0) || math.IsNaN(v) {
			// The sum overflowed though every value is finite, and so is
			// their mean: take it from the scaled sum (exact scaling, by
			// a power of two).
			v = w.scaled / float64(w.n) / avgScale
		}
	case Count:
		v = float64(w.n)
	}
	w.points = append(w.points, Point{Start: w.Start + w.k*w.Step, Value: v})
	w.n = 0
}

// Result closes the open window and returns every point so far. The
// returned slice belongs to w until the next Reset.
func (w *Windows) Result() []Point {
	w.close()
	return w.points
}

// maxKept is the most points, or aggregates, a Windows or Executor keeps
// room for between uses (128 KiB of points; a day of one-minute windows is
// 1,440): a big result's memory is let go, not held by every reused value
// that once made one, such as each of a thousand idle connections.
const maxKept = 1 << 13

// Reset empties w for reuse with the same or new settings, letting go of
// the room of a big result.
func (w *Windows) Reset() {
	if cap(w.points) > maxKept {
		w.points = nil
	}
	w.points = w.points[:0]
	w.n = 0
	w.HasStart = false
	w.Start = 0
}
