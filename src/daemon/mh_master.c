/*
 * NAME
 *	mh_master 3
 * SUMMARY
 *	the master process: generations, workers, reload, stop (mh_master.h)
 * DESCRIPTION
 *	A generation is one loaded configuration plus the workers forked
 *	with it. Only the newest generation gets new workers; an older one
 *	lives until its last worker has finished its sessions and exited,
 *	then its config is freed and the board's name slots it alone used
 *	are reclaimed.
 *
 *	Forking: the worker is a fork of the master without exec, so it runs
 *	exactly the configuration the master validated (Lua conditions
 *	included) even if the file changed since. In the child, everything
 *	that is the master's is put away first: its watchers (libev's
 *	default loop is ev_loop_fork()ed and reused by the worker), the
 *	control socket, the supervisor's pipes, the pid file.
 *
 *	Worker deaths: a worker of the current generation that exits
 *	without being asked is logged with its status and replaced; if
 *	workers keep dying within WORKER_YOUNG seconds of their start, the
 *	replacement waits 0.1 s doubling up to RESPAWN_MAX (a worker that
 *	cannot become its user must not turn the master into a fork loop).
 *
 *	Reload: the file is loaded and validated completely (Lua, keys,
 *	users, the socket if it changed, the supervised milters) before
 *	anything running is touched; any failure leaves the running
 *	generation as it was and is reported. The listening socket is kept
 *	when the spec is unchanged (mode and group applied in place), so no
 *	MTA sees a refused connection during a reload.
 * DIAGNOSTICS
 *	Every worker start, death, restart, reload and refusal is logged at
 *	info (warn for deaths and refusals).
 */
#include "daemon/mh_master.h"
#include "daemon/mh_master_int.h"
#include "daemon/mh_worker.h"
#include "util/mh_buf.h"
#include "util/mh_err.h"
#include "util/mh_log.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define WORKER_YOUNG 1.0 /* a worker dying sooner counts as a quick death */
#define RESPAWN_MAX 10.0
#define STOP_KILL_MARGIN 5.0 /* after drain_timeout, workers get SIGKILL */
#define SUPERVISED_GRACE 5.0 /* supervised milters: SIGTERM, then SIGKILL */

static void fill_workers(struct mh_master *m);

/* ----------------------------------------------------------- generations */

static void gen_free(struct mh_gen *g)
{
	mh_config_free(&g->conf);
	mh_ident_free(&g->ident);
	free(g);
}

/* Drop older generations without workers; reclaim their board names. */
static void gens_collect(struct mh_master *m)
{
	struct mh_gen **pp = &m->gen->older;
	while (*pp != NULL) {
		struct mh_gen *g = *pp;
		if (g->alive == 0) {
			*pp = g->older;
			mh_info(0, "generation %u: its last worker has exited", g->no);
			gen_free(g);
		} else {
			pp = &g->older;
		}
	}
	uint32_t oldest = m->gen->no;
	for (struct mh_gen *g = m->gen; g != NULL; g = g->older)
		oldest = g->no;
	mh_board_child_reclaim(m->board, oldest);
}

/* Board slots for the children of conf; -1 when the board is full. */
static int gen_take_slots(struct mh_master *m, struct mh_gen *g, char *err, size_t errlen)
{
	for (size_t i = 0; i < g->conf.hub.nchildren; i++) {
		int fresh = mh_board_child_find(m->board, g->conf.hub.children[i].name) < 0;
		int slot = mh_board_child_take(m->board, g->conf.hub.children[i].name, g->no);
		/* A name new to the board starts its counters at zero (the slot may
		 * have counted a milter removed long ago). */
		if (fresh && slot >= 0)
			memset(&m->retired->child[slot], 0, sizeof(m->retired->child[slot]));
		if (slot < 0)
			return mh_errf(err, errlen,
			               "too many milter names in use across generations (%d); "
			               "wait for old workers to finish",
			               MH_BOARD_CHILDREN);
		g->child_slot[i] = (int16_t)slot;
	}
	return 0;
}

