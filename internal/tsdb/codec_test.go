package tsdb

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

func roundTripBlock(t *testing.T, ts []int64, vs []float64) []byte {
	t.Helper()
	var e blockEncoder
	b := e.appendBlock(nil, ts, vs)
	gt, gv, _, err := decodeBlockInto(b, nil, nil, nil)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if len(gt) != len(ts) || len(gv) != len(vs) {
		t.Fatalf("decoded %d/%d samples, want %d", len(gt), len(gv), len(ts))
	}
	for i := range ts {
		if gt[i] != ts[i] || math.Float64bits(gv[i]) != math.Float64bits(vs[i]) {
			t.Fatalf("sample %d: got (%d, %v) want (%d, %v)", i, gt[i], gv[i], ts[i], vs[i])
		}
	}
	return b
}

func TestBlockRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	randFloats := make([]float64, 500)
	for i := range randFloats {
		randFloats[i] = r.NormFloat64() * 1e3
	}
	seq := func(n int, f func(i int) float64) ([]int64, []float64) {
		ts := make([]int64, n)
		vs := make([]float64, n)
		for i := range ts {
			ts[i] = 1_700_000_000_000 + int64(i)*1000
			vs[i] = f(i)
		}
		return ts, vs
	}
	tests := []struct {
		name string
		ts   []int64
		vs   []float64
	}{
		{"empty", nil, nil},
		{"one", []int64{5}, []float64{1.5}},
		{"two", []int64{5, 7}, []float64{1.5, -2}},
		{"zeros", []int64{1, 2, 3}, []float64{0, 0, 0}},
		{"negative zero", []int64{1, 2, 3}, []float64{0, math.Copysign(0, -1), 0}},
		{"huge", []int64{1, 2, 3, 4}, []float64{1e16, 1e300, -1e300, math.MaxFloat64}},
		{"1e16", []int64{1, 2}, []float64{1e16, 1e16 + 2}},
		{"tiny", []int64{1, 2, 3}, []float64{1e-300, 5e-324, 1e-5}},
		{"infinities", []int64{1, 2, 3}, []float64{math.Inf(1), math.Inf(-1), 1}},
		{"nan", []int64{1, 2}, []float64{math.NaN(), 1}},
		{"decimals", []int64{1, 2, 3, 4}, []float64{0.1, 0.2, 0.30000000000000004, 99.99}},
		{"negative", []int64{1, 2, 3}, []float64{-1.25, -1e10, -0.001}},
		{"duplicate timestamps", []int64{1000, 1000, 1000, 2000}, []float64{1, 2, 3, 4}},
		{"negative timestamps", []int64{-5000, -1, 0, 1 << 40}, []float64{1, 2, 3, 4}},
		{"extreme timestamps", []int64{math.MinInt64, 0, math.MaxInt64}, []float64{1, 2, 3}},
		{"int64 edge mantissas", []int64{1, 2, 3}, []float64{9e18, -9e18, 9e18}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { roundTripBlock(t, tc.ts, tc.vs) })
	}
	t.Run("random floats", func(t *testing.T) {
		ts, vs := seq(len(randFloats), func(i int) float64 { return randFloats[i] })
		roundTripBlock(t, ts, vs)
	})
	t.Run("irregular timestamps", func(t *testing.T) {
		ts, vs := seq(1000, func(i int) float64 { return float64(i % 7) })
		for i := range ts {
			ts[i] += int64(r.IntN(50))
			if i > 0 && ts[i] < ts[i-1] {
				ts[i] = ts[i-1]
			}
		}
		ts[500] += 1 << 33 // one large gap
		for i := 501; i < len(ts); i++ {
			ts[i] += 1 << 33
		}
		roundTripBlock(t, ts, vs)
	})
	t.Run("reference gauge", func(t *testing.T) {
		ts, vs := refPoints(42, 0, 1000, 1_700_000_000)
		b := roundTripBlock(t, ts, vs)
		if len(b) > 1100 {
			t.Errorf("reference gauge block is %d bytes for 1000 samples, want about 1000", len(b))
		}
	})
	t.Run("reference counter", func(t *testing.T) {
		ts, vs := refPoints(42, 1, 1000, 1_700_000_000)
		b := roundTripBlock(t, ts, vs)
		if len(b) > 1000 {
			t.Errorf("reference counter block is %d bytes for 1000 samples, want about 900", len(b))
		}
	})
	t.Run("max block", func(t *testing.T) {
		ts, vs := seq(maxBlockSamples, func(i int) float64 { return float64(i) * 0.5 })
		roundTripBlock(t, ts, vs)
	})
}

