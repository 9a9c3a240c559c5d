/*
 * NAME
 *	mh_stats_page 3
 * SUMMARY
 *	the HTML status page with server-side SVG graphs (see mh_stats_page.h)
 * DESCRIPTION
 *	Numbers come straight from the snapshot (so they match /stats);
 *	graphs from the history. A graph is filled into a struct graph
 *	(times, up to GRAPH_SERIES series with a "have" flag per point, so
 *	missing data breaks the line instead of drawing a false zero) and
 *	drawn by draw_graph(): a fixed viewBox, x from the point's end time
 *	relative to the newest point, y scaled to a rounded maximum (1 when
 *	everything is 0: a flat line, no division by zero).
 */
#include "stats/mh_stats_page.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------ HTML text */

static void esc(struct mh_buf *out, const char *s)
{
	if (s == NULL)
		return;
	const char *run = s;
	for (; *s != '\0'; s++) {
		const char *rep = NULL;
		switch (*s) {
		case '&':
			rep = "&amp;";
			break;
		case '<':
			rep = "&lt;";
			break;
		case '>':
			rep = "&gt;";
			break;
		case '"':
			rep = "&quot;";
			break;
		case '\'':
			rep = "&#39;";
			break;
		default:
			continue;
		}
		mh_buf_append(out, run, (size_t)(s - run));
		mh_buf_append_str(out, rep);
		run = s + 1;
	}
	mh_buf_append_str(out, run);
}

/* A tile of the overview: label and one exact number. */
static void tile(struct mh_buf *out, const char *label, const char *stat, uint64_t v)
{
	mh_buf_printf(out, "<div><dt>%s</dt><dd data-stat=\"%s\">%llu</dd></div>", label, stat,
	              (unsigned long long)v);
}

/* Compact axis number: 0.5, 12, 250, 1.2k, 3M. */
static void fmt_axis(char *b, size_t n, double v)
{
	if (v >= 1e6)
		snprintf(b, n, "%.3gM", v / 1e6);
	else if (v >= 1e3)
		snprintf(b, n, "%.3gk", v / 1e3);
	else
		snprintf(b, n, "%.3g", v);
}

static void fmt_duration(char *b, size_t n, double sec)
{
	unsigned long long t = sec > 0 ? (unsigned long long)sec : 0;
	unsigned long long d = t / 86400, hr = t % 86400 / 3600, m = t % 3600 / 60;
	if (d > 0)
		snprintf(b, n, "%llud %lluh %llum", d, hr, m);
	else if (hr > 0)
		snprintf(b, n, "%lluh %llum", hr, m);
	else
		snprintf(b, n, "%llum %llus", m, t % 60);
}

/* ---------------------------------------------------------------- graphs */

#define GRAPH_POINTS MH_STATS_HOUR_POINTS /* >= MH_STATS_DAY_POINTS + 1 */
#define GRAPH_SERIES 5
/* viewBox geometry: plot area [PL, PR] x [PT, PB], tick labels below. */
#define VB_W 360
#define VB_H 140
#define PL 34.0
#define PR 354.0
#define PT 8.0
#define PB 118.0

struct series {
	const char *cls; /* CSS class: colour (and the legend's swatch) */
	double v[GRAPH_POINTS];
	unsigned char have[GRAPH_POINTS];
};

struct graph {
	const char *kind; /* data-graph */
	const char *title; /* <title>, for screen readers and hover */
	enum mh_stats_res res;
	size_t n; /* points */
	double t[GRAPH_POINTS], dt[GRAPH_POINTS];
	unsigned char down[GRAPH_POINTS]; /* not up for (part of) the point */
	size_t nseries;
	struct series s[GRAPH_SERIES];
};

static double span_of(enum mh_stats_res res)
{
	return res == MH_STATS_HOUR ? 3600.0 : 86400.0;
}

/* 1, 2, 2.5 or 5 times a power of ten, at least v (1 for v <= 0). */
static double nice_ceil(double v)
{
	if (!(v > 0) || !isfinite(v))
		return 1;
	double p = pow(10, floor(log10(v)));
	static const double steps[] = {1, 2, 2.5, 5, 10};
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++)
		if (steps[i] * p >= v * (1 - 1e-9))
			return steps[i] * p;
	return 10 * p;
}

