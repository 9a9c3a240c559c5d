/*
 * test_stats_page - the status page's history and rendering
 * (src/stats/mh_stats_history.c, src/stats/mh_stats_page.c): synthetic
 * snapshots with known deltas fed sample by sample; the first sample a
 * baseline; hour points that wrap after 360; day points that sum 30
 * samples (the one being filled readable too); a counter going backwards
 * giving 0, not a huge delta; milters kept by name, absent ones showing
 * no data, rings reused when all are taken; the p95 estimate; and the
 * page: a card per milter, every graph, totals equal to the snapshot's,
 * names escaped, no URL of any host.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stats/mh_stats_history.h"
#include "stats/mh_stats_page.h"

#define T0 1800000000.0 /* epoch seconds of the first sample */

/* A snapshot on the heap (it is ~360 KiB) with two milters in slots 3 and 7. */
static struct mh_stats_snapshot *snap_new(void)
{
	struct mh_stats_snapshot *s = calloc(1, sizeof(*s));
	assert_non_null(s);
	s->now = T0;
	s->workers = 2;
	s->generation = 1;
	s->nmilters = 2;
	s->milter[0] = (struct mh_stats_milter){"accepter", 3, "up", 1, 0};
	s->milter[1] = (struct mh_stats_milter){"rejecter", 7, "unsupervised", 1, 0};
	return s;
}

/*
 * The step that leads to sample k (k >= 1): sessions += k % 7 + 1,
 * open = k % 5, accepter answers accept once per session, rejecter
 * rejects at rcpt k % 3 times and its replies take 3 ms.
 */
static uint32_t step_sessions(unsigned k)
{
	return k % 7 + 1;
}

static void step(struct mh_stats_snapshot *s, unsigned k)
{
	uint32_t n = step_sessions(k);
	s->now = T0 + 10.0 * k;
	s->totals.g.sessions += n;
	s->totals.g.sessions_open = k % 5;
	s->totals.g.messages += n;
	s->totals.g.results[MH_RES_ACCEPT] += n;
	s->totals.child[3].sessions += n;
	s->totals.child[3].answers[MH_HS_EOM][MH_ST_ACCEPT] += n;
	s->totals.child[7].sessions += n;
	s->totals.child[7].answers[MH_HS_RCPT][MH_ST_REJECT] += k % 3;
	for (unsigned i = 0; i < n; i++)
		mh_stats_latency(&s->totals.child[7], MH_HS_RCPT, 0.003);
}

static struct mh_stats_gpoint gpoint(const struct mh_stats_history *h, enum mh_stats_res r,
                                     size_t i)
{
	struct mh_stats_gpoint p;
	assert_int_equal(mh_stats_history_global(h, r, i, &p), 0);
	return p;
}

static struct mh_stats_mpoint mpoint(const struct mh_stats_history *h, const char *name,
                                     enum mh_stats_res r, size_t i)
{
	struct mh_stats_mpoint p;
	int m = mh_stats_history_milter(h, name);
	assert_true(m >= 0);
	assert_int_equal(mh_stats_history_milter_point(h, m, r, i, &p), 0);
	return p;
}

static void the_first_sample_is_only_a_baseline(void **state)
{
	struct mh_stats_snapshot *s = snap_new();
	s->totals.g.sessions = 1000; /* counted before the first sample: not a spike */
	struct mh_stats_history *h = mh_stats_history_new();
	mh_stats_history_sample(h, s);
	assert_int_equal(mh_stats_history_samples(h), 1);
	assert_int_equal(mh_stats_history_len(h, MH_STATS_HOUR), 0);
	assert_int_equal(mh_stats_history_len(h, MH_STATS_DAY), 0);
	struct mh_stats_gpoint p;
	assert_int_equal(mh_stats_history_global(h, MH_STATS_HOUR, 0, &p), -1);
	step(s, 1);
	mh_stats_history_sample(h, s);
	assert_int_equal(mh_stats_history_len(h, MH_STATS_HOUR), 1);
	p = gpoint(h, MH_STATS_HOUR, 0);
	assert_int_equal(p.sessions, step_sessions(1));
	assert_true(p.dt == 10.0 && p.t == T0 + 10);
	mh_stats_history_free(h);
	free(s);
}

