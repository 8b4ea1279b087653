package httpapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigia-mon/vigia/internal/query"
	"github.com/vigia-mon/vigia/internal/tsdb"
)

// TestQueryBudget: a query whose windows do not fit in what the budget has
// left gets 503 with Retry-After, one bigger than the whole budget 400; a
// small one is answered; what a query took is given back once its reply
// is written.
func TestQueryBudget(t *testing.T) {
	db, err := tsdb.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var pts [][2]float64
	for i := range 50_000 {
		pts = append(pts, [2]float64{float64(1650931200000 + 1000*i), float64(i)})
	}
	logSamples(t, db, "m", nil, pts...)
	const size = 4 << 20
	budget := query.NewBudget(size)
	srv := httptest.NewServer(Handler(Options{Store: db, Gatherer: prometheus.NewRegistry(), QueryBudget: budget}))
	defer srv.Close()

	// Other queries hold all but 256 KiB: 50,000 windows wait for them.
	budget.Take(size - 256<<10)
	resp, err := http.Get(srv.URL + "/api/v1/query?name=m&op=MAX&secs=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("50,000 windows with 256 KiB left: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	budget.Give(size - 256<<10)
	if code, body := get(t, "GET", srv.URL+"/api/v1/query?name=m&op=MAX&secs=1"); code != 200 || budget.Free() != size {
		t.Fatalf("50,000 windows with the budget free: %d %.100s; %d bytes free after", code, body, budget.Free())
	}
	if code, body := get(t, "GET", srv.URL+"/api/v1/query?name=m&op=COUNT&secs=10000"); code != 200 || !strings.Contains(body, `"value":10000`) {
		t.Fatalf("a small query: %d %.200s", code, body)
	}
	if budget.Free() != size {
		t.Fatalf("budget has %d bytes free after the queries, want %d", budget.Free(), size)
	}

	tiny := query.NewBudget(256 << 10)
	srv2 := httptest.NewServer(Handler(Options{Store: db, Gatherer: prometheus.NewRegistry(), QueryBudget: tiny}))
	defer srv2.Close()
	if code, body := get(t, "GET", srv2.URL+"/api/v1/query?name=m&op=MAX&secs=1"); code != 400 || !strings.Contains(body, "--max-query-memory") {
		t.Fatalf("50,000 windows in a 256 KiB budget: %d %.200s; want 400", code, body)
	}
}

// deadlineRecorder is a ResponseWriter that records its write deadlines.
type deadlineRecorder struct {
	httptest.ResponseRecorder
	deadlines []time.Time
}

func (d *deadlineRecorder) SetWriteDeadline(t time.Time) error {
	d.deadlines = append(d.deadlines, t)
	return nil
}

// TestPieceDeadlines: a long reply's deadline is the write timeout plus a
// second for each MiB written before, so a client must keep reading at
// 1 MiB/s rather than a piece a minute.
func TestPieceDeadlines(t *testing.T) {
	a := &api{opts: Options{WriteTimeout: time.Minute}}
	rec := &deadlineRecorder{ResponseRecorder: *httptest.NewRecorder()}
	p := a.pieces(rec)
	piece := make([]byte, 1<<20)
	for range 3 {
		if _, err := p.Write(piece); err != nil {
			t.Fatal(err)
		}
	}
	for i, d := range rec.deadlines {
		if want := p.start.Add(time.Minute + time.Duration(i)*time.Second); !d.Equal(want) {
			t.Errorf("deadline %d: start+%v, want start+%v", i, d.Sub(p.start), want.Sub(p.start))
		}
	}
	if len(rec.deadlines) != 3 {
		t.Fatalf("%d deadlines set", len(rec.deadlines))
	}
}