func TestPackBitsAllWidths(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for w := uint(0); w <= 64; w++ {
		for _, n := range []int{1, 2, 7, 8, 9, 63, 64, 65, 100} {
			vals := make([]int64, n)
			lo := int64(r.Uint64())
			for i := range vals {
				var u uint64
				if w > 0 {
					u = r.Uint64() >> (64 - w)
				}
				vals[i] = lo + int64(u)
			}
			b := packBits(nil, vals, lo, w)
			if want := (n*int(w) + 7) / 8; len(b) != want {
				t.Fatalf("w=%d n=%d: %d bytes, want %d", w, n, len(b), want)
			}
			got := make([]int64, n)
			unpackBits(b, got, lo, w)
			for i := range vals {
				if got[i] != vals[i] {
					t.Fatalf("w=%d n=%d i=%d: got %d want %d", w, n, i, got[i], vals[i])
				}
			}
		}
	}
}

// checkDecimals checks blockEncoder.decimals against the plain way (the
// block exponent, then each value's mantissa at it): it finds an exponent
// whenever that does, never a larger one, and every mantissa gives its
// value back exactly. It may do better: decimalAt's rounding of v*10^e
// misses some mantissas near 2^52 that scaling a smaller exponent's finds.
func checkDecimals(t *testing.T, vs []float64) {
	t.Helper()
	var e blockEncoder
	ms, exp := e.decimals(vs)
	ref := blockExponent(vs)
	if ref >= 0 && (exp < 0 || exp > ref) {
		t.Fatalf("decimals(%v): exponent %d, blockExponent %d", vs, exp, ref)
	}
	if exp < 0 {
		return
	}
	if len(ms) != len(vs) {
		t.Fatalf("decimals(%v): %d mantissas", vs, len(ms))
	}
	for i, v := range vs {
		if got := float64(ms[i]) / pow10[exp]; math.Float64bits(got) != math.Float64bits(v) {
			t.Fatalf("decimals(%v): mantissa %d at exponent %d gives %v, want %v", vs, ms[i], exp, got, v)
		}
	}
}

func TestDecimals(t *testing.T) {
	cases := [][]float64{
		{1},
		{0.5, 1, 2.25},
		{1, 2, 3, 0.001},
		{123456789012, 0.1},     // scaled past 2^52: starts over
		{4503599627370495, 1.5}, // 2^52 - 1, then a decimal
		{-4503599627370495, 1.5},
		{1e15, 0.5},
		{0.1, 0.2, 0.3, 1e-18},
		{1, math.NaN()},
		{1, math.Inf(1)},
		{math.Copysign(0, -1), 1},
		{9.2e18, 1},
		{1.7976931348623157e308},
		{5e-324},
		{0.30000000000000004, 0.1},
	}
	for _, vs := range cases {
		checkDecimals(t, vs)
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		vs := make([]float64, 1+r.IntN(40))
		for i := range vs {
			e := r.IntN(8)
			vs[i] = float64(r.Int64N(2_000_000_000)-1_000_000_000) / pow10[e]
			if r.IntN(50) == 0 {
				vs[i] = r.NormFloat64() * math.Pow(10, float64(r.IntN(30)-10))
			}
		}
		checkDecimals(t, vs)
	}
}

// FuzzDecimals checks the one-pass mantissas (checkDecimals).
func FuzzDecimals(f *testing.F) {
	f.Add(1.0, 0.25, 3.0)
	f.Add(123456789012.0, 0.1, 5.0)
	f.Add(0.1, 0.2, 1e-18)
	f.Add(33.2, -65.04533333333333, -219.33333333333331)
	f.Fuzz(func(t *testing.T, a, b, c float64) {
		checkDecimals(t, []float64{a, b, c})
		checkDecimals(t, []float64{c, b, a, a})
	})
}

// TestBlockLayoutSmall pins the bytes of blocks of one and two samples to
// docs/format/parts.md: a block of two has a timestamp column of no
// delta-of-deltas (mode, min and width: 3 bytes), as a block of one has a
// value column of no deltas; a reader that skipped it would take it for
// the values.
func TestBlockLayoutSmall(t *testing.T) {
	for _, c := range []struct {
		ts   []int64
		vs   []float64
		want string
	}{
		// n=1 | t0=1000 | decimal e=0 m0=1 | empty FOR column
		{[]int64{1000}, []float64{1}, "01 d00f 000002 000000"},
		// n=2 | t0=1000 t1-t0=1000 | empty FOR column | decimal e=0 m0=1 | varint column: 1
		{[]int64{1000, 2000}, []float64{1, 2}, "02 d00f d00f 000000 000002 0102"},
	} {
		var e blockEncoder
		got := fmt.Sprintf("%x", e.appendBlock(nil, c.ts, c.vs))
		if want := strings.ReplaceAll(c.want, " ", ""); got != want {
			t.Errorf("block of %v %v: %s, want %s", c.ts, c.vs, got, want)
		}
	}
}
