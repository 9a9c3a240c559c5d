/*
 * mh_control - the master's control socket (transport only).
 *
 * Wire protocol (documented in milterhubctl(8)): the client connects,
 * sends one request line of at most 1024 bytes, words separated by
 * single spaces, ended by "\n" ("status", "status --json", "enable
 * spamass", "reload", "stop"). The server answers "ok\n" or "error\n",
 * then a body of text (may be empty; ends with "\n" when not empty),
 * and closes the connection. A client that sends no complete line
 * within 5 s, or more than 1024 bytes, gets "error\nbad request: ...\n".
 * At most 16 clients at once; more are answered "error\nbusy\n".
 * Writing the answer never blocks the master (buffered, 5 s deadline).
 *
 * A held answer (mh_control_hold) is written at once but the
 * connection stays open until mh_control_free: `milterhubctl stop`
 * waits on it for the daemon to finish draining.
 *
 * The socket: unix (mode applied before listen, stale file
 * removed: a path on which nobody answers connect() is unlinked; a path
 * where a daemon answers is "in use by another milterhub") or inet.
 */
#ifndef MH_CONTROL_H
#define MH_CONTROL_H

#include <ev.h>
#include <stddef.h>

struct mh_control;
struct mh_control_req;

/*
 * Called once per complete request line, split into words (argv[0] is
 * the command; argc >= 1). The handler must answer with exactly one of
 * mh_control_reply / mh_control_hold, now or later from the loop. argv
 * is valid during the call only.
 */
typedef void (*mh_control_handler)(struct mh_control_req *r, int argc, char **argv, void *arg);

/* Listen on spec. Returns NULL with a one-line reason in err. */
struct mh_control *mh_control_new(struct ev_loop *loop, const char *spec, unsigned mode,
                                  mh_control_handler handler, void *arg, char *err, size_t errlen);

/* Answer "ok" (ok != 0) or "error", then body (may be NULL or ""); close. */
void mh_control_reply(struct mh_control_req *r, int ok, const char *body);
/* Answer like mh_control_reply, then keep the connection until mh_control_free. */
void mh_control_hold(struct mh_control_req *r, int ok, const char *body);

/* In a worker after fork(): close every descriptor, free, unlink nothing. */
void mh_control_forget(struct mh_control *c);
/* Close clients and the socket; remove the unix socket file if still ours. */
void mh_control_free(struct mh_control *c);

#endif
