/*
 * mh_stats - the counters: written by workers with plain stores into
 * shared memory, summed by the master (issue 6, design §5).
 *
 * Layout: the master maps one region per worker (mh_stats_region_new)
 * just before forking it, sized for that worker's generation's children
 * (child index = index in that generation's config). The worker is the
 * only writer of its region; the master only reads it, and when the
 * worker has exited it folds the region into its own retired totals
 * (mh_stats_totals_add) and unmaps it. So counters survive a reload and
 * a worker restart, and the hot path pays plain increments: no lock, no
 * atomic read-modify-write (a relaxed store publishes each value; a
 * reader sees every counter whole, maybe one a moment before another).
 *
 * Children are aggregated by name across generations: the master keeps
 * per-name totals indexed by the board's name slot (mh_board), so a
 * milter that keeps its name through reloads keeps its counts.
 */
#ifndef MH_STATS_H
#define MH_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "hub/mh_hub.h"
#include "hub/mh_status.h"

/* Latency histogram upper bounds in seconds, the last bucket is +Inf. */
#define MH_STATS_BUCKETS 15
extern const double mh_stats_bucket_le[MH_STATS_BUCKETS - 1];

/*
 * What children's added headers say (the reference graphs these): one
 * counter per (kind, result). X-Spam-Flag: YES/NO and X-Spam-Status:
 * Yes/No -> spam; X-Virus-Status: Clean / Infected... -> virus;
 * Authentication-Results: each "spf=R", "dkim=R", "dmarc=R" in it.
 */
enum mh_hdr_kind { MH_HK_SPAM, MH_HK_VIRUS, MH_HK_SPF, MH_HK_DKIM, MH_HK_DMARC, MH_HK_COUNT };
#define MH_HDR_RESULTS 8 /* per kind, see mh_stats_hdr_result_name */
const char *mh_stats_hdr_kind_name(enum mh_hdr_kind k); /* "spam" "virus" "spf" "dkim" "dmarc" */
/* Result names of kind k, index 0..MH_HDR_RESULTS-1; NULL where unused. spam: "yes" "no";
 * virus: "clean" "infected" "other"; spf/dkim/dmarc: "pass" "fail" "softfail" "neutral"
 * "none" "temperror" "permerror" "policy". */
const char *mh_stats_hdr_result_name(enum mh_hdr_kind k, unsigned r);
/*
 * Classify one added header; calls found(kind, result, arg) for each
 * result it carries (Authentication-Results may carry several). Header
 * names compare case-insensitively; unknown headers and values: nothing.
 */
void mh_stats_classify_header(const char *name, const char *value,
                              void (*found)(enum mh_hdr_kind k, unsigned r, void *arg), void *arg);

/* Per child (per worker region, and in the master's totals). */
struct mh_stats_child {
	uint64_t sessions; /* sessions it was started for */
	uint64_t answers[MH_HS_COUNT][MH_ST_COUNT]; /* its own answers */
	uint64_t fails[MH_HS_COUNT][MH_FAIL_COUNT]; /* its fallback stood in */
	uint64_t lat_bucket[MH_HS_COUNT][MH_STATS_BUCKETS]; /* not cumulative */
	uint64_t lat_sum_us[MH_HS_COUNT];
	uint64_t lat_count[MH_HS_COUNT];
	uint64_t headers[MH_HK_COUNT][MH_HDR_RESULTS];
};

/* Per worker; the master's totals use the same shape. */
struct mh_stats_global {
	uint64_t sessions; /* total */
	uint64_t sessions_open; /* now (live regions only) */
	uint64_t messages; /* transactions that ended */
	uint64_t recipients; /* RCPT commands */
	uint64_t results[MH_RES_COUNT]; /* per message */
	uint64_t replies[MH_HS_COUNT][MH_ST_COUNT]; /* decisions sent to the MTA */
	uint64_t mta_malformed;
};

/* One worker's region (shared memory). */
struct mh_stats_region {
	struct mh_stats_global g;
	uint32_t nchildren;
	struct mh_stats_child child[]; /* nchildren */
};

/* Map a zeroed region for nchildren (MAP_SHARED | MAP_ANONYMOUS); NULL on failure. */
struct mh_stats_region *mh_stats_region_new(size_t nchildren);
void mh_stats_region_free(struct mh_stats_region *r);

/* Worker side: the hot path. Single writer; relaxed stores. */
#define MH_STATS_INC(field) __atomic_store_n(&(field), (field) + 1, __ATOMIC_RELAXED)
#define MH_STATS_ADD(field, d) __atomic_store_n(&(field), (field) + (d), __ATOMIC_RELAXED)
void mh_stats_latency(struct mh_stats_child *c, enum mh_hub_stage st, double seconds);

/*
 * The master's view: per-name totals (indexed by board name slot) of
 * retired regions; mh_stats_totals_add folds a region in, mapping its
 * child index i to slot_of[i]. live = 1 adds sessions_open too (a live
 * region, for a snapshot), 0 leaves it out (a retired one).
 */
#define MH_STATS_NAMES 128 /* = MH_BOARD_CHILDREN */
struct mh_stats_totals {
	struct mh_stats_global g;
	struct mh_stats_child child[MH_STATS_NAMES];
};
void mh_stats_totals_add(struct mh_stats_totals *t, const struct mh_stats_region *r,
                         const int16_t *slot_of, int live);

/*
 * A snapshot for renderers (/metrics, /stats, the status page,
 * milterhubctl stats): the totals plus who the children are now.
 */
struct mh_stats_milter {
	const char *name; /* the current configuration's */
	int slot; /* index into totals.child */
	const char *state; /* "up" "down" "starting" "unsupervised" */
	int enabled; /* as workers see it now */
	uint64_t restarts; /* supervised process restarts */
};
struct mh_stats_snapshot {
	double now; /* epoch seconds */
	double uptime;
	uint64_t sessions_max; /* most sessions open at once since start */
	uint64_t worker_restarts;
	unsigned workers; /* running */
	uint32_t generation;
	struct mh_stats_totals totals;
	size_t nmilters;
	struct mh_stats_milter milter[MH_HUB_CHILDREN_MAX]; /* chain order */
};

#endif
