package tsdb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// SeriesRef identifies a series. Refs start at 1, are allocated in order and
// are stable for the life of the data directory.
type SeriesRef uint64

// Label is one name=value pair of a series.
type Label struct{ Name, Value string }

// Sample is one value of a series at a time in unix milliseconds.
type Sample struct {
	Ref SeriesRef
	T   int64 // unix milliseconds
	V   float64
}

// memSeries is a series: its identity and its head samples.
type memSeries struct {
	// The committer's, first, in one cache line with n: the slices of the
	// chunk sample n goes into, and the time of the last sample. An
	// append touches this line and the chunk's, and follows no pointer.
	n     atomic.Int64
	curT  []int64
	curV  []float64
	lastT int64

	ref    SeriesRef
	name   string
	labels []Label

	// The active head, in arrival order, in chunks (head.go). Only the
	// committer appends to it, without a lock: it writes a sample past the
	// first n, then stores n+1; a new chunk is in list before n grows past
	// its start, and a full list is replaced by a longer copy, stored in
	// list first. Readers hold mu (which keeps a flush from freezing the
	// head meanwhile), load n, then list, and read the first n samples.
	// unsorted is set before n grows once a sample is older than the one
	// before it.
	list     atomic.Pointer[chunkList]
	unsorted atomic.Bool

	mu sync.Mutex
	// Frozen head: the first fn samples of flist, sorted, being written
	// into parts by flush generation fgen; visible to readers while
	// fgen > db.published. Flushes change it holding mu.
	flist *chunkList
	fn    int64
	fgen  uint64
	// spare is the emptied chunk list of the last flushed generation, for
	// the next one; idle counts the freezes in a row that found no sample.
	// Only flushes (under flushMu) use them.
	spare *chunkList
	idle  uint8
}

// nameEntry holds the series sharing one name.
type nameEntry struct {
	plain    *memSeries            // the series without labels
	byLabels map[string]*memSeries // labels key -> series
	refs     []SeriesRef
}

// seriesIndex maps names and labels to series. Safe for concurrent use.
type seriesIndex struct {
	// plain maps the name of every series without labels (all those the
	// native protocol creates) to it, for lookups without a lock: the map
	// is never changed, but replaced by a larger copy. Series created
	// since the copy are in recent, under mu, until the next one, made
	// when recent holds more than an eighth of the copy, or when lookups
	// have gone to recent promoteAfter times (so that they stop taking
	// the lock soon after series stop being created). Copies cost an
	// amortized constant per series.
	plain      atomic.Pointer[map[string]*memSeries]
	recent     map[string]*memSeries
	recentHits int

	mu     sync.RWMutex
	byName map[string]*nameEntry
	byRef  []*memSeries // ref-1 -> series; append-only
	holes  int          // nil entries of byRef
	names  []string     // sorted names, nil when stale
	// postings: label name -> label value -> refs, ascending
	postings map[string]map[string][]SeriesRef
}

// promoteAfter is how many lookups answered from seriesIndex.recent make
// the index copy its plain map.
const promoteAfter = 256

func newSeriesIndex() *seriesIndex {
	x := &seriesIndex{
		byName:   make(map[string]*nameEntry),
		postings: make(map[string]map[string][]SeriesRef),
		recent:   make(map[string]*memSeries),
	}
	x.plain.Store(&map[string]*memSeries{})
	return x
}