/* Supervised milters not yet answering are down for the workers from the start. */
static void gen_mark_health(struct mh_master *m, struct mh_gen *g)
{
	for (size_t i = 0; i < g->conf.hub.nchildren; i++) {
		struct mh_sup_info info;
		int down = 0;
		if (mh_supervise_info(m->sv, g->conf.hub.children[i].name, &info))
			down = info.state != MH_SUP_UP;
		MH_BOARD_SET(m->board->child[g->child_slot[i]].down, (uint8_t)down);
	}
}

static void on_sup_state(const char *name, enum mh_sup_state st, void *arg)
{
	struct mh_master *m = arg;
	int slot = mh_board_child_find(m->board, name);
	if (slot >= 0)
		MH_BOARD_SET(m->board->child[slot].down, (uint8_t)(st != MH_SUP_UP));
}

/* ---------------------------------------------------------------- workers */

unsigned mh_master_workers_alive(const struct mh_master *m)
{
	unsigned n = 0;
	for (int i = 0; i < MH_BOARD_WORKERS; i++)
		n += m->w[i].pid > 0;
	return n;
}

/* In the forked child: put away all that is the master's, become a worker. */
__attribute__((noreturn)) static void become_worker(struct mh_master *m, struct mh_gen *g, int slot,
                                                    struct mh_stats_region *stats)
{
	static struct mh_worker_args a;
	struct ev_loop *loop = m->loop;

	ev_loop_fork(loop);
	ev_signal_stop(loop, &m->term_w);
	ev_signal_stop(loop, &m->int_w);
	ev_signal_stop(loop, &m->hup_w);
	ev_signal_stop(loop, &m->usr1_w);
	ev_timer_stop(loop, &m->respawn_w);
	ev_timer_stop(loop, &m->kill_w);
	for (int i = 0; i < MH_BOARD_WORKERS; i++)
		if (m->w[i].pid > 0)
			ev_child_stop(loop, &m->w[i].cw);
	if (m->ctl != NULL)
		mh_control_forget(m->ctl);
	m->ctl = NULL;
	mh_supervise_forget(m->sv);
	m->sv = NULL;
	mh_master_stats_forget(m);
	if (m->pidfd >= 0)
		close(m->pidfd);
	m->pidfd = -1;

	a = (struct mh_worker_args){.loop = loop,
	                            .lfd = m->lst.fd,
	                            .conf = &g->conf,
	                            .ident = &g->ident,
	                            .board = m->board,
	                            .slot = slot,
	                            .stats = stats,
	                            .child_slot = g->child_slot,
	                            .gen = g->no};
	mh_worker_run(&a);
}

static void on_worker_exit(struct ev_loop *loop, ev_child *cw, int revents);

static int spawn_worker(struct mh_master *m, struct mh_gen *g)
{
	int slot = mh_board_worker_free_slot(m->board);
	if (slot < 0) {
		mh_err(0, "no free worker slot (%d workers alive)", MH_BOARD_WORKERS);
		return -1;
	}
	struct mh_stats_region *stats = mh_stats_region_new(g->conf.hub.nchildren);
	if (stats == NULL) {
		mh_err(0, "cannot start a worker: no memory for its counters: %m");
		return -1;
	}
	struct mh_board_worker *bw = &m->board->worker[slot];
	memset(&bw->c, 0, sizeof(bw->c));
	MH_BOARD_SET(bw->gen, g->no);
	MH_BOARD_SET(bw->pid, -1); /* reserved until we know the pid */

	/* The child runs with the master's handlers until it has its own: keep
	 * our signals blocked across the fork (the worker unblocks them once its
	 * watchers are in place, so none is lost or default-handled). */
	sigset_t block, old;
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGUSR1);
	sigaddset(&block, SIGUSR2);
	sigprocmask(SIG_BLOCK, &block, &old);
	fflush(NULL); /* nothing buffered is written twice */
	pid_t pid = fork();
	if (pid != 0)
		sigprocmask(SIG_SETMASK, &old, NULL);
	if (pid < 0) {
		mh_err(0, "cannot start a worker: fork: %m");
		MH_BOARD_SET(bw->pid, 0);
		mh_stats_region_free(stats);
		return -1;
	}
	if (pid == 0)
		become_worker(m, g, slot, stats);

	MH_BOARD_SET(bw->pid, (int32_t)pid);
	struct mh_wproc *w = &m->w[slot];
	memset(w, 0, sizeof(*w));
	w->m = m;
	w->pid = pid;
	w->gen = g;
	w->stats = stats;
	w->started = ev_time();
	ev_child_init(&w->cw, on_worker_exit, pid, 0);
	w->cw.data = w;
	ev_child_start(m->loop, &w->cw);
	g->alive++;
	mh_info(0, "worker %ld started (generation %u)", (long)pid, g->no);
	return 0;
}