static void draw_graph(struct mh_buf *out, const struct graph *g)
{
	double span = span_of(g->res);
	double t_end = g->n > 0 ? g->t[g->n - 1] : 0;
	double w = PR - PL, hgt = PB - PT;
	double ymax = 0;
	for (size_t k = 0; k < g->nseries; k++)
		for (size_t i = 0; i < g->n; i++)
			if (g->s[k].have[i] && g->s[k].v[i] > ymax)
				ymax = g->s[k].v[i];
	ymax = nice_ceil(ymax);

	mh_buf_printf(out,
	              "<svg class=\"graph\" data-graph=\"%s\" viewBox=\"0 0 %d %d\" role=\"img\" "
	              "preserveAspectRatio=\"xMidYMid meet\"><title>",
	              g->kind, VB_W, VB_H);
	esc(out, g->title);
	mh_buf_append_str(out, "</title>");

	/* grid and y labels: 0, half, max */
	char lab[32];
	for (int k = 0; k <= 2; k++) {
		double y = PB - hgt * k / 2.0;
		fmt_axis(lab, sizeof(lab), ymax * k / 2.0);
		mh_buf_printf(
		    out,
		    "<line class=\"grid\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>"
		    "<text class=\"yl\" x=\"%.1f\" y=\"%.1f\">%s</text>",
		    PL, y, PR, y, PL - 3, y + 3.5, lab);
	}
	/* x ticks: every 15 min / 6 h, relative to the newest point */
	double step = g->res == MH_STATS_HOUR ? 900 : 21600;
	for (int k = 0; k <= 4; k++) {
		double x = PR - w * (k * step) / span;
		if (k == 0)
			snprintf(lab, sizeof(lab), "now");
		else if (g->res == MH_STATS_HOUR)
			snprintf(lab, sizeof(lab), "-%dm", (int)(k * step / 60));
		else
			snprintf(lab, sizeof(lab), "-%dh", (int)(k * step / 3600));
		mh_buf_printf(
		    out,
		    "<line class=\"tick\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>"
		    "<text class=\"xl%s\" x=\"%.1f\" y=\"%.1f\">%s</text>",
		    x, PT, x, PB + 3, k == 0 ? " now" : "", k == 0 ? x + 4 : x, PB + 14, lab);
	}
	if (g->n == 0) {
		mh_buf_printf(out,
		              "<text class=\"empty\" x=\"%.1f\" y=\"%.1f\">collecting data"
		              "</text></svg>",
		              (PL + PR) / 2, (PT + PB) / 2);
		return;
	}

	/* where the milter was not up: red marks along the bottom */
	for (size_t i = 0; i < g->n; i++) {
		if (!g->down[i])
			continue;
		double x1 = PR - w * (t_end - g->t[i] + g->dt[i]) / span,
		       x2 = PR - w * (t_end - g->t[i]) / span;
		if (x2 < PL)
			continue;
		if (x1 < PL)
			x1 = PL;
		mh_buf_printf(
		    out, "<rect class=\"down\" x=\"%.1f\" y=\"%.1f\" width=\"%.2f\" height=\"4\"/>",
		    x1, PB - 4, x2 - x1 > 0.6 ? x2 - x1 : 0.6);
	}

	struct mh_buf dots = MH_BUF_INIT; /* circles of the series being drawn */
	for (size_t k = 0; k < g->nseries; k++) {
		const struct series *s = &g->s[k];
		mh_buf_printf(out, "<path class=\"s %s\" d=\"", s->cls);
		int pen = 0; /* 0: the next point starts a new piece */
		long prev_y = 0; /* tenths of a unit, as printed */
		for (size_t i = 0; i < g->n; i++) {
			double x = PR - w * (t_end - g->t[i]) / span;
			if (!s->have[i] || x < PL) {
				pen = 0;
				continue;
			}
			long y = lround((PB - hgt * s->v[i] / ymax) * 10);
			int next = i + 1 < g->n && s->have[i + 1];
			/* inside a flat run: the run's ends draw the same line (a quiet
			 * milter's page stays small) */
			if (pen && next && y == prev_y &&
			    lround((PB - hgt * s->v[i + 1] / ymax) * 10) == y)
				continue;
			/* an isolated point: a zero-length piece (a dot under the round
			 * cap), and a circle below, so a lone point is seen */
			mh_buf_printf(out, "%s%.1f %ld.%ld%s", pen ? "L" : "M", x, y / 10, y % 10,
			              !pen && !next ? "h0" : "");
			if (!pen && !next)
				mh_buf_printf(
				    &dots,
				    "<circle class=\"d %s\" cx=\"%.1f\" cy=\"%ld.%ld\" r=\"2\"/>",
				    s->cls, x, y / 10, y % 10);
			pen = 1;
			prev_y = y;
		}
		mh_buf_append_str(out, "\"/>");
		if (mh_buf_size(&dots) > 0)
			mh_buf_append(out, mh_buf_head(&dots), mh_buf_size(&dots));
		mh_buf_reset(&dots);
	}
	mh_buf_free(&dots);
	mh_buf_append_str(out, "</svg>");
}

