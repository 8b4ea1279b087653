package alert

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigia-mon/vigia/internal/query"
	"github.com/vigia-mon/vigia/internal/tsdb"
)

// amWebhook mirrors Alertmanager's webhook.Message (notify/webhook) and
// template.Data field for field, as a receiver written for Alertmanager
// decodes it.
type amWebhook struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   uint64            `json:"truncatedAlerts"`
	Receiver          string            `json:"receiver"`
	Status            string            `json:"status"`
	Alerts            []amWebhookAlert  `json:"alerts"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
}

type amWebhookAlert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// receiver is an httptest webhook that records what it gets.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	bodies [][]byte
}

func newReceiver(t *testing.T, h func(w http.ResponseWriter, r *http.Request)) *receiver {
	rc := &receiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h != nil {
			h(w, r)
			return
		}
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("webhook got %s with Content-Type %q", r.Method, r.Header.Get("Content-Type"))
		}
		b, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.bodies = append(rc.bodies, b)
		rc.mu.Unlock()
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.bodies)
}

func (rc *receiver) message(t *testing.T, i int) amWebhook {
	t.Helper()
	rc.mu.Lock()
	b := rc.bodies[i]
	rc.mu.Unlock()
	var msg amWebhook
	if err := json.Unmarshal(b, &msg); err != nil {
		t.Fatalf("payload %s: %v", b, err)
	}
	return msg
}

func runMonitor(t *testing.T, m *Monitor) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func TestWebhookPayload(t *testing.T) {
	rc := newReceiver(t, nil)
	st := newFakeStore("disk.used")
	m := newTestMonitor(t, st, Options{
		Interval: 50 * time.Millisecond, Webhooks: []string{rc.URL},
		ExternalURL: "http://vigia.test:7575", Receiver: "ops",
	})
	id, _ := m.AddRule("disk.used", query.Avg, 60, 0.9, ">=")
	runMonitor(t, m)

	m.Observe([]tsdb.Sample{sample(1, 10_000, 0.95), sample(1, 20_000, 0.97)})
	waitFor(t, 20*time.Second, "the firing webhook", func() bool { return rc.count() >= 1 })
	msg := rc.message(t, 0)
	if msg.Version != "4" || msg.Status != "firing" || msg.Receiver != "ops" || msg.GroupKey == "" ||
		msg.ExternalURL != "http://vigia.test:7575" || msg.GroupLabels == nil || len(msg.Alerts) != 1 {
		t.Fatalf("firing payload: %+v", msg)
	}
	a := msg.Alerts[0]
	wantLabels := map[string]string{
		"alertname": "disk.used AVG 60s >= 0.9", "alert_id": "1", "metric": "disk.used",
		"op": "AVG", "secs": "60", "cmp": ">=", "limit": "0.9",
	}
	for k, v := range wantLabels {
		if a.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, a.Labels[k], v)
		}
	}
	if id != 1 || a.Status != "firing" || a.Annotations["value"] != "0.96" || a.Annotations["summary"] == "" ||
		a.Annotations["window_start"] != "1970-01-01T00:00:10.000Z" || a.StartsAt.IsZero() || !a.EndsAt.IsZero() ||
		a.GeneratorURL != "http://vigia.test:7575/api/v1/alerts/1" || len(a.Fingerprint) != 16 {
		t.Fatalf("firing alert: %+v", a)
	}
	if msg.CommonLabels["metric"] != "disk.used" {
		t.Errorf("commonLabels %v", msg.CommonLabels)
	}

	n := rc.count()
	m.Observe([]tsdb.Sample{sample(1, 30_000, 0.5)})
	waitFor(t, 20*time.Second, "the resolved webhook", func() bool { return rc.count() > n })
	msg = rc.message(t, n)
	a = msg.Alerts[0]
	if msg.Status != "resolved" || a.Status != "resolved" || a.EndsAt.Before(a.StartsAt) || a.EndsAt.IsZero() ||
		a.Fingerprint != rc.message(t, 0).Alerts[0].Fingerprint {
		t.Fatalf("resolved payload: %+v", msg)
	}
}

// TestBadWebhooksDelayNothing configures a webhook that never answers and
// one whose port refuses connections before a good one: the subscriber
// and the good webhook still get every notification, and Run still stops,
// in seconds, while a POST to the hung webhook would wait a minute. (How
// soon is logged, not asserted: the machine may be busy.)
func TestBadWebhooksDelayNothing(t *testing.T) {
	hang := make(chan struct{})
	slow := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	})
	defer close(hang)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	downURL := "http://" + l.Addr().String()
	l.Close()
	good := newReceiver(t, nil)

	const P = 100 * time.Millisecond
	st := newFakeStore("lat")
	m := newTestMonitor(t, st, Options{
		Interval: P, Webhooks: []string{slow.URL, downURL, good.URL},
		WebhookTimeout: time.Minute, DrainTimeout: 200 * time.Millisecond,
	})
	m.backoff0 = 10 * time.Millisecond
	m.AddRule("lat", query.Max, 1, 100, "")
	events, cancelSub := m.Subscribe()
	defer cancelSub()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()

	for i := range 5 {
		n := good.count()
		sent := time.Now()
		m.Observe([]tsdb.Sample{sample(1, int64(i)*1000, 500)})
		select {
		case <-events:
		case <-time.After(10 * time.Second):
			t.Fatalf("notification %d: no subscriber event in 10 s", i)
		}
		waitFor(t, 10*time.Second, "the good webhook", func() bool { return good.count() > n })
		t.Logf("notification %d delivered to the good webhook after %v", i, time.Since(sent))
	}
	t.Logf("%d checks overran", m.Stats().Overruns)
	stopAt := time.Now()
	cancel()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return while a webhook hung")
	}
	t.Logf("Run took %v to stop; drain timeout is 200ms", time.Since(stopAt))
	if s := m.Stats(); s.WebhookFailures == 0 {
		t.Errorf("no failure counted for the dead webhooks: %+v", s)
	}
}

// TestWebhookQueue: a queue keeps the latest notification of each alert in
// the order the alerts first came, drops the oldest beyond its limit, and
// puts a failed payload's alerts back in front unless a newer notification
// replaced them.
func TestWebhookQueue(t *testing.T) {
	ev := func(id int64, state string) *event { return &event{ID: id, State: state} }
	str := func(evs []*event) string {
		var b strings.Builder
		for _, e := range evs {
			fmt.Fprintf(&b, "%d%s ", e.ID, e.State[:1])
		}
		return b.String()
	}
	h := newWebhook("http://127.0.0.1:1", 3)
	h.enqueue([]*event{ev(1, "firing"), ev(2, "firing")})
	h.enqueue([]*event{ev(1, "resolved"), ev(3, "firing")})
	if got := str(h.take()); got != "1r 2f 3f " {
		t.Fatalf("queue held %q, want 1r 2f 3f", got)
	}
	if got := str(h.take()); got != "" {
		t.Fatalf("a second take got %q", got)
	}

	h.enqueue([]*event{ev(4, "firing"), ev(5, "firing"), ev(6, "firing"), ev(7, "firing")})
	if got := str(h.take()); got != "5f 6f 7f " || h.dropped.Load() != 1 {
		t.Fatalf("over the limit: %q, %d dropped; want 5f 6f 7f and 1", got, h.dropped.Load())
	}

	failed := []*event{ev(1, "resolved"), ev(2, "firing")}
	h.enqueue([]*event{ev(2, "resolved")})
	h.requeue(failed)
	if got := str(h.take()); got != "1r 2r " {
		t.Fatalf("after a failed payload: %q, want 1r 2r (alert 2's newer notification kept)", got)
	}
}

// TestWebhookOutageKeepsResolution: a receiver that is down while an alert
// fires and resolves learns the resolution when it comes back, although
// every payload sent while it was down failed its retries.
func TestWebhookOutageKeepsResolution(t *testing.T) {
	var down atomic.Bool
	down.Store(true)
	var mu sync.Mutex
	var got []amWebhook
	rc := newReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		var msg amWebhook
		if err := json.NewDecoder(r.Body).Decode(&msg); err != nil {
			t.Errorf("payload: %v", err)
		}
		mu.Lock()
		got = append(got, msg)
		mu.Unlock()
	})
	st := newFakeStore("lat")
	m := newTestMonitor(t, st, Options{Interval: 50 * time.Millisecond, Webhooks: []string{rc.URL}, WebhookRetries: 1})
	m.backoff0 = 5 * time.Millisecond
	m.AddRule("lat", query.Max, 1, 100, ">")
	events, cancel := m.Subscribe()
	defer cancel()
	runMonitor(t, m)

	m.Observe([]tsdb.Sample{sample(1, 1000, 500)})
	waitFor(t, 10*time.Second, "a failed firing payload", func() bool { return m.Stats().WebhookFailures > 0 })
	m.Observe([]tsdb.Sample{sample(1, 2000, 5)})
	waitFor(t, 10*time.Second, "the resolution", func() bool {
		for _, e := range drain(events) {
			if strings.Contains(string(e), `"state":"resolved"`) {
				return true
			}
		}
		return false
	})
	failures := m.Stats().WebhookFailures
	waitFor(t, 10*time.Second, "a failed payload after the resolution", func() bool { return m.Stats().WebhookFailures > failures })
	down.Store(false)

	waitFor(t, 10*time.Second, "the resolution at the receiver", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) > 0 && got[len(got)-1].Alerts[0].Status == "resolved"
	})
	mu.Lock()
	defer mu.Unlock()
	if n := len(got[len(got)-1].Alerts); n != 1 {
		t.Errorf("the last payload has %d alerts, want the one alert once", n)
	}
}

// TestSlowSubscriber: a subscriber that never reads loses events (counted)
// while another still receives all of them.
func TestSlowSubscriber(t *testing.T) {
	st := newFakeStore("x")
	m := newTestMonitor(t, st, Options{SubscriberBuffer: 2})
	m.AddRule("x", query.Last, 1, 0, "")
	_, cancelSlow := m.Subscribe()
	defer cancelSlow()
	fast, cancelFast := m.Subscribe()
	defer cancelFast()
	got := 0
	for i := range 5 {
		m.Observe([]tsdb.Sample{sample(1, int64(i), 1)})
		m.check()
		got += len(drain(fast))
	}
	if got != 5 || m.Stats().SubscriberDrops != 3 {
		t.Fatalf("fast subscriber got %d of 5; drops %d, want 3", got, m.Stats().SubscriberDrops)
	}
}

func TestBadWebhookURL(t *testing.T) {
	db := openDB(t, t.TempDir()+"/meta.db")
	defer db.Close()
	for _, u := range []string{"localhost:9093", "ftp://x/y", "http://", "::"} {
		_, err := New(Options{DB: db, Refs: newFakeStore().Refs, Webhooks: []string{u}})
		if err == nil {
			t.Errorf("webhook %q accepted", u)
		}
	}
}

// TestSubscriberBigCheck: a check with more notifications than
// SubscriberBuffer reaches a subscriber that reads, all of them: a check
// takes one place in its buffer.
func TestSubscriberBigCheck(t *testing.T) {
	st := newFakeStore("x")
	m := newTestMonitor(t, st, Options{SubscriberBuffer: 4})
	const rules = 300
	for i := range rules {
		if _, err := m.AddRule("x", query.Last, 1, float64(i), ""); err != nil {
			t.Fatal(err)
		}
	}
	events, cancel := m.Subscribe()
	defer cancel()
	m.Observe([]tsdb.Sample{sample(1, 1000, rules)})
	m.check()
	if got := len(drain(events)); got != rules || m.Stats().SubscriberDrops != 0 {
		t.Fatalf("subscriber got %d of %d notifications of one check, %d dropped", got, rules, m.Stats().SubscriberDrops)
	}
}

// TestExternalURLSlash: an --external-url ending in a slash does not make
// generatorURL hold "//".
func TestExternalURLSlash(t *testing.T) {
	m := newTestMonitor(t, newFakeStore("x"), Options{ExternalURL: "http://vigia.test:7575/"})
	a := m.amAlert(&event{ID: 3, State: "firing"})
	if a.GeneratorURL != "http://vigia.test:7575/api/v1/alerts/3" {
		t.Fatalf("generatorURL %q", a.GeneratorURL)
	}
}

// TestBackoffBounded: however many retries Options.WebhookRetries asks
// for, the delay before each stays positive and at most maxBackoff (a
// shift overflowed from the 35th on, and a negative delay made the sender
// panic in rand.N).
func TestBackoffBounded(t *testing.T) {
	prev := time.Duration(0)
	for n := range 200 {
		d := backoff(500*time.Millisecond, n)
		if d <= 0 || d > maxBackoff || d < prev {
			t.Fatalf("retry %d: delay %v after %v", n, d, prev)
		}
		prev = d
	}
	if d := backoff(500*time.Millisecond, 5); d != 16*time.Second {
		t.Fatalf("the pause after 5 retries is %v, want the 16 s docs/alerts.md gives", d)
	}
}

// lockedBuffer is a log destination safe for concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (lb *lockedBuffer) Write(p []byte) (int, error) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	return lb.b.Write(p)
}

func (lb *lockedBuffer) String() string {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	return lb.b.String()
}

// TestWebhookLogHidesSecrets: a webhook URL's credentials and query (where
// receivers take their tokens) stay out of the log, in the error of a
// failed POST too, not only in its url field.
func TestWebhookLogHidesSecrets(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://user:pa55word@" + l.Addr().String() + "/hook?token=s3cret"
	l.Close()
	var logs lockedBuffer
	st := newFakeStore("lat")
	m := newTestMonitor(t, st, Options{
		Webhooks: []string{down}, WebhookRetries: 1, DrainTimeout: time.Second,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	m.backoff0 = time.Millisecond
	m.AddRule("lat", query.Max, 1, 100, "")
	m.Observe([]tsdb.Sample{sample(1, 1000, 500)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	waitFor(t, 10*time.Second, "a failed delivery", func() bool { return m.Stats().WebhookFailures > 0 })
	cancel()
	<-done
	out := logs.String()
	if !strings.Contains(out, "alert webhook delivery failed") {
		t.Fatalf("no failure logged:\n%s", out)
	}
	for _, secret := range []string{"s3cret", "pa55word"} {
		if strings.Contains(out, secret) {
			t.Errorf("the log shows %q:\n%s", secret, out)
		}
	}
}

// TestDeletedAlertSummary: the resolution a delete sends does not say the
// value is "back to" one that still crosses the limit.
func TestDeletedAlertSummary(t *testing.T) {
	m := newTestMonitor(t, newFakeStore("x"), Options{})
	e := &event{ID: 1, Metric: "cpu", Op: "MAX", Secs: 60, Limit: 90, Cmp: ">", State: "resolved", Value: 99, deleted: true}
	if s := m.amAlert(e).Annotations["summary"]; !strings.Contains(s, "alert deleted while firing") || strings.Contains(s, "back to") {
		t.Fatalf("summary %q", s)
	}
	e.deleted = false
	if s := m.amAlert(e).Annotations["summary"]; !strings.Contains(s, "back to 99.0") {
		t.Fatalf("summary %q", s)
	}
}
