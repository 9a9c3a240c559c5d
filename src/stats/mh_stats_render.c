/*
 * mh_stats_render - a statistics snapshot as Prometheus text, JSON, or a
 * terminal table.
 *
 * SUMMARY
 *	mh_stats_render_prometheus() writes the exposition format 0.0.4:
 *	families in a fixed order, each with # HELP and # TYPE written just
 *	before its first sample (a family with nothing to say is left out
 *	whole, so promtool never sees an empty family). Label values are
 *	escaped as the format demands (backslash, double quote, newline).
 *	mh_stats_render_json() writes the object documented in the header.
 *	mh_stats_render_table() writes the `milterhubctl stats` table.
 *
 * NUMBERS
 *	Counters are printed as integers. Floats as "%.15g", with more
 *	digits only when needed to read back the same double ("0.005", not
 *	"0.0050000000000000001"), and "." whatever the locale says.
 *
 * HISTOGRAMS
 *	The snapshot keeps per-bucket counts; Prometheus wants cumulative
 *	ones, so _bucket{le} is the running sum and _count the total of all
 *	buckets (== the +Inf bucket, always; see mh_stats_render.h).
 *
 * DIAGNOSTICS
 *	None: a milter whose slot is out of range renders as all zero.
 */
#include "stats/mh_stats_render.h"

#include "util/mh_json.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The four states a supervisor reports, always listed in milterhub_milter_state. */
static const char *const known_states[] = {"up", "down", "starting", "unsupervised"};
#define NSTATES (sizeof(known_states) / sizeof(known_states[0]))

static const struct mh_stats_child zero_child;

static const struct mh_stats_child *child_of(const struct mh_stats_snapshot *s, size_t i)
{
	int slot = s->milter[i].slot;
	if (slot < 0 || slot >= MH_STATS_NAMES)
		return &zero_child;
	return &s->totals.child[slot];
}

static const char *milter_name(const struct mh_stats_snapshot *s, size_t i)
{
	return s->milter[i].name ? s->milter[i].name : "";
}

static const char *milter_state(const struct mh_stats_snapshot *s, size_t i)
{
	return s->milter[i].state ? s->milter[i].state : "unknown";
}

static uint64_t hist_total(const uint64_t *bucket)
{
	uint64_t n = 0;
	for (int b = 0; b < MH_STATS_BUCKETS; b++)
		n += bucket[b];
	return n;
}

double mh_stats_render_quantile(const uint64_t bucket[MH_STATS_BUCKETS], double q)
{
	uint64_t total = hist_total(bucket);
	if (total == 0)
		return NAN;
	/* The rank of the quantile: ceil(q * total), at least the first observation. */
	double rank = ceil(q * (double)total);
	if (rank < 1)
		rank = 1;
	uint64_t cum = 0;
	for (int b = 0; b < MH_STATS_BUCKETS - 1; b++) {
		cum += bucket[b];
		if ((double)cum >= rank)
			return mh_stats_bucket_le[b];
	}
	return INFINITY;
}

/* The first of %.15g..%.17g that reads back as v; "+Inf" "-Inf" "NaN" as Prometheus spells them. */
static void fmt_double(char *tmp, size_t n, double v)
{
	if (isnan(v)) {
		snprintf(tmp, n, "NaN");
		return;
	}
	if (isinf(v)) {
		snprintf(tmp, n, v > 0 ? "+Inf" : "-Inf");
		return;
	}
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(tmp, n, "%.*g", prec, v);
		if (strtod(tmp, NULL) == v)
			break;
	}
	for (char *p = tmp; *p; p++)
		if (*p == ',')
			*p = '.';
}

/* ------------------------------------------------------------ Prometheus */

struct prom {
	struct mh_buf *out;
	const char *name; /* the current family */
	const char *type;
	const char *help;
	int headed; /* # HELP / # TYPE written */
	struct mh_buf lbl; /* labels of the next sample, without braces */
};

static void fam(struct prom *p, const char *name, const char *type, const char *help)
{
	p->name = name;
	p->type = type;
	p->help = help;
	p->headed = 0;
	mh_buf_reset(&p->lbl);
}

