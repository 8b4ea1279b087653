package alert

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"

	"github.com/vigia-mon/vigia/internal/query"
	"github.com/vigia-mon/vigia/internal/tsdb"
)

// Options configures a Monitor. DB and Refs are required; every other zero
// field means its default.
type Options struct {
	// DB is the server's bbolt metadata file. The monitor owns the buckets
	// whose names start with "alert" and never closes DB.
	DB *bbolt.DB

	// Interval is the check period P. Default 60s.
	Interval time.Duration

	// Refs returns the series a metric name maps to; empty means the
	// metric does not exist. It is called by AddRule, by New for every
	// stored rule, and by every check for every watched metric (so series
	// created after a rule was registered are watched from the next check
	// on); it must be safe for concurrent use and must not call the
	// Monitor. The monitor keeps no reference to the returned slice.
	Refs func(name string) []tsdb.SeriesRef

	// Webhooks are URLs that receive Alertmanager-compatible (version "4")
	// JSON POSTs, one queue and sender per URL.
	Webhooks []string

	// NotifyChangesOnly sends notifications only when an alert starts
	// firing or resolves. By default (false) a firing alert is notified on
	// every check that finds a window crossing its limit, as Alertmanager's
	// repeat_interval does at the check period.
	NotifyChangesOnly bool

	// ExternalURL is how users reach this server's HTTP API, such as
	// "http://vigia.example:7575"; it fills Alertmanager's externalURL and
	// generatorURL. Default empty.
	ExternalURL string

	// Receiver is the "receiver" field of webhook payloads. Default "vigia".
	Receiver string

	// WebhookTimeout bounds one POST. Default 10s.
	WebhookTimeout time.Duration
	// WebhookRetries is how many times a failed POST (network error, 5xx,
	// 408 or 429) is retried, with exponential backoff from 500ms to 30s.
	// Default 5; negative means no retry.
	WebhookRetries int
	// WebhookQueue is how many notifications wait per webhook while its
	// receiver is slow or down: the latest of each alert (a newer one
	// replaces the one waiting). Beyond it the oldest are dropped and
	// counted. Default 100,000, the default MaxRules.
	WebhookQueue int

	// DrainTimeout bounds how long Run, once its context is done, keeps
	// delivering queued webhooks. Default 5s.
	DrainTimeout time.Duration

	// SubscriberBuffer is how many checks' notifications wait per
	// subscriber; when full, a new check's are dropped and counted.
	// Default 256.
	SubscriberBuffer int

	// HistoryLimit and HistoryMaxAge bound the notification history: the
	// newest HistoryLimit entries (default 100,000) no older than
	// HistoryMaxAge (default 30 days) are kept.
	HistoryLimit  int
	HistoryMaxAge time.Duration

	// MaxRules caps the registered rules. Default 100,000.
	MaxRules int

	// MaxPending caps the samples waiting for the next check, over all
	// series. Default 16M (about 256 MiB).
	MaxPending int64

	// Logger receives the monitor's log lines; it is given
	// "component"="alert". Default slog.Default().
	Logger *slog.Logger

	// Now returns the time recorded in states, history and notifications.
	// Default time.Now. The schedule itself always runs on the real
	// monotonic clock.
	Now func() time.Time
}

// Monitor checks alert rules. Its methods may be called concurrently,
// before, during and after Run.
type Monitor struct {
	opts       Options
	log        *slog.Logger
	db         *bbolt.DB
	maxPending int64

	idx            atomic.Pointer[index]
	pending        atomic.Int64
	droppedSamples atomic.Uint64

	// notifyMu is taken before mu is let go by whoever notifies, and held
	// while notifying: receivers get notifications in the order mu
	// produced them (a deleted alert's resolution after its last firing).
	notifyMu sync.Mutex

	mu        sync.Mutex // guards the fields below, and serializes checks with rule changes
	rules     map[int64]*rule
	watched   map[string]*watched
	refUse    map[tsdb.SeriesRef]int // how many watched metrics include each ref
	histCount int
	win       query.Windows
	mergeTs   []int64
	mergeVs   []float64

	// What a failed write could not store, for the next (see persist).
	unsavedRules  []*rule
	unsavedEvents []*event

	subMu     sync.RWMutex
	subs      map[*subscriber]struct{}
	subClosed bool

	hooks    []*webhook
	running  atomic.Bool
	stats    statCounters
	backoff0 time.Duration // first retry delay; tests shorten it

	droppedLogged uint64 // droppedSamples already logged; owned by the checking goroutine

	damagedHistory sync.Map // keys of damaged history records already counted and logged

	// beforeCheck, when set (by tests), runs at the start of every
	// scheduled check with the tick's scheduled time.
	beforeCheck func(due time.Time)
}