static unsigned gen_workers(const struct mh_master *m, const struct mh_gen *g)
{
	unsigned n = 0;
	for (int i = 0; i < MH_BOARD_WORKERS; i++)
		n += m->w[i].pid > 0 && m->w[i].gen == g && !m->w[i].retiring;
	return n;
}

static void fill_workers(struct mh_master *m)
{
	if (m->stopping)
		return;
	while (gen_workers(m, m->gen) < m->gen->conf.workers)
		if (spawn_worker(m, m->gen) < 0)
			break;
}

static void on_respawn(struct ev_loop *loop, ev_timer *t, int revents)
{
	fill_workers(t->data);
}

static void describe_status(int status, char *buf, size_t len)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "was killed by signal %d (%s)%s", WTERMSIG(status),
		         strsignal(WTERMSIG(status)), WCOREDUMP(status) ? ", core dumped" : "");
	else
		snprintf(buf, len, "ended with wait status 0x%x", (unsigned)status);
}

static void stop_finish(struct mh_master *m);

static void on_worker_exit(struct ev_loop *loop, ev_child *cw, int revents)
{
	struct mh_wproc *w = cw->data;
	struct mh_master *m = w->m;
	struct mh_gen *g = w->gen;
	int slot = (int)(w - m->w);
	char how[160];
	double ran = ev_time() - w->started;

	ev_child_stop(loop, cw);
	describe_status(cw->rstatus, how, sizeof(how));
	int clean = WIFEXITED(cw->rstatus) && WEXITSTATUS(cw->rstatus) == 0;
	uint64_t open = MH_BOARD_GET(m->board->worker[slot].c.sessions_now);
	mh_board_worker_retire(m->board, slot);
	/* Its counts live on in the retired totals (design §5: across reloads and restarts). */
	mh_stats_totals_add(m->retired, w->stats, g->child_slot, 0);
	mh_stats_region_free(w->stats);
	w->stats = NULL;
	w->pid = 0;
	g->alive--;

	if (w->retiring || m->stopping) {
		if (clean)
			mh_info(0, "worker %ld (generation %u) finished", (long)cw->rpid, g->no);
		else
			mh_warn(0, "worker %ld (generation %u) %s while finishing", (long)cw->rpid,
			        g->no, how);
	} else {
		/* Unasked: its sessions are lost to the MTA's default action. */
		mh_warn(0, "worker %ld %s after %.1f s with %llu sessions open; restarting it",
		        (long)cw->rpid, how, ran, (unsigned long long)open);
		m->worker_restarts++;
	}
	if (g != m->gen)
		gens_collect(m);
	if (m->stopping) {
		if (mh_master_workers_alive(m) == 0)
			stop_finish(m);
		return;
	}
	if (w->retiring || g != m->gen)
		return;
	if (ran < WORKER_YOUNG) {
		double delay = 0.1 * (double)(1u << (m->quick_deaths < 7 ? m->quick_deaths : 7));
		if (delay > RESPAWN_MAX)
			delay = RESPAWN_MAX;
		m->quick_deaths++;
		if (!ev_is_active(&m->respawn_w)) {
			mh_warn(0, "workers die right after starting; next start in %.1f s", delay);
			ev_timer_set(&m->respawn_w, delay, 0);
			ev_timer_start(loop, &m->respawn_w);
		}
		return;
	}
	m->quick_deaths = 0;
	fill_workers(m);
}

