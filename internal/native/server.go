package native

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vigia-mon/vigia/internal/native/wire"
	"github.com/vigia-mon/vigia/internal/netlimit"
	"github.com/vigia-mon/vigia/internal/query"
	"github.com/vigia-mon/vigia/internal/tsdb"
)

// Store is the read side of the metrics store the protocol needs.
// *tsdb.DB implements it.
type Store interface {
	query.Store
	Lookup(name []byte, labels []tsdb.Label) (tsdb.SeriesRef, bool)
	GetOrCreate(name []byte, labels []tsdb.Label) (tsdb.SeriesRef, error)
	NumSeries() int
	Names(prefix string) []string
}

var _ Store = (*tsdb.DB)(nil)

// Writer stores samples durably: when Write returns nil, every sample
// survives a crash. It returns tsdb.ErrOverloaded when the store cannot take
// more now.
type Writer interface {
	Write(samples []tsdb.Sample) error
}

// Alerts manages alert rules. *alert.Monitor implements it.
type Alerts interface {
	AddRule(metric string, op query.Op, secs int64, limit float64, cmp string) (int64, error)
	ListJSON() ([]byte, error)
	DeleteRule(id int64) error
	Subscribe() (<-chan [][]byte, func())
}

// Options configures a Server. Store and Writer are required; a zero field
// means its default.
type Options struct {
	Store  Store
	Writer Writer
	// Alerts serves NEW-ALERT, ALERTS, DELETE-ALERT and SUBSCRIBE; when nil
	// they answer "503 Alerts are disabled".
	Alerts Alerts

	// MaxConns bounds open connections. Default 1024.
	MaxConns int
	// MaxInflight bounds requests being executed over all connections; a
	// batch of pipelined LOGs counts one per line. A connection's batch
	// that does not fit first waits for that connection's earlier
	// batches to be committed, and is refused only if it still does not
	// fit. Default 65536.
	MaxInflight int
	// IdleTimeout closes a connection that sends nothing for this long.
	// Default 5m.
	IdleTimeout time.Duration
	// WriteTimeout closes a connection that does not read its replies for
	// this long. Default 30s.
	WriteTimeout time.Duration
	// MaxMetrics caps the names a METRICS reply lists. Default 10,000.
	MaxMetrics int
	// MaxQueryPoints caps the windows of a QUERY reply (about 10 bytes
	// each), so that a query's memory stays bounded; beyond it the QUERY
	// gets a 400 line. Default 1,000,000.
	MaxQueryPoints int
	// QueryBudget, if not nil, bounds the memory the QUERYs running at
	// once take (their windows and merges, and a big reply until it is
	// sent); a QUERY that finds none left gets 503, one that needs more
	// than all of it 400, and the connection goes on.
	QueryBudget *query.Budget
	// MaxSeries caps the series a LOG may create: a LOG that would
	// create one more is refused with a 400 line, so that the index (in
	// memory) stays bounded whatever ids clients send. Default 1,000,000.
	MaxSeries int

	// Logger receives the server's log lines, with "component"="native".
	Logger *slog.Logger
	// Now gives the arrival time of LOG requests without a timestamp.
	// Default time.Now.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.MaxConns <= 0 {
		o.MaxConns = 1024
	}
	if o.MaxInflight <= 0 {
		o.MaxInflight = 65536
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 5 * time.Minute
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 30 * time.Second
	}
	if o.MaxMetrics <= 0 {
		o.MaxMetrics = 10000
	}
	if o.MaxQueryPoints <= 0 {
		o.MaxQueryPoints = 1000000
	}
	if o.MaxSeries <= 0 {
		o.MaxSeries = 1000000
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	o.Logger = o.Logger.With("component", "native")
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Stats are the server's counters since New.
type Stats struct {
	Conns        int64  // open connections
	Accepted     uint64 // connections accepted
	RejectedConn uint64 // connections refused with 503 (MaxConns)
	Busy         uint64 // requests refused with 503 (MaxInflight or an overloaded store)
	Requests     uint64 // request lines read (answered, or refused with 400 or 503)
	Samples      uint64 // LOG samples acknowledged
	BadRequests  uint64 // requests answered with 400
	SeriesLimit  uint64 // LOGs refused because MaxSeries series exist
	LongLines    uint64 // connections closed for a line over MaxLine
	Timeouts     uint64 // connections closed idle or for not reading replies
}

// MaxLine is the longest request line, without its line ending.
const MaxLine = 64 << 10

// Server is a native protocol server. Its methods may be called
// concurrently.
type Server struct {
	opts Options
	log  *slog.Logger

	inflight  atomic.Int64
	refuser   netlimit.Refuser // connections beyond MaxConns
	newSeries atomic.Int64     // series that connections' batches will create once admitted, counted against MaxSeries

	// Failed store writes since the last line logging them (a full disk
	// fails every batch: one line a second is enough).
	failMu                sync.Mutex
	failAt                time.Time
	failBatches, failSmps int
	failErr               error
	failTimer             bool // a line is due at the end of the second

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	closing   bool
	wg        sync.WaitGroup

	stats struct {
		conns                                   atomic.Int64
		accepted, rejected, busy, requests      atomic.Uint64
		samples, bad, longLines, timeouts, errs atomic.Uint64
		seriesLimit                             atomic.Uint64
	}
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("native: server closed")

// New returns a server. It panics when Store or Writer is missing.
func New(opts Options) *Server {
	if opts.Store == nil || opts.Writer == nil {
		panic("native: Options.Store and Options.Writer are required")
	}
	opts = opts.withDefaults()
	return &Server{
		opts:      opts,
		log:       opts.Logger,
		refuser:   netlimit.Refuser{Reply: wire.ReplyBusy},
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[*conn]struct{}),
	}
}

// Serve accepts connections on l until Shutdown, and closes l. It returns
// ErrServerClosed after Shutdown, or the accept error that stopped it.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
		l.Close()
	}()
	var backoff time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing {
				return ErrServerClosed
			}
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ECONNABORTED) {
				// Out of file descriptors and the like: wait, as net/http does.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed, retrying", "err", err, "retry_in", backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		s.stats.accepted.Add(1)
		if s.stats.conns.Add(1) > int64(s.opts.MaxConns) {
			s.stats.conns.Add(-1)
			s.stats.rejected.Add(1)
			s.refuser.Refuse(nc)
			continue
		}
		c := newConn(s, nc)
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			s.stats.conns.Add(-1)
			nc.Close()
			return ErrServerClosed
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			c.serve()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			s.stats.conns.Add(-1)
		}()
	}
}