static void legend(struct mh_buf *out, const char *const *items)
{
	mh_buf_append_str(out, "<ul class=\"legend\">");
	for (; *items != NULL; items += 2)
		mh_buf_printf(out, "<li><i class=\"sw %s\"></i>%s</li>", items[0], items[1]);
	mh_buf_append_str(out, "</ul>");
}

static double seconds_of(double dt, uint32_t n)
{
	return dt > 0 ? dt : MH_STATS_SAMPLE_INTERVAL * (n > 0 ? n : 1);
}

static void set(struct series *s, size_t i, double v)
{
	s->v[i] = v;
	s->have[i] = 1;
}

static void fill_sessions(struct graph *g, const struct mh_stats_history *h)
{
	g->nseries = 3;
	g->s[0].cls = "sessions";
	g->s[1].cls = "messages";
	g->s[2].cls = "open";
	size_t n = h != NULL ? mh_stats_history_len(h, g->res) : 0;
	for (size_t i = 0; i < n && i < GRAPH_POINTS; i++) {
		struct mh_stats_gpoint p;
		if (mh_stats_history_global(h, g->res, i, &p) != 0)
			break;
		double per_min = 60.0 / seconds_of(p.dt, p.n);
		g->t[i] = p.t;
		g->dt[i] = seconds_of(p.dt, p.n);
		set(&g->s[0], i, p.sessions * per_min);
		set(&g->s[1], i, p.messages * per_min);
		set(&g->s[2], i, p.sessions_open);
		g->n = i + 1;
	}
}

/* Outcome (latency = 0) or latency (1) graph of ring m. */
static void fill_milter(struct graph *g, const struct mh_stats_history *h, int m, int latency)
{
	static const char *const outcome_cls[] = {"accept", "reject", "tempfail", "discard",
	                                          "fallback"};
	g->nseries = latency ? 2 : 5;
	for (size_t k = 0; k < g->nseries; k++)
		g->s[k].cls = latency ? (k == 0 ? "mean" : "p95") : outcome_cls[k];
	size_t n = h != NULL ? mh_stats_history_len(h, g->res) : 0;
	for (size_t i = 0; i < n && i < GRAPH_POINTS; i++) {
		struct mh_stats_gpoint gp;
		if (mh_stats_history_global(h, g->res, i, &gp) != 0)
			break;
		g->t[i] = gp.t;
		g->dt[i] = seconds_of(gp.dt, gp.n);
		g->n = i + 1;
		struct mh_stats_mpoint p;
		if (m < 0 || mh_stats_history_milter_point(h, m, g->res, i, &p) != 0 || p.n == 0)
			continue; /* not configured then: no data, a gap */
		if (latency) {
			if (p.lat_count == 0)
				continue;
			set(&g->s[0], i, (double)p.lat_sum_us / p.lat_count / 1000.0);
			set(&g->s[1], i, p.p95_us / 1000.0);
			continue;
		}
		double per_min = 60.0 / g->dt[i];
		set(&g->s[0], i, p.accept * per_min);
		set(&g->s[1], i, p.reject * per_min);
		set(&g->s[2], i, p.tempfail * per_min);
		set(&g->s[3], i, p.discard * per_min);
		set(&g->s[4], i, p.fallbacks * per_min);
		g->down[i] = p.up < p.n;
	}
}