static void hour_points_hold_deltas_and_the_ring_wraps(void **state)
{
	struct mh_stats_snapshot *s = snap_new();
	struct mh_stats_history *h = mh_stats_history_new();
	mh_stats_history_sample(h, s);
	const unsigned steps = 400;
	for (unsigned k = 1; k <= steps; k++) {
		step(s, k);
		mh_stats_history_sample(h, s);
	}
	assert_int_equal(mh_stats_history_len(h, MH_STATS_HOUR), MH_STATS_HOUR_POINTS);
	/* oldest kept: step 41 (400 - 360 + 1), newest: step 400 */
	for (size_t i = 0; i < MH_STATS_HOUR_POINTS; i++) {
		unsigned k = steps - MH_STATS_HOUR_POINTS + 1 + (unsigned)i;
		struct mh_stats_gpoint p = gpoint(h, MH_STATS_HOUR, i);
		assert_int_equal(p.sessions, step_sessions(k));
		assert_int_equal(p.messages, step_sessions(k));
		assert_int_equal(p.results[MH_RES_ACCEPT], step_sessions(k));
		assert_int_equal(p.sessions_open, k % 5);
		assert_int_equal(p.workers, 2);
		assert_true(p.t == T0 + 10.0 * k);
		struct mh_stats_mpoint a = mpoint(h, "accepter", MH_STATS_HOUR, i);
		assert_int_equal(a.n, 1);
		assert_int_equal(a.up, 1);
		assert_int_equal(a.accept, step_sessions(k));
		assert_int_equal(a.reject, 0);
		struct mh_stats_mpoint r = mpoint(h, "rejecter", MH_STATS_HOUR, i);
		assert_int_equal(r.up, 1); /* unsupervised counts as up */
		assert_int_equal(r.reject, k % 3);
		assert_int_equal(r.lat_count, step_sessions(k));
		assert_int_equal(r.lat_sum_us, 3000 * step_sessions(k));
		/* all in the (2.5 ms, 5 ms] bucket: p95 interpolated inside it */
		assert_true(r.p95_us > 2500 && r.p95_us <= 5000);
	}
	struct mh_stats_gpoint p;
	assert_int_equal(mh_stats_history_global(h, MH_STATS_HOUR, MH_STATS_HOUR_POINTS, &p), -1);
	mh_stats_history_free(h);
	free(s);
}