static void lbl_reset(struct prom *p)
{
	mh_buf_reset(&p->lbl);
}

/* Append name="value" with the value escaped (text format: \\ \" \n). */
static void lbl(struct prom *p, const char *key, const char *value)
{
	if (mh_buf_size(&p->lbl) > 0)
		mh_buf_append_byte(&p->lbl, ',');
	mh_buf_append_str(&p->lbl, key);
	mh_buf_append_str(&p->lbl, "=\"");
	for (const char *c = value; *c; c++) {
		if (*c == '\\')
			mh_buf_append_str(&p->lbl, "\\\\");
		else if (*c == '"')
			mh_buf_append_str(&p->lbl, "\\\"");
		else if (*c == '\n')
			mh_buf_append_str(&p->lbl, "\\n");
		else
			mh_buf_append_byte(&p->lbl, (uint8_t)*c);
	}
	mh_buf_append_byte(&p->lbl, '"');
}

static void sample_begin(struct prom *p, const char *suffix)
{
	if (!p->headed) {
		mh_buf_printf(p->out, "# HELP %s %s\n# TYPE %s %s\n", p->name, p->help, p->name,
		              p->type);
		p->headed = 1;
	}
	mh_buf_append_str(p->out, p->name);
	mh_buf_append_str(p->out, suffix);
	if (mh_buf_size(&p->lbl) > 0) {
		mh_buf_append_byte(p->out, '{');
		mh_buf_append(p->out, mh_buf_head(&p->lbl), mh_buf_size(&p->lbl));
		mh_buf_append_byte(p->out, '}');
	}
}

static void sample_u64(struct prom *p, const char *suffix, uint64_t v)
{
	sample_begin(p, suffix);
	mh_buf_printf(p->out, " %" PRIu64 "\n", v);
}

static void sample_f(struct prom *p, const char *suffix, double v)
{
	char tmp[48];
	fmt_double(tmp, sizeof(tmp), v);
	sample_begin(p, suffix);
	mh_buf_printf(p->out, " %s\n", tmp);
}

static void prom_global(struct prom *p, const struct mh_stats_snapshot *s)
{
	const struct mh_stats_global *g = &s->totals.g;

	fam(p, "milterhub_sessions_total", "counter", "SMTP sessions (MTA connections) taken.");
	sample_u64(p, "", g->sessions);
	fam(p, "milterhub_sessions_open", "gauge", "SMTP sessions open now.");
	sample_u64(p, "", g->sessions_open);
	fam(p, "milterhub_sessions_max", "gauge", "Most SMTP sessions open at once since start.");
	sample_u64(p, "", s->sessions_max);
	fam(p, "milterhub_messages_total", "counter", "Mail transactions that ended.");
	sample_u64(p, "", g->messages);
	fam(p, "milterhub_recipients_total", "counter", "RCPT commands from the MTA.");
	sample_u64(p, "", g->recipients);

	fam(p, "milterhub_results_total", "counter", "Messages by how they ended.");
	for (int r = 0; r < MH_RES_COUNT; r++) {
		lbl_reset(p);
		lbl(p, "result", mh_hub_result_name((enum mh_hub_result)r));
		sample_u64(p, "", g->results[r]);
	}

	fam(p, "milterhub_replies_total", "counter", "Decisions sent to the MTA, by stage.");
	for (int st = 0; st < MH_HS_COUNT; st++)
		for (int v = 0; v < MH_ST_COUNT; v++) {
			if (g->replies[st][v] == 0)
				continue;
			lbl_reset(p);
			lbl(p, "stage", mh_hub_stage_name((enum mh_hub_stage)st));
			lbl(p, "status", mh_status_name((enum mh_status)v));
			sample_u64(p, "", g->replies[st][v]);
		}

	fam(p, "milterhub_mta_malformed_total", "counter",
	    "SMTP sessions closed for the MTA's malformed input.");
	sample_u64(p, "", g->mta_malformed);
	fam(p, "milterhub_workers", "gauge", "Worker processes running.");
	sample_u64(p, "", s->workers);
	fam(p, "milterhub_worker_restarts_total", "counter",
	    "Worker processes restarted after an unexpected exit.");
	sample_u64(p, "", s->worker_restarts);
	fam(p, "milterhub_generation", "gauge", "Configuration generation (reloads since start).");
	sample_u64(p, "", s->generation);
	fam(p, "milterhub_uptime_seconds", "gauge", "Seconds since the daemon started.");
	sample_f(p, "", s->uptime);
}