static void signal_workers(struct mh_master *m, int sig, const struct mh_gen *only_older_than)
{
	for (int i = 0; i < MH_BOARD_WORKERS; i++) {
		struct mh_wproc *w = &m->w[i];
		if (w->pid <= 0)
			continue;
		if (only_older_than != NULL && w->gen == only_older_than)
			continue;
		if (sig == SIGUSR2 || sig == SIGTERM)
			w->retiring = 1;
		kill(w->pid, sig);
	}
}

/* ------------------------------------------------------------- statistics */

void mh_master_snapshot(const struct mh_master *m, struct mh_stats_snapshot *s)
{
	const struct mh_gen *g = m->gen;
	memset(s, 0, sizeof(*s));
	s->now = ev_time();
	s->uptime = s->now - m->started;
	s->sessions_max = MH_BOARD_GET(m->board->sessions_max);
	s->worker_restarts = m->worker_restarts;
	s->generation = g->no;
	s->totals = *m->retired;
	for (int i = 0; i < MH_BOARD_WORKERS; i++) {
		const struct mh_wproc *w = &m->w[i];
		if (w->pid <= 0 || w->stats == NULL)
			continue;
		mh_stats_totals_add(&s->totals, w->stats, w->gen->child_slot, 1);
		s->workers += !w->retiring;
	}
	s->nmilters = g->conf.hub.nchildren;
	for (size_t i = 0; i < s->nmilters; i++) {
		const struct mh_child_conf *cc = &g->conf.hub.children[i];
		struct mh_stats_milter *mi = &s->milter[i];
		const struct mh_board_child *bc = &m->board->child[g->child_slot[i]];
		int8_t ov = MH_BOARD_GET(bc->override);
		struct mh_sup_info info;
		mi->name = cc->name;
		mi->slot = g->child_slot[i];
		mi->enabled = ov > 0 || (ov == 0 && cc->enabled);
		mi->state = "unsupervised";
		if (m->sv != NULL && mh_supervise_info(m->sv, cc->name, &info)) {
			mi->state = mh_sup_state_name(info.state);
			mi->restarts = info.restarts;
		}
	}
}

/* ------------------------------------------------------------------- stop */

static void on_supervised_stopped(void *arg)
{
	struct mh_master *m = arg;
	ev_break(m->loop, EVBREAK_ALL);
}

/* Every worker has exited: stop the supervised milters, then leave the loop. */
static void stop_finish(struct mh_master *m)
{
	if (m->stopping >= 2)
		return;
	m->stopping = 2;
	ev_timer_stop(m->loop, &m->kill_w);
	mh_info(0, "all workers have exited");
	mh_supervise_stop(m->sv, SUPERVISED_GRACE, on_supervised_stopped, m);
}

static void on_kill_stragglers(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct mh_master *m = t->data;
	mh_warn(0, "%u workers still running %.0f s after the stop; killing them",
	        mh_master_workers_alive(m), m->gen->conf.drain_timeout + STOP_KILL_MARGIN);
	signal_workers(m, SIGKILL, NULL);
}

void mh_master_stop(struct mh_master *m, const char *why)
{
	if (m->stopping) {
		mh_warn(0, "%s again: workers close their sessions now", why);
		signal_workers(m, SIGTERM, NULL); /* a second SIGTERM ends a worker's drain */
		return;
	}
	m->stopping = 1;
	ev_timer_stop(m->loop, &m->respawn_w);
	/* Later MTAs get "connection refused" and apply their own default at once
	 * (before the log line: whoever reads it finds the socket gone). */
	mh_listener_close(&m->lst, 1);
	signal_workers(m, SIGTERM, NULL);
	struct mh_board_counts sum;
	mh_board_sum(m->board, &sum);
	mh_info(0, "%s: stopping; %u workers finish %llu sessions (up to %.0f s)", why,
	        mh_master_workers_alive(m), (unsigned long long)sum.sessions_now,
	        m->gen->conf.drain_timeout);
	if (mh_master_workers_alive(m) == 0) {
		stop_finish(m);
		return;
	}
	ev_timer_set(&m->kill_w, m->gen->conf.drain_timeout + STOP_KILL_MARGIN, 0);
	ev_timer_start(m->loop, &m->kill_w);
}

/* ----------------------------------------------------------------- reload */

