/*
 * mta_load - the session scheduler and its statistics.
 *
 * Contract: mta_load.h. One libev loop; fill() keeps `concurrency`
 * sessions in flight and starts the next one whenever one finishes, so a
 * slow milter throttles the run instead of piling up connections. With
 * --rate one ev_timer (the pacer) is armed for the next due start; when
 * it fires every start due by then is made (a late loop catches up in
 * one batch), and a due start that finds the cap reached is only
 * counted (`waiting`): on_done() starts it, as late. Every step is O(1)
 * per session, whatever the number open. A
 * session never reports its end from inside mta_session_start(), so
 * fill() is never re-entered. Percentiles are nearest-rank. Why sessions
 * failed goes to stderr (one line per reason with its count), keeping
 * stdout to the documented line.
 */
#include "mta_load.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "mta_session.h"
#include "util/mh_json.h"

#define LOAD_REASONS_MAX 16

struct load {
	struct ev_loop *loop;
	const struct mta_config *cfg;
	unsigned long total, started, finished, inflight;
	unsigned long due; /* open loop: starts due so far (started + waiting) */
	unsigned long waiting; /* open loop: due starts waiting for a free slot */
	double t0; /* open loop: when start 1 was due */
	ev_timer pacer; /* open loop: the next due start */
	double *start_s; /* per session id - 1 */
	double *latency_s; /* in finishing order */
	struct mta_load_stats *st;
	struct mta_record *keep;
	struct {
		char *reason;
		unsigned long count;
	} reasons[LOAD_REASONS_MAX];
	size_t nreasons;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Failure reasons with counts; the last slot collects what does not fit. */
static void count_reason(struct load *l, const char *reason)
{
	static const char other[] = "(other reasons)";

	for (;;) {
		for (size_t i = 0; i < l->nreasons; i++) {
			if (strcmp(l->reasons[i].reason, reason) == 0) {
				l->reasons[i].count++;
				return;
			}
		}
		if (l->nreasons < LOAD_REASONS_MAX - 1 || strcmp(reason, other) == 0) {
			l->reasons[l->nreasons].reason = mh_xstrdup(reason);
			l->reasons[l->nreasons++].count = 1;
			return;
		}
		reason = other;
	}
}

static void fill(struct load *l);
static void on_done(struct mta_session *s, void *arg);

static void start_one(struct load *l)
{
	unsigned long id = ++l->started;

	l->start_s[id - 1] = now_s();
	if (++l->inflight > l->st->peak_open)
		l->st->peak_open = l->inflight;
	mta_session_start(l->loop, l->cfg, id, on_done, l);
}

static void on_done(struct mta_session *s, void *arg)
{
	struct load *l = arg;
	struct mta_record *rec = mta_session_record(s);
	unsigned long id = mta_session_id(s);

	l->latency_s[l->finished++] = now_s() - l->start_s[id - 1];
	l->st->results[rec->result]++;
	if (rec->result == MTA_RESULT_ERROR) {
		l->st->failed++;
		count_reason(l, rec->error ? rec->error : "error");
	} else {
		l->st->ok++;
	}
	if (l->keep != NULL) {
		mta_record_free(l->keep);
		*l->keep = *rec; /* moved: the session frees an empty record */
		memset(rec, 0, sizeof(*rec));
	}
	mta_session_free(s);
	l->inflight--;
	if (l->waiting > 0) {
		l->waiting--;
		l->st->late_starts++;
		start_one(l);
	}
	fill(l);
	if (l->finished == l->total)
		ev_break(l->loop, EVBREAK_ALL);
}

/* Closed loop: top up to `concurrency` sessions open. */
static void fill(struct load *l)
{
	if (l->cfg->rate > 0)
		return;
	while (l->inflight < l->cfg->concurrency && l->started < l->total)
		start_one(l);
}

/* Open loop: make the starts due by now, then wait for the next one. */
static void on_pacer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct load *l = w->data;
	double rate = l->cfg->rate, now = now_s();
	unsigned long due = (unsigned long)floor((now - l->t0) * rate) + 1;

