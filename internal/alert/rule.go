package alert

import (
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/vigia-mon/vigia/internal/native/wire"
	"github.com/vigia-mon/vigia/internal/query"
	"github.com/vigia-mon/vigia/internal/tsdb"
)

// MaxSecs is the widest window a rule may aggregate over: 100 years, far
// beyond any retention and far from overflowing millisecond arithmetic.
const MaxSecs = 100 * 365 * 24 * 3600

// cmp is a rule's comparison between a window's value and its limit.
type cmp uint8

const (
	cmpGT cmp = iota // ">", the default: the value exceeds the limit
	cmpLT            // "<"
	cmpGE            // ">="
	cmpLE            // "<="
)

var cmpNames = [...]string{cmpGT: ">", cmpLT: "<", cmpGE: ">=", cmpLE: "<="}

func (c cmp) String() string { return cmpNames[c] }

// parseCmp parses a comparison; "" means ">".
func parseCmp(s string) (cmp, bool) {
	switch s {
	case "", ">":
		return cmpGT, true
	case "<":
		return cmpLT, true
	case ">=":
		return cmpGE, true
	case "<=":
		return cmpLE, true
	}
	return 0, false
}

// crosses reports whether v crosses limit.
func (c cmp) crosses(v, limit float64) bool {
	switch c {
	case cmpLT:
		return v < limit
	case cmpGE:
		return v >= limit
	case cmpLE:
		return v <= limit
	}
	return v > limit
}

// worse reports whether a is further in the direction of the comparison
// than b: larger for ">" and ">=", smaller for "<" and "<=".
func (c cmp) worse(a, b float64) bool {
	if c == cmpLT || c == cmpLE {
		return a < b
	}
	return a > b
}

// state is where a rule stands.
type state uint8

const (
	stateInactive state = iota
	stateFiring
	stateResolved
)

var stateNames = [...]string{stateInactive: "inactive", stateFiring: "firing", stateResolved: "resolved"}

func (s state) String() string { return stateNames[s] }

func parseState(s string) (state, bool) {
	for i, n := range stateNames {
		if n == s {
			return state(i), true
		}
	}
	return 0, false
}

// spec is what a user asks for: everything of a rule but its id and state.
type spec struct {
	metric string
	op     query.Op
	secs   int64
	limit  float64
	cmp    cmp
}

// validate checks a rule as AddRule receives it. Errors wrap ErrBadRule.
func validate(metric string, op query.Op, secs int64, limit float64, cmpStr string) (spec, error) {
	if err := validMetric(metric); err != nil {
		return spec{}, err
	}
	if op.String() == "UNKNOWN" {
		return spec{}, fmt.Errorf("%w: unknown op %d", ErrBadRule, op)
	}
	if secs < 1 || secs > MaxSecs {
		return spec{}, fmt.Errorf("%w: secs must be between 1 and %d, not %d", ErrBadRule, MaxSecs, secs)
	}
	if math.IsNaN(limit) || math.IsInf(limit, 0) {
		return spec{}, fmt.Errorf("%w: limit must be a finite number", ErrBadRule)
	}
	c, ok := parseCmp(cmpStr)
	if !ok {
		return spec{}, fmt.Errorf("%w: comparison must be >, <, >= or <=, not %q", ErrBadRule, cmpStr)
	}
	return spec{metric: metric, op: op, secs: secs, limit: limit, cmp: c}, nil
}

// validMetric applies the native protocol's rule for ids: 1 to 255 bytes of
// UTF-8 with no whitespace or control characters.
func validMetric(s string) error {
	if len(s) == 0 || len(s) > wire.MaxIDLen {
		return fmt.Errorf("%w: metric name must be 1 to %d bytes", ErrBadRule, wire.MaxIDLen)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: metric name is not UTF-8", ErrBadRule)
	}
	if !wire.ValidID([]byte(s)) {
		return fmt.Errorf("%w: metric name holds whitespace or a control character", ErrBadRule)
	}
	return nil
}

// rule is a registered alert and its state. Every field is guarded by
// Monitor.mu.
type rule struct {
	id int64
	spec
	created int64 // unix ms

	st        state
	since     int64 // unix ms of the last transition (created while inactive)
	activeAt  int64 // unix ms the current or last firing period began; 0 never
	lastCheck int64 // unix ms of the last check that had samples; 0 never
	hasValue  bool
	lastValue float64 // the most extreme window value of the last check with samples
	lastWin   int64   // that window's start, unix ms
	breaching int     // windows crossing the limit in the last check with samples

	watch *watched // the metric's shared series list
}

// watched is a metric name watched by at least one rule. Guarded by
// Monitor.mu.
type watched struct {
	name  string
	refs  []tsdb.SeriesRef // sorted
	rules []*rule
}

// name is the alert's human name, used as Alertmanager's alertname:
// "cpu.load MAX 60s > 90".
func (r *rule) name() string {
	b := make([]byte, 0, len(r.metric)+32)
	b = append(b, r.metric...)
	b = append(b, ' ')
	b = append(b, r.op.String()...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, r.secs, 10)
	b = append(b, 's', ' ')
	b = append(b, r.cmp.String()...)
	b = append(b, ' ')
	b = query.AppendRepr(b, r.limit)
	return string(b)
}
