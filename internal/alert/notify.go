package alert

import (
	"sync"
)

// subscriber is one Subscribe call.
type subscriber struct {
	ch chan [][]byte
}

// Subscribe returns a channel that receives, for every check that
// notifies, the JSON objects of its notifications (an alert firing, still
// firing or resolved; see docs/alerts.md), and a cancel function that ends
// the subscription and closes the channel. What is received is shared with
// other receivers and must not be modified. A subscriber that falls
// Options.SubscriberBuffer checks behind loses the newest ones (their
// notifications counted in Stats.SubscriberDrops); it never slows the
// monitor. The channel is also closed when Run returns.
func (m *Monitor) Subscribe() (events <-chan [][]byte, cancel func()) {
	s := &subscriber{ch: make(chan [][]byte, m.opts.SubscriberBuffer)}
	m.subMu.Lock()
	if m.subClosed {
		close(s.ch)
	} else {
		m.subs[s] = struct{}{}
	}
	m.subMu.Unlock()
	return s.ch, sync.OnceFunc(func() {
		m.subMu.Lock()
		if _, ok := m.subs[s]; ok {
			delete(m.subs, s)
			close(s.ch)
		}
		m.subMu.Unlock()
	})
}

// closeSubscribers closes every subscription; later ones start closed.
func (m *Monitor) closeSubscribers() {
	m.subMu.Lock()
	m.subClosed = true
	for s := range m.subs {
		delete(m.subs, s)
		close(s.ch)
	}
	m.subMu.Unlock()
}

// notify sends a check's events to the log, the subscribers and the
// webhook queues. Nothing here waits for a receiver.
func (m *Monitor) notify(events []*event) {
	if len(events) == 0 {
		return
	}
	m.stats.notifications.Add(uint64(len(events)))
	for _, e := range events {
		args := []any{"alert_id", e.ID, "alert", e.Name, "metric", e.Metric, "op", e.Op,
			"secs", e.Secs, "cmp", e.Cmp, "limit", e.Limit, "value", e.Value,
			"window_start", e.WindowStart, "breaching_windows", e.Windows, "active_at", e.ActiveAt}
		if e.State == "firing" {
			m.log.Warn("alert firing", args...)
		} else {
			m.log.Info("alert resolved", args...)
		}
	}

	raws := make([][]byte, len(events))
	for i, e := range events {
		raws[i] = e.raw
	}
	var dropped uint64
	m.subMu.RLock()
	for s := range m.subs {
		select {
		case s.ch <- raws: // a check's notifications take one place, however many
		default:
			dropped += uint64(len(raws))
		}
	}
	m.subMu.RUnlock()
	if dropped > 0 {
		m.stats.subDropped.Add(dropped)
		m.log.Warn("alert subscribers too slow; events dropped", "dropped", dropped)
	}

	for _, h := range m.hooks {
		h.enqueue(events)
	}
}
