/*
 * NAME
 *	mh_child_policy 3
 * SUMMARY
 *	a Postfix policy server as a child: the milter events in, one
 *	policy request at its stage, the answer as a milter answer out
 * DESCRIPTION
 *	Negotiation needs no round trip: the link reports itself ready from
 *	the loop at once, version 6, the actions add-header and quarantine
 *	(what PREPEND and HOLD need) as far as the hub offered them, and no
 *	reply (NR) at every envelope stage except its own, so the hub never
 *	waits for it there.
 *
 *	It takes CONNECT, HELO, MAIL, RCPT and DATA (and, asked at the end
 *	of the message, headers and body, to know the size) and keeps what
 *	a request needs. At its stage (policy "x" { stage = ... }: "rcpt"
 *	for each recipient, "data", or "eom") it sends one request through
 *	the child's connection pool (mh_policy) and maps the answer:
 *	continue (OK, DUNNO, DEFER_IF_REJECT, WARN logged, FILTER/REDIRECT/
 *	BCC and unknown actions logged as unsupported), reject or tempfail
 *	with the code and text (a 'y' answer), discard, HOLD as a quarantine
 *	request, PREPEND kept and added as a header at end of message. A
 *	request that fails (timeout, refused, closed, garbage) fails the
 *	link: its fallback answers, as for a milter (design §2.5).
 *
 *	Request attributes (SMTPD_POLICY_README), from what the MTA sent:
 *	request=smtpd_access_policy, protocol_state (RCPT, DATA,
 *	END-OF-MESSAGE), protocol_name (ESMTP when MAIL carried ESMTP
 *	parameters, else SMTP), client_address and client_port (CONNECT),
 *	client_name (CONNECT's host name, "unknown" for "[address]"),
 *	reverse_client_name ({client_ptr}, else client_name), helo_name,
 *	sender, recipient, recipient_count (0 at RCPT, the recipients so far
 *	later), queue_id (i), instance (one per message), size (MAIL's SIZE=,
 *	at end of message the bytes seen), sasl_method/_username/_sender
 *	({auth_type} {auth_authen} {auth_author}), ccert_subject/_issuer/
 *	_fingerprint ({cert_subject} {cert_issuer} {cert_fingerprint}),
 *	encryption_protocol/_cipher/_keysize ({tls_version} {cipher}
 *	{cipher_bits}), server_address/_port ({daemon_addr} {daemon_port}).
 *	Attributes the MTA did not send go out empty, as Postfix sends them.
 * CALLBACKS
 *	From the loop only (an ev_timer of 0 s, or the pool's callback);
 *	mh_child_free may be called from inside them.
 */
#include "child/mh_child_policy.h"
#include "child/mh_policy.h"
#include "protocol/mh_codec.h"
#include "util/mh_buf.h"
#include "util/mh_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum attr {
	A_CLIENT_ADDRESS,
	A_CLIENT_PORT,
	A_CLIENT_NAME,
	A_REVERSE_CLIENT_NAME,
	A_HELO_NAME,
	A_SENDER,
	A_RECIPIENT,
	A_QUEUE_ID,
	A_SIZE,
	A_SASL_METHOD,
	A_SASL_USERNAME,
	A_SASL_SENDER,
	A_CCERT_SUBJECT,
	A_CCERT_ISSUER,
	A_CCERT_FINGERPRINT,
	A_ENCRYPTION_PROTOCOL,
	A_ENCRYPTION_CIPHER,
	A_ENCRYPTION_KEYSIZE,
	A_SERVER_ADDRESS,
	A_SERVER_PORT,
	A_COUNT
};

static const char *const attr_names[A_COUNT] = {
    "client_address",      "client_port",       "client_name",
    "reverse_client_name", "helo_name",         "sender",
    "recipient",           "queue_id",          "size",
    "sasl_method",         "sasl_username",     "sasl_sender",
    "ccert_subject",       "ccert_issuer",      "ccert_fingerprint",
    "encryption_protocol", "encryption_cipher", "encryption_keysize",
    "server_address",      "server_port"};

