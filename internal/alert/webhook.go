package alert

import (
	"bytes"
	"context"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/vigia-mon/vigia/internal/query"
)

// maxAlertsPerPost bounds one webhook body; a check that notifies more
// alerts sends several payloads with the same group key.
const maxAlertsPerPost = 500

// maxBackoff caps the delay between retries.
const maxBackoff = 30 * time.Second

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

// payloads turns a check's events into webhook bodies.
func (m *Monitor) payloads(events []*event) [][]byte {
	var out [][]byte
	for i := 0; i < len(events); i += maxAlertsPerPost {
		chunk := events[i:min(i+maxAlertsPerPost, len(events))]
		msg := amMessage{
			Version: "4", GroupKey: "{}:{}", Status: "resolved", Receiver: m.opts.Receiver,
			GroupLabels: map[string]string{}, ExternalURL: m.opts.ExternalURL,
			Alerts: make([]amAlert, 0, len(chunk)),
		}
		for _, e := range chunk {
			a := m.amAlert(e)
			if a.Status == "firing" {
				msg.Status = "firing"
			}
			msg.Alerts = append(msg.Alerts, a)
		}
		msg.CommonLabels = common(msg.Alerts, func(a *amAlert) map[string]string { return a.Labels })
		msg.CommonAnnotations = common(msg.Alerts, func(a *amAlert) map[string]string { return a.Annotations })
		b, err := marshal(&msg)
		if err != nil { // cannot happen: only strings and times
			m.log.Error("encode webhook payload", "err", err)
			continue
		}
		out = append(out, b)
	}
	return out
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

// webhook is one configured URL with its own queue and sender goroutine,
// so a slow or dead receiver delays nothing but its own deliveries.
type webhook struct {
	url    string
	logURL string // without credentials or query, for the log
	q      chan []byte
	client *http.Client

	dropped, failed, sent atomic.Uint64
}

func newWebhook(u string, queue int) *webhook {
	logURL := u
	if pu, err := url.Parse(u); err == nil {
		pu.User, pu.RawQuery, pu.Fragment = nil, "", ""
		logURL = pu.String()
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	return &webhook{url: u, logURL: logURL, q: make(chan []byte, queue), client: &http.Client{Transport: t}}
}

// enqueue queues p without ever waiting: when the queue is full the
// oldest payload is dropped, since the newest says most about now.
func (h *webhook) enqueue(p []byte) {
	for {
		select {
		case h.q <- p:
			return
		default:
		}
		select {
		case <-h.q:
			h.dropped.Add(1)
		default:
		}
	}
}

// sendLoop delivers queued payloads until stop is closed, then what is
// still queued until ctx is done.
func (m *Monitor) sendLoop(ctx context.Context, h *webhook, stop <-chan struct{}) {
	for {
		select {
		case p := <-h.q:
			m.deliver(ctx, h, p)
			continue
		case <-stop:
		}
		for {
			select {
			case p := <-h.q:
				if ctx.Err() != nil {
					h.failed.Add(1)
					continue
				}
				m.deliver(ctx, h, p)
			default:
				return
			}
		}
	}
}

// deliver posts p, retrying network errors, 5xx, 408 and 429 with
// exponential backoff and jitter, as Alertmanager does.
func (m *Monitor) deliver(ctx context.Context, h *webhook, p []byte) {
	var err error
	for attempt := 0; ; attempt++ {
		var retry bool
		retry, err = m.post(ctx, h, p)
		if err == nil {
			h.sent.Add(1)
			return
		}
		if !retry || attempt >= m.opts.WebhookRetries || ctx.Err() != nil {
			break
		}
		d := min(m.backoff0<<attempt, maxBackoff)
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
	m.log.Warn("alert webhook delivery failed; payload dropped", "url", h.logURL, "err", err)
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
