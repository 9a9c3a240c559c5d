/*
 * mh_privs - the process chores of a system daemon: whom the workers run
 * as, the pid file, detaching from the terminal.
 */
#ifndef MH_PRIVS_H
#define MH_PRIVS_H

#include <stddef.h>
#include <sys/types.h>

struct mh_ident {
	int set; /* 0: keep the current identity */
	char *user; /* owned; NULL when only a group is set */
	uid_t uid;
	gid_t gid;
};

/*
 * Resolve user (may be NULL) and group (may be NULL: the user's primary
 * group) into id. Both NULL: id->set = 0. Returns 0 or -1 with err.
 */
int mh_ident_resolve(struct mh_ident *id, const char *user, const char *group, char *err,
                     size_t errlen);
void mh_ident_free(struct mh_ident *id);
/*
 * Become id for good: supplementary groups (initgroups), gid, uid, in
 * that order, then check that root cannot be regained. Returns 0 or -1
 * with err. id->set = 0: nothing to do.
 */
int mh_ident_become(const struct mh_ident *id, char *err, size_t errlen);

/*
 * Create or take over path, lock it (flock) and write our pid. Returns
 * the descriptor (keep it open while running), or -1 with err: "already
 * running as pid N (PATH is locked)" or the system error.
 */
int mh_pidfile_open(const char *path, char *err, size_t errlen);
/* Remove path if fd still holds its lock, then close fd. */
void mh_pidfile_close(int fd, const char *path);

/*
 * Detach: fork; the parent waits until the child reports (mh_daemon_ready)
 * and exits 0, or prints what the child reported and exits 1. In the
 * child: setsid, chdir "/", stdin and stdout on /dev/null (stderr too
 * unless keep_stderr). Returns the report descriptor (child side), or
 * -1 with err in the process that called (no fork happened).
 */
int mh_daemonize(int keep_stderr, char *err, size_t errlen);
/* Child side: tell the waiting parent "started" (msg NULL) or why not; closes fd. */
void mh_daemon_ready(int fd, const char *msg);

#endif
