/*
 * mta_session - one simulated SMTP session against a milter: connect,
 * negotiate, then C H [U] and per message M R.. T L.. N B.. E [A], then Q,
 * as Postfix (or, with --sendmail, Sendmail) would send them.
 *
 * Event-driven on a libev loop through mh_conn; every wait is bounded by
 * the config's timeout. A misbehaving milter (malformed or unexpected
 * reply, close, silence) ends the session with result "error" and the
 * reason in the record; it never takes the process down.
 *
 * Ownership: the session owns its connection and its record; the config
 * must outlive it. done() is called exactly once, always from the loop
 * (never from inside mta_session_start), as the session's last action;
 * the callee may free the session right there.
 */
#ifndef MTA_SESSION_H
#define MTA_SESSION_H

#include <ev.h>

#include "mta_config.h"
#include "mta_record.h"

struct mta_session;

typedef void (*mta_session_done_fn)(struct mta_session *s, void *arg);

/* Start session number id (1-based: it seeds the queue ids). */
struct mta_session *mta_session_start(struct ev_loop *loop, const struct mta_config *cfg,
                                      unsigned long id, mta_session_done_fn done, void *arg);
/* The id given to mta_session_start. */
unsigned long mta_session_id(const struct mta_session *s);
/* The transcript; complete once done() was called. */
struct mta_record *mta_session_record(struct mta_session *s);
/* Only after done() was called (also from inside it). */
void mta_session_free(struct mta_session *s);

#endif
