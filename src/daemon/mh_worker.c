/*
 * NAME
 *	mh_worker 3
 * SUMMARY
 *	a worker process: accept MTA connections, run the hub, drain, exit
 * DESCRIPTION
 *	See mh_worker.h for the signals. Accepting: accept4(SOCK_NONBLOCK |
 *	SOCK_CLOEXEC) until EAGAIN (every worker is woken for a connection;
 *	the losers get EAGAIN). Out of descriptors (EMFILE, ENFILE) or kernel
 *	memory, the accept watcher rests ACCEPT_PAUSE seconds instead of
 *	spinning on a listening socket that stays readable.
 *
 *	The hub's hooks read the board: a milterhubctl override or a
 *	supervised child marked down changes the next session at once, in
 *	every worker, without a message to each.
 * DIAGNOSTICS
 *	"worker: cannot become USER: reason" -> exit 1 (the master logs it
 *	and tries again with backoff). Drain progress at info level.
 */
#include "daemon/mh_worker.h"
#include "child/mh_policy.h"
#include "hub/mh_hub.h"
#include "util/mh_log.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define ACCEPT_PAUSE 0.1 /* seconds without accept() after EMFILE */
#define DRAIN_POLL 0.05
#define RETIRE_LIMIT 3600.0 /* a retired worker's sessions get at most this */

struct worker {
	const struct mh_worker_args *a;
	struct ev_loop *loop;
	struct mh_hub *hub;
	struct mh_hub_hooks hooks;
	struct mh_hub_conf hubconf; /* the generation's, with our hooks */
	struct mh_board_worker *me;
	struct mh_stats_region *st; /* ours alone to write */
	int lfd;
	ev_io accept_w;
	ev_timer pause_w, drain_poll_w, drain_limit_w;
	ev_signal term_w, int_w, usr1_w, usr2_w;
	ev_tstamp last_pause_log;
	int draining; /* 1: stop (drain_timeout), 2: retire */
	double drain_limit; /* seconds, for the log */
};

/* ------------------------------------------------------------ hub hooks */

static enum mh_hub_gate hook_gate(void *arg, size_t i)
{
	struct worker *w = arg;
	const struct mh_board_child *c = &w->a->board->child[w->a->child_slot[i]];
	int8_t ov = MH_BOARD_GET(c->override);

	if (ov < 0 || (ov == 0 && !w->a->conf->hub.children[i].enabled))
		return MH_GATE_OFF;
	return MH_BOARD_GET(c->down) ? MH_GATE_DOWN : MH_GATE_ON;
}

static uint64_t hook_session_id(void *arg)
{
	struct worker *w = arg;
	/* The one shared write per session: log lines of all workers stay unambiguous. */
	return __atomic_add_fetch(&w->a->board->last_session_id, 1, __ATOMIC_RELAXED);
}