/* Macros that fill attributes (names without braces). */
static const struct {
	const char *macro;
	enum attr attr;
} macro_attrs[] = {
    {"i", A_QUEUE_ID},
    {"client_ptr", A_REVERSE_CLIENT_NAME},
    {"auth_type", A_SASL_METHOD},
    {"auth_authen", A_SASL_USERNAME},
    {"auth_author", A_SASL_SENDER},
    {"cert_subject", A_CCERT_SUBJECT},
    {"cert_issuer", A_CCERT_ISSUER},
    {"cert_fingerprint", A_CCERT_FINGERPRINT},
    {"tls_version", A_ENCRYPTION_PROTOCOL},
    {"cipher", A_ENCRYPTION_CIPHER},
    {"cipher_bits", A_ENCRYPTION_KEYSIZE},
    {"daemon_addr", A_SERVER_ADDRESS},
    {"daemon_port", A_SERVER_PORT},
};

struct mh_child_policy {
	struct mh_child *link; /* the wrapper the hub holds */
	struct ev_loop *loop;
	const struct mh_child_conf *conf;
	const struct mh_child_ops *ops;
	void *arg;
	uint64_t sid;
	struct mh_optneg reply;
	char *attr[A_COUNT]; /* owned; NULL = empty */
	int esmtp; /* MAIL carried ESMTP parameters */
	unsigned rcpt_count; /* recipients of this message so far */
	unsigned messages; /* for instance */
	uint64_t bytes; /* headers + body seen (size at end of message) */
	char **prepend; /* PREPEND answers held for end of message */
	size_t nprepend;
	struct mh_policy_req *req; /* the request in flight */
	uint8_t waiting; /* command whose answer is owed (0: none) */
	ev_timer now_w; /* answers that need no request */
	int negotiated, dead;
	char why[240];
	unsigned depth;
	int freed;
};

/* ------------------------------------------------------------ lifetime */

static void set_attr(struct mh_child_policy *p, enum attr a, const char *v)
{
	free(p->attr[a]);
	p->attr[a] = v != NULL ? mh_xstrdup(v) : NULL;
}

static void txn_reset(struct mh_child_policy *p)
{
	for (enum attr a = A_SENDER; a <= A_SIZE; a++)
		set_attr(p, a, NULL);
	p->rcpt_count = 0;
	p->bytes = 0;
	p->esmtp = 0;
	for (size_t i = 0; i < p->nprepend; i++)
		free(p->prepend[i]);
	free(p->prepend);
	p->prepend = NULL;
	p->nprepend = 0;
}

static void release(struct mh_child_policy *p)
{
	ev_timer_stop(p->loop, &p->now_w);
	if (p->req != NULL)
		mh_policy_cancel(p->req);
	txn_reset(p);
	for (int a = 0; a < A_COUNT; a++)
		free(p->attr[a]);
	free(p->link);
	free(p);
}

static void enter(struct mh_child_policy *p)
{
	p->depth++;
}

/* Returns 1 when p was released (the caller must not touch it). */
static int leave(struct mh_child_policy *p)
{
	if (--p->depth == 0 && p->freed) {
		release(p);
		return 1;
	}
	return 0;
}

void mh_child_policy_free(struct mh_child_policy *p)
{
	if (p == NULL)
		return;
	ev_timer_stop(p->loop, &p->now_w);
	if (p->req != NULL) {
		mh_policy_cancel(p->req);
		p->req = NULL;
	}
	p->freed = 1;
	if (p->depth == 0)
		release(p);
}

/* ------------------------------------------------------------- answers */

static void answer(struct mh_child_policy *p, enum mh_status st, const char *text, int failed,
                   const char *why)
{
	struct mh_child_answer a = {.status = st, .text = text, .failed = failed, .why = why};
	p->waiting = 0;
	if (failed)
		p->dead = 1;
	p->ops->on_answer(p->link, &a, p->arg);
}

