/*
 * mh_hub_cond - applicable conditions in the hub (design §2.7): before a
 * stage is sent to a child with a `when` list, its conditions are asked;
 * one "not applicable" leaves that child (and no other) out for the
 * scope of the stage:
 *   connect, helo         the connection: QUIT (it was negotiated at 'O')
 *   mail                  the transaction: MAIL not sent; next MAIL again
 *   rcpt                  that recipient: not sent; a child left with no
 *                         recipient at DATA gets ABORT (hub_drop_refused_all)
 *   data, header, eoh, eom the transaction: ABORT; next MAIL again
 * A child left out is never folded into a merge (design §2.1: "not
 * applicable"); the barrier and the chain go on with the others (never
 * the reference's "DATA condition stops all children", design §2.5).
 *
 * Verdicts are per child and scope: a condition that said "applies" is
 * not asked again in its scope (a bit in cond_ok_conn / cond_ok_txn; a
 * recipient's verdict holds for that recipient only). Macros a condition
 * sets go to that child only, with every later command's macros.
 *
 * What a condition sees of the others (s:result, design §2.7): each
 * child's latest answer, kept in two bytes: res_conn (connect/helo) and
 * res_txn (this transaction; MH_ST_COUNT once left out of it, reset with
 * the transaction). Children answer an envelope stage in parallel, so at
 * mail/rcpt the others' answers at that stage are not known yet; in the
 * content chain a later child is asked after the earlier ones answered
 * (at eom). The headers are the working copy's (t->msg), read in place.
 *
 * Cost: a child without conditions costs one test per stage; the ctx is
 * built on the stack; nothing is allocated unless a condition sets a
 * macro, and the session keeps 'C'/'H'/recipients only when some child
 * has conditions.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "hub/mh_hub_session.h"
#include "util/mh_log.h"

static const char *const stage_names[MH_COND_STAGE_COUNT] = {
    "connect", "helo", "mail", "rcpt", "data", "header", "eoh", "eom",
};

static int stage_of(uint8_t code, enum mh_cond_stage *st)
{
	switch (code) {
	case 'C':
		*st = MH_COND_CONNECT;
		return 1;
	case 'H':
		*st = MH_COND_HELO;
		return 1;
	case 'M':
		*st = MH_COND_MAIL;
		return 1;
	case 'R':
		*st = MH_COND_RCPT;
		return 1;
	case 'T':
		*st = MH_COND_DATA;
		return 1;
	case 'L':
		*st = MH_COND_HEADER;
		return 1;
	case 'N':
		*st = MH_COND_EOH;
		return 1;
	case 'E':
		*st = MH_COND_EOM;
		return 1;
	default:
		return 0; /* unknown, body: no condition stage */
	}
}

static const char *ctx_macro(const struct mh_cond_ctx *ctx, const char *name)
{
	struct hub_child *k = ctx->hub_arg;

	/* What this child will be sent: its own condition macros first. */
	for (size_t i = 0; i < k->nxmacros; i++)
		if (mh_macro_name_eq(k->xmacros[i].name, name))
			return k->xmacros[i].value;
	return k->s->mta != NULL ? mh_mta_macro(k->s->mta, name) : NULL;
}

static void ctx_set_macro(const struct mh_cond_ctx *ctx, const char *name, const char *value)
{
	struct hub_child *k = ctx->hub_arg;
	struct hub_xmacro *x = NULL;

	if (name == NULL || name[0] == '\0')
		return;
	for (size_t i = 0; i < k->nxmacros; i++)
		if (mh_macro_name_eq(k->xmacros[i].name, name))
			x = &k->xmacros[i];
	if (x == NULL) {
		if (k->nxmacros == UINT8_MAX) {
			mh_warn(k->s->id, "child %s: too many condition macros; %s dropped",
			        k->conf->name, name);
			return;
		}
		if (k->nxmacros == k->xmacros_cap) {
			k->xmacros_cap = k->xmacros_cap ? (uint8_t)(k->xmacros_cap * 2 > UINT8_MAX
			                                                ? UINT8_MAX
			                                                : k->xmacros_cap * 2)
			                                : 4;
			k->xmacros = mh_xrealloc(k->xmacros, k->xmacros_cap * sizeof(*k->xmacros));
		}
		x = &k->xmacros[k->nxmacros++];
		x->name = mh_xstrdup(name);
		x->value = NULL;
		if (k->link != NULL)
			mh_child_forward_also(k->link, name);
	}
	free(x->value);
	x->value = mh_xstrdup(value != NULL ? value : "");
	/* Set at mail or later: belongs to this transaction only. */
	x->txn = ctx->stage >= MH_COND_MAIL;
	mh_debug(k->s->id, "child %s: condition macro %s=%s", k->conf->name, x->name, x->value);
}

