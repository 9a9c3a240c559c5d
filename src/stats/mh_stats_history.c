/*
 * NAME
 *	mh_stats_history 3
 * SUMMARY
 *	hour and day ring buffers of counter deltas (see mh_stats_history.h)
 * DESCRIPTION
 *	Every sample computes, per counter, the difference from the
 *	previous sample (clamped at 0) and writes one hour point for the
 *	daemon and one for every milter ring in use, at the same ring
 *	index, so a milter's point i and the global point i describe the
 *	same seconds. The same deltas are summed into the day accumulator;
 *	after MH_STATS_DAY_SAMPLES samples it becomes a day point.
 *	Latency p95s are computed when a point is made, from that point's
 *	histogram deltas (the day accumulator keeps its summed buckets
 *	until then), so rings hold no histograms.
 */
#include "stats/mh_stats_history.h"

#include <stdlib.h>
#include <string.h>

#include "util/mh_buf.h"

/* A milter's counters at one sample, summed over stages. */
struct milter_counts {
	uint64_t sessions, accept, reject, tempfail, discard, fallbacks, timeouts;
	uint64_t lat_count, lat_sum_us;
	uint64_t bucket[MH_STATS_BUCKETS];
};

struct milter_ring {
	int have_prev; /* prev/prev_slot hold a baseline */
	int prev_slot;
	struct milter_counts prev;
	struct mh_stats_mpoint hour[MH_STATS_HOUR_POINTS];
	struct mh_stats_mpoint day[MH_STATS_DAY_POINTS];
	struct mh_stats_mpoint acc; /* the day point being filled */
	uint64_t acc_bucket[MH_STATS_BUCKETS];
};

struct mh_stats_history {
	uint64_t samples;
	double prev_t; /* time of the previous sample */
	uint64_t prev_sessions, prev_messages, prev_results[MH_RES_COUNT];
	size_t hour_head, hour_len; /* next index to write; points held */
	size_t day_head, day_len;
	unsigned acc_n; /* samples in the day accumulators */
	struct mh_stats_gpoint hour[MH_STATS_HOUR_POINTS];
	struct mh_stats_gpoint day[MH_STATS_DAY_POINTS];
	struct mh_stats_gpoint acc;
	/* Who holds each ring, apart from the rings: a sample reads these for
	 * every ring, and a ring never used is then never touched (not resident). */
	char *name[MH_STATS_HISTORY_MILTERS]; /* owned; NULL: ring free */
	uint64_t seen[MH_STATS_HISTORY_MILTERS]; /* number of the last sample that had it */
	struct milter_ring m[MH_STATS_HISTORY_MILTERS];
};

struct mh_stats_history *mh_stats_history_new(void)
{
	return mh_xcalloc(1, sizeof(struct mh_stats_history));
}

void mh_stats_history_free(struct mh_stats_history *h)
{
	if (h == NULL)
		return;
	for (size_t i = 0; i < MH_STATS_HISTORY_MILTERS; i++)
		free(h->name[i]);
	free(h);
}

uint64_t mh_stats_history_samples(const struct mh_stats_history *h)
{
	return h->samples;
}

uint32_t mh_stats_history_p95_us(const uint64_t bucket[MH_STATS_BUCKETS])
{
	uint64_t total = 0;
	for (size_t i = 0; i < MH_STATS_BUCKETS; i++)
		total += bucket[i];
	if (total == 0)
		return 0;
	double rank = 0.95 * (double)total, below = 0;
	size_t i = 0;
	while (i < MH_STATS_BUCKETS - 1 && below + (double)bucket[i] < rank)
		below += (double)bucket[i++];
	if (i == MH_STATS_BUCKETS - 1) /* the +Inf bucket: nothing to interpolate towards */
		return (uint32_t)(mh_stats_bucket_le[MH_STATS_BUCKETS - 2] * 1e6 + 0.5);
	double lo = i == 0 ? 0 : mh_stats_bucket_le[i - 1], hi = mh_stats_bucket_le[i];
	double sec = lo + (hi - lo) * (rank - below) / (double)bucket[i];
	return (uint32_t)(sec * 1e6 + 0.5);
}

