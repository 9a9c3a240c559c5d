/*
 * test_supervise - mh_supervise with real processes on libev's default
 * loop: the scriptable test milter (MH_TESTMILTER, default
 * ../../tools/testmilter/milterhub-testmilter next to this executable),
 * /bin/false, /bin/sleep and /bin/sh. Every wait is bounded by a timer;
 * the fixture stops the supervisor, checks that every process it saw
 * is gone (and SIGKILLs leftovers so none survives a failed test), and
 * captures stderr (the log) in a file the cases read.
 * MH_SUP_VERBOSE=1 copies each case's log to the real stderr.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemon/mh_supervise.h"
#include "net/mh_sockspec.h"

#define MAXREC 256
#define MAXPIDS 64

static struct ev_loop *loop;
static char testmilter[PATH_MAX + 64];

/* ------------------------------------------------------------ fixture */

struct rec {
	char name[32];
	enum mh_sup_state st;
	double t;
	pid_t pid;
};

struct fx {
	struct mh_supervise *sv;
	char dir[64];
	char logpath[96];
	int saved_stderr;
	struct rec recs[MAXREC];
	int nrecs;
	pid_t pids[MAXPIDS];
	int npids;
	int done_calls;
	/* storage for the confs of a case */
	struct mh_child_conf cf[4];
	char sock[4][128];
	char *argv[4][8];
};

static struct fx *F;

static void track_pid(pid_t pid)
{
	for (int i = 0; i < F->npids; i++)
		if (F->pids[i] == pid)
			return;
	if (F->npids < MAXPIDS)
		F->pids[F->npids++] = pid;
}

static void on_state(const char *name, enum mh_sup_state st, void *arg)
{
	struct fx *fx = arg;
	struct mh_sup_info info;
	struct rec *r;

	assert_true(mh_supervise_info(fx->sv, name, &info));
	assert_int_equal(info.state, st);
	if (fx->nrecs >= MAXREC)
		return;
	r = &fx->recs[fx->nrecs++];
	snprintf(r->name, sizeof(r->name), "%s", name);
	r->st = st;
	r->t = ev_now(loop);
	r->pid = info.pid;
	if (info.pid > 0)
		track_pid(info.pid);
}

static void on_deadline(struct ev_loop *l, ev_timer *w, int revents)
{
	*(int *)w->data = 1;
}

/* Run the loop until pred(arg) holds or secs pass; returns pred's last value. */
static int run_until(int (*pred)(void *), void *arg, double secs)
{
	ev_timer t;
	int expired = 0;

	ev_now_update(loop);
	ev_timer_init(&t, on_deadline, secs, 0.);
	t.data = &expired;
	ev_timer_start(loop, &t);
	while (!pred(arg) && !expired)
		ev_run(loop, EVRUN_ONCE);
	ev_timer_stop(loop, &t);
	return pred(arg);
}

static int never(void *arg)
{
	return 0;
}

static void run_for(double secs)
{
	run_until(never, NULL, secs);
}

static int pid_gone(pid_t pid)
{
	return kill(pid, 0) < 0 && errno == ESRCH;
}

static int pid_gone_pred(void *arg)
{
	return pid_gone(*(pid_t *)arg);
}

static int done_pred(void *arg)
{
	return F->done_calls > 0;
}

static void on_done(void *arg)
{
	F->done_calls++;
}

