/*
 * mh_stats_history - the status page's memory: ring buffers in the
 * master holding what the counters did over the last hour and day
 * (issue 6, design §5). The master feeds it one snapshot every
 * MH_STATS_SAMPLE_INTERVAL seconds (and once at start); the page reads it.
 *
 * What is kept: the DIFFERENCE of every counter between two consecutive
 * samples (so a point is "what happened in those seconds" and rates
 * come out), plus gauges taken at the sample (sessions open, workers,
 * whether a milter is up). Two resolutions, filled in lockstep:
 *   - hour: one point per sample, MH_STATS_HOUR_POINTS (360 x 10 s);
 *   - day:  one point per MH_STATS_DAY_SAMPLES samples (30 x 10 s =
 *     5 min), MH_STATS_DAY_POINTS (288) of them; counters are summed,
 *     gauges keep their maximum ("up" counts the samples it was up).
 *     The day point being filled is readable too (the newest, with n <
 *     30), so the day graph is not empty for the first five minutes.
 * The first sample only sets the baseline (no point). A counter smaller
 * than at the previous sample (a reset; a name slot reused) gives 0,
 * never a negative or huge delta; a milter seen for the first time, or
 * whose name moved to another counter slot, starts from a baseline too.
 *
 * Milters are kept by name: up to MH_STATS_HISTORY_MILTERS rings (=
 * MH_HUB_CHILDREN_MAX, the most one configuration names). A milter
 * missing from a snapshot (removed by a reload) gets "no data" points
 * (n = 0) and keeps its ring; when a new name needs a ring and none is
 * free, the ring of the name absent longest is cleared and reused.
 *
 * Latency per point: count, sum and a p95 estimate over the answers of
 * ALL stages (one child reply each, from negotiate to end-of-message),
 * i.e. "how long does this child make the MTA wait per reply". The p95
 * is interpolated in the histogram of the point's bucket deltas
 * (mh_stats_bucket_le), as Prometheus' histogram_quantile does; a p95
 * in the +Inf bucket is reported as the largest finite bound.
 *
 * Memory: fixed arrays in one allocation (plus the names): 41 KiB for
 * the daemon's points and 36 KiB per milter ring, 64 rings: 2.3 MiB of
 * address space, of which only the rings in use are ever touched (the
 * allocation is zero pages from mmap; a sample reads ring ownership from
 * a separate table). Counts are uint32 per point and saturate (2^32 in
 * 5 minutes is not a mail server).
 *
 * Not thread-safe; the master's loop is its only user. Reading never
 * changes the history.
 */
#ifndef MH_STATS_HISTORY_H
#define MH_STATS_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include "stats/mh_stats.h"

#define MH_STATS_SAMPLE_INTERVAL 10.0 /* seconds between samples (the master's timer) */
#define MH_STATS_HOUR_POINTS 360 /* 1 h at 10 s */
#define MH_STATS_DAY_SAMPLES 30 /* samples summed into one day point (5 min) */
#define MH_STATS_DAY_POINTS 288 /* 24 h at 5 min */
#define MH_STATS_HISTORY_MILTERS MH_HUB_CHILDREN_MAX

enum mh_stats_res { MH_STATS_HOUR, MH_STATS_DAY };

/* Whole daemon, one point. */
struct mh_stats_gpoint {
	double t; /* epoch seconds at the end of the point (its last sample) */
	double dt; /* seconds it covers (sum of sample intervals) */
	uint32_t n; /* samples in it: 1 (hour), 1..30 (day) */
	uint32_t sessions; /* sessions started */
	uint32_t sessions_open; /* gauge; day: the largest sample */
	uint32_t workers; /* gauge; day: the largest sample */
	uint32_t messages; /* transactions ended */
	uint32_t results[MH_RES_COUNT]; /* per mh_hub_result */
};

/* One milter, one point (same timeline as the global point of the same index). */
struct mh_stats_mpoint {
	uint32_t n; /* samples in which the milter was configured; 0 = no data */
	uint32_t up; /* samples in which it was "up" or "unsupervised" */
	uint32_t sessions;
	uint32_t accept, reject, tempfail, discard; /* its answers, all stages */
	uint32_t fallbacks; /* its fallback stood in (any stage, any reason) */
	uint32_t timeouts; /* ... because a deadline passed */
	uint32_t lat_count; /* answers timed, all stages */
	uint64_t lat_sum_us;
	uint32_t p95_us; /* estimate; 0 when lat_count is 0 */
};

struct mh_stats_history;

/* A zeroed history (must succeed: aborts when out of memory). */
struct mh_stats_history *mh_stats_history_new(void);
void mh_stats_history_free(struct mh_stats_history *h);

/*
 * Take one sample (s->now is its time). s is read, not kept. Call every
 * MH_STATS_SAMPLE_INTERVAL seconds; an irregular interval is recorded
 * as it was (dt), a sample whose time does not advance is taken as one
 * interval later than the previous one.
 */
void mh_stats_history_sample(struct mh_stats_history *h, const struct mh_stats_snapshot *s);

/* Samples taken so far (the baseline included). */
uint64_t mh_stats_history_samples(const struct mh_stats_history *h);

/* Points readable at resolution res: hour 0..360, day 0..288 (the partial one included). */
size_t mh_stats_history_len(const struct mh_stats_history *h, enum mh_stats_res res);

/* Global point i, 0 = oldest, len - 1 = newest. Returns 0, or -1 if i is out of range. */
int mh_stats_history_global(const struct mh_stats_history *h, enum mh_stats_res res, size_t i,
                            struct mh_stats_gpoint *out);

/* The ring of milter `name` (exact match), or -1 if it has none. */
int mh_stats_history_milter(const struct mh_stats_history *h, const char *name);

/* Point i of ring m (as returned above), same indexing as the global points. 0 or -1. */
int mh_stats_history_milter_point(const struct mh_stats_history *h, int m, enum mh_stats_res res,
                                  size_t i, struct mh_stats_mpoint *out);

/*
 * p95 (microseconds) of a histogram of bucket counts (not cumulative,
 * MH_STATS_BUCKETS, the last one +Inf); 0 for an empty histogram.
 */
uint32_t mh_stats_history_p95_us(const uint64_t bucket[MH_STATS_BUCKETS]);

#endif
