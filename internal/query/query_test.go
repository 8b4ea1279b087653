package query

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
)

func TestAppendRepr(t *testing.T) {
	// Expected strings are what CPython 3 prints for repr(float(x)).
	cases := []struct {
		v    float64
		want string
	}{
		{1, "1.0"}, {0.5, "0.5"}, {100, "100.0"}, {1e16, "1e+16"}, {1e-5, "1e-05"},
		{-2.5, "-2.5"}, {0, "0.0"}, {math.Copysign(0, -1), "-0.0"}, {0.1, "0.1"},
		{0.0001, "0.0001"}, {1e15, "1000000000000000.0"}, {1234567890123456.7, "1234567890123456.8"},
		{12345678901234567, "1.2345678901234568e+16"}, {1.5e-7, "1.5e-07"}, {1e100, "1e+100"},
		{1e-100, "1e-100"}, {5e-324, "5e-324"}, {math.MaxFloat64, "1.7976931348623157e+308"},
		{2.0 / 3, "0.6666666666666666"}, {123.456, "123.456"}, {-0.00012, "-0.00012"},
		{math.Inf(1), "inf"}, {math.Inf(-1), "-inf"}, {math.NaN(), "nan"}, {3.14e-4, "0.000314"},
	}
	for _, c := range cases {
		if got := string(AppendRepr(nil, c.v)); got != c.want {
			t.Errorf("repr(%v) = %q, want %q", c.v, got, c.want)
		}
	}
}

func TestWindows(t *testing.T) {
	ts := []int64{1000, 1500, 2000, 5000, 5999, 6000}
	vs := []float64{1, 3, 2, 10, 20, 7}
	cases := []struct {
		op       Op
		step     int64
		start    int64
		hasStart bool
		want     []Point
	}{
		{Avg, 1000, 0, false, []Point{{1000, 2}, {2000, 2}, {5000, 15}, {6000, 7}}},
		{Max, 2000, 0, false, []Point{{1000, 3}, {5000, 20}}},
		{Min, 2000, 0, false, []Point{{1000, 1}, {5000, 7}}},
		{Count, 10000, 0, false, []Point{{1000, 6}}},
		{Sum, 5000, 0, true, []Point{{0, 6}, {5000, 37}}},
		{Last, 3000, 1200, true, []Point{{1200, 2}, {4200, 7}}},
		{Count, 1000, 2500, true, []Point{{4500, 1}, {5500, 2}}},
	}
	for _, c := range cases {
		t.Run(c.op.String(), func(t *testing.T) {
			w := Windows{Op: c.op, Step: c.step, Start: c.start, HasStart: c.hasStart}
			// feed in two chunks to cover the chunk boundary
			w.Add(ts[:3], vs[:3])
			w.Add(ts[3:], vs[3:])
			got := w.Result()
			if len(got) != len(c.want) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Fatalf("got %v, want %v", got, c.want)
				}
			}
		})
	}
}

// TestAvgLargeValues: AVG of values whose sum overflows is still their
// (finite) mean, from samples and from archived aggregates alike; SUM
// overflows, as it must.
func TestAvgLargeValues(t *testing.T) {
	w := Windows{Op: Avg, Step: 60000, HasStart: true}
	w.Add([]int64{1000, 2000, 3000}, []float64{1e308, 1.5e308, 1.7e308})
	w.AddAggregate(60000, 2, math.Inf(1), 1.7e308, 1.7e308, 1.7e308) // an archived sum that overflowed
	w.AddAggregate(120000, 2, 1.2e308, 0.2e308, 1e308, 1e308)
	got := w.Result()
	if len(got) != 3 || got[0].Value != 1.4e308 || !math.IsInf(got[1].Value, 1) || got[2].Value != 0.6e308 {
		t.Errorf("AVG: %v, want [1.4e308 +Inf 0.6e308]", got)
	}
	w = Windows{Op: Avg, Step: 60000}
	a, b := 0.1, 0.2
	w.Add([]int64{1000, 2000}, []float64{a, b})
	if got := w.Result(); got[0].Value != (a+b)/2 {
		t.Errorf("AVG of small values: %v, want exactly (0.1+0.2)/2", got)
	}
	w = Windows{Op: Sum, Step: 60000}
	w.Add([]int64{1000, 2000}, []float64{1e308, 1e308})
	if got := w.Result(); !math.IsInf(got[0].Value, 1) {
		t.Errorf("SUM: %v, want +Inf", got)
	}
}

func TestAppendPoints(t *testing.T) {
	if got := string(AppendPoints(nil, Count, []Point{{0, 1}, {1, 20}})); got != "[1, 20]" {
		t.Fatalf("count: %q", got)
	}
	if got := string(AppendPoints(nil, Avg, nil)); got != "[]" {
		t.Fatalf("empty: %q", got)
	}
	if got := string(AppendPoints(nil, Max, []Point{{0, 1}, {1, 0.5}})); got != "[1.0, 0.5]" {
		t.Fatalf("max: %q", got)
	}
}

func TestParseTime(t *testing.T) {
	cases := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"2022-04-26T00:00:00", 1650931200000, true},
		{"2022-04-26T00:00:00Z", 1650931200000, true},
		{"2022-04-26T02:00:00+02:00", 1650931200000, true},
		{"2022-04-26T00:00:00.250", 1650931200250, true},
		{"2022-04-26", 1650931200000, true},
		{"1650931200", 1650931200000, true},
		{"1650931200.5", 1650931200500, true},
		{"1650931200.1239", 1650931200123, true},
		{"0", 0, true},
		{"", 0, false}, {"abc", 0, false}, {"1.2.3", 0, false}, {"12.", 0, false},
		{"99999999999999999999", 0, false}, {"-5", 0, false}, {"2022-13-01T00:00:00", 0, false},
	}
	for _, c := range cases {
		got, err := ParseTime([]byte(c.in))
		if (err == nil) != c.ok || (c.ok && got != c.want) {
			t.Errorf("ParseTime(%q) = %d, %v; want %d, ok=%v", c.in, got, err, c.want, c.ok)
		}
	}
}

