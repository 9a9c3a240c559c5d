/*
 * mh_master - the master process: configuration generations, worker
 * processes, supervised milters, the control socket, signals.
 *
 * The master does no session work. It binds the listening socket, maps
 * the board, forks `workers` workers sharing the socket, restarts one
 * that dies (with backoff when they die right after starting), and on
 * SIGHUP / `milterhubctl reload` loads the configuration again: a bad
 * one is refused with its reason and the running generation stays; a
 * good one gets new workers, then the old ones are told to stop
 * accepting and to exit after their last session (no session is cut).
 * SIGTERM / SIGINT / `milterhubctl stop`: workers drain for up to
 * drain_timeout, supervised milters are stopped, exit 0. SIGUSR1: the
 * log file is reopened (by the master and every worker).
 */
#ifndef MH_MASTER_H
#define MH_MASTER_H

#include "config/mh_config.h"

/*
 * Run until stopped. conf is taken over (freed by the master). path is
 * the file to read again on reload (NULL: the built-in defaults, or
 * MH_CONFIG_DEFAULT_PATH once it exists). ready_fd: the daemonizing
 * parent's report pipe, or -1. Returns the exit status.
 */
int mh_master_run(struct mh_config *conf, const char *path, int ready_fd);

#endif
