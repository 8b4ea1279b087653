package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigia-mon/vigia/internal/query"
	"github.com/vigia-mon/vigia/internal/tsdb"
)

func newAPI(t *testing.T) (*httptest.Server, *tsdb.DB) {
	t.Helper()
	db, err := tsdb.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "vigia_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Add(3)
	srv := httptest.NewServer(Handler(Options{Store: db, Gatherer: reg}))
	t.Cleanup(srv.Close)
	return srv, db
}

func logSamples(t *testing.T, db *tsdb.DB, name string, labels []tsdb.Label, pts ...[2]float64) {
	t.Helper()
	ref, err := db.GetOrCreate([]byte(name), labels)
	if err != nil {
		t.Fatal(err)
	}
	var s []tsdb.Sample
	for _, p := range pts {
		s = append(s, tsdb.Sample{Ref: ref, T: int64(p[0]), V: p[1]})
	}
	if err := db.Append(s); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAPI(t *testing.T) {
	srv, db := newAPI(t)
	const t0 = 1650931200000
	logSamples(t, db, "cpu", nil, [2]float64{t0, 0.5}, [2]float64{t0 + 30000, 1}, [2]float64{t0 + 70000, 4})
	// A second series under the same name (labels from another entry
	// point) is merged into the same windows.
	logSamples(t, db, "cpu", []tsdb.Label{{Name: "host", Value: "b"}}, [2]float64{t0 + 10000, 2})
	logSamples(t, db, "big", nil, [2]float64{t0, 1e308}, [2]float64{t0 + 1000, 1.5e308})
	tests := []struct {
		method, path string
		code         int
		body         string
	}{
		{"GET", "/healthz", 200, "ok\n"},
		{"GET", "/api/v1/query?name=cpu&op=COUNT&secs=60", 200,
			`{"name":"cpu","op":"COUNT","points":[{"start":"2022-04-26T00:00:00.000Z","value":3},{"start":"2022-04-26T00:01:00.000Z","value":1}],"secs":60}` + "\n"},
		{"GET", "/api/v1/query?name=cpu&op=MAX&secs=60&from=2022-04-26T00:00:20&to=1650931300", 200,
			`{"name":"cpu","op":"MAX","points":[{"start":"2022-04-26T00:00:20.000Z","value":4}],"secs":60}` + "\n"},
		{"GET", "/api/v1/query?name=nope&op=MAX&secs=60", 404, `{"error":"metric not found"}` + "\n"},
		// A SUM over finite values can overflow; their AVG does not.
		{"GET", "/api/v1/query?name=big&op=SUM&secs=60", 200,
			`{"name":"big","op":"SUM","points":[{"start":"2022-04-26T00:00:00.000Z","value":"inf"}],"secs":60}` + "\n"},
		{"GET", "/api/v1/query?name=big&op=AVG&secs=60", 200,
			`{"name":"big","op":"AVG","points":[{"start":"2022-04-26T00:00:00.000Z","value":1.25e+308}],"secs":60}` + "\n"},
		{"GET", "/api/v1/query?name=cpu&op=P42&secs=60", 400, ""},
		{"GET", "/api/v1/query?name=cpu&op=MAX&secs=0", 400, ""},
		{"GET", "/api/v1/query?name=cpu&op=MAX&secs=253402300800", 400, `{"error":"secs: want a whole number of seconds from 1 to 253402300799"}` + "\n"},
		// A query string that does not parse is refused as such, not read
		// as if the parameters it holds were missing.
		{"GET", "/api/v1/query?name=a;b&op=MAX&secs=60", 400,
			`{"error":"bad query string: invalid semicolon separator in query (escape ';' as %3B and '%' as %25)"}` + "\n"},
		{"GET", "/api/v1/export?name=%zz", 400,
			`{"error":"bad query string: invalid URL escape \"%zz\" (escape ';' as %3B and '%' as %25)"}` + "\n"},
		{"GET", "/api/v1/metrics?prefix=a;b", 400, ""},
		{"GET", "/api/v1/query?name=cpu&op=MAX&secs=1&from=yesterday", 400, `{"error":"from: timestamp is neither ISO 8601 nor unix seconds"}` + "\n"},
		{"GET", "/api/v1/query?op=MAX&secs=60", 400, `{"error":"name: required"}` + "\n"},
		{"GET", "/api/v1/export?name=cpu&from=1650931200000", 400,
			`{"error":"from: timestamp is past the year 9999 as unix seconds (milliseconds? divide by 1000)"}` + "\n"},
		{"GET", "/api/v1/query?name=cpu&op=count&secs=3600", 200,
			`{"name":"cpu","op":"COUNT","points":[{"start":"2022-04-26T00:00:00.000Z","value":4}],"secs":3600}` + "\n"},
		{"GET", "/api/v1/export", 400, `{"error":"name: required"}` + "\n"},
		{"GET", "/api/v1/export?name=nope", 404, `{"error":"metric not found"}` + "\n"},
		{"GET", "/api/v1/export?name=cpu&to=2022-04-26T00:00:31", 200,
			"time,value\n2022-04-26T00:00:00.000Z,0.5\n2022-04-26T00:00:10.000Z,2.0\n2022-04-26T00:00:30.000Z,1.0\n"},
		{"GET", "/api/v1/export?name=cpu&format=json&from=1650931230", 200, "[[1650931230000,1],[1650931270000,4]]\n"},
		{"GET", "/api/v1/export?name=cpu&format=xml", 400, ""},
		{"GET", "/api/v1/metrics", 200, `["big","cpu"]` + "\n"},
		{"GET", "/api/v1/metrics?prefix=x", 200, "[]\n"},
		{"POST", "/api/v1/admin/flush", 200, ""},
		{"GET", "/api/v1/admin/flush", 405, `{"error":"GET /api/v1/admin/flush: method not allowed, use POST"}` + "\n"},
		{"DELETE", "/api/v1/query", 405, `{"error":"DELETE /api/v1/query: method not allowed, use GET"}` + "\n"},
		{"GET", "/api/v1/nope", 404, `{"error":"no such endpoint: /api/v1/nope"}` + "\n"},
		{"GET", "/api/v1/alerts", 404, ""},
	}
	for _, tt := range tests {
		code, body := get(t, tt.method, srv.URL+tt.path)
		if code != tt.code || tt.body != "" && body != tt.body {
			t.Errorf("%s %s: %d %q, want %d %q", tt.method, tt.path, code, body, tt.code, tt.body)
		}
	}
	// The flush moved the head into parts; answers are unchanged.
	if st := db.Stats(); st.HeadSamples != 0 || st.Parts == 0 {
		t.Errorf("after flush: %+v", st)
	}
	if _, body := get(t, "GET", srv.URL+"/api/v1/query?name=cpu&op=COUNT&secs=3600"); !strings.Contains(body, `"value":4`) {
		t.Errorf("after flush: %s", body)
	}
	_, body := get(t, "GET", srv.URL+"/metrics")
	if !strings.Contains(body, "vigia_test_total 3") {
		t.Errorf("/metrics: %s", body)
	}
}

func TestHealthNotReady(t *testing.T) {
	db, err := tsdb.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	srv := httptest.NewServer(Handler(Options{Store: db, Gatherer: prometheus.NewRegistry(),
		Ready: func() error { return io.ErrUnexpectedEOF }}))
	defer srv.Close()
	if code, _ := get(t, "GET", srv.URL+"/healthz"); code != 503 {
		t.Fatal(code)
	}
}

// failingStore fails every Scan after its samples were passed on.
type failingStore struct{ *tsdb.DB }

func (f failingStore) Scan(ref tsdb.SeriesRef, mint, maxt int64, fn func(ts []int64, vs []float64) bool) error {
	if err := f.DB.Scan(ref, mint, maxt, fn); err != nil {
		return err
	}
	return errors.New("part 7: checksum mismatch")
}

// TestExportFails: an export whose read fails answers 500 when nothing
// was sent yet, and otherwise breaks the transfer rather than end it as if
// the export were complete.
func TestExportFails(t *testing.T) {
	db, err := tsdb.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	srv := httptest.NewServer(Handler(Options{Store: failingStore{db}, Gatherer: prometheus.NewRegistry(),
		Logger: slog.New(slog.DiscardHandler)}))
	defer srv.Close()
	logSamples(t, db, "short", nil, [2]float64{1650931200000, 1})
	var long [][2]float64
	for i := range 5000 {
		long = append(long, [2]float64{float64(1650931200000 + 1000*i), float64(i)})
	}
	logSamples(t, db, "long", nil, long...)

	if code, body := get(t, "GET", srv.URL+"/api/v1/export?name=short"); code != 500 || body != `{"error":"part 7: checksum mismatch"}`+"\n" {
		t.Errorf("export failing before any row: %d %q", code, body)
	}
	resp, err := http.Get(srv.URL + "/api/v1/export?name=long")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || err == nil {
		t.Errorf("export failing after %d bytes: status %d, body read error %v; want 200 and a broken transfer", len(b), resp.StatusCode, err)
	}
}

// TestAppendValue: query values are written as encoding/json writes a
// float64, infinities as the alert API's strings.
func TestAppendValue(t *testing.T) {
	vals := []float64{0, math.Copysign(0, -1), 1, -1, 0.5, 4, 1e-6, 9.99e-7, 1e-7, 1.5e-7, 1e20, 1e21, 1.25e308,
		-1e21, math.SmallestNonzeroFloat64, math.MaxFloat64, 123456789.125, 1e-300}
	r := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		if v := math.Float64frombits(r.Uint64()); !math.IsNaN(v) && !math.IsInf(v, 0) {
			vals = append(vals, v)
		}
	}
	for _, v := range vals {
		want, _ := json.Marshal(v)
		if got := appendValue(nil, v); string(got) != string(want) {
			t.Fatalf("appendValue(%v) = %s, want %s", v, got, want)
		}
	}
	for v, want := range map[float64]string{math.Inf(1): `"inf"`, math.Inf(-1): `"-inf"`, math.NaN(): `"nan"`} {
		if got := appendValue(nil, v); string(got) != want {
			t.Errorf("appendValue(%v) = %s, want %s", v, got, want)
		}
	}
}