static int setup(void **state)
{
	static struct fx fx;
	int fd;

	memset(&fx, 0, sizeof(fx));
	F = &fx;
	snprintf(fx.dir, sizeof(fx.dir), "/tmp/test_supervise.XXXXXX");
	assert_non_null(mkdtemp(fx.dir));
	chmod(fx.dir, 0777); /* a milter running as nobody creates its socket here */
	snprintf(fx.logpath, sizeof(fx.logpath), "%s/log", fx.dir);
	fd = open(fx.logpath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	fflush(stderr);
	fx.saved_stderr = dup(2);
	dup2(fd, 2);
	close(fd);
	fx.sv =
	    mh_supervise_new(loop, &(struct mh_supervise_ops){.on_state = on_state, .arg = &fx});
	*state = &fx;
	return 0;
}

static void dump_log(void)
{
	char buf[4096];
	ssize_t n;
	int fd = open(F->logpath, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		if (write(F->saved_stderr, buf, (size_t)n) < 0)
			break;
	close(fd);
}

static int teardown(void **state)
{
	struct fx *fx = *state;
	int leftover = 0;

	if (fx->sv != NULL) {
		fx->done_calls = 0;
		mh_supervise_stop(fx->sv, 1.0, on_done, fx);
		run_until(done_pred, NULL, 5);
		mh_supervise_free(fx->sv);
		fx->sv = NULL;
	}
	for (int i = 0; i < fx->npids; i++) {
		if (pid_gone(fx->pids[i]))
			continue;
		run_until(pid_gone_pred, &fx->pids[i], 1); /* reaped by libev */
		if (!pid_gone(fx->pids[i])) {
			leftover++;
			kill(-fx->pids[i], SIGKILL);
			kill(fx->pids[i], SIGKILL);
			run_until(pid_gone_pred, &fx->pids[i], 2);
		}
	}
	if (getenv("MH_SUP_VERBOSE") != NULL)
		dump_log();
	fflush(stderr);
	dup2(fx->saved_stderr, 2);
	close(fx->saved_stderr);
	{
		char cmd[128];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
		if (system(cmd) != 0)
			fprintf(stderr, "cannot remove %s\n", fx->dir);
	}
	if (leftover) {
		fprintf(stderr, "%d supervised process(es) left behind\n", leftover);
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------ helpers */

static int log_contains(const char *needle)
{
	static char buf[1 << 20];
	int fd = open(F->logpath, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return 0;
	buf[n] = '\0';
	return strstr(buf, needle) != NULL;
}

static int log_pred(void *arg)
{
	return log_contains(arg);
}

/* Conf k: name, socket in the test dir, argv (NULL-terminated, copied pointers). */
static struct mh_child_conf *conf(int k, const char *name, const char *const *argv)
{
	struct mh_child_conf *cf = &F->cf[k];
	char spec[160], err[128];
	int i;

	memset(cf, 0, sizeof(*cf));
	snprintf(F->sock[k], sizeof(F->sock[k]), "%s/%s.sock", F->dir, name);
	snprintf(spec, sizeof(spec), "unix:%s", F->sock[k]);
	assert_int_equal(mh_sockspec_parse(spec, &cf->sock, err, sizeof(err)), 0);
	cf->name = (char *)name;
	cf->socket_text = cf->sock.text;
	cf->enabled = 1;
	cf->connect_timeout = 1;
	cf->read_timeout = 1;
	cf->write_timeout = 1;
	cf->eom_timeout = 1;
	cf->health_interval = 0.3;
	cf->restart_delay = 0.2;
	for (i = 0; argv[i] != NULL && i < 7; i++)
		F->argv[k][i] = (char *)argv[i];
	F->argv[k][i] = NULL;
	cf->command = F->argv[k];
	return cf;
}

/* The test milter listening on conf k's socket. */
static struct mh_child_conf *milter_conf(int k, const char *name)
{
	static char listen[4][160];
	const char *argv[] = {testmilter, "--listen", listen[k], NULL};

	snprintf(listen[k], sizeof(listen[k]), "unix:%s/%s.sock", F->dir, name);
	struct mh_child_conf *cf = conf(k, name, argv);

	cf->health_interval = 1; /* slow builds (ASan) may take a while to listen */
	return cf;
}

static void apply(size_t n)
{
	char err[256] = "";
	int rc = mh_supervise_apply(F->sv, F->cf, n, NULL, NULL, err, sizeof(err));
	if (rc != 0)
		fail_msg("apply: %s", err);
}

struct want {
	const char *name;
	enum mh_sup_state st;
	pid_t not_pid; /* the state must be reached by another process than this one */
};

static int state_pred(void *arg)
{
	struct want *w = arg;
	struct mh_sup_info info;

	return mh_supervise_info(F->sv, w->name, &info) && info.state == w->st &&
	       info.pid != w->not_pid;
}

static int wait_state(const char *name, enum mh_sup_state st, pid_t not_pid, double secs)
{
	struct want w = {name, st, not_pid};
	return run_until(state_pred, &w, secs);
}

static struct mh_sup_info info_of(const char *name)
{
	struct mh_sup_info info;

	memset(&info, 0, sizeof(info));
	assert_true(mh_supervise_info(F->sv, name, &info));
	return info;
}

static int count_recs(const char *name, enum mh_sup_state st)
{
	int n = 0;
	for (int i = 0; i < F->nrecs; i++)
		if (strcmp(F->recs[i].name, name) == 0 && F->recs[i].st == st)
			n++;
	return n;
}

/* Time of the k-th (0-based) record of name in state st, or -1. */
static double rec_time(const char *name, enum mh_sup_state st, int k)
{
	for (int i = 0; i < F->nrecs; i++)
		if (strcmp(F->recs[i].name, name) == 0 && F->recs[i].st == st && k-- == 0)
			return F->recs[i].t;
	return -1;
}

/* Time of the first record of name in state st at index >= from, or -1. */
static double rec_time_from(const char *name, enum mh_sup_state st, int from)
{
	for (int i = from; i < F->nrecs; i++)
		if (strcmp(F->recs[i].name, name) == 0 && F->recs[i].st == st)
			return F->recs[i].t;
	return -1;
}

static int rec_index_from(const char *name, enum mh_sup_state st, int from)
{
	for (int i = from; i < F->nrecs; i++)
		if (strcmp(F->recs[i].name, name) == 0 && F->recs[i].st == st)
			return i;
	return F->nrecs;
}

struct nrec {
	const char *name;
	enum mh_sup_state st;
	int n;
};

static int nrec_pred(void *arg)
{
	struct nrec *w = arg;
	return count_recs(w->name, w->st) >= w->n;
}

/* ------------------------------------------------------------ cases */

static void milter_comes_up(void **state)
{
	struct mh_sup_info info;

	milter_conf(0, "tm");
	apply(1);
	/* on_state only from the loop, never from apply */
	assert_int_equal(F->nrecs, 0);
	assert_true(wait_state("tm", MH_SUP_UP, 0, 5));
	info = info_of("tm");
	assert_true(info.pid > 0);
	assert_int_equal(info.restarts, 0);
	assert_string_equal(info.last_exit, "");
	assert_int_equal(F->recs[0].st, MH_SUP_STARTING);
	assert_int_equal(F->recs[1].st, MH_SUP_UP);
	assert_true(F->recs[1].t - F->recs[0].t < 3);
	assert_false(mh_supervise_info(F->sv, "nope", NULL));
	assert_string_equal(mh_sup_state_name(MH_SUP_UP), "up");
	assert_string_equal(mh_sup_state_name(MH_SUP_STARTING), "starting");
	assert_string_equal(mh_sup_state_name(MH_SUP_DOWN), "down");
	{
		char line[PATH_MAX + 128];
		snprintf(line, sizeof(line),
		         "child tm started: pid %d: %s --listen unix:", (int)info.pid, testmilter);
		assert_true(log_contains(line));
		snprintf(line, sizeof(line), "child tm[%d] is up", (int)info.pid);
		assert_true(log_contains(line));
	}
	/* it stays up: later checks succeed */
	run_for(1.0);
	assert_int_equal(info_of("tm").state, MH_SUP_UP);
	assert_int_equal(info_of("tm").pid, info.pid);
	assert_int_equal(count_recs("tm", MH_SUP_DOWN), 0);
}

static void killed_milter_is_restarted_with_backoff(void **state)
{
	pid_t pid1, pid2;
	double down1, start2, down2, start3;
	struct mh_sup_info info;
	int mark, i;

	milter_conf(0, "tm");
	apply(1);
	assert_true(wait_state("tm", MH_SUP_UP, 0, 5));
	pid1 = info_of("tm").pid;

	mark = F->nrecs;
	assert_int_equal(kill(pid1, SIGKILL), 0);
	assert_true(wait_state("tm", MH_SUP_DOWN, -1, 1));
	info = info_of("tm");
	assert_int_equal(info.pid, 0);
	assert_string_equal(info.last_exit, "killed by SIGKILL");
	assert_true(pid_gone(pid1));
	assert_true(wait_state("tm", MH_SUP_UP, pid1, 5));
	info = info_of("tm");
	pid2 = info.pid;
	assert_true(pid2 > 0 && pid2 != pid1);
	assert_int_equal(info.restarts, 1);
	i = rec_index_from("tm", MH_SUP_DOWN, mark);
	down1 = rec_time_from("tm", MH_SUP_DOWN, mark);
	start2 = rec_time_from("tm", MH_SUP_STARTING, i);
	assert_true(start2 - down1 >= 0.18 && start2 - down1 < 1.0);

	/* a quick second death: the delay doubles */
	mark = F->nrecs;
	assert_int_equal(kill(pid2, SIGKILL), 0);
	assert_true(wait_state("tm", MH_SUP_UP, pid2, 5));
	assert_int_equal(info_of("tm").restarts, 2);
	i = rec_index_from("tm", MH_SUP_DOWN, mark);
	down2 = rec_time_from("tm", MH_SUP_DOWN, mark);
	start3 = rec_time_from("tm", MH_SUP_STARTING, i);
	assert_true(start3 - down2 >= 0.38 && start3 - down2 < 1.5);
	{
		char line[128];
		snprintf(line, sizeof(line), "child tm[%d] killed by SIGKILL after ", (int)pid2);
		assert_true(log_contains(line));
		assert_true(log_contains("; restarting in 0.4 s"));
		assert_true(log_contains("; restarting in 0.2 s"));
	}
}

static void stalled_milter_goes_down_and_up_again(void **state)
{
	pid_t pid;
	char line[128];

	milter_conf(0, "tm")->health_interval = 0.3;
	apply(1);
	assert_true(wait_state("tm", MH_SUP_UP, 0, 5));
	pid = info_of("tm").pid;
	/* stopped: connects still queue, but negotiation times out (1 s) */
	assert_int_equal(kill(pid, SIGSTOP), 0);
	assert_true(wait_state("tm", MH_SUP_DOWN, -1, 3));
	assert_int_equal(info_of("tm").pid, pid);
	assert_int_equal(kill(pid, SIGCONT), 0);
	assert_true(wait_state("tm", MH_SUP_UP, 0, 3));
	assert_int_equal(info_of("tm").pid, pid);
	assert_int_equal(info_of("tm").restarts, 0);
	snprintf(line, sizeof(line), "child tm[%d] is down: ", (int)pid);
	assert_true(log_contains(line));
	snprintf(line, sizeof(line), "child tm[%d] is up again", (int)pid);
	assert_true(log_contains(line));
}

static void exiting_command_is_restarted_with_growing_delays(void **state)
{
	const char *argv[] = {"/bin/false", NULL};
	struct nrec w = {"f", MH_SUP_STARTING, 5};
	double gap[4];

	conf(0, "f", argv)->restart_delay = 0.05;
	apply(1);
	/* delays 0.05 0.1 0.2 0.4 before the 5th start */
	assert_true(run_until(nrec_pred, &w, 5));
	assert_int_equal(count_recs("f", MH_SUP_UP), 0);
	for (int k = 0; k < 4; k++)
		gap[k] = rec_time("f", MH_SUP_STARTING, k + 1) - rec_time("f", MH_SUP_DOWN, k);
	assert_true(gap[0] >= 0.04);
	for (int k = 1; k < 4; k++)
		assert_true(gap[k] > gap[k - 1] * 1.5);
	assert_true(gap[3] >= 0.38 && gap[3] < 1.5);
	assert_true(info_of("f").restarts >= 4);
	assert_string_equal(info_of("f").last_exit, "exit status 1");
	assert_true(log_contains("] exited with status 1 after 0.0 s; restarting in 0.05 s"));
	assert_true(log_contains("; restarting in 0.1 s"));
}

static void silent_process_is_killed_after_three_failed_checks(void **state)
{
	const char *argv[] = {"/bin/sleep", "100", NULL};
	pid_t pid1;
	double start1, start2;

	conf(0, "mute", argv);
	apply(1);
	assert_true(wait_state("mute", MH_SUP_STARTING, 0, 1));
	pid1 = info_of("mute").pid;
	assert_true(pid1 > 0);
	/* 3 strikes, one per health_interval (0.3 s), then SIGTERM, then 0.2 s */
	assert_true(wait_state("mute", MH_SUP_STARTING, pid1, 5));
	assert_true(pid_gone(pid1));
	assert_int_equal(info_of("mute").restarts, 1);
	assert_int_equal(count_recs("mute", MH_SUP_UP), 0);
	start1 = rec_time("mute", MH_SUP_STARTING, 0);
	start2 = rec_time("mute", MH_SUP_STARTING, 1);
	assert_true(start2 - start1 >= 0.85 + 0.18);
	assert_true(start2 - start1 < 3);
	assert_true(log_contains("health check failed (3 of 3 in a row)"));
	assert_true(log_contains("failed its health check 3 times in a row; sending SIGTERM"));
	assert_true(log_contains("killed by SIGTERM after "));
	/* the quick polls while coming up are not each a strike */
	assert_false(log_contains("health check failed (4 of 3"));
}

static void apply_restarts_changed_and_stops_removed(void **state)
{
	const char *sleeper[] = {"/bin/sleep", "100", NULL};
	pid_t pa, pb, pa2;
	char err[256];

	milter_conf(0, "a");
	conf(1, "b", sleeper);
	apply(2);
	assert_true(wait_state("a", MH_SUP_UP, 0, 5));
	assert_true(wait_state("b", MH_SUP_STARTING, 0, 1));
	pa = info_of("a").pid;
	pb = info_of("b").pid;

	/* the same config again: nothing restarts; new tunables are taken */
	F->cf[0].health_interval = 0.5;
	apply(2);
	run_for(0.3);
	assert_int_equal(info_of("a").pid, pa);
	assert_int_equal(info_of("b").pid, pb);

	/* a user the master cannot use: refused, nothing changed */
	F->cf[1].user = "no-such-user-xyz";
	assert_int_equal(mh_supervise_apply(F->sv, F->cf, 2, NULL, NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "no-such-user-xyz"));
	if (geteuid() != 0) {
		F->cf[1].user = "root";
		assert_int_equal(mh_supervise_apply(F->sv, F->cf, 2, NULL, NULL, err, sizeof(err)),
		                 -1);
		assert_non_null(strstr(err, "not run as root"));
	}
	F->cf[1].user = NULL;
	assert_int_equal(info_of("b").pid, pb);

	/* a's command changes, b is gone */
	F->argv[0][3] = "--negotiate";
	F->argv[0][4] = "leadspc";
	F->argv[0][5] = NULL;
	apply(1);
	assert_false(mh_supervise_info(F->sv, "b", NULL));
	assert_true(run_until(pid_gone_pred, &pb, 7));
	assert_true(run_until(pid_gone_pred, &pa, 7));
	assert_true(wait_state("a", MH_SUP_UP, pa, 5));
	pa2 = info_of("a").pid;
	assert_true(pa2 > 0 && pa2 != pa);
	assert_true(log_contains("child b["));
	assert_true(log_contains("no longer configured"));
	assert_true(log_contains("its command, user, group or socket changed"));
	assert_true(log_contains("--negotiate leadspc"));

	/* nothing configured any more */
	apply(0);
	assert_false(mh_supervise_info(F->sv, "a", NULL));
	assert_true(run_until(pid_gone_pred, &pa2, 7));
}

static void runs_as_the_configured_user(void **state)
{
	const char *argv[] = {"/bin/sleep", "100", NULL};
	char path[64], buf[4096], want[64];
	char err[256];
	struct mh_child_conf *cf;
	ssize_t n;
	int fd;
	pid_t pid;

	if (geteuid() != 0) {
		/* only root switches; anyone else is refused another user */
		cf = conf(0, "u", argv);
		assert_int_equal(mh_supervise_apply(F->sv, cf, 1, "root", NULL, err, sizeof(err)),
		                 -1);
		assert_non_null(strstr(err, "not run as root"));
		assert_false(mh_supervise_info(F->sv, "u", NULL));
		skip();
	}
	cf = conf(0, "u", argv);
	/* the default user applies to a child without its own */
	assert_int_equal(mh_supervise_apply(F->sv, cf, 1, "nobody", "nogroup", err, sizeof(err)),
	                 0);
	assert_true(wait_state("u", MH_SUP_STARTING, 0, 1));
	pid = info_of("u").pid;
	run_for(0.2); /* past exec */
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	assert_true(n > 0);
	buf[n] = '\0';
	snprintf(want, sizeof(want), "Uid:\t65534\t65534\t65534\t65534");
	assert_non_null(strstr(buf, want));
	assert_non_null(strstr(buf, "Groups:\t65534 \n"));
}

static int nfds_open(int *fds, int max)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.' && n < max)
			fds[n++] = atoi(e->d_name);
	closedir(d);
	return n;
}

static void stop_kills_everything_and_calls_done(void **state)
{
	const char *stubborn[] = {"/bin/sh", "-c", "trap '' TERM; exec /bin/sleep 100", NULL};
	pid_t pa, pb;
	double t0;

	milter_conf(0, "a");
	conf(1, "stubborn", stubborn);
	apply(2);
	assert_true(wait_state("a", MH_SUP_UP, 0, 5));
	assert_true(wait_state("stubborn", MH_SUP_STARTING, 0, 1));
	run_for(0.2); /* the trap is set */
	pa = info_of("a").pid;
	pb = info_of("stubborn").pid;
	t0 = ev_now(loop);
	mh_supervise_stop(F->sv, 0.3, on_done, F);
	assert_int_equal(F->done_calls, 0);
	assert_true(run_until(done_pred, NULL, 5));
	assert_true(ev_now(loop) - t0 >= 0.25); /* stubborn needed SIGKILL */
	assert_int_equal(F->done_calls, 1);
	assert_true(pid_gone(pa));
	assert_true(pid_gone(pb));
	assert_int_equal(info_of("a").state, MH_SUP_DOWN);
	assert_int_equal(info_of("a").pid, 0);
	assert_string_equal(info_of("stubborn").last_exit, "killed by SIGKILL");
	assert_true(log_contains("still runs after SIGTERM; sending SIGKILL"));
	/* nothing is restarted afterwards */
	run_for(0.5);
	assert_int_equal(info_of("a").pid, 0);
	assert_int_equal(info_of("stubborn").pid, 0);

	/* with nothing running, done comes from the loop at once */
	F->done_calls = 0;
	mh_supervise_stop(F->sv, 0.3, on_done, F);
	assert_int_equal(F->done_calls, 0);
	assert_true(run_until(done_pred, NULL, 1));
	mh_supervise_free(F->sv);
	F->sv = NULL;
}

static void output_lines_are_logged(void **state)
{
	const char *talker[] = {"/bin/sh", "-c",
	                        "echo to-stdout; echo to-stderr >&2; printf partial; exit 3", NULL};
	const char *missing[] = {"/nonexistent/milter", NULL};
	char line[128];
	pid_t pid;

	conf(0, "talk", talker)->restart_delay = 5;
	conf(1, "miss", missing)->restart_delay = 5;
	apply(2);
	assert_true(wait_state("talk", MH_SUP_STARTING, 0, 1));
	pid = info_of("talk").pid;
	assert_true(wait_state("talk", MH_SUP_DOWN, -1, 3));
	snprintf(line, sizeof(line), "child talk[%d]: to-stdout", (int)pid);
	assert_true(log_contains(line));
	snprintf(line, sizeof(line), "child talk[%d]: to-stderr", (int)pid);
	assert_true(log_contains(line));
	snprintf(line, sizeof(line), "child talk[%d]: partial", (int)pid);
	assert_true(log_contains(line));
	snprintf(line, sizeof(line), "child talk[%d] exited with status 3 after ", (int)pid);
	assert_true(log_contains(line));
	assert_true(log_contains("; restarting in 5 s"));
	assert_true(run_until(log_pred, "cannot execute /nonexistent/milter: No such file", 3));
	assert_true(wait_state("miss", MH_SUP_DOWN, -1, 3));
	assert_string_equal(info_of("miss").last_exit, "exit status 127");
}

static void forget_in_a_forked_worker_leaves_the_processes_alone(void **state)
{
	int before[256], after[256], nbefore, nafter, status;
	pid_t pid, worker;

	nbefore = nfds_open(before, 256);
	milter_conf(0, "tm");
	apply(1);
	assert_true(wait_state("tm", MH_SUP_UP, 0, 5));
	pid = info_of("tm").pid;

	worker = fork();
	assert_true(worker >= 0);
	if (worker == 0) {
		int extra = 0;
		ev_loop_fork(loop);
		mh_supervise_forget(F->sv);
		nafter = nfds_open(after, 256);
		for (int i = 0; i < nafter; i++) {
			int known = 0;
			for (int j = 0; j < nbefore; j++)
				known |= after[i] == before[j];
			extra += !known;
		}
		_exit(extra > 0 ? 10 + extra : 0);
	}
	/* wait here, without running the loop (libev would reap the worker) */
	assert_int_equal(waitpid(worker, &status, 0), worker);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(kill(pid, 0), 0);
	run_for(0.7);
	assert_int_equal(info_of("tm").state, MH_SUP_UP);
	assert_int_equal(info_of("tm").pid, pid);
	assert_int_equal(count_recs("tm", MH_SUP_DOWN), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(milter_comes_up, setup, teardown),
	    cmocka_unit_test_setup_teardown(killed_milter_is_restarted_with_backoff, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(stalled_milter_goes_down_and_up_again, setup, teardown),
	    cmocka_unit_test_setup_teardown(exiting_command_is_restarted_with_growing_delays, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(silent_process_is_killed_after_three_failed_checks,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(apply_restarts_changed_and_stops_removed, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(runs_as_the_configured_user, setup, teardown),
	    cmocka_unit_test_setup_teardown(stop_kills_everything_and_calls_done, setup, teardown),
	    cmocka_unit_test_setup_teardown(output_lines_are_logged, setup, teardown),
	    cmocka_unit_test_setup_teardown(forget_in_a_forked_worker_leaves_the_processes_alone,
	                                    setup, teardown),
	};
	const char *env = getenv("MH_TESTMILTER");

	if (env != NULL) {
		snprintf(testmilter, sizeof(testmilter), "%s", env);
	} else {
		char self[PATH_MAX - 64];
		ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
		char *slash;
		if (n <= 0)
			return 1;
		self[n] = '\0';
		slash = strrchr(self, '/');
		*slash = '\0';
		snprintf(testmilter, sizeof(testmilter), "%s/../../tools/testmilter/%s", self,
		         "milterhub-testmilter");
	}
	if (access(testmilter, X_OK) != 0) {
		fprintf(stderr, "test milter not found at %s (set MH_TESTMILTER)\n", testmilter);
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	loop = ev_default_loop(0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
