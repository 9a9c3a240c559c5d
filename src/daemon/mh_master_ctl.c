/*
 * NAME
 *	mh_master_ctl 3
 * SUMMARY
 *	what milterhubctl can ask the master: status, children, enable,
 *	disable, reload, stop
 * DESCRIPTION
 *	The control socket (mh_control) delivers one request line split into
 *	words; this module answers from the master's state and the board.
 *	status and children print a table, or JSON with --json (the same
 *	facts; names documented in milterhubctl(8)).
 *
 *	enable NAME / disable NAME set a runtime switch in the board that
 *	every worker reads at the start of each session, so it takes effect
 *	for the next session everywhere at once. The switch is keyed by the
 *	milter's name and survives a reload: an emergency switch must not be
 *	undone by a reload made for another reason. It is lifted by the
 *	opposite command or a restart of the daemon; status shows it.
 * DIAGNOSTICS
 *	"error" answers: unknown command or milter (with the known names), a
 *	refused reload (its reason), a stop already under way.
 */
#include "daemon/mh_master_int.h"
#include "stats/mh_stats_render.h"
#include "util/mh_buf.h"
#include "util/mh_json.h"
#include "util/mh_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define VERSION "0.1.0"

struct child_view {
	const struct mh_child_conf *cc;
	int slot;
	int8_t override;
	int on; /* the switch as the workers see it */
	int supervised;
	struct mh_sup_info info;
	uint64_t used, failed;
};

static void view_child(const struct mh_master *m, const struct mh_stats_snapshot *sum, size_t i,
                       struct child_view *v)
{
	const struct mh_gen *g = m->gen;
	memset(v, 0, sizeof(*v));
	v->cc = &g->conf.hub.children[i];
	v->slot = g->child_slot[i];
	v->override = MH_BOARD_GET(m->board->child[v->slot].override);
	v->on = v->override > 0 || (v->override == 0 && v->cc->enabled);
	v->supervised = m->sv != NULL && mh_supervise_info(m->sv, v->cc->name, &v->info);
	const struct mh_stats_child *c = &sum->totals.child[v->slot];
	v->used = c->sessions;
	for (int st = 0; st < MH_HS_COUNT; st++)
		for (int f = 0; f < MH_FAIL_COUNT; f++)
			v->failed += c->fails[st][f];
}

static const char *switch_text(const struct child_view *v)
{
	if (v->override > 0)
		return "on (milterhubctl)";
	if (v->override < 0)
		return "off (milterhubctl)";
	return v->cc->enabled ? "on" : "off (config)";
}

static const char *state_text(const struct child_view *v)
{
	return v->supervised ? mh_sup_state_name(v->info.state) : "-";
}

static void format_duration(char *buf, size_t len, double secs)
{
	unsigned long s = secs > 0 ? (unsigned long)secs : 0;
	if (s >= 86400)
		snprintf(buf, len, "%lud %02luh %02lum", s / 86400, s / 3600 % 24, s / 60 % 60);
	else if (s >= 3600)
		snprintf(buf, len, "%luh %02lum %02lus", s / 3600, s / 60 % 60, s % 60);
	else if (s >= 60)
		snprintf(buf, len, "%lum %02lus", s / 60, s % 60);
	else
		snprintf(buf, len, "%lus", s);
}

/* ------------------------------------------------------------------- text */

static void children_text(const struct mh_master *m, const struct mh_stats_snapshot *sum,
                          struct mh_buf *b)
{
	const struct mh_config *c = &m->gen->conf;
	if (c->hub.nchildren == 0) {
		mh_buf_printf(b, "no milters configured\n");
		return;
	}
	mh_buf_printf(b, "%-20s %-9s %-19s %10s %10s  %s\n", "MILTER", "STATE", "SWITCH",
	              "SESSIONS", "FALLBACKS", "PROCESS");
	for (size_t i = 0; i < c->hub.nchildren; i++) {
		struct child_view v;
		view_child(m, sum, i, &v);
		char proc[160] = "-";
		if (v.supervised)
			snprintf(proc, sizeof(proc), "pid %ld, %u restart%s%s%s", (long)v.info.pid,
			         v.info.restarts, v.info.restarts == 1 ? "" : "s",
			         v.info.last_exit[0] ? ", last: " : "", v.info.last_exit);
		mh_buf_printf(b, "%-20s %-9s %-19s %10llu %10llu  %s\n", v.cc->name, state_text(&v),
		              switch_text(&v), (unsigned long long)v.used,
		              (unsigned long long)v.failed, proc);
	}
}