/* End of message: the held PREPENDs as headers, then continue. */
static void answer_eom(struct mh_child_policy *p)
{
	for (size_t i = 0; i < p->nprepend && !p->freed; i++) {
		char *line = p->prepend[i];
		char *colon = strchr(line, ':');
		if (colon == NULL || !(p->reply.actions & MH_ACT_ADDHDRS))
			continue;
		*colon = '\0';
		struct mh_reply r;
		memset(&r, 0, sizeof(r));
		r.code = 'h';
		r.u.header.name = line;
		r.u.header.value = colon[1] == ' ' ? colon + 2 : colon + 1;
		p->ops->on_modification(p->link, &r, p->arg);
		*colon = ':';
	}
	if (!p->freed)
		answer(p, MH_ST_CONTINUE, NULL, 0, NULL);
}

static void on_now(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct mh_child_policy *p = w->data;
	enter(p);
	if (!p->negotiated) {
		p->negotiated = 1;
		p->ops->on_negotiated(p->link, 1, p->arg);
	} else if (p->waiting == 'E') {
		answer_eom(p);
	} else if (p->waiting != 0) {
		answer(p, MH_ST_CONTINUE, NULL, 0, NULL);
	}
	leave(p);
}

static void later(struct mh_child_policy *p)
{
	ev_timer_stop(p->loop, &p->now_w);
	ev_timer_set(&p->now_w, 0, 0);
	ev_timer_start(p->loop, &p->now_w);
}

static void on_policy(const struct mh_policy_answer *a, void *arg)
{
	struct mh_child_policy *p = arg;
	uint8_t cmd = p->waiting;
	p->req = NULL;
	enter(p);
	switch (a->kind) {
	case MH_POL_FAILED:
		snprintf(p->why, sizeof(p->why), "%s", a->why ? a->why : "no answer");
		answer(p, p->conf->fallback, NULL, 1, p->why);
		break;
	case MH_POL_REJECT:
		answer(p, MH_ST_REJECT, a->text[0] ? a->text : NULL, 0, NULL);
		break;
	case MH_POL_TEMPFAIL:
		answer(p, MH_ST_TEMPFAIL, a->text[0] ? a->text : NULL, 0, NULL);
		break;
	case MH_POL_DISCARD:
		answer(p, MH_ST_DISCARD, NULL, 0, NULL);
		break;
	case MH_POL_HOLD:
		if (p->reply.actions & MH_ACT_QUARANTINE) {
			struct mh_reply r;
			memset(&r, 0, sizeof(r));
			r.code = 'q';
			r.u.quarantine.reason = a->text[0] ? a->text : "held by policy";
			p->ops->on_modification(p->link, &r, p->arg);
		} else {
			mh_warn(p->sid, "policy %s: HOLD, but the MTA takes no quarantine: ignored",
			        p->conf->name);
		}
		if (!p->freed)
			answer(p, MH_ST_CONTINUE, NULL, 0, NULL);
		break;
	case MH_POL_PREPEND:
		p->prepend = mh_xrealloc(p->prepend, (p->nprepend + 1) * sizeof(*p->prepend));
		p->prepend[p->nprepend++] = mh_xstrdup(a->text);
		if (cmd == 'E')
			answer_eom(p);
		else
			answer(p, MH_ST_CONTINUE, NULL, 0, NULL);
		break;
	case MH_POL_CONTINUE:
	default:
		if (a->note != NULL && strcmp(a->note, "warn") == 0)
			mh_warn(p->sid, "policy %s: WARN %s", p->conf->name, a->text);
		else if (a->note != NULL)
			mh_info(p->sid, "policy %s: action '%s' is not supported here; continuing",
			        p->conf->name, a->action);
		if (cmd == 'E')
			answer_eom(p);
		else
			answer(p, MH_ST_CONTINUE, NULL, 0, NULL);
		break;
	}
	leave(p);
}

/* ------------------------------------------------------------- request */

