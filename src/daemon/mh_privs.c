/*
 * NAME
 *	mh_privs 3
 * SUMMARY
 *	worker identity, pid file, daemonizing (see mh_privs.h)
 * DESCRIPTION
 *	The master keeps the identity it was started with (root on a real
 *	server: it binds, starts supervised milters as their own users and
 *	rebinds on reload) and parses no mail traffic; each worker becomes
 *	the configured user right after fork, before touching a session.
 *
 *	The pid file is locked with flock(2): a second milterhub with the
 *	same pid file refuses to start instead of overwriting a live one's;
 *	a file left by a crash is unlocked and simply taken over.
 *
 *	Daemonizing reports through a pipe: the shell that started
 *	`milterhub` (with daemonize = true) gets exit 1 and the reason when
 *	start-up fails after the fork (socket in use, bad user, ...), not a
 *	0 followed by silence.
 */
#include "daemon/mh_privs.h"
#include "util/mh_buf.h"
#include "util/mh_err.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

int mh_ident_resolve(struct mh_ident *id, const char *user, const char *group, char *err,
                     size_t errlen)
{
	memset(id, 0, sizeof(*id));
	if (user == NULL && group == NULL)
		return 0;
	id->uid = getuid();
	id->gid = getgid();
	if (user != NULL) {
		struct passwd *pw = getpwnam(user);
		if (pw == NULL)
			return mh_errf(err, errlen, "no such user '%s'", user);
		id->uid = pw->pw_uid;
		id->gid = pw->pw_gid;
		id->user = mh_xstrdup(user);
	}
	if (group != NULL) {
		struct group *gr = getgrnam(group);
		if (gr == NULL) {
			mh_ident_free(id);
			return mh_errf(err, errlen, "no such group '%s'", group);
		}
		id->gid = gr->gr_gid;
	}
	id->set = 1;
	return 0;
}

void mh_ident_free(struct mh_ident *id)
{
	free(id->user);
	memset(id, 0, sizeof(*id));
}

int mh_ident_become(const struct mh_ident *id, char *err, size_t errlen)
{
	if (!id->set)
		return 0;
	if (geteuid() != 0) {
		if (id->uid == geteuid() && id->gid == getegid())
			return 0; /* already who we should be (tests, a non-root run) */
		return mh_errf(err, errlen, "cannot switch to uid %u gid %u: not running as root",
		               (unsigned)id->uid, (unsigned)id->gid);
	}
	int rc = id->user != NULL ? initgroups(id->user, id->gid) : setgroups(1, &id->gid);
	if (rc < 0)
		return mh_errf(err, errlen, "cannot set supplementary groups: %s", strerror(errno));
	if (setgid(id->gid) < 0)
		return mh_errf(err, errlen, "cannot set gid %u: %s", (unsigned)id->gid,
		               strerror(errno));
	if (setuid(id->uid) < 0)
		return mh_errf(err, errlen, "cannot set uid %u: %s", (unsigned)id->uid,
		               strerror(errno));
	if (id->uid != 0 && (setuid(0) == 0 || seteuid(0) == 0))
		return mh_errf(err, errlen, "could regain root after dropping to uid %u",
		               (unsigned)id->uid);
	return 0;
}

int mh_pidfile_open(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return mh_errf(err, errlen, "cannot open pid file %s: %s", path, strerror(errno));
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;
		char old[32] = "";
		ssize_t n = pread(fd, old, sizeof(old) - 1, 0);
		close(fd);
		if (e == EWOULDBLOCK) {
			old[n > 0 ? n : 0] = '\0';
			old[strcspn(old, "\n")] = '\0';
			return mh_errf(err, errlen, "already running as pid %s (%s is locked)",
			               old[0] ? old : "?", path);
		}
		return mh_errf(err, errlen, "cannot lock pid file %s: %s", path, strerror(e));
	}
	char buf[32];
	int len = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)len, 0) != len) {
		int e = errno;
		close(fd);
		return mh_errf(err, errlen, "cannot write pid file %s: %s", path, strerror(e));
	}
	return fd;
}

void mh_pidfile_close(int fd, const char *path)
{
	if (fd < 0)
		return;
	/* Still ours: the file at path is the one we hold locked. */
	struct stat a, b;
	if (fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_ino == b.st_ino &&
	    a.st_dev == b.st_dev)
		unlink(path);
	close(fd);
}

static void null_stdio(int keep_stderr)
{
	int fd = open("/dev/null", O_RDWR);
	if (fd < 0)
		return;
	dup2(fd, 0);
	dup2(fd, 1);
	if (!keep_stderr)
		dup2(fd, 2);
	if (fd > 2)
		close(fd);
}

int mh_daemonize(int keep_stderr, char *err, size_t errlen)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return mh_errf(err, errlen, "cannot daemonize: pipe: %s", strerror(errno));
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return mh_errf(err, errlen, "cannot daemonize: fork: %s", strerror(errno));
	}
	if (pid > 0) {
		/* The parent: wait for the report; EOF without one means it died. */
		close(p[1]);
		char msg[1024];
		size_t n = 0;
		for (;;) {
			ssize_t r = read(p[0], msg + n, sizeof(msg) - 1 - n);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0 || (n += (size_t)r) == sizeof(msg) - 1)
				break;
		}
		msg[n] = '\0';
		if (strcmp(msg, "ok") == 0)
			_exit(0);
		if (n == 0) {
			int st;
			waitpid(pid, &st, 0); /* it died before reporting */
			snprintf(msg, sizeof(msg), "the daemon exited during start-up");
		}
		fprintf(stderr, "milterhub: %s\n", msg);
		_exit(1);
	}
	close(p[0]);
	if (setsid() < 0)
		return mh_errf(err, errlen, "cannot daemonize: setsid: %s", strerror(errno));
	if (chdir("/") < 0)
		return mh_errf(err, errlen, "cannot daemonize: chdir /: %s", strerror(errno));
	null_stdio(keep_stderr);
	return p[1];
}

void mh_daemon_ready(int fd, const char *msg)
{
	if (fd < 0)
		return;
	const char *m = msg ? msg : "ok";
	ssize_t w = write(fd, m, strlen(m));
	(void)w;
	close(fd);
}
