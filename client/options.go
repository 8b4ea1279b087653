package client

import (
	"fmt"
	"log/slog"
	"math"
	"slices"
	"time"
)

// Protocol selects how a Client delivers its points.
type Protocol int

const (
	// Native delivers over vigia's native protocol: pipelined
	// "LOG <name> <value> <timestamp>" lines, each acknowledged by
	// "201 Metric Inserted" once the server made it durable. A point is
	// forgotten only after its acknowledgement, so delivery is at least
	// once.
	Native Protocol = iota
	// Graphite delivers Graphite plaintext lines ("name value timestamp")
	// to any Graphite-compatible server. The vigia server takes the Native
	// protocol; it has no Graphite listener. Graphite has no
	// acknowledgements: a point is forgotten once it was written to the
	// connection without error, so delivery is at most once.
	Graphite
)

func (p Protocol) String() string {
	switch p {
	case Native:
		return "native"
	case Graphite:
		return "graphite"
	}
	return fmt.Sprintf("Protocol(%d)", int(p))
}

// GaugeMode selects what a Gauge reports for an interval.
type GaugeMode int

const (
	// GaugeLast reports the last value set during the interval.
	GaugeLast GaugeMode = iota
	// GaugeMean reports the mean of the values set during the interval.
	GaugeMean
)

// Kind tells Register how to report the values a function returns.
type Kind int

const (
	// KindGauge reports each sampled value as is.
	KindGauge Kind = iota
	// KindMeter reports each sampled value as is; the function returns a
	// monotonically growing total, such as bytes written since start.
	KindMeter
	// KindCounter reports the increase of the sampled value since the
	// previous sample; the function returns a running total and the first
	// sample only sets the baseline. A total lower than the previous one is
	// taken as a reset (the process behind it restarted), as Prometheus'
	// rate() does: the increase is the new total, counted from zero. An
	// interval without increase yields no point.
	KindCounter
)