static void day_points_sum_thirty_samples(void **state)
{
	struct mh_stats_snapshot *s = snap_new();
	struct mh_stats_history *h = mh_stats_history_new();
	mh_stats_history_sample(h, s);
	const unsigned steps = 3 * MH_STATS_DAY_SAMPLES + 7;
	for (unsigned k = 1; k <= steps; k++) {
		step(s, k);
		mh_stats_history_sample(h, s);
	}
	assert_int_equal(mh_stats_history_len(h, MH_STATS_DAY), 4); /* 3 whole + 1 partial */
	for (size_t d = 0; d < 4; d++) {
		unsigned first = (unsigned)d * MH_STATS_DAY_SAMPLES + 1;
		unsigned last = d < 3 ? first + MH_STATS_DAY_SAMPLES - 1 : steps;
		uint32_t sessions = 0, rejects = 0, open = 0;
		for (unsigned k = first; k <= last; k++) {
			sessions += step_sessions(k);
			rejects += k % 3;
			open = k % 5 > open ? k % 5 : open;
		}
		struct mh_stats_gpoint p = gpoint(h, MH_STATS_DAY, d);
		assert_int_equal(p.n, last - first + 1);
		assert_int_equal(p.sessions, sessions);
		assert_int_equal(p.sessions_open, open); /* gauges: the largest sample */
		assert_true(p.t == T0 + 10.0 * last);
		assert_true(p.dt == 10.0 * (last - first + 1));
		struct mh_stats_mpoint r = mpoint(h, "rejecter", MH_STATS_DAY, d);
		assert_int_equal(r.n, last - first + 1);
		assert_int_equal(r.up, last - first + 1);
		assert_int_equal(r.reject, rejects);
		assert_int_equal(r.sessions, sessions);
		assert_int_equal(r.lat_count, sessions);
		assert_true(r.p95_us > 2500 && r.p95_us <= 5000); /* from summed buckets */
	}
	/* the ring of day points wraps too */
	for (unsigned k = steps + 1; k <= steps + 300 * MH_STATS_DAY_SAMPLES; k++) {
		step(s, k);
		mh_stats_history_sample(h, s);
	}
	assert_int_equal(mh_stats_history_len(h, MH_STATS_DAY), MH_STATS_DAY_POINTS + 1);
	struct mh_stats_gpoint last = gpoint(h, MH_STATS_DAY, MH_STATS_DAY_POINTS);
	assert_int_equal(last.n, 7);
	assert_true(last.t == s->now);
	mh_stats_history_free(h);
	free(s);
}

static void a_counter_going_backwards_gives_zero(void **state)
{
	struct mh_stats_snapshot *s = snap_new();
	struct mh_stats_history *h = mh_stats_history_new();
	s->totals.g.sessions = 500;
	s->totals.child[3].answers[MH_HS_EOM][MH_ST_ACCEPT] = 500;
	mh_stats_history_sample(h, s);
	s->now += 10;
	s->totals.g.sessions = 20; /* reset */
	s->totals.child[3].answers[MH_HS_EOM][MH_ST_ACCEPT] = 3;
	mh_stats_history_sample(h, s);
	s->now += 10;
	s->totals.g.sessions = 25; /* and counting again from there */
	s->totals.child[3].answers[MH_HS_EOM][MH_ST_ACCEPT] = 4;
	mh_stats_history_sample(h, s);
	assert_int_equal(gpoint(h, MH_STATS_HOUR, 0).sessions, 0);
	assert_int_equal(gpoint(h, MH_STATS_HOUR, 1).sessions, 5);
	assert_int_equal(mpoint(h, "accepter", MH_STATS_HOUR, 0).accept, 0);
	assert_int_equal(mpoint(h, "accepter", MH_STATS_HOUR, 1).accept, 1);
	/* a time that does not advance counts as one interval */
	mh_stats_history_sample(h, s);
	assert_true(gpoint(h, MH_STATS_HOUR, 2).dt == MH_STATS_SAMPLE_INTERVAL);
	mh_stats_history_free(h);
	free(s);
}

