package alert

import (
	"context"
	"sync"
	"time"
)

// overrunLogEvery throttles the overrun warning.
const overrunLogEvery = 10 * time.Second

// Run checks every rule at t0, t0+P, t0+2P, ... (t0 = when Run starts,
// P = Options.Interval), measured on the monotonic clock, however long each
// check takes. A check that ends after the next tick is logged, and the
// ticks it overlapped are skipped: the next check starts on the first tick
// after it ended. Run also runs the webhook senders. When ctx is done it
// finishes the check under way, delivers what the webhook queues hold for
// at most Options.DrainTimeout, closes the subscriptions and returns nil.
// Run may be called once.
func (m *Monitor) Run(ctx context.Context) error {
	if !m.running.CompareAndSwap(false, true) {
		return errRunning
	}
	sendCtx, cancelSends := context.WithCancel(context.Background())
	defer cancelSends()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, h := range m.hooks {
		wg.Go(func() { m.sendLoop(sendCtx, h, stop) })
	}

	P := m.opts.Interval
	m.log.Info("alert monitor started", "interval", P, "webhooks", len(m.hooks))
	t0 := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	var lastOverrunLog time.Time
	unlogged := 0
	for k := int64(0); ; {
		due := t0.Add(time.Duration(k) * P)
		timer.Reset(time.Until(due))
		select {
		case <-ctx.Done():
		case <-timer.C:
		}
		if ctx.Err() != nil {
			break
		}
		if m.beforeCheck != nil {
			m.beforeCheck(due)
		}
		m.check()
		end := time.Now()
		// The next tick is the first one after end: k+1 when the check
		// fit in its period, later when it overran.
		next := int64(end.Sub(t0)/P) + 1
		if next > k+1 {
			skipped := next - k - 1
			m.stats.overruns.Add(1)
			m.stats.skipped.Add(uint64(skipped))
			// Throttled: a server that cannot keep up would otherwise log
			// on every tick.
			if unlogged++; end.Sub(lastOverrunLog) >= overrunLogEvery {
				m.log.Warn("alert check overran its period; skipping ticks (raise --alert-interval or register fewer alerts)",
					"took", end.Sub(due), "interval", P, "skipped_ticks", skipped,
					"overruns_since_last_log", unlogged, "rules", m.Stats().Rules)
				lastOverrunLog, unlogged = end, 0
			}
		} else {
			next = k + 1
		}
		k = next
	}

	close(stop)
	drained := make(chan struct{})
	go func() { wg.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(m.opts.DrainTimeout):
		cancelSends()
		<-drained
	}
	m.closeSubscribers()
	m.log.Info("alert monitor stopped")
	return nil
}
