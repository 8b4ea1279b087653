package tsdb

import "sync/atomic"

// blockMeta locates one block of a series in a part.
type blockMeta struct {
	off        uint64
	length     uint32
	count      uint32
	minT, maxT int64
}

// part is an immutable part file, shared by readers with a reference count.
type part struct {
	day        int64
	id, seq    uint64
	size       int64
	minT, maxT int64
	refs       atomic.Int64
}

func (p *part) seriesBlocks(ref SeriesRef) []blockMeta { return nil }

func (p *part) readBlock(bm *blockMeta, d *blockDecoder) ([]int64, []float64, error) {
	return nil, nil, nil
}

type blockDecoder struct{}

// partSet is an immutable list of parts ordered by day, then sequence.
type partSet struct {
	parts []*part
}

func (ps *partSet) acquire() {}
func (ps *partSet) release() {}
