package tsdb

import (
	"math"
	"math/rand/v2"
)

// refSeries generates series i of the reference data set exactly as
// /bench/loadgen does: even i is a gauge random walk rounded to 2 decimals,
// odd i an integer counter; points are 1 s apart from start (unix seconds).
type refSeries struct {
	counter bool
	rng     *rand.Rand
	v       float64
}

func newRefSeries(seed uint64, i int) *refSeries {
	s := &refSeries{counter: i%2 == 1, rng: rand.New(rand.NewPCG(seed, uint64(i)))}
	if s.counter {
		s.v = float64(s.rng.IntN(1000))
	} else {
		s.v = math.Round(s.rng.Float64()*10000) / 100
	}
	return s
}

func (s *refSeries) next() float64 {
	if s.counter {
		s.v += float64(s.rng.IntN(100))
	} else {
		s.v = math.Round((s.v+(s.rng.Float64()*2-1))*100) / 100
	}
	return s.v
}

// refPoints returns n points of series i, timestamps in milliseconds.
func refPoints(seed uint64, i, n int, start int64) ([]int64, []float64) {
	s := newRefSeries(seed, i)
	ts := make([]int64, n)
	vs := make([]float64, n)
	for j := range ts {
		ts[j] = (start + int64(j)) * 1000
		vs[j] = s.next()
	}
	return ts, vs
}