// TestQueryLong: a reply written in several pieces is one valid JSON
// document holding every window.
func TestQueryLong(t *testing.T) {
	srv, db := newAPI(t)
	var pts [][2]float64
	for i := range 5000 {
		pts = append(pts, [2]float64{float64(1650931200000 + 1000*i), float64(i) / 4})
	}
	logSamples(t, db, "long", nil, pts...)
	code, body := get(t, "GET", srv.URL+"/api/v1/query?name=long&op=MAX&secs=1")
	var reply struct {
		Name   string
		Op     string
		Secs   int
		Points []struct {
			Start string
			Value float64
		}
	}
	if err := json.Unmarshal([]byte(body), &reply); code != 200 || err != nil {
		t.Fatalf("%d, %v: %.200s", code, err, body)
	}
	if reply.Name != "long" || reply.Op != "MAX" || reply.Secs != 1 || len(reply.Points) != 5000 ||
		reply.Points[4999].Value != 4999.0/4 || reply.Points[4999].Start != "2022-04-26T01:23:19.000Z" {
		t.Errorf("reply: %s %s %d, %d points, last %+v", reply.Name, reply.Op, reply.Secs, len(reply.Points), reply.Points[len(reply.Points)-1])
	}
}

// endlessStore holds one series, "m", whose scan never ends on its own;
// done receives once a scan has ended.
type endlessStore struct {
	*tsdb.DB
	done chan struct{}
}