func (k Kind) String() string {
	switch k {
	case KindGauge:
		return "gauge"
	case KindMeter:
		return "meter"
	case KindCounter:
		return "counter"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Substitutions maps name templates to their replacement, for example
// Substitutions{"%env%": "prod"}. They are applied to a metric's name once,
// when the metric is created, never per update. A substitution for %node%,
// %host% or %pid% replaces the built-in one. The name is scanned once from
// left to right, and where several templates match at the same place, the
// longest wins: with Substitutions{"%node": "x"}, "%node%" still gives the
// host name.
type Substitutions map[string]string

// Options configures a Client. A nil *Options, or a zero field, means the
// default documented on the field.
type Options struct {
	// Addr is the server's host:port. Default "127.0.0.1:7574" for Native
	// and "127.0.0.1:2003" for Graphite.
	Addr string
	// Protocol selects the transport. Default Native.
	Protocol Protocol

	// Period is the length of an interval: values are accumulated per
	// interval, bucketed by the interval's start (a multiple of Period
	// since the Unix epoch), and the closed intervals are sent every
	// Period. Default 10s; rounded down to a whole millisecond, at least
	// 1ms.
	Period time.Duration

	// MaxPoints bounds the points held while waiting for delivery. Past
	// it the oldest are dropped and counted in the metric
	// vigia.client.dropped. Default 100,000 (about 4 MB).
	MaxPoints int

	// DialTimeout bounds connecting to the server. Default 5s.
	DialTimeout time.Duration
	// WriteTimeout bounds each write to the server. Default 5s.
	WriteTimeout time.Duration
	// ReadTimeout bounds the wait for each acknowledgement (Native); it has
	// to cover the server's fsync. Default 10s. With Graphite, which
	// acknowledges nothing, the wait for the server to close the
	// connection after a batch is the smaller of it and a second.
	ReadTimeout time.Duration
	// MaxBackoff caps the delay between failed deliveries. After the n-th
	// failure in a row the next attempt comes after a random delay between
	// half and all of min(Period × 2^(n-1), MaxBackoff). Default 6 × Period,
	// at least Period.
	MaxBackoff time.Duration
	// MaxInFlight bounds the LOG lines written and not yet acknowledged on
	// the connection. The sender halves its own bound each time the server
	// answers 503 busy and grows it back as deliveries succeed. Default
	// 1024.
	MaxInFlight int

	// Prefix is prepended to every metric name, the library's own
	// included, before templates are applied. Default "".
	Prefix string
	// Substitutions are applied to every name after the built-in
	// templates %node% and %host% (the host name, the part before the
	// first dot) and %pid% (the process id). A user substitution for
	// %node%, %host% or %pid% overrides the built-in one.
	Substitutions Substitutions

	// Quantiles are the quantiles every Histogram and Timer reports, each
	// in (0, 1] and listed once. Default 0.5, 0.9, 0.99. Each adds a
	// series named name.pNN: 0.5 is p50, 0.99 is p99, 0.999 is p999.
	Quantiles []float64
	// GaugeMode is the mode of gauges made by Client.Gauge. Default
	// GaugeLast.
	GaugeMode GaugeMode

	// Logger receives delivery failures and recoveries, at most a few
	// lines per period. Default slog.Default().
	Logger *slog.Logger
}

// Defaults.
const (
	DefaultNativeAddr   = "127.0.0.1:7574"
	DefaultGraphiteAddr = "127.0.0.1:2003"
	DefaultPeriod       = 10 * time.Second
	DefaultMaxPoints    = 100_000
	DefaultDialTimeout  = 5 * time.Second
	DefaultWriteTimeout = 5 * time.Second
	DefaultReadTimeout  = 10 * time.Second
	DefaultMaxInFlight  = 1024
)

// DefaultQuantiles are the quantiles reported when Options.Quantiles is
// empty.
var DefaultQuantiles = []float64{0.5, 0.9, 0.99}

// withDefaults returns a copy of o with every zero field set to its
// default, or an error naming the first invalid field.
func (o *Options) withDefaults() (Options, error) {
	var r Options
	if o != nil {
		r = *o
	}
	switch r.Protocol {
	case Native:
		if r.Addr == "" {
			r.Addr = DefaultNativeAddr
		}
	case Graphite:
		if r.Addr == "" {
			r.Addr = DefaultGraphiteAddr
		}
	default:
		return r, fmt.Errorf("unknown protocol %d (use client.Native or client.Graphite)", int(r.Protocol))
	}
	if r.Period < 0 || r.MaxPoints < 0 || r.DialTimeout < 0 || r.WriteTimeout < 0 ||
		r.ReadTimeout < 0 || r.MaxBackoff < 0 || r.MaxInFlight < 0 {
		return r, fmt.Errorf("negative duration or size in client options")
	}
	if r.Period == 0 {
		r.Period = DefaultPeriod
	}
	r.Period = r.Period.Truncate(time.Millisecond)
	if r.Period < time.Millisecond {
		r.Period = time.Millisecond
	}
	if r.MaxPoints == 0 {
		r.MaxPoints = DefaultMaxPoints
	}
	if r.DialTimeout == 0 {
		r.DialTimeout = DefaultDialTimeout
	}
	if r.WriteTimeout == 0 {
		r.WriteTimeout = DefaultWriteTimeout
	}
	if r.ReadTimeout == 0 {
		r.ReadTimeout = DefaultReadTimeout
	}
	if r.MaxBackoff == 0 {
		r.MaxBackoff = 6 * r.Period
	}
	if r.MaxBackoff < r.Period {
		r.MaxBackoff = r.Period
	}
	if r.MaxInFlight == 0 {
		r.MaxInFlight = DefaultMaxInFlight
	}
	if len(r.Quantiles) == 0 {
		r.Quantiles = DefaultQuantiles
	}
	r.Quantiles = append([]float64(nil), r.Quantiles...)
	for i, q := range r.Quantiles {
		if !(q > 0 && q <= 1) || math.IsNaN(q) {
			return r, fmt.Errorf("quantile %v out of range (0, 1]", q)
		}
		if slices.Contains(r.Quantiles[:i], q) {
			// Its series would get two points per interval.
			return r, fmt.Errorf("quantile %v listed twice", q)
		}
	}
	if r.GaugeMode != GaugeLast && r.GaugeMode != GaugeMean {
		return r, fmt.Errorf("unknown gauge mode %d", int(r.GaugeMode))
	}
	if r.Logger == nil {
		r.Logger = slog.Default()
	}
	return r, nil
}