static void prom_histogram(struct prom *p, const char *name, const char *stage,
                           const struct mh_stats_child *c, int st)
{
	const uint64_t *bucket = c->lat_bucket[st];
	uint64_t cum = 0;
	char le[48];
	for (int b = 0; b < MH_STATS_BUCKETS; b++) {
		cum += bucket[b];
		if (b < MH_STATS_BUCKETS - 1)
			fmt_double(le, sizeof(le), mh_stats_bucket_le[b]);
		else
			snprintf(le, sizeof(le), "+Inf");
		lbl_reset(p);
		lbl(p, "milter", name);
		lbl(p, "stage", stage);
		lbl(p, "le", le);
		sample_u64(p, "_bucket", cum);
	}
	lbl_reset(p);
	lbl(p, "milter", name);
	lbl(p, "stage", stage);
	sample_f(p, "_sum", (double)c->lat_sum_us[st] / 1e6);
	sample_u64(p, "_count", cum);
}

static void prom_milters(struct prom *p, const struct mh_stats_snapshot *s)
{
	size_t n = s->nmilters;

	fam(p, "milterhub_milter_sessions_total", "counter",
	    "SMTP sessions a milter was used for.");
	for (size_t i = 0; i < n; i++) {
		lbl_reset(p);
		lbl(p, "milter", milter_name(s, i));
		sample_u64(p, "", child_of(s, i)->sessions);
	}

	fam(p, "milterhub_milter_answers_total", "counter", "A milter's own answers, by stage.");
	for (size_t i = 0; i < n; i++)
		for (int st = 0; st < MH_HS_COUNT; st++)
			for (int v = 0; v < MH_ST_COUNT; v++) {
				uint64_t x = child_of(s, i)->answers[st][v];
				if (x == 0)
					continue;
				lbl_reset(p);
				lbl(p, "milter", milter_name(s, i));
				lbl(p, "stage", mh_hub_stage_name((enum mh_hub_stage)st));
				lbl(p, "status", mh_status_name((enum mh_status)v));
				sample_u64(p, "", x);
			}

	fam(p, "milterhub_milter_fallbacks_total", "counter",
	    "Times a milter's fallback answered for it, by stage and reason.");
	for (size_t i = 0; i < n; i++)
		for (int st = 0; st < MH_HS_COUNT; st++)
			for (int f = 0; f < MH_FAIL_COUNT; f++) {
				uint64_t x = child_of(s, i)->fails[st][f];
				if (x == 0)
					continue;
				lbl_reset(p);
				lbl(p, "milter", milter_name(s, i));
				lbl(p, "stage", mh_hub_stage_name((enum mh_hub_stage)st));
				lbl(p, "reason", mh_hub_fail_name((enum mh_hub_fail)f));
				sample_u64(p, "", x);
			}

	fam(p, "milterhub_milter_latency_seconds", "histogram",
	    "Time from a command sent to a milter to its answer, by stage.");
	for (size_t i = 0; i < n; i++)
		for (int st = 0; st < MH_HS_COUNT; st++)
			if (hist_total(child_of(s, i)->lat_bucket[st]) > 0)
				prom_histogram(p, milter_name(s, i),
				               mh_hub_stage_name((enum mh_hub_stage)st),
				               child_of(s, i), st);

	fam(p, "milterhub_milter_state", "gauge",
	    "A milter's process state: 1 for the current state, 0 for the others.");
	for (size_t i = 0; i < n; i++) {
		const char *cur = milter_state(s, i);
		int known = 0;
		for (size_t k = 0; k < NSTATES; k++) {
			int is = strcmp(cur, known_states[k]) == 0;
			known |= is;
			lbl_reset(p);
			lbl(p, "milter", milter_name(s, i));
			lbl(p, "state", known_states[k]);
			sample_u64(p, "", (uint64_t)is);
		}
		if (!known) {
			lbl_reset(p);
			lbl(p, "milter", milter_name(s, i));
			lbl(p, "state", cur);
			sample_u64(p, "", 1);
		}
	}

	fam(p, "milterhub_milter_enabled", "gauge", "1 if workers use the milter now, else 0.");
	for (size_t i = 0; i < n; i++) {
		lbl_reset(p);
		lbl(p, "milter", milter_name(s, i));
		sample_u64(p, "", s->milter[i].enabled ? 1 : 0);
	}

	fam(p, "milterhub_milter_restarts_total", "counter",
	    "Restarts of a supervised milter process.");
	for (size_t i = 0; i < n; i++) {
		lbl_reset(p);
		lbl(p, "milter", milter_name(s, i));
		sample_u64(p, "", s->milter[i].restarts);
	}

	fam(p, "milterhub_milter_header_results_total", "counter",
	    "Results found in headers a milter added (spam, virus, spf, dkim, dmarc).");
	for (size_t i = 0; i < n; i++)
		for (int k = 0; k < MH_HK_COUNT; k++)
			for (unsigned r = 0; r < MH_HDR_RESULTS; r++) {
				const char *rn = mh_stats_hdr_result_name((enum mh_hdr_kind)k, r);
				uint64_t x = child_of(s, i)->headers[k][r];
				if (rn == NULL || x == 0)
					continue;
				lbl_reset(p);
				lbl(p, "milter", milter_name(s, i));
				lbl(p, "kind", mh_stats_hdr_kind_name((enum mh_hdr_kind)k));
				lbl(p, "result", rn);
				sample_u64(p, "", x);
			}
}