/*
 * The working header list, hidden headers skipped. At a header stage of a
 * replayed child the list holds the whole message: count up to the header
 * being sent (t->rhdr), as the live head sees it.
 */
static size_t ctx_headers(const struct mh_cond_ctx *ctx, size_t i, const char **name,
                          const char **value)
{
	const struct hub_child *k = ctx->hub_arg;
	const struct hub_txn *t = k->s->txn;
	size_t end, n = 0, found = 0;

	if (t == NULL || !t->content)
		return 0;
	end = t->msg.nhdrs;
	if (ctx->stage == MH_COND_HEADER && t->step == RP_HDRS && t->rhdr < end)
		end = t->rhdr + 1;
	for (size_t j = 0; j < end; j++) {
		const struct mh_msg_header *h = &t->msg.hdrs[j];

		if (h->hidden)
			continue;
		if (n == i && !found) {
			*name = h->name;
			*value = mh_msg_value_for_milter(h->value, 0);
			found = 1;
		}
		n++;
	}
	return n;
}

static const char *ctx_child_result(const struct mh_cond_ctx *ctx, const char *child_name)
{
	const struct hub_child *me = ctx->hub_arg;
	const struct hub_session *s = me->s;

	if (child_name == NULL)
		return NULL;
	for (size_t i = 0; i < s->nkids; i++) {
		const struct hub_child *k = &s->kids[i];
		enum mh_status st;

		if (strcmp(k->conf->name, child_name) != 0)
			continue;
		st = (enum mh_status)(k->res_txn != MH_ST_NONE ? k->res_txn : k->res_conn);
		if (st <= MH_ST_NONE || st >= MH_ST_COUNT)
			return NULL; /* none, or left out of the transaction */
		return mh_status_name(st);
	}
	return NULL;
}

static size_t ctx_children(const struct mh_cond_ctx *ctx, size_t i, const char **name)
{
	const struct hub_child *me = ctx->hub_arg;
	const struct hub_session *s = me->s;

	if (i < s->nkids)
		*name = s->kids[i].conf->name;
	return s->nkids;
}

void hub_cond_note_answer(struct hub_child *k, enum mh_status st)
{
	if (k->s->cmd == 'C' || k->s->cmd == 'H')
		k->res_conn = (int8_t)st;
	else
		k->res_txn = (int8_t)st;
}

/*
 * Ask k's undecided conditions at stage. Returns the condition that said
 * "not applicable", or NULL when the child applies (so far).
 */
static const struct mh_cond *ask(struct hub_child *k, enum mh_cond_stage stage, const char *rcpt,
                                 const char *hname, const char *hvalue)
{
	struct hub_session *s = k->s;
	struct hub_txn *t = s->txn;
	const struct mh_child_conf *cc = k->conf;
	struct mh_cond_ctx ctx;

	memset(&ctx, 0, sizeof(ctx));
	ctx.stage = stage;
	ctx.client_name = s->client_name;
	ctx.client_addr = s->client_addr;
	ctx.client_family = s->client_family;
	ctx.helo = s->helo;
	ctx.sender = t != NULL ? t->msg.sender : NULL;
	ctx.rcpt = rcpt;
	ctx.rcpts = t != NULL ? (const char *const *)t->rcpts : NULL;
	ctx.nrcpts = t != NULL ? t->nrcpts : 0;
	ctx.header_name = hname;
	ctx.header_value = hvalue;
	ctx.concurrent_sessions = (unsigned)s->hub->nsessions;
	ctx.now = s->hub->now_fixed ? s->hub->now : time(NULL);
	ctx.macro = ctx_macro;
	ctx.set_macro = ctx_set_macro;
	ctx.headers = ctx_headers;
	ctx.child_result = ctx_child_result;
	ctx.children = ctx_children;
	ctx.hub_arg = k;
	for (size_t i = 0; i < cc->nwhen; i++) {
		uint64_t bit = i < 64 ? (uint64_t)1 << i : 0;

		if ((k->cond_ok_conn | k->cond_ok_txn) & bit)
			continue;
		switch (mh_cond_eval(cc->when[i], &ctx)) {
		case MH_COND_NOT_APPLICABLE:
			return cc->when[i];
		case MH_COND_APPLIES:
			/* design §2.7: decided for its scope; a recipient's is its own. */
			if (stage <= MH_COND_HELO)
				k->cond_ok_conn |= bit;
			else if (stage != MH_COND_RCPT)
				k->cond_ok_txn |= bit;
			break;
		default:
			break;
		}
	}
	return NULL;
}

