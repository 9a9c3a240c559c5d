/*
 * NAME
 *	mh_master_stats 3
 * SUMMARY
 *	the master's statistics endpoint: HTTP routes and the history sampler
 * DESCRIPTION
 *	With manager { stats = "inet:9425@127.0.0.1" } the master serves
 *	  /metrics  Prometheus text (mh_stats_render_prometheus)
 *	  /stats    JSON (mh_stats_render_json)
 *	  /         the status page with graphs (mh_stats_page_render)
 *	Each request takes a fresh snapshot (retired totals plus every live
 *	worker's region): reading costs the workers nothing. Every
 *	MH_STATS_SAMPLE_INTERVAL seconds the master samples a snapshot into
 *	the history rings the page draws from (whether or not HTTP is on,
 *	so the page has an hour of history as soon as someone looks).
 *
 *	A spec without a host listens on loopback only (there is no
 *	authentication); name the address to listen elsewhere.
 *
 *	A reload that changes `stats` opens the new listener before closing
 *	the old one; if it cannot be opened, the old one stays and the
 *	reason is logged (the rest of the reload goes on: statistics must
 *	not stand in the way of a configuration change).
 */
#include "daemon/mh_master_int.h"
#include "stats/mh_http.h"
#include "stats/mh_stats_history.h"
#include "stats/mh_stats_page.h"
#include "stats/mh_stats_render.h"
#include "util/mh_buf.h"
#include "util/mh_log.h"

#include <stdlib.h>
#include <string.h>

static void route(struct mh_http_req *r, const char *path, const char *query, void *arg)
{
	struct mh_master *m = arg;
	struct mh_buf b = MH_BUF_INIT;
	const char *type;
	if (strcmp(path, "/metrics") == 0)
		type = "text/plain; version=0.0.4; charset=utf-8";
	else if (strcmp(path, "/stats") == 0)
		type = "application/json";
	else if (strcmp(path, "/") == 0)
		type = "text/html; charset=utf-8";
	else {
		static const char nf[] = "not found: try /, /stats or /metrics\n";
		mh_http_respond(r, 404, "text/plain; charset=utf-8", nf, sizeof(nf) - 1);
		return;
	}
	struct mh_stats_snapshot *s = mh_xmalloc(sizeof(*s)); /* ~360 KiB: not the stack */
	mh_master_snapshot(m, s);
	if (path[1] == 'm')
		mh_stats_render_prometheus(s, &b);
	else if (path[1] == 's')
		mh_stats_render_json(s, &b);
	else
		mh_stats_page_render(m->hist, s, &b);
	free(s);
	mh_http_respond(r, 200, type, b.data, b.len);
	mh_buf_free(&b);
}

static void sample(struct mh_master *m)
{
	struct mh_stats_snapshot *s = mh_xmalloc(sizeof(*s));
	mh_master_snapshot(m, s);
	mh_stats_history_sample(m->hist, s);
	free(s);
}

static void on_sample(struct ev_loop *loop, ev_timer *t, int revents)
{
	sample(t->data);
}

/*
 * Loopback unless told otherwise: "inet:9425" (no host, which for the
 * MTA-facing socket means every address) becomes "inet:9425@127.0.0.1",
 * "inet6:9425" "inet6:9425@::1". The statistics have no authentication.
 */
static void loopback_default(const char *spec, char *out, size_t len)
{
	int v6 = strncmp(spec, "inet6:", 6) == 0;
	if ((v6 || strncmp(spec, "inet:", 5) == 0) && strchr(spec, '@') == NULL &&
	    strspn(spec + (v6 ? 6 : 5), "0123456789") == strlen(spec + (v6 ? 6 : 5)))
		snprintf(out, len, "%s@%s", spec, v6 ? "::1" : "127.0.0.1");
	else
		snprintf(out, len, "%s", spec);
}

int mh_master_stats_open(struct mh_master *m, const char *spec, char *err, size_t errlen)
{
	struct mh_http *h = NULL;
	char where[300];
	if (spec != NULL) {
		loopback_default(spec, where, sizeof(where));
		h = mh_http_new(m->loop, where, route, m, err, errlen);
		if (h == NULL)
			return -1;
		mh_info(0, "statistics endpoint on %s (/, /metrics, /stats)", where);
	}
	if (m->http != NULL)
		mh_http_free(m->http);
	m->http = h;
	free(m->stats_text);
	m->stats_text = spec ? mh_xstrdup(spec) : NULL;
	if (m->hist == NULL) {
		m->hist = mh_stats_history_new();
		ev_timer_init(&m->sample_w, on_sample, MH_STATS_SAMPLE_INTERVAL,
		              MH_STATS_SAMPLE_INTERVAL);
		m->sample_w.data = m;
		ev_timer_start(m->loop, &m->sample_w);
		sample(m);
	}
	return 0;
}

void mh_master_stats_reload(struct mh_master *m, const char *spec)
{
	char err[512];
	if ((spec == NULL && m->stats_text == NULL) ||
	    (spec != NULL && m->stats_text != NULL && strcmp(spec, m->stats_text) == 0))
		return;
	if (mh_master_stats_open(m, spec, err, sizeof(err)) < 0)
		mh_err(0, "reload: statistics endpoint %s: %s; keeping %s", spec, err,
		       m->stats_text ? m->stats_text : "none");
	else
		mh_info(0, "statistics endpoint: %s", spec ? spec : "off");
}

void mh_master_stats_forget(struct mh_master *m)
{
	ev_timer_stop(m->loop, &m->sample_w);
	if (m->http != NULL)
		mh_http_forget(m->http);
	m->http = NULL;
}

void mh_master_stats_close(struct mh_master *m)
{
	if (m->hist != NULL)
		ev_timer_stop(m->loop, &m->sample_w);
	if (m->http != NULL)
		mh_http_free(m->http);
	m->http = NULL;
	mh_stats_history_free(m->hist);
	m->hist = NULL;
	free(m->stats_text);
	m->stats_text = NULL;
}
