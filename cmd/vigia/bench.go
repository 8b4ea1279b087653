package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/vigia-mon/vigia/internal/loadgen"
)

func runBench(args []string) int {
	fs := newFlagSet("bench", "bench [flags]\n\nMeasures a vigia server with the reference data set (--series x --points,\nas /bench/loadgen generates it): acknowledged LOG samples per second,\npipelined on --conns connections; bytes on disk per sample after a flush;\nLOG round-trip latency at --paced-fraction of that rate; QUERY <id> MAX 60\nover a series of --long-points samples; and the server's peak RSS.\n\nWith --server it starts its own server (this binary) on free loopback ports\nin a temporary data dir and removes it afterwards: the way to run it.\nOtherwise it measures the server at --addr and --http-addr (--pid for its\nmemory); that server should be fresh and run with --retention 8760h so that\nthe long series' oldest points are kept.")
	var o loadgen.BenchOptions
	fs.StringVar(&o.Addr, "addr", "127.0.0.1:7574", "server's native protocol address (ignored with --server)")
	fs.StringVar(&o.HTTPAddr, "http-addr", "127.0.0.1:7575", "server's HTTP address, for flushes and /metrics; off skips the disk figures (ignored with --server)")
	fs.IntVar(&o.PID, "pid", 0, "server's process id, for its CPU use and peak RSS; 0 leaves them out (ignored with --server)")
	server := fs.Bool("server", false, "start a server of this binary on free loopback ports in a temporary data dir")
	tmp := fs.String("tmp-dir", "", "with --server: where the temporary data dir goes (default the system's temp dir)")
	keep := fs.Bool("keep", false, "with --server: keep the data dir and the server log")
	fs.IntVar(&o.Data.Series, "series", 10000, "series in the data set")
	fs.IntVar(&o.Data.Points, "points", 1000, "points per series, 1 s apart")
	fs.Uint64Var(&o.Data.Seed, "seed", loadgen.DefaultSeed, "data set seed, as the reference generator's -seed (not 0)")
	fs.Int64Var(&o.Data.Start, "start", 0, "first timestamp, unix seconds; 0 means now - points - 300 s, rounded down to a minute")
	fs.StringVar(&o.Data.Prefix, "prefix", "bench", "series name prefix")
	fs.IntVar(&o.Conns, "conns", 4, "connections the data set is sent on, pipelined")
	fs.BoolVar(&o.Live, "live", false, "generate requests while sending, as /bench/loadgen does, instead of before the clock starts")
	paced := fs.Duration("paced", 5*time.Second, "length of the latency phase; 0 skips it")
	fs.Float64Var(&o.PacedFraction, "paced-fraction", 0.5, "rate of the latency phase, as a fraction of the measured ingest rate")
	fs.Float64Var(&o.PacedRate, "paced-rate", 0, "rate of the latency phase in LOG/s, instead of --paced-fraction (to compare builds at the same load)")
	long := fs.Int("long-points", 1_000_000, "samples of the series QUERY MAX 60 is timed over; 0 skips the query phase")
	fs.StringVar(&o.LongPrefix, "long-prefix", "long", "name prefix of the long series")
	fs.IntVar(&o.Queries, "queries", 20, "timed repetitions of each QUERY")
	asJSON := fs.Bool("json", false, "print the results as JSON instead of a report")
	if rc := parseFlags(fs, args); rc >= 0 {
		return rc
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "vigia bench: unexpected argument %q (see vigia bench --help)\n", fs.Arg(0))
		return 2
	}
	if o.Data.Series < 1 || o.Data.Points < 1 || o.Conns < 1 || o.Queries < 1 || *long < 0 || *paced < 0 {
		fmt.Fprintln(os.Stderr, "vigia bench: --series, --points, --conns and --queries must be at least 1; --long-points and --paced not negative")
		return 2
	}
	if o.Data.Seed == 0 {
		// The benchmark takes a zero seed as its default, 42: refuse it
		// rather than measure other data than the reference generator's
		// -seed 0 makes.
		fmt.Fprintln(os.Stderr, "vigia bench: --seed 0 is not available (0 stands for the default, 42); choose another seed")
		return 2
	}
	if !(o.PacedFraction > 0) || math.IsInf(o.PacedFraction, 1) || !(o.PacedRate >= 0) || math.IsInf(o.PacedRate, 1) {
		fmt.Fprintln(os.Stderr, "vigia bench: --paced-fraction must be a finite number above 0, --paced-rate finite and not negative")
		return 2
	}
	for _, c := range []struct {
		flag, prefix string
		n            int
	}{{"--prefix", o.Data.Prefix, o.Data.Series}, {"--long-prefix", o.LongPrefix, 1}} {
		// Of the last two series, one is a gauge and one a counter.
		for i := max(c.n-2, 0); i < c.n; i++ {
			if err := checkPrefix(c.flag, c.prefix, loadgen.NewSeries(c.prefix, 1, i).Name()); err != nil {
				fmt.Fprintf(os.Stderr, "vigia bench: %v\n", err)
				return 2
			}
		}
	}
	if o.PID < 0 || o.PID > 0 && !*server && errors.Is(syscall.Kill(o.PID, 0), syscall.ESRCH) {
		// Found out at the end of the run otherwise.
		fmt.Fprintf(os.Stderr, "vigia bench: --pid %d: no such process (the server's process id, or 0)\n", o.PID)
		return 2
	}
	if *paced == 0 {
		o.PacedDuration = -1
	} else {
		o.PacedDuration = *paced
	}
	if *long == 0 {
		o.LongPoints = -1
	} else {
		o.LongPoints = *long
	}
	if o.HTTPAddr == "off" {
		o.HTTPAddr = ""
	}
	o.Progress = os.Stderr
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	var srv *loadgen.Server
	if *server {
		var cleanup func()
		var err error
		srv, cleanup, err = benchServer(ctx, *tmp, *keep)
		if err != nil {
			fmt.Fprintf(os.Stderr, "vigia bench: %v\n", err)
			return 1
		}
		defer cleanup()
		o.Addr, o.HTTPAddr, o.PID = srv.NativeAddr, srv.HTTPAddr, srv.PID()
	}
	res, err := loadgen.Bench(ctx, o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "vigia bench: %v\n", err)
		if srv != nil {
			fmt.Fprintf(os.Stderr, "the server's last lines:\n%s\n", srv.Output())
		}
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(res)
	} else {
		err = res.WriteReport(os.Stdout)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "vigia bench: %v\n", err)
		return 1
	}
	return 0
}

