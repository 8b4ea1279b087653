package client

import (
	"math"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/vigia-mon/vigia/internal/native/wire"
	"github.com/vigia-mon/vigia/internal/query"
)

func TestNameTemplates(t *testing.T) {
	host, _ := os.Hostname()
	short, _, _ := strings.Cut(host, ".")
	pid := strconv.Itoa(os.Getpid())
	tests := []struct {
		prefix string
		subs   Substitutions
		in     string
		want   string
	}{
		{"", nil, "app.%node%.requests", "app." + host + ".requests"},
		{"", nil, "%host%.%pid%.x", short + "." + pid + ".x"},
		{"%env%.", Substitutions{"%env%": "prod"}, "db.%env%.q", "prod.db.prod.q"},
		{"", Substitutions{"%node%": "web1"}, "%node%.up", "web1.up"},
		{"", nil, "plain", "plain"},
	}
	for _, tt := range tests {
		if got := newNamer(tt.prefix, tt.subs)(tt.in); got != tt.want {
			t.Errorf("name(%q, prefix %q, %v) = %q, want %q", tt.in, tt.prefix, tt.subs, got, tt.want)
		}
	}
}

// TestNameTemplatesOverlap: where templates overlap at the same place
// the longest wins, on every run (map order must not decide).
func TestNameTemplatesOverlap(t *testing.T) {
	host, _ := os.Hostname()
	pid := strconv.Itoa(os.Getpid())
	subs := Substitutions{"%node": "short", "%pi": "pi", "%host%.x": "hx"}
	tests := []struct{ in, want string }{
		{"%node%.%pid%", host + "." + pid}, // built-ins longer than the user's keys
		{"%host%.x.y", "hx.y"},             // the user's key longer than %host%
		{"%node.%pi", "short.pi"},
	}
	for i := 0; i < 50; i++ {
		name := newNamer("", subs)
		for _, tt := range tests {
			if got := name(tt.in); got != tt.want {
				t.Fatalf("run %d: name(%q) with %v = %q, want %q", i, tt.in, subs, got, tt.want)
			}
		}
	}
}

func TestMetricNames(t *testing.T) {
	c, _ := newManualClient(t, &Options{Prefix: "%env%.", Substitutions: Substitutions{"%env%": "prod"}})
	a := c.Counter("hits")
	if a != c.Counter("hits") || a.name != "prod.hits" {
		t.Errorf("Counter(hits) twice: %p %p, name %q", a, c.Counter("hits"), a.name)
	}
	h := c.Timer("lat")
	want := "prod.lat.count prod.lat.sum prod.lat.min prod.lat.max prod.lat.p50 prod.lat.p90 prod.lat.p99"
	if got := strings.Join(h.h.names, " "); got != want {
		t.Errorf("timer series %q, want %q", got, want)
	}
	panics := []struct {
		name string
		f    func()
	}{
		{"empty", func() { c.Gauge("") }},
		{"space", func() { c.Gauge("a b") }},
		{"control", func() { c.Gauge("a\nb") }},
		{"C1 control", func() { c.Gauge("a\u0085b") }},
		{"no-break space", func() { c.Gauge("a\u00a0b") }},
		{"bad UTF-8", func() { c.Gauge("a\xffb") }},
		{"too long", func() { c.Gauge(strings.Repeat("x", 251)) }},
		{"long histogram series", func() { c.Histogram(strings.Repeat("x", 245)) }},
		{"kind mismatch", func() { c.Gauge("hits") }},
		{"timer is not histogram", func() { c.Histogram("lat") }},
		{"reserved", func() { c.Meter(DroppedMetric) }},
		{"series of a histogram", func() { c.Counter("lat.count") }},
		{"series clashing with a histogram's", func() { c.Gauge("hist.p99"); c.Histogram("hist") }},
		{"nil function", func() { c.Register("sampled", nil, KindGauge) }},
	}
	for _, p := range panics {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", p.name)
				}
			}()
			p.f()
		}()
	}
	c.Gauge(strings.Repeat("x", 250)[:250-len("prod.")]) // 255 bytes in all: fine
}

func TestQuantileSuffix(t *testing.T) {
	for q, want := range map[float64]string{0.5: "p50", 0.9: "p90", 0.99: "p99", 0.999: "p999", 0.05: "p05", 0.75: "p75", 1: "p100"} {
		if got := quantileSuffix(q); got != want {
			t.Errorf("quantileSuffix(%v) = %q, want %q", q, got, want)
		}
	}
}

