/*
 * mh_spawn - fork and exec one program, read its output line by line,
 * signal it, notice its exit (the contract is in mh_spawn.h).
 *
 * STARTING
 *	fork + exec. Everything the child needs (argv, groups) is prepared
 *	before fork(); between fork and exec the child only makes system
 *	calls: signals back to default and unblocked, setsid, /dev/null on
 *	stdin, the pipes on stdout and stderr, every other descriptor
 *	closed (close_range, else a loop), credentials switched, and only
 *	then PR_SET_PDEATHSIG (a credential change clears it) followed by
 *	the getppid check for a parent that died meanwhile. A failed exec
 *	writes its reason on the stderr pipe and exits 127, so the reason
 *	reaches on_line as one of the child's lines.
 *
 * OUTPUT
 *	Both pipes are non-blocking and read once per readiness, so a
 *	chatty child cannot hold the loop; at the exit they are drained
 *	until nothing is left (helpers still holding them do not delay
 *	on_exit). Bytes wait in a buffer until a newline, 2048 bytes, or
 *	the end of the pipe.
 *
 * SIGNALS AND EXITS
 *	Signals go to the process group (the child leads its own after
 *	setsid), so helpers it forked go too. Exits are reaped by libev
 *	(ev_child on the default loop), which is why a pid is signalled only
 *	before its ev_child has fired: it cannot have been reused yet.
 *
 * DIAGNOSTICS
 *	None logged here: a failed start is returned in err; what goes
 *	wrong in the child arrives through on_line and on_exit.
 */
#include "daemon/mh_spawn.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/mh_buf.h"
#include "util/mh_err.h"

#define SPAWN_LINE_MAX 2048 /* a longer line without newline is delivered in pieces */

struct spawn_pipe {
	struct mh_spawn *sp;
	int stream; /* 1 stdout, 2 stderr: what on_line is told */
	ev_io w;
	int fd; /* read end, -1 when closed */
	struct mh_buf line; /* a line not yet complete */
};

struct mh_spawn {
	struct ev_loop *loop;
	struct mh_spawn_ops ops;
	pid_t pid; /* 0 while not running */
	struct spawn_pipe out, err;
	ev_child exit_w;
};

/* ------------------------------------------------------------ output pipes */

static void pipe_emit(struct spawn_pipe *p, int flush_all)
{
	const struct mh_spawn_ops *ops = &p->sp->ops;

	while (mh_buf_size(&p->line) > 0) {
		const char *s = (const char *)mh_buf_head(&p->line);
		size_t n = mh_buf_size(&p->line), len, used;
		const char *nl = memchr(s, '\n', n);

		if (nl != NULL) {
			len = (size_t)(nl - s);
			used = len + 1;
		} else if (n >= SPAWN_LINE_MAX || flush_all) {
			len = used = n > SPAWN_LINE_MAX ? SPAWN_LINE_MAX : n;
		} else {
			return;
		}
		if (len > 0 && s[len - 1] == '\r')
			len--;
		ops->on_line(p->stream, s, len, ops->arg);
		mh_buf_consume(&p->line, used);
	}
}

static void pipe_open(struct spawn_pipe *p, int fd)
{
	p->fd = fd;
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	ev_io_set(&p->w, fd, EV_READ);
	ev_io_start(p->sp->loop, &p->w);
}

static void pipe_close(struct spawn_pipe *p)
{
	if (p->fd < 0)
		return;
	ev_io_stop(p->sp->loop, &p->w);
	close(p->fd);
	p->fd = -1;
	mh_buf_free(&p->line);
}

/* One read per readiness; drain = read until nothing is left (after the exit). */
static void pipe_read(struct spawn_pipe *p, int drain)
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
		pipe_close(p);
	}
}

static void on_pipe(struct ev_loop *loop, ev_io *w, int revents)
{
	pipe_read(w->data, 0);
}

static void pipe_init(struct spawn_pipe *p, struct mh_spawn *sp, int stream)
{
	p->sp = sp;
	p->stream = stream;
	p->fd = -1;
	ev_io_init(&p->w, on_pipe, -1, EV_READ);
	p->w.data = p;
}

/* ------------------------------------------------------------ exit */

static void on_exit_status(struct ev_loop *loop, ev_child *w, int revents)
{
	struct mh_spawn *sp = w->data;
	pid_t pid = sp->pid;

	ev_child_stop(loop, w);
	pipe_read(&sp->out, 1); /* what it wrote before exiting, still with its pid */
	pipe_read(&sp->err, 1);
	sp->pid = 0;
	sp->ops.on_exit(pid, w->rstatus, sp->ops.arg); /* may free sp: nothing after */
}