/* Two figures (hour, day) side by side. g is scratch space (large: not on the stack twice). */
static void graph_pair(struct mh_buf *out, struct graph *g, const char *base, const char *what,
                       const struct mh_stats_history *h, int m, int kind)
{
	static const char *const cap[] = {"last hour (10 s points)", "last day (5 min points)"};
	char name[48], title[160];
	mh_buf_append_str(out, "<div class=\"graphs\">");
	for (int r = 0; r < 2; r++) {
		memset(g, 0, sizeof(*g));
		g->res = r == 0 ? MH_STATS_HOUR : MH_STATS_DAY;
		snprintf(name, sizeof(name), "%s-%s", base, r == 0 ? "hour" : "day");
		snprintf(title, sizeof(title), "%s, %s", what, cap[r]);
		g->kind = name;
		g->title = title;
		if (kind == 0)
			fill_sessions(g, h);
		else
			fill_milter(g, h, m, kind == 2);
		mh_buf_printf(out, "<figure><figcaption>%s</figcaption>", cap[r]);
		draw_graph(out, g);
		mh_buf_append_str(out, "</figure>");
	}
	mh_buf_append_str(out, "</div>");
}

/* ------------------------------------------------------------ the page */

static const char css[] =
    ":root{--bg:#f3f4f6;--card:#fff;--fg:#1f2933;--mute:#5f6b7a;--grid:#dde1e6;"
    "--accept:#2f9e44;--reject:#e03131;--tempfail:#e8890c;--discard:#7048e8;"
    "--fallback:#495057;--mean:#1c7ed6;--p95:#c2255c;--open:#868e96;--sessions:#1c7ed6;"
    "--messages:#2f9e44}"
    "@media (prefers-color-scheme:dark){:root{--bg:#15181c;--card:#1f2429;--fg:#e4e7eb;"
    "--mute:#9aa5b1;--grid:#363e47;--fallback:#adb5bd}}"
    "*{box-sizing:border-box}"
    "body{margin:0;background:var(--bg);color:var(--fg);"
    "font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif}"
    "main{max-width:1180px;margin:0 auto;padding:10px}"
    "h1{font-size:1.35em;margin:.3em 0 0}h2{font-size:1.15em;margin:0 0 .4em}"
    "h3{font-size:.95em;margin:.8em 0 .2em}"
    ".sub,figcaption,footer{color:var(--mute);font-size:.85em}"
    ".card,.milter{background:var(--card);border-radius:8px;padding:12px 14px;margin:12px 0;"
    "box-shadow:0 1px 2px rgba(0,0,0,.1)}"
    "dl.tiles{display:grid;grid-template-columns:repeat(auto-fill,minmax(105px,1fr));gap:8px;"
    "margin:0}"
    ".tiles div{background:var(--bg);border-radius:6px;padding:6px 10px}"
    ".tiles dt{color:var(--mute);font-size:.8em}.tiles dd{margin:0;font-size:1.25em;"
    "font-variant-numeric:tabular-nums}"
    ".graphs{display:grid;grid-template-columns:1fr;gap:10px}"
    "@media (min-width:760px){.graphs{grid-template-columns:1fr 1fr}}"
    "figure{margin:0}svg.graph{display:block;width:100%;height:auto}"
    "svg .grid{stroke:var(--grid);stroke-width:1}svg .tick{stroke:var(--grid);"
    "stroke-width:.5}"
    "svg text{fill:var(--mute);font-size:10px}svg .yl{text-anchor:end}"
    "svg .xl,svg .empty{text-anchor:middle}svg .xl.now{text-anchor:end}"
    "svg .s{fill:none;stroke-width:1.6;stroke-linejoin:round;stroke-linecap:round}"
    "svg .down{fill:var(--reject);opacity:.75}"
    ".s.fallback{stroke-dasharray:4 2}.sw.down{background:var(--reject);height:6px}"
    ".legend{list-style:none;padding:0;margin:4px 0 0;display:flex;flex-wrap:wrap;"
    "gap:2px 14px;font-size:.85em}"
    ".sw{display:inline-block;width:14px;height:3px;margin-right:5px;vertical-align:middle}"
    ".badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:.75em;"
    "font-weight:normal;vertical-align:middle;color:#fff;background:var(--fallback)}"
    ".badge.up{background:var(--accept)}.badge.down{background:var(--reject)}"
    ".badge.starting{background:var(--tempfail)}.badge.unsupervised{background:var(--mean)}"
    ".badge.off{background:var(--open)}"
    "table{border-collapse:collapse;font-variant-numeric:tabular-nums;font-size:.92em}"
    "th,td{padding:2px 8px 2px 0;text-align:left;vertical-align:top}td.n,th.n{text-align:right}"
    ".wide{overflow-x:auto}a{color:inherit}";

