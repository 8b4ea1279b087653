// Package wire parses the request lines of vigia's native protocol and
// formats its fixed replies. It does no I/O: the native package reads the
// lines from connections and executes them.
//
// The protocol is the original Metrics && Alert Server's, byte for byte;
// docs/format/native.md describes it.
package wire

import (
	"bytes"
	"unicode"
	"unicode/utf8"

	"github.com/vigia-mon/vigia/internal/query"
)

// Command identifies a request's verb.
type Command uint8

// The commands. LOG, QUERY and NEW-ALERT are the original protocol's; the
// others are vigia's extensions, listed after them in the unknown-command
// reply.
const (
	Log Command = iota + 1
	Query
	NewAlert
	Help
	Ping
	Alerts
	DeleteAlert
	Subscribe
	Metrics
)

var commandNames = [...]string{
	Log: "LOG", Query: "QUERY", NewAlert: "NEW-ALERT", Help: "HELP", Ping: "PING",
	Alerts: "ALERTS", DeleteAlert: "DELETE-ALERT", Subscribe: "SUBSCRIBE", Metrics: "METRICS",
}

// String returns the command's name on the wire.
func (c Command) String() string {
	if c != 0 && int(c) < len(commandNames) {
		return commandNames[c]
	}
	return "UNKNOWN"
}

// MaxIDLen is the longest metric id the protocol accepts, in bytes.
const MaxIDLen = 255

// MaxSecs bounds a window width so that window arithmetic in milliseconds
// can never overflow: about 2,900 years.
const MaxSecs = query.MaxTime / 1000

// Request is one parsed request line. Byte-slice fields are sub-slices of
// the parsed line and valid only as long as it is. Reuse a Request across
// lines: Parse overwrites every field.
type Request struct {
	Cmd Command
	ID  []byte // LOG, QUERY, NEW-ALERT: the metric id; METRICS: the prefix (may be empty)

	Value float64 // LOG: the sample's value; NEW-ALERT: the limit
	T     int64   // LOG: the timestamp in unix ms, when HasT
	HasT  bool

	Op   query.Op // QUERY, NEW-ALERT
	Secs int64    // QUERY, NEW-ALERT: window width in seconds, >= 1

	From, To       int64 // QUERY: unix ms bounds, when HasFrom / HasTo
	HasFrom, HasTo bool

	Cmp []byte // NEW-ALERT: optional comparison (">", "<", ">=", "<="); empty means ">"
	N   int64  // DELETE-ALERT: the alert's id
}

// Parse parses one request line, without its line ending, into r. On
// failure it returns one of the errors in errors.go; ReplyFor turns it into
// the protocol's reply line. Parse does not allocate for
// well-formed requests whose times are unix seconds or the usual ISO 8601
// forms; other time forms go through the time package.
func Parse(line []byte, r *Request) error {
	*r = Request{}
	if parseLog(line, r) {
		return nil
	}
	return parse(line, r)
}

// parseLog parses the LOG lines clients send, "LOG id value" and "LOG id
// value time" with single spaces and an id of printable ASCII, in one pass
// over the line, as parse would. It reports false, with r still zero, for
// any other line, which parse then handles.
func parseLog(line []byte, r *Request) bool {
	if len(line) < 7 || string(line[:4]) != "LOG " {
		return false
	}
	rest := line[4:]
	i := 0
	for i < len(rest) && rest[i] > ' ' && rest[i] < 0x7f {
		i++
	}
	if i == 0 || i > MaxIDLen || i == len(rest) || rest[i] != ' ' {
		return false
	}
	id, rest := rest[:i], rest[i+1:]
	j := bytes.IndexByte(rest, ' ')
	val, ts := rest, []byte(nil)
	if j >= 0 {
		val, ts = rest[:j], rest[j+1:]
	}
	// Neither ParseFloat nor ParseTime accepts a tab, which parse would
	// split at; ParseTime accepts a space ("2022-04-26 00:00:00"), which
	// parse would also split at. FuzzParse checks that both agree.
	v, ok := query.ParseFloat(val)
	if !ok {
		return false
	}
	var t int64
	if j >= 0 {
		if len(ts) == 0 || bytes.IndexByte(ts, ' ') >= 0 {
			return false
		}
		var err error
		if t, err = query.ParseTime(ts); err != nil {
			return false
		}
	}
	r.Cmd, r.ID, r.Value, r.T, r.HasT = Log, id, v, t, j >= 0
	return true
}

