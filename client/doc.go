// Package client is vigia's Go client library: a program counts, meters,
// gauges and times what it does, and the library delivers the values to a
// vigia server (or any Graphite-compatible one) in the background.
//
//	c, err := client.New(&client.Options{Addr: "127.0.0.1:7574"})
//	if err != nil { ... }
//	defer func() {
//		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
//		defer cancel()
//		c.Close(ctx) // delivers what is left, giving up after 10s
//	}()
//	requests := c.Counter("%node%.http.requests")
//	latency := c.Timer("%node%.http.latency")
//	...
//	requests.Inc()
//	defer latency.Since(time.Now())
//
// # Metrics
//
// Counter sums what is added per interval. Meter holds a monotonically
// growing total and reports it as is. Gauge reports the last value set, or
// the mean of the values set (GaugeMode). Histogram reports count, sum,
// min, max and quantiles; Timer is a Histogram of durations in seconds.
// Register samples a function once per interval, and RuntimeMetrics
// registers the Go runtime's goroutines, heap and GC.
//
// Updates are safe for concurrent use, do not allocate and take no lock:
// Counter.Add, Meter.Set and Gauge.Set are one or two atomic operations,
// a few nanoseconds (see the package benchmarks).
//
// # Intervals
//
// Time is cut into intervals of Options.Period (10s by default) starting
// at multiples of Period since the Unix epoch. Updates accumulate in the
// open interval; at its end the library closes it: each metric that was
// updated during the interval yields a point stamped with the interval's
// start, and a metric that was not yields none. A histogram yields one
// point per series: name.count, name.sum, name.min, name.max and
// name.p50, name.p90, name.p99 for the default Options.Quantiles.
//
// An interval closes when a timer fires at its end, so an update made a
// few microseconds after the boundary, before the timer ran, still counts
// in the interval that ends. Flush and Close close the open interval
// early; updates made afterwards in the same interval make a second point
// with the same timestamp.
//
// # Delivery
//
// The closed points wait in a bounded backlog (Options.MaxPoints). After
// each interval a background sender ships them, oldest first. With the
// Native protocol it writes pipelined lines
//
//	LOG <name> <value> <unix-seconds>
//
// on a TCP connection with TCP_NODELAY, a dial timeout and a write
// deadline, reads the replies in order, and forgets a point only once the
// server answered "201 Metric Inserted", which vigia sends after the point
// is durable. A point the server refuses with 400 or 404 is dropped and
// counted in Stats.Rejected, as sending it again cannot succeed. On any
// other error (refused connection, timeout, cut connection, 503 busy) the
// connection is dropped and the points not acknowledged are sent again on
// a fresh connection after a jittered backoff that starts at one Period.
// Delivery is therefore at least once: a point is stored twice only when
// the server stored it and its acknowledgement was lost in flight.
//
// With the Graphite protocol the sender writes "name value timestamp"
// lines and forgets each point once written; Graphite has no
// acknowledgement, so delivery is at most once.
//
// When the backlog is full, the oldest points are dropped and counted: the
// library reports the total in its own meter vigia.client.dropped (see
// DroppedMetric) and in Stats.Dropped, never silently.
//
// Flush delivers everything held before it returns; Close does the same
// and stops the Client. Get, Delete and Snapshot inspect and edit the
// points held.
//
// # Names
//
// A name is 1 to 255 bytes without whitespace or control characters.
// Options.Prefix is prepended to it and templates are replaced, once, when
// the metric is made: %node% (the host name), %host% (the host name up to
// its first dot), %pid% (the process id) and any Options.Substitutions,
// such as Substitutions{"%env%": "prod"}. Where several templates match at
// the same place, the longest wins.
package client
