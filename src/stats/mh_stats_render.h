/*
 * mh_stats_render - a statistics snapshot (mh_stats.h) as text: the
 * Prometheus exposition format for /metrics, one JSON object for /stats
 * and the status page, a table for `milterhubctl stats` (issue 6).
 *
 * Pure: no I/O. Each renderer appends to out (owned by the caller) and
 * reads nothing but the snapshot, which it does not keep.
 *
 * Latency quantiles (JSON p50/p99, the table) are estimated from the
 * histogram: the upper bound of the first bucket whose cumulative count
 * reaches q * count. A quantile that falls into the overflow bucket
 * reports the largest finite bound (the true value is at least that;
 * the table prints it as ">30s" for a bound of 30).
 *
 * Histogram counts: _count (and JSON "count") is the sum of the buckets,
 * not lat_count, so it always equals the +Inf bucket even when the
 * snapshot caught a worker between its two stores.
 *
 * JSON shape (numbers are integers unless marked float; "non-zero only"
 * maps leave out zero counts, and a map left empty is written as {}):
 *   { "now": float epoch seconds, "uptime": float seconds,
 *     "generation", "workers", "worker_restarts",
 *     "sessions": { "total", "open", "max" },
 *     "messages", "recipients",
 *     "results": { "accept", "reject", "tempfail", "discard",
 *                  "quarantine", "abort", "pass" },   (all seven)
 *     "replies": { STAGE: { STATUS: n } },            (non-zero only)
 *     "mta_malformed",
 *     "latency_le": [ float, ... ],  (the MH_STATS_BUCKETS - 1 finite
 *                                     upper bounds in seconds)
 *     "milters": [ {                                  (chain order)
 *         "name", "state", "enabled": bool, "restarts", "sessions",
 *         "answers":   { STAGE: { STATUS: n } },      (non-zero only)
 *         "fallbacks": { STAGE: { REASON: n } },      (non-zero only)
 *         "latency":   { STAGE: { "count", "sum": float seconds,
 *                                 "p50": float, "p99": float,
 *                                 "buckets": [ n, ... ] } },
 *                      (stages with count > 0; buckets are per bucket,
 *                       NOT cumulative, MH_STATS_BUCKETS of them, the
 *                       last one the overflow above latency_le's last)
 *         "headers":   { KIND: { RESULT: n } }        (non-zero only)
 *     } ] }
 * STAGE is mh_hub_stage_name(), STATUS mh_status_name(), REASON
 * mh_hub_fail_name(), KIND/RESULT mh_stats_hdr_kind_name/_result_name().
 */
#ifndef MH_STATS_RENDER_H
#define MH_STATS_RENDER_H

#include "stats/mh_stats.h"
#include "util/mh_buf.h"

/*
 * Prometheus text format 0.0.4 (serve as "text/plain; version=0.0.4;
 * charset=utf-8"). Every family has # HELP and # TYPE; families and
 * label combinations that would only say 0 are left out (answers,
 * fallbacks, replies, header results), histograms are complete for
 * every (milter, stage) with observations. Passes `promtool check
 * metrics` without lint warnings.
 */
void mh_stats_render_prometheus(const struct mh_stats_snapshot *s, struct mh_buf *out);

/* The JSON object above (no trailing newline). */
void mh_stats_render_json(const struct mh_stats_snapshot *s, struct mh_buf *out);

/* A plain-text table for a terminal (ends with "\n"). */
void mh_stats_render_table(const struct mh_stats_snapshot *s, struct mh_buf *out);

/*
 * The latency quantile q (0 < q <= 1) of one histogram (per-bucket
 * counts) as described above: a bucket's upper bound in seconds,
 * INFINITY when it falls into the overflow bucket, NAN when empty.
 */
double mh_stats_render_quantile(const uint64_t bucket[MH_STATS_BUCKETS], double q);

#endif
