package query

import (
	"bytes"
	"errors"
	"math"
	"strconv"
	"time"
)

// ErrBadTime reports a timestamp that is neither ISO 8601 nor unix seconds.
var ErrBadTime = errors.New("timestamp is neither ISO 8601 nor unix seconds")

// ErrTimeRange reports unix seconds past the year 9999, most often unix
// milliseconds (as export writes them) given for seconds.
var ErrTimeRange = errors.New("timestamp is past the year 9999 as unix seconds (milliseconds? divide by 1000)")

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
		return parseUnix(b)
	}
	if ms, ok := parseISO(b); ok {
		return ms, nil
	}
	return parseISOSlow(b)
}

// parseISOSlow parses the ISO 8601 forms parseISO does not, with package
// time. It allocates; parseISO covers every form clients send in practice.
func parseISOSlow(b []byte) (int64, error) {
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

// parseISO parses YYYY-MM-DD, optionally followed by 'T' or ' ' and
// hh:mm[:ss[.fraction]] and a zone (Z, ±hh:mm or ±hhmm; none means UTC),
// without allocating. Fractions below the millisecond are truncated.
func parseISO(b []byte) (int64, bool) {
	if len(b) < 10 || b[4] != '-' || b[7] != '-' {
		return 0, false
	}
	y, ok1 := digits(b[0:4])
	mo, ok2 := digits(b[5:7])
	d, ok3 := digits(b[8:10])
	if !ok1 || !ok2 || !ok3 || y < 1 || mo < 1 || mo > 12 || d < 1 || d > daysIn(y, mo) {
		return 0, false
	}
	var h, mi, sec, frac, off int64
	i := 10
	if i < len(b) {
		if b[i] != 'T' && b[i] != ' ' || len(b) < i+6 || b[i+3] != ':' {
			return 0, false
		}
		var okh, okm bool
		h, okh = digits(b[i+1 : i+3])
		mi, okm = digits(b[i+4 : i+6])
		if !okh || !okm || h > 23 || mi > 59 {
			return 0, false
		}
		i += 6
		if i < len(b) && b[i] == ':' {
			var oks bool
			if len(b) < i+3 {
				return 0, false
			}
			if sec, oks = digits(b[i+1 : i+3]); !oks || sec > 59 {
				return 0, false
			}
			i += 3
			if i < len(b) && (b[i] == '.' || b[i] == ',') {
				i++
				n := 0
				for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
					if n < 3 {
						frac = frac*10 + int64(b[i]-'0')
					}
					n++
				}
				if n == 0 {
					return 0, false
				}
				for ; n < 3; n++ {
					frac *= 10
				}
			}
		}
		if i < len(b) {
			switch b[i] {
			case 'Z':
				i++
			case '+', '-':
				z := b[i+1:]
				var zh, zm int64
				var okzh, okzm bool
				switch {
				case len(z) == 5 && z[2] == ':':
					zh, okzh = digits(z[0:2])
					zm, okzm = digits(z[3:5])
				case len(z) == 4:
					zh, okzh = digits(z[0:2])
					zm, okzm = digits(z[2:4])
				}
				if !okzh || !okzm || zh > 23 || zm > 59 {
					return 0, false
				}
				off = (zh*60 + zm) * 60000
				if b[i] == '-' {
					off = -off
				}
				i = len(b)
			default:
				return 0, false
			}
		}
	}
	if i != len(b) {
		return 0, false
	}
	ms := (((daysFromCivil(y, mo, d)*24+h)*60+mi)*60+sec)*1000 + frac - off
	if ms < MinTime || ms > MaxTime {
		return 0, false
	}
	return ms, true
}

// digits parses a fixed-width run of decimal digits.
func digits(b []byte) (int64, bool) {
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, true
}

func daysIn(y, m int64) int64 {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil returns the days from 1970-01-01 to y-m-d (proleptic
// Gregorian, y >= 1), after Howard Hinnant's days_from_civil.
func daysFromCivil(y, m, d int64) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
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
func parseUnix(b []byte) (int64, error) {
	var sec int64
	i := 0
	tooLarge := false // keep reading: a malformed number is ErrBadTime
	for ; i < len(b) && b[i] != '.'; i++ {
		if sec = sec*10 + int64(b[i]-'0'); sec > MaxTime/1000 {
			tooLarge, sec = true, 0
		}
	}
	ms := sec * 1000
	if i < len(b) {
		i++ // '.'
		if i == len(b) {
			return 0, ErrBadTime
		}
		scale := int64(100)
		for ; i < len(b); i++ {
			if b[i] == '.' {
				return 0, ErrBadTime
			}
			ms += int64(b[i]-'0') * scale
			scale /= 10
		}
	}
	if tooLarge || ms > MaxTime {
		return 0, ErrTimeRange
	}
	return ms, nil
}

// AppendTime appends ms as an RFC 3339 UTC time with milliseconds.
func AppendTime(dst []byte, ms int64) []byte {
	return time.UnixMilli(ms).UTC().AppendFormat(dst, "2006-01-02T15:04:05.000Z")
}

// ParseFloat parses a finite number; "nan", "inf" and out-of-range values
// are refused.
func ParseFloat(b []byte) (float64, bool) {
	if v, ok := parseDecimal(b); ok {
		return v, true
	}
	if bytes.IndexByte(b, 'x') >= 0 || bytes.IndexByte(b, 'X') >= 0 {
		return 0, false // hexadecimal floats: Python's float() refuses them
	}
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, false
	}
	return v, true
}

// pow10 holds the powers of ten that float64 represents exactly.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// parseDecimal parses the plain decimals metrics mostly are ("-12.34",
// "98765") when the result is exact by Clinger's fast path: a mantissa below
// 2^53 divided by an exactly representable power of ten is correctly
// rounded. It reports false for anything else, which strconv then parses.
func parseDecimal(b []byte) (float64, bool) {
	i := 0
	neg := false
	if len(b) > 0 && (b[0] == '-' || b[0] == '+') {
		neg = b[0] == '-'
		i++
	}
	var m uint64
	digits, frac := 0, -1
	for ; i < len(b); i++ {
		c := b[i]
		switch {
		case c >= '0' && c <= '9':
			m = m*10 + uint64(c-'0')
			digits++
			if frac >= 0 {
				frac++
			}
		case c == '.' && frac < 0:
			frac = 0
		default:
			return 0, false
		}
	}
	if digits == 0 || digits > 15 || frac == 0 {
		return 0, false
	}
	v := float64(m)
	if frac > 0 {
		v /= pow10[frac]
	}
	if neg {
		v = -v
	}
	return v, true
}