static void ask(struct mh_child_policy *p, uint8_t cmd)
{
	struct mh_policy_attr at[A_COUNT + 5];
	char count[24], size[24], instance[48];
	size_t n = 0;
	const char *state = cmd == 'R' ? "RCPT" : cmd == 'T' ? "DATA" : "END-OF-MESSAGE";

	at[n++] = (struct mh_policy_attr){"request", "smtpd_access_policy"};
	at[n++] = (struct mh_policy_attr){"protocol_state", state};
	at[n++] = (struct mh_policy_attr){"protocol_name", p->esmtp ? "ESMTP" : "SMTP"};
	snprintf(count, sizeof(count), "%u", cmd == 'R' ? 0 : p->rcpt_count);
	at[n++] = (struct mh_policy_attr){"recipient_count", count};
	snprintf(instance, sizeof(instance), "%llx.%x", (unsigned long long)p->sid, p->messages);
	at[n++] = (struct mh_policy_attr){"instance", instance};
	for (int a = 0; a < A_COUNT; a++) {
		const char *v = p->attr[a] ? p->attr[a] : "";
		if (a == A_RECIPIENT && cmd != 'R')
			v = "";
		if (a == A_SIZE && cmd == 'E') {
			snprintf(size, sizeof(size), "%llu", (unsigned long long)p->bytes);
			v = size;
		}
		if (a == A_REVERSE_CLIENT_NAME && p->attr[a] == NULL && p->attr[A_CLIENT_NAME])
			v = p->attr[A_CLIENT_NAME];
		at[n++] = (struct mh_policy_attr){attr_names[a], v};
	}
	p->waiting = cmd;
	p->req = mh_policy_ask(mh_policy_pool_get(p->loop, p->conf), at, n, p->sid, on_policy, p);
}

/* ------------------------------------------------------------- events */

static void take_macros(struct mh_child_policy *p, const char *const *pairs, size_t npairs)
{
	for (size_t i = 0; i < npairs; i++)
		for (size_t m = 0; m < sizeof(macro_attrs) / sizeof(macro_attrs[0]); m++)
			if (mh_macro_name_eq(pairs[2 * i], macro_attrs[m].macro))
				set_attr(p, macro_attrs[m].attr, pairs[2 * i + 1]);
}

/* "<a@b>" -> "a@b"; "<>" -> "". */
static void set_address(struct mh_child_policy *p, enum attr a, const char *v)
{
	size_t n = strlen(v);
	if (n >= 2 && v[0] == '<' && v[n - 1] == '>') {
		char *s = mh_xstrdup(v + 1);
		s[n - 2] = '\0';
		set_attr(p, a, s);
		free(s);
	} else {
		set_attr(p, a, v);
	}
}

static void take_command(struct mh_child_policy *p, const struct mh_cmd *c, size_t len)
{
	char port[8];
	switch (c->code) {
	case MH_CMD_CONNECT:
		set_attr(p, A_CLIENT_NAME,
		         c->u.connect.hostname[0] == '[' ? "unknown" : c->u.connect.hostname);
		set_attr(p, A_CLIENT_ADDRESS, c->u.connect.address);
		snprintf(port, sizeof(port), "%u", (unsigned)c->u.connect.port);
		set_attr(p, A_CLIENT_PORT, c->u.connect.address ? port : NULL);
		break;
	case MH_CMD_HELO:
		set_attr(p, A_HELO_NAME, c->u.helo.name);
		break;
	case MH_CMD_MAIL:
		txn_reset(p);
		p->messages++;
		set_address(p, A_SENDER, c->u.env.argv[0]);
		for (size_t i = 1; i < c->u.env.argc; i++) {
			p->esmtp = 1;
			if (strncasecmp(c->u.env.argv[i], "SIZE=", 5) == 0)
				set_attr(p, A_SIZE, c->u.env.argv[i] + 5);
		}
		break;
	case MH_CMD_RCPT:
		set_address(p, A_RECIPIENT, c->u.env.argv[0]);
		break;
	case MH_CMD_HEADER:
		p->bytes += strlen(c->u.header.name) + strlen(c->u.header.value) + 4;
		break;
	case MH_CMD_BODY:
		p->bytes += len;
		break;
	default:
		break;
	}
}