// benchServer starts this binary as a server in a new temporary directory
// and returns it with the function that stops it and removes the directory
// (unless keep).
func benchServer(ctx context.Context, tmp string, keep bool) (*loadgen.Server, func(), error) {
	bin, err := os.Executable()
	if err != nil {
		return nil, nil, fmt.Errorf("find this binary to start a server: %w", err)
	}
	dir, err := os.MkdirTemp(tmp, "vigia-bench-")
	if err != nil {
		return nil, nil, fmt.Errorf("temporary data dir: %w (set --tmp-dir)", err)
	}
	logPath := filepath.Join(dir, "server.log")
	logf, err := os.Create(logPath)
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	srv, err := loadgen.StartServer(ctx, loadgen.ServerOptions{
		Bin:     bin,
		DataDir: filepath.Join(dir, "data"),
		// Keep the long series (over 11 days of points) whole.
		Args: []string{"--retention", "8760h"},
		Log:  logf,
	})
	if err != nil {
		logf.Close()
		os.RemoveAll(dir)
		return nil, nil, err
	}
	fmt.Fprintf(os.Stderr, "started vigia server pid %d on %s (http %s), data in %s\n", srv.PID(), srv.NativeAddr, srv.HTTPAddr, dir)
	cleanup := func() {
		if err := srv.Stop(2 * time.Minute); err != nil {
			fmt.Fprintf(os.Stderr, "vigia bench: stopping the server: %v (log in %s)\n", err, logPath)
			keep = true
		}
		logf.Close()
		if keep {
			fmt.Fprintf(os.Stderr, "kept %s\n", dir)
			return
		}
		os.RemoveAll(dir)
	}
	return srv, cleanup, nil
}