void mh_stats_render_prometheus(const struct mh_stats_snapshot *s, struct mh_buf *out)
{
	struct prom p = {.out = out};
	prom_global(&p, s);
	prom_milters(&p, s);
	mh_buf_free(&p.lbl);
}

/* ------------------------------------------------------------------ JSON */

static void json_uint(struct mh_json *j, uint64_t v)
{
	mh_json_int(j, v > INT64_MAX ? INT64_MAX : (int64_t)v);
}

static void json_u64(struct mh_json *j, const char *key, uint64_t v)
{
	mh_json_key(j, key);
	json_uint(j, v);
}

/* { STAGE: { NAME: n } } of a [MH_HS_COUNT][ncols] table, non-zero only. */
static void json_stage_table(struct mh_json *j, const char *key, const uint64_t *t, int ncols,
                             const char *(*col_name)(int))
{
	mh_json_key(j, key);
	mh_json_obj_begin(j);
	for (int st = 0; st < MH_HS_COUNT; st++) {
		int opened = 0;
		for (int c = 0; c < ncols; c++) {
			uint64_t x = t[st * ncols + c];
			if (x == 0)
				continue;
			if (!opened) {
				mh_json_key(j, mh_hub_stage_name((enum mh_hub_stage)st));
				mh_json_obj_begin(j);
				opened = 1;
			}
			json_u64(j, col_name(c), x);
		}
		if (opened)
			mh_json_obj_end(j);
	}
	mh_json_obj_end(j);
}

static const char *status_col(int c)
{
	return mh_status_name((enum mh_status)c);
}

static const char *fail_col(int c)
{
	return mh_hub_fail_name((enum mh_hub_fail)c);
}

/* A quantile for JSON: the overflow bucket reports the largest finite bound. */
static double json_quantile(const uint64_t *bucket, double q)
{
	double v = mh_stats_render_quantile(bucket, q);
	return isinf(v) ? mh_stats_bucket_le[MH_STATS_BUCKETS - 2] : v;
}

