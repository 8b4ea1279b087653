// Command httpserver is a small HTTP server instrumented with vigia's
// client library. It counts requests and errors, times them, records
// response sizes and requests in flight, reports the Go runtime's metrics,
// and sends everything to a vigia server every period.
//
// Run a vigia server, then this program, and make some requests:
//
//	vigia server --data-dir /tmp/vigia &
//	go run ./examples/httpserver &
//	curl localhost:8080/ ; curl localhost:8080/slow ; curl localhost:8080/fail
//
// After a period (10s), ask vigia what it got (the names start with your
// host name):
//
//	vigia client QUERY $(hostname -s).httpserver.requests SUM 60
//	vigia client QUERY $(hostname -s).httpserver.latency.p99 MAX 60
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vigia-mon/vigia/client"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address to serve HTTP on")
	addr := flag.String("vigia", "127.0.0.1:7574", "vigia server's native protocol address")
	period := flag.Duration("period", 10*time.Second, "interval between reports")
	prefix := flag.String("prefix", "%host%.httpserver.", "prefix of every metric name; %host% is the host name")
	flag.Parse()

	metrics, err := client.New(&client.Options{Addr: *addr, Period: *period, Prefix: *prefix})
	if err != nil {
		log.Fatal(err)
	}
	metrics.RuntimeMetrics()

	srv := &http.Server{Addr: *listen, Handler: newHandler(metrics)}
	go func() {
		if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
			log.Fatal(err)
		}
	}()
	log.Printf("serving on http://%s, reporting to vigia at %s every %v", *listen, *addr, *period)

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	<-stop

	// Stop taking requests, then deliver what the last ones measured.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Print(err)
	}
	if err := metrics.Close(ctx); err != nil {
		log.Printf("some metrics were not delivered: %v", err)
	}
}

// newHandler returns the application's routes wrapped in instrumentation.
func newHandler(metrics *client.Client) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "hello")
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Duration(rand.IntN(200)) * time.Millisecond)
		fmt.Fprintln(w, "sorry for the wait")
	})
	mux.HandleFunc("/fail", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "something broke", http.StatusInternalServerError)
	})
	return instrument(metrics, mux)
}

// instrument wraps next with metrics. They are made once, here; the
// request path only updates them, which neither allocates nor locks.
func instrument(metrics *client.Client, next http.Handler) http.Handler {
	var (
		requests = metrics.Counter("requests")      // per interval: requests served
		errors5x = metrics.Counter("errors")        // per interval: 5xx responses
		latency  = metrics.Timer("latency")         // latency.count, .p50, .p99...
		size     = metrics.Histogram("resp.bytes")  // response sizes
		inFlight = metrics.Gauge("requests.active") // last value per interval
		active   atomic.Int64
	)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		inFlight.Set(float64(active.Add(1)))
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			inFlight.Set(float64(active.Add(-1)))
			latency.Since(start)
			size.Observe(float64(rec.bytes))
			requests.Inc()
			if rec.status >= 500 {
				errors5x.Inc()
			}
		}()
		next.ServeHTTP(rec, r)
	})
}

// recorder remembers the status and size of a response.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (r *recorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(b []byte) (int, error) {
	n, err := r.ResponseWriter.Write(b)
	r.bytes += n
	return n, err
}
