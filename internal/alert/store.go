package alert

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"

	"go.etcd.io/bbolt"

	"github.com/vigia-mon/vigia/internal/tsdb"
)

// The monitor's buckets in the server's metadata file.
var (
	bucketRules   = []byte("alert_rules")   // idKey(id) -> sealed ruleRecord JSON
	bucketHistory = []byte("alert_history") // histKey(ms, seq) -> sealed event JSON
)

func idKey(id int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(id)) }

// histKey orders the history by time, then by insertion.
func histKey(ms int64, seq uint64) []byte {
	k := make([]byte, 16)
	binary.BigEndian.PutUint64(k, uint64(ms))
	binary.BigEndian.PutUint64(k[8:], seq)
	return k
}

func histKeyTime(k []byte) int64 { return int64(binary.BigEndian.Uint64(k)) }

// decodeRule decodes the rule stored under key k in the alert_rules bucket.
func decodeRule(k, v []byte) (*rule, error) {
	js, ok := unseal(v)
	if !ok {
		return nil, errors.New("checksum mismatch")
	}
	var rec ruleRecord
	if err := json.Unmarshal(js, &rec); err != nil {
		return nil, err
	}
	r, err := ruleFromRecord(rec)
	if err != nil {
		return nil, err
	}
	if len(k) != 8 || binary.BigEndian.Uint64(k) != uint64(r.id) {
		return nil, fmt.Errorf("key %x does not match id %d", k, r.id)
	}
	return r, nil
}

func putRule(b *bbolt.Bucket, r *rule) error {
	js, err := json.Marshal(r.record())
	if err != nil {
		return err
	}
	return b.Put(idKey(r.id), seal(js))
}

// load creates the buckets and reads every rule. A record that fails its
// checksum or does not decode is reported and skipped (left on disk, not
// trusted): one damaged alert must not keep the server from monitoring the
// others.
func (m *Monitor) load() error {
	err := m.db.Update(func(tx *bbolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(bucketRules); err != nil {
			return err
		}
		h, err := tx.CreateBucketIfNotExists(bucketHistory)
		if err != nil {
			return err
		}
		m.histCount = h.Stats().KeyN
		return nil
	})
	if err != nil {
		return fmt.Errorf("alert: open buckets: %w", err)
	}
	var loaded []*rule
	err = m.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketRules).ForEach(func(k, v []byte) error {
			r, err := decodeRule(k, v)
			if err != nil {
				m.stats.corrupt.Add(1)
				m.log.Error("alert rule record is damaged; skipped", "key", fmt.Sprintf("%x", k), "err", err)
				return nil
			}
			loaded = append(loaded, r)
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("alert: load rules: %w", err)
	}
	missing := 0
	var added []tsdb.SeriesRef
	for _, r := range loaded {
		refs := m.opts.Refs(r.metric)
		if len(refs) == 0 {
			missing++
		}
		m.rules[r.id] = r
		added = append(added, m.watch(r, refs)...)
	}
	m.updateIndex(added, nil)
	m.log.Info("alert rules loaded", "rules", len(loaded), "metrics_without_series", missing, "history_entries", m.histCount)
	return nil
}

// persist writes the rules whose state changed or that notified (so the
// last value of a quiet rule is as of its last change) and the events to
// the history, then prunes the history, all in one transaction. What a
// failed transaction did not store (a full disk) is kept and written with
// the next call, so that a rule's stored state is never left behind its
// state in memory: the newest Options.HistoryLimit events, and the rules
// not deleted since. Called with m.mu held.
func (m *Monitor) persist(changed []*rule, events []*event, now int64) error {
	if len(m.unsavedRules) > 0 {
		changed = append(m.unsavedRules, changed...)
	}
	if len(m.unsavedEvents) > 0 {
		events = append(m.unsavedEvents, events...)
	}
	err := m.write(changed, events, now)
	if err != nil {
		changed = slices.DeleteFunc(changed, func(r *rule) bool { return m.rules[r.id] != r })
		sort.Slice(changed, func(i, j int) bool { return changed[i].id < changed[j].id })
		m.unsavedRules = slices.Compact(changed)
		m.unsavedEvents = events[max(0, len(events)-m.opts.HistoryLimit):]
		return err
	}
	m.unsavedRules, m.unsavedEvents = nil, nil
	return nil
}