static void hook_open(void *arg)
{
	struct worker *w = arg;
	struct mh_board *b = w->a->board;
	MH_BOARD_ADD(w->me->c.sessions_now, 1);
	MH_BOARD_ADD(w->me->c.sessions_total, 1);
	MH_STATS_INC(w->st->g.sessions);
	MH_STATS_INC(w->st->g.sessions_open);
	/* Daemon-wide open sessions and their peak: two atomics per session. */
	uint64_t open = __atomic_add_fetch(&b->sessions_open, 1, __ATOMIC_RELAXED);
	uint64_t max = __atomic_load_n(&b->sessions_max, __ATOMIC_RELAXED);
	while (open > max && !__atomic_compare_exchange_n(&b->sessions_max, &max, open, 1,
	                                                  __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

static void hook_close(void *arg)
{
	struct worker *w = arg;
	MH_BOARD_ADD(w->me->c.sessions_now, -1);
	MH_STATS_ADD(w->st->g.sessions_open, -1);
	__atomic_sub_fetch(&w->a->board->sessions_open, 1, __ATOMIC_RELAXED);
}

static void hook_used(void *arg, size_t i)
{
	struct worker *w = arg;
	MH_STATS_INC(w->st->child[i].sessions);
}

static void hook_answer(void *arg, size_t i, enum mh_hub_stage st, enum mh_status status,
                        double seconds)
{
	struct worker *w = arg;
	struct mh_stats_child *c = &w->st->child[i];
	MH_STATS_INC(c->answers[st][status]);
	mh_stats_latency(c, st, seconds);
}

static void hook_failed(void *arg, size_t i, enum mh_hub_stage st, enum mh_hub_fail why)
{
	struct worker *w = arg;
	MH_STATS_INC(w->st->child[i].fails[st][why]);
}

static void count_header(enum mh_hdr_kind k, unsigned r, void *arg)
{
	struct mh_stats_child *c = arg;
	MH_STATS_INC(c->headers[k][r]);
}

static void hook_header(void *arg, size_t i, const char *name, const char *value)
{
	struct worker *w = arg;
	mh_stats_classify_header(name, value, count_header, &w->st->child[i]);
}

static void hook_reply(void *arg, enum mh_hub_stage st, enum mh_status status)
{
	struct worker *w = arg;
	MH_STATS_INC(w->st->g.replies[st][status]);
}

static void hook_message(void *arg, enum mh_hub_result r)
{
	struct worker *w = arg;
	MH_STATS_INC(w->st->g.messages);
	MH_STATS_INC(w->st->g.results[r]);
}

static void hook_recipient(void *arg)
{
	struct worker *w = arg;
	MH_STATS_INC(w->st->g.recipients);
}

static void hook_malformed(void *arg)
{
	struct worker *w = arg;
	MH_STATS_INC(w->st->g.mta_malformed);
}

/* --------------------------------------------------------------- accept */

static void pause_accepting(struct worker *w, int err)
{
	ev_tstamp now = ev_now(w->loop);
	if (now - w->last_pause_log >= 5.0) { /* a log line per burst, not per try */
		mh_warn(0, "accept: %s; not accepting for %.1f s (%zu sessions open)",
		        strerror(err), ACCEPT_PAUSE, mh_hub_sessions(w->hub));
		w->last_pause_log = now;
	}
	ev_io_stop(w->loop, &w->accept_w);
	ev_timer_set(&w->pause_w, ACCEPT_PAUSE, 0);
	ev_timer_start(w->loop, &w->pause_w);
}

static void accept_pending(struct worker *w)
{
	for (;;) {
		int fd = accept4(w->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			mh_hub_accept(w->hub, fd); /* TCP_NODELAY: mh_conn_new sets it */
			continue;
		}
		switch (errno) {
		case EINTR:
		case ECONNABORTED: /* that client gave up; the next may be waiting */
		case EPROTO:
		case EPERM: /* refused by a firewall rule */
			continue;
		case EAGAIN:
#if EWOULDBLOCK != EAGAIN
		case EWOULDBLOCK:
#endif
			return;
		default: /* EMFILE, ENFILE, ENOBUFS, ENOMEM, anything unexpected */
			pause_accepting(w, errno);
			return;
		}
	}
}

static void on_accept(struct ev_loop *loop, ev_io *io, int revents)
{
	accept_pending(io->data);
}

static void on_pause_end(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct worker *w = t->data;
	if (w->lfd >= 0)
		ev_io_start(loop, &w->accept_w);
}

static void stop_accepting(struct worker *w)
{
	if (w->lfd < 0)
		return;
	ev_io_stop(w->loop, &w->accept_w);
	ev_timer_stop(w->loop, &w->pause_w);
	close(w->lfd); /* our copy: the master and other workers keep theirs */
	w->lfd = -1;
}

/* ---------------------------------------------------------------- drain */

static void quit(struct worker *w)
{
	ev_break(w->loop, EVBREAK_ALL);
}

static void on_drain_poll(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct worker *w = t->data;
	if (mh_hub_sessions(w->hub) == 0) {
		mh_debug(0, "worker: all sessions finished; exiting");
		quit(w);
	}
}

static void on_drain_limit(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct worker *w = t->data;
	mh_warn(0, "worker: %zu sessions still open after %.0f s; closing them",
	        mh_hub_sessions(w->hub), w->drain_limit);
	quit(w);
}

static void drain(struct worker *w, int how, double limit)
{
	if (w->draining && (how == 2 || w->draining == 1))
		return; /* retiring or stopping already; a retire never extends a stop */
	w->draining = how;
	w->drain_limit = limit;
	ev_timer_stop(w->loop, &w->drain_limit_w);
	ev_timer_set(&w->drain_limit_w, limit, 0);
	ev_timer_start(w->loop, &w->drain_limit_w);
	if (!ev_is_active(&w->drain_poll_w))
		ev_timer_start(w->loop, &w->drain_poll_w);
}

static void on_stop_signal(struct ev_loop *loop, ev_signal *s, int revents)
{
	struct worker *w = s->data;
	if (w->draining == 1) {
		mh_warn(0, "worker: stop again: closing %zu sessions now", mh_hub_sessions(w->hub));
		quit(w);
		return;
	}
	/* A connection the kernel completed is one the MTA thinks is open: serve it. */
	if (w->lfd >= 0 && ev_is_active(&w->accept_w))
		accept_pending(w);
	stop_accepting(w);
	drain(w, 1, w->a->conf->drain_timeout);
}

static void on_retire(struct ev_loop *loop, ev_signal *s, int revents)
{
	struct worker *w = s->data;
	stop_accepting(w);
	drain(w, 2, RETIRE_LIMIT);
}

static void on_reopen(struct ev_loop *loop, ev_signal *s, int revents)
{
	char err[256];
	if (mh_log_reopen(err, sizeof(err)) < 0)
		mh_warn(0, "worker: %s", err);
}

/* ------------------------------------------------------------------ run */

void mh_worker_run(const struct mh_worker_args *a)
{
	static struct worker w; /* reachable: the master's memory is not ours to free */
	char err[256];

	memset(&w, 0, sizeof(w));
	w.a = a;
	w.loop = a->loop;
	w.lfd = a->lfd;
	w.me = &a->board->worker[a->slot];
	w.st = a->stats;
	w.last_pause_log = -1e9;

	/* The master's death stops us like a SIGTERM; it may already be gone. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	if (mh_ident_become(a->ident, err, sizeof(err)) < 0) {
		mh_err(0, "worker: cannot become %s: %s",
		       a->ident->user ? a->ident->user : "its group", err);
		exit(1);
	}

	w.hooks = (struct mh_hub_hooks){.gate = hook_gate,
	                                .session_id = hook_session_id,
	                                .session_open = hook_open,
	                                .session_close = hook_close,
	                                .child_used = hook_used,
	                                .child_answer = hook_answer,
	                                .child_failed = hook_failed,
	                                .header_added = hook_header,
	                                .mta_reply = hook_reply,
	                                .message = hook_message,
	                                .recipient = hook_recipient,
	                                .mta_malformed = hook_malformed,
	                                .arg = &w};
	/* bench/run only: the same binary without counting, to price the counters. */
	if (getenv("MILTERHUB_BENCH_NO_COUNTERS") != NULL) {
		w.hooks.child_used = NULL;
		w.hooks.child_answer = NULL;
		w.hooks.child_failed = NULL;
		w.hooks.header_added = NULL;
		w.hooks.mta_reply = NULL;
		w.hooks.message = NULL;
		w.hooks.recipient = NULL;
		w.hooks.mta_malformed = NULL;
	}
	w.hubconf = a->conf->hub;
	w.hubconf.hooks = &w.hooks;
	w.hub = mh_hub_new(w.loop, &w.hubconf);

	ev_io_init(&w.accept_w, on_accept, w.lfd, EV_READ);
	ev_init(&w.pause_w, on_pause_end);
	ev_timer_init(&w.drain_poll_w, on_drain_poll, DRAIN_POLL, DRAIN_POLL);
	ev_init(&w.drain_limit_w, on_drain_limit);
	ev_signal_init(&w.term_w, on_stop_signal, SIGTERM);
	ev_signal_init(&w.int_w, on_stop_signal, SIGINT);
	ev_signal_init(&w.usr1_w, on_reopen, SIGUSR1);
	ev_signal_init(&w.usr2_w, on_retire, SIGUSR2);
	w.accept_w.data = w.pause_w.data = w.drain_poll_w.data = w.drain_limit_w.data = &w;
	w.term_w.data = w.int_w.data = w.usr1_w.data = w.usr2_w.data = &w;
	ev_signal_start(w.loop, &w.term_w);
	ev_signal_start(w.loop, &w.int_w);
	ev_signal_start(w.loop, &w.usr1_w);
	ev_signal_start(w.loop, &w.usr2_w);
	ev_io_start(w.loop, &w.accept_w);
	/* The master forked us with these blocked (mh_master.c spawn_worker):
	 * our watchers are in place now, so a pending one is ours to handle. */
	sigset_t ours;
	sigemptyset(&ours);
	sigaddset(&ours, SIGTERM);
	sigaddset(&ours, SIGINT);
	sigaddset(&ours, SIGHUP);
	sigaddset(&ours, SIGUSR1);
	sigaddset(&ours, SIGUSR2);
	sigprocmask(SIG_UNBLOCK, &ours, NULL);
	/* The master may have died between fork and prctl. */
	if (getppid() == 1)
		raise(SIGTERM);

	mh_debug(0, "worker %d of generation %u started", a->slot, a->gen);
	ev_run(w.loop, 0);

	stop_accepting(&w);
	mh_hub_free(w.hub);
	mh_policy_pools_free(); /* policy children's pooled connections */
	ev_timer_stop(w.loop, &w.drain_poll_w);
	ev_timer_stop(w.loop, &w.drain_limit_w);
	ev_signal_stop(w.loop, &w.term_w);
	ev_signal_stop(w.loop, &w.int_w);
	ev_signal_stop(w.loop, &w.usr1_w);
	ev_signal_stop(w.loop, &w.usr2_w);
	exit(0);
}
