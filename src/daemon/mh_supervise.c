/*
 * mh_supervise - start, watch and restart the child milters that have a
 * `command` (the contract is in mh_supervise.h; issue 5 item 4).
 *
 * SUMMARY
 *	One sup_child per supervised milter, in a list owned by the
 *	supervisor. Each holds a copy of its identity (argv, user, group,
 *	socket: what makes apply restart it), its tunables (intervals,
 *	timeouts: changed in place), the running process (pid, output
 *	pipes, ev_child watcher) and its timers (restart, health, SIGKILL).
 *
 * PROCESSES
 *	fork + exec. Everything the child needs (argv, groups) is prepared
 *	before fork(); between fork and exec the child only makes system
 *	calls: signals back to default and unblocked, setsid, /dev/null on
 *	stdin, the pipes on stdout and stderr, every other descriptor
 *	closed (close_range, else a loop), credentials switched, and only
 *	then PR_SET_PDEATHSIG (a credential change clears it) followed by
 *	the getppid check for a master that died meanwhile. A failed exec
 *	writes its reason on the stderr pipe and exits 127, so the reason is
 *	logged as one of the child's lines. Signals go to the process group
 *	(the child leads its own after setsid), so helpers it forked go too.
 *	Exits are reaped by libev (ev_child on the default loop), which is
 *	why a pid is signalled only before its ev_child has fired: it cannot
 *	have been reused yet.
 *
 * HEALTH
 *	A check is a real milter negotiation through mh_child (offer: v6,
 *	every v6 action and protocol bit, as the hub offers), closed with
 *	'Q'. Right after a start it polls every 0.1 s so a milter is UP as
 *	soon as it answers; those quick polls are for coming up, not for
 *	killing: a failed poll counts towards the three strikes only once
 *	per health_interval, so a slow starter gets 3 x health_interval
 *	(and no more than about 30 s of polling) like any check would give
 *	it. While polling, a bare connect() is tried first, so a milter
 *	that does not listen yet costs no mh_child warning per poll.
 *
 * STATE REPORTS
 *	on_state is called on every change, from the loop only: changes
 *	made inside mh_supervise_apply are delivered by a zero timer.
 *	on_state must not free the supervisor.
 *
 * DIAGNOSTICS
 *	Every start, exit (status, run time, restart delay), signal sent,
 *	health transition and counted failed check is logged (mh_log, no
 *	session id). Lines the children write are logged at INFO as
 *	"child NAME[PID]: line".
 */
#include "daemon/mh_supervise.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/mh_buf.h"
#include "util/mh_err.h"
#include "util/mh_log.h"

#define SUP_MAX_DELAY 60.0 /* restart delay cap, and the run that resets it */
#define SUP_KILL_GRACE 5.0 /* SIGTERM -> SIGKILL when apply or health kills */
#define SUP_POLL 0.1 /* health polling right after a start */
#define SUP_POLL_FOR 30.0 /* ... for at most this long */
#define SUP_STRIKES 3 /* failed checks in a row before a kill */
#define SUP_LINE_MAX 2048 /* a longer line without newline is logged in pieces */

/* What makes a milter "the same" across apply (everything else is tunable). */
struct sup_ident {
	char **argv; /* owned, NULL-terminated */
	char *user, *group; /* effective names (default applied), owned, may be NULL */
	int set_uid, set_gid; /* switch credentials in the child (master is root) */
	uid_t uid;
	gid_t gid;
	struct mh_sockspec sock;
	char *socket_text; /* owned, for logs */
};

struct sup_pipe {
	struct sup_child *c;
	ev_io w;
	int fd; /* read end, -1 when closed */
	struct mh_buf line; /* a line not yet complete */
};

struct sup_child {
	struct mh_supervise *sv;
	struct sup_child *next;
	char *name;
	struct sup_ident id;
	struct sup_ident *pending; /* changed identity, taken after the exit */
	struct mh_child_conf hc; /* what a health check's mh_child reads */
	double health_interval, restart_delay;
	double next_delay; /* the delay of the next restart (backoff) */
	enum mh_sup_state state;
	int notify; /* on_state owed (the change happened inside apply) */
	double since;
	pid_t pid; /* 0 while not running */
	double started;
	unsigned restarts;
	char last_exit[96];
	int removing; /* no longer configured: freed once it exited */
	int term_sent;
	struct sup_pipe out, err;
	ev_child exit_w;
	ev_timer restart_w, health_w, kill_w, deadline_w;
	struct mh_child *check; /* the health check running, if any */
	int fails; /* counted failed checks in a row */
	int polling; /* right after a start, until the first success */
	double poll_until, strike_due;
};

