/*
 * mta_load - run sessions on one event loop, C at a time, and measure
 * them (docs/tools.md "Load mode"). Single mode is the same run with
 * N = 1, C = 1, keeping that session's record for the report.
 *
 * Closed loop (default): a new session starts whenever one ends. Open
 * loop (--rate R): starts are due every 1/R seconds; a start that finds
 * `concurrency` sessions open waits for one to end and counts as late.
 *
 * Latency is per session, from the start of its connect to its close.
 * A session fails when its result is "error" (the milter errored, timed
 * out or could not be reached); a reject is not a failure.
 */
#ifndef MTA_LOAD_H
#define MTA_LOAD_H

#include "mta_config.h"
#include "mta_record.h"
#include "util/mh_buf.h"

struct mta_load_stats {
	unsigned long sessions, ok, failed;
	double elapsed_s;
	double p50_ms, p90_ms, p99_ms, max_ms;
	unsigned long results[MTA_RESULT_COUNT];
	double offered_rate; /* --rate, 0 in closed loop */
	unsigned long late_starts; /* open loop: starts that waited for a free slot */
	unsigned long peak_open; /* most sessions open at once */
};

/*
 * Run cfg->sessions sessions (1 unless load mode) with cfg->concurrency
 * in flight. When keep is not NULL the last finished session's record is
 * moved there (the caller frees it with mta_record_free).
 */
void mta_load_run(const struct mta_config *cfg, struct mta_load_stats *st, struct mta_record *keep);

/*
 * The load-mode line (or JSON object with json set), newline-terminated.
 * The text line gains offered_rate and late_starts only in open loop.
 */
void mta_load_print(const struct mta_load_stats *st, int json, struct mh_buf *out);

#endif
