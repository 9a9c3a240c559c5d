/*
 * test_stats_render - the snapshot renderers (mh_stats_render.h): exact
 * Prometheus lines, cumulative histogram buckets, label escaping, JSON
 * that parses back with the same facts, the terminal table, and
 * `promtool check metrics` when promtool is installed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stats/mh_stats_render.h"

#define PROMTOOL "/usr/bin/promtool"
#define PYTHON "/usr/bin/python3"

/* A snapshot with known counts; heap: it is hundreds of KiB. */
static struct mh_stats_snapshot *sample_snapshot(void)
{
	struct mh_stats_snapshot *s = calloc(1, sizeof(*s));
	assert_non_null(s);
	s->now = 1795000000.25;
	s->uptime = 93784.5; /* 1d 02:03:04.5 */
	s->sessions_max = 17;
	s->worker_restarts = 2;
	s->workers = 4;
	s->generation = 3;

	struct mh_stats_global *g = &s->totals.g;
	g->sessions = 100;
	g->sessions_open = 5;
	g->messages = 80;
	g->recipients = 120;
	g->results[MH_RES_ACCEPT] = 70;
	g->results[MH_RES_REJECT] = 5;
	g->results[MH_RES_ABORT] = 5;
	g->replies[MH_HS_RCPT][MH_ST_REJECT] = 7;
	g->replies[MH_HS_EOM][MH_ST_ACCEPT] = 70;
	g->mta_malformed = 1;

	/* "spam" in slot 3: the busy one. */
	struct mh_stats_child *c = &s->totals.child[3];
	c->sessions = 50;
	c->answers[MH_HS_RCPT][MH_ST_REJECT] = 7;
	c->answers[MH_HS_EOM][MH_ST_ACCEPT] = 60;
	c->fails[MH_HS_EOM][MH_FAIL_TIMEOUT] = 2;
	c->fails[MH_HS_CONNECT][MH_FAIL_CLOSED] = 1;
	c->lat_bucket[MH_HS_EOM][0] = 1; /* <= 0.0005 */
	c->lat_bucket[MH_HS_EOM][3] = 2; /* <= 0.005 */
	c->lat_bucket[MH_HS_EOM][14] = 1; /* > 10 */
	c->lat_sum_us[MH_HS_EOM] = 1500000;
	c->lat_count[MH_HS_EOM] = 4;
	c->headers[MH_HK_SPAM][0] = 3; /* yes */
	c->headers[MH_HK_SPAM][1] = 10; /* no */
	c->headers[MH_HK_SPF][0] = 5; /* pass */
	s->milter[0] = (struct mh_stats_milter){
	    .name = "spam", .slot = 3, .state = "up", .enabled = 1, .restarts = 0};

	/* "virus" in slot 0: down, disabled, never answered. */
	s->totals.child[0].sessions = 9;
	s->milter[1] = (struct mh_stats_milter){
	    .name = "virus", .slot = 0, .state = "down", .enabled = 0, .restarts = 4};

	/* A name a config cannot hold, for the escaper: quote, backslash, newline. */
	s->totals.child[5].sessions = 1;
	s->milter[2] = (struct mh_stats_milter){
	    .name = "we\"ird\\back\nx", .slot = 5, .state = "unsupervised", .enabled = 1};
	s->nmilters = 3;
	return s;
}

static char *render(void (*fn)(const struct mh_stats_snapshot *, struct mh_buf *),
                    const struct mh_stats_snapshot *s)
{
	struct mh_buf b = MH_BUF_INIT;
	fn(s, &b);
	char *text = mh_xstrdup(b.data ? (const char *)mh_buf_head(&b) : "");
	mh_buf_free(&b);
	return text;
}

/* text holds line as a whole line. */
static int has_line(const char *text, const char *line)
{
	size_t n = strlen(line);
	for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			return 1;
	return 0;
}

#define assert_line(text, line)                                                                    \
	do {                                                                                       \
		if (!has_line((text), (line)))                                                     \
			fail_msg("missing line: %s", (line));                                      \
	} while (0)

