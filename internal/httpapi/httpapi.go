// Package httpapi serves vigia's HTTP API: health, the server's own
// metrics in Prometheus' exposition format, windowed queries as JSON, the
// alert API and admin actions.
package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vigia-mon/vigia/internal/httpjson"
	"github.com/vigia-mon/vigia/internal/query"
	"github.com/vigia-mon/vigia/internal/tsdb"
)

// Store is the part of the metrics store the API reads. *tsdb.DB
// implements it.
type Store interface {
	query.Store
	Names(prefix string) []string
	Flush() error
}

var _ Store = (*tsdb.DB)(nil)

// Options configures the API handler. Store and Gatherer are required.
type Options struct {
	Store Store
	// Gatherer provides /metrics.
	Gatherer prometheus.Gatherer
	// Alerts serves /api/v1/alerts and everything under it; nil answers 404.
	Alerts http.Handler
	// MaxQueryPoints caps the windows of a query reply; beyond it the
	// query gets a 400. Default 1,000,000.
	MaxQueryPoints int
	// QueryBudget, if not nil, bounds the memory of the queries and
	// exports running at once (shared with the native protocol's); one that
	// finds none left gets 503, one that needs more than all of it 400.
	QueryBudget *query.Budget
	// WriteTimeout bounds each write of a reply that is sent in pieces
	// (query, export): a client that stops reading for longer loses its
	// connection, and the server lets go of what the reply held (a scan of
	// the store, a query's windows). Default 1 minute.
	WriteTimeout time.Duration
	// Ready reports whether the server is up; a non-nil error makes
	// /healthz answer 503 with its text.
	Ready func() error
	// Logger receives request errors, with "component"="http".
	Logger *slog.Logger
}

// Handler returns the API's handler.
func Handler(opts Options) http.Handler {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxQueryPoints <= 0 {
		opts.MaxQueryPoints = 1000000
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = time.Minute
	}
	a := &api{opts: opts, log: opts.Logger.With("component", "http")}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", a.health)
	mux.Handle("GET /metrics", promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelError),
		ErrorHandling:     promhttp.ContinueOnError,
		EnableOpenMetrics: true,
	}))
	mux.HandleFunc("GET /api/v1/query", a.query)
	mux.HandleFunc("GET /api/v1/metrics", a.metrics)
	mux.HandleFunc("GET /api/v1/export", a.export)
	mux.HandleFunc("POST /api/v1/admin/flush", a.flush)
	if opts.Alerts != nil {
		mux.Handle("/api/v1/alerts", opts.Alerts)
		mux.Handle("/api/v1/alerts/", opts.Alerts)
	}
	return httpjson.Routes(mux)
}

type api struct {
	opts Options
	log  *slog.Logger
}

func (a *api) health(w http.ResponseWriter, r *http.Request) {
	if a.opts.Ready != nil {
		if err := a.opts.Ready(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("ok\n"))
}

// writeJSON writes v as the JSON body of a reply.
func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	httpjson.Write(w, code, b)
}

// appendValue appends a result value as a JSON number, written as
// encoding/json writes a float64, or as the string "inf", "-inf" or "nan"
// for what JSON cannot hold (a SUM of large values overflows though every
// sample is finite), as the alert API writes them.
func appendValue(dst []byte, v float64) []byte {
	if b, ok := query.AppendJSONNonFinite(dst, v); ok {
		return b
	}
	format := byte('f')
	if a := math.Abs(v); a != 0 && (a < 1e-6 || a >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, v, format, -1, 64)
	if n := len(dst); format == 'e' && n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
		dst[n-2] = dst[n-1] // e-07 -> e-7
		dst = dst[:n-1]
	}
	return dst
}

// pieceWriter writes a reply in pieces within a deadline: the write
// timeout, plus a second for every MiB written before (a client must read
// at least 1 MiB/s once it has waited the timeout). Without it, a client
// that stops reading, or reads a few bytes a minute, would hold its
// connection and what the reply holds (a scan, a query's charge of the
// budget) for hours. The deadline also covers the end of the reply that
// net/http writes once the handler returns.
type pieceWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	start   time.Time
	written int64
}

// minReadRate is the slowest a client may read a long reply, in bytes a
// second.
const minReadRate = 1 << 20

func (a *api) pieces(w http.ResponseWriter) *pieceWriter {
	return &pieceWriter{w: w, rc: http.NewResponseController(w), timeout: a.opts.WriteTimeout, start: time.Now()}
}

// pieceSize is the size of the pieces a reply is written in.
const pieceSize = 32 << 10

// flushFull writes buf once it holds a piece, and returns it emptied (or
// as it was, when it holds less).
func (p *pieceWriter) flushFull(buf []byte) ([]byte, error) {
	if len(buf) <= pieceSize {
		return buf, nil
	}
	_, err := p.Write(buf)
	return buf[:0], err
}

