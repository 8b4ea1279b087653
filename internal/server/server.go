// Package server wires vigia's components into one server: the metrics
// store, the ingest pipeline, the alert monitor, the native protocol
// listener and the HTTP API. It owns their start and their ordered
// shutdown.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/vigia-mon/vigia/internal/alert"
	"github.com/vigia-mon/vigia/internal/httpapi"
	"github.com/vigia-mon/vigia/internal/ingest"
	"github.com/vigia-mon/vigia/internal/native"
	"github.com/vigia-mon/vigia/internal/netlimit"
	"github.com/vigia-mon/vigia/internal/query"
	"github.com/vigia-mon/vigia/internal/tsdb"
)

// Options configures a Server. A zero field means its default; an address
// of "off" turns its listener off.
type Options struct {
	DataDir    string // default "data"
	NativeAddr string // default 127.0.0.1:7574
	HTTPAddr   string // default 127.0.0.1:7575

	MaxConns int // native connections; default 1024
	// HTTPMaxConns bounds the HTTP connections open at once; the next one
	// gets a 503 reply and is closed. Default 512.
	HTTPMaxConns int
	MaxInflight  int // native requests in flight; default 65536
	MaxSeries    int // series a LOG may create; default 1,000,000
	// MaxQueryPoints caps the windows of one query reply; default 1,000,000.
	MaxQueryPoints int
	// MaxQueryMemory bounds the memory the results of the queries running
	// at once take (native QUERY and HTTP query); a query that finds none
	// left is refused with 503. Default 512 MiB.
	MaxQueryMemory int64
	IdleTimeout    time.Duration

	AlertInterval    time.Duration // default 60s
	AlertWebhooks    []string
	AlertChangesOnly bool
	ExternalURL      string
	ShutdownTimeout  time.Duration // default 10s
	FlushInterval    time.Duration // head flush period; default 10m
	RawRetention     time.Duration // default 10 days
	Logger           *slog.Logger
}

// Server is a running vigia server. Build it with Open, run it with Run.
type Server struct {
	opts     Options
	budget   *query.Budget // of the queries' memory, native and HTTP
	stopping atomic.Bool   // Run is shutting down
	log      *slog.Logger

	db      *tsdb.DB
	meta    *bbolt.DB
	alerts  *alert.Monitor
	native  *native.Server
	httpSrv *http.Server

	nativeLn net.Listener
	httpLn   *netlimit.Listener // nil when off
}

// Open opens the data dir and binds the listeners. Its errors are one line
// that says what to do, such as "listen on 127.0.0.1:7574: address already
// in use (set --native-addr)".
func Open(opts Options) (_ *Server, err error) {
	if opts.DataDir == "" {
		opts.DataDir = "data"
	}
	if opts.NativeAddr == "" {
		opts.NativeAddr = "127.0.0.1:7574"
	}
	if opts.HTTPAddr == "" {
		opts.HTTPAddr = "127.0.0.1:7575"
	}
	if opts.HTTPMaxConns <= 0 {
		opts.HTTPMaxConns = 512
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Server{opts: opts, log: opts.Logger}
	defer func() {
		if err != nil {
			s.closeAll()
		}
	}()

	if s.nativeLn, err = listen(opts.NativeAddr, "--native-addr"); err != nil {
		return nil, err
	}
	httpLn, err := listen(opts.HTTPAddr, "--http-addr")
	if err != nil {
		return nil, err
	}
	if httpLn != nil {
		s.httpLn = netlimit.NewListener(httpLn, opts.HTTPMaxConns, httpBusy)
	}
	if err := checkDataDir(opts.DataDir); err != nil {
		return nil, err
	}
	start := time.Now()
	s.db, err = tsdb.Open(filepath.Join(opts.DataDir, "metrics"), &tsdb.Options{
		Logger:        opts.Logger,
		FlushInterval: opts.FlushInterval,
		RawRetention:  opts.RawRetention,
	})
	if errors.Is(err, tsdb.ErrLocked) {
		return nil, fmt.Errorf("data dir %s is in use by another vigia server (stop it, or set --data-dir)", opts.DataDir)
	}
	if err != nil {
		return nil, fmt.Errorf("open metrics store in %s: %w", opts.DataDir, err)
	}
	st := s.db.Stats()
	s.log.Info("metrics store open", "dir", opts.DataDir, "series", st.Series,
		"replayed_samples", st.ReplayedSamples, "torn_tails", st.TornTails, "took", time.Since(start).Round(time.Millisecond))

	metaPath := filepath.Join(opts.DataDir, "meta.db")
	s.meta, err = bbolt.Open(metaPath, 0o600, &bbolt.Options{Timeout: time.Second})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("%s is locked by another vigia server (stop it, or set --data-dir)", metaPath)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", metaPath, err)
	}
	s.alerts, err = alert.New(alert.Options{
		DB:                s.meta,
		Interval:          opts.AlertInterval,
		Refs:              func(name string) []tsdb.SeriesRef { return s.db.RefsByName([]byte(name)) },
		Webhooks:          opts.AlertWebhooks,
		NotifyChangesOnly: opts.AlertChangesOnly,
		ExternalURL:       opts.ExternalURL,
		Logger:            opts.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("alerts: %w", err)
	}

	maxQueryMemory := opts.MaxQueryMemory
	if maxQueryMemory <= 0 {
		maxQueryMemory = 512 << 20
	}
	s.budget = query.NewBudget(maxQueryMemory)
	s.native = native.New(native.Options{
		Store:          s.db,
		Writer:         ingest.New(s.db, s.alerts),
		Alerts:         s.alerts,
		MaxConns:       opts.MaxConns,
		MaxInflight:    opts.MaxInflight,
		MaxSeries:      opts.MaxSeries,
		MaxQueryPoints: opts.MaxQueryPoints,
		QueryBudget:    s.budget,
		IdleTimeout:    opts.IdleTimeout,
		Logger:         opts.Logger,
	})
	reg := newRegistry(s)
	s.httpSrv = &http.Server{
		Handler: httpapi.Handler(httpapi.Options{
			Store:          s.db,
			Gatherer:       reg,
			MaxQueryPoints: opts.MaxQueryPoints,
			QueryBudget:    s.budget,
			Alerts:         s.alerts.Handler(),
			Ready:          s.ready,
			Logger:         opts.Logger,
		}),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// ready is /healthz's check: not while shutting down, nor once the store
// refuses every write (its write-ahead log failed) until a restart.
func (s *Server) ready() error {
	if s.stopping.Load() {
		return errors.New("shutting down")
	}
	if err := s.db.Err(); err != nil {
		return fmt.Errorf("writes are refused until a restart: %w", err)
	}
	return nil
}

// httpBusy is the reply to an HTTP connection beyond HTTPMaxConns, sent
// without reading its request.
var httpBusy = func() []byte {
	body := `{"error":"The server is busy, try again later"}` + "\n"
	return fmt.Appendf(nil, "HTTP/1.1 503 Service Unavailable\r\n"+
		"Content-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\n"+
		"Content-Length: %d\r\n\r\n%s", len(body), body)
}()

// checkDataDir creates dir and checks that it is writable, so that the
// error names the flag to change.
func checkDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("data dir %s is not usable: %v (set --data-dir)", dir, unwrapPath(err))
	}
	f, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return fmt.Errorf("data dir %s is not writable: %v (set --data-dir)", dir, unwrapPath(err))
	}
	f.Close()
	os.Remove(f.Name())
	return nil
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// listen binds addr, or returns nil for "off".
func listen(addr, flag string) (net.Listener, error) {
	if addr == "off" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		var se *os.SyscallError
		if errors.As(err, &se) && errors.Is(se.Err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("listen on %s: address already in use by another program (set %s, or %s off)", addr, flag, flag)
		}
		return nil, fmt.Errorf("listen on %s: %v (set %s)", addr, unwrapOp(err), flag)
	}
	return ln, nil
}