/* Stroke and swatch colours per series class. */
static void css_series(struct mh_buf *out)
{
	static const char *const cls[] = {"accept", "reject", "tempfail", "discard",  "fallback",
	                                  "mean",   "p95",    "open",     "sessions", "messages"};
	for (size_t i = 0; i < sizeof(cls) / sizeof(cls[0]); i++)
		mh_buf_printf(
		    out, ".s.%s{stroke:var(--%s)}.d.%s{fill:var(--%s)}.sw.%s{background:var(--%s)}",
		    cls[i], cls[i], cls[i], cls[i], cls[i], cls[i]);
}

static const char *state_class(const char *state)
{
	static const char *const known[] = {"up", "down", "starting", "unsupervised"};
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (state != NULL && strcmp(state, known[i]) == 0)
			return known[i];
	return "unknown";
}

/* Per-milter sums over stages, as in mh_stats_history.h. */
struct milter_totals {
	uint64_t accept, reject, tempfail, discard, fallbacks, timeouts, lat_count, lat_sum_us;
};

static void milter_totals(const struct mh_stats_child *c, struct milter_totals *t)
{
	memset(t, 0, sizeof(*t));
	for (size_t st = 0; st < MH_HS_COUNT; st++) {
		t->accept += c->answers[st][MH_ST_ACCEPT];
		t->reject += c->answers[st][MH_ST_REJECT];
		t->tempfail += c->answers[st][MH_ST_TEMPFAIL];
		t->discard += c->answers[st][MH_ST_DISCARD];
		for (size_t f = 0; f < MH_FAIL_COUNT; f++)
			t->fallbacks += c->fails[st][f];
		t->timeouts += c->fails[st][MH_FAIL_TIMEOUT];
		t->lat_count += c->lat_count[st];
		t->lat_sum_us += c->lat_sum_us[st];
	}
}

static const struct mh_stats_child *child_of(const struct mh_stats_snapshot *s,
                                             const struct mh_stats_milter *m)
{
	static const struct mh_stats_child none;
	return m->slot >= 0 && m->slot < MH_STATS_NAMES ? &s->totals.child[m->slot] : &none;
}

/* Rows "kind | result n, result n" of non-zero header results; returns rows written. */
static int header_rows(struct mh_buf *out, const uint64_t hdr[MH_HK_COUNT][MH_HDR_RESULTS],
                       int stats)
{
	int rows = 0;
	for (int k = 0; k < MH_HK_COUNT; k++) {
		int any = 0;
		for (unsigned r = 0; r < MH_HDR_RESULTS; r++) {
			const char *rn = mh_stats_hdr_result_name((enum mh_hdr_kind)k, r);
			if (rn == NULL || hdr[k][r] == 0)
				continue;
			if (!any)
				mh_buf_printf(out, "<tr><th>%s</th><td>",
				              mh_stats_hdr_kind_name((enum mh_hdr_kind)k));
			if (stats)
				mh_buf_printf(out, "%s%s <span data-stat=\"hdr_%s_%s\">%llu</span>",
				              any ? ", " : "", rn,
				              mh_stats_hdr_kind_name((enum mh_hdr_kind)k), rn,
				              (unsigned long long)hdr[k][r]);
			else
				mh_buf_printf(out, "%s%s %llu", any ? ", " : "", rn,
				              (unsigned long long)hdr[k][r]);
			any = 1;
		}
		if (any) {
			mh_buf_append_str(out, "</td></tr>");
			rows++;
		}
	}
	return rows;
}