static void json_milter(struct mh_json *j, const struct mh_stats_snapshot *s, size_t i)
{
	const struct mh_stats_child *c = child_of(s, i);
	mh_json_obj_begin(j);
	mh_json_key(j, "name");
	mh_json_str(j, milter_name(s, i));
	mh_json_key(j, "state");
	mh_json_str(j, milter_state(s, i));
	mh_json_key(j, "enabled");
	mh_json_bool(j, s->milter[i].enabled != 0);
	json_u64(j, "restarts", s->milter[i].restarts);
	json_u64(j, "sessions", c->sessions);
	json_stage_table(j, "answers", &c->answers[0][0], MH_ST_COUNT, status_col);
	json_stage_table(j, "fallbacks", &c->fails[0][0], MH_FAIL_COUNT, fail_col);

	mh_json_key(j, "latency");
	mh_json_obj_begin(j);
	for (int st = 0; st < MH_HS_COUNT; st++) {
		uint64_t n = hist_total(c->lat_bucket[st]);
		if (n == 0)
			continue;
		mh_json_key(j, mh_hub_stage_name((enum mh_hub_stage)st));
		mh_json_obj_begin(j);
		json_u64(j, "count", n);
		mh_json_key(j, "sum");
		mh_json_double(j, (double)c->lat_sum_us[st] / 1e6);
		mh_json_key(j, "p50");
		mh_json_double(j, json_quantile(c->lat_bucket[st], 0.5));
		mh_json_key(j, "p99");
		mh_json_double(j, json_quantile(c->lat_bucket[st], 0.99));
		mh_json_key(j, "buckets");
		mh_json_arr_begin(j);
		for (int b = 0; b < MH_STATS_BUCKETS; b++)
			json_uint(j, c->lat_bucket[st][b]);
		mh_json_arr_end(j);
		mh_json_obj_end(j);
	}
	mh_json_obj_end(j);

	mh_json_key(j, "headers");
	mh_json_obj_begin(j);
	for (int k = 0; k < MH_HK_COUNT; k++) {
		int opened = 0;
		for (unsigned r = 0; r < MH_HDR_RESULTS; r++) {
			const char *rn = mh_stats_hdr_result_name((enum mh_hdr_kind)k, r);
			if (rn == NULL || c->headers[k][r] == 0)
				continue;
			if (!opened) {
				mh_json_key(j, mh_stats_hdr_kind_name((enum mh_hdr_kind)k));
				mh_json_obj_begin(j);
				opened = 1;
			}
			json_u64(j, rn, c->headers[k][r]);
		}
		if (opened)
			mh_json_obj_end(j);
	}
	mh_json_obj_end(j);
	mh_json_obj_end(j);
}

void mh_stats_render_json(const struct mh_stats_snapshot *s, struct mh_buf *out)
{
	const struct mh_stats_global *g = &s->totals.g;
	struct mh_json j;
	mh_json_init(&j, out);
	mh_json_obj_begin(&j);
	mh_json_key(&j, "now");
	mh_json_double(&j, s->now);
	mh_json_key(&j, "uptime");
	mh_json_double(&j, s->uptime);
	json_u64(&j, "generation", s->generation);
	json_u64(&j, "workers", s->workers);
	json_u64(&j, "worker_restarts", s->worker_restarts);
	mh_json_key(&j, "sessions");
	mh_json_obj_begin(&j);
	json_u64(&j, "total", g->sessions);
	json_u64(&j, "open", g->sessions_open);
	json_u64(&j, "max", s->sessions_max);
	mh_json_obj_end(&j);
	json_u64(&j, "messages", g->messages);
	json_u64(&j, "recipients", g->recipients);
	mh_json_key(&j, "results");
	mh_json_obj_begin(&j);
	for (int r = 0; r < MH_RES_COUNT; r++)
		json_u64(&j, mh_hub_result_name((enum mh_hub_result)r), g->results[r]);
	mh_json_obj_end(&j);
	json_stage_table(&j, "replies", &g->replies[0][0], MH_ST_COUNT, status_col);
	json_u64(&j, "mta_malformed", g->mta_malformed);
	mh_json_key(&j, "latency_le");
	mh_json_arr_begin(&j);
	for (int b = 0; b < MH_STATS_BUCKETS - 1; b++)
		mh_json_double(&j, mh_stats_bucket_le[b]);
	mh_json_arr_end(&j);
	mh_json_key(&j, "milters");
	mh_json_arr_begin(&j);
	for (size_t i = 0; i < s->nmilters; i++)
		json_milter(&j, s, i);
	mh_json_arr_end(&j);
	mh_json_obj_end(&j);
}

/* ----------------------------------------------------------------- table */

