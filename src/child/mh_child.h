/*
 * mh_child - the link from one SMTP session to one child milter: the MTA
 * side of the milter protocol, one command at a time, every wait bounded.
 *
 * The hub creates one mh_child per applicable child when the MTA
 * negotiates. The link connects (connect timeout), negotiates with the
 * offer it is given, and then sends what the hub asks, applying the
 * child's own negotiation: an event the child switched off (NO*, or one
 * its version lacks) is not sent, an NR* event is not waited for, and a
 * macro packet carrying the pairs the child asked for (all pairs when it
 * sent no list for that stage) leaves in the same write as its command.
 * Content (header values, body bytes) is sent as the hub gives it: the
 * hub does the leading-space conversion (mh_child_leadspc tells it what
 * the child negotiated).
 *
 * Answers: every command that waits ends in exactly one on_answer. A
 * child that times out (write 7 s, read 7 s, eom 297 s by default; each
 * progress restarts the eom wait), closes, sends something malformed or
 * out of place, or asks for shutdown ('4') / sends 'f', FAILS: on_answer
 * reports its configured fallback status with failed = 1, and the link
 * is dead from then on (design §2.5). A failure while no command is
 * outstanding is reported the same way, at once. An unreachable child
 * fails in on_negotiated(ok = 0).
 *
 * Ownership: conf and offer must outlive the link. Strings in an
 * answer or a modification are valid only during the callback. No
 * callback is made from inside an mh_child_* call; mh_child_free() may
 * be called from inside any callback.
 */
#ifndef MH_CHILD_H
#define MH_CHILD_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>

#include "conditions/mh_cond.h"
#include "hub/mh_status.h"
#include "net/mh_sockspec.h"
#include "protocol/mh_codec.h"

enum mh_child_kind {
	MH_CHILD_MILTER, /* milter "name" { ... }: the milter protocol */
	MH_CHILD_POLICY, /* policy "name" { ... }: a Postfix policy server (mh_policy) */
};

/* One configured child milter (plain data; the config module fills it). */
struct mh_child_conf {
	char *name;
	enum mh_child_kind kind;
	/* MH_CHILD_POLICY: the stage it is asked at ('R' rcpt, 'T' data, 'E' end of
	 * message) and the most connections its pool keeps per worker. */
	uint8_t policy_stage;
	size_t policy_connections;
	char *socket_text; /* as written in the config, for logs */
	struct mh_sockspec sock;
	enum mh_status fallback; /* default MH_ST_ACCEPT */
	double connect_timeout; /* 5 */
	double write_timeout; /* 7 */
	double read_timeout; /* 7 */
	double eom_timeout; /* 297 */
	int evaluate; /* design §2.6 */
	int enabled; /* the config's switch; the hub decides (with milterhubctl's override) */
	/*
	 * Applicable conditions (design §2.7): the child applies while none
	 * says "not applicable". Borrowed from the config, which owns them;
	 * the link itself never looks at them (the hub does).
	 */
	struct mh_cond *const *when;
	size_t nwhen;
	/*
	 * A child the daemon starts and supervises (issue 5); the link and
	 * the hub never look at these. command NULL: started by someone else.
	 */
	char **command; /* argv, NULL-terminated; command[0] an absolute path */
	char *user, *group; /* run it as; NULL: the manager's user (or the master's) */
	double health_interval; /* connect + negotiate every N s (10) */
	double restart_delay; /* first restart after N s, doubling up to 60 (1) */
};

struct mh_child;

struct mh_child_answer {
	enum mh_status status; /* the decision, or the fallback when failed */
	const char *text; /* the 'y' text (status from its first digit), else NULL */
	int failed; /* the child failed and is dead (status = fallback) */
	const char *why; /* failure reason for the log, else NULL */
};