struct mh_supervise {
	struct ev_loop *loop;
	struct mh_supervise_ops ops;
	struct sup_child *children;
	int in_apply;
	ev_timer notify_w;
	int stopping;
	void (*done)(void *arg);
	void *done_arg;
	ev_timer done_w;
};

static void spawn(struct sup_child *c);

const char *mh_sup_state_name(enum mh_sup_state st)
{
	switch (st) {
	case MH_SUP_STARTING:
		return "starting";
	case MH_SUP_UP:
		return "up";
	case MH_SUP_DOWN:
		return "down";
	}
	return "?";
}

/* ------------------------------------------------------------ identity */

static void ident_free(struct sup_ident *id)
{
	if (id->argv != NULL)
		for (char **a = id->argv; *a != NULL; a++)
			free(*a);
	free(id->argv);
	free(id->user);
	free(id->group);
	free(id->socket_text);
	memset(id, 0, sizeof(*id));
}

static int str_same(const char *a, const char *b)
{
	return (a == NULL || b == NULL) ? a == b : strcmp(a, b) == 0;
}

static int ident_same(const struct sup_ident *a, const struct sup_ident *b)
{
	size_t i;

	for (i = 0; a->argv[i] != NULL && b->argv[i] != NULL; i++)
		if (strcmp(a->argv[i], b->argv[i]) != 0)
			return 0;
	return a->argv[i] == b->argv[i] && str_same(a->user, b->user) &&
	       str_same(a->group, b->group) && a->sock.family == b->sock.family &&
	       strcmp(a->sock.text, b->sock.text) == 0;
}

/*
 * Resolve who cf runs as and copy what identifies it. Only root can
 * switch; anyone else may only ask for what it already is.
 */
static int ident_build(struct sup_ident *id, const struct mh_child_conf *cf, const char *duser,
                       const char *dgroup, char *err, size_t errlen)
{
	const char *user = cf->user != NULL ? cf->user : duser;
	const char *group = cf->group != NULL ? cf->group : dgroup;
	uid_t uid = geteuid();
	gid_t gid = getegid();
	size_t n = 0;

	memset(id, 0, sizeof(*id));
	if (cf->name == NULL || cf->name[0] == '\0')
		return mh_errf(err, errlen, "a supervised milter has no name");
	if (cf->command[0] == NULL || cf->command[0][0] != '/')
		return mh_errf(err, errlen, "milter %s: command must start with an absolute path",
		               cf->name);
	if (user != NULL) {
		struct passwd *pw = getpwnam(user);
		if (pw == NULL)
			return mh_errf(err, errlen, "milter %s: unknown user %s", cf->name, user);
		uid = pw->pw_uid;
		gid = pw->pw_gid;
	}
	if (group != NULL) {
		struct group *gr = getgrnam(group);
		if (gr == NULL)
			return mh_errf(err, errlen, "milter %s: unknown group %s", cf->name, group);
		gid = gr->gr_gid;
	}
	if (geteuid() == 0) {
		id->set_uid = user != NULL;
		id->set_gid = user != NULL || group != NULL;
	} else if (uid != geteuid()) {
		return mh_errf(
		    err, errlen,
		    "milter %s: cannot run it as user %s: the master does not run as root",
		    cf->name, user);
	} else if (group != NULL && gid != getegid()) {
		return mh_errf(
		    err, errlen,
		    "milter %s: cannot run it as group %s: the master does not run as root",
		    cf->name, group);
	}
	id->uid = uid;
	id->gid = gid;
	while (cf->command[n] != NULL)
		n++;
	id->argv = mh_xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		id->argv[i] = mh_xstrdup(cf->command[i]);
	id->user = user != NULL ? mh_xstrdup(user) : NULL;
	id->group = group != NULL ? mh_xstrdup(group) : NULL;
	id->sock = cf->sock;
	id->socket_text = mh_xstrdup(cf->socket_text != NULL ? cf->socket_text : cf->sock.text);
	return 0;
}

