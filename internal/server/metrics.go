package server

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// newRegistry returns the registry behind /metrics: the Go runtime, the
// process, and vigia's own counters read from each component's Stats when
// scraped.
func newRegistry(s *Server) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&statsCollector{s: s},
	)
	return reg
}

// statsCollector exports the components' Stats as const metrics.
type statsCollector struct{ s *Server }

const (
	counter = prometheus.CounterValue
	gauge   = prometheus.GaugeValue
)

// Describe sends nothing: the collector is unchecked, as its metrics are
// fixed but computed at scrape time.
func (c *statsCollector) Describe(chan<- *prometheus.Desc) {}

// Collect reads every component's stats once and sends them.
func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	ts := s.db.Stats()
	ns := s.native.Stats()
	as := s.alerts.Stats()
	m := func(name, help string, kind prometheus.ValueType, v float64) {
		ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(name, help, nil, nil), kind, v)
	}
	m("vigia_tsdb_series", "Series in the index.", gauge, float64(ts.Series))
	m("vigia_tsdb_head_samples", "Samples in memory not yet flushed into parts.", gauge, float64(ts.HeadSamples))
	m("vigia_tsdb_parts", "Raw part files.", gauge, float64(ts.Parts))
	m("vigia_tsdb_partitions", "Raw day partitions.", gauge, float64(ts.Partitions))
	m("vigia_tsdb_disk_bytes", "Bytes on disk: parts, archives, WAL and series index.", gauge, float64(ts.DiskBytes))
	m("vigia_tsdb_wal_bytes", "Bytes of live WAL segments.", gauge, float64(ts.WALBytes))
	m("vigia_tsdb_archive_bytes", "Bytes of 1m, 1h and 1d archive parts.", gauge, float64(ts.ArchiveBytes))
	m("vigia_tsdb_appended_samples_total", "Samples acknowledged as durable.", counter, float64(ts.AppendedSamples))
	m("vigia_tsdb_commits_total", "Group commits (one write and one fsync each).", counter, float64(ts.Commits))
	m("vigia_tsdb_flushes_total", "Flushes of the head into parts.", counter, float64(ts.Flushes))
	m("vigia_tsdb_flushed_samples_total", "Samples written into parts by flushes.", counter, float64(ts.FlushedSamples))
	m("vigia_tsdb_merges_total", "Background part merges.", counter, float64(ts.Merges))
	m("vigia_tsdb_flush_seconds_total", "Time spent flushing the head into parts, the flush running now included.", counter, ts.FlushTime.Seconds())
	m("vigia_tsdb_merge_seconds_total", "Time spent merging parts, the merge running now included.", counter, ts.MergeTime.Seconds())
	m("vigia_tsdb_replayed_samples", "Samples replayed from the WAL at start.", gauge, float64(ts.ReplayedSamples))
	m("vigia_tsdb_torn_wal_tails", "Torn WAL tails truncated at start.", gauge, float64(ts.TornTails))

	m("vigia_native_connections", "Open native protocol connections.", gauge, float64(ns.Conns))
	m("vigia_native_accepted_connections_total", "Native connections accepted.", counter, float64(ns.Accepted))
	m("vigia_native_refused_connections_total", "Native connections refused with 503 (--max-conns).", counter, float64(ns.RejectedConn))
	m("vigia_query_refused_total", "Queries and exports (native and HTTP) the --max-query-memory budget refused: 503 while the queries running held it, 400 when one needed more than all of it.", counter, float64(c.s.budget.Refused()))
	m("vigia_native_busy_total", "Native requests refused with 503 (--max-inflight or an overloaded store).", counter, float64(ns.Busy))
	m("vigia_native_requests_total", "Native request lines read and answered or refused (a 400, a 503 included).", counter, float64(ns.Requests))
	m("vigia_native_samples_total", "LOG samples acknowledged.", counter, float64(ns.Samples))
	m("vigia_native_bad_requests_total", "Native requests answered with 400.", counter, float64(ns.BadRequests))
	m("vigia_native_series_limit_total", "LOGs refused because --max-series series exist.", counter, float64(ns.SeriesLimit))
	m("vigia_native_long_lines_total", "Native connections closed for a line over 64 KiB.", counter, float64(ns.LongLines))
	m("vigia_native_timeouts_total", "Native connections closed idle or for not reading.", counter, float64(ns.Timeouts))

	if s.httpLn != nil {
		m("vigia_http_connections", "Open HTTP connections.", gauge, float64(s.httpLn.Open()))
		m("vigia_http_refused_connections_total", "HTTP connections refused with 503 (--http-max-conns).", counter, float64(s.httpLn.Refused()))
	}

	m("vigia_alert_rules", "Registered alert rules.", gauge, float64(as.Rules))
	m("vigia_alert_checks_total", "Alert checks run.", counter, float64(as.Checks))
	m("vigia_alert_overruns_total", "Alert checks that ended after the next tick.", counter, float64(as.Overruns))
	m("vigia_alert_skipped_ticks_total", "Alert check ticks skipped because a check overran them.", counter, float64(as.SkippedTicks))
	m("vigia_alert_persist_errors_total", "Alert state and history writes that failed (the next check writes what they held).", counter, float64(as.PersistenceErrors))
	m("vigia_alert_corrupt_records_total", "Damaged alert rule or history records skipped.", counter, float64(as.CorruptRecords))
	m("vigia_alert_last_check_seconds", "Duration of the last alert check.", gauge, as.LastCheck.Seconds())
	m("vigia_alert_notifications_total", "Alert notifications (firing or resolved).", counter, float64(as.Notifications))
	m("vigia_alert_dropped_samples_total", "Samples the monitor dropped past its pending bound.", counter, float64(as.DroppedSamples))
	m("vigia_alert_webhook_sent_total", "Webhook payloads delivered.", counter, float64(as.WebhookSent))
	m("vigia_alert_webhook_failures_total", "Webhook payloads that failed after their retries (their alerts are sent again) or were rejected.", counter, float64(as.WebhookFailures))
	m("vigia_alert_webhook_drops_total", "Alert notifications dropped from a full webhook queue.", counter, float64(as.WebhookDrops))
	m("vigia_alert_subscriber_drops_total", "Events dropped for slow SUBSCRIBE connections.", counter, float64(as.SubscriberDrops))
}
