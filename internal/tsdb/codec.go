package tsdb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
)

// Block encoding (before the optional zstd pass, see docs/format/parts.md):
//
//	uvarint n | timestamps | values
//
// timestamps: varint t0; if n >= 2 varint (t1-t0) and an int column of the
// n-2 delta-of-deltas (empty when n == 2).
// values: kind byte; kindDecimal: byte e, varint m0, int column of the n-1
// mantissa deltas, value i = float64(m_i) / 10^e; kindXOR: n x 8 bytes,
// the first value's bits then each value's bits XOR the previous.
// int column: mode byte; colFOR: varint min, byte width, n*width bits
// (LSB first) of v-min; colVarint: n zigzag uvarints.
const (
	kindDecimal = 0
	kindXOR     = 1
	colFOR      = 0
	colVarint   = 1
	maxDecimalE = 18
	// maxBlockSamples bounds a block; decoders reject larger counts.
	maxBlockSamples = 8192
)

var errBlock = fmt.Errorf("%w: bad block", ErrCorrupt)

// blockEncoder holds scratch buffers for encoding blocks. The zero value is
// ready to use; it is not safe for concurrent use.
type blockEncoder struct {
	ints []int64
	ats  []int64 // archive blocks
	avs  []float64
}

// appendBlock appends the encoding of ts (sorted) and vs to dst.
func (e *blockEncoder) appendBlock(dst []byte, ts []int64, vs []float64) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(ts)))
	if len(ts) == 0 {
		return dst
	}
	dst = e.appendTimestamps(dst, ts)
	return e.appendValues(dst, vs)
}

// appendTimestamps appends the timestamp column of a block (len(ts) >= 1).
func (e *blockEncoder) appendTimestamps(dst []byte, ts []int64) []byte {
	n := len(ts)
	dst = binary.AppendVarint(dst, ts[0])
	if n >= 2 {
		d := ts[1] - ts[0]
		dst = binary.AppendVarint(dst, d)
		ints := e.ints[:0]
		for i := 2; i < n; i++ {
			nd := ts[i] - ts[i-1]
			ints = append(ints, nd-d)
			d = nd
		}
		e.ints = ints
		dst = appendIntColumn(dst, ints)
	}
	return dst
}

// blockExponent returns the smallest e such that every v is float64(m)/10^e
// for an integer m, or -1.
func blockExponent(vs []float64) int {
	e := 0
	for i := 0; i < len(vs); {
		if _, ok := decimalAt(vs[i], e); ok {
			i++
			continue
		}
		// Find this value's exponent, then check the earlier values again.
		for {
			e++
			if e > maxDecimalE {
				return -1
			}
			if _, ok := decimalAt(vs[i], e); ok {
				break
			}
		}
		i = 0
	}
	return e
}

func (e *blockEncoder) appendValues(dst []byte, vs []float64) []byte {
	if ms, exp := e.decimals(vs); exp >= 0 {
		dst = append(dst, kindDecimal, byte(exp))
		dst = binary.AppendVarint(dst, ms[0])
		// The deltas, in place: ms[i] becomes ms[i+1] - ms[i].
		for i := range len(ms) - 1 {
			ms[i] = ms[i+1] - ms[i]
		}
		return appendIntColumn(dst, ms[:len(ms)-1])
	}
	dst = append(dst, kindXOR)
	var prev uint64
	for _, v := range vs {
		b := math.Float64bits(v)
		dst = binary.LittleEndian.AppendUint64(dst, b^prev)
		prev = b
	}
	return dst
}

