package client

import (
	"math"
	"strconv"
)

// appendLog appends the native protocol line "LOG name value ts\n".
func appendLog(dst []byte, p *point) []byte {
	dst = append(dst, "LOG "...)
	dst = append(dst, p.name...)
	dst = append(dst, ' ')
	dst = appendValue(dst, p.v)
	dst = append(dst, ' ')
	dst = appendTimestamp(dst, p.ts)
	return append(dst, '\n')
}

// appendGraphite appends the Graphite plaintext line "name value ts\n".
func appendGraphite(dst []byte, p *point) []byte {
	dst = append(dst, p.name...)
	dst = append(dst, ' ')
	dst = appendValue(dst, p.v)
	dst = append(dst, ' ')
	dst = appendTimestamp(dst, p.ts)
	return append(dst, '\n')
}

// appendValue appends v as an integer when it is one of moderate size,
// else in the shortest form that parses back to v.
func appendValue(dst []byte, v float64) []byte {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return strconv.AppendInt(dst, int64(v), 10)
	}
	return strconv.AppendFloat(dst, v, 'g', -1, 64)
}

// appendTimestamp appends Unix milliseconds ms as Unix seconds: an integer
// when whole, else with up to three decimals ("1700000000.5").
func appendTimestamp(dst []byte, ms int64) []byte {
	if ms < 0 {
		dst = append(dst, '-')
		ms = -ms
	}
	sec, frac := ms/1000, ms%1000
	dst = strconv.AppendInt(dst, sec, 10)
	if frac == 0 {
		return dst
	}
	dst = append(dst, '.', byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
	for dst[len(dst)-1] == '0' {
		dst = dst[:len(dst)-1]
	}
	return dst
}