func TestEncode(t *testing.T) {
	tests := []struct {
		p        point
		native   string
		graphite string
	}{
		{point{name: "a", v: 3, ts: 1_700_000_000_000}, "LOG a 3 1700000000\n", "a 3 1700000000\n"},
		{point{name: "a.b", v: 0.5, ts: 1_700_000_000_500}, "LOG a.b 0.5 1700000000.5\n", "a.b 0.5 1700000000.5\n"},
		{point{name: "x", v: -2.25, ts: 1_700_000_000_010}, "LOG x -2.25 1700000000.01\n", "x -2.25 1700000000.01\n"},
		{point{name: "x", v: 1e20, ts: 1_700_000_000_123}, "LOG x 1e+20 1700000000.123\n", "x 1e+20 1700000000.123\n"},
		{point{name: "x", v: 1e-7, ts: -1500}, "LOG x 1e-07 -1.5\n", "x 1e-07 -1.5\n"},
		{point{name: "x", v: 123456789012, ts: 0}, "LOG x 123456789012 0\n", "x 123456789012 0\n"},
	}
	for _, tt := range tests {
		if got := string(appendLog(nil, &tt.p)); got != tt.native {
			t.Errorf("appendLog(%v) = %q, want %q", tt.p, got, tt.native)
		}
		if got := string(appendGraphite(nil, &tt.p)); got != tt.graphite {
			t.Errorf("appendGraphite(%v) = %q, want %q", tt.p, got, tt.graphite)
		}
	}
}

func TestOptionsValidation(t *testing.T) {
	bad := []Options{
		{Protocol: 7},
		{Period: -1},
		{Quantiles: []float64{0}},
		{Quantiles: []float64{1.5}},
		{Quantiles: []float64{0.5, 0.99, 0.5}},
		{GaugeMode: 3},
		{Prefix: "a b."},
	}
	for _, o := range bad {
		if c, err := New(&o); err == nil {
			c.Close(t.Context())
			t.Errorf("New(%+v) accepted", o)
		}
	}
}

func TestGetDeleteSnapshot(t *testing.T) {
	c, clk := newManualClient(t, nil)
	c.Counter("a").Inc()
	c.Counter("a.b").Inc()
	c.Histogram("h").Observe(1)
	clk.set(at(10_000))
	tickNow(c)
	if got := len(c.Get("a")); got != 1 {
		t.Errorf("Get(a) returned %d points, want 1 (not a.b's)", got)
	}
	if got := len(c.Get("h")); got != 7 {
		t.Errorf("Get(h) returned %d points, want the 7 series", got)
	}
	if got := len(c.Snapshot()); got != 9 {
		t.Errorf("Snapshot returned %d points, want 9", got)
	}
	if n := c.Delete("h"); n != 7 {
		t.Errorf("Delete(h) dropped %d, want 7", n)
	}
	if n := c.Delete("nope"); n != 0 {
		t.Errorf("Delete(nope) dropped %d", n)
	}
	if got := points(c.Snapshot()); len(got) != 2 || got[0].name != "a" || got[1].name != "a.b" {
		t.Errorf("after Delete: %v", got)
	}
}

// FuzzEncode checks that every LOG line parses back to its point: four
// fields, the value exactly, the timestamp to the millisecond.
func FuzzEncode(f *testing.F) {
	f.Add("a.b", 3.0, int64(1_700_000_000_000))
	f.Add("x", 0.1, int64(1_700_000_000_500))
	f.Add("x", -1e-300, int64(-1))
	f.Add("x", 1e300, int64(999))
	f.Add("x", 123456789012345.0, int64(0))
	f.Fuzz(func(t *testing.T, name string, v float64, ms int64) {
		if validName(name) != nil || math.IsNaN(v) || math.IsInf(v, 0) || ms > 1<<50 || ms < -(1<<50) {
			t.Skip()
		}
		line := string(appendLog(nil, &point{name: name, v: v, ts: ms}))
		f := strings.Split(strings.TrimSuffix(line, "\n"), " ")
		if len(f) != 4 || f[0] != "LOG" || f[1] != name || !strings.HasSuffix(line, "\n") {
			t.Fatalf("line %q", line)
		}
		got, err := strconv.ParseFloat(f[2], 64)
		if err != nil || got != v {
			t.Fatalf("value %q from %v: %v", f[2], v, err)
		}
		ts, err := strconv.ParseFloat(f[3], 64)
		if _, frac, _ := strings.Cut(f[3], "."); err != nil || len(frac) > 3 || int64(math.Round(ts*1000)) != ms {
			t.Fatalf("timestamp %q from %d ms: %v", f[3], ms, err)
		}
		if ms < query.MinTime || ms > query.MaxTime {
			return // before 1970 or after 9999: the server refuses it
		}
		// vigia's own parser reads the point back.
		var r wire.Request
		if err := wire.Parse([]byte(strings.TrimSuffix(line, "\n")), &r); err != nil ||
			r.Cmd != wire.Log || string(r.ID) != name || r.Value != v || !r.HasT || r.T != ms {
			t.Fatalf("server parses %q as %+v, %v", line, r, err)
		}
	})
}