func (p *pieceWriter) Write(b []byte) (int, error) {
	p.rc.SetWriteDeadline(p.start.Add(p.timeout + time.Duration(p.written/minReadRate)*time.Second))
	n, err := p.w.Write(b)
	p.written += int64(n)
	return n, err
}

// budgetRefused answers a query or export that the query budget refused,
// and reports whether err was such a refusal. narrow says how to ask for
// less.
func (a *api) budgetRefused(w http.ResponseWriter, err error, narrow string) bool {
	switch {
	case errors.Is(err, query.ErrBusy):
		w.Header().Set("Retry-After", "1")
		httpjson.Error(w, http.StatusServiceUnavailable, "The server is busy, try again later: the queries running hold the memory for results (--max-query-memory)")
	case errors.Is(err, query.ErrTooLarge):
		httpjson.Error(w, http.StatusBadRequest, "this needs more memory than --max-query-memory allows: "+narrow)
	default:
		return false
	}
	a.opts.QueryBudget.CountRefusal()
	return true
}

// parseForm parses the query string, answering 400 when it does not parse
// (rather than carrying on without the parameters it could not read).
func parseForm(w http.ResponseWriter, r *http.Request) bool {
	if err := r.ParseForm(); err != nil {
		httpjson.Error(w, http.StatusBadRequest, "bad query string: "+err.Error()+" (escape ';' as %3B and '%' as %25)")
		return false
	}
	return true
}

// timeRange reads from= and to= (ISO 8601 or unix seconds).
func timeRange(r *http.Request) (mint, maxt int64, hasFrom bool, err error) {
	mint, maxt = math.MinInt64, math.MaxInt64
	if s := r.FormValue("from"); s != "" {
		if mint, err = query.ParseTime([]byte(s)); err != nil {
			return 0, 0, false, fmt.Errorf("from: %w", err)
		}
		hasFrom = true
	}
	if s := r.FormValue("to"); s != "" {
		if maxt, err = query.ParseTime([]byte(s)); err != nil {
			return 0, 0, false, fmt.Errorf("to: %w", err)
		}
	}
	return mint, maxt, hasFrom, nil
}

// query answers GET /api/v1/query?name=&op=&secs=&from=&to=, the QUERY
// command as JSON: {"name", "op", "secs", "points": [{"start", "value"}]}.
func (a *api) query(w http.ResponseWriter, r *http.Request) {
	if !parseForm(w, r) {
		return
	}
	name := r.FormValue("name")
	if name == "" {
		httpjson.Error(w, http.StatusBadRequest, "name: required")
		return
	}
	// Any case, as the alert API takes it; QUERY itself takes upper case.
	op, ok := query.ParseOp([]byte(strings.ToUpper(r.FormValue("op"))))
	if !ok {
		httpjson.Error(w, http.StatusBadRequest, "op: want one of AVG, MAX, MIN, COUNT, SUM, LAST")
		return
	}
	secs, err := strconv.ParseInt(r.FormValue("secs"), 10, 64)
	if err != nil || secs < 1 || secs > query.MaxTime/1000 {
		httpjson.Error(w, http.StatusBadRequest, fmt.Sprintf("secs: want a whole number of seconds from 1 to %d", query.MaxTime/1000))
		return
	}
	mint, maxt, hasFrom, err := timeRange(r)
	if err != nil {
		httpjson.Error(w, http.StatusBadRequest, err.Error())
		return
	}
	var ex query.Executor
	defer ex.Release() // once the reply is written: its windows are charged to the budget until then
	pts, err := ex.Run(a.opts.Store, query.Spec{Name: []byte(name), Op: op, Step: secs * 1000,
		From: mint, HasFrom: hasFrom, To: maxt, HasTo: maxt != math.MaxInt64,
		MaxPoints: a.opts.MaxQueryPoints, Budget: a.opts.QueryBudget})
	if a.budgetRefused(w, err, "use a larger secs or a narrower from/to") {
		return
	}
	if errors.Is(err, query.ErrNotFound) {
		httpjson.Error(w, http.StatusNotFound, "metric not found")
		return
	}
	if errors.Is(err, query.ErrTooManyPoints) {
		httpjson.Error(w, http.StatusBadRequest, fmt.Sprintf("the query would answer more than %d windows: use a larger secs or a narrower from/to", a.opts.MaxQueryPoints))
		return
	}
	if err != nil {
		a.log.Error("query failed", "name", name, "err", err)
		httpjson.Error(w, http.StatusInternalServerError, err.Error())
		return
	}
	// Written as it is built: a reply of a million windows would take
	// 150 MB as a []point marshalled at once.
	w.Header().Set("Content-Type", "application/json")
	out := a.pieces(w)
	buf := appendJSONString([]byte(`{"name":`), name)
	buf = append(buf, `,"op":"`...)
	buf = append(buf, op.String()...)
	buf = append(buf, `","points":[`...)
	for i, p := range pts {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, `{"start":"`...)
		buf = query.AppendTime(buf, p.Start)
		buf = append(buf, `","value":`...)
		buf = appendValue(buf, p.Value)
		buf = append(buf, '}')
		if buf, err = out.flushFull(buf); err != nil {
			return // the client is gone
		}
	}
	buf = append(buf, `],"secs":`...)
	buf = strconv.AppendInt(buf, secs, 10)
	out.Write(append(buf, "}\n"...))
}

