package loadgen

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"time"
)

// DefaultSeed is the seed of the reference data set, as /bench/loadgen
// uses it: the figures in BENCHMARKS.md and of the peers are for it.
const DefaultSeed = 42

// Series is one series of the reference data set. Its zero value is not
// usable; make one with NewSeries. A Series is not safe for concurrent use.
type Series struct {
	ID      int
	Counter bool
	rng     *rand.Rand
	v       float64
	name    []byte // name + ' '
}

// NewSeries returns series i of the data set with this prefix and seed,
// before its first point.
func NewSeries(prefix string, seed uint64, i int) *Series {
	s := &Series{ID: i, Counter: i%2 == 1, rng: rand.New(rand.NewPCG(seed, uint64(i)))}
	kind := "gauge"
	if s.Counter {
		kind = "counter"
		s.v = float64(s.rng.IntN(1000))
	} else {
		s.v = math.Round(s.rng.Float64()*10000) / 100
	}
	s.name = fmt.Appendf(nil, "%s.%s.s%06d ", prefix, kind, i)
	return s
}

// Name returns the series' name.
func (s *Series) Name() string { return string(s.name[:len(s.name)-1]) }

// Next advances the series by one point and returns its value.
func (s *Series) Next() float64 {
	if s.Counter {
		s.v += float64(s.rng.IntN(100))
	} else {
		s.v = math.Round((s.v+(s.rng.Float64()*2-1))*100) / 100
	}
	return s.v
}

// AppendValue appends v as the data set prints it: an integer for a
// counter, two decimals for a gauge.
func (s *Series) AppendValue(dst []byte, v float64) []byte {
	if s.Counter {
		return strconv.AppendInt(dst, int64(v), 10)
	}
	return strconv.AppendFloat(dst, v, 'f', 2, 64)
}

// AppendNext advances the series and appends its next point as the line
// "<name> <value> <ts>\n", ts in unix seconds: Graphite's plaintext
// protocol, and the native protocol's LOG line after the "LOG " prefix.
func (s *Series) AppendNext(dst []byte, ts int64) []byte {
	dst = append(dst, s.name...)
	dst = s.AppendValue(dst, s.Next())
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, ts, 10)
	return append(dst, '\n')
}

// AppendNextLOG appends the series' next point as a native protocol
// request: "LOG <name> <value> <ts>\n".
func (s *Series) AppendNextLOG(dst []byte, ts int64) []byte {
	return s.AppendNext(append(dst, "LOG "...), ts)
}

// DefaultStart returns the first timestamp /bench/loadgen send uses for
// points points: now minus points minus 300 seconds, rounded down to a
// minute, so that the last point is in the recent past.
func DefaultStart(now time.Time, points int) int64 {
	return (now.Unix() - int64(points) - 300) / 60 * 60
}

// Dataset describes the reference data set: Series series of Points points
// each, from Start (unix seconds), named with Prefix, drawn from Seed.
type Dataset struct {
	Series, Points int
	Seed           uint64
	Start          int64
	Prefix         string
}

// Samples returns the number of points in the data set.
func (d Dataset) Samples() int64 { return int64(d.Series) * int64(d.Points) }

// ConnSeries returns the series connection c of conns sends, as
// /bench/loadgen splits them: c, c+conns, c+2*conns, ...
func (d Dataset) ConnSeries(c, conns int) []*Series {
	var ss []*Series
	for i := c; i < d.Series; i += conns {
		ss = append(ss, NewSeries(d.Prefix, d.Seed, i))
	}
	return ss
}

// AppendGraphite appends the whole data set as Graphite plaintext lines,
// time-major (every series' point 0, then every series' point 1, ...),
// exactly as "loadgen gen" prints it.
func (d Dataset) AppendGraphite(dst []byte) []byte {
	ss := d.ConnSeries(0, 1)
	for j := 0; j < d.Points; j++ {
		for _, s := range ss {
			dst = s.AppendNext(dst, d.Start+int64(j))
		}
	}
	return dst
}

// AppendLOGs appends points [from, to) of the series ss as LOG lines,
// time-major, as one connection of "loadgen send -proto native" sends
// them; point j has timestamp start+j. When ends is not nil, the offset
// just past each line is appended to it.
func AppendLOGs(dst []byte, ends *[]int, ss []*Series, start int64, from, to int) []byte {
	for j := from; j < to; j++ {
		ts := start + int64(j)
		for _, s := range ss {
			dst = s.AppendNextLOG(dst, ts)
			if ends != nil {
				*ends = append(*ends, len(dst))
			}
		}
	}
	return dst
}
