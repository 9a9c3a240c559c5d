/*
 * mh_master_int - the master's state, shared by mh_master.c (processes,
 * reload) and mh_master_ctl.c (what milterhubctl asks). Internal to
 * src/daemon.
 */
#ifndef MH_MASTER_INT_H
#define MH_MASTER_INT_H

#include <ev.h>
#include <stdint.h>
#include <sys/types.h>

#include "config/mh_config.h"
#include "daemon/mh_board.h"
#include "daemon/mh_control.h"
#include "daemon/mh_listen.h"
#include "daemon/mh_privs.h"
#include "daemon/mh_supervise.h"
#include "stats/mh_stats.h"

/* One loaded configuration and the workers running it. */
struct mh_gen {
	uint32_t no; /* 1, 2, ... */
	struct mh_config conf;
	struct mh_ident ident; /* the workers' */
	int16_t child_slot[MH_HUB_CHILDREN_MAX]; /* child index -> board slot */
	unsigned alive; /* its workers still running */
	ev_tstamp loaded;
	struct mh_gen *older;
};

struct mh_master;
struct mh_http;
struct mh_stats_history;

struct mh_wproc {
	struct mh_master *m;
	pid_t pid; /* 0: slot unused */
	struct mh_gen *gen;
	ev_tstamp started;
	int retiring; /* told to finish (reload) or to stop */
	struct mh_stats_region *stats; /* its counters (we read, it writes) */
	ev_child cw;
};

struct mh_master {
	struct ev_loop *loop;
	char *path; /* config file for reloads; NULL: defaults */
	struct mh_gen *gen; /* current; ->older chain */
	uint32_t next_gen;
	struct mh_listener lst; /* the current generation's listening socket */
	struct mh_board *board;
	struct mh_wproc w[MH_BOARD_WORKERS];
	struct mh_supervise *sv;
	struct mh_supervise_ops sup_ops;
	struct mh_control *ctl;
	char *ctl_text; /* its spec, for status */
	int pidfd;
	char *pid_path;
	ev_signal term_w, int_w, hup_w, usr1_w;
	ev_timer respawn_w; /* delayed worker restarts */
	ev_timer kill_w; /* stop: workers past drain_timeout get SIGKILL */
	unsigned quick_deaths; /* workers of the current generation dying young */
	unsigned worker_restarts;
	int stopping; /* 1 draining, 2 stopping supervised milters */
	ev_tstamp started;
	struct mh_control_req *stop_req; /* a held `stop` answer */
	struct mh_stats_totals *retired; /* counters of workers gone, by name slot */
	struct mh_http *http; /* the statistics endpoint, NULL when off */
	char *stats_text; /* its spec */
	struct mh_stats_history *hist; /* rings for the status page */
	ev_timer sample_w;
};

/* Load the configuration again; 0, or -1 with the reason in err. */
int mh_master_reload(struct mh_master *m, char *err, size_t errlen);
/* Begin the orderly stop (idempotent; a second call closes sessions now). */
void mh_master_stop(struct mh_master *m, const char *why);
/* The control socket's handler (mh_master_ctl.c). */
void mh_master_ctl(struct mh_control_req *r, int argc, char **argv, void *arg);
/*
 * Everything counted so far: retired totals plus every live worker's
 * region, and who the current generation's milters are (heap: ~360 KiB).
 */
void mh_master_snapshot(const struct mh_master *m, struct mh_stats_snapshot *s);
/* The statistics endpoint (mh_master_stats.c): open (spec NULL: only the
 * history sampler), follow a reload, put away in a worker, close. */
int mh_master_stats_open(struct mh_master *m, const char *spec, char *err, size_t errlen);
void mh_master_stats_reload(struct mh_master *m, const char *spec);
void mh_master_stats_forget(struct mh_master *m);
void mh_master_stats_close(struct mh_master *m);
/* Workers alive (of all generations) and of the current one. */
unsigned mh_master_workers_alive(const struct mh_master *m);

#endif
