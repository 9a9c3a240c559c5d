/*
 * mh_supervise - start, watch and restart the child milters that have a
 * `command` (the contract is in mh_supervise.h; issue 5 item 4).
 *
 * SUMMARY
 *	One sup_child per supervised milter, in a list owned by the
 *	supervisor. Each holds a copy of its identity (argv, user, group,
 *	socket: what makes apply restart it), its tunables (intervals,
 *	timeouts: changed in place), its process (an mh_spawn: pid, output
 *	pipes, exit watcher) and its timers (restart, health, SIGKILL).
 *
 * PROCESSES
 *	mh_spawn forks, execs, switches credentials, reads the output and
 *	reaps the exit; this file decides when. Who a milter may run as is
 *	resolved here (ident_build, during apply, so apply can refuse it);
 *	mh_spawn only switches to it. Signals go to the process group
 *	through mh_spawn_signal, which refuses a pid already reaped.
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
 *	session id). Lines the children write (mh_spawn's on_line) are
 *	logged at INFO as "child NAME[PID]: line".
 */
#include "daemon/mh_supervise.h"

#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon/mh_spawn.h"
#include "util/mh_buf.h"
#include "util/mh_err.h"
#include "util/mh_log.h"

#define SUP_MAX_DELAY 60.0 /* restart delay cap, and the run that resets it */
#define SUP_KILL_GRACE 5.0 /* SIGTERM -> SIGKILL when apply or health kills */
#define SUP_POLL 0.1 /* health polling right after a start */
#define SUP_POLL_FOR 30.0 /* ... for at most this long */
#define SUP_STRIKES 3 /* failed checks in a row before a kill */

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
	struct mh_spawn *proc; /* owned; its pid is 0 while not running */
	double started;
	unsigned restarts;
	char last_exit[96];
	int removing; /* no longer configured: freed once it exited */
	int term_sent;
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

static void child_start(struct sup_child *c);

/* The running process, 0 when none (mh_spawn keeps the pid). */
static pid_t child_pid(const struct sup_child *c)
{
	return mh_spawn_pid(c->proc);
}

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
		if (child_pid(c) != 0)
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

/* ------------------------------------------------------------ the process */

static void on_child_line(int stream, const char *line, size_t len, void *arg)
{
	struct sup_child *c = arg;

	mh_info(0, "child %s[%d]: %.*s", c->name, (int)child_pid(c), (int)len, line);
}

static void on_kill_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct sup_child *c = w->data;

	if (child_pid(c) == 0)
		return;
	mh_warn(0, "child %s[%d] still runs after SIGTERM; sending SIGKILL", c->name,
	        (int)child_pid(c));
	mh_spawn_signal(c->proc, SIGKILL);
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

	if (child_pid(c) == 0)
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
	mh_info(0, "child %s[%d]: %s; sending SIGTERM (SIGKILL after %g s)", c->name,
	        (int)child_pid(c), why, grace);
	c->term_sent = 1;
	mh_spawn_signal(c->proc, SIGTERM);
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

	if (child_pid(c) == 0 || c->term_sent)
		return;
	if (ok) {
		c->fails = 0;
		if (c->state != MH_SUP_UP && c->polling)
			mh_info(0, "child %s[%d] is up (answered %.1f s after its start)", c->name,
			        (int)child_pid(c), now - c->started);
		else if (c->state != MH_SUP_UP)
			mh_info(0, "child %s[%d] is up again: health check passed", c->name,
			        (int)child_pid(c));
		set_state(c, MH_SUP_UP);
		c->polling = 0;
		schedule_check(c, c->health_interval);
		return;
	}
	if (c->polling) {
		if (now >= c->poll_until) {
			c->polling = 0;
			mh_warn(0, "child %s[%d] has not answered in %g s; checking every %g s",
			        c->name, (int)child_pid(c), SUP_POLL_FOR, c->health_interval);
		} else if (now < c->strike_due) {
			schedule_check(c, SUP_POLL); /* still coming up: not a strike yet */
			return;
		}
		c->strike_due = now + c->health_interval;
	}
	c->fails++;
	mh_warn(0, "child %s[%d]: health check failed (%d of %d in a row): %s", c->name,
	        (int)child_pid(c), c->fails, SUP_STRIKES, why);
	if (c->state != MH_SUP_DOWN) {
		mh_warn(0, "child %s[%d] is down: %s", c->name, (int)child_pid(c), why);
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

	if (child_pid(c) == 0 || c->term_sent || c->check != NULL)
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

	if (c->sv->stopping || child_pid(c) != 0)
		return;
	c->restarts++;
	child_start(c);
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

/* mh_spawn's on_exit: its last lines are logged already, with its pid. */
static void on_exit_status(pid_t pid, int status, void *arg)
{
	struct sup_child *c = arg;
	struct mh_supervise *sv = c->sv;
	struct ev_loop *loop = sv->loop;
	double ran = ev_now(loop) - c->started;
	char how[96];

	ev_timer_stop(loop, &c->kill_w);
	ev_timer_stop(loop, &c->health_w);
	cancel_check(c);
	c->term_sent = 0;
	mh_spawn_describe(status, c->last_exit, sizeof(c->last_exit));
	if (WIFEXITED(status))
		snprintf(how, sizeof(how), "exited with status %d", WEXITSTATUS(status));
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
		child_start(c);
	} else {
		double delay = take_delay(c, ran);
		mh_info(0, "child %s[%d] %s after %.1f s; restarting in %g s", c->name, (int)pid,
		        how, ran, delay);
		schedule_restart(c, delay);
	}
}