/* Take the tunables (apply keeps a running process but uses new ones). */
static void take_tunables(struct sup_child *c, const struct mh_child_conf *cf)
{
	c->health_interval = cf->health_interval > 0 ? cf->health_interval : 10;
	if (c->restart_delay != (cf->restart_delay >= 0 ? cf->restart_delay : 1)) {
		c->restart_delay = cf->restart_delay >= 0 ? cf->restart_delay : 1;
		c->next_delay = c->restart_delay;
	}
	c->hc.connect_timeout = cf->connect_timeout > 0 ? cf->connect_timeout : 5;
	c->hc.read_timeout = cf->read_timeout > 0 ? cf->read_timeout : 7;
	c->hc.write_timeout = cf->write_timeout > 0 ? cf->write_timeout : 7;
	c->hc.eom_timeout = c->hc.read_timeout;
}

/* Point the health check's conf at the current identity (no check running). */
static void hc_refresh(struct sup_child *c)
{
	c->hc.name = c->name;
	c->hc.socket_text = c->id.socket_text;
	c->hc.sock = c->id.sock;
	c->hc.fallback = MH_ST_ACCEPT;
	c->hc.enabled = 1;
}

/* ------------------------------------------------------------ state */

static void set_state(struct sup_child *c, enum mh_sup_state st)
{
	struct mh_supervise *sv = c->sv;

	if (c->state == st)
		return;
	c->state = st;
	c->since = ev_now(sv->loop);
	if (sv->ops.on_state == NULL || c->removing)
		return;
	if (sv->in_apply) {
		/* the header promises on_state only from the loop */
		c->notify = 1;
		ev_timer_start(sv->loop, &sv->notify_w);
		return;
	}
	c->notify = 0;
	sv->ops.on_state(c->name, st, sv->ops.arg);
}

static void on_notify(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct mh_supervise *sv = w->data;

	for (struct sup_child *c = sv->children; c != NULL; c = c->next) {
		if (!c->notify)
			continue;
		c->notify = 0;
		if (!c->removing)
			sv->ops.on_state(c->name, c->state, sv->ops.arg);
	}
}

static void maybe_done(struct mh_supervise *sv)
{
	if (!sv->stopping || sv->done == NULL)
		return;
	for (struct sup_child *c = sv->children; c != NULL; c = c->next)
		if (c->pid != 0)
			return;
	ev_timer_start(sv->loop, &sv->done_w);
}

static void on_done(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct mh_supervise *sv = w->data;
	void (*done)(void *) = sv->done;

	sv->done = NULL;
	if (done != NULL)
		done(sv->done_arg);
}

/* ------------------------------------------------------------ output pipes */

static void pipe_emit(struct sup_pipe *p, int flush_all)
{
	struct sup_child *c = p->c;

	while (mh_buf_size(&p->line) > 0) {
		const char *s = (const char *)mh_buf_head(&p->line);
		size_t n = mh_buf_size(&p->line), len, used;
		const char *nl = memchr(s, '\n', n);

		if (nl != NULL) {
			len = (size_t)(nl - s);
			used = len + 1;
		} else if (n >= SUP_LINE_MAX || flush_all) {
			len = used = n > SUP_LINE_MAX ? SUP_LINE_MAX : n;
		} else {
			return;
		}
		if (len > 0 && s[len - 1] == '\r')
			len--;
		mh_info(0, "child %s[%d]: %.*s", c->name, (int)c->pid, (int)len, s);
		mh_buf_consume(&p->line, used);
	}
}

static void pipe_close(struct sup_pipe *p, struct ev_loop *loop)
{
	if (p->fd < 0)
		return;
	ev_io_stop(loop, &p->w);
	close(p->fd);
	p->fd = -1;
	mh_buf_free(&p->line);
}

/* One read per readiness; drain = read until nothing is left (after the exit). */
static void pipe_read(struct sup_pipe *p, struct ev_loop *loop, int drain)
{
	char buf[4096];

	while (p->fd >= 0) {
		ssize_t n = read(p->fd, buf, sizeof(buf));
		if (n > 0) {
			mh_buf_append(&p->line, buf, (size_t)n);
			pipe_emit(p, 0);
			if (!drain)
				return;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && !drain)
			return;
		/* EOF, an error, or nothing more after the exit */
		pipe_emit(p, 1);
		pipe_close(p, loop);
	}
}

static void on_pipe(struct ev_loop *loop, ev_io *w, int revents)
{
	pipe_read(w->data, loop, 0);
}

/* ------------------------------------------------------------ signals */

static void signal_group(pid_t pid, int sig)
{
	if (kill(-pid, sig) < 0)
		(void)kill(pid, sig);
}

static void on_kill_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct sup_child *c = w->data;

	if (c->pid == 0)
		return;
	mh_warn(0, "child %s[%d] still runs after SIGTERM; sending SIGKILL", c->name, (int)c->pid);
	signal_group(c->pid, SIGKILL);
}

