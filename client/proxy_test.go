package client

import (
	"bufio"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"
)

// faultyProxy forwards TCP connections to a target and, while faults are
// on, cuts them at random (before a request, after a request whose reply
// is then lost, or in the middle of a reply) and delays replies, now and
// then past the client's read timeout. It forwards whole request lines
// only, as a server may act on a truncated last line. It counts the
// requests forwarded and the replies delivered.
type faultyProxy struct {
	t      testing.TB
	ln     net.Listener
	target string

	mu        sync.Mutex
	faults    bool
	rng       *rand.Rand
	conns     map[net.Conn]bool
	cuts      int
	delays    int
	forwarded int // request lines written to the target
	replied   int // reply lines written back to clients
	wg        sync.WaitGroup
}

// Fault rates, per line.
const (
	proxyCutRequest = 1.0 / 400 // close instead of forwarding a request
	proxyLoseReply  = 1.0 / 400 // forward a request, then close
	proxyCutReply   = 1.0 / 400 // write half a reply, then close
	proxyDelay      = 1.0 / 40  // delay a reply by up to 40 ms
	proxyLongDelay  = 1.0 / 800 // delay a reply past the read timeout
)

func newFaultyProxy(t testing.TB, target string, longDelay time.Duration) *faultyProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultyProxy{t: t, ln: ln, target: target, rng: rand.New(rand.NewPCG(7, 11)), conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.accept(longDelay)
	t.Cleanup(p.close)
	return p
}

func (p *faultyProxy) addr() string { return p.ln.Addr().String() }

func (p *faultyProxy) setFaults(on bool) {
	p.mu.Lock()
	p.faults = on
	p.mu.Unlock()
}

// roll reports whether a fault of probability prob happens now.
func (p *faultyProxy) roll(prob float64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.faults && p.rng.Float64() < prob
}

func (p *faultyProxy) count(forwarded, replied, cuts, delays int) {
	p.mu.Lock()
	p.forwarded += forwarded
	p.replied += replied
	p.cuts += cuts
	p.delays += delays
	p.mu.Unlock()
}

func (p *faultyProxy) stats() (forwarded, replied, cuts, delays int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.forwarded, p.replied, p.cuts, p.delays
}

func (p *faultyProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *faultyProxy) track(c net.Conn, add bool) {
	p.mu.Lock()
	if add {
		p.conns[c] = true
	} else {
		delete(p.conns, c)
	}
	p.mu.Unlock()
}

func (p *faultyProxy) accept(longDelay time.Duration) {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.DialTimeout("tcp", p.target, time.Second)
		if err != nil {
			client.Close() // the server is down
			continue
		}
		p.track(client, true)
		p.track(server, true)
		p.wg.Add(2)
		cut := func() {
			client.Close()
			server.Close()
			p.track(client, false)
			p.track(server, false)
		}
		go func() { // requests
			defer p.wg.Done()
			defer cut()
			br := bufio.NewReader(client)
			for {
				line, err := br.ReadBytes('\n')
				if err != nil {
					return
				}
				if p.roll(proxyCutRequest) {
					p.count(0, 0, 1, 0)
					return
				}
				if _, err := server.Write(line); err != nil {
					return
				}
				p.count(1, 0, 0, 0)
				if p.roll(proxyLoseReply) {
					p.count(0, 0, 1, 0)
					return
				}
			}
		}()
		go func() { // replies
			defer p.wg.Done()
			defer cut()
			br := bufio.NewReader(server)
			for {
				line, err := br.ReadBytes('\n')
				if err != nil {
					return
				}
				switch {
				case p.roll(proxyLongDelay):
					// The client gives up waiting and closes; a reply
					// written after that could still land in its socket
					// buffer and be counted as delivered, so the proxy
					// cuts the connection instead.
					p.count(0, 0, 1, 1)
					time.Sleep(longDelay)
					return
				case p.roll(proxyDelay):
					p.count(0, 0, 0, 1)
					time.Sleep(time.Duration(rand.IntN(40)) * time.Millisecond)
				}
				if p.roll(proxyCutReply) {
					client.Write(line[:len(line)/2])
					p.count(0, 0, 1, 0)
					return
				}
				if _, err := client.Write(line); err != nil {
					return
				}
				p.count(0, 1, 0, 0)
			}
		}()
	}
}
