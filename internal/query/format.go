package query

import (
	"math"
	"strconv"
)

// AppendJSONNonFinite appends v as the JSON string "inf", "-inf" or "nan"
// when JSON has no number for it, and reports whether it did: the HTTP
// API and the alert JSON write values so (as Prometheus writes every
// sample value as a string), since a SUM of finite samples can overflow.
func AppendJSONNonFinite(dst []byte, v float64) ([]byte, bool) {
	if !math.IsNaN(v) && !math.IsInf(v, 0) {
		return dst, false
	}
	return strconv.AppendQuote(dst, string(AppendRepr(nil, v))), true
}

// AppendRepr appends v as Python's repr prints a float, which is what the
// original Metrics && Alert Server sent and what its clients parse: the
// shortest digits that round-trip, in positional notation with at least one
// fractional digit ("1.0", "0.5", "123.25") when the decimal exponent is in
// [-4, 16), and in scientific notation otherwise ("1e+16", "1e-05",
// "1.5e-07"). Infinities and NaN print as "inf", "-inf" and "nan".
func AppendRepr(dst []byte, v float64) []byte {
	switch {
	case math.IsNaN(v):
		return append(dst, "nan"...)
	case math.IsInf(v, 1):
		return append(dst, "inf"...)
	case math.IsInf(v, -1):
		return append(dst, "-inf"...)
	}
	// 'e' with precision -1 gives the shortest round-trip digits:
	// [-]d[.ddd]e±XX.
	var buf [32]byte
	e := strconv.AppendFloat(buf[:0], v, 'e', -1, 64)
	neg := e[0] == '-'
	if neg {
		e = e[1:]
	}
	ei := 0
	for e[ei] != 'e' {
		ei++
	}
	mant, exp := e[:ei], e[ei+1:]
	x, _ := strconv.Atoi(string(exp)) // exponent is always well formed here
	// digits without the point
	var digs [24]byte
	d := append(digs[:0], mant[0])
	if len(mant) > 2 {
		d = append(d, mant[2:]...)
	}
	decpt := x + 1 // position of the decimal point relative to the digits
	if neg {
		dst = append(dst, '-')
	}
	if decpt <= -4 || decpt > 16 {
		dst = append(dst, d[0])
		if len(d) > 1 {
			dst = append(dst, '.')
			dst = append(dst, d[1:]...)
		}
		dst = append(dst, 'e')
		if x < 0 {
			dst = append(dst, '-')
			x = -x
		} else {
			dst = append(dst, '+')
		}
		if x < 10 {
			dst = append(dst, '0')
		}
		return strconv.AppendInt(dst, int64(x), 10)
	}
	switch {
	case decpt <= 0:
		dst = append(dst, '0', '.')
		for i := decpt; i < 0; i++ {
			dst = append(dst, '0')
		}
		dst = append(dst, d...)
	case decpt >= len(d):
		dst = append(dst, d...)
		for i := len(d); i < decpt; i++ {
			dst = append(dst, '0')
		}
		dst = append(dst, '.', '0')
	default:
		dst = append(dst, d[:decpt]...)
		dst = append(dst, '.')
		dst = append(dst, d[decpt:]...)
	}
	return dst
}

// AppendPoints appends the values of points as the protocol prints a
// result list: "[v1, v2, ...]". Counts print as integers.
func AppendPoints(dst []byte, op Op, points []Point) []byte {
	dst = append(dst, '[')
	for i, p := range points {
		if i > 0 {
			dst = append(dst, ',', ' ')
		}
		if op == Count {
			dst = strconv.AppendInt(dst, int64(p.Value), 10)
		} else {
			dst = AppendRepr(dst, p.Value)
		}
	}
	return append(dst, ']')
}
