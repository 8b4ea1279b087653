package tsdb

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"testing"
	"time"
)

// modelSample is a sample in the reference model, in arrival order.
type modelSample struct {
	t int64
	v float64
}

// TestModel runs random sequences of appends (with duplicates and
// out-of-order timestamps across several days), flushes, merges, crashes,
// clean reopens and scans against an in-memory model.
func TestModel(t *testing.T) {
	seeds := 5
	steps := 200
	if testing.Short() {
		seeds, steps = 3, 150
	}
	for seed := 0; seed < seeds; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { runModel(t, uint64(seed), steps) })
	}
}

func runModel(t *testing.T, seed uint64, steps int) {
	r := rand.New(rand.NewPCG(seed, 99))
	dir := t.TempDir()
	o := testOpts()
	o.FlushSamples = 200 + r.IntN(400) // background flushes too
	db := openTest(t, dir, o)
	defer func() { db.Close() }()

	type key struct {
		name  string
		label string
	}
	model := map[SeriesRef][]modelSample{}
	keys := map[key]SeriesRef{}
	var refs []SeriesRef
	base := (dayOf(time.Now().UnixMilli()) - 1) * dayMillis
	randT := func() int64 {
		switch r.IntN(4) {
		case 0:
			return base + int64(r.IntN(20))*1000 // many duplicates
		case 1:
			return base + int64(r.IntN(3))*dayMillis + int64(r.IntN(100000))
		default:
			return base + int64(r.IntN(5000))*1000
		}
	}
	randV := func() float64 {
		switch r.IntN(5) {
		case 0:
			return r.NormFloat64()
		case 1:
			return float64(r.IntN(1000))
		case 2:
			return math.Round(r.Float64()*10000) / 100
		case 3:
			return []float64{0, math.Copysign(0, -1), 1e16, -1e300, 5e-324, math.Inf(1)}[r.IntN(6)]
		default:
			return math.Round(r.NormFloat64()*1e6) / 1e3
		}
	}
	check := func(what string) {
		t.Helper()
		for _, ref := range refs {
			want := model[ref]
			mint, maxt := int64(math.MinInt64), int64(math.MaxInt64)
			if r.IntN(2) == 0 {
				mint = randT()
				maxt = mint + int64(r.IntN(3))*dayMillis + int64(r.IntN(2000000))
			}
			var exp []modelSample
			for _, s := range want {
				if s.t >= mint && s.t < maxt {
					exp = append(exp, s)
				}
			}
			sort.SliceStable(exp, func(i, j int) bool { return exp[i].t < exp[j].t })
			ts, vs := collect(t, db, ref, mint, maxt)
			if len(ts) != len(exp) {
				t.Fatalf("%s: series %d [%d,%d): %d samples, want %d", what, ref, mint, maxt, len(ts), len(exp))
			}
			for i := range exp {
				if ts[i] != exp[i].t || math.Float64bits(vs[i]) != math.Float64bits(exp[i].v) {
					t.Fatalf("%s: series %d sample %d: got (%d, %v) want (%d, %v)", what, ref, i, ts[i], vs[i], exp[i].t, exp[i].v)
				}
			}
		}
	}
	for step := 0; step < steps; step++ {
		switch op := r.IntN(100); {
		case op < 10 || len(refs) == 0:
			k := key{fmt.Sprintf("m%d", r.IntN(6)), fmt.Sprint(r.IntN(3))}
			var labels []Label
			if k.label != "0" {
				labels = []Label{{"x", k.label}, {"a", "1"}}
			}
			ref, err := db.GetOrCreate([]byte(k.name), labels)
			if err != nil {
				t.Fatal(err)
			}
			if old, ok := keys[k]; ok && old != ref {
				t.Fatalf("series %v: ref %d, was %d", k, ref, old)
			} else if !ok {
				keys[k] = ref
				refs = append(refs, ref)
			}
		case op < 64:
			// A run of one series after its last sample (or at it), as
			// a scraper writes: flushed and merged, its blocks are
			// copied rather than encoded again.
			ref := refs[r.IntN(len(refs))]
			t0 := base
			for _, s := range model[ref] {
				t0 = max(t0, s.t)
			}
			if r.IntN(3) > 0 {
				t0 += 1000
			}
			ss := make([]Sample, minCopySamples+r.IntN(3*minCopySamples))
			for i := range ss {
				ss[i] = Sample{ref, t0 + int64(i)*1000, randV()}
				model[ref] = append(model[ref], modelSample{ss[i].T, ss[i].V})
			}
			if err := db.Append(ss); err != nil {
				t.Fatal(err)
			}
		case op < 70:
			n := 1 + r.IntN(50)
			if r.IntN(20) == 0 {
				n = 2000 + r.IntN(8000) // a big batch: several blocks
			}
			ss := make([]Sample, n)
			ref := refs[r.IntN(len(refs))]
			t0 := randT()
			for i := range ss {
				if r.IntN(4) == 0 {
					ref = refs[r.IntN(len(refs))]
				}
				tt := t0 + int64(i)*1000
				if r.IntN(8) == 0 {
					tt = randT()
				}
				ss[i] = Sample{ref, tt, randV()}
				model[ref] = append(model[ref], modelSample{tt, ss[i].V})
			}
			if err := db.Append(ss); err != nil {
				t.Fatal(err)
			}
		case op < 78:
			if err := db.Flush(); err != nil {
				t.Fatal(err)
			}
		case op < 83:
			if _, err := db.mergeOnce(); err != nil {
				t.Fatal(err)
			}
		case op < 87:
			db.kill()
			db = openTest(t, dir, o)
			check("after crash")
		case op < 90:
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			db = openTest(t, dir, o)
			check("after reopen")
		default:
			check("scan")
		}
	}
	check("end")
	for k, ref := range keys {
		var labels []Label
		if k.label != "0" {
			labels = []Label{{"a", "1"}, {"x", k.label}}
		}
		if got, ok := db.Lookup([]byte(k.name), labels); !ok || got != ref {
			t.Fatalf("lookup %v: %d %v, want %d", k, got, ok, ref)
		}
		name, ls, ok := db.SeriesInfo(ref)
		if !ok || name != k.name || fmt.Sprint(ls) != fmt.Sprint(labels) {
			t.Fatalf("series info %d: %q %v", ref, name, ls)
		}
	}
}
