package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"time"

	"github.com/vigia-mon/vigia/client"
)

// A program makes one Client, takes its metrics once and updates them on
// its hot paths; Close delivers what is left when it stops.
func Example() {
	c, err := client.New(&client.Options{
		Addr:   "127.0.0.1:7574", // vigia's native protocol
		Period: 10 * time.Second,
		Prefix: "%host%.shop.",
	})
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.Close(ctx); err != nil {
			log.Print(err)
		}
	}()
	c.RuntimeMetrics()

	requests := c.Counter("http.requests") // "<host>.shop.http.requests"
	latency := c.Timer("http.latency")     // ".count", ".p99" and so on
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		defer latency.Since(time.Now())
		requests.Inc()
		fmt.Fprintln(w, "hello")
	})
	log.Fatal(http.ListenAndServe("127.0.0.1:8080", nil))
}

// closeInterval stands in for the end of an interval in the examples: the
// Flush closes it and fails, as nothing listens at 127.0.0.1:1, so the
// points stay held for Get and Snapshot to show. (The examples' Period of
// an hour keeps an interval from ending by itself while they run, which
// would add points to their output.)
func closeInterval(c *client.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := c.Flush(ctx); !errors.Is(err, context.DeadlineExceeded) {
		fmt.Println("unexpected:", err)
	}
}

// closeQuickly closes c without waiting for a server that is not there.
func closeQuickly(c *client.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	c.Close(ctx)
}

// quiet keeps the examples' expected delivery failures out of the log.
var quiet = slog.New(slog.DiscardHandler)

func ExampleClient_Counter() {
	c, _ := client.New(&client.Options{Addr: "127.0.0.1:1", Logger: quiet, Period: time.Hour})
	defer closeQuickly(c)

	orders := c.Counter("orders")
	orders.Inc()
	orders.Add(2)
	closeInterval(c)

	for _, p := range c.Get("orders") {
		fmt.Println(p.Name, p.Value, p.Time.UnixMilli()%(10*1000)) // stamped with the interval's start
	}
	// Output:
	// orders 3 0
}

func ExampleClient_Gauge() {
	c, _ := client.New(&client.Options{Addr: "127.0.0.1:1", Logger: quiet, Period: time.Hour})
	defer closeQuickly(c)

	queue := c.Gauge("queue.length")                          // the last value set
	load := c.GaugeWithMode("load.percent", client.GaugeMean) // the mean
	for _, v := range []float64{10, 40, 20} {
		queue.Set(v)
		load.Set(v)
	}
	closeInterval(c)

	for _, p := range c.Snapshot() {
		fmt.Println(p.Name, p.Value)
	}
	// Output:
	// queue.length 20
	// load.percent 23.333333333333332
}

func ExampleClient_Histogram() {
	c, _ := client.New(&client.Options{
		Addr:      "127.0.0.1:1",
		Logger:    quiet,
		Period:    time.Hour,
		Quantiles: []float64{0.5, 0.99},
	})
	defer closeQuickly(c)

	size := c.Histogram("response.bytes")
	for i := 1; i <= 1000; i++ {
		size.Observe(float64(i))
	}
	closeInterval(c)

	// Quantiles are estimates within 0.79% of the exact value.
	for _, p := range c.Get("response.bytes") {
		fmt.Printf("%s %.5g\n", p.Name, p.Value)
	}
	// Output:
	// response.bytes.count 1000
	// response.bytes.sum 5.005e+05
	// response.bytes.min 1
	// response.bytes.max 1000
	// response.bytes.p50 502
	// response.bytes.p99 988
}

func ExampleTimer_Since() {
	c, _ := client.New(&client.Options{Addr: "127.0.0.1:1", Logger: quiet, Period: time.Hour})
	defer closeQuickly(c)

	query := c.Timer("db.query")
	func() {
		defer query.Since(time.Now())
		time.Sleep(time.Millisecond) // the work being timed
	}()
	closeInterval(c)

	for _, p := range c.Get("db.query") {
		if p.Name == "db.query.count" {
			fmt.Println(p.Name, p.Value)
		}
	}
	// Output:
	// db.query.count 1
}

func ExampleClient_Register() {
	c, _ := client.New(&client.Options{Addr: "127.0.0.1:1", Logger: quiet, Period: time.Hour})
	defer closeQuickly(c)

	var served float64 // a running total kept elsewhere in the program
	c.Register("cache.size", func() float64 { return 512 }, client.KindGauge)
	c.Register("served", func() float64 { return served }, client.KindCounter)

	served = 10
	closeInterval(c) // sets the counter's baseline
	served = 25
	closeInterval(c)

	for _, p := range c.Snapshot() {
		fmt.Println(p.Name, p.Value)
	}
	// Output:
	// cache.size 512
	// cache.size 512
	// served 15
}

func ExampleSubstitutions() {
	c, _ := client.New(&client.Options{
		Addr:          "127.0.0.1:1",
		Logger:        quiet,
		Period:        time.Hour,
		Prefix:        "%env%.",
		Substitutions: client.Substitutions{"%env%": "prod", "%node%": "web1"},
	})
	defer closeQuickly(c)

	c.Counter("%node%.logins").Inc() // templates are applied here, once
	closeInterval(c)

	fmt.Println(c.Snapshot()[0].Name)
	// Output:
	// prod.web1.logins
}

func ExampleClient_Delete() {
	c, _ := client.New(&client.Options{Addr: "127.0.0.1:1", Logger: quiet, Period: time.Hour})
	defer closeQuickly(c)

	c.Counter("debug.events").Inc()
	c.Counter("orders").Inc()
	closeInterval(c)

	fmt.Println(c.Delete("debug.events"), "dropped")
	for _, p := range c.Snapshot() {
		fmt.Println(p.Name, "held")
	}
	fmt.Println(c.Stats().Held, "held in all")
	// Output:
	// 1 dropped
	// orders held
	// 1 held in all
}
