/*
 * mh_supervise - child milter processes the master starts and keeps
 * running (milter blocks with `command`; issue 5 item 4).
 *
 * The master owns one supervisor on its libev loop (the default loop:
 * ev_child watchers live only there). For each supervised milter it
 * forks and execs `command` (setsid, stdin /dev/null, stdout and stderr
 * on pipes whose lines are logged as "child NAME[PID]: line", all other
 * descriptors closed, PR_SET_PDEATHSIG SIGTERM, running as `user` /
 * `group` when the master may switch to them: the child's own, else the
 * manager's), and:
 *   - restarts it when it exits, after restart_delay, doubling on each
 *     quick death up to 60 s; the delay starts over once a run lasted
 *     60 s. Each exit and restart is logged with status and delay.
 *   - health-checks it: connect + milter negotiation (mh_child_new with
 *     a v6 offer, then mh_child_free) every health_interval seconds,
 *     deadline = the child's connect + read timeouts; right after a
 *     start, every 0.1 s until the first success (for at most 30 s,
 *     then at the normal interval). 3 failed checks in a row while the
 *     process runs: logged, the process is killed (SIGTERM, SIGKILL
 *     after 5 s) and restarted like any exit.
 *   - reports its state through ops->on_state: STARTING after a fork,
 *     UP after a successful check, DOWN when it exits, fails a check or
 *     is waiting for its restart. Sessions give a child that is not UP
 *     its fallback at once (the master tells the workers via shared
 *     memory).
 *
 * Ownership: the supervisor copies what it needs from the confs (name,
 * argv, user, group, socket spec, timeouts, intervals): callers may
 * free the config they passed after mh_supervise_apply returns.
 */
#ifndef MH_SUPERVISE_H
#define MH_SUPERVISE_H

#include <ev.h>
#include <stddef.h>
#include <sys/types.h>

#include "child/mh_child.h"

enum mh_sup_state { MH_SUP_STARTING, MH_SUP_UP, MH_SUP_DOWN };

struct mh_supervise;

struct mh_supervise_ops {
	/* name's state changed (called from the loop, never from apply). */
	void (*on_state)(const char *name, enum mh_sup_state st, void *arg);
	void *arg;
};

/* What status / milterhubctl show for one supervised milter. */
struct mh_sup_info {
	enum mh_sup_state state;
	pid_t pid; /* 0 while not running */
	unsigned restarts; /* since the master started */
	double since; /* ev_now() of the last state change */
	char last_exit[96]; /* "exit status 1", "killed by SIGKILL", "" if none yet */
};

struct mh_supervise *mh_supervise_new(struct ev_loop *loop, const struct mh_supervise_ops *ops);

/*
 * Make the running set match the children with a command in children[0..n):
 * a milter whose name, command, user, group and socket are unchanged keeps
 * its process (new intervals and timeouts apply); one new or changed is
 * (re)started; one no longer configured is stopped (SIGTERM, SIGKILL after
 * 5 s). default_user / default_group (may be NULL) apply to children
 * without their own. Returns 0, or -1 with a reason in err when a user or
 * group cannot be used (e.g. not root); then nothing was changed.
 */
int mh_supervise_apply(struct mh_supervise *sv, const struct mh_child_conf *children, size_t n,
                       const char *default_user, const char *default_group, char *err,
                       size_t errlen);

/* Is name supervised? Fills *info when it is (info may be NULL). */
int mh_supervise_info(const struct mh_supervise *sv, const char *name, struct mh_sup_info *info);

/*
 * Stop every process (SIGTERM, SIGKILL after grace seconds), no more
 * restarts; done(arg) is called from the loop once all have exited
 * (at once if none runs).
 */
void mh_supervise_stop(struct mh_supervise *sv, double grace, void (*done)(void *arg), void *arg);

/*
 * In a worker right after fork(): close the descriptors the supervisor
 * holds and stop its watchers without signalling any process; free
 * memory. The master's copy is untouched.
 */
void mh_supervise_forget(struct mh_supervise *sv);

/* Free (the processes must have been stopped, or are left running). */
void mh_supervise_free(struct mh_supervise *sv);

const char *mh_sup_state_name(enum mh_sup_state st); /* "starting" "up" "down" */

#endif