static void log_out(struct hub_child *k, enum mh_cond_stage stage, const struct mh_cond *c)
{
	mh_debug(k->s->id, "child %s not applicable at %s (condition %s)", k->conf->name,
	         stage_names[stage], c->name != NULL ? c->name : c->ops->type);
}

int hub_cond_envelope(struct hub_child *k, const struct mh_cmd *cmd)
{
	enum mh_cond_stage stage;
	const struct mh_cond *c;

	if (k->conf->nwhen == 0 || !stage_of(cmd->code, &stage))
		return 1;
	c = ask(k, stage, cmd->code == 'R' ? cmd->u.env.argv[0] : NULL, NULL, NULL);
	if (c == NULL)
		return 1;
	log_out(k, stage, c);
	switch (cmd->code) {
	case 'C':
	case 'H':
		/* design §2.7: out for the connection. The statistics line
		 * says accept, as the reference compiles a stopped child. */
		k->conn_done = 1;
		k->fold_pending = 0; /* an unreachable child's fallback does not count */
		k->state = cmd->code;
		k->last = MH_ST_ACCEPT;
		k->res_conn = k->res_txn = MH_ST_NONE; /* no result for the others */
		hub_child_drop(k, 1);
		break;
	case 'M':
		k->in_txn = 0; /* MAIL not sent: nothing to abort */
		k->res_txn = MH_ST_COUNT; /* out of the transaction: no result */
		break;
	case 'R':
		k->rcpt_withheld = 1; /* stays in the transaction */
		break;
	default: /* 'T' */
		k->in_txn = 0;
		k->res_txn = MH_ST_COUNT;
		if (k->link != NULL)
			mh_child_abort(k->link);
		break;
	}
	return 0;
}

int hub_cond_content(struct hub_child *k, uint8_t code, const char *hname, const char *hvalue)
{
	enum mh_cond_stage stage;
	const struct mh_cond *c;

	if (k->conf->nwhen == 0 || !stage_of(code, &stage))
		return 1;
	c = ask(k, stage, NULL, hname, hvalue);
	if (c == NULL)
		return 1;
	log_out(k, stage, c);
	/* design §2.7: out for this message, others go on (design §2.5). */
	k->in_txn = 0;
	k->live = 0;
	k->msg_done = 1;
	k->res_txn = MH_ST_COUNT;
	if (k->link != NULL)
		mh_child_abort(k->link);
	if (k->s->txn != NULL)
		k->s->txn->cond_out = 1;
	return 0;
}

static char *dup_or_null(const char *p)
{
	return p != NULL ? mh_xstrdup(p) : NULL;
}