func (s endlessStore) RefsByName(name []byte) []tsdb.SeriesRef {
	if string(name) != "m" {
		return nil
	}
	return []tsdb.SeriesRef{1}
}

func (s endlessStore) Scan(_ tsdb.SeriesRef, mint, maxt int64, fn func(ts []int64, vs []float64) bool) error {
	defer func() { s.done <- struct{}{} }()
	ts, vs := make([]int64, 8192), make([]float64, 8192)
	for t := int64(1650931200000); ; {
		for i := range ts {
			ts[i], vs[i] = t, float64(t%1000)/8
			t++
		}
		if !fn(ts, vs) {
			return nil
		}
	}
}

// TestExportClientStopsReading: a client that stops reading an export
// loses its connection after the write timeout, and the scan it held ends.
func TestExportClientStopsReading(t *testing.T) {
	db, err := tsdb.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st := endlessStore{DB: db, done: make(chan struct{}, 1)}
	srv := httptest.NewServer(Handler(Options{Store: st, Gatherer: prometheus.NewRegistry(),
		WriteTimeout: 50 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)}))
	defer srv.Close()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /api/v1/export?name=m HTTP/1.1\r\nHost: x\r\n\r\n")
	select {
	case <-st.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the export of a client that reads nothing still runs after 30 s")
	}
}

