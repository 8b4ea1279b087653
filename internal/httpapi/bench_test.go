package httpapi

import (
	"log/slog"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigia-mon/vigia/internal/tsdb"
)

// BenchmarkQuery: an HTTP query answering 100,000 windows.
func BenchmarkQuery(b *testing.B) {
	db, err := tsdb.Open(b.TempDir(), &tsdb.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	ref, _ := db.GetOrCreate([]byte("long"), nil)
	var s []tsdb.Sample
	for i := range 100000 {
		s = append(s, tsdb.Sample{Ref: ref, T: int64(1650931200000 + 1000*i), V: float64(i) / 4})
	}
	if err := db.Append(s); err != nil {
		b.Fatal(err)
	}
	h := Handler(Options{Store: db, Gatherer: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler)})
	req := httptest.NewRequest("GET", "/api/v1/query?name=long&op=MAX&secs=1", nil)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
	}
}
