package alert

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/vigia-mon/vigia/internal/query"
	"github.com/vigia-mon/vigia/internal/tsdb"
)

func TestHTTPAPI(t *testing.T) {
	st := newFakeStore("cpu")
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	m := newTestMonitor(t, st, Options{Now: func() time.Time { return now }})
	// Mounted as the server mounts it: both paths, no prefix stripping.
	mux := http.NewServeMux()
	mux.Handle("/api/v1/alerts", m.Handler())
	mux.Handle("/api/v1/alerts/", m.Handler())
	srv := httptest.NewServer(mux)
	defer srv.Close()

	do := func(method, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusNoContent && resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: Content-Type %q", method, path, resp.Header.Get("Content-Type"))
		}
		return resp.StatusCode, string(b)
	}

	if code, body := do("GET", "/api/v1/alerts", ""); code != 200 || strings.TrimSpace(body) != "[]" {
		t.Fatalf("empty list: %d %s", code, body)
	}
	code, body := do("POST", "/api/v1/alerts", `{"metric":"cpu","op":"max","secs":60,"limit":90}`)
	if code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	var a alertJSON
	decodeJSON(t, []byte(body), &a)
	if a.ID != 1 || a.Op != "MAX" || a.Cmp != ">" || a.State != "inactive" {
		t.Fatalf("created %+v", a)
	}
	if code, _ := do("POST", "/api/v1/alerts/", `{"metric":"cpu","op":"MAX","secs":60,"limit":90,"cmp":">"}`); code != 200 {
		t.Errorf("re-registering the same rule: %d, want 200", code)
	}
	for _, tc := range []struct{ body, want string }{
		{`{"metric":"nope","op":"MAX","secs":60,"limit":1}`, "404"},
		{`{"metric":"cpu","op":"P42","secs":60,"limit":1}`, "400"},
		{`{"metric":"cpu","op":"MAX","secs":0,"limit":1}`, "400"},
		{`{"metric":"cpu","op":"MAX","secs":1.5,"limit":1}`, "400"},
		{`{"metric":"cpu","op":"MAX","secs":1,"limit":"NaN"}`, "400"},
		{`{"metric":"cpu","op":"MAX","secs":1,"limit":1e999}`, "400"},
		{`{"metric":"cpu","op":"MAX","secs":1,"limit":1,"cmp":"=="}`, "400"},
		{`{"metric":"cpu","op":"MAX","secs":1,"limit":1,"extra":true}`, "400"},
		{`{"metric":"cpu","op":"MAX","secs":1}`, "400"},
		{`{"metric":"cpu","op":"MAX","secs":1,"limit":null}`, "400"},
		{`{"metric":"cpu","op":"MAX","secs":1,"limit":1} {}`, "400"},
		{`not json`, "400"},
	} {
		code, body := do("POST", "/api/v1/alerts", tc.body)
		if got := http.StatusText(code); code/100 != int(tc.want[0]-'0') || !strings.Contains(body, `"error"`) {
			t.Errorf("POST %s: %d %s (%s), want %s", tc.body, code, body, got, tc.want)
		}
	}
	if ls := list(t, m); len(ls) != 1 {
		t.Fatalf("bad POSTs changed the rules: %+v", ls)
	}

	m.Observe([]tsdb.Sample{sample(1, 5000, 99)})
	m.check()
	now = now.Add(time.Minute)
	m.Observe([]tsdb.Sample{sample(1, 65000, 10)})
	m.check()

	code, body = do("GET", "/api/v1/alerts/1", "")
	decodeJSON(t, []byte(body), &a)
	if code != 200 || a.State != "resolved" {
		t.Fatalf("get: %d %s", code, body)
	}
	var hist []eventJSON
	code, body = do("GET", "/api/v1/alerts/history", "")
	decodeJSON(t, []byte(body), &hist)
	if code != 200 || len(hist) != 2 || hist[0].State != "resolved" || hist[1].State != "firing" {
		t.Fatalf("history (newest first): %d %s", code, body)
	}
	// from/to in ISO 8601 and unix seconds, id and limit filters.
	for q, want := range map[string]int{
		"?limit=1":                       1,
		"?limit=99999999999999999999":    2,
		"?from=2026-03-01T00:00:30":      1,
		"?to=2026-03-01T00:00:30Z":       1,
		"?to=1772323200":                 0,
		"?to=0":                          0,
		"?from=1772323200&to=1772323261": 2,
		"?id=1":                          2,
		"?id=2":                          0,
	} {
		code, body := do("GET", "/api/v1/alerts/history"+q, "")
		decodeJSON(t, []byte(body), &hist)
		if code != 200 || len(hist) != want {
			t.Errorf("history%s: %d, %d entries, want %d: %s", q, code, len(hist), want, body)
		}
	}
	for _, q := range []string{"?from=yesterday", "?to=x", "?limit=0", "?limit=x", "?limit=-99999999999999999999", "?id=-1"} {
		if code, _ := do("GET", "/api/v1/alerts/history"+q, ""); code != 400 {
			t.Errorf("history%s: %d, want 400", q, code)
		}
	}
	// The history is not an alert id, whatever the method.
	for _, method := range []string{"DELETE", "POST", "PUT"} {
		if code, body := do(method, "/api/v1/alerts/history", ""); code != 405 || !strings.Contains(body, `use GET"`) {
			t.Errorf("%s history: %d %s, want 405 with only GET allowed", method, code, body)
		}
	}

	if code, _ := do("DELETE", "/api/v1/alerts/x", ""); code != 400 {
		t.Errorf("delete x: %d", code)
	}
	if code, _ := do("DELETE", "/api/v1/alerts/7", ""); code != 404 {
		t.Errorf("delete 7: %d", code)
	}
	if code, _ := do("DELETE", "/api/v1/alerts/1", ""); code != 204 {
		t.Errorf("delete 1: %d", code)
	}
	if code, _ := do("GET", "/api/v1/alerts/1", ""); code != 404 {
		t.Errorf("get deleted: %d", code)
	}
	if code, _ := do("PUT", "/api/v1/alerts", "{}"); code != 405 {
		t.Errorf("PUT: %d, want 405", code)
	}
}

