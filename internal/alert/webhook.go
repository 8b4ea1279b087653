package alert

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigia-mon/vigia/internal/query"
)

// maxAlertsPerPost bounds one webhook body; a check that notifies more
// alerts sends several payloads with the same group key.
const maxAlertsPerPost = 500

// maxBackoff caps the delay between retries.
const maxBackoff = 30 * time.Second

// backoff returns d doubled n times, at most maxBackoff. (d<<n would
// overflow to zero or less from n = 35 on, for d = 500ms.)
func backoff(d time.Duration, n int) time.Duration {
	for ; n > 0 && d > 0 && d < maxBackoff; n-- {
		d *= 2
	}
	return min(d, maxBackoff)
}

// amMessage is Alertmanager's webhook payload, version 4
// (https://prometheus.io/docs/alerting/latest/configuration/#webhook_config).
// vigia sends all of a check's notifications as one group with no group
// labels, as an Alertmanager route without group_by would.
type amMessage struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   uint64            `json:"truncatedAlerts"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []amAlert         `json:"alerts"`
}

type amAlert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// payload encodes up to maxAlertsPerPost notifications as one webhook body.
func (m *Monitor) payload(events []*event) []byte {
	msg := amMessage{
		Version: "4", GroupKey: "{}:{}", Status: "resolved", Receiver: m.opts.Receiver,
		GroupLabels: map[string]string{}, ExternalURL: m.opts.ExternalURL,
		Alerts: make([]amAlert, 0, len(events)),
	}
	for _, e := range events {
		a := m.amAlert(e)
		if a.Status == "firing" {
			msg.Status = "firing"
		}
		msg.Alerts = append(msg.Alerts, a)
	}
	msg.CommonLabels = common(msg.Alerts, func(a *amAlert) map[string]string { return a.Labels })
	msg.CommonAnnotations = common(msg.Alerts, func(a *amAlert) map[string]string { return a.Annotations })
	b, err := marshal(&msg)
	if err != nil { // only a time past year 9999 (a clock gone wrong) fails
		m.log.Error("encode webhook payload", "err", err)
		return nil
	}
	return b
}

func (m *Monitor) amAlert(e *event) amAlert {
	limit := string(query.AppendRepr(nil, float64(e.Limit)))
	value := string(query.AppendRepr(nil, float64(e.Value)))
	a := amAlert{
		Status: e.State,
		Labels: map[string]string{
			"alertname": e.Name,
			"alert_id":  strconv.FormatInt(e.ID, 10),
			"metric":    e.Metric,
			"op":        e.Op,
			"secs":      strconv.FormatInt(e.Secs, 10),
			"cmp":       e.Cmp,
			"limit":     limit,
		},
		Annotations: map[string]string{
			"value":             value,
			"window_start":      e.WindowStart,
			"breaching_windows": strconv.Itoa(e.Windows),
		},
		StartsAt: time.UnixMilli(e.activeAtMs).UTC(),
	}
	if e.State == "firing" {
		a.Annotations["summary"] = fmt.Sprintf("%s: %s over %ds windows is %s (%s %s), window from %s",
			e.Metric, e.Op, e.Secs, value, e.Cmp, limit, e.WindowStart)
	} else {
		a.Status = "resolved"
		a.EndsAt = time.UnixMilli(e.timeMs).UTC()
		a.Annotations["summary"] = fmt.Sprintf("%s: %s over %ds windows is back to %s (alert when %s %s)",
			e.Metric, e.Op, e.Secs, value, e.Cmp, limit)
		if e.deleted {
			a.Annotations["summary"] = fmt.Sprintf("%s: alert deleted while firing; %s over %ds windows was %s (alert when %s %s)",
				e.Metric, e.Op, e.Secs, value, e.Cmp, limit)
		}
	}
	if m.opts.ExternalURL != "" {
		a.GeneratorURL = m.opts.ExternalURL + "/api/v1/alerts/" + strconv.FormatInt(e.ID, 10)
	}
	a.Fingerprint = fingerprint(a.Labels)
	return a
}

// fingerprint hashes a label set as Alertmanager's fingerprints do: a
// 64-bit FNV-1a over the sorted names and values, in 16 hex digits.
func fingerprint(labels map[string]string) string {
	names := make([]string, 0, len(labels))
	for n := range labels {
		names = append(names, n)
	}
	sort.Strings(names)
	h := fnv.New64a()
	for _, n := range names {
		io.WriteString(h, n)
		h.Write([]byte{0xff})
		io.WriteString(h, labels[n])
		h.Write([]byte{0xff})
	}
	return fmt.Sprintf("%016x", h.Sum64())
}

// common returns the pairs every alert shares.
func common(alerts []amAlert, get func(*amAlert) map[string]string) map[string]string {
	out := map[string]string{}
	if len(alerts) == 0 {
		return out
	}
	for k, v := range get(&alerts[0]) {
		out[k] = v
	}
	for i := 1; i < len(alerts) && len(out) > 0; i++ {
		kv := get(&alerts[i])
		for k, v := range out {
			if kv[k] != v {
				delete(out, k)
			}
		}
	}
	return out
}

// IsHTTPURL reports whether s is an absolute http:// or https:// URL with
// a host, as a webhook's URL and Options.ExternalURL must be.
func IsHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// webhook is one configured URL with its own queue and sender goroutine,
// so a slow or dead receiver delays nothing but its own deliveries.
//
// The queue holds notifications, not payloads: the latest of each alert,
// in the order the alerts first arrived. A newer notification of an alert
// replaces the one waiting, so while a receiver is slow or down the next
// payload carries each alert's current state, and a resolution is never
// lost behind later checks' payloads. Alerts of a payload that failed after
// its retries wait again, unless a newer notification replaced them (as
// Alertmanager keeps a resolved alert until its notification succeeds).
type webhook struct {
	url    string
	logURL string // without credentials or query, for the log
	client *http.Client
	limit  int // notifications that may wait; beyond it the oldest are dropped

	mu      sync.Mutex
	pending []*event      // at most one per alert
	at      map[int64]int // alert id -> index in pending
	wake    chan struct{} // signalled when pending becomes non-empty

	dropped, failed, sent atomic.Uint64
}

func newWebhook(u string, limit int) *webhook {
	logURL := u
	if pu, err := url.Parse(u); err == nil {
		pu.User, pu.RawQuery, pu.Fragment = nil, "", ""
		logURL = pu.String()
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	return &webhook{
		url: u, logURL: logURL, client: &http.Client{Transport: t}, limit: limit,
		at: make(map[int64]int), wake: make(chan struct{}, 1),
	}
}

// enqueue adds a check's notifications without ever waiting.
func (h *webhook) enqueue(events []*event) {
	h.mu.Lock()
	for _, e := range events {
		if i, ok := h.at[e.ID]; ok {
			h.pending[i] = e
			continue
		}
		h.at[e.ID] = len(h.pending)
		h.pending = append(h.pending, e)
	}
	h.trimLocked()
	h.mu.Unlock()
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// requeue puts the notifications of a failed payload back in front of
// those that arrived since, except the alerts that have a newer one.
func (h *webhook) requeue(events []*event) {
	h.mu.Lock()
	var back []*event
	for _, e := range events {
		if _, ok := h.at[e.ID]; !ok {
			back = append(back, e)
		}
	}
	h.pending = append(back, h.pending...)
	h.trimLocked()
	h.mu.Unlock()
}

// trimLocked drops the oldest notifications beyond the limit and indexes
// the rest.
func (h *webhook) trimLocked() {
	over := len(h.pending) - h.limit
	if over <= 0 && len(h.at) == len(h.pending) {
		return
	}
	if over > 0 {
		h.dropped.Add(uint64(over))
		h.pending = slices.Delete(h.pending, 0, over)
	}
	clear(h.at)
	for i, e := range h.pending {
		h.at[e.ID] = i
	}
}

// take empties the queue and returns what it held.
func (h *webhook) take() []*event {
	h.mu.Lock()
	defer h.mu.Unlock()
	evs := h.pending
	h.pending = nil
	clear(h.at)
	return evs
}

// sendLoop delivers queued notifications until stop is closed, then what
// is still queued until ctx is done. After a payload failed its retries,
// it waits as long as its last retry did before it sends again.
func (m *Monitor) sendLoop(ctx context.Context, h *webhook, stop <-chan struct{}) {
	pause := backoff(m.backoff0, m.opts.WebhookRetries)
	drain := func() {
		for {
			evs := h.take()
			if len(evs) == 0 {
				return
			}
			m.sendAll(ctx, h, evs, false)
		}
	}
	for {
		select {
		case <-stop: // first, though a wake-up may be pending too
			drain()
			return
		default:
		}
		select {
		case <-h.wake:
		case <-stop:
			drain()
			return
		}
		if m.sendAll(ctx, h, h.take(), true) {
			continue
		}
		t := time.NewTimer(pause)
		select {
		case <-t.C:
		case <-stop:
			t.Stop()
			drain()
			return
		}
		select {
		case h.wake <- struct{}{}:
		default:
		}
	}
}

// sendAll posts events in payloads of up to maxAlertsPerPost alerts. When
// one fails after its retries, it stops and, if requeue, puts that
// payload's alerts and the rest back in the queue. It reports whether all
// were sent or given up for good.
func (m *Monitor) sendAll(ctx context.Context, h *webhook, events []*event, requeue bool) bool {
	for i := 0; i < len(events); i += maxAlertsPerPost {
		chunk := events[i:min(i+maxAlertsPerPost, len(events))]
		if ctx.Err() != nil {
			h.failed.Add(1)
			continue
		}
		p := m.payload(chunk)
		if p == nil {
			h.failed.Add(1)
			continue
		}
		if !m.deliver(ctx, h, p) && requeue {
			h.requeue(events[i:])
			return false
		}
	}
	return true
}

// deliver posts p, retrying network errors, 5xx, 408 and 429 with
// exponential backoff and jitter, as Alertmanager does. It reports false
// when p failed in a way a later attempt may fix; a payload the receiver
// rejected (another 4xx) is given up and logged.
func (m *Monitor) deliver(ctx context.Context, h *webhook, p []byte) bool {
	var err error
	for attempt := 0; ; attempt++ {
		var retry bool
		retry, err = m.post(ctx, h, p)
		if err == nil {
			h.sent.Add(1)
			return true
		}
		if !retry {
			h.failed.Add(1)
			m.log.Warn("alert webhook rejected a payload; dropped", "url", h.logURL, "err", err)
			return true
		}
		if attempt >= m.opts.WebhookRetries || ctx.Err() != nil {
			break
		}
		d := backoff(m.backoff0, attempt)
		d = d/2 + rand.N(d/2+1)
		m.log.Debug("alert webhook failed; retrying", "url", h.logURL, "attempt", attempt+1, "in", d, "err", err)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	h.failed.Add(1)
	m.log.Warn("alert webhook delivery failed; its alerts wait for the next attempt", "url", h.logURL, "err", err)
	return false
}

func (m *Monitor) post(ctx context.Context, h *webhook, p []byte) (retry bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, m.opts.WebhookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(p))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "vigia-alert")
	resp, err := h.client.Do(req)
	if err != nil {
		// Not the *url.Error itself: it repeats the URL with its query,
		// where receivers take their tokens (the log has h.logURL).
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return true, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return false, nil
	case c >= 500, c == http.StatusRequestTimeout, c == http.StatusTooManyRequests:
		return true, fmt.Errorf("HTTP %s", resp.Status)
	default:
		return false, fmt.Errorf("HTTP %s (not retried)", resp.Status)
	}
}