void hub_cond_note_command(struct hub_session *s, const struct mh_cmd *cmd)
{
	if (!s->hub->has_when)
		return;
	switch (cmd->code) {
	case 'C':
		free(s->client_name);
		free(s->client_addr);
		free(s->helo);
		s->helo = NULL;
		s->client_name = dup_or_null(cmd->u.connect.hostname);
		s->client_addr =
		    cmd->u.connect.family == 'U' ? NULL : dup_or_null(cmd->u.connect.address);
		switch (cmd->u.connect.family) {
		case '4':
			s->client_family = AF_INET;
			break;
		case '6':
			s->client_family = AF_INET6;
			break;
		case 'L':
			s->client_family = AF_UNIX;
			break;
		default:
			s->client_family = AF_UNSPEC;
			break;
		}
		break;
	case 'H':
		free(s->helo);
		s->helo = dup_or_null(cmd->u.helo.name);
		break;
	case 'R':
		if (s->txn != NULL) {
			free(s->txn->cur_rcpt);
			s->txn->cur_rcpt = dup_or_null(cmd->u.env.argv[0]);
		}
		break;
	default:
		break;
	}
}

void hub_cond_note_rcpt_result(struct hub_session *s, int accepted)
{
	struct hub_txn *t = s->txn;

	if (t == NULL || t->cur_rcpt == NULL)
		return;
	if (accepted) {
		if (t->nrcpts == t->rcpts_cap) {
			t->rcpts_cap = t->rcpts_cap ? t->rcpts_cap * 2 : 4;
			t->rcpts = mh_xrealloc(t->rcpts, t->rcpts_cap * sizeof(*t->rcpts));
		}
		t->rcpts[t->nrcpts++] = t->cur_rcpt;
	} else {
		free(t->cur_rcpt);
	}
	t->cur_rcpt = NULL;
}

static void forget_txn_macros(struct hub_child *k)
{
	size_t j = 0;

	for (size_t i = 0; i < k->nxmacros; i++) {
		if (k->xmacros[i].txn) {
			free(k->xmacros[i].name);
			free(k->xmacros[i].value);
			continue;
		}
		k->xmacros[j++] = k->xmacros[i];
	}
	k->nxmacros = (uint8_t)j;
}

void hub_cond_txn_reset(struct hub_session *s)
{
	struct hub_txn *t = s->txn;

	for (size_t i = 0; i < s->nkids; i++) {
		struct hub_child *k = &s->kids[i];

		k->rcpt_withheld = 0;
		k->cond_ok_txn = 0;
		k->res_txn = MH_ST_NONE;
		if (k->nxmacros > 0)
			forget_txn_macros(k);
	}
	if (t != NULL) {
		for (size_t i = 0; i < t->nrcpts; i++)
			free(t->rcpts[i]);
		free(t->rcpts);
		free(t->cur_rcpt);
		t->rcpts = NULL;
		t->cur_rcpt = NULL;
		t->nrcpts = t->rcpts_cap = 0;
	}
}

void hub_cond_child_free(struct hub_child *k)
{
	for (size_t i = 0; i < k->nxmacros; i++) {
		free(k->xmacros[i].name);
		free(k->xmacros[i].value);
	}
	free(k->xmacros);
	k->xmacros = NULL;
	k->nxmacros = k->xmacros_cap = 0;
	k->cond_ok_conn = k->cond_ok_txn = 0;
}

void hub_cond_session_free(struct hub_session *s)
{
	free(s->client_name);
	free(s->client_addr);
	free(s->helo);
	s->client_name = s->client_addr = s->helo = NULL;
	s->client_family = AF_UNSPEC;
}

size_t hub_cond_macros(struct hub_child *k, uint8_t code, const char *const *in, size_t n,
                       const char *const **pairs)
{
	const char **out = k->s->hub->pairs;
	const size_t max = MH_ARGS_MAX / 2;

	*pairs = in;
	if (k->nxmacros == 0 || code == 'B' || code == 'U')
		return n; /* not with every body chunk: they go with eoh/eom */
	if (n > max)
		n = max;
	if (n > 0 && in != out) /* in may be NULL when the MTA sent no pairs */
		memcpy(out, in, 2 * n * sizeof(*out));
	for (size_t i = 0; i < k->nxmacros; i++) {
		const struct hub_xmacro *x = &k->xmacros[i];
		size_t j;

		/* design §2.7: a condition's macro overrides the MTA's. */
		for (j = 0; j < n; j++)
			if (mh_macro_name_eq(out[2 * j], x->name))
				break;
		if (j == n) {
			if (n == max)
				continue;
			out[2 * n] = x->name;
			n++;
		}
		out[2 * j + 1] = x->value;
	}
	*pairs = out;
	return n;
}
