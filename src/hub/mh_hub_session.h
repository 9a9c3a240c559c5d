/*
 * mh_hub_session - private to the hub: one SMTP session's state and the
 * functions the hub's files share (mh_hub.c: lifecycle, negotiation,
 * dispatch, logging; mh_hub_envelope.c: the parallel barrier of design
 * §2.2; mh_hub_content.c: the content chain of design §2.3;
 * mh_hub_mods.c: modifications kept and emitted, replacement bodies;
 * mh_hub_cond.c: the applicable conditions of design §2.7).
 *
 * Memory: a session holds one small struct per configured child and,
 * only while a transaction is open, one struct hub_txn (working header
 * list, body, modifications). Nothing is sized for the worst case.
 *
 * Re-entrancy: every callback into the hub (from mh_mta or mh_child)
 * is bracketed by hub_enter/hub_leave; a session that must end is only
 * marked (closing) and torn down when the outermost callback leaves.
 */
#ifndef MH_HUB_SESSION_H
#define MH_HUB_SESSION_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "child/mh_child.h"
#include "hub/mh_body.h"
#include "hub/mh_hub.h"
#include "hub/mh_negotiate.h"
#include "hub/mh_status.h"
#include "mta/mh_mta.h"
#include "protocol/mh_codec.h"
#include "protocol/mh_message.h"
#include "util/mh_buf.h"

struct hub_session;

/* What a session is waiting for. */
enum hub_phase {
	HUB_IDLE = 0, /* the MTA's next command */
	HUB_NEGOTIATING, /* children connecting/negotiating */
	HUB_BARRIER, /* envelope stage: answers of every participant */
	HUB_LIVE, /* content: the chain head's answer to a live command */
	HUB_CHAIN, /* end-of-message: the chain runs */
	HUB_RESTART, /* after 'K': new children negotiating before 'C' */
};

/* A macro a condition set for one child (design §2.7), sent to it only. */
struct hub_xmacro {
	char *name, *value; /* owned */
	uint8_t txn; /* set at a transaction stage: forgotten when it ends */
};

/* One configured child within one session. */
struct hub_child {
	struct hub_session *s;
	struct mh_child *link; /* NULL when gone (failed, retired, quit) */
	const struct mh_child_conf *conf;
	char *text; /* its 'y' text at the current stage (owned) */
	ev_tstamp start;
	ev_tstamp sent; /* when its awaited command went out (statistics) */
	uint32_t rcpt_seen; /* recipients of this transaction it answered */
	uint32_t rcpt_refused; /* ... of which it refused */
	/* design §2.7: bit i = when[i] said "applies" for the connection / the
	 * transaction (not asked again there); conditions past 64 are re-asked. */
	uint64_t cond_ok_conn, cond_ok_txn;
	struct hub_xmacro *xmacros; /* set by its conditions; NULL when none */
	uint8_t nxmacros, xmacros_cap;
	uint16_t idx; /* chain index (configuration order) */
	uint8_t state; /* last command it got (for the log) */
	int8_t last; /* enum mh_status: its last answer */
	/* design §2.7, for other children's conditions (s:result): its latest
	 * answer at connect/helo and in the current transaction; MH_ST_NONE
	 * when none, MH_ST_COUNT when left out of the transaction. */
	int8_t res_conn, res_txn;
	unsigned waiting : 1; /* an answer is outstanding */
	unsigned conn_done : 1; /* retired for the connection (design §2.2) */
	unsigned in_txn : 1; /* takes part in the current transaction */
	unsigned fold_pending : 1; /* failed while idle: its fallback is its next answer */
	unsigned skip_body : 1; /* answered skip: no more body (design §2.3) */
	unsigned skip_hdrs : 1;
	unsigned msg_done : 1; /* finished its part of the content chain */
	unsigned logged : 1; /* [milter][end] written */
	unsigned live : 1; /* has been receiving content live */
	unsigned rcpt_withheld : 1; /* a recipient not sent to it: not applicable */
};

/* A modification kept for the MTA (design §2.3: as issued, chain order). */
struct hub_mod {
	uint8_t code; /* h i m + - 2 */
	uint32_t index;
	char *a; /* header name / recipient */
	char *b; /* header value in the MTA's form / ESMTP args; may be NULL */
};

/* Replay cursor steps for a later child of the chain. */
enum hub_replay_step { RP_NONE, RP_HDRS, RP_EOH, RP_BODY, RP_EOM, RP_WAIT_EOM };