enum {
	COL_NAME,
	COL_STATE,
	COL_SESSIONS,
	COL_ACCEPT,
	COL_REJECT,
	COL_TEMPFAIL,
	COL_DISCARD,
	COL_FALLBACKS,
	COL_TIMEOUTS,
	COL_P50,
	COL_P99,
	COL_HEADERS, /* last: not padded */
	NCOLS
};
static const char *const col_title[NCOLS] = {
    "MILTER",  "STATE",    "SESSIONS", "ACCEPT", "REJECT", "TEMPFAIL",
    "DISCARD", "FALLBACK", "TIMEOUT",  "P50",    "P99",    "HEADERS",
};

static char *xprintf_u64(uint64_t v)
{
	char tmp[24];
	snprintf(tmp, sizeof(tmp), "%" PRIu64, v);
	return mh_xstrdup(tmp);
}

/* "-" (none), "2.5ms", "1.5s", ">30s" (overflow). */
static char *fmt_latency(double v)
{
	char num[48], tmp[64];
	if (isnan(v))
		return mh_xstrdup("-");
	if (isinf(v)) {
		fmt_double(num, sizeof(num), mh_stats_bucket_le[MH_STATS_BUCKETS - 2]);
		snprintf(tmp, sizeof(tmp), ">%ss", num);
	} else if (v < 1) {
		fmt_double(num, sizeof(num), v * 1000);
		snprintf(tmp, sizeof(tmp), "%sms", num);
	} else {
		fmt_double(num, sizeof(num), v);
		snprintf(tmp, sizeof(tmp), "%ss", num);
	}
	return mh_xstrdup(tmp);
}

/* "spam:yes=3,no=10 spf:pass=5"; "-" when nothing was seen. */
static char *fmt_headers(const struct mh_stats_child *c)
{
	struct mh_buf b = MH_BUF_INIT;
	for (int k = 0; k < MH_HK_COUNT; k++) {
		int opened = 0;
		for (unsigned r = 0; r < MH_HDR_RESULTS; r++) {
			const char *rn = mh_stats_hdr_result_name((enum mh_hdr_kind)k, r);
			if (rn == NULL || c->headers[k][r] == 0)
				continue;
			if (!opened)
				mh_buf_printf(&b, "%s%s:", mh_buf_size(&b) ? " " : "",
				              mh_stats_hdr_kind_name((enum mh_hdr_kind)k));
			mh_buf_printf(&b, "%s%s=%" PRIu64, opened ? "," : "", rn, c->headers[k][r]);
			opened = 1;
		}
	}
	char *s = mh_xstrdup(mh_buf_size(&b) ? (const char *)mh_buf_head(&b) : "-");
	mh_buf_free(&b);
	return s;
}

static void table_row(char **row, const struct mh_stats_snapshot *s, size_t i)
{
	const struct mh_stats_child *c = child_of(s, i);
	uint64_t ans[MH_ST_COUNT] = {0}, fallbacks = 0, timeouts = 0;
	for (int st = 0; st < MH_HS_COUNT; st++) {
		for (int v = 0; v < MH_ST_COUNT; v++)
			ans[v] += c->answers[st][v];
		for (int f = 0; f < MH_FAIL_COUNT; f++)
			fallbacks += c->fails[st][f];
		timeouts += c->fails[st][MH_FAIL_TIMEOUT];
	}
	/* Latency at end-of-message, where the verdict usually costs; else over all stages. */
	uint64_t lat[MH_STATS_BUCKETS] = {0};
	if (hist_total(c->lat_bucket[MH_HS_EOM]) > 0)
		memcpy(lat, c->lat_bucket[MH_HS_EOM], sizeof(lat));
	else
		for (int st = 0; st < MH_HS_COUNT; st++)
			for (int b = 0; b < MH_STATS_BUCKETS; b++)
				lat[b] += c->lat_bucket[st][b];

	row[COL_NAME] = mh_xstrdup(milter_name(s, i));
	char state[64];
	snprintf(state, sizeof(state), "%s%s", milter_state(s, i),
	         s->milter[i].enabled ? "" : ",disabled");
	row[COL_STATE] = mh_xstrdup(state);
	row[COL_SESSIONS] = xprintf_u64(c->sessions);
	row[COL_ACCEPT] = xprintf_u64(ans[MH_ST_ACCEPT]);
	row[COL_REJECT] = xprintf_u64(ans[MH_ST_REJECT]);
	row[COL_TEMPFAIL] = xprintf_u64(ans[MH_ST_TEMPFAIL]);
	row[COL_DISCARD] = xprintf_u64(ans[MH_ST_DISCARD]);
	row[COL_FALLBACKS] = xprintf_u64(fallbacks);
	row[COL_TIMEOUTS] = xprintf_u64(timeouts);
	row[COL_P50] = fmt_latency(mh_stats_render_quantile(lat, 0.5));
	row[COL_P99] = fmt_latency(mh_stats_render_quantile(lat, 0.99));
	row[COL_HEADERS] = fmt_headers(c);
}