// Shutdown stops accepting, lets every connection finish the requests it
// has read (their replies are sent), then closes the connections. It
// returns ctx's error if they do not finish in time, after closing them
// forcibly.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	for l := range s.listeners {
		l.Close()
	}
	for c := range s.conns {
		c.stop()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.nc.Close()
		}
		s.mu.Unlock()
		<-done
		return ctx.Err()
	}
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	return Stats{
		Conns:        s.stats.conns.Load(),
		Accepted:     s.stats.accepted.Load(),
		RejectedConn: s.stats.rejected.Load(),
		Busy:         s.stats.busy.Load(),
		Requests:     s.stats.requests.Load(),
		Samples:      s.stats.samples.Load(),
		BadRequests:  s.stats.bad.Load(),
		SeriesLimit:  s.stats.seriesLimit.Load(),
		LongLines:    s.stats.longLines.Load(),
		Timeouts:     s.stats.timeouts.Load(),
	}
}

// acquire takes n in-flight slots, or none and returns false.
func (s *Server) acquire(n int) bool {
	if s.inflight.Add(int64(n)) > int64(s.opts.MaxInflight) {
		s.inflight.Add(int64(-n))
		return false
	}
	return true
}

func (s *Server) release(n int) { s.inflight.Add(int64(-n)) }

// logStoreFailure logs a store write that failed, at most once a second,
// with the batches and samples that failed since the last line. Those that
// fail within the second after a line are logged at its end, whether or
// not more fail later.
func (s *Server) logStoreFailure(err error, samples int) {
	s.failMu.Lock()
	defer s.failMu.Unlock()
	s.failBatches++
	s.failSmps += samples
	s.failErr = err
	if wait := time.Second - time.Since(s.failAt); wait > 0 {
		if !s.failTimer {
			s.failTimer = true
			time.AfterFunc(wait, func() {
				s.failMu.Lock()
				defer s.failMu.Unlock()
				s.failTimer = false
				s.logStoreFailuresLocked()
			})
		}
		return
	}
	s.logStoreFailuresLocked()
}

// logStoreFailuresLocked logs the failures counted since the last line, if
// any. Callers hold failMu.
func (s *Server) logStoreFailuresLocked() {
	if s.failBatches == 0 {
		return
	}
	s.log.Error("storing samples failed; their LOGs were answered 500", "err", s.failErr, "batches", s.failBatches, "samples", s.failSmps)
	s.failAt, s.failBatches, s.failSmps, s.failErr = time.Now(), 0, 0, nil
}
