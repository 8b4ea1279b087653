package loadgen

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// The histogram keeps values below 2*histSub exactly and larger ones in
// buckets histSub per power of two wide: a relative error below 1/histSub
// (1.6%).
const (
	histSubBits = 6
	histSub     = 1 << histSubBits
	histBuckets = (64-histSubBits)*histSub + histSub // up to 2^64-1 ns
)

// Histogram counts durations in logarithmic buckets of 1.6% relative
// width. Its zero value is empty and ready; Record and Snapshot may be
// called concurrently. It is about 30 KiB: share one, do not copy it.
type Histogram struct {
	counts [histBuckets]atomic.Uint64
	max    atomic.Int64
}

func histIndex(v uint64) int {
	if v < 2*histSub {
		return int(v)
	}
	e := bits.Len64(v) - (histSubBits + 1)
	return (e+1)*histSub + int(v>>e) - histSub
}

// histUpper returns the largest value bucket i holds.
func histUpper(i int) uint64 {
	if i < 2*histSub {
		return uint64(i)
	}
	e := i/histSub - 1
	m := uint64(i%histSub + histSub)
	return (m+1)<<e - 1
}

// Record counts one duration. Negative durations count as 0.
func (h *Histogram) Record(d time.Duration) { h.RecordN(d, 1) }

// RecordN counts n durations of d.
func (h *Histogram) RecordN(d time.Duration, n uint64) {
	if n == 0 {
		return
	}
	d = max(d, 0)
	h.counts[histIndex(uint64(d))].Add(n)
	for {
		m := h.max.Load()
		if int64(d) <= m || h.max.CompareAndSwap(m, int64(d)) {
			return
		}
	}
}

// Snapshot copies the counts into s.
func (h *Histogram) Snapshot(s *HistSnapshot) {
	s.N = 0
	for i := range h.counts {
		c := h.counts[i].Load()
		s.Counts[i] = c
		s.N += c
	}
	s.Max = time.Duration(h.max.Load())
}

// HistSnapshot is a copy of a Histogram's counts, for percentiles. The
// zero value is an empty snapshot.
type HistSnapshot struct {
	Counts [histBuckets]uint64
	N      uint64        // the count of recorded values
	Max    time.Duration // the largest value recorded (for a difference: since the first snapshot)
}

// Sub leaves in s the values recorded after prev was taken, s being the
// later snapshot of the same histogram.
func (s *HistSnapshot) Sub(prev *HistSnapshot) {
	for i := range s.Counts {
		s.Counts[i] -= prev.Counts[i]
	}
	s.N -= prev.N
}

// Add adds the values of o to s: s then describes both sets.
func (s *HistSnapshot) Add(o *HistSnapshot) {
	for i := range s.Counts {
		s.Counts[i] += o.Counts[i]
	}
	s.N += o.N
	s.Max = max(s.Max, o.Max)
}

// Quantile returns the value at quantile q (0 < q <= 1): the upper bound of
// the bucket holding the ceil(q*N)-th smallest value, at most Max. It
// returns 0 for an empty snapshot.
func (s *HistSnapshot) Quantile(q float64) time.Duration {
	if s.N == 0 {
		return 0
	}
	rank := uint64(q * float64(s.N))
	if float64(rank) < q*float64(s.N) {
		rank++
	}
	rank = min(max(rank, 1), s.N)
	var cum uint64
	for i, c := range s.Counts {
		cum += c
		if cum >= rank {
			v := time.Duration(histUpper(i))
			if s.Max > 0 && v > s.Max {
				v = s.Max
			}
			return v
		}
	}
	return s.Max
}