// TestHTTPUnroutedErrorsAreJSON: a path or method the alert API does not
// serve gets a JSON error, as every other error (docs/http.md), not the
// mux's plain text.
func TestHTTPUnroutedErrorsAreJSON(t *testing.T) {
	m := newTestMonitor(t, newFakeStore("cpu"), Options{})
	mux := http.NewServeMux()
	mux.Handle("/api/v1/alerts", m.Handler())
	mux.Handle("/api/v1/alerts/", m.Handler())
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for _, tc := range []struct {
		method, path string
		code         int
		allow        string
	}{
		{"PUT", "/api/v1/alerts", 405, "GET, POST"},
		{"DELETE", "/api/v1/alerts", 405, "GET, POST"},
		{"PATCH", "/api/v1/alerts/1", 405, "GET, DELETE"},
		{"GET", "/api/v1/alerts/1/state", 404, ""},
	} {
		req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var e struct {
			Error string `json:"error"`
		}
		if resp.StatusCode != tc.code || resp.Header.Get("Allow") != tc.allow ||
			resp.Header.Get("Content-Type") != "application/json" || json.Unmarshal(b, &e) != nil || e.Error == "" {
			t.Errorf("%s %s: %d, Allow %q, Content-Type %q, body %q; want %d with Allow %q and a JSON error",
				tc.method, tc.path, resp.StatusCode, resp.Header.Get("Allow"), resp.Header.Get("Content-Type"), b, tc.code, tc.allow)
		}
	}
}