// decimals returns the mantissas of vs (len(vs) >= 1) at their block
// exponent, the one blockExponent finds, in e.ints, and the exponent; or
// -1. It finds them in one pass: when a value needs a larger exponent, the
// mantissas before it are scaled by the power of ten in between, which
// gives what decimalAt would at the larger exponent while they stay below
// 2^52; beyond that it starts over with blockExponent.
func (e *blockEncoder) decimals(vs []float64) ([]int64, int) {
	ms := e.ints[:0]
	exp := 0
	for _, v := range vs {
		m, ok := decimalAt(v, exp)
		if !ok {
			ne := exp + 1
			for ; ne <= maxDecimalE; ne++ {
				if m, ok = decimalAt(v, ne); ok {
					break
				}
			}
			if !ok {
				e.ints = ms
				return nil, -1
			}
			scale := int64(pow10[ne-exp])
			limit := int64(1<<52) / scale
			for j, mj := range ms {
				if mj >= limit || mj <= -limit {
					e.ints = ms
					return e.decimalsAt(vs, blockExponent(vs))
				}
				ms[j] = mj * scale
			}
			exp = ne
		}
		ms = append(ms, m)
	}
	e.ints = ms
	return ms, exp
}

// decimalsAt returns the mantissas of vs at exponent exp, or -1 if exp is.
func (e *blockEncoder) decimalsAt(vs []float64, exp int) ([]int64, int) {
	if exp < 0 {
		return nil, -1
	}
	ms := e.ints[:0]
	for _, v := range vs {
		m, _ := decimalAt(v, exp)
		ms = append(ms, m)
	}
	e.ints = ms
	return ms, exp
}

func uvarintLen(x uint64) int { return (bits.Len64(x|1) + 6) / 7 }

// appendIntColumn appends vals as frame-of-reference bit-packed integers or
// as zigzag varints, whichever is smaller.
func appendIntColumn(dst []byte, vals []int64) []byte {
	if len(vals) == 0 {
		return append(dst, colFOR, 0, 0)
	}
	lo, hi := vals[0], vals[0]
	vlen := 0
	for _, v := range vals {
		lo = min(lo, v)
		hi = max(hi, v)
		vlen += uvarintLen(zigzag(v))
	}
	w := uint(bits.Len64(uint64(hi - lo)))
	forLen := uvarintLen(zigzag(lo)) + 1 + (len(vals)*int(w)+7)/8
	if vlen < forLen {
		dst = append(dst, colVarint)
		for _, v := range vals {
			dst = binary.AppendUvarint(dst, zigzag(v))
		}
		return dst
	}
	dst = append(dst, colFOR)
	dst = binary.AppendVarint(dst, lo)
	dst = append(dst, byte(w))
	return packBits(dst, vals, lo, w)
}

// packBits appends (v-lo) of every v in w bits each, least significant first.
func packBits(dst []byte, vals []int64, lo int64, w uint) []byte {
	if w == 0 {
		return dst
	}
	var acc uint64
	var nb uint
	for _, v := range vals {
		u := uint64(v - lo)
		acc |= u << nb
		if nb+w >= 64 {
			dst = binary.LittleEndian.AppendUint64(dst, acc)
			acc = u >> (64 - nb) // Go: a shift by 64 yields 0
			nb = nb + w - 64
		} else {
			nb += w
		}
	}
	for nb > 0 {
		dst = append(dst, byte(acc))
		acc >>= 8
		if nb >= 8 {
			nb -= 8
		} else {
			nb = 0
		}
	}
	return dst
}

// decodeIntColumn decodes n integers from src into dst (len n) and returns
// the rest of src.
func decodeIntColumn(src []byte, dst []int64) ([]byte, error) {
	n := len(dst)
	if len(src) < 1 {
		return nil, errBlock
	}
	mode := src[0]
	src = src[1:]
	switch mode {
	case colVarint:
		for i := range dst {
			u, k := binary.Uvarint(src)
			if k <= 0 {
				return nil, errBlock
			}
			dst[i] = unzigzag(u)
			src = src[k:]
		}
		return src, nil
	case colFOR:
		lo, k := binary.Varint(src)
		if k <= 0 || len(src) < k+1 {
			return nil, errBlock
		}
		w := uint(src[k])
		src = src[k+1:]
		if w > 64 {
			return nil, errBlock
		}
		nbytes := (uint64(n)*uint64(w) + 7) / 8
		if uint64(len(src)) < nbytes {
			return nil, errBlock
		}
		unpackBits(src[:nbytes], dst, lo, w)
		return src[nbytes:], nil
	}
	return nil, errBlock
}

