package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/vigia-mon/vigia/internal/loadgen"
)

func runLoad(args []string) int {
	fs := newFlagSet("load", "load [flags]\n\nRuns test clients that insert metrics constantly over the native protocol:\neach client has its own connection and sends --rate LOG requests per second,\ncycling over --metrics metric names (<prefix>.c<client>.m<k>). It prints a\nline per second (requests sent, acknowledged, failed; LOG round-trip p50 and\np99) and a summary at the end. Clients reconnect with backoff while the\nserver is down. It stops after --duration, or on SIGINT or SIGTERM (exit 0).")
	var o loadgen.LoadOptions
	fs.StringVar(&o.Addr, "addr", "127.0.0.1:7574", "server's native protocol address")
	fs.IntVar(&o.Clients, "clients", 1, "test clients, one connection each")
	fs.Float64Var(&o.Rate, "rate", 10, "LOG requests per second per client")
	fs.IntVar(&o.Metrics, "metrics", 10, "metric names per client")
	fs.StringVar(&o.Prefix, "prefix", "load", "metric name prefix")
	fs.DurationVar(&o.Duration, "duration", 0, "stop after this long; 0 runs until SIGINT or SIGTERM")
	fs.IntVar(&o.Window, "window", 10000, "requests a client may have unanswered; requests due beyond it are skipped")
	fs.DurationVar(&o.Interval, "interval", time.Second, "period of the report lines")
	fs.Uint64Var(&o.Seed, "seed", 1, "seed of the values' random walks")
	logger := logFlags(fs)
	if rc := parseFlags(fs, args); rc >= 0 {
		return rc
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "vigia load: unexpected argument %q (see vigia load --help)\n", fs.Arg(0))
		return 2
	}
	switch {
	case o.Clients < 1:
		fmt.Fprintln(os.Stderr, "vigia load: --clients must be at least 1")
		return 2
	case !(o.Rate > 0) || math.IsInf(o.Rate, 1):
		fmt.Fprintln(os.Stderr, "vigia load: --rate must be a finite number above 0")
		return 2
	case o.Metrics < 1:
		fmt.Fprintln(os.Stderr, "vigia load: --metrics must be at least 1")
		return 2
	case o.Duration < 0:
		fmt.Fprintln(os.Stderr, "vigia load: --duration must not be negative")
		return 2
	case o.Window < 1:
		fmt.Fprintln(os.Stderr, "vigia load: --window must be at least 1")
		return 2
	case o.Interval <= 0:
		fmt.Fprintln(os.Stderr, "vigia load: --interval must be above 0")
		return 2
	}
	if err := checkPrefix("--prefix", o.Prefix, loadgen.LoadSeriesName(o.Prefix, o.Clients-1, o.Metrics-1)); err != nil {
		fmt.Fprintf(os.Stderr, "vigia load: %v\n", err)
		return 2
	}
	log, err := logger()
	if err != nil {
		fmt.Fprintf(os.Stderr, "vigia load: %v\n", err)
		return 2
	}
	o.Logger, o.Out = log, os.Stdout
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if _, err := loadgen.Load(ctx, o); err != nil {
		fmt.Fprintf(os.Stderr, "vigia load: %v\n", err)
		return 1
	}
	return 0
}