func FuzzParseRuleRequest(f *testing.F) {
	for _, s := range []string{
		`{"metric":"cpu","op":"MAX","secs":60,"limit":90}`,
		`{"metric":"disk.used","op":"avg","secs":300,"limit":0.9,"cmp":">="}`,
		`{"metric":"q","op":"COUNT","secs":1,"limit":-1e-05,"cmp":"<"}`,
		`{"metric":"cpu","op":"MAX","secs":1,"limit":1} {}`,
		`{"metric":"","op":"MAX","secs":1,"limit":1}`,
		`{"metric":"a b","op":"SUM","secs":9999999999999,"limit":1e308}`,
		`[]`, `null`, `{}`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := parseRuleRequest(body)
		if err != nil {
			if !errors.Is(err, ErrBadRule) {
				t.Fatalf("error %v does not wrap ErrBadRule", err)
			}
			return
		}
		// What parses is a valid rule, and survives a round trip.
		if _, err := validate(req.Metric, req.op, req.Secs, *req.Limit, req.Cmp); err != nil {
			t.Fatalf("accepted an invalid rule %+v: %v", req, err)
		}
		b, _ := json.Marshal(req)
		again, err := parseRuleRequest(b)
		if err != nil || again.Metric != req.Metric || again.op != req.op || again.Secs != req.Secs ||
			*again.Limit != *req.Limit || again.Cmp != req.Cmp {
			t.Fatalf("round trip of %s: %+v, %v", b, again, err)
		}
	})
}

// TestHTTPSlowBody: a POST whose body does not arrive in time gets a 408
// instead of holding its connection.
func TestHTTPSlowBody(t *testing.T) {
	old := bodyTimeout
	bodyTimeout = 200 * time.Millisecond
	defer func() { bodyTimeout = old }()
	m := newTestMonitor(t, newFakeStore("cpu"), Options{})
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	nc, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	io.WriteString(nc, "POST /api/v1/alerts HTTP/1.1\r\nHost: vigia\r\nContent-Length: 100\r\n\r\n{\"metric\":")
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		t.Fatalf("no reply to a stalled body: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(b), "did not arrive") {
		t.Errorf("stalled body: %s %s", resp.Status, b)
	}
}

// TestHistoryPages: the notifications of one check share a time, so `to`
// cannot page through them; the Link: rel="next" header can, and paging
// through it returns every notification exactly once, newest first.
func TestHistoryPages(t *testing.T) {
	st := newFakeStore("cpu")
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	m := newTestMonitor(t, st, Options{Now: func() time.Time { return now }})
	const rules = 25
	for i := range rules {
		if _, err := m.AddRule("cpu", query.Max, 1, float64(i), ">"); err != nil {
			t.Fatal(err)
		}
	}
	m.Observe([]tsdb.Sample{sample(1, 1000, 100)})
	m.check()
	now = now.Add(time.Minute)
	m.Observe([]tsdb.Sample{sample(1, 2000, 100)})
	m.check()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()

	for _, tc := range []struct {
		query string
		want  int
	}{{"?limit=10", 2 * rules}, {"?limit=7&id=3", 2}, {"?limit=1&id=3", 2}, {"?limit=50", 2 * rules}} {
		var got []eventJSON
		pages := 0
		for next := srv.URL + "/api/v1/alerts/history" + tc.query; next != ""; pages++ {
			if pages > 2*rules {
				t.Fatalf("%s: no end to the pages", tc.query)
			}
			resp, err := http.Get(next)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var page []eventJSON
			decodeJSON(t, b, &page)
			if resp.StatusCode != 200 || len(page) == 0 {
				t.Fatalf("%s page %d: %d %s", tc.query, pages, resp.StatusCode, b)
			}
			got = append(got, page...)
			next = ""
			if l := resp.Header.Get("Link"); l != "" {
				path, ok := strings.CutSuffix(strings.TrimPrefix(l, "<"), `>; rel="next"`)
				if !ok {
					t.Fatalf("Link %q", l)
				}
				next = srv.URL + path
			}
		}
		if len(got) != tc.want {
			t.Fatalf("%s: %d notifications over %d pages, want %d", tc.query, len(got), pages, tc.want)
		}
		type key struct {
			id   int64
			time string
		}
		seen := map[key]bool{}
		for i, e := range got {
			key := key{e.ID, e.Time}
			if seen[key] {
				t.Fatalf("%s: notification of alert %d at %s twice", tc.query, e.ID, e.Time)
			}
			seen[key] = true
			if i > 0 && e.Time > got[i-1].Time {
				t.Fatalf("%s: not newest first at %d", tc.query, i)
			}
		}
	}
	resp, err := http.Get(srv.URL + "/api/v1/alerts/history?before=xyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("a bad before: %d, want 400", resp.StatusCode)
	}
}
