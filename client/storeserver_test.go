package client

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/vigia-mon/vigia/internal/tsdb"
)

// The store server is a stand-in for "vigia server" built from vigia's
// real store, internal/tsdb: the test binary runs itself as a child
// process that answers LOG and QUERY ... COUNT|SUM over the native
// protocol, acknowledging a LOG only after tsdb.Append made it durable.
// The outage test can then SIGKILL a process whose durability is vigia's
// own, whether or not cmd/vigia builds.

const (
	storeServerEnv = "VIGIA_CLIENT_TEST_STORE_SERVER" // data dir
	storeAddrEnv   = "VIGIA_CLIENT_TEST_STORE_ADDR"
)

// runStoreServer serves until killed; TestMain calls it in the child.
func runStoreServer(dir, addr string) {
	db, err := tsdb.Open(dir, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "open store:", err)
		os.Exit(1)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(1)
	}
	for {
		conn, err := ln.Accept()
		if err != nil {
			os.Exit(1)
		}
		go serveStore(db, conn)
	}
}

func serveStore(db *tsdb.DB, conn net.Conn) {
	defer conn.Close()
	br := bufio.NewReaderSize(conn, 64<<10)
	bw := bufio.NewWriterSize(conn, 64<<10)
	var batch []tsdb.Sample
	var replies []string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		f := strings.Fields(line)
		switch {
		case len(f) == 4 && f[0] == "LOG":
			v, err1 := strconv.ParseFloat(f[2], 64)
			ts, err2 := strconv.ParseFloat(f[3], 64)
			ref, err3 := db.GetOrCreate([]byte(f[1]), nil)
			if err1 != nil || err2 != nil || err3 != nil {
				replies = append(replies, "400 Bad Request -- LOG <id:str> <value:float>")
				break
			}
			batch = append(batch, tsdb.Sample{Ref: ref, T: int64(math.Round(ts * 1000)), V: v})
			replies = append(replies, "201 Metric Inserted")
		case len(f) == 6 && f[0] == "QUERY":
			replies = append(replies, storeQuery(db, f[1], f[2], f[3], f[4], f[5]))
		default:
			replies = append(replies, "400 Bad Request -- Available commands: ['LOG', 'QUERY', 'NEW-ALERT']")
		}
		// Pipelined lines already received share one Append, one fsync.
		if next, _ := br.Peek(br.Buffered()); bytes.IndexByte(next, '\n') >= 0 && len(replies) < 4096 {
			continue
		}
		if len(batch) > 0 {
			if err := db.Append(batch); err != nil {
				bw.WriteString("503 The server is busy, try again later\n")
				bw.Flush()
				return
			}
		}
		for _, r := range replies {
			bw.WriteString(r + "\n")
		}
		if bw.Flush() != nil {
			return
		}
		batch, replies = batch[:0], replies[:0]
	}
}

// storeQuery answers QUERY name COUNT|SUM secs from to (unix seconds).
func storeQuery(db *tsdb.DB, name, op, secsArg, fromArg, toArg string) string {
	secs, err1 := strconv.ParseInt(secsArg, 10, 64)
	from, err2 := strconv.ParseInt(fromArg, 10, 64)
	to, err3 := strconv.ParseInt(toArg, 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || secs < 1 || (op != "COUNT" && op != "SUM") {
		return "400 Bad Request -- QUERY <id:str> <op:COUNT|SUM> <secs:int> <from:int> <to:int>"
	}
	ref, ok := db.Lookup([]byte(name), nil)
	if !ok {
		return "404 Metric Not Found"
	}
	type window struct{ n, sum float64 }
	var windows []window
	last := int64(-1)
	err := db.Scan(ref, from*1000, to*1000, func(ts []int64, vs []float64) bool {
		for i, t := range ts {
			k := (t - from*1000) / (secs * 1000)
			if k != last {
				windows = append(windows, window{})
				last = k
			}
			windows[len(windows)-1].n++
			windows[len(windows)-1].sum += vs[i]
		}
		return true
	})
	if err != nil {
		return "500 Internal Server Error"
	}
	out := make([]string, len(windows))
	for i, w := range windows {
		if op == "COUNT" {
			out[i] = strconv.Itoa(int(w.n))
		} else {
			out[i] = strconv.FormatFloat(w.sum, 'f', -1, 64)
		}
	}
	return "200 [" + strings.Join(out, ", ") + "]"
}

// startStoreServer starts the store server as a child process on a fresh
// data dir and port.
func startStoreServer(t testing.TB) *vigiaServer {
	t.Helper()
	if testing.Short() {
		t.Skip("runs a server process")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	s := &vigiaServer{t: t, dataDir: t.TempDir(), addr: freePort(t)}
	s.log = filepath.Join(t.TempDir(), "server.log")
	s.command = func() *exec.Cmd {
		cmd := exec.Command(self, "-test.run=^$")
		cmd.Env = append(os.Environ(), storeServerEnv+"="+s.dataDir, storeAddrEnv+"="+s.addr)
		return cmd
	}
	s.start()
	t.Cleanup(s.stop)
	return s
}

// TestOutageStore is the outage test against a process running vigia's
// store (internal/tsdb), SIGKILLed and restarted on the same data dir and
// port, through the faulty proxy.
func TestOutageStore(t *testing.T) {
	srv := startStoreServer(t)
	r := runOutage(t, outageBackend{addr: srv.addr, kill: srv.kill, restart: srv.start}, 10)
	checkStoredBy(t, r, srv)
}

func BenchmarkFlush10kStore(b *testing.B) {
	srv := startStoreServer(b)
	benchFlush(b, srv.addr, 10_000)
}