	if (due > l->total)
		due = l->total;
	for (; l->due < due; l->due++) {
		if (l->inflight < l->cfg->concurrency)
			start_one(l);
		else
			l->waiting++;
	}
	if (l->due < l->total) {
		double next = l->t0 + (double)l->due / rate - now;

		ev_timer_set(w, next > 0 ? next : 0., 0.);
		ev_timer_start(loop, w);
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double percentile_ms(const double *sorted, unsigned long n, double p)
{
	unsigned long rank = (unsigned long)ceil(p * (double)n);

	if (n == 0)
		return 0;
	if (rank < 1)
		rank = 1;
	return sorted[(rank > n ? n : rank) - 1] * 1e3;
}

/*
 * Each open session holds one socket per milter: allow as many
 * descriptors as permitted, and say so when that is not enough.
 */
static void raise_fd_limit(const struct mta_config *cfg)
{
	struct rlimit rl;
	/* One descriptor per milter per session, plus stdio and libev's own. */
	unsigned long long need = (unsigned long long)cfg->concurrency * cfg->nsocks + 32;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			(void)getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
		fprintf(stderr,
		        "milterhub-mta: warning: the open-file limit is %llu, below the %llu that "
		        "--concurrency %lu with %zu milter(s) needs; sessions may fail\n",
		        (unsigned long long)rl.rlim_cur, need, cfg->concurrency, cfg->nsocks);
}

void mta_load_run(const struct mta_config *cfg, struct mta_load_stats *st, struct mta_record *keep)
{
	struct load l;
	double t0;

	memset(st, 0, sizeof(*st));
	memset(&l, 0, sizeof(l));
	l.loop = ev_default_loop(0);
	l.cfg = cfg;
	l.total = cfg->load ? cfg->sessions : 1;
	l.start_s = mh_xcalloc(l.total, sizeof(*l.start_s));
	l.latency_s = mh_xcalloc(l.total, sizeof(*l.latency_s));
	l.st = st;
	l.keep = keep;
	if (keep != NULL)
		memset(keep, 0, sizeof(*keep));
	if (cfg->load)
		raise_fd_limit(cfg);
	st->sessions = l.total;
	st->offered_rate = cfg->load ? cfg->rate : 0;
	t0 = now_s();
	if (cfg->load && cfg->rate > 0) {
		l.t0 = t0;
		ev_timer_init(&l.pacer, on_pacer, 0., 0.);
		l.pacer.data = &l;
		ev_timer_start(l.loop, &l.pacer);
	} else {
		fill(&l);
	}
	ev_run(l.loop, 0);
	ev_timer_stop(l.loop, &l.pacer);
	st->elapsed_s = now_s() - t0;
	qsort(l.latency_s, l.finished, sizeof(*l.latency_s), cmp_double);
	st->p50_ms = percentile_ms(l.latency_s, l.finished, 0.50);
	st->p90_ms = percentile_ms(l.latency_s, l.finished, 0.90);
	st->p99_ms = percentile_ms(l.latency_s, l.finished, 0.99);
	st->max_ms = l.finished ? l.latency_s[l.finished - 1] * 1e3 : 0;
	if (cfg->load)
		for (size_t i = 0; i < l.nreasons; i++)
			fprintf(stderr, "milterhub-mta: %lu session(s) failed: %s\n",
			        l.reasons[i].count, l.reasons[i].reason);
	for (size_t i = 0; i < l.nreasons; i++)
		free(l.reasons[i].reason);
	free(l.start_s);
	free(l.latency_s);
}

static double round3(double v)
{
	return round(v * 1000.0) / 1000.0;
}

void mta_load_print(const struct mta_load_stats *st, int json, struct mh_buf *out)
{
	double rate = st->elapsed_s > 0 ? (double)st->sessions / st->elapsed_s : 0;
	struct mh_json j;

	if (!json) {
		mh_buf_printf(out,
		              "sessions=%lu ok=%lu failed=%lu elapsed=%.3fs rate=%.1f/s "
		              "latency_ms p50=%.2f p90=%.2f p99=%.2f max=%.2f",
		              st->sessions, st->ok, st->failed, st->elapsed_s, rate, st->p50_ms,
		              st->p90_ms, st->p99_ms, st->max_ms);
		if (st->offered_rate > 0)
			mh_buf_printf(out, " offered_rate=%.1f/s late_starts=%lu", st->offered_rate,
			              st->late_starts);
		mh_buf_append_byte(out, '\n');
		return;
	}
	mh_json_init(&j, out);
	mh_json_obj_begin(&j);
	mh_json_key(&j, "sessions");
	mh_json_int(&j, (int64_t)st->sessions);
	mh_json_key(&j, "ok");
	mh_json_int(&j, (int64_t)st->ok);
	mh_json_key(&j, "failed");
	mh_json_int(&j, (int64_t)st->failed);
	mh_json_key(&j, "elapsed_s");
	mh_json_double(&j, round3(st->elapsed_s));
	mh_json_key(&j, "rate");
	mh_json_double(&j, round(rate * 10.0) / 10.0);
	mh_json_key(&j, "latency_ms");
	mh_json_obj_begin(&j);
	mh_json_key(&j, "p50");
	mh_json_double(&j, round3(st->p50_ms));
	mh_json_key(&j, "p90");
	mh_json_double(&j, round3(st->p90_ms));
	mh_json_key(&j, "p99");
	mh_json_double(&j, round3(st->p99_ms));
	mh_json_key(&j, "max");
	mh_json_double(&j, round3(st->max_ms));
	mh_json_obj_end(&j);
	mh_json_key(&j, "offered_rate");
	if (st->offered_rate > 0)
		mh_json_double(&j, st->offered_rate);
	else
		mh_json_null(&j);
	mh_json_key(&j, "late_starts");
	mh_json_int(&j, (int64_t)st->late_starts);
	mh_json_key(&j, "peak_open");
	mh_json_int(&j, (int64_t)st->peak_open);
	mh_json_key(&j, "results");
	mh_json_obj_begin(&j);
	for (int r = 0; r < MTA_RESULT_COUNT; r++) {
		if (st->results[r] == 0)
			continue;
		mh_json_key(&j, mta_result_name((enum mta_result)r));
		mh_json_int(&j, (int64_t)st->results[r]);
	}
	mh_json_obj_end(&j);
	mh_json_obj_end(&j);
	mh_buf_append_byte(out, '\n');
}