void mh_spawn_describe(int status, char *buf, size_t len)
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

/* ------------------------------------------------------------ starting */

/* The forked child: set up and exec, or report on stderr and exit 127. */
static void __attribute__((noreturn))
exec_child(char *const argv[], const struct mh_spawn_cred *cred, int nul, int outw, int errw,
           pid_t parent, const gid_t *groups, int ngroups)
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
	if (cred->set_gid) {
		if (cred->set_uid ? setgroups((size_t)ngroups, groups) < 0
		                  : setgroups(1, &cred->gid) < 0) {
			dprintf(2, "setgroups: %s\n", strerror(errno));
			_exit(127);
		}
		if (setgid(cred->gid) < 0) {
			dprintf(2, "setgid %u: %s\n", (unsigned)cred->gid, strerror(errno));
			_exit(127);
		}
	}
	if (cred->set_uid && setuid(cred->uid) < 0) {
		dprintf(2, "setuid %u: %s\n", (unsigned)cred->uid, strerror(errno));
		_exit(127);
	}
	/* after the credential change, which clears it */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
		_exit(127);
	execv(argv[0], argv);
	dprintf(2, "cannot execute %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

/* The supplementary groups of cred->user (malloc'ed; none when it fails). */
static gid_t *user_groups(const struct mh_spawn_cred *cred, int *ngroups)
{
	int n = 32;
	gid_t *groups = mh_xcalloc((size_t)n, sizeof(gid_t));

	if (getgrouplist(cred->user, cred->gid, groups, &n) < 0) {
		groups = mh_xrealloc(groups, (size_t)n * sizeof(gid_t));
		if (getgrouplist(cred->user, cred->gid, groups, &n) < 0)
			n = 0;
	}
	*ngroups = n;
	return groups;
}

pid_t mh_spawn_start(struct mh_spawn *sp, char *const argv[], const struct mh_spawn_cred *cred,
                     char *err, size_t errlen)
{
	static const struct mh_spawn_cred as_is;
	int outp[2] = {-1, -1}, errp[2] = {-1, -1}, nul = -1;
	gid_t *groups = NULL;
	int ngroups = 0;
	pid_t pid = -1, parent = getpid();

	assert(sp->pid == 0 && sp->out.fd < 0 && sp->err.fd < 0);
	if (cred == NULL)
		cred = &as_is;
	if (cred->set_uid)
		groups = user_groups(cred, &ngroups);
	if (pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0 ||
	    (nul = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0 || (pid = fork()) < 0) {
		mh_errf(err, errlen, "%s", strerror(errno));
	} else if (pid == 0) {
		exec_child(argv, cred, nul, outp[1], errp[1], parent, groups, ngroups);
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
		return -1;
	}
	sp->pid = pid;
	pipe_open(&sp->out, outp[0]);
	pipe_open(&sp->err, errp[0]);
	ev_child_set(&sp->exit_w, pid, 0);
	ev_child_start(sp->loop, &sp->exit_w);
	return pid;
}

/* ------------------------------------------------------------ the rest */

struct mh_spawn *mh_spawn_new(struct ev_loop *loop, const struct mh_spawn_ops *ops)
{
	struct mh_spawn *sp = mh_xcalloc(1, sizeof(*sp));

	assert(ops->on_line != NULL && ops->on_exit != NULL);
	sp->loop = loop;
	sp->ops = *ops;
	pipe_init(&sp->out, sp, 1);
	pipe_init(&sp->err, sp, 2);
	ev_child_init(&sp->exit_w, on_exit_status, 0, 0);
	sp->exit_w.data = sp;
	return sp;
}

pid_t mh_spawn_pid(const struct mh_spawn *sp)
{
	return sp->pid;
}

int mh_spawn_signal(struct mh_spawn *sp, int sig)
{
	if (sp->pid == 0)
		return -1;
	if (kill(-sp->pid, sig) == 0)
		return 0;
	return kill(sp->pid, sig);
}

void mh_spawn_free(struct mh_spawn *sp)
{
	if (sp == NULL)
		return;
	ev_child_stop(sp->loop, &sp->exit_w);
	pipe_close(&sp->out);
	pipe_close(&sp->err);
	free(sp);
}