static void milters_are_kept_by_name(void **state)
{
	struct mh_stats_snapshot *s = snap_new();
	struct mh_stats_history *h = mh_stats_history_new();
	mh_stats_history_sample(h, s);
	/* reload: rejecter gone, "late" added in slot 9 with counts before its first sample */
	s->now += 10;
	s->milter[1] = (struct mh_stats_milter){"late", 9, "down", 1, 0};
	s->totals.child[9].sessions = 40;
	mh_stats_history_sample(h, s);
	s->now += 10;
	s->totals.child[9].sessions = 45;
	mh_stats_history_sample(h, s);
	assert_int_equal(mpoint(h, "rejecter", MH_STATS_HOUR, 0).n, 0); /* no data */
	struct mh_stats_mpoint p = mpoint(h, "late", MH_STATS_HOUR, 0);
	assert_int_equal(p.n, 1); /* its baseline */
	assert_int_equal(p.sessions, 0);
	assert_int_equal(p.up, 0);
	assert_int_equal(mpoint(h, "late", MH_STATS_HOUR, 1).sessions, 5);
	/* the same name moved to another slot: a baseline again, not 45 -> 0 -> ... */
	s->now += 10;
	s->milter[1].slot = 11;
	s->totals.child[11].sessions = 1000;
	mh_stats_history_sample(h, s);
	assert_int_equal(mpoint(h, "late", MH_STATS_HOUR, 2).sessions, 0);

	/* 64 other names: all rings taken; the ones absent longest are reused */
	s->nmilters = MH_HUB_CHILDREN_MAX;
	char names[MH_HUB_CHILDREN_MAX][16];
	for (size_t i = 0; i < MH_HUB_CHILDREN_MAX; i++) {
		snprintf(names[i], sizeof(names[i]), "m%zu", i);
		s->milter[i] = (struct mh_stats_milter){names[i], (int)i, "up", 1, 0};
	}
	s->now += 10;
	mh_stats_history_sample(h, s);
	for (size_t i = 0; i < MH_HUB_CHILDREN_MAX; i++)
		assert_true(mh_stats_history_milter(h, names[i]) >= 0);
	assert_int_equal(mh_stats_history_milter(h, "accepter"), -1);
	assert_int_equal(mh_stats_history_milter(h, "late"), -1);
	/* a reused ring has no past */
	assert_int_equal(mpoint(h, "m5", MH_STATS_HOUR, 0).n, 0);
	assert_int_equal(mpoint(h, "m5", MH_STATS_HOUR, 3).n, 1);
	mh_stats_history_free(h);
	free(s);
}

static void p95_interpolates_in_the_histogram(void **state)
{
	uint64_t b[MH_STATS_BUCKETS] = {0};
	assert_int_equal(mh_stats_history_p95_us(b), 0);
	b[0] = 100; /* all in [0, 0.5 ms]: 95 % of the way */
	assert_int_equal(mh_stats_history_p95_us(b), 475);
	b[0] = 90;
	b[3] = 10; /* rank 95: the 5th of 10 in (2.5, 5] ms -> 3.75 ms */
	assert_int_equal(mh_stats_history_p95_us(b), 3750);
	memset(b, 0, sizeof(b));
	b[MH_STATS_BUCKETS - 1] = 3; /* overflow: the largest finite bound */
	assert_int_equal(mh_stats_history_p95_us(b),
	                 (uint32_t)(mh_stats_bucket_le[MH_STATS_BUCKETS - 2] * 1e6));
}

/* ---------------------------------------------------------------- page */

/* The number in the element data-stat="stat" inside [from, to); -1 if none. */
static long long stat_in(const char *from, const char *to, const char *stat)
{
	char key[80];
	snprintf(key, sizeof(key), "data-stat=\"%s\">", stat);
	const char *p = strstr(from, key);
	if (p == NULL || (to != NULL && p >= to))
		return -1;
	return strtoll(p + strlen(key), NULL, 10);
}

static const char *section_of(const char *page, const char *escaped_name, const char **end)
{
	char key[200];
	snprintf(key, sizeof(key), "<section class=\"milter\" id=\"milter-%s\" data-milter=\"%s\">",
	         escaped_name, escaped_name);
	const char *p = strstr(page, key);
	assert_non_null(p);
	*end = strstr(p, "</section>");
	assert_non_null(*end);
	return p;
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;
	for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle))
		n++;
	return n;
}

