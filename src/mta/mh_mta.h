/*
 * mh_mta - the MTA-facing half of a session: the milter side of the
 * protocol towards Postfix or Sendmail.
 *
 * Decodes the MTA's commands, keeps its macros per stage, checks the
 * command order, and sends what the hub decides. One command at a time:
 * after on_command for an answerable command (C H M R T L N B E U) input
 * is paused until the hub calls mh_mta_reply() for it — also for an
 * event the MTA was told needs no reply (NR*): then mh_mta_reply sends
 * nothing and only resumes. So the hub never sees a second command
 * before it answered the first, and an MTA that streams NR headers is
 * simply read as fast as the hub gets through them.
 *
 * Commands that are never answered (A, Q, K) are passed on_command
 * without pausing; 'D' is consumed here (see mh_mta_macros); 'O' goes
 * to on_optneg and is ended by mh_mta_reply_optneg. An 'H' or 'M' that
 * arrives inside an open transaction ends it as libmilter does: the hub
 * first gets a synthesized 'A', then the command.
 *
 * Bad input (malformed frame, oversize frame, a command out of order)
 * is logged with the session id and ends the session:
 * on_close(MH_CONN_PROTOCOL). Commands the hub negotiated away (NO*)
 * are accepted: MTAs send some anyway. Nothing else is disturbed.
 * After on_close the hub still calls mh_mta_free(); replies are ignored.
 *
 * Ownership: strings in a decoded command are valid only during
 * on_command; macro values returned by the accessors stay valid until
 * the next command of the same or an earlier stage. mh_mta_free() may
 * be called from inside callbacks.
 */
#ifndef MH_MTA_H
#define MH_MTA_H

#include <ev.h>
#include <stddef.h>
#include <stdint.h>

#include "hub/mh_status.h"
#include "net/mh_conn.h"
#include "protocol/mh_codec.h"

struct mh_mta;

struct mh_mta_ops {
	void (*on_optneg)(struct mh_mta *m, const struct mh_optneg *offer, void *arg);
	/* Every command but 'D' and 'O'. */
	void (*on_command)(struct mh_mta *m, const struct mh_cmd *cmd, void *arg);
	/* The MTA went away (EOF without Q is normal) or sent bad input. */
	void (*on_close)(struct mh_mta *m, enum mh_conn_why why, void *arg);
};

/* Wrap an accepted fd. idle_timeout bounds the wait for the MTA's next command. */
struct mh_mta *mh_mta_new(struct ev_loop *loop, int fd, size_t max_payload, double idle_timeout,
                          uint64_t session_id, const struct mh_mta_ops *ops, void *arg);
void mh_mta_free(struct mh_mta *m);

/* Send the negotiation reply; from now on its NR* and LEADSPC bits apply. */
void mh_mta_reply_optneg(struct mh_mta *m, const struct mh_optneg *reply);

/*
 * End the current answerable command with a decision (text: a 'y' text
 * whose class matches st, or NULL). Sends nothing for an NR event.
 * Resumes reading.
 */
void mh_mta_reply(struct mh_mta *m, enum mh_status st, const char *text);
/* Progress ('p') or a modification reply, while the MTA waits for 'E'. */
void mh_mta_send_progress(struct mh_mta *m);
void mh_mta_send_modification(struct mh_mta *m, const struct mh_reply *mod);

/* The pairs of the last 'D' for a command stage ('C' 'H' 'M' 'R' 'T' 'N' 'E' ...). */
size_t mh_mta_macros(const struct mh_mta *m, uint8_t stage_cmd, const char *const **pairs);
/* Look a macro up from the latest stage back to CONNECT ("{x}" and "x" match). */
const char *mh_mta_macro(const struct mh_mta *m, const char *name);

/* What the MTA offered and what was replied (after on_optneg / reply). */
const struct mh_optneg *mh_mta_offer(const struct mh_mta *m);
const struct mh_optneg *mh_mta_negotiated(const struct mh_mta *m);
uint64_t mh_mta_id(const struct mh_mta *m);

#endif