/* Streaming form of Postfix's replacement-body normalisation (mh_message). */
struct hub_norm {
	uint8_t pending_cr; /* a CR not yet known to precede LF */
	uint8_t in_line; /* bytes since the last line end */
	uint8_t flushed; /* the end of the body was emitted */
};

/* One transaction (MAIL ... end of message), allocated at MAIL. */
struct hub_txn {
	struct mh_msg msg; /* envelope + headers, raw values, hidden Received on top */
	struct mh_body body; /* the current body */
	struct mh_body repl; /* a replacement body being received */
	struct hub_mod *mods; /* header and recipient edits to forward */
	size_t nmods, mods_cap;
	struct hub_mod *pend; /* the current child's edits until its decision */
	size_t npend, pend_cap;
	char *chgfrom, *chgfrom_args; /* last wins (design §2.3) */
	char *quarantine; /* last wins */
	struct hub_child **chain; /* frozen at the first content command */
	uint16_t nchain, pos; /* pos: the child running end-of-message */
	uint8_t step; /* enum hub_replay_step */
	size_t rhdr; /* next header to replay */
	uint64_t roff; /* next body byte to replay */
	uint64_t live_eob_off; /* body bytes the head got live (before 'E' data) */
	struct hub_norm norm;
	unsigned content : 1; /* chain frozen */
	unsigned data_done : 1; /* refused-all children dropped */
	unsigned ended : 1; /* the MTA got the message's final answer */
	unsigned repl_active : 1; /* the current child is replacing the body */
	unsigned body_replaced : 1; /* current body is a replacement */
	unsigned any_continue : 1; /* some child continued at eom */
	unsigned failed_io : 1; /* body storage failed: manager fallback */
	unsigned any_accept : 1; /* a chain child accepted the message (or failed with accept) */
	unsigned cond_out : 1; /* a chain child was left out by its conditions */
	/* Conditions' view (only with conditions configured): the recipient
	 * being decided and those accepted so far. */
	char *cur_rcpt;
	char **rcpts;
	size_t nrcpts, rcpts_cap;
};

struct hub_session {
	struct mh_hub *hub;
	struct hub_session *prev, *next;
	struct mh_mta *mta;
	uint64_t id;
	ev_tstamp start;
	struct mh_optneg offer; /* what each child is offered (must outlive links) */
	struct mh_negotiate_macros neg_macros;
	struct hub_child *kids;
	struct hub_txn *txn; /* NULL outside a transaction */
	struct mh_status_merge merge;
	uint16_t nkids;
	uint16_t pending; /* answers outstanding at a barrier */
	uint16_t negpending; /* links still connecting/negotiating */
	struct mh_buf *deferred; /* a 'C' frame that came before the links were ready */
	uint8_t phase; /* enum hub_phase */
	uint8_t cmd; /* the MTA command being answered */
	uint8_t last_cmd; /* the MTA's last command, 'Q'/'K' aside ([session][end] state) */
	int8_t result; /* enum mh_status for the [session][end] line */
	uint8_t depth;
	unsigned closing : 1;
	unsigned ended_log : 1;
	unsigned msg_open : 1; /* a MAIL whose end statistics have not counted yet */
	/* Its recipients so far, by the answer the MTA got (statistics: a message
	 * whose every recipient was refused ended refused, not aborted). */
	uint16_t n_rcpt_ok, n_rcpt_rejected, n_rcpt_tempfailed;
	unsigned negotiated : 1;
	unsigned mta_leadspc : 1;
	unsigned rcpt_rejected : 1; /* this RCPT was rejected by the MTA (RCPT_REJ) */
	unsigned rcpt_withheld : 1; /* this RCPT was withheld from a child (design §2.7) */
	/* From 'C' and 'H' for the conditions (kept only when some child has any). */
	char *client_name, *client_addr, *helo;
	int client_family;
};

struct mh_hub {
	struct ev_loop *loop;
	const struct mh_hub_conf *conf;
	struct hub_session *sessions;
	size_t nsessions;
	uint64_t next_id;
	struct mh_buf scratch; /* payload encoding, shared: one loop, synchronous sends */
	uint8_t *chunk; /* MH_CHUNK_MAX bytes for body replay and emission */
	const char *pairs[MH_ARGS_MAX]; /* macro pairs filtered for one child */
	int has_when; /* some child has conditions (design §2.7) */
	int now_fixed; /* MILTERHUB_NOW was set: the conditions' clock is frozen */
	time_t now;
	/* [sessions][finished]: SMTP sessions ended in this hub (this worker), the
	 * count at the last line, and the watcher writing one line per loop
	 * iteration in which some ended (started only then). */
	uint64_t finished, finished_logged;
	ev_prepare finished_w;
};