/* cur - prev, or 0 when the counter went backwards (a reset), saturated to 32 bits. */
static uint32_t delta32(uint64_t cur, uint64_t prev)
{
	if (cur <= prev)
		return 0;
	uint64_t d = cur - prev;
	return d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
}

static uint64_t delta64(uint64_t cur, uint64_t prev)
{
	return cur > prev ? cur - prev : 0;
}

static uint32_t add32(uint32_t a, uint32_t b)
{
	return a > UINT32_MAX - b ? UINT32_MAX : a + b;
}

static void milter_counts(const struct mh_stats_child *c, struct milter_counts *k)
{
	memset(k, 0, sizeof(*k));
	k->sessions = c->sessions;
	for (size_t st = 0; st < MH_HS_COUNT; st++) {
		k->accept += c->answers[st][MH_ST_ACCEPT];
		k->reject += c->answers[st][MH_ST_REJECT];
		k->tempfail += c->answers[st][MH_ST_TEMPFAIL];
		k->discard += c->answers[st][MH_ST_DISCARD];
		for (size_t f = 0; f < MH_FAIL_COUNT; f++)
			k->fallbacks += c->fails[st][f];
		k->timeouts += c->fails[st][MH_FAIL_TIMEOUT];
		k->lat_count += c->lat_count[st];
		k->lat_sum_us += c->lat_sum_us[st];
		for (size_t b = 0; b < MH_STATS_BUCKETS; b++)
			k->bucket[b] += c->lat_bucket[st][b];
	}
}

static int state_is_up(const char *state)
{
	return state != NULL && (strcmp(state, "up") == 0 || strcmp(state, "unsupervised") == 0);
}

/* The ring holding name, or -1. */
int mh_stats_history_milter(const struct mh_stats_history *h, const char *name)
{
	for (int i = 0; i < MH_STATS_HISTORY_MILTERS; i++)
		if (h->name[i] != NULL && strcmp(h->name[i], name) == 0)
			return i;
	return -1;
}

/* A ring for a name not held yet: a free one, else the one absent longest. */
static int take_ring(struct mh_stats_history *h, const char *name)
{
	int best = -1;
	for (int i = 0; i < MH_STATS_HISTORY_MILTERS; i++) {
		if (h->name[i] == NULL) {
			best = i;
			break;
		}
		if (h->seen[i] < h->samples && (best < 0 || h->seen[i] < h->seen[best]))
			best = i;
	}
	if (best < 0) /* more names in one snapshot than rings: an invariant broken */
		return -1;
	free(h->name[best]);
	memset(&h->m[best], 0, sizeof(h->m[best])); /* old points read as "no data" */
	h->name[best] = mh_xstrdup(name);
	return best;
}

static void acc_add(struct mh_stats_mpoint *a, const struct mh_stats_mpoint *p)
{
	a->n = add32(a->n, p->n);
	a->up = add32(a->up, p->up);
	a->sessions = add32(a->sessions, p->sessions);
	a->accept = add32(a->accept, p->accept);
	a->reject = add32(a->reject, p->reject);
	a->tempfail = add32(a->tempfail, p->tempfail);
	a->discard = add32(a->discard, p->discard);
	a->fallbacks = add32(a->fallbacks, p->fallbacks);
	a->timeouts = add32(a->timeouts, p->timeouts);
	a->lat_count = add32(a->lat_count, p->lat_count);
	a->lat_sum_us += p->lat_sum_us;
}

/*
 * One milter's point for this sample (n = 0 if it is absent or its slot
 * is out of range); updates its baseline. The histogram delta goes to
 * bucket_delta for the caller to fold into the day accumulator.
 */
