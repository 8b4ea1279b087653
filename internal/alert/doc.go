// Package alert is vigia's alert monitor: it keeps alert rules
// (metric, op, secs, limit, comparison), checks them on a drift-free
// schedule against the samples received since the previous check, and
// notifies through the server log, native-protocol subscribers and
// Alertmanager-compatible webhooks. Rules, their states and a bounded
// history persist in the server's bbolt metadata file.
//
// # Data flow
//
// The ingest path calls Observe with every durably appended batch. Observe
// looks each sample's series up in an immutable index (an atomic pointer,
// replaced whenever the set of watched series changes) behind a bit filter,
// so a series without alerts costs a couple of nanoseconds and no lock. A
// sample of a watched series is appended to that series' pending buffer
// under the buffer's own mutex.
//
// A check swaps every pending buffer for an empty one, each under its
// mutex, so every sample lands in exactly one check: the one whose swap
// follows its append. It then sorts each series' samples by time (stable),
// aggregates them per rule exactly as QUERY does (query.Windows, windows of
// secs starting at the first sample's time) and compares every window's
// value with the limit.
//
// # States
//
// A rule is inactive until a check finds a window that crosses its limit;
// it is then firing until a check that has samples finds none crossing, when
// it becomes resolved (and may fire again later). A check with no samples
// for a rule leaves its state alone and sends nothing: no data is not
// evidence either way.
//
// # Schedule
//
// Run checks at t0, t0+P, t0+2P, ... measured on the monotonic clock. A
// check that ends after the next tick is logged as an overrun, and the
// ticks it overlapped are skipped: the next check starts on the first tick
// after it ended, so checks never pile up and never drift.
//
// # Persistence
//
// bbolt buckets whose names start with "alert": alert_rules (id -> rule
// and state) and alert_history (time+sequence -> notification). Each value
// ends with a CRC-32C of the JSON before it; a record that fails its
// checksum is reported and skipped, never trusted. The history keeps the
// newest Options.HistoryLimit entries no older than Options.HistoryMaxAge.
package alert
