/*
 * mh_spawn - run one program as a detached child of this process and log
 * what it writes: the mechanics under mh_supervise (which decides when
 * to start, stop and restart).
 *
 * One mh_spawn runs at most one process at a time, on a libev loop that
 * must be the default loop (ev_child watchers live only there). A start
 * forks and execs argv in a new session (setsid) with stdin on
 * /dev/null, stdout and stderr on pipes read on the loop and handed to
 * ops->on_line one line at a time, every other descriptor closed,
 * PR_SET_PDEATHSIG SIGTERM (the process is told when this one dies), and
 * the credentials in cred. When it exits, what it still had in its pipes
 * is delivered, then ops->on_exit.
 *
 * Ownership: the caller owns the mh_spawn (mh_spawn_new / mh_spawn_free);
 * argv and cred are read during mh_spawn_start only, nothing is kept.
 */
#ifndef MH_SPAWN_H
#define MH_SPAWN_H

#include <ev.h>
#include <stddef.h>
#include <sys/types.h>

struct mh_spawn;

struct mh_spawn_ops {
	/*
	 * One line the process wrote on stream 1 (stdout) or 2 (stderr),
	 * without its newline or a CR before it; line is not NUL-terminated
	 * and is valid during the call only. A line of more than 2048 bytes
	 * comes in 2048-byte pieces, and an unterminated last line comes when
	 * the pipe closes. mh_spawn_pid() is still the writer's pid, even for
	 * lines delivered at its exit. Must not free the mh_spawn.
	 */
	void (*on_line)(int stream, const char *line, size_t len, void *arg);
	/*
	 * The process pid exited (status as from waitpid): its output has
	 * been delivered, its pipes are closed and mh_spawn_pid() is 0. May
	 * free the mh_spawn or start a new process.
	 */
	void (*on_exit)(pid_t pid, int status, void *arg);
	void *arg;
};

/* Whom the process runs as; all zero: as this process. */
struct mh_spawn_cred {
	int set_uid; /* become uid, with user's supplementary groups */
	int set_gid; /* become gid (the only group unless set_uid) */
	uid_t uid;
	gid_t gid;
	const char *user; /* whose groups getgrouplist() gives, when set_uid */
};

/* A spawner with no process; both ops callbacks are required (ops is copied). */
struct mh_spawn *mh_spawn_new(struct ev_loop *loop, const struct mh_spawn_ops *ops);

/*
 * Start argv[0] (an absolute path; argv NULL-terminated) as cred (NULL:
 * as this process). No process may be running. Returns the pid, or -1
 * with the system error text in err when no process could be created.
 * An exec or credential change that fails in the child is reported on
 * its stderr (so through on_line) followed by exit status 127.
 */
pid_t mh_spawn_start(struct mh_spawn *sp, char *const argv[], const struct mh_spawn_cred *cred,
                     char *err, size_t errlen);

/* The running process, 0 when none (never started, or on_exit was called). */
pid_t mh_spawn_pid(const struct mh_spawn *sp);

/*
 * Send sig to the process's group (it leads its own, so helpers it forked
 * get it too), else to the process alone. Does nothing and returns -1
 * once the process was reaped, so a reused pid is never signalled;
 * returns 0 when sent.
 */
int mh_spawn_signal(struct mh_spawn *sp, int sig);

/* A waitpid status as text: "exit status 1", "killed by SIGKILL", ... */
void mh_spawn_describe(int status, char *buf, size_t len);

/*
 * Stop watching and close the pipes; a running process is neither
 * signalled nor waited for (also what a worker does right after fork()
 * with its copy). sp may be NULL.
 */
void mh_spawn_free(struct mh_spawn *sp);

#endif
