package alert

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/vigia-mon/vigia/internal/httpjson"
	"github.com/vigia-mon/vigia/internal/query"
)

// maxBody bounds a POSTed rule.
const maxBody = 64 << 10

// History page sizes.
const (
	defaultHistoryLimit = 100
	maxHistoryLimit     = 10_000
)

// Handler returns the HTTP API, to be mounted without stripping the
// prefix at both "/api/v1/alerts" and "/api/v1/alerts/":
//
//	GET    /api/v1/alerts                 JSON array of alerts (as ListJSON)
//	GET    /api/v1/alerts/{id}            one alert
//	GET    /api/v1/alerts/history?from=&to=&id=&limit=&before=
//	                                      notifications, newest first
//	POST   /api/v1/alerts                 {"metric","op","secs","limit","cmp"}
//	DELETE /api/v1/alerts/{id}
//
// Errors are JSON objects {"error": "..."} with a 4xx or 5xx status,
// including a path it does not serve (404) and a method it does not serve
// on a path (405, with an Allow header).
func (m *Monitor) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/alerts", m.serveList)
	mux.HandleFunc("GET /api/v1/alerts/{$}", m.serveList)
	mux.HandleFunc("POST /api/v1/alerts", m.serveCreate)
	mux.HandleFunc("POST /api/v1/alerts/{$}", m.serveCreate)
	mux.HandleFunc("GET /api/v1/alerts/history", m.serveHistory)
	for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		mux.Handle(method+" /api/v1/alerts/history", httpjson.NotServed{}) // not an alert id
	}
	mux.HandleFunc("GET /api/v1/alerts/{id}", m.serveGet)
	mux.HandleFunc("DELETE /api/v1/alerts/{id}", m.serveDelete)
	return httpjson.Routes(mux)
}

func (m *Monitor) serveList(w http.ResponseWriter, r *http.Request) {
	b, err := m.ListJSON()
	if err != nil {
		httpjson.Error(w, http.StatusInternalServerError, err.Error())
		return
	}
	httpjson.Write(w, http.StatusOK, b)
}

func pathID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		httpjson.Error(w, http.StatusBadRequest, "alert id must be a positive integer")
		return 0, false
	}
	return id, true
}

func (m *Monitor) serveGet(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	b, err := m.getJSON(id)
	if errors.Is(err, ErrNotFound) {
		httpjson.Error(w, http.StatusNotFound, "alert not found")
		return
	}
	if err != nil {
		httpjson.Error(w, http.StatusInternalServerError, err.Error())
		return
	}
	httpjson.Write(w, http.StatusOK, b)
}