static void cancel_check(struct sup_child *c)
{
	ev_timer_stop(c->sv->loop, &c->deadline_w);
	if (c->check != NULL) {
		mh_child_free(c->check);
		c->check = NULL;
	}
}

/* SIGTERM now, SIGKILL after grace; a shorter grace brings SIGKILL forward. */
static void terminate(struct sup_child *c, double grace, const char *why)
{
	struct ev_loop *loop = c->sv->loop;

	if (c->pid == 0)
		return;
	ev_timer_stop(loop, &c->health_w);
	cancel_check(c);
	if (c->term_sent) {
		if (ev_timer_remaining(loop, &c->kill_w) > grace) {
			ev_timer_stop(loop, &c->kill_w);
			ev_timer_set(&c->kill_w, grace, 0.);
			ev_timer_start(loop, &c->kill_w);
		}
		return;
	}
	mh_info(0, "child %s[%d]: %s; sending SIGTERM (SIGKILL after %g s)", c->name, (int)c->pid,
	        why, grace);
	c->term_sent = 1;
	signal_group(c->pid, SIGTERM);
	ev_timer_set(&c->kill_w, grace, 0.);
	ev_timer_start(loop, &c->kill_w);
}

/* ------------------------------------------------------------ health */

static void schedule_check(struct sup_child *c, double after)
{
	ev_timer_stop(c->sv->loop, &c->health_w);
	ev_timer_set(&c->health_w, after, 0.);
	ev_timer_start(c->sv->loop, &c->health_w);
}

static void check_result(struct sup_child *c, int ok, const char *why)
{
	double now = ev_now(c->sv->loop);

	if (c->pid == 0 || c->term_sent)
		return;
	if (ok) {
		c->fails = 0;
		if (c->state != MH_SUP_UP && c->polling)
			mh_info(0, "child %s[%d] is up (answered %.1f s after its start)", c->name,
			        (int)c->pid, now - c->started);
		else if (c->state != MH_SUP_UP)
			mh_info(0, "child %s[%d] is up again: health check passed", c->name,
			        (int)c->pid);
		set_state(c, MH_SUP_UP);
		c->polling = 0;
		schedule_check(c, c->health_interval);
		return;
	}
	if (c->polling) {
		if (now >= c->poll_until) {
			c->polling = 0;
			mh_warn(0, "child %s[%d] has not answered in %g s; checking every %g s",
			        c->name, (int)c->pid, SUP_POLL_FOR, c->health_interval);
		} else if (now < c->strike_due) {
			schedule_check(c, SUP_POLL); /* still coming up: not a strike yet */
			return;
		}
		c->strike_due = now + c->health_interval;
	}
	c->fails++;
	mh_warn(0, "child %s[%d]: health check failed (%d of %d in a row): %s", c->name,
	        (int)c->pid, c->fails, SUP_STRIKES, why);
	if (c->state != MH_SUP_DOWN) {
		mh_warn(0, "child %s[%d] is down: %s", c->name, (int)c->pid, why);
		set_state(c, MH_SUP_DOWN);
	}
	if (c->fails >= SUP_STRIKES) {
		terminate(c, SUP_KILL_GRACE, "failed its health check 3 times in a row");
		return;
	}
	schedule_check(c, c->polling ? SUP_POLL : c->health_interval);
}

static void check_negotiated(struct mh_child *link, int ok, void *arg)
{
	struct sup_child *c = arg;

	ev_timer_stop(c->sv->loop, &c->deadline_w);
	c->check = NULL;
	if (ok)
		mh_child_quit(link);
	else
		mh_child_free(link);
	check_result(c, ok, "no milter negotiation (see the line above)");
}

static void check_answer(struct mh_child *link, const struct mh_child_answer *a, void *arg)
{
	/* never: the link is closed as soon as it negotiated */
}

static void check_progress(struct mh_child *link, void *arg) {}

static void check_modification(struct mh_child *link, const struct mh_reply *mod, void *arg) {}

static const struct mh_child_ops check_ops = {
    .on_negotiated = check_negotiated,
    .on_answer = check_answer,
    .on_progress = check_progress,
    .on_modification = check_modification,
};

static void on_check_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct sup_child *c = w->data;
	char why[64];

	cancel_check(c);
	snprintf(why, sizeof(why), "no negotiation within %g s",
	         c->hc.connect_timeout + c->hc.read_timeout);
	check_result(c, 0, why);
}

