/*
 * testmilter_session - one MTA connection of the test milter: decodes
 * commands, logs them, and answers by running the script's actions.
 *
 * Ownership: the server owns the list of live sessions; a session owns
 * its mh_conn and frees itself when the connection ends (EOF, QUIT,
 * error, a close action). tm_session_close_all() ends the rest at exit.
 * The server's script and log must outlive every session.
 */
#ifndef TESTMILTER_SESSION_H
#define TESTMILTER_SESSION_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>

#include "testmilter_log.h"
#include "testmilter_script.h"

struct tm_session;

struct tm_server {
	struct ev_loop *loop;
	const struct tm_script *script; /* not owned */
	struct tm_log *log; /* not owned; NULL without --log */
	uint64_t accepted; /* connections so far: ids are 1.. in accept order */
	struct tm_session *sessions; /* live sessions, newest first */
	size_t nsessions;
};

/* Take over an accepted, connected fd and start its session. */
void tm_session_start(struct tm_server *srv, int fd);

/* End every live session (log reason, close, free). */
void tm_session_close_all(struct tm_server *srv, const char *reason);

#endif
