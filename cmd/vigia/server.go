package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/vigia-mon/vigia/internal/alert"
	"github.com/vigia-mon/vigia/internal/server"
)

func runServer(args []string) int {
	fs := newFlagSet("server", "server [flags]\n\nRuns the metrics and alert server. It stores everything under --data-dir and\nstops cleanly on SIGTERM or SIGINT (Ctrl-C): in-flight requests finish, the\nin-memory head is flushed, and it exits 0. A second signal ends it at once;\nthe next start replays what was acknowledged from its write-ahead log.")
	var o server.Options
	fs.StringVar(&o.DataDir, "data-dir", "data", "directory for all stored data (created if missing)")
	fs.StringVar(&o.NativeAddr, "native-addr", "127.0.0.1:7574", "native protocol TCP address, or off")
	fs.StringVar(&o.HTTPAddr, "http-addr", "127.0.0.1:7575", "HTTP address (/healthz, /metrics, /api/v1/...), or off")
	fs.IntVar(&o.MaxConns, "max-conns", 1024, "native connections open at once; the next one gets 503 and is closed")
	fs.IntVar(&o.HTTPMaxConns, "http-max-conns", 512, "HTTP connections open at once; the next one gets a 503 reply and is closed")
	fs.IntVar(&o.MaxInflight, "max-inflight", 65536, "native requests being executed at once; beyond it clients get 503 and are closed")
	fs.IntVar(&o.MaxQueryPoints, "max-query-points", 1000000, "windows one QUERY may answer (16 bytes each while it runs, up to 26 of reply text); beyond it the QUERY gets a 400 line")
	o.MaxQueryMemory = 512 << 20
	fs.Var((*bytesFlag)(&o.MaxQueryMemory), "max-query-memory", "memory (a `size` such as 512MiB or 1GiB) the queries running at once may take: 16 bytes a window beyond each query's first 8,192, and a native QUERY's reply text; a query finding none left gets 503, one needing more than all of it 400")
	fs.IntVar(&o.MaxSeries, "max-series", 1000000, "series LOG may create; a LOG of a new id beyond it gets a 400 line (bounds the index's memory)")
	fs.DurationVar(&o.IdleTimeout, "idle-timeout", 5*time.Minute, "close native connections idle this long")
	fs.DurationVar(&o.AlertInterval, "alert-interval", time.Minute, "alert check period")
	fs.Var((*stringsFlag)(&o.AlertWebhooks), "alert-webhook", "URL receiving Alertmanager-compatible alert POSTs (repeatable)")
	notify := fs.String("alert-notify", "every-check", "when a firing alert notifies: every-check, or changes (only when it starts firing or resolves)")
	fs.StringVar(&o.ExternalURL, "external-url", "", "URL users reach this server's HTTP API at, for links in alerts")
	fs.DurationVar(&o.FlushInterval, "flush-interval", 10*time.Minute, "flush in-memory samples into compressed parts at least this often")
	fs.DurationVar(&o.RawRetention, "retention", 240*time.Hour, "keep raw samples this long (archives keep 1m/1h/1d consolidations longer)")
	cpuProfile := fs.String("cpu-profile", "", "write a CPU profile of the whole run to this file (for performance work)")
	logger := logFlags(fs)
	if rc := parseFlags(fs, args); rc >= 0 {
		return rc
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "vigia server: unexpected argument %q (see vigia server --help)\n", fs.Arg(0))
		return 2
	}
	// Zero or negative limits and durations would mean nothing sensible
	// (the store and listeners would quietly take their defaults): refuse.
	for _, c := range []struct {
		flag string
		val  any
		ok   bool
	}{
		{"--max-conns", o.MaxConns, o.MaxConns >= 1},
		{"--http-max-conns", o.HTTPMaxConns, o.HTTPMaxConns >= 1},
		{"--max-inflight", o.MaxInflight, o.MaxInflight >= 1},
		{"--max-query-points", o.MaxQueryPoints, o.MaxQueryPoints >= 1},
		{"--max-series", o.MaxSeries, o.MaxSeries >= 1},
		{"--max-query-memory", (*bytesFlag)(&o.MaxQueryMemory), o.MaxQueryMemory >= 1},
		{"--idle-timeout", o.IdleTimeout, o.IdleTimeout > 0},
		{"--alert-interval", o.AlertInterval, o.AlertInterval > 0},
		{"--flush-interval", o.FlushInterval, o.FlushInterval > 0},
		{"--retention", o.RawRetention, o.RawRetention > 0},
	} {
		if !c.ok {
			fmt.Fprintf(os.Stderr, "vigia server: %s %v: must be positive (see vigia server --help)\n", c.flag, c.val)
			return 2
		}
	}
	// An empty value (an unset variable in a script) would quietly mean
	// the default.
	for _, c := range []struct{ flag, val, hint string }{
		{"--data-dir", o.DataDir, ""},
		{"--native-addr", o.NativeAddr, " (off turns the listener off)"},
		{"--http-addr", o.HTTPAddr, " (off turns the listener off)"},
	} {
		if c.val == "" {
			fmt.Fprintf(os.Stderr, "vigia server: %s must not be empty%s\n", c.flag, c.hint)
			return 2
		}
	}
	if o.NativeAddr == o.HTTPAddr && o.NativeAddr != "off" && !strings.HasSuffix(o.NativeAddr, ":0") {
		fmt.Fprintf(os.Stderr, "vigia server: --native-addr and --http-addr are both %s: give each its own port\n", o.NativeAddr)
		return 2
	}
	// Check URLs now rather than after a store open that may replay a long
	// write-ahead log.
	for _, u := range o.AlertWebhooks {
		if !alert.IsHTTPURL(u) {
			fmt.Fprintf(os.Stderr, "vigia server: --alert-webhook %q: want an http:// or https:// URL\n", u)
			return 2
		}
	}
	if o.ExternalURL != "" && !alert.IsHTTPURL(o.ExternalURL) {
		fmt.Fprintf(os.Stderr, "vigia server: --external-url %q: want an http:// or https:// URL\n", o.ExternalURL)
		return 2
	}
	switch *notify {
	case "every-check":
	case "changes":
		o.AlertChangesOnly = true
	default:
		fmt.Fprintf(os.Stderr, "vigia server: --alert-notify %q: want every-check or changes\n", *notify)
		return 2
	}
	log, err := logger()
	if err != nil {
		fmt.Fprintf(os.Stderr, "vigia server: %v\n", err)
		return 2
	}
	o.Logger = log
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintf(os.Stderr, "vigia server: --cpu-profile: %v\n", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(os.Stderr, "vigia server: --cpu-profile: %v\n", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	srv, err := server.Open(o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "vigia server: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		// Once shutting down, a second signal ends the process at once
		// (the default action): what was acknowledged is in the WAL.
		<-ctx.Done()
		stop()
	}()
	if err := srv.Run(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "vigia server: %v\n", err)
		return 1
	}
	return 0
}