type statCounters struct {
	checks, overruns, skipped, notifications atomic.Uint64
	subDropped, corrupt, persistErrors       atomic.Uint64
	lastCheckNs                              atomic.Int64
}

// Stats are the monitor's counters since New, for /metrics and tests.
type Stats struct {
	Rules             int
	Checks            uint64        // checks run
	Overruns          uint64        // checks that ended after the next tick
	SkippedTicks      uint64        // ticks skipped because a check overran
	LastCheck         time.Duration // how long the last check took
	Notifications     uint64        // events produced (firing or resolved)
	PendingSamples    int64         // samples waiting for the next check
	DroppedSamples    uint64        // samples dropped because MaxPending was reached
	SubscriberDrops   uint64        // events dropped because a subscriber was slow
	WebhookDrops      uint64        // notifications dropped because a webhook queue was full
	WebhookFailures   uint64        // payloads that failed after their retries or were rejected
	WebhookSent       uint64        // payloads delivered
	CorruptRecords    uint64        // stored records that failed their checksum
	PersistenceErrors uint64        // failed writes of states and history
}

// New loads the rules, their states and the history size from opts.DB
// (creating the buckets on first use) and returns a Monitor that checks
// nothing until Run is called. opts.DB and opts.Refs are required.
func New(opts Options) (*Monitor, error) {
	if opts.DB == nil {
		return nil, errors.New("alert: Options.DB is required")
	}
	if opts.Refs == nil {
		return nil, errors.New("alert: Options.Refs is required")
	}
	if opts.Interval <= 0 {
		opts.Interval = 60 * time.Second
	}
	// "http://host/" would make generatorURL "http://host//api/...".
	opts.ExternalURL = strings.TrimRight(opts.ExternalURL, "/")
	if opts.Receiver == "" {
		opts.Receiver = "vigia"
	}
	if opts.WebhookTimeout <= 0 {
		opts.WebhookTimeout = 10 * time.Second
	}
	if opts.WebhookRetries == 0 {
		opts.WebhookRetries = 5
	} else if opts.WebhookRetries < 0 {
		opts.WebhookRetries = 0
	}
	if opts.WebhookQueue <= 0 {
		opts.WebhookQueue = 100_000
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = 5 * time.Second
	}
	if opts.SubscriberBuffer <= 0 {
		opts.SubscriberBuffer = 256
	}
	if opts.HistoryLimit <= 0 {
		opts.HistoryLimit = 100_000
	}
	if opts.HistoryMaxAge <= 0 {
		opts.HistoryMaxAge = 30 * 24 * time.Hour
	}
	if opts.MaxRules <= 0 {
		opts.MaxRules = 100_000
	}
	if opts.MaxPending <= 0 {
		opts.MaxPending = 16 << 20
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m := &Monitor{
		opts:       opts,
		log:        opts.Logger.With("component", "alert"),
		db:         opts.DB,
		maxPending: opts.MaxPending,
		rules:      make(map[int64]*rule),
		watched:    make(map[string]*watched),
		refUse:     make(map[tsdb.SeriesRef]int),
		subs:       make(map[*subscriber]struct{}),
		backoff0:   500 * time.Millisecond,
	}
	for _, u := range opts.Webhooks {
		if !IsHTTPURL(u) {
			return nil, fmt.Errorf("alert webhook %q is not an http:// or https:// URL (check --alert-webhook)", u)
		}
		m.hooks = append(m.hooks, newWebhook(u, opts.WebhookQueue))
	}
	if err := m.load(); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Monitor) now() int64 { return m.opts.Now().UnixMilli() }

// watch adds r to its metric's watch list, creating it with refs when new,
// and returns the refs that were not watched before. Called with m.mu
// held; the caller publishes the index.
func (m *Monitor) watch(r *rule, refs []tsdb.SeriesRef) (added []tsdb.SeriesRef) {
	w := m.watched[r.metric]
	if w == nil {
		w = &watched{name: r.metric, refs: sortedRefs(refs)}
		m.watched[r.metric] = w
		added = m.use(w.refs)
	}
	w.rules = append(w.rules, r)
	r.watch = w
	return added
}

func sortedRefs(refs []tsdb.SeriesRef) []tsdb.SeriesRef {
	s := slices.Clone(refs)
	slices.Sort(s)
	return slices.Compact(s)
}

// AddRule registers the alert "op over windows of secs seconds cmp limit"
// on metric and returns its id. cmp is "", ">", "<", ">=" or "<="; ""
// means ">". A bad rule returns an error wrapping ErrBadRule, a metric
// with no series ErrMetricNotFound; neither changes anything. Registering
// a rule equal to an existing one returns the existing id, so a script
// that registers its alerts on every start does not pile up duplicates.
func (m *Monitor) AddRule(metric string, op query.Op, secs int64, limit float64, cmp string) (id int64, err error) {
	id, _, err = m.addRule(metric, op, secs, limit, cmp)
	return id, err
}

func (m *Monitor) addRule(metric string, op query.Op, secs int64, limit float64, cmpStr string) (id int64, created bool, err error) {
	sp, err := validate(metric, op, secs, limit, cmpStr)
	if err != nil {
		return 0, false, err
	}
	refs := m.opts.Refs(metric)
	if len(refs) == 0 {
		return 0, false, ErrMetricNotFound
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if w := m.watched[metric]; w != nil {
		for _, r := range w.rules {
			if r.spec == sp {
				return r.id, false, nil
			}
		}
	}
	if len(m.rules) >= m.opts.MaxRules {
		return 0, false, fmt.Errorf("%w (%d; delete some)", ErrTooManyRules, m.opts.MaxRules)
	}
	now := m.now()
	r := &rule{spec: sp, created: now, since: now}
	err = m.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketRules)
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		r.id = int64(seq)
		return putRule(b, r)
	})
	if err != nil {
		return 0, false, fmt.Errorf("store alert rule: %w", err)
	}
	m.rules[r.id] = r
	if added := m.watch(r, refs); len(added) > 0 {
		m.updateIndex(added, nil)
	}
	m.log.Info("alert registered", "alert_id", r.id, "alert", r.name())
	return r.id, true, nil
}

