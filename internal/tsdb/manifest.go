package tsdb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The manifest names the live parts and the first WAL segment they do not
// cover (docs/format/index.md). It is replaced atomically (temp, fsync,
// rename, fsync dir), so a flush or merge takes effect all at once:
//
//	magic "VGMANIF2" | uvarint walCut | uvarint nextID | varint archivedTo |
//	uvarint nparts |
//	nparts x (uvarint kind | varint bucket | uvarint id | uvarint seq) |
//	u32 CRC-32C of all before
const (
	manifestMagic = "VGMANIF2"
	manifestName  = "MANIFEST"
	seriesName    = "series"
	partsDirName  = "parts"
	dayMillis     = 24 * 60 * 60 * 1000
)

type manifestEntry struct {
	kind    uint8
	bucket  int64
	id, seq uint64
}

type manifest struct {
	walCut, nextID uint64
	archivedTo     int64 // windows before this time are served from archives
	parts          []manifestEntry
}

func encodeManifest(m manifest) []byte {
	b := []byte(manifestMagic)
	b = binary.AppendUvarint(b, m.walCut)
	b = binary.AppendUvarint(b, m.nextID)
	b = binary.AppendVarint(b, m.archivedTo)
	b = binary.AppendUvarint(b, uint64(len(m.parts)))
	for _, e := range m.parts {
		b = binary.AppendUvarint(b, uint64(e.kind))
		b = binary.AppendVarint(b, e.bucket)
		b = binary.AppendUvarint(b, e.id)
		b = binary.AppendUvarint(b, e.seq)
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func decodeManifest(b []byte) (manifest, error) {
	var m manifest
	if len(b) < len(manifestMagic)+4 || string(b[:len(manifestMagic)]) != manifestMagic {
		if magic := string(b[:min(len(b), len(manifestMagic))]); len(magic) == len(manifestMagic) &&
			strings.HasPrefix(magic, manifestMagic[:len(manifestMagic)-1]) {
			// Not damage: another vigia wrote this data dir.
			return m, fmt.Errorf("manifest is in format %q, and this vigia reads %q: the data dir was written by another version of vigia; run that one", magic, manifestMagic)
		}
		return m, fmt.Errorf("%w: manifest: bad magic", ErrCorrupt)
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		return m, fmt.Errorf("%w: manifest: checksum mismatch", ErrCorrupt)
	}
	r := byteReader{b: body[len(manifestMagic):]}
	m.walCut = r.uvarint()
	m.nextID = r.uvarint()
	m.archivedTo = r.varint()
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		return m, fmt.Errorf("%w: manifest: %d parts", ErrCorrupt, n)
	}
	for i := uint64(0); i < n && r.err == nil; i++ {
		kind := r.uvarint()
		if kind >= numKinds {
			return m, fmt.Errorf("%w: manifest: part kind %d", ErrCorrupt, kind)
		}
		m.parts = append(m.parts, manifestEntry{kind: uint8(kind), bucket: r.varint(), id: r.uvarint(), seq: r.uvarint()})
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%w: manifest: trailing bytes", ErrCorrupt)
	}
	return m, r.err
}

// writeFileAtomic writes a file as temp, fsync, rename, fsync dir.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	err = syncDir(filepath.Dir(path))
	if err == nil && testHookDirSync != nil {
		err = testHookDirSync(path)
	}
	if err != nil {
		return fmt.Errorf("%w: %v", errDirUnsynced, err)
	}
	return nil
}

// releaseReplaced lets go of parts a new manifest no longer names: their
// files are removed once no reader holds them, unless a manifest's
// directory sync failed (keepFiles), when the manifest before, which names
// them, may still be the one found after a power loss.
func (db *DB) releaseReplaced(parts []*part) {
	keep := db.keepFiles.Load()
	for _, p := range parts {
		p.obsolete.Store(!keep)
		p.decRef()
	}
}

// errDirUnsynced: writeFileAtomic renamed the new file into place, but
// could not sync its directory, so that a power loss may still bring the
// old file back.
var errDirUnsynced = errors.New("written, but its directory could not be synced")