// parse is Parse for any line.
func parse(line []byte, r *Request) error {
	var tok [7][]byte
	n := split(line, tok[:])
	if n == 0 {
		return ErrUnknownCommand
	}
	args := tok[1:min(n, len(tok))]
	if n > len(tok) {
		n = len(tok) + 1 // too many tokens for any command
	}
	nargs := n - 1
	switch string(tok[0]) {
	case "LOG":
		r.Cmd = Log
		if nargs < 2 || nargs > 3 || !ValidID(args[0]) {
			return ErrLogUsage
		}
		r.ID = args[0]
		v, ok := query.ParseFloat(args[1])
		if !ok {
			return ErrLogUsage
		}
		r.Value = v
		if nargs == 3 {
			t, err := query.ParseTime(args[2])
			if err != nil {
				return ErrLogUsage
			}
			r.T, r.HasT = t, true
		}
		return nil
	case "QUERY":
		r.Cmd = Query
		if nargs < 3 || nargs > 5 || !ValidID(args[0]) {
			return ErrQueryUsage
		}
		r.ID = args[0]
		var ok bool
		if r.Op, ok = query.ParseOp(args[1]); !ok {
			return ErrQueryUsage
		}
		if r.Secs, ok = parseSecs(args[2]); !ok {
			return ErrQueryUsage
		}
		if nargs >= 4 {
			t, err := query.ParseTime(args[3])
			if err != nil {
				return ErrQueryUsage
			}
			r.From, r.HasFrom = t, true
		}
		if nargs == 5 {
			t, err := query.ParseTime(args[4])
			if err != nil {
				return ErrQueryUsage
			}
			r.To, r.HasTo = t, true
		}
		return nil
	case "NEW-ALERT":
		r.Cmd = NewAlert
		if nargs < 4 || nargs > 5 || !ValidID(args[0]) {
			return ErrNewAlertUsage
		}
		r.ID = args[0]
		var ok bool
		if r.Op, ok = query.ParseOp(args[1]); !ok {
			return ErrNewAlertUsage
		}
		if r.Secs, ok = parseSecs(args[2]); !ok {
			return ErrNewAlertUsage
		}
		if r.Value, ok = query.ParseFloat(args[3]); !ok {
			return ErrNewAlertUsage
		}
		if nargs == 5 {
			switch string(args[4]) {
			case ">", "<", ">=", "<=":
				r.Cmp = args[4]
			default:
				return ErrNewAlertUsage
			}
		}
		return nil
	case "HELP":
		r.Cmd = Help
		return nil
	case "PING":
		r.Cmd = Ping
		return nil
	case "ALERTS":
		r.Cmd = Alerts
		if nargs != 0 {
			return ErrAlertsUsage
		}
		return nil
	case "DELETE-ALERT":
		r.Cmd = DeleteAlert
		if nargs != 1 {
			return ErrDeleteAlertUsage
		}
		var ok bool
		if r.N, ok = parseInt(args[0]); !ok {
			return ErrDeleteAlertUsage
		}
		return nil
	case "SUBSCRIBE":
		r.Cmd = Subscribe
		if nargs != 0 {
			return ErrSubscribeUsage
		}
		return nil
	case "METRICS":
		r.Cmd = Metrics
		if nargs > 1 || (nargs == 1 && !ValidID(args[0])) {
			return ErrMetricsUsage
		}
		if nargs == 1 {
			r.ID = args[0]
		}
		return nil
	}
	return ErrUnknownCommand
}

// CommandOf returns the command a line starts with, or 0. The server uses
// it to pick the usage line for a request too long to parse.
func CommandOf(prefix []byte) Command {
	var tok [1][]byte
	if split(prefix, tok[:]) == 0 {
		return 0
	}
	for c := Log; int(c) < len(commandNames); c++ {
		if string(tok[0]) == commandNames[c] {
			return c
		}
	}
	return 0
}

// split stores up to len(dst) space- or tab-separated tokens of line in dst
// and returns how many tokens the line has (which may exceed len(dst)).
func split(line []byte, dst [][]byte) int {
	if bytes.IndexByte(line, '\t') < 0 {
		return splitSpaces(line, dst)
	}
	n := 0
	i := 0
	for {
		for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
			i++
		}
		if i == len(line) {
			return n
		}
		j := i
		for j < len(line) && line[j] != ' ' && line[j] != '\t' {
			j++
		}
		if n < len(dst) {
			dst[n] = line[i:j]
		}
		n++
		i = j
	}
}

// splitSpaces is split for lines without tabs: it jumps from space to
// space with bytes.IndexByte.
func splitSpaces(line []byte, dst [][]byte) int {
	n := 0
	for {
		for len(line) > 0 && line[0] == ' ' {
			line = line[1:]
		}
		if len(line) == 0 {
			return n
		}
		j := bytes.IndexByte(line, ' ')
		if j < 0 {
			j = len(line)
		}
		if n < len(dst) {
			dst[n] = line[:j]
		}
		n++
		line = line[j:]
	}
}

// ValidID reports whether id is a legal metric id: 1 to MaxIDLen bytes of
// UTF-8 with no control characters and no whitespace.
func ValidID(id []byte) bool {
	if len(id) == 0 || len(id) > MaxIDLen {
		return false
	}
	ascii := true
	for _, c := range id {
		if c <= ' ' || c == 0x7f {
			return false
		}
		if c >= utf8.RuneSelf {
			ascii = false
		}
	}
	if ascii {
		return true
	}
	if !utf8.Valid(id) {
		return false
	}
	// C1 control characters (U+0080 to U+009F) are control characters too,
	// and Unicode spaces (U+00A0, U+2003, U+3000, ...) are whitespace.
	return !bytes.ContainsFunc(id, func(r rune) bool { return r >= 0x80 && r <= 0x9f || unicode.IsSpace(r) })
}

func parseSecs(b []byte) (int64, bool) {
	v, ok := parseInt(b)
	if !ok || v < 1 || v > MaxSecs {
		return 0, false
	}
	return v, true
}

// parseInt parses a non-negative decimal integer of at most 18 digits.
func parseInt(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, true
}