// lookupPlain finds the series without labels named name. It does not
// allocate, and takes no lock unless the series is recent or missing.
func (x *seriesIndex) lookupPlain(name []byte) *memSeries {
	if s := (*x.plain.Load())[string(name)]; s != nil {
		return s
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	s := x.recent[string(name)]
	if s == nil {
		// A copy made since the load above may hold it, and recent no
		// longer does.
		return (*x.plain.Load())[string(name)]
	}
	if x.recentHits++; x.recentHits >= promoteAfter {
		x.promoteLocked()
	}
	return s
}

// promoteLocked replaces the plain map by a copy that also holds the
// recent series. Callers hold x.mu.
func (x *seriesIndex) promoteLocked() {
	old := *x.plain.Load()
	m := make(map[string]*memSeries, len(old)+len(x.recent))
	maps.Copy(m, old)
	maps.Copy(m, x.recent)
	x.plain.Store(&m)
	clear(x.recent)
	x.recentHits = 0
}

// labelsSorted reports whether labels are sorted by name.
func labelsSorted(ls []Label) bool {
	for i := 1; i < len(ls); i++ {
		if ls[i].Name < ls[i-1].Name {
			return false
		}
	}
	return true
}

// sortLabels sorts ls in place by name (insertion sort: label sets are
// small and sort.Slice would allocate).
func sortLabels(ls []Label) {
	for i := 1; i < len(ls); i++ {
		for j := i; j > 0 && ls[j].Name < ls[j-1].Name; j-- {
			ls[j], ls[j-1] = ls[j-1], ls[j]
		}
	}
}

// appendLabelsKey appends the canonical key of sorted labels.
func appendLabelsKey(dst []byte, ls []Label) []byte {
	for _, l := range ls {
		dst = binary.AppendUvarint(dst, uint64(len(l.Name)))
		dst = append(dst, l.Name...)
		dst = binary.AppendUvarint(dst, uint64(len(l.Value)))
		dst = append(dst, l.Value...)
	}
	return dst
}

// lookup finds a series without allocating when labels are few and sorted.
func (x *seriesIndex) lookup(name []byte, labels []Label) *memSeries {
	if len(labels) == 0 {
		return x.lookupPlain(name)
	}
	var lbuf [8]Label
	if !labelsSorted(labels) {
		var ls []Label
		if len(labels) <= len(lbuf) {
			ls = lbuf[:len(labels)]
		} else {
			ls = make([]Label, len(labels))
		}
		copy(ls, labels)
		sortLabels(ls)
		labels = ls
	}
	var kbuf [256]byte
	key := appendLabelsKey(kbuf[:0], labels)
	x.mu.RLock()
	defer x.mu.RUnlock()
	e := x.byName[string(name)]
	if e == nil {
		return nil
	}
	return e.byLabels[string(key)]
}

// add inserts a series with the given ref (used by replay and by create).
// Labels must be sorted and owned by the index. It returns false when ref or
// the identity already exists. Callers hold x.mu.
func (x *seriesIndex) addLocked(ref SeriesRef, name string, labels []Label) (*memSeries, bool) {
	if ref == 0 {
		return nil, false
	}
	if int(ref) <= len(x.byRef) && x.byRef[ref-1] != nil {
		return x.byRef[ref-1], false
	}
	e := x.byName[name]
	if e == nil {
		e = &nameEntry{}
		x.byName[name] = e
		x.names = nil
	}
	var key string
	if len(labels) == 0 {
		if e.plain != nil {
			return e.plain, false
		}
	} else {
		key = string(appendLabelsKey(nil, labels))
		if s := e.byLabels[key]; s != nil {
			return s, false
		}
	}
	s := &memSeries{ref: ref, name: name, labels: labels}
	if len(labels) == 0 {
		e.plain = s
		x.recent[name] = s
		if len(x.recent) > len(*x.plain.Load())/8+64 {
			x.promoteLocked()
		}
	} else {
		if e.byLabels == nil {
			e.byLabels = make(map[string]*memSeries)
		}
		e.byLabels[key] = s
	}
	e.refs = append(e.refs, ref)
	for _, l := range labels {
		vals := x.postings[l.Name]
		if vals == nil {
			vals = make(map[string][]SeriesRef)
			x.postings[l.Name] = vals
		}
		vals[l.Value] = insertRef(vals[l.Value], ref)
	}
	if int(ref) <= len(x.byRef) {
		x.holes-- // its record came after those of higher refs
	}
	for int(ref) > len(x.byRef) {
		if int(ref) > len(x.byRef)+1 {
			x.holes++
		}
		x.byRef = append(x.byRef, nil)
	}
	x.byRef[ref-1] = s
	return s, true
}

// maxRefHoles bounds the refs below the highest one that have no series.
// Refs are allocated one after the other, and a ref is left without a
// series only when the WAL write of its record failed as the DB closed (a
// full disk), so a store has few such holes. A record with a ref past
// that bound is corrupt: it would make the index allocate a slot for every
// ref below it.
const maxRefHoles = 1 << 20

// addRecord adds the series a series record (of the WAL or the series
// file) describes.
func (x *seriesIndex) addRecord(body []byte) error {
	ref, name, labels, err := decodeSeriesRecord(body)
	if err != nil {
		return err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if n := uint64(len(x.byRef)); uint64(ref) > n+1 {
		if uint64(ref)-n-1 > uint64(maxRefHoles-x.holes) {
			return fmt.Errorf("%w: series record: ref %d, and %d series before it", ErrCorrupt, ref, n)
		}
	}
	x.addLocked(ref, name, labels)
	return nil
}

// loadRecords adds the series of the series file data to the index. It
// returns the length of the intact prefix of data, which ends at a torn or
// zeroed tail, and an error if a record decodes but is not a valid series
// record.
func (x *seriesIndex) loadRecords(data []byte) (int, error) {
	n, err := scanSegment(data, func(typ byte, body []byte) error {
		if typ != recSeries {
			return fmt.Errorf("%w: series index record type %d", ErrCorrupt, typ)
		}
		return x.addRecord(body)
	})
	if errors.Is(err, errTorn) || errors.Is(err, errChecksum) {
		err = nil
	}
	return n, err
}

// snapshot returns the ref table. Entries below its length never change, so
// the caller may read them without the lock.
func (x *seriesIndex) snapshot() []*memSeries {
	x.mu.RLock()
	s := x.byRef
	x.mu.RUnlock()
	return s
}

func (x *seriesIndex) get(ref SeriesRef) *memSeries { return seriesAt(x.snapshot(), ref) }

// seriesAt returns the series of ref in refs (a snapshot), or nil for a
// ref out of range or without a series (a hole).
func seriesAt(refs []*memSeries, ref SeriesRef) *memSeries {
	if ref == 0 || uint64(ref) > uint64(len(refs)) {
		return nil
	}
	return refs[ref-1]
}

// count returns how many series the index holds: the refs without the
// holes among them.
func (x *seriesIndex) count() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.byRef) - x.holes
}