// FuzzQueryParams sends the query endpoint any parameters: it answers 200
// with windows in order inside [from, to), or a 4xx, never a 5xx.
func FuzzQueryParams(f *testing.F) {
	db, err := tsdb.Open(f.TempDir(), nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { db.Close() })
	// Samples at the first and last millisecond vigia takes, and between.
	ref, err := db.GetOrCreate([]byte("m"), nil)
	if err != nil {
		f.Fatal(err)
	}
	if err := db.Append([]tsdb.Sample{{Ref: ref, T: 0, V: 1}, {Ref: ref, T: 1650931200000, V: 2}, {Ref: ref, T: 1650931200001, V: -3},
		{Ref: ref, T: 253402300799999, V: 1e308}}); err != nil {
		f.Fatal(err)
	}
	h := Handler(Options{Store: db, Gatherer: prometheus.NewRegistry(), MaxQueryPoints: 100, Logger: slog.New(slog.DiscardHandler)})
	for _, s := range [][4]string{
		{"AVG", "60", "", ""}, {"count", "1", "0", "253402300799.999"}, {"MAX", "253402300799", "1970-01-01", "9999-12-31T23:59:59.999Z"},
		{"SUM", "1", "253402300799.999", "0"}, {"LAST", "9223372036854775807", "", ""}, {"MIN", "-1", "x", "1e9"},
		{"AVG", "1", "2022-04-26T00:00:00+14:00", "2022-04-26T00:00:00-12:00"},
	} {
		f.Add(s[0], s[1], s[2], s[3])
	}
	f.Fuzz(func(t *testing.T, op, secs, from, to string) {
		q := url.Values{"name": {"m"}, "op": {op}, "secs": {secs}}
		if from != "" {
			q.Set("from", from)
		}
		if to != "" {
			q.Set("to", to)
		}
		// The export of the same range holds the samples in it.
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/export?format=json&"+q.Encode(), nil))
		if rec.Code != 200 && rec.Code != 400 {
			t.Fatalf("export %s: %d %s", q.Encode(), rec.Code, rec.Body)
		}
		var rows [][2]float64
		if err := json.Unmarshal(rec.Body.Bytes(), &rows); rec.Code == 200 && err != nil {
			t.Fatalf("export %s: %v: %s", q.Encode(), err, rec.Body)
		}
		rec = httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/query?"+q.Encode(), nil))
		if rec.Code != 200 {
			if rec.Code != 400 {
				t.Fatalf("%s: %d %s", q.Encode(), rec.Code, rec.Body)
			}
			return
		}
		var reply struct {
			Secs   int64
			Points []struct {
				Start string
				Value any
			}
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &reply); err != nil {
			t.Fatalf("%s: %v: %s", q.Encode(), err, rec.Body)
		}
		mint, maxt := int64(math.MinInt64), int64(math.MaxInt64)
		if from != "" {
			mint, _ = query.ParseTime([]byte(from))
		}
		if to != "" {
			maxt, _ = query.ParseTime([]byte(to))
		}
		for _, r := range rows {
			if ms := int64(r[0]); ms < mint || ms >= maxt {
				t.Fatalf("export %s: row %v out of range", q.Encode(), r)
			}
		}
		last := int64(math.MinInt64)
		for _, p := range reply.Points {
			tm, err := time.Parse(time.RFC3339Nano, p.Start)
			if err != nil {
				t.Fatalf("%s: start %q: %v", q.Encode(), p.Start, err)
			}
			start := tm.UnixMilli()
			if start <= last || start >= maxt || start+reply.Secs*1000 <= mint {
				t.Fatalf("%s: window %s out of order or out of range: %s", q.Encode(), p.Start, rec.Body)
			}
			last = start
		}
	})
}