static void milter_point(struct milter_ring *r, const struct mh_stats_snapshot *s,
                         const struct mh_stats_milter *m, struct mh_stats_mpoint *p,
                         uint64_t bucket_delta[MH_STATS_BUCKETS])
{
	memset(p, 0, sizeof(*p));
	memset(bucket_delta, 0, sizeof(uint64_t) * MH_STATS_BUCKETS);
	if (m == NULL || m->slot < 0 || m->slot >= MH_STATS_NAMES)
		return;
	struct milter_counts k;
	milter_counts(&s->totals.child[m->slot], &k);
	p->n = 1;
	p->up = state_is_up(m->state);
	if (r->have_prev && r->prev_slot == m->slot) {
		const struct milter_counts *o = &r->prev;
		p->sessions = delta32(k.sessions, o->sessions);
		p->accept = delta32(k.accept, o->accept);
		p->reject = delta32(k.reject, o->reject);
		p->tempfail = delta32(k.tempfail, o->tempfail);
		p->discard = delta32(k.discard, o->discard);
		p->fallbacks = delta32(k.fallbacks, o->fallbacks);
		p->timeouts = delta32(k.timeouts, o->timeouts);
		/* a reset of the count resets the sum and histogram too: all or nothing */
		if (k.lat_count >= o->lat_count) {
			p->lat_count = delta32(k.lat_count, o->lat_count);
			p->lat_sum_us = delta64(k.lat_sum_us, o->lat_sum_us);
			for (size_t b = 0; b < MH_STATS_BUCKETS; b++)
				bucket_delta[b] = delta64(k.bucket[b], o->bucket[b]);
			p->p95_us = mh_stats_history_p95_us(bucket_delta);
		}
	}
	r->prev = k;
	r->prev_slot = m->slot;
	r->have_prev = 1;
}

static void global_acc_add(struct mh_stats_gpoint *a, const struct mh_stats_gpoint *p)
{
	a->t = p->t;
	a->dt += p->dt;
	a->n++;
	a->sessions = add32(a->sessions, p->sessions);
	a->messages = add32(a->messages, p->messages);
	for (size_t i = 0; i < MH_RES_COUNT; i++)
		a->results[i] = add32(a->results[i], p->results[i]);
	if (p->sessions_open > a->sessions_open)
		a->sessions_open = p->sessions_open;
	if (p->workers > a->workers)
		a->workers = p->workers;
}