/* ------------------------------------------------------------ starting */

static void child_start(struct sup_child *c)
{
	struct ev_loop *loop = c->sv->loop;
	struct mh_spawn_cred cred = {
	    .set_uid = c->id.set_uid,
	    .set_gid = c->id.set_gid,
	    .uid = c->id.uid,
	    .gid = c->id.gid,
	    .user = c->id.user,
	};
	struct mh_buf cmd = MH_BUF_INIT;
	char err[256];
	pid_t pid;

	ev_now_update(loop);
	pid = mh_spawn_start(c->proc, c->id.argv, &cred, err, sizeof(err));
	if (pid < 0) {
		mh_err(0, "child %s: cannot start: %s", c->name, err);
		double delay = take_delay(c, 0);
		snprintf(c->last_exit, sizeof(c->last_exit), "could not start");
		mh_err(0, "child %s: retrying in %g s", c->name, delay);
		schedule_restart(c, delay);
		return;
	}
	c->started = ev_now(loop);
	c->term_sent = 0;
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
	struct mh_spawn_ops proc_ops = {
	    .on_line = on_child_line,
	    .on_exit = on_exit_status,
	    .arg = c,
	};

	c->sv = sv;
	c->name = mh_xstrdup(cf->name);
	c->id = *id;
	memset(id, 0, sizeof(*id));
	c->restart_delay = -1; /* so take_tunables sets next_delay */
	take_tunables(c, cf);
	hc_refresh(c);
	c->state = MH_SUP_DOWN;
	c->since = ev_now(sv->loop);
	c->proc = mh_spawn_new(sv->loop, &proc_ops);
	ev_timer_init(&c->restart_w, on_restart_timer, 0., 0.);
	ev_timer_init(&c->health_w, on_health_timer, 0., 0.);
	ev_timer_init(&c->kill_w, on_kill_timer, 0., 0.);
	ev_timer_init(&c->deadline_w, on_check_deadline, 0., 0.);
	c->restart_w.data = c->health_w.data = c->kill_w.data = c->deadline_w.data = c;
	c->next = sv->children;
	sv->children = c;
	return c;
}

/* Stop watching and free; the process, if any, is neither signalled nor waited for. */
static void child_free(struct sup_child *c)
{
	struct ev_loop *loop = c->sv->loop;

	cancel_check(c);
	mh_spawn_free(c->proc);
	ev_timer_stop(loop, &c->restart_w);
	ev_timer_stop(loop, &c->health_w);
	ev_timer_stop(loop, &c->kill_w);
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
	if (child_pid(c) == 0) {
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
	if (child_pid(c) != 0) {
		terminate(c, SUP_KILL_GRACE, "its command, user, group or socket changed");
		return; /* on_exit_status starts the new one */
	}
	ev_timer_stop(c->sv->loop, &c->restart_w);
	take_pending(c);
	child_start(c);
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
			child_start(child_new(sv, &children[i], &ids[i]));
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
		info->pid = child_pid(c);
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
		if (child_pid(c) != 0)
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