static void the_page_shows_every_milter_with_exact_totals(void **state)
{
	struct mh_stats_snapshot *s = snap_new();
	s->milter[1].name = "rej<&\">";
	s->milter[1].state = "down";
	s->milter[1].enabled = 0;
	s->milter[1].restarts = 4;
	s->uptime = 4000;
	s->sessions_max = 17;
	struct mh_stats_history *h = mh_stats_history_new();
	mh_stats_history_sample(h, s);
	for (unsigned k = 1; k <= 400; k++) {
		step(s, k);
		mh_stats_history_sample(h, s);
	}
	s->totals.child[7].fails[MH_HS_EOM][MH_FAIL_TIMEOUT] = 6;
	s->totals.child[7].fails[MH_HS_CONNECT][MH_FAIL_CLOSED] = 2;
	s->totals.child[7].answers[MH_HS_CONNECT][MH_ST_TEMPFAIL] = 9;
	s->totals.child[7].answers[MH_HS_EOM][MH_ST_DISCARD] = 1;
	s->totals.child[3].headers[MH_HK_SPAM][0] = 12;
	s->totals.g.recipients = 1234;

	struct mh_buf out = MH_BUF_INIT;
	mh_stats_page_render(h, s, &out);
	const char *page = (const char *)mh_buf_head(&out);
	assert_int_equal(strlen(page), mh_buf_size(&out));
	assert_true(strncmp(page, "<!DOCTYPE html>", 15) == 0);
	assert_non_null(strstr(page, "name=\"viewport\""));
	assert_null(strstr(page, "http://"));
	assert_null(strstr(page, "https://"));
	assert_null(strstr(page, "<script"));
	assert_null(strstr(page, "nan"));
	assert_null(strstr(page, "inf"));
	assert_non_null(strstr(page, "</html>\n"));

	/* global totals (outside the cards) */
	const char *cards = strstr(page, "<section class=\"milter\"");
	assert_non_null(cards);
	assert_int_equal(stat_in(page, cards, "sessions_total"), s->totals.g.sessions);
	assert_int_equal(stat_in(page, cards, "sessions_open"), s->totals.g.sessions_open);
	assert_int_equal(stat_in(page, cards, "sessions_max"), 17);
	assert_int_equal(stat_in(page, cards, "messages"), s->totals.g.messages);
	assert_int_equal(stat_in(page, cards, "recipients"), 1234);
	assert_int_equal(stat_in(page, cards, "workers"), 2);
	assert_int_equal(stat_in(page, cards, "result_accept"), s->totals.g.results[MH_RES_ACCEPT]);
	assert_int_equal(stat_in(page, cards, "result_reject"), 0);

	/* one card per milter, in order, each with its four graphs */
	assert_int_equal(count(page, "<section class=\"milter\""), 2);
	const char *end, *a_end;
	const char *a = section_of(page, "accepter", &a_end);
	end = a_end;
	assert_int_equal(stat_in(a, end, "sessions"), s->totals.child[3].sessions);
	assert_int_equal(stat_in(a, end, "accept"), s->totals.child[3].answers[MH_HS_EOM][0]);
	assert_int_equal(stat_in(a, end, "reject"), 0);
	assert_int_equal(stat_in(a, end, "fallbacks"), 0);
	assert_int_equal(stat_in(a, end, "hdr_spam_yes"), 12);
	assert_non_null(strstr(a, "data-state=\"up\" data-enabled=\"1\""));
	const char *graphs[] = {"outcomes-hour", "outcomes-day", "latency-hour", "latency-day"};
	for (size_t i = 0; i < 4; i++) {
		char key[64];
		snprintf(key, sizeof(key), "<svg class=\"graph\" data-graph=\"%s\"", graphs[i]);
		const char *g = strstr(a, key);
		assert_true(g != NULL && g < end);
	}
	const char *r = section_of(page, "rej&lt;&amp;&quot;&gt;", &end);
	assert_true(r > a);
	uint64_t rejects = 0;
	for (unsigned k = 1; k <= 400; k++)
		rejects += k % 3;
	assert_int_equal(stat_in(r, end, "sessions"), s->totals.child[7].sessions);
	assert_int_equal(stat_in(r, end, "reject"), rejects);
	assert_int_equal(stat_in(r, end, "tempfail"), 9);
	assert_int_equal(stat_in(r, end, "discard"), 1);
	assert_int_equal(stat_in(r, end, "fallbacks"), 8);
	assert_int_equal(stat_in(r, end, "timeouts"), 6);
	assert_int_equal(stat_in(r, end, "restarts"), 4);
	assert_int_equal(stat_in(r, end, "answers_timed"),
	                 s->totals.child[7].lat_count[MH_HS_RCPT]);
	assert_non_null(strstr(r, "data-state=\"down\" data-enabled=\"0\""));
	for (size_t i = 0; i < 4; i++) {
		char key[64];
		snprintf(key, sizeof(key), "data-graph=\"%s\"", graphs[i]);
		const char *g = strstr(r, key);
		assert_true(g != NULL && g < end);
	}
	/* the name is never raw: not in text, not in attributes */
	assert_null(strstr(page, "rej<"));
	assert_null(strstr(page, "&\""));
	assert_non_null(strstr(page, "href=\"#milter-rej&lt;&amp;&quot;&gt;\""));

	assert_int_equal(count(page, "data-graph=\"sessions-hour\""), 1);
	assert_int_equal(count(page, "data-graph=\"sessions-day\""), 1);
	assert_int_equal(count(page, "<svg class=\"graph\""), 2 + 2 * 4);
	/* graphs have lines, and the down milter its red marks */
	assert_true(count(page, "<path class=\"s ") == 3 * 2 + 2 * (5 + 2) * 2);
	assert_non_null(strstr(r, "<rect class=\"down\""));
	const char *mark = strstr(a, "<rect class=\"down\"");
	assert_true(mark == NULL || mark > a_end);
	mh_buf_free(&out);
	mh_stats_history_free(h);
	free(s);
}