func (x *seriesIndex) len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.byRef)
}

func (x *seriesIndex) refsByName(name []byte) []SeriesRef {
	x.mu.RLock()
	defer x.mu.RUnlock()
	e := x.byName[string(name)]
	if e == nil {
		return nil
	}
	return append([]SeriesRef(nil), e.refs...)
}

// insertRef adds ref to an ascending list (refs mostly come in order).
func insertRef(refs []SeriesRef, ref SeriesRef) []SeriesRef {
	i := len(refs)
	for i > 0 && refs[i-1] > ref {
		i--
	}
	refs = append(refs, 0)
	copy(refs[i+1:], refs[i:])
	refs[i] = ref
	return refs
}

func (x *seriesIndex) namesWithPrefix(prefix string) []string {
	x.mu.RLock()
	names := x.names
	x.mu.RUnlock()
	if names == nil {
		// Sorted without the lock: with a million names that takes a
		// second, during which no series could be created. Names are
		// never removed, so the same count means the same names.
		x.mu.RLock()
		names = make([]string, 0, len(x.byName))
		for n := range x.byName {
			names = append(names, n)
		}
		x.mu.RUnlock()
		sort.Strings(names)
		x.mu.Lock()
		if x.names == nil && len(x.byName) == len(names) {
			x.names = names
		}
		x.mu.Unlock()
	}
	i := sort.SearchStrings(names, prefix)
	j := i
	for j < len(names) && strings.HasPrefix(names[j], prefix) {
		j++
	}
	return names[i:j:j] // the list is replaced, never changed, when names come
}

// Lookup returns the ref of an existing series.
func (db *DB) Lookup(name []byte, labels []Label) (SeriesRef, bool) {
	if s := db.idx.lookup(name, labels); s != nil {
		return s.ref, true
	}
	return 0, false
}

// NumSeries returns how many series the index holds.
func (db *DB) NumSeries() int { return db.idx.count() }

// RefsByName returns every series with that name, whatever its labels, in
// creation order. The caller owns the returned slice.
func (db *DB) RefsByName(name []byte) []SeriesRef {
	return db.idx.refsByName(name)
}

// SeriesInfo returns a series' name and labels (sorted by name). The
// returned labels must not be modified.
func (db *DB) SeriesInfo(ref SeriesRef) (name string, labels []Label, ok bool) {
	s := db.idx.get(ref)
	if s == nil {
		return "", nil, false
	}
	return s.name, s.labels, true
}

// Names returns the sorted distinct series names that start with prefix.
// The slice is shared with other callers and must not be modified; it is
// not a copy, so that listing a million names costs nothing.
func (db *DB) Names(prefix string) []string {
	return db.idx.namesWithPrefix(prefix)
}

// Postings returns the refs of every series with the label name=value, in
// ascending order. The caller owns the returned slice.
func (db *DB) Postings(name, value string) []SeriesRef {
	x := db.idx
	x.mu.RLock()
	defer x.mu.RUnlock()
	return append([]SeriesRef(nil), x.postings[name][value]...)
}

// LabelValues returns the sorted distinct values of label name.
func (db *DB) LabelValues(name string) []string {
	x := db.idx
	x.mu.RLock()
	vals := make([]string, 0, len(x.postings[name]))
	for v := range x.postings[name] {
		vals = append(vals, v)
	}
	x.mu.RUnlock()
	sort.Strings(vals)
	return vals
}