static char *write_temp(const char *text)
{
	char *path = mh_xstrdup("/tmp/test_stats_render.XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	size_t n = strlen(text);
	assert_int_equal(write(fd, text, n), (ssize_t)n);
	close(fd);
	return path;
}

/* Run `promtool check metrics` on text: 0 when it passes without a word. */
static void promtool_clean(const char *text)
{
	if (access(PROMTOOL, X_OK) != 0) {
		printf("# note: %s not installed, promtool check skipped\n", PROMTOOL);
		return;
	}
	char *in = write_temp(text);
	char out[] = "/tmp/test_stats_render_out.XXXXXX";
	int ofd = mkstemp(out);
	assert_true(ofd >= 0);
	close(ofd);
	char cmd[512];
	snprintf(cmd, sizeof(cmd), PROMTOOL " check metrics < %s > %s 2>&1", in, out);
	int rc = system(cmd);
	FILE *f = fopen(out, "r");
	assert_non_null(f);
	char said[4096] = "";
	size_t n = fread(said, 1, sizeof(said) - 1, f);
	said[n] = '\0';
	fclose(f);
	unlink(in);
	unlink(out);
	free(in);
	if (rc != 0 || n != 0)
		fail_msg("promtool check metrics: exit %d, said: %s", rc, said);
}

/* ------------------------------------------------------------------ tests */

static void quantile_is_upper_bound_of_bucket_reaching_rank(void **state)
{
	uint64_t b[MH_STATS_BUCKETS] = {0};
	assert_true(isnan(mh_stats_render_quantile(b, 0.5)));
	b[0] = 1;
	b[3] = 2;
	b[MH_STATS_BUCKETS - 1] = 1;
	assert_true(mh_stats_render_quantile(b, 0.25) == mh_stats_bucket_le[0]);
	assert_true(mh_stats_render_quantile(b, 0.5) == mh_stats_bucket_le[3]);
	assert_true(mh_stats_render_quantile(b, 0.75) == mh_stats_bucket_le[3]);
	assert_true(isinf(mh_stats_render_quantile(b, 0.99)));
	memset(b, 0, sizeof(b));
	b[5] = 100;
	assert_true(mh_stats_render_quantile(b, 0.01) == mh_stats_bucket_le[5]);
	assert_true(mh_stats_render_quantile(b, 1.0) == mh_stats_bucket_le[5]);
}

static void prometheus_global_lines(void **state)
{
	struct mh_stats_snapshot *s = sample_snapshot();
	char *t = render(mh_stats_render_prometheus, s);
	assert_line(t, "# HELP milterhub_sessions_total SMTP sessions (MTA connections) taken.");
	assert_line(t, "# TYPE milterhub_sessions_total counter");
	assert_line(t, "milterhub_sessions_total 100");
	assert_line(t, "# TYPE milterhub_sessions_open gauge");
	assert_line(t, "milterhub_sessions_open 5");
	assert_line(t, "milterhub_sessions_max 17");
	assert_line(t, "milterhub_messages_total 80");
	assert_line(t, "milterhub_recipients_total 120");
	assert_line(t, "milterhub_results_total{result=\"accept\"} 70");
	assert_line(t, "milterhub_results_total{result=\"reject\"} 5");
	assert_line(t, "milterhub_results_total{result=\"tempfail\"} 0");
	assert_line(t, "milterhub_results_total{result=\"discard\"} 0");
	assert_line(t, "milterhub_results_total{result=\"quarantine\"} 0");
	assert_line(t, "milterhub_results_total{result=\"abort\"} 5");
	assert_line(t, "milterhub_results_total{result=\"pass\"} 0");
	assert_line(t, "milterhub_replies_total{stage=\"envelope-recipient\",status=\"reject\"} 7");
	assert_line(t, "milterhub_replies_total{stage=\"end-of-message\",status=\"accept\"} 70");
	assert_null(strstr(t, "milterhub_replies_total{stage=\"connect\""));
	assert_line(t, "milterhub_mta_malformed_total 1");
	assert_line(t, "# TYPE milterhub_workers gauge");
	assert_line(t, "milterhub_workers 4");
	assert_line(t, "milterhub_worker_restarts_total 2");
	assert_line(t, "milterhub_generation 3");
	assert_line(t, "# TYPE milterhub_uptime_seconds gauge");
	assert_line(t, "milterhub_uptime_seconds 93784.5");
	free(t);
	free(s);
}

static void prometheus_per_milter_lines(void **state)
{
	struct mh_stats_snapshot *s = sample_snapshot();
	char *t = render(mh_stats_render_prometheus, s);
	assert_line(t, "milterhub_milter_sessions_total{milter=\"spam\"} 50");
	assert_line(t, "milterhub_milter_sessions_total{milter=\"virus\"} 9");
	assert_line(t,
	            "milterhub_milter_answers_total{milter=\"spam\",stage=\"envelope-recipient\","
	            "status=\"reject\"} 7");
	assert_line(t, "milterhub_milter_answers_total{milter=\"spam\",stage=\"end-of-message\","
	               "status=\"accept\"} 60");
	/* Zero combinations are left out. */
	assert_null(strstr(t, "milterhub_milter_answers_total{milter=\"virus\""));
	assert_null(strstr(t, "status=\"discard\"} 0"));
	assert_line(t, "milterhub_milter_fallbacks_total{milter=\"spam\",stage=\"end-of-message\","
	               "reason=\"timeout\"} 2");
	assert_line(t, "milterhub_milter_fallbacks_total{milter=\"spam\",stage=\"connect\","
	               "reason=\"closed\"} 1");
	assert_line(t, "# TYPE milterhub_milter_state gauge");
	assert_line(t, "milterhub_milter_state{milter=\"spam\",state=\"up\"} 1");
	assert_line(t, "milterhub_milter_state{milter=\"spam\",state=\"down\"} 0");
	assert_line(t, "milterhub_milter_state{milter=\"virus\",state=\"down\"} 1");
	assert_line(t, "milterhub_milter_state{milter=\"virus\",state=\"up\"} 0");
	assert_line(t, "milterhub_milter_enabled{milter=\"spam\"} 1");
	assert_line(t, "milterhub_milter_enabled{milter=\"virus\"} 0");
	assert_line(t, "milterhub_milter_restarts_total{milter=\"virus\"} 4");
	assert_line(t, "milterhub_milter_header_results_total{milter=\"spam\",kind=\"spam\","
	               "result=\"yes\"} 3");
	assert_line(t, "milterhub_milter_header_results_total{milter=\"spam\",kind=\"spam\","
	               "result=\"no\"} 10");
	assert_line(t, "milterhub_milter_header_results_total{milter=\"spam\",kind=\"spf\","
	               "result=\"pass\"} 5");
	assert_null(strstr(t, "kind=\"dkim\""));
	free(t);
	free(s);
}

static void prometheus_histogram_is_cumulative_and_complete(void **state)
{
	struct mh_stats_snapshot *s = sample_snapshot();
	char *t = render(mh_stats_render_prometheus, s);
	assert_line(t, "# TYPE milterhub_milter_latency_seconds histogram");
	/* Per-bucket 1, 0, 0, 2, 0 ... 0, 1 becomes 1, 1, 1, 3, 3 ... 3, 4. */
	static const uint64_t cum[MH_STATS_BUCKETS] = {1, 1, 1, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 4};
	for (int b = 0; b < MH_STATS_BUCKETS; b++) {
		char le[32], line[256];
		if (b < MH_STATS_BUCKETS - 1)
			snprintf(le, sizeof(le), "%g", mh_stats_bucket_le[b]);
		else
			snprintf(le, sizeof(le), "+Inf");
		snprintf(line, sizeof(line),
		         "milterhub_milter_latency_seconds_bucket{milter=\"spam\","
		         "stage=\"end-of-message\",le=\"%s\"} %llu",
		         le, (unsigned long long)cum[b]);
		assert_line(t, line);
	}
	assert_line(t, "milterhub_milter_latency_seconds_bucket{milter=\"spam\","
	               "stage=\"end-of-message\",le=\"0.0005\"} 1");
	assert_line(t, "milterhub_milter_latency_seconds_bucket{milter=\"spam\","
	               "stage=\"end-of-message\",le=\"10\"} 3");
	assert_line(t, "milterhub_milter_latency_seconds_sum{milter=\"spam\","
	               "stage=\"end-of-message\"} 1.5");
	assert_line(t, "milterhub_milter_latency_seconds_count{milter=\"spam\","
	               "stage=\"end-of-message\"} 4");
	/* Stages without observations have no series. */
	assert_null(strstr(t, "milterhub_milter_latency_seconds_bucket{milter=\"spam\","
	                      "stage=\"connect\""));
	assert_null(strstr(t, "milterhub_milter_latency_seconds_count{milter=\"virus\""));
	free(t);
	free(s);
}

static void prometheus_escapes_label_values(void **state)
{
	struct mh_stats_snapshot *s = sample_snapshot();
	char *t = render(mh_stats_render_prometheus, s);
	assert_line(t, "milterhub_milter_sessions_total{milter=\"we\\\"ird\\\\back\\nx\"} 1");
	assert_line(t, "milterhub_milter_state{milter=\"we\\\"ird\\\\back\\nx\","
	               "state=\"unsupervised\"} 1");
	free(t);
	free(s);
}

static void prometheus_every_family_has_help_and_type(void **state)
{
	struct mh_stats_snapshot *s = sample_snapshot();
	char *t = render(mh_stats_render_prometheus, s);
	int help = 0, type = 0;
	for (const char *p = t; *p;) {
		const char *nl = strchr(p, '\n');
		assert_non_null(nl); /* every line ends with \n */
		if (strncmp(p, "# HELP ", 7) == 0)
			help++;
		else if (strncmp(p, "# TYPE ", 7) == 0)
			type++;
		else
			assert_true(strncmp(p, "milterhub_", 10) == 0);
		p = nl + 1;
	}
	assert_int_equal(help, type);
	assert_int_equal(help, 20);
	free(t);
	free(s);
}

static void prometheus_passes_promtool(void **state)
{
	struct mh_stats_snapshot *s = sample_snapshot();
	char *t = render(mh_stats_render_prometheus, s);
	promtool_clean(t);
	free(t);
	/* An empty daemon: no milters, nothing counted. */
	memset(s, 0, sizeof(*s));
	t = render(mh_stats_render_prometheus, s);
	assert_line(t, "milterhub_sessions_total 0");
	assert_null(strstr(t, "milterhub_replies_total"));
	assert_null(strstr(t, "milterhub_milter_"));
	promtool_clean(t);
	free(t);
	free(s);
}

static void json_parses_back_with_the_same_facts(void **state)
{
	struct mh_stats_snapshot *s = sample_snapshot();
	char *t = render(mh_stats_render_json, s);
	assert_true(t[0] == '{');
	if (access(PYTHON, X_OK) != 0) {
		printf("# note: %s not installed, JSON parse check skipped\n", PYTHON);
		free(t);
		free(s);
		return;
	}
	char *path = write_temp(t);
	static const char check[] =
	    "import json,sys\n"
	    "d=json.load(open(sys.argv[1]))\n"
	    "assert d['now']==1795000000.25 and d['uptime']==93784.5, d\n"
	    "assert d['generation']==3 and d['workers']==4 and d['worker_restarts']==2\n"
	    "assert d['sessions']=={'total':100,'open':5,'max':17}\n"
	    "assert d['messages']==80 and d['recipients']==120 and d['mta_malformed']==1\n"
	    "assert d['results']=={'accept':70,'reject':5,'tempfail':0,'discard':0,"
	    "'quarantine':0,'abort':5,'pass':0}, d['results']\n"
	    "assert d['replies']=={'envelope-recipient':{'reject':7},"
	    "'end-of-message':{'accept':70}}, d['replies']\n"
	    "assert len(d['latency_le'])==14 and d['latency_le'][0]==0.0005\n"
	    "m=d['milters']\n"
	    "assert [x['name'] for x in m]==['spam','virus','we\"ird\\\\back\\nx'], m\n"
	    "sp=m[0]\n"
	    "assert sp['state']=='up' and sp['enabled'] is True and sp['sessions']==50\n"
	    "assert sp['answers']=={'envelope-recipient':{'reject':7},"
	    "'end-of-message':{'accept':60}}, sp['answers']\n"
	    "assert sp['fallbacks']=={'connect':{'closed':1},"
	    "'end-of-message':{'timeout':2}}, sp['fallbacks']\n"
	    "l=sp['latency']\n"
	    "assert list(l)==['end-of-message'], l\n"
	    "e=l['end-of-message']\n"
	    "assert e['count']==4 and e['sum']==1.5 and e['p50']==0.005 and e['p99']==10, e\n"
	    "assert e['buckets']==[1,0,0,2,0,0,0,0,0,0,0,0,0,0,1], e\n"
	    "assert sp['headers']=={'spam':{'yes':3,'no':10},'spf':{'pass':5}}, sp['headers']\n"
	    "v=m[1]\n"
	    "assert v['state']=='down' and v['enabled'] is False and v['restarts']==4\n"
	    "assert v['answers']=={} and v['fallbacks']=={} and v['latency']=={}\n"
	    "assert v['headers']=={}\n";
	char *script = write_temp(check);
	char cmd[512];
	snprintf(cmd, sizeof(cmd), PYTHON " %s %s", script, path);
	int rc = system(cmd);
	unlink(script);
	unlink(path);
	free(script);
	free(path);
	if (rc != 0)
		fail_msg("JSON check failed (exit %d) on: %s", rc, t);
	free(t);
	free(s);
}

/* The row of milter name, split at blanks. */
static int table_row(const char *t, const char *name, char words[][64], int max)
{
	char start[80];
	snprintf(start, sizeof(start), "\n%s ", name);
	const char *p = strstr(t, start);
	if (p == NULL)
		return -1;
	p++;
	const char *end = strchr(p, '\n');
	int n = 0;
	while (p < end && n < max) {
		while (p < end && *p == ' ')
			p++;
		if (p == end)
			break;
		size_t len = strcspn(p, " \n");
		snprintf(words[n++], 64, "%.*s", (int)len, p);
		p += len;
	}
	return n;
}

static void table_shows_header_block_and_one_row_per_milter(void **state)
{
	struct mh_stats_snapshot *s = sample_snapshot();
	char *t = render(mh_stats_render_table, s);
	assert_non_null(strstr(t, "up 1d 02:03:04, generation 3, 4 workers (2 restarted)\n"));
	assert_non_null(strstr(t, "sessions    100 total, 5 open, 17 max\n"));
	assert_non_null(strstr(t, "messages    80, recipients 120, MTA malformed 1\n"));
	assert_non_null(strstr(t, "accept 70 reject 5 tempfail 0 discard 0 quarantine 0 abort 5 "
	                          "pass 0\n"));
	assert_non_null(strstr(t, "\nMILTER "));

	char w[16][64];
	int n = table_row(t, "spam", w, 16);
	static const char *const want[] = {"spam",      "up",  "50",   "60",
	                                   "7",         "0",   "0",    "3",
	                                   "2",         "5ms", ">10s", "spam:yes=3,no=10",
	                                   "spf:pass=5"};
	assert_int_equal(n, (int)(sizeof(want) / sizeof(want[0])));
	for (int i = 0; i < n; i++)
		assert_string_equal(w[i], want[i]);

	n = table_row(t, "virus", w, 16);
	static const char *const want_v[] = {
	    "virus", "down,disabled", "9", "0", "0", "0", "0", "0", "0", "-", "-", "-"};
	assert_int_equal(n, (int)(sizeof(want_v) / sizeof(want_v[0])));
	for (int i = 0; i < n; i++)
		assert_string_equal(w[i], want_v[i]);
	free(t);

	s->nmilters = 0;
	t = render(mh_stats_render_table, s);
	assert_non_null(strstr(t, "no milters configured\n"));
	free(t);
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(quantile_is_upper_bound_of_bucket_reaching_rank),
	    cmocka_unit_test(prometheus_global_lines),
	    cmocka_unit_test(prometheus_per_milter_lines),
	    cmocka_unit_test(prometheus_histogram_is_cumulative_and_complete),
	    cmocka_unit_test(prometheus_escapes_label_values),
	    cmocka_unit_test(prometheus_every_family_has_help_and_type),
	    cmocka_unit_test(prometheus_passes_promtool),
	    cmocka_unit_test(json_parses_back_with_the_same_facts),
	    cmocka_unit_test(table_shows_header_block_and_one_row_per_milter),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