static uint32_t gauge32(uint64_t v)
{
	return v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

void mh_stats_history_sample(struct mh_stats_history *h, const struct mh_stats_snapshot *s)
{
	const struct mh_stats_global *g = &s->totals.g;
	int first = h->samples == 0;
	h->samples++;

	/* Which ring each configured milter writes to; mark them seen first, so
	 * take_ring never hands out a ring a name of this snapshot holds. */
	const struct mh_stats_milter *of_ring[MH_STATS_HISTORY_MILTERS] = {0};
	size_t nm = s->nmilters < MH_HUB_CHILDREN_MAX ? s->nmilters : MH_HUB_CHILDREN_MAX;
	int ring_of[MH_HUB_CHILDREN_MAX];
	for (size_t i = 0; i < nm; i++) {
		const char *name = s->milter[i].name != NULL ? s->milter[i].name : "";
		ring_of[i] = mh_stats_history_milter(h, name);
		if (ring_of[i] >= 0 && of_ring[ring_of[i]] == NULL) {
			h->seen[ring_of[i]] = h->samples;
			of_ring[ring_of[i]] = &s->milter[i];
		}
	}
	for (size_t i = 0; i < nm; i++) {
		if (ring_of[i] >= 0)
			continue;
		const char *name = s->milter[i].name != NULL ? s->milter[i].name : "";
		if (mh_stats_history_milter(h, name) >= 0)
			continue; /* a duplicate name: the first one counts */
		ring_of[i] = take_ring(h, name);
		if (ring_of[i] >= 0) {
			h->seen[ring_of[i]] = h->samples;
			of_ring[ring_of[i]] = &s->milter[i];
		}
	}

	struct mh_stats_gpoint gp = {0};
	if (first) {
		gp.t = s->now;
	} else {
		gp.dt = s->now > h->prev_t ? s->now - h->prev_t : MH_STATS_SAMPLE_INTERVAL;
		gp.t = h->prev_t + gp.dt;
	}
	gp.n = 1;
	gp.sessions = delta32(g->sessions, h->prev_sessions);
	gp.messages = delta32(g->messages, h->prev_messages);
	for (size_t i = 0; i < MH_RES_COUNT; i++)
		gp.results[i] = delta32(g->results[i], h->prev_results[i]);
	gp.sessions_open = gauge32(g->sessions_open);
	gp.workers = s->workers;
	h->prev_t = gp.t;
	h->prev_sessions = g->sessions;
	h->prev_messages = g->messages;
	memcpy(h->prev_results, g->results, sizeof(h->prev_results));

	size_t at = h->hour_head;
	if (!first) {
		h->hour[at] = gp;
		h->hour_head = (at + 1) % MH_STATS_HOUR_POINTS;
		if (h->hour_len < MH_STATS_HOUR_POINTS)
			h->hour_len++;
		global_acc_add(&h->acc, &gp);
	}
	for (size_t i = 0; i < MH_STATS_HISTORY_MILTERS; i++) {
		if (h->name[i] == NULL)
			continue;
		struct milter_ring *r = &h->m[i];
		struct mh_stats_mpoint p;
		uint64_t bd[MH_STATS_BUCKETS];
		milter_point(r, s, of_ring[i], &p, bd);
		if (first)
			continue; /* baseline only */
		r->hour[at] = p;
		acc_add(&r->acc, &p);
		for (size_t b = 0; b < MH_STATS_BUCKETS; b++)
			r->acc_bucket[b] += bd[b];
	}
	if (first || ++h->acc_n < MH_STATS_DAY_SAMPLES)
		return;

	/* The day point is complete. Free rings are skipped: take_ring clears a ring. */
	size_t d = h->day_head;
	h->day[d] = h->acc;
	memset(&h->acc, 0, sizeof(h->acc));
	for (size_t i = 0; i < MH_STATS_HISTORY_MILTERS; i++) {
		if (h->name[i] == NULL)
			continue;
		struct milter_ring *r = &h->m[i];
		r->acc.p95_us = mh_stats_history_p95_us(r->acc_bucket);
		r->day[d] = r->acc;
		memset(&r->acc, 0, sizeof(r->acc));
		memset(r->acc_bucket, 0, sizeof(r->acc_bucket));
	}
	h->day_head = (d + 1) % MH_STATS_DAY_POINTS;
	if (h->day_len < MH_STATS_DAY_POINTS)
		h->day_len++;
	h->acc_n = 0;
}

size_t mh_stats_history_len(const struct mh_stats_history *h, enum mh_stats_res res)
{
	if (res == MH_STATS_HOUR)
		return h->hour_len;
	return h->day_len + (h->acc_n > 0);
}

/*
 * Ring index of point i (0 = oldest) at res, or -1 when out of range;
 * MH_STATS_DAY_POINTS stands for the day accumulator.
 */
static long ring_index(const struct mh_stats_history *h, enum mh_stats_res res, size_t i)
{
	if (i >= mh_stats_history_len(h, res))
		return -1;
	if (res == MH_STATS_HOUR)
		return (long)((h->hour_head + MH_STATS_HOUR_POINTS - h->hour_len + i) %
		              MH_STATS_HOUR_POINTS);
	if (i == h->day_len)
		return MH_STATS_DAY_POINTS;
	return (long)((h->day_head + MH_STATS_DAY_POINTS - h->day_len + i) % MH_STATS_DAY_POINTS);
}

int mh_stats_history_global(const struct mh_stats_history *h, enum mh_stats_res res, size_t i,
                            struct mh_stats_gpoint *out)
{
	long k = ring_index(h, res, i);
	if (k < 0)
		return -1;
	if (res == MH_STATS_HOUR)
		*out = h->hour[k];
	else
		*out = k == MH_STATS_DAY_POINTS ? h->acc : h->day[k];
	return 0;
}

int mh_stats_history_milter_point(const struct mh_stats_history *h, int m, enum mh_stats_res res,
                                  size_t i, struct mh_stats_mpoint *out)
{
	long k = ring_index(h, res, i);
	if (k < 0 || m < 0 || m >= MH_STATS_HISTORY_MILTERS || h->name[m] == NULL)
		return -1;
	const struct milter_ring *r = &h->m[m];
	if (res == MH_STATS_HOUR) {
		*out = r->hour[k];
	} else if (k == MH_STATS_DAY_POINTS) {
		*out = r->acc;
		out->p95_us = mh_stats_history_p95_us(r->acc_bucket);
	} else {
		*out = r->day[k];
	}
	return 0;
}
