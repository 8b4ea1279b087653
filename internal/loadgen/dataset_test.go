package loadgen

import (
	"bytes"
	"fmt"
	"os"
	"testing"
	"time"
)

// The golden files are the output of /bench/loadgen's "gen" subcommand:
//
//	loadgen gen -series S -points P -seed N -start T -prefix X
func TestDatasetMatchesLoadgen(t *testing.T) {
	for _, tc := range []struct {
		file string
		d    Dataset
		head int // compare only this many lines of d's output (0: all)
	}{
		{"gen-s2-p3-seed42.txt", Dataset{Series: 2, Points: 3, Seed: 42, Start: 1700000000, Prefix: "bench"}, 0},
		{"gen-s7-p40-seed42.txt", Dataset{Series: 7, Points: 40, Seed: 42, Start: 1700000000, Prefix: "bench"}, 0},
		{"gen-s5-p20-seed1.txt", Dataset{Series: 5, Points: 20, Seed: 1, Start: 1234567890, Prefix: "x.y"}, 0},
		// The reference set's first lines (10,000 series).
		{"gen-s10000-p2-seed42-head300.txt", Dataset{Series: 10000, Points: 2, Seed: 42, Start: 1700000000, Prefix: "bench"}, 300},
	} {
		t.Run(tc.file, func(t *testing.T) {
			want, err := os.ReadFile("testdata/" + tc.file)
			if err != nil {
				t.Fatal(err)
			}
			got := tc.d.AppendGraphite(nil)
			if tc.head > 0 {
				got = firstLines(got, tc.head)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("output differs from loadgen gen at line %d:\n got %q\nwant %q",
					diffLine(got, want), lineAt(got, diffLine(got, want)), lineAt(want, diffLine(got, want)))
			}
		})
	}
}

// TestLOGLinesMatchLoadgen checks that a connection's LOG requests are the
// data set's lines, time-major over the connection's series, with "LOG "
// in front: what "loadgen send -proto native" writes.
func TestLOGLinesMatchLoadgen(t *testing.T) {
	d := Dataset{Series: 7, Points: 40, Seed: 42, Start: 1700000000, Prefix: "bench"}
	want, err := os.ReadFile("testdata/gen-s7-p40-seed42.txt")
	if err != nil {
		t.Fatal(err)
	}
	const conns = 3
	for c := range conns {
		var exp []byte
		for i, line := range bytes.SplitAfter(want, []byte("\n")) {
			if len(line) > 0 && i%d.Series%conns == c {
				exp = append(append(exp, "LOG "...), line...)
			}
		}
		var ends []int
		got := AppendLOGs(nil, &ends, d.ConnSeries(c, conns), d.Start, 0, d.Points)
		if !bytes.Equal(got, exp) {
			t.Fatalf("connection %d: LOG lines differ at line %d: got %q want %q", c,
				diffLine(got, exp), lineAt(got, diffLine(got, exp)), lineAt(exp, diffLine(got, exp)))
		}
		if n := bytes.Count(got, []byte("\n")); len(ends) != n || ends[n-1] != len(got) {
			t.Fatalf("connection %d: %d line ends for %d lines, last %d of %d", c, len(ends), n, ends[len(ends)-1], len(got))
		}
		// Live generation sends the same bytes.
		src := liveSource(d.ConnSeries(c, conns), d.Start, d.Points)
		var live []byte
		for more := true; more; {
			live, more = src.gen(live)
		}
		if !bytes.Equal(live, exp) {
			t.Fatalf("connection %d: live generation differs from pregeneration", c)
		}
	}
}

func TestDatasetDeterministic(t *testing.T) {
	d := Dataset{Series: 50, Points: 30, Seed: 7, Start: 1700000000, Prefix: "p"}
	a, b := d.AppendGraphite(nil), d.AppendGraphite(nil)
	if !bytes.Equal(a, b) {
		t.Fatal("two generations of one data set differ")
	}
	d.Seed = 8
	if bytes.Equal(a, d.AppendGraphite(nil)) {
		t.Fatal("seeds 7 and 8 give the same data set")
	}
	// A series does not depend on how many there are, nor on the split
	// over connections.
	s1 := NewSeries("p", 7, 3)
	s2 := Dataset{Series: 1000, Points: 1, Seed: 7, Prefix: "p"}.ConnSeries(3, 4)[0]
	for j := range 100 {
		if v1, v2 := s1.Next(), s2.Next(); v1 != v2 {
			t.Fatalf("point %d: %v != %v", j, v1, v2)
		}
	}
	if s1.Name() != "p.counter.s000003" || NewSeries("p", 7, 4).Name() != "p.gauge.s000004" {
		t.Fatalf("names %q %q", s1.Name(), NewSeries("p", 7, 4).Name())
	}
}

func TestDatasetShape(t *testing.T) {
	g := NewSeries("b", 42, 0)
	c := NewSeries("b", 42, 1)
	prevC := -1.0
	for j := range 10000 {
		gv, cv := g.Next(), c.Next()
		if s := string(g.AppendValue(nil, gv)); len(s) < 4 || s[len(s)-3] != '.' {
			t.Fatalf("point %d: gauge value %q has not 2 decimals", j, s)
		}
		if cv < prevC || cv != float64(int64(cv)) {
			t.Fatalf("point %d: counter %v after %v", j, cv, prevC)
		}
		prevC = cv
	}
}

func TestDefaultStart(t *testing.T) {
	now := time.Unix(1700000123, 0)
	if got := DefaultStart(now, 1000); got != (1700000123-1300)/60*60 {
		t.Fatalf("DefaultStart = %d", got)
	}
}

func firstLines(b []byte, n int) []byte {
	off := 0
	for range n {
		i := bytes.IndexByte(b[off:], '\n')
		if i < 0 {
			return b
		}
		off += i + 1
	}
	return b[:off]
}

func diffLine(a, b []byte) int {
	la, lb := bytes.Split(a, []byte("\n")), bytes.Split(b, []byte("\n"))
	for i := range min(len(la), len(lb)) {
		if !bytes.Equal(la[i], lb[i]) {
			return i
		}
	}
	return min(len(la), len(lb))
}

func lineAt(b []byte, i int) string {
	ls := bytes.Split(b, []byte("\n"))
	if i < len(ls) {
		return string(ls[i])
	}
	return fmt.Sprintf("<end after %d lines>", len(ls))
}