func (m *Monitor) serveDelete(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	switch err := m.DeleteRule(id); {
	case errors.Is(err, ErrNotFound):
		httpjson.Error(w, http.StatusNotFound, "alert not found")
	case err != nil:
		httpjson.Error(w, http.StatusInternalServerError, err.Error())
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// bodyTimeout bounds the reading of a request's body, so that a client
// sending it slowly cannot hold one of the server's HTTP connections.
var bodyTimeout = 10 * time.Second

func (m *Monitor) serveCreate(w http.ResponseWriter, r *http.Request) {
	// Not every ResponseWriter can (a test's recorder): then unbounded.
	http.NewResponseController(w).SetReadDeadline(time.Now().Add(bodyTimeout))
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if errors.Is(err, os.ErrDeadlineExceeded) {
		httpjson.Error(w, http.StatusRequestTimeout, fmt.Sprintf("the request body did not arrive within %v", bodyTimeout))
		return
	}
	if err != nil {
		httpjson.Error(w, http.StatusBadRequest, "read body: "+err.Error())
		return
	}
	if len(body) > maxBody {
		httpjson.Error(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body over %d bytes", maxBody))
		return
	}
	req, err := parseRuleRequest(body)
	if err != nil {
		httpjson.Error(w, http.StatusBadRequest, err.Error())
		return
	}
	id, created, err := m.addRule(req.Metric, req.op, req.Secs, *req.Limit, req.Cmp)
	switch {
	case errors.Is(err, ErrBadRule), errors.Is(err, ErrTooManyRules):
		httpjson.Error(w, http.StatusBadRequest, err.Error())
		return
	case errors.Is(err, ErrMetricNotFound):
		httpjson.Error(w, http.StatusNotFound, "metric not found: "+req.Metric)
		return
	case err != nil:
		httpjson.Error(w, http.StatusInternalServerError, err.Error())
		return
	}
	b, err := m.getJSON(id)
	if err != nil { // deleted in between
		httpjson.Error(w, http.StatusConflict, err.Error())
		return
	}
	code := http.StatusOK
	if created {
		code = http.StatusCreated
	}
	w.Header().Set("Location", "/api/v1/alerts/"+strconv.FormatInt(id, 10))
	httpjson.Write(w, code, b)
}

// ruleRequest is the body of POST /api/v1/alerts.
type ruleRequest struct {
	Metric string   `json:"metric"`
	Op     string   `json:"op"`
	Secs   int64    `json:"secs"`
	Limit  *float64 `json:"limit"` // required: there is no sensible default
	Cmp    string   `json:"cmp"`

	op query.Op
}

// parseRuleRequest decodes and validates a POSTed rule: one JSON object,
// no unknown fields, nothing after it. op is matched case-insensitively.
// Errors wrap ErrBadRule.
func parseRuleRequest(body []byte) (ruleRequest, error) {
	var req ruleRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return ruleRequest{}, fmt.Errorf("%w: body must be a JSON object {\"metric\",\"op\",\"secs\",\"limit\",\"cmp\"}: %v", ErrBadRule, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return ruleRequest{}, fmt.Errorf("%w: data after the JSON object", ErrBadRule)
	}
	op, ok := query.ParseOp([]byte(strings.ToUpper(req.Op)))
	if !ok {
		return ruleRequest{}, fmt.Errorf("%w: unknown op %q", ErrBadRule, req.Op)
	}
	req.op = op
	if req.Limit == nil {
		return ruleRequest{}, fmt.Errorf("%w: limit is required (a number)", ErrBadRule)
	}
	if _, err := validate(req.Metric, op, req.Secs, *req.Limit, req.Cmp); err != nil {
		return ruleRequest{}, err
	}
	return req, nil
}

func (m *Monitor) serveHistory(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var from, id int64
	to := int64(math.MaxInt64)
	var err error
	if s := q.Get("from"); s != "" {
		if from, err = query.ParseTime([]byte(s)); err != nil {
			httpjson.Error(w, http.StatusBadRequest, "from: "+err.Error())
			return
		}
	}
	if s := q.Get("to"); s != "" {
		if to, err = query.ParseTime([]byte(s)); err != nil {
			httpjson.Error(w, http.StatusBadRequest, "to: "+err.Error())
			return
		}
	}
	if s := q.Get("id"); s != "" {
		if id, err = strconv.ParseInt(s, 10, 64); err != nil || id < 1 {
			httpjson.Error(w, http.StatusBadRequest, "id must be a positive integer")
			return
		}
	}
	limit := defaultHistoryLimit
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if errors.Is(err, strconv.ErrRange) && s[0] != '-' {
			n, err = maxHistoryLimit, nil // "larger is taken as the most", however large
		}
		if err != nil || n < 1 {
			httpjson.Error(w, http.StatusBadRequest, fmt.Sprintf("limit must be a whole number, at least 1 (at most %d entries are answered)", maxHistoryLimit))
			return
		}
		limit = min(n, maxHistoryLimit)
	}
	var before []byte
	if s := q.Get("before"); s != "" {
		if before, err = hex.DecodeString(s); err != nil || len(before) != 16 {
			httpjson.Error(w, http.StatusBadRequest, `before must be the value a Link: rel="next" header gave`)
			return
		}
	}
	b, next, err := m.history(from, to, id, limit, before)
	if err != nil {
		httpjson.Error(w, http.StatusInternalServerError, err.Error())
		return
	}
	if next != nil {
		q.Set("before", hex.EncodeToString(next))
		w.Header().Set("Link", "<"+r.URL.Path+"?"+q.Encode()+`>; rel="next"`)
	}
	httpjson.Write(w, http.StatusOK, b)
}
