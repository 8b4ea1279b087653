package loadgen

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"
)

// The replies this package tells apart.
var (
	replyInserted = []byte("201 ")
	replyBusy     = []byte("503 ")
)

// maxReply bounds a reply line: a QUERY reply over a long series is one
// line of several hundred KiB.
const maxReply = 64 << 20

// replyReader reads reply lines from a connection in large chunks, so that
// millions of pipelined replies cost little. It is not safe for concurrent
// use.
type replyReader struct {
	r    io.Reader
	buf  []byte
	have int       // bytes in buf: the start of a line not yet complete
	at   time.Time // when the last read returned
}

func newReplyReader(r io.Reader) *replyReader {
	return &replyReader{r: r, buf: make([]byte, 256<<10)}
}

var errReplyTooLong = errors.New("reply line too long")

// read reads once from the connection, sets at, and calls fn for each reply line
// completed by what it read, without the line ending. The line is valid
// only during the call. It returns the read's error (io.EOF when the server
// closed the connection) after the lines read with it.
func (rr *replyReader) read(fn func(line []byte)) error {
	if rr.have == len(rr.buf) {
		if len(rr.buf) >= maxReply {
			return errReplyTooLong
		}
		rr.buf = append(rr.buf, make([]byte, len(rr.buf))...)
	}
	n, err := rr.r.Read(rr.buf[rr.have:])
	rr.at = time.Now()
	end := rr.have + n
	// Search for line ends only in the new bytes.
	from, lineStart := rr.have, 0
	for {
		i := bytes.IndexByte(rr.buf[from:end], '\n')
		if i < 0 {
			break
		}
		line := rr.buf[lineStart : from+i]
		if k := len(line); k > 0 && line[k-1] == '\r' {
			line = line[:k-1]
		}
		fn(line)
		from += i + 1
		lineStart = from
	}
	if lineStart == 0 {
		rr.have = end // a line still incomplete: keep it in place
	} else {
		rr.have = copy(rr.buf, rr.buf[lineStart:end])
	}
	return err
}

// ReplyError is a reply line that was not the one expected.
type ReplyError struct {
	Request string // what was sent, shortened
	Reply   string
}

func (e *ReplyError) Error() string {
	return fmt.Sprintf("%s: unexpected reply %q", e.Request, e.Reply)
}