static void status_text(const struct mh_master *m, const struct mh_stats_snapshot *sum,
                        struct mh_buf *b)
{
	const struct mh_gen *g = m->gen;
	char up[64], when[64];
	time_t loaded = (time_t)g->loaded;
	struct tm tm;
	gmtime_r(&loaded, &tm);
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
	format_duration(up, sizeof(up), ev_time() - m->started);

	mh_buf_printf(b, "milterhub %s: %s, pid %ld, up %s\n", VERSION,
	              m->stopping ? "stopping" : "running", (long)getpid(), up);
	mh_buf_printf(b, "configuration: %s (generation %u, loaded %s)\n",
	              g->conf.path ? g->conf.path : "built-in defaults", g->no, when);
	mh_buf_printf(b, "listening on: %s\ncontrol: %s\n", m->lst.text ? m->lst.text : "(closed)",
	              m->ctl_text ? m->ctl_text : "-");
	mh_buf_printf(b, "sessions: %llu open, %llu since start\n",
	              (unsigned long long)sum->totals.g.sessions_open,
	              (unsigned long long)sum->totals.g.sessions);
	unsigned cur = 0, older = 0;
	for (int i = 0; i < MH_BOARD_WORKERS; i++)
		if (m->w[i].pid > 0 && m->w[i].gen == g && !m->w[i].retiring)
			cur++;
		else if (m->w[i].pid > 0)
			older++;
	mh_buf_printf(b, "workers: %u of %zu running (generation %u), %u finishing; %u restarted\n",
	              cur, g->conf.workers, g->no, older, m->worker_restarts);
	mh_buf_printf(b, "  %-8s %-4s %-10s %8s %10s  %s\n", "PID", "GEN", "STATE", "OPEN",
	              "SESSIONS", "UP");
	for (int i = 0; i < MH_BOARD_WORKERS; i++) {
		const struct mh_wproc *w = &m->w[i];
		if (w->pid <= 0)
			continue;
		const struct mh_board_worker *bw = &m->board->worker[i];
		format_duration(up, sizeof(up), ev_time() - w->started);
		mh_buf_printf(b, "  %-8ld %-4u %-10s %8llu %10llu  %s\n", (long)w->pid, w->gen->no,
		              w->retiring ? "finishing" : "running",
		              (unsigned long long)MH_BOARD_GET(bw->c.sessions_now),
		              (unsigned long long)MH_BOARD_GET(bw->c.sessions_total), up);
	}
	mh_buf_printf(b, "milters (chain order):\n");
	children_text(m, sum, b);
}

/* ------------------------------------------------------------------- JSON */

static void children_json(const struct mh_master *m, const struct mh_stats_snapshot *sum,
                          struct mh_json *j)
{
	const struct mh_config *c = &m->gen->conf;
	mh_json_arr_begin(j);
	for (size_t i = 0; i < c->hub.nchildren; i++) {
		struct child_view v;
		view_child(m, sum, i, &v);
		mh_json_obj_begin(j);
		mh_json_key(j, "name");
		mh_json_str(j, v.cc->name);
		mh_json_key(j, "socket");
		mh_json_str(j, v.cc->sock.text);
		mh_json_key(j, "enabled");
		mh_json_bool(j, v.on);
		mh_json_key(j, "override");
		mh_json_str(j, v.override > 0 ? "enabled" : v.override < 0 ? "disabled" : "none");
		mh_json_key(j, "state");
		mh_json_str(j, v.supervised ? mh_sup_state_name(v.info.state) : "unsupervised");
		mh_json_key(j, "sessions");
		mh_json_int(j, (int64_t)v.used);
		mh_json_key(j, "fallbacks");
		mh_json_int(j, (int64_t)v.failed);
		if (v.supervised) {
			mh_json_key(j, "pid");
			mh_json_int(j, v.info.pid);
			mh_json_key(j, "restarts");
			mh_json_int(j, v.info.restarts);
			mh_json_key(j, "last_exit");
			mh_json_str(j, v.info.last_exit);
		}
		mh_json_obj_end(j);
	}
	mh_json_arr_end(j);
}

