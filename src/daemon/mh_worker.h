/*
 * mh_worker - a worker process: one libev loop, one hub, the shared
 * listening socket; every SMTP session lives in exactly one worker.
 *
 * The master forks, cleans up what is its own in the child (control
 * socket, supervisor, pid file, other listeners, its watchers) and calls
 * mh_worker_run, which never returns. The worker becomes the configured
 * user, asks for SIGTERM when the master dies, and reports to its board
 * slot. Signals from the master:
 *   SIGTERM, SIGINT  stop: take what is in the backlog, stop accepting,
 *                    let sessions finish for up to drain_timeout, exit 0
 *                    (again: close them now)
 *   SIGUSR2          retire (a reload started new workers): stop
 *                    accepting at once and exit when the last session
 *                    ends (sessions are bounded by their own timeouts;
 *                    a hard cap of RETIRE_LIMIT applies)
 *   SIGUSR1          reopen the log file
 *   SIGHUP           ignored (reload is the master's business)
 */
#ifndef MH_WORKER_H
#define MH_WORKER_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>

#include "config/mh_config.h"
#include "daemon/mh_board.h"
#include "daemon/mh_privs.h"
#include "stats/mh_stats.h"

struct mh_worker_args {
	struct ev_loop *loop; /* the default loop, ev_loop_fork()ed, no watcher active */
	int lfd; /* the shared listening socket */
	const struct mh_config *conf; /* the generation's config (master's copy) */
	const struct mh_ident *ident; /* whom to become */
	struct mh_board *board;
	int slot; /* our worker slot */
	struct mh_stats_region *stats; /* our counters, sized for conf's children */
	const int16_t *child_slot; /* conf->hub.children[i] -> board child slot */
	uint32_t gen;
};

__attribute__((noreturn)) void mh_worker_run(const struct mh_worker_args *a);

#endif