static void on_health_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct sup_child *c = w->data;
	struct mh_optneg offer;
	char err[256];

	if (c->pid == 0 || c->term_sent || c->check != NULL)
		return;
	if (c->polling) {
		int done;
		int fd = mh_sockspec_connect_ex(&c->id.sock, &done, err, sizeof(err));
		if (fd < 0) {
			check_result(c, 0, err);
			return;
		}
		close(fd);
	}
	/* the hub's offer (mh_hub.c mta_on_optneg), with every v6 action */
	memset(&offer, 0, sizeof(offer));
	offer.version = 6;
	offer.actions = MH_ACT_V6_MASK;
	offer.protocol = MH_PROTO_V6_MASK;
	c->check = mh_child_new(loop, &c->hc, &offer, 0, &check_ops, c, err, sizeof(err));
	if (c->check == NULL) {
		check_result(c, 0, err);
		return;
	}
	/* mh_child has its own deadlines; this one only makes sure a check ends */
	ev_timer_set(&c->deadline_w, c->hc.connect_timeout + c->hc.read_timeout + 0.5, 0.);
	ev_timer_start(loop, &c->deadline_w);
}

/* ------------------------------------------------------------ exits and restarts */

static void describe_status(int status, char *buf, size_t len)
{
	if (WIFEXITED(status)) {
		snprintf(buf, len, "exit status %d", WEXITSTATUS(status));
	} else if (WIFSIGNALED(status)) {
		const char *name = sigabbrev_np(WTERMSIG(status));
		if (name != NULL)
			snprintf(buf, len, "killed by SIG%s%s", name,
			         WCOREDUMP(status) ? " (core dumped)" : "");
		else
			snprintf(buf, len, "killed by signal %d", WTERMSIG(status));
	} else {
		snprintf(buf, len, "status 0x%x", (unsigned)status);
	}
}

/* Backoff: restart_delay, doubling on each quick death, capped at 60 s. */
static double take_delay(struct sup_child *c, double ran)
{
	double cap = c->restart_delay > SUP_MAX_DELAY ? c->restart_delay : SUP_MAX_DELAY;
	double d;

	if (ran >= SUP_MAX_DELAY)
		c->next_delay = c->restart_delay;
	d = c->next_delay;
	c->next_delay = d * 2 < SUP_POLL ? SUP_POLL : d * 2;
	if (c->next_delay > cap)
		c->next_delay = cap;
	return d;
}

static void schedule_restart(struct sup_child *c, double delay)
{
	struct ev_loop *loop = c->sv->loop;

	set_state(c, MH_SUP_DOWN);
	ev_timer_stop(loop, &c->restart_w);
	ev_timer_set(&c->restart_w, delay, 0.);
	ev_timer_start(loop, &c->restart_w);
}

static void on_restart_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct sup_child *c = w->data;

	if (c->sv->stopping || c->pid != 0)
		return;
	c->restarts++;
	spawn(c);
}

static void child_free(struct sup_child *c);

static void unlink_child(struct sup_child *c)
{
	struct sup_child **pp = &c->sv->children;

	while (*pp != c)
		pp = &(*pp)->next;
	*pp = c->next;
}

static void drop_pending(struct sup_child *c)
{
	if (c->pending != NULL) {
		ident_free(c->pending);
		free(c->pending);
		c->pending = NULL;
	}
}

/* The changed identity becomes the current one (no process runs). */
static void take_pending(struct sup_child *c)
{
	ident_free(&c->id);
	c->id = *c->pending;
	free(c->pending);
	c->pending = NULL;
	hc_refresh(c);
	c->next_delay = c->restart_delay;
}

