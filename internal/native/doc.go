// Package native serves vigia's native protocol: the Metrics && Alert
// Server's line protocol over TCP (LOG, QUERY, NEW-ALERT) and vigia's
// extensions (HELP, PING, ALERTS, DELETE-ALERT, SUBSCRIBE, METRICS).
//
// The package reads lines from connections, hands them to package wire to
// parse, and executes them against a Store, a Writer and an Alerts
// implementation. It owns admission control: a bound on open connections
// and on requests in flight, idle and write timeouts, and the 64 KiB line
// limit.
//
// Pipelined LOG requests that arrive together on one connection are
// committed with one Write call (one group commit of the store), and their
// 201 replies are sent only after that call returns. Replies always come in
// request order. docs/format/native.md describes the protocol.
package native