/* mh_hub.c */
void hub_enter(struct hub_session *s);
void hub_leave(struct hub_session *s);
void hub_close(struct hub_session *s, const char *why);
void hub_reply(struct hub_session *s, enum mh_status st, const char *text);
void hub_child_drop(struct hub_child *k, int quit);
void hub_child_log_end(struct hub_child *k);
const char *hub_state_name(uint8_t cmd);
size_t hub_macros(struct hub_child *k, uint8_t code, const char *const **pairs);
enum mh_status hub_effective(const struct hub_child *k, enum mh_status st);
void hub_set_text(struct hub_child *k, const char *text);
void hub_txn_free(struct hub_session *s);
struct hub_txn *hub_txn_new(struct hub_session *s);
void hub_abort_txn_children(struct hub_session *s, const struct hub_child *except);

/* mh_hub_envelope.c */
void hub_envelope_command(struct hub_session *s, const struct mh_cmd *cmd);
void hub_envelope_answer(struct hub_child *k, const struct mh_child_answer *a);
void hub_drop_refused_all(struct hub_session *s);

/* mh_hub_content.c */
void hub_content_command(struct hub_session *s, const struct mh_cmd *cmd);
void hub_content_answer(struct hub_child *k, const struct mh_child_answer *a);

/* mh_hub_mods.c */
void hub_mods_record(struct hub_child *k, const struct mh_reply *r);
/* The current chain child decided: apply (keep) or drop its edits. */
void hub_mods_child_done(struct hub_session *s, struct hub_child *k, int keep);
void hub_mods_emit(struct hub_session *s);
void hub_mods_free(struct hub_txn *t);
/* Next replay chunk of the current body (normalised when replaced): bytes in *out. */
ssize_t hub_body_next_chunk(struct hub_session *s, const uint8_t **out);

/*
 * mh_hub_cond.c (design §2.7). Each returns 1 when child k applies (or
 * has no conditions: one test, nothing else), 0 when a condition said
 * "not applicable" (logged at debug) and the scope's consequence was
 * applied: connect/helo: quit, out for the connection; mail: not in the
 * transaction; rcpt: this recipient withheld; data and content stages:
 * ABORT, out for the message (msg_done at content).
 */
int hub_cond_envelope(struct hub_child *k, const struct mh_cmd *cmd);
int hub_cond_content(struct hub_child *k, uint8_t code, const char *hname, const char *hvalue);
/* k answered st to the MTA command being answered (s->cmd). */
void hub_cond_note_answer(struct hub_child *k, enum mh_status st);
/* Session facts the conditions read ('C', 'H', recipients). */
void hub_cond_note_command(struct hub_session *s, const struct mh_cmd *cmd);
void hub_cond_note_rcpt_result(struct hub_session *s, int accepted);
/* Forget the per-transaction verdicts and macros (and the recipients). */
void hub_cond_txn_reset(struct hub_session *s);
/* Release a child's condition state / the session's (at end or 'K'). */
void hub_cond_child_free(struct hub_child *k);
void hub_cond_session_free(struct hub_session *s);
/* Append/override k's condition macros in the pairs for code (hub->pairs). */
size_t hub_cond_macros(struct hub_child *k, uint8_t code, const char *const *in, size_t n,
                       const char *const **pairs);

/* Tell the daemon (hooks->child_failed) that k's fallback stands for it; why: the
 * link's failure text (classified), or NULL with fail given. */
void hub_child_failed(struct hub_child *k, const char *why, enum mh_hub_fail fail);
/* Statistics: a transaction ended with r (once per MAIL). */
void hub_message_end(struct hub_session *s, enum mh_hub_result r);

/* mh_hub_report.c: statistics and the reference's log lines. */
void hub_count_reply(struct hub_session *s, enum mh_status st);
void hub_log_stopped_children(struct hub_session *s);
void hub_session_log_end(struct hub_session *s);
void hub_sessions_finished_flush(struct mh_hub *h);
void hub_on_sessions_finished(struct ev_loop *loop, ev_prepare *w, int revents);

#endif
