package alert

import (
	"slices"
	"sort"
	"time"

	"github.com/vigia-mon/vigia/internal/tsdb"
)

// check runs one check: it takes every pending sample, evaluates every
// rule, persists what changed and sends the notifications.
func (m *Monitor) check() {
	start := time.Now()
	now := m.now()
	m.mu.Lock()
	m.refreshRefs()
	ix := m.idx.Load()
	var taken int64
	if ix != nil {
		for _, b := range ix.bufs {
			taken += int64(b.take())
			b.sortTaken()
		}
	}
	m.pending.Add(-taken)

	var changed []*rule
	var events []*event
	for _, w := range m.watched {
		ts, vs := m.samplesOf(w, ix)
		if len(ts) == 0 {
			continue
		}
		for _, r := range w.rules {
			st := r.st
			if e := m.evaluate(r, ts, vs, now); e != nil {
				events = append(events, e)
				changed = append(changed, r)
			} else if r.st != st {
				changed = append(changed, r)
			}
		}
	}
	if ix != nil {
		for _, b := range ix.bufs {
			b.recycle()
		}
	}
	if cap(m.mergeTs) > maxSpare {
		m.mergeTs, m.mergeVs = nil, nil // as recycle: a burst must not pin its memory
	}
	m.win.Reset() // nor its windows
	sort.Slice(events, func(i, j int) bool { return events[i].ID < events[j].ID })
	m.publishUnlock(changed, events, now)
	m.stats.checks.Add(1)
	m.stats.lastCheckNs.Store(int64(time.Since(start)))
	if d := m.droppedSamples.Load(); d > m.droppedLogged {
		m.log.Warn("alert samples dropped: too many waiting for the check (shorten --alert-interval, so that checks take them more often)",
			"dropped", d-m.droppedLogged, "max_pending", m.maxPending)
		m.droppedLogged = d
	}
}

// refreshRefs asks the store again for the series of every watched metric,
// so that series created after a rule was registered are watched too.
// Called with m.mu held.
func (m *Monitor) refreshRefs() {
	var added, removed []tsdb.SeriesRef
	for _, w := range m.watched {
		refs := m.opts.Refs(w.name)
		if len(refs) == len(w.refs) && (len(refs) == 0 || len(refs) == 1 && refs[0] == w.refs[0]) {
			continue // the common case, without a copy
		}
		refs = sortedRefs(refs)
		if slices.Equal(refs, w.refs) {
			continue
		}
		added = append(added, m.use(refs)...)
		removed = append(removed, m.unuse(w.refs)...)
		w.refs = refs
	}
	if len(added) > 0 || len(removed) > 0 {
		// A ref both dropped and re-added by this refresh stays watched.
		removed = slices.DeleteFunc(removed, func(r tsdb.SeriesRef) bool { return m.refUse[r] > 0 })
		m.updateIndex(added, removed)
	}
}

// samplesOf returns the samples a check took for metric w, in time order.
// The slices are valid until the buffers are recycled.
func (m *Monitor) samplesOf(w *watched, ix *index) ([]int64, []float64) {
	if ix == nil {
		return nil, nil
	}
	if len(w.refs) == 1 {
		if b := ix.bufs[w.refs[0]]; b != nil {
			return b.tts, b.tvs
		}
		return nil, nil
	}
	ts, vs := m.mergeTs[:0], m.mergeVs[:0]
	sorted := true
	for _, r := range w.refs {
		b := ix.bufs[r]
		if b == nil || len(b.tts) == 0 {
			continue
		}
		if len(ts) > 0 && b.tts[0] < ts[len(ts)-1] {
			sorted = false
		}
		ts = append(ts, b.tts...)
		vs = append(vs, b.tvs...)
	}
	if !sorted {
		sort.Stable(byTime{ts: ts, vs: vs})
	}
	m.mergeTs, m.mergeVs = ts, vs
	return ts, vs
}

// publishUnlock stores the rules that changed and the history of events,
// lets go of mu and sends the events. Receivers get the events of
// successive calls in the order the calls took mu. Called with m.mu held.
func (m *Monitor) publishUnlock(changed []*rule, events []*event, now int64) {
	for _, e := range events {
		e.raw, _ = marshal(e) // cannot fail: jsonFloat handles every value
	}
	if err := m.persist(changed, events, now); err != nil {
		m.stats.persistErrors.Add(1)
		m.log.Error("cannot store alert states and history; notifications still go out, and the next check stores them", "err", err)
	}
	m.notifyMu.Lock()
	m.mu.Unlock()
	m.notify(events)
	m.notifyMu.Unlock()
}

// evaluate aggregates one rule's samples as QUERY would (windows of secs
// from the first sample's time), updates its state and returns the event
// to send, if any. Called with m.mu held.
func (m *Monitor) evaluate(r *rule, ts []int64, vs []float64, now int64) *event {
	w := &m.win
	w.Reset()
	w.Op, w.Step = r.op, r.secs*1000
	w.Add(ts, vs)
	points := w.Result()
	if len(points) == 0 {
		return nil
	}
	worst := points[0]
	crossing := 0
	for _, p := range points {
		if r.cmp.crosses(p.Value, r.limit) {
			crossing++
		}
		if r.cmp.worse(p.Value, worst.Value) {
			worst = p
		}
	}
	r.lastCheck, r.hasValue, r.lastValue, r.lastWin, r.breaching = now, true, worst.Value, worst.Start, crossing

	notify := false
	switch {
	case crossing > 0 && r.st != stateFiring:
		r.st, r.since, r.activeAt = stateFiring, now, now
		notify = true
	case crossing > 0:
		notify = !m.opts.NotifyChangesOnly
	case r.st == stateFiring:
		r.st, r.since = stateResolved, now
		notify = true
	}
	if !notify {
		return nil
	}
	return r.event(now, worst.Value, worst.Start, crossing)
}

// event returns the notification of r's state at now, for the window
// starting at winStart whose value is value, with crossing windows
// crossing the limit.
func (r *rule) event(now int64, value float64, winStart int64, crossing int) *event {
	return &event{
		ID: r.id, Name: r.name(), Metric: r.metric, Op: r.op.String(), Secs: r.secs,
		Limit: jsonFloat(r.limit), Cmp: r.cmp.String(), State: r.st.String(),
		Value: jsonFloat(value), WindowStart: fmtTime(winStart), Windows: crossing,
		ActiveAt: fmtTime(r.activeAt), Time: fmtTime(now),
		timeMs: now, activeAtMs: r.activeAt,
	}
}
