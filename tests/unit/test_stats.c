/*
 * test_stats - the counters (src/stats/mh_stats.c): latency buckets
 * (bounds inclusive, +Inf last, sum in microseconds), header results as
 * SpamAssassin, clamav-milter and Authentication-Results write them,
 * totals folded by name slot (live regions add open sessions, retired
 * ones do not), and a region written by a forked process read by its
 * parent.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "stats/mh_stats.h"

static void latency_lands_in_the_first_bucket_it_fits(void **state)
{
	struct mh_stats_child *c = calloc(1, sizeof(*c));
	assert_non_null(c);
	mh_stats_latency(c, MH_HS_EOM, 0.0005); /* == bound: that bucket (le) */
	mh_stats_latency(c, MH_HS_EOM, 0.0006);
	mh_stats_latency(c, MH_HS_EOM, 3.0);
	mh_stats_latency(c, MH_HS_EOM, 99.0); /* past every bound: +Inf */
	mh_stats_latency(c, MH_HS_EOM, -1.0); /* a clock step back: the first */
	assert_int_equal(c->lat_bucket[MH_HS_EOM][0], 2);
	assert_int_equal(c->lat_bucket[MH_HS_EOM][1], 1);
	assert_int_equal(c->lat_bucket[MH_HS_EOM][12], 1); /* (2.5, 5] */
	assert_int_equal(c->lat_bucket[MH_HS_EOM][MH_STATS_BUCKETS - 1], 1);
	assert_int_equal(c->lat_count[MH_HS_EOM], 5);
	assert_int_equal(c->lat_sum_us[MH_HS_EOM], 500 + 600 + 3000000 + 99000000);
	assert_int_equal(c->lat_count[MH_HS_RCPT], 0);
	free(c);
}

struct seen {
	int n;
	enum mh_hdr_kind k[8];
	unsigned r[8];
};

static void found(enum mh_hdr_kind k, unsigned r, void *arg)
{
	struct seen *s = arg;
	if (s->n < 8) {
		s->k[s->n] = k;
		s->r[s->n] = r;
	}
	s->n++;
}

static void expect_one(const char *name, const char *value, enum mh_hdr_kind k, const char *r)
{
	struct seen s = {0};
	mh_stats_classify_header(name, value, found, &s);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.k[0], k);
	assert_string_equal(mh_stats_hdr_result_name(k, s.r[0]), r);
}

static void expect_none(const char *name, const char *value)
{
	struct seen s = {0};
	mh_stats_classify_header(name, value, found, &s);
	assert_int_equal(s.n, 0);
}

static void spam_and_virus_headers_are_classified(void **state)
{
	expect_one("X-Spam-Flag", "YES", MH_HK_SPAM, "yes");
	expect_one("x-spam-flag", " NO", MH_HK_SPAM, "no");
	expect_one("X-Spam-Status", "Yes, score=7.1 required=5.0 tests=...", MH_HK_SPAM, "yes");
	expect_one("X-Spam-Status", "No, score=-0.1", MH_HK_SPAM, "no");
	expect_one("X-Virus-Status", "Clean", MH_HK_VIRUS, "clean");
	expect_one("X-Virus-Status", "Infected (Eicar-Signature)", MH_HK_VIRUS, "infected");
	expect_one("X-Virus-Status", "Unknown", MH_HK_VIRUS, "other");
	expect_none("X-Spam-Flag", "YESTERDAY"); /* a word, not a prefix */
	expect_none("X-Spam-Level", "*******");
	expect_none("Subject", "YES");
}