static void on_exit_status(struct ev_loop *loop, ev_child *w, int revents)
{
	struct sup_child *c = w->data;
	struct mh_supervise *sv = c->sv;
	double ran = ev_now(loop) - c->started;
	pid_t pid = c->pid;
	char how[96];

	ev_child_stop(loop, w);
	ev_timer_stop(loop, &c->kill_w);
	ev_timer_stop(loop, &c->health_w);
	cancel_check(c);
	pipe_read(&c->out, loop, 1); /* what it wrote before exiting, still with its pid */
	pipe_read(&c->err, loop, 1);
	c->pid = 0;
	c->term_sent = 0;
	describe_status(w->rstatus, c->last_exit, sizeof(c->last_exit));
	if (WIFEXITED(w->rstatus))
		snprintf(how, sizeof(how), "exited with status %d", WEXITSTATUS(w->rstatus));
	else
		snprintf(how, sizeof(how), "%s", c->last_exit);
	if (c->removing || sv->stopping) {
		mh_info(0, "child %s[%d] %s after %.1f s; %s", c->name, (int)pid, how, ran,
		        c->removing ? "no longer configured" : "not restarting");
		if (c->removing) {
			unlink_child(c);
			child_free(c);
		} else {
			set_state(c, MH_SUP_DOWN);
		}
		maybe_done(sv);
	} else if (c->pending != NULL) {
		mh_info(0, "child %s[%d] %s after %.1f s; starting its new command", c->name,
		        (int)pid, how, ran);
		take_pending(c);
		set_state(c, MH_SUP_DOWN);
		spawn(c);
	} else {
		double delay = take_delay(c, ran);
		mh_info(0, "child %s[%d] %s after %.1f s; restarting in %g s", c->name, (int)pid,
		        how, ran, delay);
		schedule_restart(c, delay);
	}
}

/* ------------------------------------------------------------ starting */

/* The forked child: set up and exec, or report on stderr and exit 127. */
static void __attribute__((noreturn))
exec_child(const struct sup_ident *id, int nul, int outw, int errw, pid_t master,
           const gid_t *groups, int ngroups)
{
	sigset_t none;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int s = 1; s < NSIG; s++)
		if (s != SIGKILL && s != SIGSTOP)
			signal(s, SIG_DFL);
	setsid();
	/* lift the three above 2 first, so dup2 cannot clobber one of them */
	nul = fcntl(nul, F_DUPFD, 3);
	outw = fcntl(outw, F_DUPFD, 3);
	errw = fcntl(errw, F_DUPFD, 3);
	if (nul < 0 || outw < 0 || errw < 0 || dup2(nul, 0) < 0 || dup2(outw, 1) < 0 ||
	    dup2(errw, 2) < 0)
		_exit(127);
	if (close_range(3, ~0U, 0) < 0) {
		long max = sysconf(_SC_OPEN_MAX);
		for (long fd = 3; fd < (max > 0 ? max : 65536); fd++)
			close((int)fd);
	}
	if (id->set_gid) {
		if (id->set_uid ? setgroups((size_t)ngroups, groups) < 0
		                : setgroups(1, &id->gid) < 0) {
			dprintf(2, "setgroups: %s\n", strerror(errno));
			_exit(127);
		}
		if (setgid(id->gid) < 0) {
			dprintf(2, "setgid %u: %s\n", (unsigned)id->gid, strerror(errno));
			_exit(127);
		}
	}
	if (id->set_uid && setuid(id->uid) < 0) {
		dprintf(2, "setuid %u: %s\n", (unsigned)id->uid, strerror(errno));
		_exit(127);
	}
	/* after the credential change, which clears it */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != master)
		_exit(127);
	execv(id->argv[0], id->argv);
	dprintf(2, "cannot execute %s: %s\n", id->argv[0], strerror(errno));
	_exit(127);
}

static void pipe_open(struct sup_pipe *p, struct ev_loop *loop, int fd)
{
	p->fd = fd;
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	ev_io_set(&p->w, fd, EV_READ);
	ev_io_start(loop, &p->w);
}