static void an_empty_daemon_renders_flat_graphs(void **state)
{
	struct mh_stats_snapshot *s = snap_new();
	struct mh_buf out = MH_BUF_INIT;
	/* no history at all */
	mh_stats_page_render(NULL, s, &out);
	assert_non_null(strstr((const char *)mh_buf_head(&out), "collecting data"));
	assert_int_equal(count((const char *)mh_buf_head(&out), "<svg class=\"graph\""), 10);
	mh_buf_reset(&out);
	/* samples, all counters 0: flat lines at the bottom, scale 0..1 */
	struct mh_stats_history *h = mh_stats_history_new();
	for (unsigned k = 0; k < 40; k++) {
		s->now = T0 + 10.0 * k;
		mh_stats_history_sample(h, s);
	}
	mh_stats_page_render(h, s, &out);
	const char *page = (const char *)mh_buf_head(&out);
	assert_null(strstr(page, "nan"));
	assert_null(strstr(page, "inf"));
	assert_null(strstr(page, "collecting data"));
	assert_non_null(strstr(page, ">1</text>")); /* the y maximum */
	assert_non_null(strstr(page, " 118.0L")); /* y of the zero line */
	mh_buf_free(&out);
	/* no milter configured */
	s->nmilters = 0;
	struct mh_buf out2 = MH_BUF_INIT;
	mh_stats_page_render(h, s, &out2);
	assert_null(strstr((const char *)mh_buf_head(&out2), "<section class=\"milter\""));
	assert_non_null(strstr((const char *)mh_buf_head(&out2), "none configured"));
	mh_buf_free(&out2);
	mh_stats_history_free(h);
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(the_first_sample_is_only_a_baseline),
	    cmocka_unit_test(hour_points_hold_deltas_and_the_ring_wraps),
	    cmocka_unit_test(day_points_sum_thirty_samples),
	    cmocka_unit_test(a_counter_going_backwards_gives_zero),
	    cmocka_unit_test(milters_are_kept_by_name),
	    cmocka_unit_test(p95_interpolates_in_the_histogram),
	    cmocka_unit_test(the_page_shows_every_milter_with_exact_totals),
	    cmocka_unit_test(an_empty_daemon_renders_flat_graphs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