static void authentication_results_give_each_method_its_result(void **state)
{
	struct seen s = {0};
	mh_stats_classify_header("Authentication-Results",
	                         "mx.example.org; dkim=pass header.d=example.net;\n\t"
	                         "spf=softfail smtp.mailfrom=a@example.net; dmarc=fail (p=none)",
	                         found, &s);
	assert_int_equal(s.n, 3);
	assert_int_equal(s.k[0], MH_HK_DKIM);
	assert_string_equal(mh_stats_hdr_result_name(MH_HK_DKIM, s.r[0]), "pass");
	assert_int_equal(s.k[1], MH_HK_SPF);
	assert_string_equal(mh_stats_hdr_result_name(MH_HK_SPF, s.r[1]), "softfail");
	assert_int_equal(s.k[2], MH_HK_DMARC);
	assert_string_equal(mh_stats_hdr_result_name(MH_HK_DMARC, s.r[2]), "fail");
	/* "header.dkim=..." and "xspf=pass" are not methods */
	expect_none("Authentication-Results", "mx; x-dkim=pass; xspf=pass");
	expect_one("Authentication-Results", "mx; spf = temperror", MH_HK_SPF, "temperror");
	assert_null(mh_stats_hdr_result_name(MH_HK_SPAM, 5));
	assert_string_equal(mh_stats_hdr_kind_name(MH_HK_DMARC), "dmarc");
}

static void totals_fold_regions_by_name_slot(void **state)
{
	struct mh_stats_region *a = mh_stats_region_new(2);
	struct mh_stats_region *b = mh_stats_region_new(1);
	struct mh_stats_totals *t = calloc(1, sizeof(*t));
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(t);
	const int16_t slots_a[] = {7, 3}; /* generation 1: spam, dkim */
	const int16_t slots_b[] = {3}; /* generation 2: dkim only */
	a->g.sessions = 10;
	a->g.sessions_open = 2;
	a->g.results[MH_RES_REJECT] = 4;
	a->child[0].answers[MH_HS_RCPT][MH_ST_REJECT] = 4;
	a->child[1].sessions = 10;
	b->g.sessions = 5;
	b->g.sessions_open = 1;
	b->child[0].sessions = 5;
	b->child[0].fails[MH_HS_EOM][MH_FAIL_TIMEOUT] = 1;

	mh_stats_totals_add(t, a, slots_a, 0); /* a's worker has exited */
	mh_stats_totals_add(t, b, slots_b, 1); /* b's is alive */
	assert_int_equal(t->g.sessions, 15);
	assert_int_equal(t->g.sessions_open, 1);
	assert_int_equal(t->g.results[MH_RES_REJECT], 4);
	assert_int_equal(t->child[7].answers[MH_HS_RCPT][MH_ST_REJECT], 4);
	assert_int_equal(t->child[3].sessions, 15); /* one name across two generations */
	assert_int_equal(t->child[3].fails[MH_HS_EOM][MH_FAIL_TIMEOUT], 1);
	assert_int_equal(t->child[0].sessions, 0);
	mh_stats_region_free(a);
	mh_stats_region_free(b);
	free(t);
}

static void a_workers_writes_reach_the_master(void **state)
{
	struct mh_stats_region *r = mh_stats_region_new(1);
	assert_non_null(r);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		for (int i = 0; i < 100; i++)
			MH_STATS_INC(r->child[0].answers[MH_HS_EOM][MH_ST_ACCEPT]);
		MH_STATS_INC(r->g.sessions);
		_exit(0);
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_int_equal(r->child[0].answers[MH_HS_EOM][MH_ST_ACCEPT], 100);
	assert_int_equal(r->g.sessions, 1);
	assert_int_equal(r->nchildren, 1);
	mh_stats_region_free(r);
}

static void names_of_stages_results_and_reasons(void **state)
{
	assert_string_equal(mh_hub_stage_name(MH_HS_RCPT), "envelope-recipient");
	assert_string_equal(mh_hub_stage_name(MH_HS_EOM), "end-of-message");
	assert_int_equal(mh_hub_stage_of('E'), MH_HS_EOM);
	assert_int_equal(mh_hub_stage_of('Q'), MH_HS_COUNT);
	assert_string_equal(mh_hub_result_name(MH_RES_QUARANTINE), "quarantine");
	assert_string_equal(mh_hub_fail_name(MH_FAIL_TIMEOUT), "timeout");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(latency_lands_in_the_first_bucket_it_fits),
	    cmocka_unit_test(spam_and_virus_headers_are_classified),
	    cmocka_unit_test(authentication_results_give_each_method_its_result),
	    cmocka_unit_test(totals_fold_regions_by_name_slot),
	    cmocka_unit_test(a_workers_writes_reach_the_master),
	    cmocka_unit_test(names_of_stages_results_and_reasons),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