static void status_json(const struct mh_master *m, const struct mh_stats_snapshot *sum,
                        struct mh_json *j)
{
	const struct mh_gen *g = m->gen;
	mh_json_obj_begin(j);
	mh_json_key(j, "version");
	mh_json_str(j, VERSION);
	mh_json_key(j, "state");
	mh_json_str(j, m->stopping ? "stopping" : "running");
	mh_json_key(j, "pid");
	mh_json_int(j, getpid());
	mh_json_key(j, "uptime");
	mh_json_double(j, ev_time() - m->started);
	mh_json_key(j, "config");
	mh_json_str(j, g->conf.path);
	mh_json_key(j, "generation");
	mh_json_int(j, g->no);
	mh_json_key(j, "listen");
	mh_json_str(j, m->lst.text);
	mh_json_key(j, "control");
	mh_json_str(j, m->ctl_text);
	mh_json_key(j, "sessions_open");
	mh_json_int(j, (int64_t)sum->totals.g.sessions_open);
	mh_json_key(j, "sessions_total");
	mh_json_int(j, (int64_t)sum->totals.g.sessions);
	mh_json_key(j, "workers_configured");
	mh_json_int(j, (int64_t)g->conf.workers);
	mh_json_key(j, "worker_restarts");
	mh_json_int(j, m->worker_restarts);
	mh_json_key(j, "workers");
	mh_json_arr_begin(j);
	for (int i = 0; i < MH_BOARD_WORKERS; i++) {
		const struct mh_wproc *w = &m->w[i];
		if (w->pid <= 0)
			continue;
		const struct mh_board_worker *bw = &m->board->worker[i];
		mh_json_obj_begin(j);
		mh_json_key(j, "pid");
		mh_json_int(j, w->pid);
		mh_json_key(j, "generation");
		mh_json_int(j, w->gen->no);
		mh_json_key(j, "state");
		mh_json_str(j, w->retiring ? "finishing" : "running");
		mh_json_key(j, "sessions_open");
		mh_json_int(j, (int64_t)MH_BOARD_GET(bw->c.sessions_now));
		mh_json_key(j, "sessions_total");
		mh_json_int(j, (int64_t)MH_BOARD_GET(bw->c.sessions_total));
		mh_json_obj_end(j);
	}
	mh_json_arr_end(j);
	mh_json_key(j, "children");
	children_json(m, sum, j);
	mh_json_obj_end(j);
}

/* --------------------------------------------------------------- commands */

enum { SHOW_STATUS, SHOW_CHILDREN, SHOW_STATS };

static int want_json(int argc, char **argv)
{
	return argc == 2 && strcmp(argv[1], "--json") == 0;
}

static void show(struct mh_master *m, struct mh_control_req *r, int argc, char **argv, int what)
{
	struct mh_buf b = MH_BUF_INIT;
	if (argc > 2 || (argc == 2 && !want_json(argc, argv))) {
		mh_buf_printf(&b, "usage: %s [--json]", argv[0]);
		mh_control_reply(r, 0, (const char *)b.data);
		mh_buf_free(&b);
		return;
	}
	struct mh_stats_snapshot *sum = mh_xmalloc(sizeof(*sum)); /* ~360 KiB: not the stack */
	mh_master_snapshot(m, sum);
	if (what == SHOW_STATS && want_json(argc, argv)) {
		mh_stats_render_json(sum, &b);
	} else if (what == SHOW_STATS) {
		mh_stats_render_table(sum, &b);
	} else if (want_json(argc, argv)) {
		struct mh_json j;
		mh_json_init(&j, &b);
		if (what == SHOW_STATUS)
			status_json(m, sum, &j);
		else
			children_json(m, sum, &j);
		mh_buf_printf(&b, "\n");
	} else if (what == SHOW_STATUS) {
		status_text(m, sum, &b);
	} else {
		children_text(m, sum, &b);
	}
	free(sum);
	mh_control_reply(r, 1, (const char *)b.data);
	mh_buf_free(&b);
}