// testHookDirSync, when set by a test, runs after writeFileAtomic synced
// the directory; an error counts as a failed directory sync.
var testHookDirSync func(path string) error

func dayDirName(day int64) string {
	return time.UnixMilli(day * dayMillis).UTC().Format("2006-01-02")
}

// partPath is where part id of the given kind and partition lives.
func (db *DB) partPath(kind uint8, bucket int64, id uint64) string {
	start := time.UnixMilli(bucket * kindBucket[kind]).UTC().Format("2006-01-02")
	return filepath.Join(db.dir, kindDir[kind], start, fmt.Sprintf("%016x.part", id))
}

// dayOf returns the UTC day (days since the epoch) of t in milliseconds.
func dayOf(t int64) int64 {
	d := t / dayMillis
	if t%dayMillis < 0 {
		d--
	}
	return d
}

// writeManifest persists the given part list and WAL cut. Callers hold flushMu.
func (db *DB) writeManifest(parts []*part, walCut uint64, archivedTo int64) error {
	m := manifest{walCut: walCut, nextID: db.nextID.Load(), archivedTo: archivedTo}
	for _, p := range parts {
		m.parts = append(m.parts, manifestEntry{kind: p.kind, bucket: p.bucket, id: p.id, seq: p.seq})
	}
	err := writeFileAtomic(filepath.Join(db.dir, manifestName), encodeManifest(m))
	if errors.Is(err, errDirUnsynced) {
		// The new manifest is in place and in effect; after a power loss
		// either it or the one before may be found. Keep every file
		// either names (parts merges and retention replace, flushed WAL
		// segments) until the next start removes those the manifest
		// found then does not need.
		if !db.keepFiles.Swap(true) {
			db.logger.Error("manifest written but its directory could not be synced; keeping replaced parts and WAL segments until the next start", "err", err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	return nil
}

// loadManifest opens the parts the manifest names and removes part files it
// does not name (left by a flush or merge that did not finish).
func (db *DB) loadManifest() error {
	db.nextID.Store(1)
	db.archivedTo = math.MinInt64
	b, err := os.ReadFile(filepath.Join(db.dir, manifestName))
	if errors.Is(err, fs.ErrNotExist) {
		return db.removeStrayParts(nil)
	}
	if err != nil {
		return fmt.Errorf("read manifest: %w", err)
	}
	m, err := decodeManifest(b)
	if err != nil {
		return err
	}
	db.walCut, db.archivedTo = m.walCut, m.archivedTo
	db.nextID.Store(m.nextID)
	live := map[string]bool{}
	var parts []*part
	for _, e := range m.parts {
		path := db.partPath(e.kind, e.bucket, e.id)
		p, err := openPart(path)
		if err != nil {
			for _, q := range parts {
				q.decRef()
			}
			return fmt.Errorf("load part named by the manifest: %w", err)
		}
		p.kind, p.bucket, p.id, p.seq = e.kind, e.bucket, e.id, e.seq
		parts = append(parts, p)
		live[path] = true
	}
	sortParts(parts)
	db.parts = &partSet{parts: parts}
	return db.removeStrayParts(live)
}

func (db *DB) removeStrayParts(live map[string]bool) error {
	for _, d := range kindDir {
		if err := db.removeStrayPartsIn(filepath.Join(db.dir, d), live); err != nil {
			return err
		}
	}
	return nil
}

func (db *DB) removeStrayPartsIn(root string, live map[string]bool) error {
	days, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list parts: %w", err)
	}
	for _, d := range days {
		if !d.IsDir() {
			continue
		}
		dir := filepath.Join(root, d.Name())
		files, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("list parts: %w", err)
		}
		kept := 0
		for _, f := range files {
			path := filepath.Join(dir, f.Name())
			if live[path] {
				kept++
				continue
			}
			if strings.HasSuffix(f.Name(), ".part") || strings.HasSuffix(f.Name(), ".tmp") {
				db.logger.Info("removing part not in the manifest", "path", path)
				if err := os.Remove(path); err != nil {
					return fmt.Errorf("remove stray part: %w", err)
				}
			} else {
				kept++
			}
		}
		if kept == 0 {
			os.Remove(dir)
		}
	}
	return nil
}
