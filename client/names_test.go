package client

import (
	"os"
	"strconv"
	"strings"
	"testing"
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
		{"too long", func() { c.Gauge(strings.Repeat("x", 251)) }},
		{"long histogram series", func() { c.Histogram(strings.Repeat("x", 245)) }},
		{"kind mismatch", func() { c.Gauge("hits") }},
		{"timer is not histogram", func() { c.Histogram("lat") }},
		{"reserved", func() { c.Meter(DroppedMetric) }},
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
		{point{name: "x", v: 1e-7, ts: -1500}, "LOG x 1e-07 -2.5\n", "x 1e-07 -2.5\n"},
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
	c.collect(true)
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