struct mh_child_ops {
	/* Connected and negotiated (ok = 1), or failed (ok = 0, see above). */
	void (*on_negotiated)(struct mh_child *c, int ok, void *arg);
	/* The answer to the outstanding command, or an idle failure. */
	void (*on_answer)(struct mh_child *c, const struct mh_child_answer *a, void *arg);
	/* 'p' while waiting for a reply (eom deadline already restarted). */
	void (*on_progress)(struct mh_child *c, void *arg);
	/*
	 * A modification (+ - 2 b e h i m) in reply to 'E', or 'q' at any
	 * stage, in the order received. A modification at another stage, or
	 * one whose action the child did not negotiate, fails the child
	 * instead.
	 */
	void (*on_modification)(struct mh_child *c, const struct mh_reply *mod, void *arg);
};

enum mh_child_sent {
	MH_CHILD_WAIT, /* sent; on_answer will follow */
	MH_CHILD_NOWAIT, /* sent; the child negotiated no reply (NR*) */
	MH_CHILD_NOT_SENT, /* the child does not take this event (NO*, version) or is dead */
};

/*
 * Start connecting and negotiating. offer is what the hub offers this
 * child (version, actions, protocol). Returns NULL only when the link
 * cannot even start (then nothing is called back; treat as on_negotiated
 * ok = 0 with reason in err).
 */
struct mh_child *mh_child_new(struct ev_loop *loop, const struct mh_child_conf *conf,
                              const struct mh_optneg *offer, uint64_t session_id,
                              const struct mh_child_ops *ops, void *arg, char *err, size_t errlen);

/*
 * Send one command (C H M R T L N B E U) with its payload as it goes on
 * the wire, preceded by a 'D' for that command's stage holding the
 * given name/value pairs filtered by the child's list. Only one command
 * may wait at a time (an assert). MH_CHILD_NOWAIT and MH_CHILD_NOT_SENT
 * produce no on_answer: the hub counts the child as having continued.
 */
enum mh_child_sent mh_child_send(struct mh_child *c, uint8_t code, const void *payload, size_t len,
                                 const char *const *macro_pairs, size_t npairs);

/* Does the child take this event at all (negotiated, not NO*, version)? */
int mh_child_takes(const struct mh_child *c, uint8_t code);

/*
 * Which macro names to forward per stage (SMFIM order), replacing the
 * child's own lists: lists[s] holds names separated by spaces, or NULL to
 * forward every pair (design §2.4; the hub passes the plan of
 * mh_negotiate_plan_child). Copied.
 */
void mh_child_forward_macros(struct mh_child *c, char *const lists[MH_STAGE_COUNT]);
/* Forward this macro name at every stage whatever the lists say (a macro a
 * condition set for this child, design §2.7). Copied. */
void mh_child_forward_also(struct mh_child *c, const char *name);

/*
 * 'A' (no reply). Safe in any state; nothing is sent to a dead child. A
 * command still waiting is cancelled: no on_answer for it (its reply is
 * read and dropped), and the next command may be sent at once.
 */
void mh_child_abort(struct mh_child *c);
/* 'Q' and close; no callbacks afterwards. Frees the link. */
void mh_child_quit(struct mh_child *c);
/* Close without 'Q' and free. Safe from inside callbacks. */
void mh_child_free(struct mh_child *c);

/* The child's negotiation reply (valid after on_negotiated ok = 1). */
const struct mh_optneg *mh_child_negotiated(const struct mh_child *c);
int mh_child_leadspc(const struct mh_child *c); /* child negotiated HDR_LEADSPC */
int mh_child_dead(const struct mh_child *c);
/* The MTA refused the recipient last sent to it (a policy child counts only accepted ones). */
void mh_child_rcpt_refused(struct mh_child *c);
/* Why it failed ("timeout ...", "closed ...", "malformed ...", "connect ..."); "" if it did not. */
const char *mh_child_failure(const struct mh_child *c);
const struct mh_child_conf *mh_child_conf(const struct mh_child *c);

#endif