// write is persist's transaction.
func (m *Monitor) write(changed []*rule, events []*event, now int64) error {
	oldest := now - m.opts.HistoryMaxAge.Milliseconds()
	if len(changed) == 0 && len(events) == 0 && !m.historyExpired(oldest) {
		return nil
	}
	n := m.histCount
	err := m.db.Update(func(tx *bbolt.Tx) error {
		rb := tx.Bucket(bucketRules)
		for _, r := range changed {
			if m.rules[r.id] != r {
				continue // deleted meanwhile
			}
			if err := putRule(rb, r); err != nil {
				return err
			}
		}
		hb := tx.Bucket(bucketHistory)
		for _, e := range events {
			seq, err := hb.NextSequence()
			if err != nil {
				return err
			}
			if err := hb.Put(histKey(e.timeMs, seq), seal(e.raw)); err != nil {
				return err
			}
			n++
		}
		c := hb.Cursor()
		for k, _ := c.First(); k != nil && (n > m.opts.HistoryLimit || histKeyTime(k) < oldest); k, _ = c.First() {
			if err := c.Delete(); err != nil {
				return err
			}
			n--
		}
		return nil
	})
	if err != nil {
		return err
	}
	m.histCount = n // only once committed: a failed commit stored nothing
	return nil
}

// historyExpired reports whether the oldest history entry is older than
// oldest (unix ms), so that a check without notifications prunes it.
func (m *Monitor) historyExpired(oldest int64) bool {
	expired := false
	m.db.View(func(tx *bbolt.Tx) error {
		k, _ := tx.Bucket(bucketHistory).Cursor().First()
		expired = k != nil && histKeyTime(k) < oldest
		return nil
	})
	return expired
}

// history returns the JSON array of stored notifications with from <= time
// < to (unix ms; math.MaxInt64 for no bound) and, when before is not nil,
// stored before the entry whose key it is; of alert id when id > 0; newest
// first, at most limit of them. When more match, next is the key to pass
// as before for the following page.
func (m *Monitor) history(from, to, id int64, limit int, before []byte) (out, next []byte, err error) {
	out = []byte{'['}
	n := 0
	var last []byte // the key of the last entry in out
	err = m.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketHistory).Cursor()
		if to <= 0 {
			return nil // entries are notifications, all after 1970
		}
		start := histKey(to, 0)
		if before != nil && bytes.Compare(before, start) < 0 {
			start = before
		}
		var k, v []byte
		if k, _ = c.Seek(start); k == nil {
			k, v = c.Last()
		} else {
			k, v = c.Prev() // the newest entry before start
		}
		for ; k != nil; k, v = c.Prev() {
			t := histKeyTime(k)
			if t < from {
				break
			}
			js, ok := unseal(v)
			if !ok {
				// Counted and logged once, not at every read.
				if _, seen := m.damagedHistory.LoadOrStore(string(k), true); !seen {
					m.stats.corrupt.Add(1)
					m.log.Error("alert history record is damaged; skipped", "key", fmt.Sprintf("%x", k))
				}
				continue
			}
			if id > 0 {
				var e struct {
					ID int64 `json:"id"`
				}
				if json.Unmarshal(js, &e) != nil || e.ID != id {
					continue
				}
			}
			if n == limit {
				next = bytes.Clone(last)
				break
			}
			if n > 0 {
				out = append(out, ',')
			}
			out = append(out, js...)
			last = k
			n++
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return append(out, ']'), next, nil
}
