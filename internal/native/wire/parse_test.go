package wire

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/vigia-mon/vigia/internal/query"
)

func TestParse(t *testing.T) {
	ms := func(s string) int64 {
		v, err := query.ParseTime([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		line string
		want Request
		err  error
	}{
		{"LOG foo 1", Request{Cmd: Log, ID: []byte("foo"), Value: 1}, nil},
		{"LOG foo -2.5", Request{Cmd: Log, ID: []byte("foo"), Value: -2.5}, nil},
		{"LOG\tfoo\t1e-05", Request{Cmd: Log, ID: []byte("foo"), Value: 1e-05}, nil},
		{"  LOG   foo   3  ", Request{Cmd: Log, ID: []byte("foo"), Value: 3}, nil},
		{"LOG foo 1 2022-04-26T00:00:00", Request{Cmd: Log, ID: []byte("foo"), Value: 1, T: ms("2022-04-26T00:00:00"), HasT: true}, nil},
		{"LOG foo 1 1650931200", Request{Cmd: Log, ID: []byte("foo"), Value: 1, T: 1650931200000, HasT: true}, nil},
		{"LOG foo 1 1650931200.25", Request{Cmd: Log, ID: []byte("foo"), Value: 1, T: 1650931200250, HasT: true}, nil},
		{"LOG café 1", Request{Cmd: Log, ID: []byte("café"), Value: 1}, nil},
		{"LOG foo", Request{Cmd: Log}, ErrLogUsage},
		{"LOG", Request{Cmd: Log}, ErrLogUsage},
		{"LOG foo bar", Request{Cmd: Log}, ErrLogUsage},
		{"LOG foo nan", Request{Cmd: Log}, ErrLogUsage},
		{"LOG foo inf", Request{Cmd: Log}, ErrLogUsage},
		{"LOG foo -Infinity", Request{Cmd: Log}, ErrLogUsage},
		{"LOG foo 1e400", Request{Cmd: Log}, ErrLogUsage},
		{"LOG foo 0x1p-2", Request{Cmd: Log}, ErrLogUsage},
		{"LOG a\u00a0b 1", Request{Cmd: Log}, ErrLogUsage},
		{"LOG a\u3000b 1", Request{Cmd: Log}, ErrLogUsage},
		{"LOG foo 1 yesterday", Request{Cmd: Log}, ErrLogUsage},
		{"LOG foo 1 2 3", Request{Cmd: Log}, ErrLogUsage},
		{"LOG " + strings.Repeat("x", 256) + " 1", Request{Cmd: Log}, ErrLogUsage},
		{"LOG \x01x 1", Request{Cmd: Log}, ErrLogUsage},
		{"LOG \xff 1", Request{Cmd: Log}, ErrLogUsage},
		{"LOG \u0085x 1", Request{Cmd: Log}, ErrLogUsage},

		{"QUERY foo AVG 60", Request{Cmd: Query, ID: []byte("foo"), Op: query.Avg, Secs: 60}, nil},
		{"QUERY foo COUNT 1 2022-04-26 2022-04-27T00:00:00Z", Request{Cmd: Query, ID: []byte("foo"), Op: query.Count, Secs: 1,
			From: ms("2022-04-26T00:00:00"), HasFrom: true, To: ms("2022-04-27T00:00:00"), HasTo: true}, nil},
		{"QUERY foo MAX 60 1650931200", Request{Cmd: Query, ID: []byte("foo"), Op: query.Max, Secs: 60, From: 1650931200000, HasFrom: true}, nil},
		{"QUERY foo", Request{Cmd: Query}, ErrQueryUsage},
		{"QUERY foo avg 60", Request{Cmd: Query}, ErrQueryUsage},
		{"QUERY foo P99 60", Request{Cmd: Query}, ErrQueryUsage},
		{"QUERY foo AVG 0", Request{Cmd: Query}, ErrQueryUsage},
		{"QUERY foo AVG -1", Request{Cmd: Query}, ErrQueryUsage},
		{"QUERY foo AVG 1.5", Request{Cmd: Query}, ErrQueryUsage},
		{"QUERY foo AVG 99999999999999999999", Request{Cmd: Query}, ErrQueryUsage},
		{"QUERY foo AVG 60 notadate", Request{Cmd: Query}, ErrQueryUsage},
		{"QUERY foo AVG 60 2022-04-26 notadate", Request{Cmd: Query}, ErrQueryUsage},
		{"QUERY foo AVG 60 1 2 3", Request{Cmd: Query}, ErrQueryUsage},

		{"NEW-ALERT foo MAX 60 90", Request{Cmd: NewAlert, ID: []byte("foo"), Op: query.Max, Secs: 60, Value: 90}, nil},
		{"NEW-ALERT foo MIN 1 -1 <=", Request{Cmd: NewAlert, ID: []byte("foo"), Op: query.Min, Secs: 1, Value: -1, Cmp: []byte("<=")}, nil},
		{"NEW-ALERT foo", Request{Cmd: NewAlert}, ErrNewAlertUsage},
		{"NEW-ALERT foo MAX 60 nan", Request{Cmd: NewAlert}, ErrNewAlertUsage},
		{"NEW-ALERT foo MAX 0 1", Request{Cmd: NewAlert}, ErrNewAlertUsage},
		{"NEW-ALERT foo MAX 1 1 !=", Request{Cmd: NewAlert}, ErrNewAlertUsage},

		{"HELP", Request{Cmd: Help}, nil},
		{"PING", Request{Cmd: Ping}, nil},
		{"ALERTS", Request{Cmd: Alerts}, nil},
		{"ALERTS x", Request{Cmd: Alerts}, ErrAlertsUsage},
		{"DELETE-ALERT 7", Request{Cmd: DeleteAlert, N: 7}, nil},
		{"DELETE-ALERT", Request{Cmd: DeleteAlert}, ErrDeleteAlertUsage},
		{"DELETE-ALERT x", Request{Cmd: DeleteAlert}, ErrDeleteAlertUsage},
		{"DELETE-ALERT -1", Request{Cmd: DeleteAlert}, ErrDeleteAlertUsage},
		{"SUBSCRIBE", Request{Cmd: Subscribe}, nil},
		{"SUBSCRIBE now", Request{Cmd: Subscribe}, ErrSubscribeUsage},
		{"METRICS", Request{Cmd: Metrics}, nil},
		{"METRICS cpu.", Request{Cmd: Metrics, ID: []byte("cpu.")}, nil},
		{"METRICS a b", Request{Cmd: Metrics}, ErrMetricsUsage},

		{"", Request{}, ErrUnknownCommand},
		{"   ", Request{}, ErrUnknownCommand},
		{"FOO", Request{}, ErrUnknownCommand},
		{"log foo 1", Request{}, ErrUnknownCommand},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			var r Request
			err := Parse([]byte(tt.line), &r)
			if err != tt.err {
				t.Fatalf("Parse(%q) error %v, want %v", tt.line, err, tt.err)
			}
			if err != nil {
				if r.Cmd != tt.want.Cmd {
					t.Errorf("Parse(%q) command %v, want %v", tt.line, r.Cmd, tt.want.Cmd)
				}
				return
			}
			if !equal(r, tt.want) {
				t.Errorf("Parse(%q) =\n %+v, want\n %+v", tt.line, r, tt.want)
			}
		})
	}
}

