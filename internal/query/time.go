package query

import (
	"errors"
	"math"
	"strconv"
	"time"
)

// ErrBadTime reports a timestamp that is neither ISO 8601 nor unix seconds.
var ErrBadTime = errors.New("timestamp is neither ISO 8601 nor unix seconds")

// Bounds of the timestamps vigia accepts: years 1970 to 9999, in unix
// milliseconds. Keeping times in this range keeps every window computation
// far from int64 overflow.
const (
	MinTime int64 = 0
	MaxTime int64 = 253402300799999
)

var isoLayouts = []string{
	"2006-01-02T15:04:05.999999999Z07:00",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02T15:04Z07:00",
	"2006-01-02T15:04",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02",
}

// ParseTime parses b as unix seconds (fractions allowed: "1700000000.25")
// or ISO 8601 ("2022-04-26T00:00:00", no zone meaning UTC, "Z" and offsets
// accepted) and returns unix milliseconds.
func ParseTime(b []byte) (int64, error) {
	if len(b) == 0 {
		return 0, ErrBadTime
	}
	if c := b[0]; c >= '0' && c <= '9' && isNumber(b) {
		ms, ok := parseUnix(b)
		if !ok {
			return 0, ErrBadTime
		}
		return ms, nil
	}
	s := string(b)
	for _, layout := range isoLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			ms := t.UnixMilli()
			if ms < MinTime || ms > MaxTime {
				return 0, ErrBadTime
			}
			return ms, nil
		}
	}
	return 0, ErrBadTime
}

func isNumber(b []byte) bool {
	for _, c := range b {
		if (c < '0' || c > '9') && c != '.' {
			return false
		}
	}
	return true
}

// parseUnix parses digits[.digits] seconds into milliseconds without
// allocating. Sub-millisecond digits are truncated.
func parseUnix(b []byte) (int64, bool) {
	var sec int64
	i := 0
	for ; i < len(b) && b[i] != '.'; i++ {
		sec = sec*10 + int64(b[i]-'0')
		if sec > MaxTime/1000 {
			return 0, false
		}
	}
	ms := sec * 1000
	if i < len(b) {
		i++ // '.'
		if i == len(b) {
			return 0, false
		}
		scale := int64(100)
		for ; i < len(b); i++ {
			if b[i] == '.' {
				return 0, false
			}
			ms += int64(b[i]-'0') * scale
			scale /= 10
		}
	}
	if ms > MaxTime {
		return 0, false
	}
	return ms, true
}

// AppendTime appends ms as an RFC 3339 UTC time with milliseconds.
func AppendTime(dst []byte, ms int64) []byte {
	return time.UnixMilli(ms).UTC().AppendFormat(dst, "2006-01-02T15:04:05.000Z")
}

// ParseFloat parses a finite number; "nan", "inf" and out-of-range values
// are refused.
func ParseFloat(b []byte) (float64, bool) {
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, false
	}
	return v, true
}
