package wire

import "errors"

// Usage errors: each maps to the 400 reply that names the command's syntax.
var (
	// ErrUnknownCommand is an empty line or one whose verb is not a command.
	ErrUnknownCommand = errors.New("unknown command")
	// ErrLogUsage is a malformed LOG request.
	ErrLogUsage = errors.New("bad LOG request")
	// ErrQueryUsage is a malformed QUERY request.
	ErrQueryUsage = errors.New("bad QUERY request")
	// ErrNewAlertUsage is a malformed NEW-ALERT request.
	ErrNewAlertUsage = errors.New("bad NEW-ALERT request")
	// ErrAlertsUsage is ALERTS with arguments.
	ErrAlertsUsage = errors.New("bad ALERTS request")
	// ErrDeleteAlertUsage is DELETE-ALERT without exactly one numeric id.
	ErrDeleteAlertUsage = errors.New("bad DELETE-ALERT request")
	// ErrSubscribeUsage is SUBSCRIBE with arguments.
	ErrSubscribeUsage = errors.New("bad SUBSCRIBE request")
	// ErrMetricsUsage is METRICS with more than one argument or a bad prefix.
	ErrMetricsUsage = errors.New("bad METRICS request")
)

// The fixed reply lines, each ending in "\n". Clients and scripts match on
// these bytes.
var (
	ReplyInserted        = []byte("201 Metric Inserted\n")
	ReplyAlertRegistered = []byte("200 Alert Registered\n")
	ReplyAlertDeleted    = []byte("200 Alert Deleted\n")
	ReplySubscribed      = []byte("200 Subscribed\n")
	ReplyPong            = []byte("200 PONG\n")
	ReplyMetricNotFound  = []byte("404 Metric Not Found\n")
	ReplyAlertNotFound   = []byte("404 Alert Not Found\n")
	ReplyBusy            = []byte("503 The server is busy, try again later\n")
	ReplyInternal        = []byte("500 Internal Server Error\n")
	// ReplyUnterminated answers a last request that the client's close
	// ended before its newline: it may be a line cut short, so it is not
	// executed.
	ReplyUnterminated = []byte("400 Bad Request -- the connection ended inside a request (no newline): not executed\n")

	replyUnknown = []byte("400 Bad Request -- Available commands: ['LOG', 'QUERY', 'NEW-ALERT', " +
		"'HELP', 'PING', 'ALERTS', 'DELETE-ALERT', 'SUBSCRIBE', 'METRICS']\n")
	replyLogUsage      = []byte("400 Bad Request -- LOG <id:str> <value:float>\n")
	replyQueryUsage    = []byte("400 Bad Request -- QUERY <id:str> <op:AVG|MAX|MIN|COUNT> <secs:int> [from:iso_date] [to:iso_date]\n")
	replyNewAlertUsage = []byte("400 Bad Request -- NEW-ALERT <id:str> <op:AVG|MAX|MIN|COUNT> <secs:int> <limit:float>\n")
	replyAlertsUsage   = []byte("400 Bad Request -- ALERTS\n")
	replyDeleteUsage   = []byte("400 Bad Request -- DELETE-ALERT <n:int>\n")
	replySubUsage      = []byte("400 Bad Request -- SUBSCRIBE\n")
	replyMetricsUsage  = []byte("400 Bad Request -- METRICS [prefix:str]\n")

	// ReplyHelp describes every command on one line, as every request gets
	// exactly one reply line.
	ReplyHelp = []byte("200 Commands: LOG <id> <value> [timestamp]; QUERY <id> <op> <secs> [from] [to]; " +
		"NEW-ALERT <id> <op> <secs> <limit> [>|<|>=|<=]; ALERTS; DELETE-ALERT <n>; SUBSCRIBE; " +
		"METRICS [prefix]; PING; HELP. Ops: AVG MAX MIN COUNT SUM LAST. " +
		"Times: ISO 8601 (UTC unless zoned) or unix seconds.\n")
)

// ReplyFor returns the reply line for an error returned by Parse.
func ReplyFor(err error) []byte {
	switch err {
	case ErrLogUsage:
		return replyLogUsage
	case ErrQueryUsage:
		return replyQueryUsage
	case ErrNewAlertUsage:
		return replyNewAlertUsage
	case ErrAlertsUsage:
		return replyAlertsUsage
	case ErrDeleteAlertUsage:
		return replyDeleteUsage
	case ErrSubscribeUsage:
		return replySubUsage
	case ErrMetricsUsage:
		return replyMetricsUsage
	}
	return replyUnknown
}

// UsageFor returns the 400 reply for a request of command c that could not
// be parsed at all (a line over the length limit): the command's usage
// line, or the command list when c is 0.
func UsageFor(c Command) []byte {
	switch c {
	case Log:
		return replyLogUsage
	case Query:
		return replyQueryUsage
	case NewAlert:
		return replyNewAlertUsage
	case Alerts:
		return replyAlertsUsage
	case DeleteAlert:
		return replyDeleteUsage
	case Subscribe:
		return replySubUsage
	case Metrics:
		return replyMetricsUsage
	}
	return replyUnknown
}