static void spawn(struct sup_child *c)
{
	struct ev_loop *loop = c->sv->loop;
	int outp[2] = {-1, -1}, errp[2] = {-1, -1}, nul = -1;
	gid_t *groups = NULL;
	int ngroups = 0;
	struct mh_buf cmd = MH_BUF_INIT;
	pid_t pid = -1, master = getpid();

	ev_now_update(loop);
	if (c->id.set_uid) {
		ngroups = 32;
		groups = mh_xcalloc((size_t)ngroups, sizeof(gid_t));
		if (getgrouplist(c->id.user, c->id.gid, groups, &ngroups) < 0) {
			groups = mh_xrealloc(groups, (size_t)ngroups * sizeof(gid_t));
			if (getgrouplist(c->id.user, c->id.gid, groups, &ngroups) < 0)
				ngroups = 0;
		}
	}
	if (pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0 ||
	    (nul = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0 || (pid = fork()) < 0) {
		mh_err(0, "child %s: cannot start: %s", c->name, strerror(errno));
	} else if (pid == 0) {
		exec_child(&c->id, nul, outp[1], errp[1], master, groups, ngroups);
	}
	free(groups);
	if (nul >= 0)
		close(nul);
	if (outp[1] >= 0)
		close(outp[1]);
	if (errp[1] >= 0)
		close(errp[1]);
	if (pid < 0) {
		if (outp[0] >= 0)
			close(outp[0]);
		if (errp[0] >= 0)
			close(errp[0]);
		double delay = take_delay(c, 0);
		snprintf(c->last_exit, sizeof(c->last_exit), "could not start");
		mh_err(0, "child %s: retrying in %g s", c->name, delay);
		schedule_restart(c, delay);
		return;
	}
	c->pid = pid;
	c->started = ev_now(loop);
	c->term_sent = 0;
	pipe_open(&c->out, loop, outp[0]);
	pipe_open(&c->err, loop, errp[0]);
	ev_child_set(&c->exit_w, pid, 0);
	ev_child_start(loop, &c->exit_w);
	for (char **a = c->id.argv; *a != NULL; a++)
		mh_buf_printf(&cmd, "%s%s", a == c->id.argv ? "" : " ", *a);
	mh_info(0, "child %s started: pid %d: %s", c->name, (int)pid, (const char *)cmd.data);
	mh_buf_free(&cmd);
	c->fails = 0;
	c->polling = 1;
	c->poll_until = c->started + SUP_POLL_FOR;
	c->strike_due = c->started + c->health_interval;
	set_state(c, MH_SUP_STARTING);
	schedule_check(c, SUP_POLL);
}

/* ------------------------------------------------------------ children */

static struct sup_child *child_new(struct mh_supervise *sv, const struct mh_child_conf *cf,
                                   struct sup_ident *id)
{
	struct sup_child *c = mh_xcalloc(1, sizeof(*c));

	c->sv = sv;
	c->name = mh_xstrdup(cf->name);
	c->id = *id;
	memset(id, 0, sizeof(*id));
	c->restart_delay = -1; /* so take_tunables sets next_delay */
	take_tunables(c, cf);
	hc_refresh(c);
	c->state = MH_SUP_DOWN;
	c->since = ev_now(sv->loop);
	c->out.c = c->err.c = c;
	c->out.fd = c->err.fd = -1;
	ev_io_init(&c->out.w, on_pipe, -1, EV_READ);
	ev_io_init(&c->err.w, on_pipe, -1, EV_READ);
	c->out.w.data = &c->out;
	c->err.w.data = &c->err;
	ev_child_init(&c->exit_w, on_exit_status, 0, 0);
	ev_timer_init(&c->restart_w, on_restart_timer, 0., 0.);
	ev_timer_init(&c->health_w, on_health_timer, 0., 0.);
	ev_timer_init(&c->kill_w, on_kill_timer, 0., 0.);
	ev_timer_init(&c->deadline_w, on_check_deadline, 0., 0.);
	c->exit_w.data = c->restart_w.data = c->health_w.data = c->kill_w.data =
	    c->deadline_w.data = c;
	c->next = sv->children;
	sv->children = c;
	return c;
}

/* Stop watching and free; the process, if any, is neither signalled nor waited for. */
static void child_free(struct sup_child *c)
{
	struct ev_loop *loop = c->sv->loop;

	cancel_check(c);
	ev_child_stop(loop, &c->exit_w);
	ev_timer_stop(loop, &c->restart_w);
	ev_timer_stop(loop, &c->health_w);
	ev_timer_stop(loop, &c->kill_w);
	pipe_close(&c->out, loop);
	pipe_close(&c->err, loop);
	ident_free(&c->id);
	drop_pending(c);
	free(c->name);
	free(c);
}

/* No longer configured: stop it, forget it once it exited. */
static void child_remove(struct sup_child *c)
{
	ev_timer_stop(c->sv->loop, &c->restart_w);
	c->removing = 1;
	c->notify = 0;
	if (c->pid == 0) {
		unlink_child(c);
		child_free(c);
		return;
	}
	terminate(c, SUP_KILL_GRACE, "no longer configured");
}

/* Command, user, group or socket changed: restart with the new identity. */
static void child_replace(struct sup_child *c, struct sup_ident *id)
{
	drop_pending(c);
	c->pending = mh_xmalloc(sizeof(*c->pending));
	*c->pending = *id;
	memset(id, 0, sizeof(*id));
	if (c->pid != 0) {
		terminate(c, SUP_KILL_GRACE, "its command, user, group or socket changed");
		return; /* on_exit_status starts the new one */
	}
	ev_timer_stop(c->sv->loop, &c->restart_w);
	take_pending(c);
	spawn(c);
}

static struct sup_child *find_child(const struct mh_supervise *sv, const char *name)
{
	for (struct sup_child *c = sv->children; c != NULL; c = c->next)
		if (!c->removing && strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

/* ------------------------------------------------------------ public */

struct mh_supervise *mh_supervise_new(struct ev_loop *loop, const struct mh_supervise_ops *ops)
{
	struct mh_supervise *sv = mh_xcalloc(1, sizeof(*sv));

	sv->loop = loop;
	if (ops != NULL)
		sv->ops = *ops;
	ev_timer_init(&sv->notify_w, on_notify, 0., 0.);
	ev_timer_init(&sv->done_w, on_done, 0., 0.);
	sv->notify_w.data = sv->done_w.data = sv;
	return sv;
}

int mh_supervise_apply(struct mh_supervise *sv, const struct mh_child_conf *children, size_t n,
                       const char *default_user, const char *default_group, char *err,
                       size_t errlen)
{
	struct sup_ident *ids;
	int rc = 0;

	if (sv->stopping)
		return mh_errf(err, errlen, "the supervisor is stopping");
	/* everything is checked before anything changes */
	ids = mh_xcalloc(n > 0 ? n : 1, sizeof(*ids));
	for (size_t i = 0; i < n && rc == 0; i++) {
		if (children[i].command == NULL)
			continue;
		rc = ident_build(&ids[i], &children[i], default_user, default_group, err, errlen);
		for (size_t j = 0; j < i && rc == 0; j++)
			if (children[j].command != NULL &&
			    strcmp(children[j].name, children[i].name) == 0)
				rc = mh_errf(err, errlen, "milter %s is configured twice",
				             children[i].name);
	}
	if (rc != 0) {
		for (size_t i = 0; i < n; i++)
			ident_free(&ids[i]);
		free(ids);
		return -1;
	}

	sv->in_apply = 1;
	for (struct sup_child *c = sv->children, *next; c != NULL; c = next) {
		size_t i;

		next = c->next;
		if (c->removing)
			continue;
		for (i = 0; i < n; i++)
			if (children[i].command != NULL && strcmp(children[i].name, c->name) == 0)
				break;
		if (i == n)
			child_remove(c);
	}
	for (size_t i = 0; i < n; i++) {
		struct sup_child *c;

		if (children[i].command == NULL)
			continue;
		c = find_child(sv, children[i].name);
		if (c == NULL) {
			spawn(child_new(sv, &children[i], &ids[i]));
			continue;
		}
		take_tunables(c, &children[i]);
		if (!ident_same(&c->id, &ids[i])) {
			child_replace(c, &ids[i]);
		} else {
			/* changed back before the old process exited: keep what runs */
			drop_pending(c);
		}
		ident_free(&ids[i]);
	}
	sv->in_apply = 0;
	free(ids);
	return 0;
}

int mh_supervise_info(const struct mh_supervise *sv, const char *name, struct mh_sup_info *info)
{
	const struct sup_child *c = find_child(sv, name);

	if (c == NULL)
		return 0;
	if (info != NULL) {
		info->state = c->state;
		info->pid = c->pid;
		info->restarts = c->restarts;
		info->since = c->since;
		snprintf(info->last_exit, sizeof(info->last_exit), "%s", c->last_exit);
	}
	return 1;
}

void mh_supervise_stop(struct mh_supervise *sv, double grace, void (*done)(void *arg), void *arg)
{
	sv->stopping = 1;
	sv->done = done;
	sv->done_arg = arg;
	for (struct sup_child *c = sv->children; c != NULL; c = c->next) {
		ev_timer_stop(sv->loop, &c->restart_w);
		ev_timer_stop(sv->loop, &c->health_w);
		cancel_check(c);
		if (c->pid != 0)
			terminate(c, grace, "stopping");
		else
			set_state(c, MH_SUP_DOWN);
	}
	maybe_done(sv);
}

void mh_supervise_free(struct mh_supervise *sv)
{
	if (sv == NULL)
		return;
	while (sv->children != NULL) {
		struct sup_child *c = sv->children;
		sv->children = c->next;
		child_free(c);
	}
	ev_timer_stop(sv->loop, &sv->notify_w);
	ev_timer_stop(sv->loop, &sv->done_w);
	free(sv);
}

void mh_supervise_forget(struct mh_supervise *sv)
{
	/* the same as free: child_free never signals; the master's copy lives on */
	mh_supervise_free(sv);
}