enum mh_child_sent mh_child_policy_send(struct mh_child_policy *p, uint8_t code,
                                        const void *payload, size_t len,
                                        const char *const *macro_pairs, size_t npairs)
{
	if (p->dead || !mh_child_policy_takes(p, code))
		return MH_CHILD_NOT_SENT;
	struct mh_packet pk = {code, payload, len};
	struct mh_cmd c;
	/* The hub built the payload: it decodes (the NUL after data[len] included). */
	if (mh_codec_decode_cmd(&pk, &c) != MH_CODEC_OK)
		return MH_CHILD_NOWAIT;
	/* The command first: MAIL starts a new transaction, and the macros
	 * that come with it (Sendmail's i) belong to that one. */
	take_command(p, &c, len);
	take_macros(p, macro_pairs, npairs);
	if (code == p->conf->policy_stage) {
		ask(p, code);
		return MH_CHILD_WAIT;
	}
	if (code == MH_CMD_RCPT)
		p->rcpt_count++; /* counted after a RCPT-stage request: Postfix sends 0 there */
	if (code == MH_CMD_EOB) {
		p->waiting = 'E';
		later(p);
		return MH_CHILD_WAIT;
	}
	return MH_CHILD_NOWAIT; /* negotiated NR: nothing owed */
}

int mh_child_policy_takes(const struct mh_child_policy *p, uint8_t code)
{
	switch (code) {
	case MH_CMD_CONNECT:
	case MH_CMD_HELO:
	case MH_CMD_MAIL:
	case MH_CMD_RCPT:
	case MH_CMD_DATA:
	case MH_CMD_EOB:
		return 1;
	case MH_CMD_HEADER:
	case MH_CMD_BODY:
		return p->conf->policy_stage == 'E'; /* only to count the size */
	default:
		return 0;
	}
}

void mh_child_policy_abort(struct mh_child_policy *p)
{
	if (p->req != NULL) {
		mh_policy_cancel(p->req);
		p->req = NULL;
	}
	p->waiting = 0;
	ev_timer_stop(p->loop, &p->now_w);
	if (!p->negotiated)
		later(p);
	txn_reset(p);
}

const struct mh_optneg *mh_child_policy_negotiated(const struct mh_child_policy *p)
{
	return &p->reply;
}

int mh_child_policy_dead(const struct mh_child_policy *p)
{
	return p->dead;
}

void mh_child_policy_rcpt_refused(struct mh_child_policy *p)
{
	if (p->rcpt_count > 0 && p->conf->policy_stage != 'R')
		p->rcpt_count--; /* recipient_count: Postfix counts accepted recipients */
}

const char *mh_child_policy_failure(const struct mh_child_policy *p)
{
	return p->why;
}

struct mh_child_policy *mh_child_policy_new(struct mh_child *c, struct ev_loop *loop,
                                            const struct mh_child_conf *conf,
                                            const struct mh_optneg *offer, uint64_t sid,
                                            const struct mh_child_ops *ops, void *arg)
{
	struct mh_child_policy *p = mh_xcalloc(1, sizeof(*p));
	p->link = c;
	p->loop = loop;
	p->conf = conf;
	p->ops = ops;
	p->arg = arg;
	p->sid = sid;
	p->reply.version = 6;
	p->reply.actions = offer->actions & (MH_ACT_ADDHDRS | MH_ACT_QUARANTINE);
	/* No reply owed except at its own stage (and end of message, for PREPEND). */
	uint32_t nr = MH_PROTO_NR_CONN | MH_PROTO_NR_HELO | MH_PROTO_NR_MAIL | MH_PROTO_NR_RCPT |
	              MH_PROTO_NR_DATA | MH_PROTO_NR_UNKN | MH_PROTO_NR_EOH | MH_PROTO_NR_BODY |
	              MH_PROTO_NR_HDR;
	if (conf->policy_stage == 'R')
		nr &= ~(uint32_t)MH_PROTO_NR_RCPT;
	if (conf->policy_stage == 'T')
		nr &= ~(uint32_t)MH_PROTO_NR_DATA;
	p->reply.protocol = nr & offer->protocol;
	ev_timer_init(&p->now_w, on_now, 0, 0);
	p->now_w.data = p;
	ev_timer_start(loop, &p->now_w); /* "negotiated" from the loop, never inside new */
	return p;
}