// TestParseTimeErrors: unix milliseconds given for seconds are told apart
// from what is not a time at all.
func TestParseTimeErrors(t *testing.T) {
	for in, want := range map[string]error{
		"1650931200000": ErrTimeRange, "253402300800": ErrTimeRange, "99999999999999999999.5": ErrTimeRange,
		"1.2.3": ErrBadTime, "12.": ErrBadTime, "yesterday": ErrBadTime, "10000-01-01": ErrBadTime,
	} {
		if _, err := ParseTime([]byte(in)); err != want {
			t.Errorf("ParseTime(%q): %v, want %v", in, err, want)
		}
	}
}

func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"2022-04-26T00:00:00", "1650931200.5", "2022-04-26T02:00:00+02:00", "1e9", "",
		"2024-02-29 23:59:59.999-0130", "2022-04-26T00:00Z", "2022-04-26", "1970-01-01T00:00:00,5+00:00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ms, err := ParseTime(b)
		if err == nil && (ms < MinTime || ms > MaxTime) {
			t.Fatalf("ParseTime(%q) = %d out of range", b, ms)
		}
		// The fast ISO parser agrees with package time wherever both
		// answer (it also takes zones without a colon, as ISO 8601 does).
		if fast, ok := parseISO(b); ok {
			if slow, err := parseISOSlow(b); err == nil && slow != fast {
				t.Fatalf("parseISO(%q) = %d, package time: %d, %v", b, fast, slow, err)
			}
		}
	})
}

func FuzzAppendRepr(f *testing.F) {
	for _, v := range []float64{1, 0.5, 1e16, 1e-5, -2.5, 123.456} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v float64) {
		s := string(AppendRepr(nil, v))
		if math.IsNaN(v) {
			return
		}
		got, ok := parseReprBack(s)
		if !ok || got != v && !(v == 0 && got == 0) {
			t.Fatalf("repr(%v) = %q does not round-trip (%v)", v, s, got)
		}
	})
}

func parseReprBack(s string) (float64, bool) {
	switch s {
	case "inf":
		return math.Inf(1), true
	case "-inf":
		return math.Inf(-1), true
	}
	v, ok := ParseFloat([]byte(s))
	return v, ok
}

func BenchmarkWindowsMax60(b *testing.B) {
	const n = 1 << 20
	ts := make([]int64, n)
	vs := make([]float64, n)
	for i := range ts {
		ts[i] = 1700000000000 + int64(i)*1000
		vs[i] = float64(i % 977)
	}
	b.SetBytes(n)
	b.ReportAllocs()
	var w Windows
	for b.Loop() {
		w.Reset()
		w.Op, w.Step = Max, 60000
		for i := 0; i < n; i += 8192 {
			w.Add(ts[i:i+8192], vs[i:i+8192])
		}
		if len(w.Result()) == 0 {
			b.Fatal("no result")
		}
	}
}

func BenchmarkAppendRepr(b *testing.B) {
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendRepr(buf[:0], 1234.56)
	}
}

// TestParseISOMatchesPackageTime formats random instants in every layout
// and zone clients use and checks that the fast parser reads them back as
// package time does.
func TestParseISOMatchesPackageTime(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	layouts := []string{
		"2006-01-02T15:04:05Z07:00", "2006-01-02T15:04:05.000Z07:00", "2006-01-02T15:04:05.999999999Z07:00",
		"2006-01-02T15:04:05", "2006-01-02 15:04:05.000", "2006-01-02T15:04Z07:00", "2006-01-02T15:04", "2006-01-02",
	}
	for range 20000 {
		ms := rng.Int64N(MaxTime-2*86400000) + 86400000
		zone := time.FixedZone("", (rng.IntN(27*4)-14*4)*15*60)
		if rng.IntN(3) == 0 {
			zone = time.UTC
		}
		tm := time.UnixMilli(ms).In(zone)
		for _, layout := range layouts {
			s := tm.Format(layout)
			fast, ok := parseISO([]byte(s))
			slow, err := parseISOSlow([]byte(s))
			if !ok || err != nil || fast != slow {
				t.Fatalf("%q: parseISO %d %v, package time %d %v", s, fast, ok, slow, err)
			}
		}
	}
}

// FuzzParseFloat checks the decimal fast path against strconv.
func FuzzParseFloat(f *testing.F) {
	for _, s := range []string{"1", "-2.5", "0.1", "123456789012345", "1234567890.12345", "1e5", ".5", "5.", "-0", "+7.25", "nan"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fast, ok := parseDecimal(b)
		if !ok {
			return
		}
		want, err := strconv.ParseFloat(string(b), 64)
		if err != nil || math.Float64bits(fast) != math.Float64bits(want) {
			t.Fatalf("parseDecimal(%q) = %v, strconv %v, %v", b, fast, want, err)
		}
	})
}

func BenchmarkParseFloat(b *testing.B) {
	in := [][]byte{[]byte("1234.56"), []byte("98765"), []byte("-0.25"), []byte("1e-05")}
	for b.Loop() {
		for _, x := range in {
			ParseFloat(x)
		}
	}
}