static void overview(struct mh_buf *out, const struct mh_stats_snapshot *s)
{
	const struct mh_stats_global *g = &s->totals.g;
	char up[48];
	fmt_duration(up, sizeof(up), s->uptime);
	mh_buf_printf(out,
	              "<section class=\"card\" id=\"overview\"><dl class=\"tiles\">"
	              "<div><dt>Uptime</dt><dd title=\"%.0f s\">%s</dd></div>",
	              s->uptime, up);
	tile(out, "Generation", "generation", s->generation);
	tile(out, "Workers", "workers", s->workers);
	tile(out, "Worker restarts", "worker_restarts", s->worker_restarts);
	tile(out, "Sessions open", "sessions_open", g->sessions_open);
	tile(out, "Most open", "sessions_max", s->sessions_max);
	tile(out, "Sessions", "sessions_total", g->sessions);
	tile(out, "Messages", "messages", g->messages);
	tile(out, "Recipients", "recipients", g->recipients);
	mh_buf_append_str(out, "</dl>");

	/* one line per milter: a postmaster's first question is "is anything down?" */
	mh_buf_append_str(out, "<h3>Milters</h3><div class=\"wide\"><table><tr><th>milter</th>"
	                       "<th>state</th><th class=\"n\">sessions</th>"
	                       "<th class=\"n\">reject</th><th class=\"n\">fallbacks</th></tr>");
	for (size_t i = 0; i < s->nmilters && i < MH_HUB_CHILDREN_MAX; i++) {
		const struct mh_stats_milter *m = &s->milter[i];
		struct milter_totals t;
		milter_totals(child_of(s, m), &t);
		mh_buf_append_str(out, "<tr><td><a href=\"#milter-");
		esc(out, m->name);
		mh_buf_append_str(out, "\">");
		esc(out, m->name);
		mh_buf_printf(out, "</a></td><td><span class=\"badge %s\">", state_class(m->state));
		esc(out, m->state != NULL ? m->state : "unknown");
		mh_buf_printf(out,
		              "</span>%s</td><td class=\"n\">%llu</td><td class=\"n\">%llu</td>"
		              "<td class=\"n\">%llu</td></tr>",
		              m->enabled ? "" : " <span class=\"badge off\">disabled</span>",
		              (unsigned long long)child_of(s, m)->sessions,
		              (unsigned long long)t.reject, (unsigned long long)t.fallbacks);
	}
	if (s->nmilters == 0)
		mh_buf_append_str(out, "<tr><td colspan=\"5\">none configured</td></tr>");
	mh_buf_append_str(out, "</table></div></section>");
}

static void results(struct mh_buf *out, const struct mh_stats_snapshot *s)
{
	mh_buf_append_str(out, "<section class=\"card\" id=\"results\"><h2>Results</h2>"
	                       "<div class=\"graphs\"><div><h3>Messages</h3><table>");
	for (int r = 0; r < MH_RES_COUNT; r++)
		mh_buf_printf(
		    out, "<tr><th>%s</th><td class=\"n\" data-stat=\"result_%s\">%llu</td></tr>",
		    mh_hub_result_name((enum mh_hub_result)r),
		    mh_hub_result_name((enum mh_hub_result)r),
		    (unsigned long long)s->totals.g.results[r]);
	mh_buf_append_str(out, "</table></div><div><h3>Header results</h3><table>");
	/* summed over the configured milters (a removed one's are no longer shown) */
	uint64_t hdr[MH_HK_COUNT][MH_HDR_RESULTS] = {{0}};
	for (size_t i = 0; i < s->nmilters && i < MH_HUB_CHILDREN_MAX; i++) {
		const struct mh_stats_child *c = child_of(s, &s->milter[i]);
		for (int k = 0; k < MH_HK_COUNT; k++)
			for (int r = 0; r < MH_HDR_RESULTS; r++)
				hdr[k][r] += c->headers[k][r];
	}
	if (header_rows(out, (const uint64_t(*)[MH_HDR_RESULTS])hdr, 0) == 0)
		mh_buf_append_str(out, "<tr><td>none reported</td></tr>");
	mh_buf_append_str(out, "</table></div></div></section>");
}