static int open_log(const struct mh_config *c, const struct mh_ident *id, char *err, size_t errlen)
{
	if (mh_log_open(c->log, c->syslog_facility, err, errlen) < 0)
		return -1;
	if (id->set && mh_log_chown(id->uid, id->gid, err, errlen) < 0)
		return -1;
	if (getenv("MILTERHUB_LOG_LEVEL") == NULL)
		mh_log_set_level(c->log_level);
	return 0;
}

static int same_text(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

int mh_master_reload(struct mh_master *m, char *err, size_t errlen)
{
	char why[1024];
	if (m->stopping)
		return mh_errf(err, errlen, "stopping: no reload");
	const char *path = m->path;
	if (path == NULL && access(MH_CONFIG_DEFAULT_PATH, F_OK) == 0)
		path = MH_CONFIG_DEFAULT_PATH;

	struct mh_gen *g = mh_xcalloc(1, sizeof(*g));
	if (path != NULL) {
		if (mh_config_load(path, &g->conf, why, sizeof(why)) < 0) {
			free(g);
			return mh_errf(err, errlen, "%s", why);
		}
	} else {
		mh_config_defaults(&g->conf);
	}
	g->no = m->next_gen;
	g->loaded = ev_time();
	const struct mh_config *c = &g->conf, *old = &m->gen->conf;
	struct mh_listener nl = {.fd = -1};
	int new_socket = strcmp(c->listen_text, m->lst.text ? m->lst.text : "") != 0;

	if (mh_ident_resolve(&g->ident, c->user, c->group, why, sizeof(why)) < 0 ||
	    gen_take_slots(m, g, why, sizeof(why)) < 0)
		goto refuse;
	if (mh_board_worker_free_slot(m->board) < 0 ||
	    MH_BOARD_WORKERS - mh_master_workers_alive(m) < c->workers) {
		snprintf(why, sizeof(why), "%u workers are still finishing; no room for %zu more",
		         mh_master_workers_alive(m), c->workers);
		goto refuse;
	}
	if (new_socket) {
		if (mh_listener_open(&nl, c->listen_text, c->socket_mode, c->socket_group, why,
		                     sizeof(why)) < 0)
			goto refuse;
	} else if ((c->socket_mode != old->socket_mode ||
	            !same_text(c->socket_group, old->socket_group)) &&
	           mh_listener_set_access(&m->lst, c->socket_mode, c->socket_group, why,
	                                  sizeof(why)) < 0) {
		goto refuse;
	}
	if (mh_supervise_apply(m->sv, c->hub.children, c->hub.nchildren, c->user, c->group, why,
	                       sizeof(why)) < 0)
		goto refuse;
	if ((!same_text(c->log, old->log) ||
	     !same_text(c->syslog_facility, old->syslog_facility)) &&
	    open_log(c, &g->ident, why, sizeof(why)) < 0)
		mh_warn(0, "reload: %s; logging stays as it was", why);
	else if (getenv("MILTERHUB_LOG_LEVEL") == NULL)
		mh_log_set_level(c->log_level);
	/* New workers under a new user must still be able to reopen the log file. */
	if (g->ident.set &&
	    (g->ident.uid != m->gen->ident.uid || g->ident.gid != m->gen->ident.gid) &&
	    mh_log_chown(g->ident.uid, g->ident.gid, why, sizeof(why)) < 0)
		mh_warn(0, "reload: %s", why);

	/* Committed: from here on nothing can refuse the reload. */
	m->next_gen++;
	g->older = m->gen;
	m->gen = g;
	gen_mark_health(m, g);
	if (new_socket) {
		struct mh_listener ol = m->lst;
		m->lst = nl;
		mh_listener_close(&ol, 1);
	}
	m->quick_deaths = 0;
	ev_timer_stop(m->loop, &m->respawn_w);
	mh_master_stats_reload(m, c->stats);
	fill_workers(m);
	signal_workers(m, SIGUSR2, g); /* older generations: finish and exit */
	struct mh_board_counts sum;
	mh_board_sum(m->board, &sum);
	mh_info(0, "reloaded %s: generation %u, %zu workers; %u older workers finish %llu sessions",
	        path ? path : "built-in defaults", g->no, c->workers,
	        mh_master_workers_alive(m) - gen_workers(m, g),
	        (unsigned long long)(sum.sessions_now));
	gens_collect(m);
	return 0;

refuse:
	mh_listener_close(&nl, 1);
	gen_free(g);
	return mh_errf(err, errlen, "%s", why);
}

/* ---------------------------------------------------------------- signals */

static void on_stop_signal(struct ev_loop *loop, ev_signal *s, int revents)
{
	mh_master_stop(s->data, s->signum == SIGINT ? "SIGINT" : "SIGTERM");
}

static void on_hup(struct ev_loop *loop, ev_signal *s, int revents)
{
	struct mh_master *m = s->data;
	char err[1024];
	if (mh_master_reload(m, err, sizeof(err)) < 0)
		mh_err(0, "SIGHUP: reload refused, generation %u keeps running: %s", m->gen->no,
		       err);
}

static void on_usr1(struct ev_loop *loop, ev_signal *s, int revents)
{
	struct mh_master *m = s->data;
	char err[512];
	if (mh_log_reopen(err, sizeof(err)) < 0)
		mh_err(0, "SIGUSR1: %s", err);
	else if (m->gen->ident.set &&
	         mh_log_chown(m->gen->ident.uid, m->gen->ident.gid, err, sizeof(err)) < 0)
		mh_err(0, "SIGUSR1: %s", err);
	else
		mh_info(0, "SIGUSR1: log reopened");
	signal_workers(m, SIGUSR1, NULL);
}

/* ------------------------------------------------------------------- run */

static void log_start(const struct mh_master *m)
{
	const struct mh_config *c = &m->gen->conf;
	struct mh_buf chain = MH_BUF_INIT;
	for (size_t i = 0; i < c->hub.nchildren; i++) {
		const struct mh_child_conf *cc = &c->hub.children[i];
		mh_buf_printf(&chain, "%s%s [%s%s%s%s]", i ? ", " : "", cc->name, cc->sock.text,
		              cc->enabled ? "" : ", disabled", cc->evaluate ? ", evaluate" : "",
		              cc->command ? ", supervised" : "");
	}
	char mode[32] = "";
	if (c->listen.family == AF_UNIX)
		snprintf(mode, sizeof(mode), " (mode %04o)", c->socket_mode);
	mh_info(0,
	        "started with %s: listening on %s%s; %zu workers; %zu children in chain order: "
	        "%s",
	        c->path ? c->path : "built-in defaults", c->listen.text, mode, c->workers,
	        c->hub.nchildren, c->hub.nchildren ? (const char *)chain.data : "(none)");
	mh_buf_free(&chain);
}

static int open_control(struct mh_master *m, char *err, size_t errlen)
{
	const struct mh_config *c = &m->gen->conf;
	const char *spec = c->control ? c->control : MH_CONTROL_DEFAULT;
	char why[512];
	m->ctl = mh_control_new(m->loop, spec, c->control_mode, mh_master_ctl, m, why, sizeof(why));
	if (m->ctl != NULL) {
		m->ctl_text = mh_xstrdup(spec);
		return 0;
	}
	if (c->control != NULL)
		return mh_errf(err, errlen, "%s", why);
	mh_warn(0,
	        "no control socket (%s); milterhubctl cannot reach this instance: "
	        "set manager { control = ... }",
	        why);
	return 0;
}

static void master_free(struct mh_master *m)
{
	if (m->ctl != NULL)
		mh_control_free(m->ctl); /* also ends a held `stop` answer: ctl sees EOF */
	mh_master_stats_close(m);
	free(m->ctl_text);
	if (m->sv != NULL)
		mh_supervise_free(m->sv);
	mh_listener_close(&m->lst, 1);
	while (m->gen != NULL) {
		struct mh_gen *g = m->gen;
		m->gen = g->older;
		gen_free(g);
	}
	mh_board_free(m->board);
	for (int i = 0; i < MH_BOARD_WORKERS; i++)
		mh_stats_region_free(m->w[i].stats);
	free(m->retired);
	free(m->path);
}

int mh_master_run(struct mh_config *conf, const char *path, int ready_fd)
{
	static struct mh_master master; /* reachable from the workers after fork */
	struct mh_master *m = &master;
	char err[1024];
	int rc = 1;

	memset(m, 0, sizeof(*m));
	m->pidfd = -1;
	m->lst.fd = -1;
	m->path = path ? mh_xstrdup(path) : NULL;
	m->started = ev_time();
	signal(SIGPIPE, SIG_IGN);

	struct mh_gen *g = mh_xcalloc(1, sizeof(*g));
	g->conf = *conf;
	memset(conf, 0, sizeof(*conf));
	g->no = 1;
	g->loaded = m->started;
	m->gen = g;
	m->next_gen = 2;

	m->loop = ev_default_loop(EVFLAG_AUTO);
	if (m->loop == NULL) {
		snprintf(err, sizeof(err), "cannot initialise the event loop (libev)");
		goto fail;
	}
	/* Signals first: a SIGTERM during start-up (the socket may already be
	 * visible) waits for the loop instead of killing us half-started. */
	ev_signal_init(&m->term_w, on_stop_signal, SIGTERM);
	ev_signal_init(&m->int_w, on_stop_signal, SIGINT);
	ev_signal_init(&m->hup_w, on_hup, SIGHUP);
	ev_signal_init(&m->usr1_w, on_usr1, SIGUSR1);
	ev_init(&m->respawn_w, on_respawn);
	ev_init(&m->kill_w, on_kill_stragglers);
	m->term_w.data = m->int_w.data = m->hup_w.data = m->usr1_w.data = m;
	m->respawn_w.data = m->kill_w.data = m;
	ev_signal_start(m->loop, &m->term_w);
	ev_signal_start(m->loop, &m->int_w);
	ev_signal_start(m->loop, &m->hup_w);
	ev_signal_start(m->loop, &m->usr1_w);
	m->retired = mh_xcalloc(1, sizeof(*m->retired));
	m->board = mh_board_new();
	if (m->board == NULL) {
		snprintf(err, sizeof(err), "cannot map the shared scoreboard: %s", strerror(errno));
		goto fail;
	}
	const struct mh_config *c = &g->conf;
	if (mh_ident_resolve(&g->ident, c->user, c->group, err, sizeof(err)) < 0 ||
	    open_log(c, &g->ident, err, sizeof(err)) < 0 ||
	    gen_take_slots(m, g, err, sizeof(err)) < 0)
		goto fail;
	/* The pid file first: a second instance says "already running" and
	 * touches no socket of the first. */
	if (c->pid_file != NULL) {
		m->pid_path = mh_xstrdup(c->pid_file); /* a reload does not move it */
		m->pidfd = mh_pidfile_open(c->pid_file, err, sizeof(err));
		if (m->pidfd < 0)
			goto fail;
	}
	/* The control socket before the listening one: whoever sees milterhub
	 * listening can already talk to it with milterhubctl. */
	if (open_control(m, err, sizeof(err)) < 0 ||
	    mh_master_stats_open(m, c->stats, err, sizeof(err)) < 0 ||
	    mh_listener_open(&m->lst, c->listen_text, c->socket_mode, c->socket_group, err,
	                     sizeof(err)) < 0)
		goto fail;
	m->sup_ops = (struct mh_supervise_ops){on_sup_state, m};
	m->sv = mh_supervise_new(m->loop, &m->sup_ops);
	if (mh_supervise_apply(m->sv, c->hub.children, c->hub.nchildren, c->user, c->group, err,
	                       sizeof(err)) < 0)
		goto fail;
	gen_mark_health(m, g);

	log_start(m);
	/* Before the first fork: workers must not hold the report pipe open. */
	mh_daemon_ready(ready_fd, NULL);
	ready_fd = -1;
	fill_workers(m);
	ev_run(m->loop, 0);
	mh_info(0, "stopped");
	rc = 0;
	goto out;

fail:
	mh_err(0, "%s", err);
	mh_daemon_ready(ready_fd, err);
out:
	if (m->pidfd >= 0)
		mh_pidfile_close(m->pidfd, m->pid_path);
	free(m->pid_path);
	master_free(m);
	if (m->loop != NULL)
		ev_loop_destroy(m->loop);
	return rc;
}