// DeleteRule removes the alert id; its history stays. It returns
// ErrNotFound for an id that is not registered.
func (m *Monitor) DeleteRule(id int64) error {
	m.mu.Lock()
	r := m.rules[id]
	if r == nil {
		m.mu.Unlock()
		return ErrNotFound
	}
	err := m.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketRules).Delete(idKey(id))
	})
	if err != nil {
		m.mu.Unlock()
		return fmt.Errorf("delete alert rule %d: %w", id, err)
	}
	delete(m.rules, id)
	w := r.watch
	w.rules = slices.DeleteFunc(w.rules, func(x *rule) bool { return x == r })
	if len(w.rules) == 0 {
		delete(m.watched, w.name)
		if removed := m.unuse(w.refs); len(removed) > 0 {
			m.updateIndex(nil, removed)
		}
	}
	m.log.Info("alert deleted", "alert_id", id, "alert", r.name())
	if r.st != stateFiring {
		m.mu.Unlock()
		return nil
	}
	// Receivers that track firing alerts (a webhook's, a pager) learn that
	// this one is over, as they would at its resolution.
	now := m.now()
	r.st, r.since = stateResolved, now
	e := r.event(now, r.lastValue, r.lastWin, 0)
	e.deleted = true
	m.publishUnlock(nil, []*event{e}, now)
	return nil
}

// ListJSON returns a JSON array of every registered alert, by id, with its
// rule and state (see docs/alerts.md). The caller owns the returned slice.
func (m *Monitor) ListJSON() ([]byte, error) {
	m.mu.Lock()
	list := make([]alertJSON, 0, len(m.rules))
	for _, r := range m.rules {
		list = append(list, r.toJSON())
	}
	m.mu.Unlock()
	sort.Slice(list, func(i, j int) bool { return list[i].ID < list[j].ID })
	return marshal(list)
}

// getJSON returns the JSON object of alert id.
func (m *Monitor) getJSON(id int64) ([]byte, error) {
	m.mu.Lock()
	r := m.rules[id]
	var a alertJSON
	if r != nil {
		a = r.toJSON()
	}
	m.mu.Unlock()
	if r == nil {
		return nil, ErrNotFound
	}
	return marshal(a)
}

// Stats returns the monitor's counters.
func (m *Monitor) Stats() Stats {
	m.mu.Lock()
	n := len(m.rules)
	m.mu.Unlock()
	s := Stats{
		Rules:             n,
		Checks:            m.stats.checks.Load(),
		Overruns:          m.stats.overruns.Load(),
		SkippedTicks:      m.stats.skipped.Load(),
		LastCheck:         time.Duration(m.stats.lastCheckNs.Load()),
		Notifications:     m.stats.notifications.Load(),
		PendingSamples:    m.pending.Load(),
		DroppedSamples:    m.droppedSamples.Load(),
		SubscriberDrops:   m.stats.subDropped.Load(),
		CorruptRecords:    m.stats.corrupt.Load(),
		PersistenceErrors: m.stats.persistErrors.Load(),
	}
	for _, h := range m.hooks {
		s.WebhookDrops += h.dropped.Load()
		s.WebhookFailures += h.failed.Load()
		s.WebhookSent += h.sent.Load()
	}
	return s
}
