package alert

import "errors"

// ErrMetricNotFound is returned by AddRule when the metric name maps to no
// series. The native protocol answers it with "404 Metric Not Found".
var ErrMetricNotFound = errors.New("metric not found")

// ErrNotFound is returned by DeleteRule (and the HTTP API) for an alert id
// that is not registered.
var ErrNotFound = errors.New("alert not found")

// ErrBadRule is returned, wrapped with the reason, by AddRule for a rule
// that cannot be checked: an empty or malformed metric name, an unknown op,
// secs below 1 or above MaxSecs, a limit that is not a finite number, or a
// comparison other than "", ">", "<", ">=" and "<=". Nothing is changed.
var ErrBadRule = errors.New("bad alert rule")

// ErrTooManyRules is returned by AddRule when Options.MaxRules rules are
// registered already. Nothing is changed.
var ErrTooManyRules = errors.New("too many alert rules")

// errRunning is returned by a second call of Run.
var errRunning = errors.New("alert monitor is already running")