static void set_switch(struct mh_master *m, struct mh_control_req *r, int argc, char **argv)
{
	const struct mh_config *c = &m->gen->conf;
	int on = strcmp(argv[0], "enable") == 0;
	struct mh_buf b = MH_BUF_INIT;
	if (argc != 2) {
		mh_buf_printf(&b, "usage: %s NAME", argv[0]);
		goto refuse;
	}
	for (size_t i = 0; i < c->hub.nchildren; i++) {
		if (strcmp(c->hub.children[i].name, argv[1]) != 0)
			continue;
		MH_BOARD_SET(m->board->child[m->gen->child_slot[i]].override,
		             (int8_t)(on ? 1 : -1));
		mh_info(0, "milterhubctl: %s %s for new sessions", argv[1],
		        on ? "enabled" : "disabled");
		mh_buf_printf(&b,
		              "%s: %s for new sessions in every worker (kept across reloads until "
		              "`milterhubctl %s %s` or a restart)",
		              argv[1], on ? "enabled" : "disabled", on ? "disable" : "enable",
		              argv[1]);
		mh_control_reply(r, 1, (const char *)b.data);
		mh_buf_free(&b);
		return;
	}
	mh_buf_printf(&b, "no milter named '%s' in the running configuration", argv[1]);
	for (size_t i = 0; i < c->hub.nchildren; i++)
		mh_buf_printf(&b, "%s%s", i ? ", " : " (known: ", c->hub.children[i].name);
	if (c->hub.nchildren)
		mh_buf_printf(&b, ")");
refuse:
	mh_control_reply(r, 0, (const char *)b.data);
	mh_buf_free(&b);
}

static void reload(struct mh_master *m, struct mh_control_req *r)
{
	char err[1024], msg[1200];
	if (mh_master_reload(m, err, sizeof(err)) < 0) {
		mh_err(0, "milterhubctl reload refused, generation %u keeps running: %s",
		       m->gen->no, err);
		snprintf(msg, sizeof(msg), "reload refused, generation %u keeps running: %s",
		         m->gen->no, err);
		mh_control_reply(r, 0, msg);
		return;
	}
	snprintf(msg, sizeof(msg), "reloaded %s: generation %u",
	         m->gen->conf.path ? m->gen->conf.path : "built-in defaults", m->gen->no);
	mh_control_reply(r, 1, msg);
}

static void stop(struct mh_master *m, struct mh_control_req *r)
{
	char msg[256];
	struct mh_board_counts sum;
	if (m->stopping) {
		mh_control_reply(r, 0, "already stopping");
		return;
	}
	mh_board_sum(m->board, &sum);
	snprintf(msg, sizeof(msg), "stopping: %llu sessions finishing (up to %.0f s)",
	         (unsigned long long)sum.sessions_now, m->gen->conf.drain_timeout);
	/* Held: milterhubctl returns when the daemon has exited. */
	mh_control_hold(r, 1, msg);
	mh_master_stop(m, "milterhubctl stop");
}

void mh_master_ctl(struct mh_control_req *r, int argc, char **argv, void *arg)
{
	struct mh_master *m = arg;
	const char *cmd = argv[0];
	if (strcmp(cmd, "status") == 0)
		show(m, r, argc, argv, SHOW_STATUS);
	else if (strcmp(cmd, "children") == 0)
		show(m, r, argc, argv, SHOW_CHILDREN);
	else if (strcmp(cmd, "stats") == 0)
		show(m, r, argc, argv, SHOW_STATS);
	else if (strcmp(cmd, "enable") == 0 || strcmp(cmd, "disable") == 0)
		set_switch(m, r, argc, argv);
	else if (strcmp(cmd, "reload") == 0 && argc == 1)
		reload(m, r);
	else if (strcmp(cmd, "stop") == 0 && argc == 1)
		stop(m, r);
	else
		mh_control_reply(
		    r, 0,
		    "unknown command (status [--json], children [--json], enable NAME, "
		    "disable NAME, reload, stop)");
}