func equal(a, b Request) bool {
	return a.Cmd == b.Cmd && bytes.Equal(a.ID, b.ID) && a.Value == b.Value && a.T == b.T && a.HasT == b.HasT &&
		a.Op == b.Op && a.Secs == b.Secs && a.From == b.From && a.HasFrom == b.HasFrom && a.To == b.To &&
		a.HasTo == b.HasTo && bytes.Equal(a.Cmp, b.Cmp) && a.N == b.N
}

// TestReplies checks the reply lines byte for byte against the protocol's
// error block.
func TestReplies(t *testing.T) {
	tests := []struct{ line, want string }{
		{"FOO", "400 Bad Request -- Available commands: ['LOG', 'QUERY', 'NEW-ALERT', 'HELP', 'PING', 'ALERTS', 'DELETE-ALERT', 'SUBSCRIBE', 'METRICS']\n"},
		{"LOG foo", "400 Bad Request -- LOG <id:str> <value:float>\n"},
		{"QUERY foo", "400 Bad Request -- QUERY <id:str> <op:AVG|MAX|MIN|COUNT> <secs:int> [from:iso_date] [to:iso_date]\n"},
		{"NEW-ALERT foo", "400 Bad Request -- NEW-ALERT <id:str> <op:AVG|MAX|MIN|COUNT> <secs:int> <limit:float>\n"},
	}
	for _, tt := range tests {
		var r Request
		err := Parse([]byte(tt.line), &r)
		if got := string(ReplyFor(err)); got != tt.want {
			t.Errorf("%s: reply %q, want %q", tt.line, got, tt.want)
		}
		if got := string(UsageFor(CommandOf([]byte(tt.line)))); got != tt.want {
			t.Errorf("%s: usage %q, want %q", tt.line, got, tt.want)
		}
	}
	for _, b := range [][]byte{ReplyInserted, ReplyBusy, ReplyMetricNotFound, ReplyHelp, ReplyPong} {
		if bytes.Count(b, []byte{'\n'}) != 1 || b[len(b)-1] != '\n' {
			t.Errorf("reply %q is not one line", b)
		}
	}
	if string(ReplyBusy) != "503 The server is busy, try again later\n" {
		t.Errorf("busy reply %q", ReplyBusy)
	}
}

