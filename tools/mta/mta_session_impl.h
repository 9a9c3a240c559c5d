/*
 * mta_session_impl - the session's state, shared by the two halves of the
 * session module only: mta_session.c (life cycle, replies, decisions)
 * and mta_steps.c (what the MTA sends next). Not an interface: nothing
 * else includes this.
 */
#ifndef MTA_SESSION_IMPL_H
#define MTA_SESSION_IMPL_H

#include <stdlib.h>

#include "mta_macros.h"
#include "mta_session.h"
#include "net/mh_conn.h"

enum mta_phase {
	PH_CONNECTING,
	PH_OPTNEG,
	PH_HOLD, /* --hold: paused before the first MAIL, nothing awaited */
	PH_CONNECT, /* from here on run() steps the session */
	PH_HELO,
	PH_UNKNOWN,
	PH_MAIL,
	PH_RCPT,
	PH_DATA,
	PH_HEADER,
	PH_EOH,
	PH_BODY,
	PH_EOM,
	PH_MSG_END,
	PH_QUIT,
	PH_DONE,
};

/*
 * One milter of the session (chain mode: one per --socket, in order;
 * otherwise just one). Postfix keeps one connection per milter per SMTP
 * session and asks the milters one after the other (milter.c).
 */
struct mta_link {
	struct mta_session *s;
	size_t idx; /* position in the chain, 0-based */
	struct mh_conn *conn; /* NULL until connected and once closed */
	struct mta_macro_lists lists;
	uint32_t version, protocol; /* negotiated */
	int conn_done; /* accepted at connect/helo: out of the connection */
	int msg_done; /* accepted: out of the current message */
};

struct mta_session {
	struct ev_loop *loop;
	const struct mta_config *cfg;
	unsigned long id;
	mta_session_done_fn done;
	void *done_arg;
	struct mta_link *links; /* cfg->nsocks of them */
	size_t nlinks;
	size_t cur; /* the link the current event (or content pass) is at */
	int ev_open; /* an envelope event is being offered link by link */
	enum mta_reply ev_reply; /* the last answer that let the event go on */
	ev_timer later; /* reports a connect that failed at once; or retries it */
	int connect_retry; /* `later` retries the current link's connect */
	ev_tstamp connect_until; /* when retrying the connect gives up */
	ev_timer hold; /* --hold */
	int held; /* the --hold pause is over */
	struct mta_record rec;
	struct mta_macro_values vals;
	enum mta_phase phase;
	uint8_t awaiting; /* command whose answer is awaited; 0 = none */
	size_t stage; /* the awaited command's rec.stages index */
	unsigned msgno; /* current message, 1-based */
	struct mta_msg_rec *msg;
	size_t pos; /* recipient index, header index or body offset */
	size_t naccepted; /* recipients accepted in this message */
	enum mta_result refusal;
	char *refusal_text;
	int open_txn; /* Sendmail: message ended without a decision */
	int hangup; /* 421: no further messages */
	int conn_accepted; /* accept at connect/helo */
	char *conn_text; /* 'y' text of a connection-level refusal */
	char qid[16];
	char *mail_bare, *rcpt_bare;
};

/* The link the session is talking to now. */
static inline struct mta_link *mta_cur(struct mta_session *s)
{
	return &s->links[s->cur];
}

static inline struct mh_buf *mta_out(struct mta_session *s)
{
	return mh_conn_out(mta_cur(s)->conn);
}

static inline int mta_proto(const struct mta_session *s, uint32_t bit)
{
	return (s->links[s->cur].protocol & bit) != 0;
}

/*
 * Move s->cur to the first link at or after it still in the connection
 * (and, with in_msg, in the message). Returns 0 when none is left.
 */
int mta_next_link(struct mta_session *s, int in_msg);
/* Is any link still in the connection (and, with in_msg, the message)? */
int mta_any_link(const struct mta_session *s, int in_msg);
/* Close one link's connection without a word (Postfix after a decision). */
void mta_close_link(struct mta_link *k);

static inline void mta_set_str(char **dst, const char *src)
{
	free(*dst);
	*dst = src ? mh_xstrdup(src) : NULL;
}

/* mta_steps.c: send what comes next in the current phase (see run()). */
void mta_step(struct mta_session *s);
/* mta_steps.c: the message got its decision; next phase PH_MSG_END. */
void mta_end_message(struct mta_session *s, enum mta_result result, const char *text);
void mta_accept_rcpt(struct mta_session *s, const char *rcpt, enum mta_reply reply);
/* mta_steps.c: the current link is through with the content: the next one's turn. */
void mta_next_content(struct mta_session *s);
/* mta_session.c: end the session on purpose: 'Q' (or not) to every open link. */
void mta_hang_up(struct mta_session *s, int quit);

#endif
