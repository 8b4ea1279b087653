// Package loadgen drives a running vigia server over the native protocol:
// it generates the project's reference data set, sends it pipelined on
// several connections, runs steady test clients, and measures what the
// server did (acknowledged samples per second, LOG and QUERY latencies,
// bytes on disk per sample, peak memory).
//
// The reference data set is the one /bench/loadgen generates, byte for
// byte: series i of S is a gauge (a random walk rounded to 2 decimals,
// named <prefix>.gauge.sNNNNNN) when i is even and an increasing integer
// counter (<prefix>.counter.sNNNNNN) when i is odd; point j of a series is
// at start+j seconds; every series draws from its own PCG stream seeded by
// (seed, i).
//
// Load runs steady test clients (vigia load); Bench measures a server
// (vigia bench); StartServer runs a vigia server as a child process for
// Bench and for tests. Flags are parsed in cmd/vigia, never here.
package loadgen