func TestParseDoesNotAllocate(t *testing.T) {
	lines := [][]byte{
		[]byte("LOG cpu.load 0.97 2022-04-26T00:00:00Z"),
		[]byte("QUERY cpu.load MAX 60 2022-04-26T00:00:00 1650931260"),
		[]byte("LOG caf\xc3\xa9 1"),
		[]byte("FOO bar"),
	}
	var r Request
	for _, l := range lines {
		if n := testing.AllocsPerRun(100, func() { Parse(l, &r) }); n != 0 {
			t.Errorf("Parse(%q) allocates %v times", l, n)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"LOG foo 1", "LOG foo 1 2022-04-26T00:00:00", "LOG foo -2.5 1650931200.5", "QUERY foo AVG 60",
		"QUERY foo COUNT 1 2022-04-26 2022-04-27T00:00:00+02:00", "NEW-ALERT foo MAX 60 90 >=", "DELETE-ALERT 3",
		"METRICS a.", "HELP", "PING", "ALERTS", "SUBSCRIBE", "FOO", "", "LOG \xff 1", "LOG a 1e308",
		"LOG a  1", "LOG a 1 ", "LOG a 1\t2", "LOG a\t1", "LOG a 1 2 3", "LOG a 1  2", "LOG é 1", "LOG a 0x10", "LOG a 1 1e3",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		var r Request
		err := Parse(line, &r)
		// The LOG fast path parses as the general one does.
		var g Request
		if gerr := parse(line, &g); gerr != err || fmt.Sprintf("%+v", g) != fmt.Sprintf("%+v", r) {
			t.Fatalf("Parse(%q) = %+v, %v; the general parser: %+v, %v", line, r, err, g, gerr)
		}
		if err != nil {
			if len(ReplyFor(err)) == 0 {
				t.Fatal("no reply for error")
			}
			return
		}
		if r.Cmd == 0 {
			t.Fatal("parsed without a command")
		}
		switch r.Cmd {
		case Log, Query, NewAlert:
			if len(r.ID) == 0 || len(r.ID) > MaxIDLen || !utf8.Valid(r.ID) || bytes.ContainsAny(r.ID, " \t\r\n\x00") {
				t.Fatalf("bad id %q accepted", r.ID)
			}
		}
		if r.Cmd == Query || r.Cmd == NewAlert {
			if r.Secs < 1 || r.Secs > MaxSecs {
				t.Fatalf("secs %d accepted", r.Secs)
			}
		}
		if r.HasT && (r.T < query.MinTime || r.T > query.MaxTime) {
			t.Fatalf("time %d out of range accepted", r.T)
		}
		if CommandOf(line) != r.Cmd {
			t.Fatalf("CommandOf = %v, Parse = %v", CommandOf(line), r.Cmd)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	lines := [][]byte{
		[]byte("LOG bench.gauge.s000042 1234.56"),
		[]byte("LOG bench.counter.s000043 98765 1650931200"),
		[]byte("QUERY bench.gauge.s000042 MAX 60"),
	}
	n := 0
	for _, l := range lines {
		n += len(l) + 1
	}
	b.SetBytes(int64(n))
	b.ReportAllocs()
	var r Request
	for b.Loop() {
		for _, l := range lines {
			if err := Parse(l, &r); err != nil {
				b.Fatal(err)
			}
		}
	}
}