// unpackBits is the inverse of packBits; src holds exactly the packed bytes.
func unpackBits(src []byte, dst []int64, lo int64, w uint) {
	if w == 0 {
		for i := range dst {
			dst[i] = lo
		}
		return
	}
	mask := uint64(1)<<w - 1
	pos := uint(0)
	i := 0
	if w <= 56 {
		// Fast path: one unaligned 64-bit load per value while 8 bytes remain.
		for ; i < len(dst) && int(pos>>3)+8 <= len(src); i++ {
			word := binary.LittleEndian.Uint64(src[pos>>3:])
			dst[i] = lo + int64((word>>(pos&7))&mask)
			pos += w
		}
	}
	for ; i < len(dst); i++ {
		var v uint64
		var got uint
		idx, shift := pos>>3, pos&7
		for got < w {
			v |= (uint64(src[idx]) >> shift) << got
			got += 8 - shift
			shift = 0
			idx++
		}
		dst[i] = lo + int64(v&mask)
		pos += w
	}
}

// decodeBlockInto decodes an encoded block (as produced by appendBlock) into
// ts and vs, reusing their capacity; ints is scratch.
func decodeBlockInto(src []byte, ts []int64, vs []float64, ints []int64) ([]int64, []float64, []int64, error) {
	un, k := binary.Uvarint(src)
	if k <= 0 || un > maxBlockSamples {
		return ts[:0], vs[:0], ints, errBlock
	}
	n := int(un)
	src = src[k:]
	ts = growInt64(ts, n)
	vs = growFloat64(vs, n)
	if n == 0 {
		if len(src) != 0 {
			return ts, vs, ints, errBlock
		}
		return ts, vs, ints, nil
	}
	var err error
	if src, err = decodeTimestamps(src, ts); err != nil {
		return ts, vs, ints, err
	}
	if src, err = decodeValues(src, vs, &ints); err != nil {
		return ts, vs, ints, err
	}
	if len(src) != 0 {
		return ts, vs, ints, errors.Join(errBlock, fmt.Errorf("%d trailing bytes", len(src)))
	}
	return ts, vs, ints, nil
}

// decodeTimestamps decodes a timestamp column of len(ts) >= 1 values.
func decodeTimestamps(src []byte, ts []int64) ([]byte, error) {
	t0, k := binary.Varint(src)
	if k <= 0 {
		return nil, errBlock
	}
	src = src[k:]
	ts[0] = t0
	if len(ts) >= 2 {
		d, k := binary.Varint(src)
		if k <= 0 {
			return nil, errBlock
		}
		src = src[k:]
		t := t0 + d
		ts[1] = t
		dods := ts[2:]
		var err error
		if src, err = decodeIntColumn(src, dods); err != nil {
			return nil, err
		}
		for i := range dods {
			d += dods[i]
			t += d
			dods[i] = t
		}
	}
	return src, nil
}

// decodeValues decodes a value column of len(vs) >= 1 values; ints is
// scratch.
func decodeValues(src []byte, vs []float64, ints *[]int64) ([]byte, error) {
	n := len(vs)
	if len(src) < 1 {
		return nil, errBlock
	}
	kind := src[0]
	src = src[1:]
	switch kind {
	case kindDecimal:
		if len(src) < 1 || src[0] > maxDecimalE {
			return nil, errBlock
		}
		p := pow10[src[0]]
		m, k := binary.Varint(src[1:])
		if k <= 0 {
			return nil, errBlock
		}
		src = src[1+k:]
		*ints = growInt64(*ints, n-1)
		d := *ints
		var err error
		if src, err = decodeIntColumn(src, d); err != nil {
			return nil, err
		}
		vs[0] = float64(m) / p
		for i, x := range d {
			m += x
			vs[i+1] = float64(m) / p
		}
	case kindXOR:
		if len(src) < 8*n {
			return nil, errBlock
		}
		var prev uint64
		for i := range vs {
			prev ^= binary.LittleEndian.Uint64(src[8*i:])
			vs[i] = math.Float64frombits(prev)
		}
		src = src[8*n:]
	default:
		return nil, errBlock
	}
	return src, nil
}