// export answers GET /api/v1/export?name=&from=&to=&format=csv|json with
// every raw sample of a metric: CSV "time,value" rows (the default) or a
// JSON array of [unix_ms, value] pairs.
func (a *api) export(w http.ResponseWriter, r *http.Request) {
	if !parseForm(w, r) {
		return
	}
	name := r.FormValue("name")
	if name == "" {
		httpjson.Error(w, http.StatusBadRequest, "name: required")
		return
	}
	mint, maxt, _, err := timeRange(r)
	if err != nil {
		httpjson.Error(w, http.StatusBadRequest, err.Error())
		return
	}
	format := r.FormValue("format")
	if format != "" && format != "csv" && format != "json" {
		httpjson.Error(w, http.StatusBadRequest, "format: want csv or json")
		return
	}
	refs := a.opts.Store.RefsByName([]byte(name))
	if len(refs) == 0 {
		httpjson.Error(w, http.StatusNotFound, "metric not found")
		return
	}
	var buf []byte
	first := true
	if format == "json" {
		w.Header().Set("Content-Type", "application/json")
		buf = append(buf, '[')
	} else {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		buf = append(buf, "time,value\n"...)
	}
	out := a.pieces(w)
	var werr error
	wrote := false
	err = query.ScanMerged(a.opts.Store, refs, mint, maxt, a.opts.QueryBudget.NewCharge(), func(ts []int64, vs []float64) bool {
		for i := range ts {
			if format == "json" {
				if !first {
					buf = append(buf, ',')
				}
				buf = append(buf, '[')
				buf = strconv.AppendInt(buf, ts[i], 10)
				buf = append(buf, ',')
				buf = strconv.AppendFloat(buf, vs[i], 'g', -1, 64)
				buf = append(buf, ']')
			} else {
				buf = query.AppendTime(buf, ts[i])
				buf = append(buf, ',')
				buf = query.AppendRepr(buf, vs[i])
				buf = append(buf, '\n')
			}
			first = false
			// Within the chunk too: a merge of several series in memory
			// comes in one call, of up to millions of samples.
			n := len(buf)
			if buf, werr = out.flushFull(buf); werr != nil {
				return false // the client is gone
			}
			wrote = wrote || len(buf) < n
		}
		return true
	})
	if err != nil {
		if !wrote && a.budgetRefused(w, err, "narrow from/to") {
			return
		}
		a.log.Error("export failed", "name", name, "err", err)
		if !wrote {
			httpjson.Error(w, http.StatusInternalServerError, err.Error())
			return
		}
		// The 200 and some rows are out: end the reply without its final
		// chunk, so that the client sees a broken transfer, not a short
		// export.
		panic(http.ErrAbortHandler)
	}
	if format == "json" {
		buf = append(buf, "]\n"...)
	}
	if werr == nil {
		out.Write(buf)
	}
}

// metrics answers GET /api/v1/metrics?prefix= with the sorted series names.
func (a *api) metrics(w http.ResponseWriter, r *http.Request) {
	if !parseForm(w, r) {
		return
	}
	names := a.opts.Store.Names(r.FormValue("prefix"))
	// Written in pieces: a million names are tens of MB.
	w.Header().Set("Content-Type", "application/json")
	out := a.pieces(w)
	buf := append(make([]byte, 0, 40<<10), '[')
	for i, n := range names {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendJSONString(buf, n)
		var err error
		if buf, err = out.flushFull(buf); err != nil {
			return // the client is gone
		}
	}
	out.Write(append(buf, "]\n"...))
}

// appendJSONString appends s as a JSON string, escaped as encoding/json
// escapes it (invalid UTF-8 becomes U+FFFD).
func appendJSONString(dst []byte, s string) []byte {
	b, _ := json.Marshal(s) // cannot fail for a string
	return append(dst, b...)
}

// flush answers POST /api/v1/admin/flush: it writes the in-memory head into
// parts now and reports how long that took.
func (a *api) flush(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if err := a.opts.Store.Flush(); err != nil {
		a.log.Error("flush failed", "err", err)
		httpjson.Error(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"flushed": true, "seconds": time.Since(start).Seconds()})
}
