/*
 * mh_policy - the Postfix policy delegation protocol, client side (issue 9).
 *
 * A request is "name=value\n" lines ended by an empty line; the answer is
 * "action=...\n" (other attributes ignored) ended by an empty line
 * (http://www.postfix.org/SMTPD_POLICY_README.html). Connections are
 * kept and reused: one pool per policy child per worker process, at
 * most conf->policy_connections connections, one request in flight per
 * connection, later requests queued in order (FIFO). A connection the
 * server closed while idle is dropped and replaced on demand.
 *
 * Every wait is bounded: the connect by the child's connect timeout, a
 * request (write + answer) by its read timeout (a queued request's
 * clock starts when it is written). A timeout, a refused connection, a
 * closed connection with a request in flight, an answer line that is not
 * "name=value", an answer without action= or longer than 4 KiB: the
 * request FAILS (its caller uses the child's fallback) and that
 * connection is closed; queued requests go on with a new one.
 *
 * Ownership: a pool belongs to the loop it was made on; attrs and their
 * strings are copied by mh_policy_ask; the answer passed to done() is
 * valid during the call only.
 */
#ifndef MH_POLICY_H
#define MH_POLICY_H

#include <ev.h>
#include <stddef.h>

#include "child/mh_child.h"

enum mh_policy_kind {
	MH_POL_CONTINUE, /* OK, DUNNO, empty action, DEFER_IF_REJECT, and anything unsupported */
	MH_POL_REJECT, /* REJECT [text], 5xx text: text holds "5xx x.y.z text" */
	MH_POL_TEMPFAIL, /* DEFER [text], DEFER_IF_PERMIT [text], 4xx text: "4xx x.y.z text" */
	MH_POL_DISCARD, /* DISCARD [text] */
	MH_POL_HOLD, /* HOLD [text]: quarantine, text the reason */
	MH_POL_PREPEND, /* PREPEND header: value: text holds "header: value" */
	MH_POL_FAILED, /* no usable answer: the fallback; why says what happened */
};

struct mh_policy_answer {
	enum mh_policy_kind kind;
	const char *text; /* see kind; "" when none */
	const char *action; /* the action= value as received ("" when failed) */
	/*
	 * Actions accepted but not acted on: WARN (logged by the caller),
	 * FILTER, REDIRECT, BCC, and unknown ones: kind CONTINUE and this set
	 * to "warn" / "unsupported".
	 */
	const char *note;
	const char *why; /* MH_POL_FAILED: the reason */
};

/*
 * Map one action= value to an answer (pure; for tests too). out's
 * strings point into buf (size buflen). Returns 0, or -1 when the action
 * is malformed (e.g. "REJECT" is fine, "550" without text is fine, "5"
 * or "550x" are not): kind FAILED.
 */
int mh_policy_parse_action(const char *action, struct mh_policy_answer *out, char *buf,
                           size_t buflen);

/* A name=value pair of a request (name without '=', value without '\n'). */
struct mh_policy_attr {
	const char *name;
	const char *value;
};

struct mh_policy_pool;
struct mh_policy_req;

typedef void (*mh_policy_done)(const struct mh_policy_answer *a, void *arg);

/* The pool for conf on loop, made on first use (one per conf and loop). */
struct mh_policy_pool *mh_policy_pool_get(struct ev_loop *loop, const struct mh_child_conf *conf);
/* Free every pool (worker exit): open requests are dropped without callback. */
void mh_policy_pools_free(void);

/*
 * Send a request: attrs[0..n) then the empty line. done(answer, arg) is
 * called exactly once, from the loop (never inside mh_policy_ask),
 * unless the request is cancelled first. sid is the session id for logs.
 */
struct mh_policy_req *mh_policy_ask(struct mh_policy_pool *p, const struct mh_policy_attr *attrs,
                                    size_t n, uint64_t sid, mh_policy_done done, void *arg);
/* The caller is gone: no callback; an answer already on its way is read and dropped. */
void mh_policy_cancel(struct mh_policy_req *r);

/* For tests and status: connections open now, and ever opened. */
size_t mh_policy_pool_connections(const struct mh_policy_pool *p);
size_t mh_policy_pool_opened(const struct mh_policy_pool *p);

#endif