static void fmt_uptime(char *tmp, size_t n, double up)
{
	uint64_t t = up > 0 ? (uint64_t)up : 0;
	uint64_t d = t / 86400, h = t / 3600 % 24, m = t / 60 % 60, sec = t % 60;
	if (d > 0)
		snprintf(tmp, n, "%" PRIu64 "d %02" PRIu64 ":%02" PRIu64 ":%02" PRIu64, d, h, m,
		         sec);
	else
		snprintf(tmp, n, "%02" PRIu64 ":%02" PRIu64 ":%02" PRIu64, h, m, sec);
}

void mh_stats_render_table(const struct mh_stats_snapshot *s, struct mh_buf *out)
{
	const struct mh_stats_global *g = &s->totals.g;
	char up[48];
	fmt_uptime(up, sizeof(up), s->uptime);
	mh_buf_printf(out, "up %s, generation %" PRIu32 ", %u worker%s (%" PRIu64 " restarted)\n",
	              up, s->generation, s->workers, s->workers == 1 ? "" : "s",
	              s->worker_restarts);
	mh_buf_printf(out,
	              "sessions    %" PRIu64 " total, %" PRIu64 " open, %" PRIu64 " max\n"
	              "messages    %" PRIu64 ", recipients %" PRIu64 ", MTA malformed %" PRIu64
	              "\nresults    ",
	              g->sessions, g->sessions_open, s->sessions_max, g->messages, g->recipients,
	              g->mta_malformed);
	for (int r = 0; r < MH_RES_COUNT; r++)
		mh_buf_printf(out, " %s %" PRIu64, mh_hub_result_name((enum mh_hub_result)r),
		              g->results[r]);
	mh_buf_append_str(out, "\n");
	if (s->nmilters == 0) {
		mh_buf_append_str(out, "\nno milters configured\n");
		return;
	}

	size_t nrows = s->nmilters + 1;
	char **cell = mh_xcalloc(nrows * NCOLS, sizeof(*cell));
	for (int c = 0; c < NCOLS; c++)
		cell[c] = mh_xstrdup(col_title[c]);
	for (size_t i = 0; i < s->nmilters; i++)
		table_row(&cell[(i + 1) * NCOLS], s, i);
	size_t width[NCOLS] = {0};
	for (size_t r = 0; r < nrows; r++)
		for (int c = 0; c < NCOLS; c++) {
			size_t w = strlen(cell[r * NCOLS + c]);
			if (w > width[c])
				width[c] = w;
		}
	mh_buf_append_str(out, "\n");
	for (size_t r = 0; r < nrows; r++) {
		for (int c = 0; c < NCOLS; c++) {
			const char *v = cell[r * NCOLS + c];
			int left = c == COL_NAME || c == COL_STATE || c == COL_HEADERS;
			if (c == COL_HEADERS)
				mh_buf_printf(out, "%s", v);
			else
				mh_buf_printf(out, left ? "%-*s  " : "%*s  ", (int)width[c], v);
		}
		mh_buf_append_str(out, "\n");
	}
	mh_buf_append_str(out, "(P50/P99: end-of-message latency; all stages for a milter never "
	                       "asked at end-of-message)\n");
	for (size_t k = 0; k < nrows * NCOLS; k++)
		free(cell[k]);
	free(cell);
}