static void milter_card(struct mh_buf *out, struct graph *g, const struct mh_stats_history *h,
                        const struct mh_stats_snapshot *s, const struct mh_stats_milter *m)
{
	const struct mh_stats_child *c = child_of(s, m);
	struct milter_totals t;
	milter_totals(c, &t);
	const char *state = m->state != NULL ? m->state : "unknown";

	mh_buf_append_str(out, "<section class=\"milter\" id=\"milter-");
	esc(out, m->name);
	mh_buf_append_str(out, "\" data-milter=\"");
	esc(out, m->name);
	mh_buf_append_str(out, "\"><h2>");
	esc(out, m->name);
	mh_buf_printf(out, " <span class=\"badge %s\" data-state=\"", state_class(state));
	esc(out, state);
	mh_buf_printf(out, "\" data-enabled=\"%d\">", m->enabled ? 1 : 0);
	esc(out, state);
	mh_buf_printf(out, "</span>%s</h2>",
	              m->enabled ? "" : " <span class=\"badge off\">disabled</span>");

	mh_buf_append_str(out, "<dl class=\"tiles\">");
	tile(out, "Sessions", "sessions", c->sessions);
	tile(out, "Accept", "accept", t.accept);
	tile(out, "Reject", "reject", t.reject);
	tile(out, "Tempfail", "tempfail", t.tempfail);
	tile(out, "Discard", "discard", t.discard);
	tile(out, "Fallbacks", "fallbacks", t.fallbacks);
	tile(out, "Timeouts", "timeouts", t.timeouts);
	tile(out, "Restarts", "restarts", m->restarts);
	tile(out, "Replies timed", "answers_timed", t.lat_count);
	if (t.lat_count > 0)
		mh_buf_printf(out, "<div><dt>Mean latency</dt><dd>%.1f ms</dd></div>",
		              (double)t.lat_sum_us / (double)t.lat_count / 1000.0);
	mh_buf_append_str(out, "</dl>");

	int ring = h != NULL && m->name != NULL ? mh_stats_history_milter(h, m->name) : -1;
	mh_buf_append_str(out, "<h3>Outcomes per minute</h3>");
	graph_pair(out, g, "outcomes", "Outcomes per minute", h, ring, 1);
	legend(out, (const char *const[]){"accept", "accept", "reject", "reject", "tempfail",
	                                  "tempfail", "discard", "discard", "fallback", "fallback",
	                                  "down", "red mark: not up", NULL});
	mh_buf_append_str(out, "<h3>Latency per reply, ms (all stages)</h3>");
	graph_pair(out, g, "latency", "Latency per reply in ms", h, ring, 2);
	legend(out, (const char *const[]){"mean", "mean", "p95", "p95 (estimate)", NULL});

	struct mh_buf rows = MH_BUF_INIT;
	if (header_rows(&rows, (const uint64_t(*)[MH_HDR_RESULTS])c->headers, 1) > 0) {
		mh_buf_append_str(out, "<h3>Header results</h3><table>");
		mh_buf_append(out, mh_buf_head(&rows), mh_buf_size(&rows));
		mh_buf_append_str(out, "</table>");
	}
	mh_buf_free(&rows);
	mh_buf_append_str(out, "</section>");
}

void mh_stats_page_render(const struct mh_stats_history *h, const struct mh_stats_snapshot *s,
                          struct mh_buf *out)
{
	struct graph *g = mh_xmalloc(sizeof(*g)); /* ~20 KiB of scratch, reused per graph */
	char when[64] = "";
	time_t now = (time_t)s->now;
	struct tm tm;
	if (gmtime_r(&now, &tm) != NULL)
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);

	mh_buf_append_str(out, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
	                       "<meta name=\"viewport\" content=\"width=device-width, "
	                       "initial-scale=1\"><meta http-equiv=\"refresh\" content=\"30\">"
	                       "<title>milterhub status</title><style>");
	mh_buf_append_str(out, css);
	css_series(out);
	mh_buf_printf(out,
	              "</style></head><body><main><header><h1>milterhub</h1>"
	              "<p class=\"sub\">status at %s; refreshes every 30 s</p></header>",
	              when);
	overview(out, s);

	mh_buf_append_str(out,
	                  "<section class=\"card\" id=\"sessions\"><h2>Sessions over time</h2>");
	graph_pair(out, g, "sessions", "Sessions", h, -1, 0);
	legend(out, (const char *const[]){"sessions", "sessions started / min", "messages",
	                                  "messages / min", "open", "sessions open", NULL});
	mh_buf_append_str(out, "</section>");

	results(out, s);
	for (size_t i = 0; i < s->nmilters && i < MH_HUB_CHILDREN_MAX; i++)
		milter_card(out, g, h, s, &s->milter[i]);
	mh_buf_printf(out,
	              "<footer><p>Graph times are relative to the newest sample; rates are per "
	              "minute. Generation %u, snapshot %s.</p></footer></main></body></html>\n",
	              (unsigned)s->generation, when);
	free(g);
}