func unwrapOp(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		return oe.Err
	}
	return err
}

// NativeAddr returns the native listener's address, or nil when off.
func (s *Server) NativeAddr() net.Addr {
	if s.nativeLn == nil {
		return nil
	}
	return s.nativeLn.Addr()
}

// HTTPAddr returns the HTTP listener's address, or nil when off.
func (s *Server) HTTPAddr() net.Addr {
	if s.httpLn == nil {
		return nil
	}
	return s.httpLn.Addr()
}

// Run serves until ctx is done, then shuts down in order: stop accepting,
// finish the requests in flight, stop the alert monitor, flush the store
// and close it. It returns the first error that stopped a component.
func (s *Server) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 3)
	if s.nativeLn != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.native.Serve(s.nativeLn); err != nil && !errors.Is(err, native.ErrServerClosed) {
				errc <- fmt.Errorf("native listener: %w", err)
			}
		}()
		s.log.Info("native protocol listening", "addr", s.nativeLn.Addr().String())
	}
	if s.httpLn != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.httpSrv.Serve(s.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("http listener: %w", err)
			}
		}()
		s.log.Info("http listening", "addr", s.httpLn.Addr().String())
	}
	alertCtx, stopAlerts := context.WithCancel(context.Background())
	alertDone := make(chan error, 1)
	go func() { alertDone <- s.alerts.Run(alertCtx) }()

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	case err := <-alertDone:
		runErr = fmt.Errorf("alert monitor: %w", err)
		alertDone <- nil
	}
	s.log.Info("shutting down")
	s.stopping.Store(true)
	sctx, scancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
	defer scancel()
	// Both listeners close at once, and the requests in flight on either
	// get the whole timeout: a native client that does not read its
	// replies must not cut the HTTP requests short.
	var sw sync.WaitGroup
	sw.Go(func() {
		if err := s.native.Shutdown(sctx); err != nil {
			s.log.Warn("native connections closed before they finished", "err", err)
		}
	})
	if s.httpLn != nil {
		sw.Go(func() {
			if err := s.httpSrv.Shutdown(sctx); err != nil {
				// Close the connections still open (a stalled export):
				// their handlers' next write fails, and they stop.
				s.httpSrv.Close()
				s.log.Warn("http requests cut short", "err", err)
			}
		})
	}
	sw.Wait()
	wg.Wait()
	stopAlerts()
	<-alertDone
	if err := s.closeAll(); err != nil && runErr == nil {
		runErr = err
	}
	return runErr
}

// closeAll closes the store (flushing its head) and the metadata file.
func (s *Server) closeAll() error {
	var first error
	if s.nativeLn != nil {
		s.nativeLn.Close()
	}
	if s.httpLn != nil {
		s.httpLn.Close()
	}
	if s.db != nil {
		start := time.Now()
		if err := s.db.Close(); err != nil && !errors.Is(err, tsdb.ErrClosed) {
			// Typically a full disk: say that nothing acknowledged is lost.
			first = fmt.Errorf("close metrics store: %w (what was acknowledged is in the write-ahead log: the next start replays it)", err)
		} else if err == nil {
			s.log.Info("metrics store flushed and closed", "took", time.Since(start).Round(time.Millisecond))
		}
	}
	if s.meta != nil {
		if err := s.meta.Close(); err != nil && first == nil {
			first = fmt.Errorf("close %s: %w", s.meta.Path(), err)
		}
	}
	return first
}
