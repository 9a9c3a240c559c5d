/*
 * test_child - mh_child against an in-process fake milter on a unix
 * socket (one libev loop per test): negotiation, events the child
 * switched off or does not answer, macro filtering and one write per
 * 'D' + command, decisions and reply texts, progress and the eom
 * deadline, every failure path (timeout, close, bad reply, reply out of
 * place), modifications at end-of-message, abort, quit, and freeing the
 * link from inside its callbacks.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "child/mh_child.h"
#include "child_fake.h"
#include "net/mh_sockspec.h"
#include "protocol/mh_codec.h"
#include "util/mh_buf.h"

#define MAXMODS 16

/* ------------------------------------------------------------ the hub's side */

struct obs {
	struct mh_child *c;
	int negotiated, ok;
	int nanswers;
	enum mh_status status;
	int failed;
	char text[256];
	int has_text;
	char why[256];
	double t_answer;
	int nprogress;
	int nmods;
	uint8_t mods[MAXMODS];
	char modstr[MAXMODS][64];
	int free_in_answer;
	int free_in_negotiated;
};

static void obs_negotiated(struct mh_child *c, int ok, void *arg)
{
	struct obs *o = arg;
	assert_ptr_equal(c, o->c);
	o->negotiated++;
	o->ok = ok;
	if (o->free_in_negotiated) {
		mh_child_free(c);
		o->c = NULL;
	}
}

static void obs_answer(struct mh_child *c, const struct mh_child_answer *a, void *arg)
{
	struct obs *o = arg;
	assert_ptr_equal(c, o->c);
	o->nanswers++;
	o->status = a->status;
	o->failed = a->failed;
	o->has_text = a->text != NULL;
	snprintf(o->text, sizeof(o->text), "%s", a->text ? a->text : "");
	snprintf(o->why, sizeof(o->why), "%s", a->why ? a->why : "");
	o->t_answer = ev_time();
	if (o->free_in_answer) {
		mh_child_free(c);
		o->c = NULL;
	}
}

static void obs_progress(struct mh_child *c, void *arg)
{
	struct obs *o = arg;
	o->nprogress++;
}

static void obs_modification(struct mh_child *c, const struct mh_reply *mod, void *arg)
{
	struct obs *o = arg;
	assert_true(o->nmods < MAXMODS);
	o->mods[o->nmods] = mod->code;
	const char *s = "";
	switch (mod->code) {
	case MH_REP_ADDHEADER:
	case MH_REP_INSHEADER:
	case MH_REP_CHGHEADER:
		s = mod->u.header.name;
		break;
	case MH_REP_ADDRCPT:
	case MH_REP_DELRCPT:
		s = mod->u.rcpt.rcpt;
		break;
	case MH_REP_QUARANTINE:
		s = mod->u.quarantine.reason;
		break;
	}
	snprintf(o->modstr[o->nmods], sizeof(o->modstr[0]), "%s", s);
	o->nmods++;
}

static const struct mh_child_ops obs_ops = {
    .on_negotiated = obs_negotiated,
    .on_answer = obs_answer,
    .on_progress = obs_progress,
    .on_modification = obs_modification,
};

/* ------------------------------------------------------------ fixture */

struct fail_case;

struct t {
	const struct fail_case *fc; /* child_fails only */
	struct ev_loop *loop;
	struct fake f;
	struct mh_child_conf conf;
	struct mh_optneg offer;
	struct obs o;
};

static int setup(void **state)
{
	struct t *t = calloc(1, sizeof(*t));
	char err[128], spec[160];
	t->fc = *state; /* the prestate: a fail_case or NULL */
	t->loop = ev_loop_new(EVFLAG_AUTO);
	fake_init(&t->f, t->loop);
	snprintf(spec, sizeof(spec), "unix:%s", t->f.path);
	t->conf.name = "fake";
	t->conf.socket_text = t->f.path;
	assert_int_equal(mh_sockspec_parse(spec, &t->conf.sock, err, sizeof(err)), 0);
	t->conf.fallback = MH_ST_ACCEPT;
	t->conf.connect_timeout = 1;
	t->conf.write_timeout = 1;
	t->conf.read_timeout = 1;
	t->conf.eom_timeout = 1;
	t->conf.enabled = 1;
	t->offer.version = 6;
	t->offer.actions = MH_ACT_V6_MASK;
	t->offer.protocol = MH_PROTO_V6_MASK;
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct t *t = *state;
	if (t->o.c != NULL)
		mh_child_free(t->o.c);
	fake_free(&t->f);
	ev_loop_destroy(t->loop);
	free(t);
	return 0;
}

static void on_guard(struct ev_loop *loop, ev_timer *w, int revents)
{
	*(int *)w->data = 1;
}

/* Run the loop until *flag >= want or `seconds` pass; returns 1 when reached. */
static int run_until(struct ev_loop *loop, const int *flag, int want, double seconds)
{
	int expired = 0;
	ev_timer guard;
	ev_timer_init(&guard, on_guard, seconds, 0.);
	guard.data = &expired;
	ev_timer_start(loop, &guard);
	while (*flag < want && !expired)
		ev_run(loop, EVRUN_ONCE);
	ev_timer_stop(loop, &guard);
	return *flag >= want;
}

/* Let the loop run for a while (nothing expected to happen). */
static void settle(struct ev_loop *loop, double seconds)
{
	int never = 0;
	(void)run_until(loop, &never, 1, seconds);
}

static void start(struct t *t)
{
	char err[128];
	t->o.c = mh_child_new(t->loop, &t->conf, &t->offer, 42, &obs_ops, &t->o, err, sizeof(err));
	assert_non_null(t->o.c);
	assert_int_equal(t->o.negotiated, 0); /* never from inside mh_child_new */
	assert_true(run_until(t->loop, &t->o.negotiated, 1, 1));
}

static void start_ok(struct t *t)
{
	start(t);
	assert_int_equal(t->o.ok, 1);
}

/* Send and wait for the answer. */
static void send_wait(struct t *t, uint8_t code, const void *payload, size_t len)
{
	int before = t->o.nanswers;
	assert_int_equal(mh_child_send(t->o.c, code, payload, len, NULL, 0), MH_CHILD_WAIT);
	assert_int_equal(t->o.nanswers, before); /* never from inside mh_child_send */
	assert_true(run_until(t->loop, &t->o.nanswers, before + 1, 1.5));
}

/* ------------------------------------------------------------ tests */

static void negotiation_ok_and_reply_kept(void **state)
{
	struct t *t = *state;
	t->f.neg.actions = MH_ACT_ADDHDRS | MH_ACT_CHGHDRS;
	t->f.neg.protocol = MH_PROTO_NR_HELO | MH_PROTO_NOUNKNOWN | MH_PROTO_HDR_LEADSPC;
	t->f.neg.macros[MH_STAGE_CONNECT] = "{client_addr} j";
	t->f.neg.macros[MH_STAGE_EOM] = "i";
	start_ok(t);

	/* The offer went out as given. */
	assert_int_equal(t->f.codes[0], MH_CMD_OPTNEG);
	struct mh_packet p = {MH_CMD_OPTNEG, mh_buf_head(&t->f.payload[0]),
	                      mh_buf_size(&t->f.payload[0])};
	struct mh_cmd cmd;
	assert_int_equal(mh_codec_decode_cmd(&p, &cmd), MH_CODEC_OK);
	assert_int_equal(cmd.u.optneg.version, 6);
	assert_int_equal(cmd.u.optneg.protocol, MH_PROTO_V6_MASK);

	/* Later packets reuse the reader's buffer: the lists must be copies. */
	send_wait(t, MH_CMD_CONNECT, "x\0U", 3);
	const struct mh_optneg *n = mh_child_negotiated(t->o.c);
	assert_int_equal(n->version, 6);
	assert_int_equal(n->actions, MH_ACT_ADDHDRS | MH_ACT_CHGHDRS);
	assert_int_equal(n->protocol, MH_PROTO_NR_HELO | MH_PROTO_NOUNKNOWN | MH_PROTO_HDR_LEADSPC);
	assert_string_equal(n->macros[MH_STAGE_CONNECT], "{client_addr} j");
	assert_string_equal(n->macros[MH_STAGE_EOM], "i");
	assert_null(n->macros[MH_STAGE_HELO]);
	assert_true(mh_child_leadspc(t->o.c));
	assert_false(mh_child_dead(t->o.c));
	assert_ptr_equal(mh_child_conf(t->o.c), &t->conf);
	assert_false(mh_child_takes(t->o.c, MH_CMD_UNKNOWN));
	assert_true(mh_child_takes(t->o.c, MH_CMD_HELO));
}

static void missing_socket_fails_negotiation(void **state)
{
	struct t *t = *state;
	char err[128], spec[200];
	snprintf(spec, sizeof(spec), "unix:%s/nothing.sock", t->f.dir);
	assert_int_equal(mh_sockspec_parse(spec, &t->conf.sock, err, sizeof(err)), 0);
	start(t);
	assert_int_equal(t->o.ok, 0);
	assert_true(mh_child_dead(t->o.c));
	assert_int_equal(mh_child_send(t->o.c, MH_CMD_CONNECT, "x\0U", 3, NULL, 0),
	                 MH_CHILD_NOT_SENT);
	settle(t->loop, 0.05);
	assert_int_equal(t->o.nanswers, 0);
	assert_int_equal(t->o.negotiated, 1);
}

static void free_in_failed_negotiation(void **state)
{
	struct t *t = *state;
	char err[128], spec[200];
	snprintf(spec, sizeof(spec), "unix:%s/nothing.sock", t->f.dir);
	assert_int_equal(mh_sockspec_parse(spec, &t->conf.sock, err, sizeof(err)), 0);
	t->o.free_in_negotiated = 1;
	start(t);
	assert_null(t->o.c);
}

static void refused_negotiation_fails(void **state)
{
	struct t *t = *state;
	t->offer.actions = MH_ACT_ADDHDRS;
	t->f.neg.actions = MH_ACT_CHGBODY; /* not offered */
	start(t);
	assert_int_equal(t->o.ok, 0);
	assert_true(mh_child_dead(t->o.c));
}

static void no_event_not_sent(void **state)
{
	struct t *t = *state;
	t->f.neg.version = 3;
	t->f.neg.protocol = MH_PROTO_NOHELO;
	start_ok(t);
	const char *pairs[] = {"j", "host"};
	assert_int_equal(mh_child_send(t->o.c, MH_CMD_HELO, "h\0", 2, pairs, 1), MH_CHILD_NOT_SENT);
	/* DATA needs version 4. */
	assert_int_equal(mh_child_send(t->o.c, MH_CMD_DATA, NULL, 0, pairs, 1), MH_CHILD_NOT_SENT);
	assert_false(mh_child_takes(t->o.c, MH_CMD_DATA));
	assert_true(mh_child_takes(t->o.c, MH_CMD_UNKNOWN));
	send_wait(t, MH_CMD_MAIL, "<a@b>\0", 6);
	/* Nothing of HELO or DATA on the wire: O, then D and M. */
	assert_int_equal(t->f.npk, 3);
	assert_int_equal(t->f.codes[1], MH_CMD_MACRO);
	assert_int_equal(t->f.codes[2], MH_CMD_MAIL);
	assert_int_equal(t->o.nanswers, 1);
}

static void helo_only(struct fake *f, const struct mh_packet *p)
{
	if (p->code == MH_CMD_HELO)
		fake_send(f, MH_REP_CONTINUE);
}

static void noreply_event_nowait(void **state)
{
	struct t *t = *state;
	t->f.neg.protocol = MH_PROTO_NR_CONN | MH_PROTO_NR_HDR;
	start_ok(t);
	t->f.on_cmd = helo_only; /* a reply to C or L would fail the link */
	assert_int_equal(mh_child_send(t->o.c, MH_CMD_CONNECT, "x\0U", 3, NULL, 0),
	                 MH_CHILD_NOWAIT);
	assert_int_equal(mh_child_send(t->o.c, MH_CMD_HEADER, "a\0b\0", 4, NULL, 0),
	                 MH_CHILD_NOWAIT);
	send_wait(t, MH_CMD_HELO, "h\0", 2);
	assert_int_equal(t->o.nanswers, 1);
	assert_int_equal(t->o.failed, 0);
	assert_int_equal(t->o.status, MH_ST_CONTINUE);
	settle(t->loop, 0.05);
	assert_int_equal(t->o.nanswers, 1);
	assert_int_equal(fake_count(&t->f, MH_CMD_CONNECT), 1);
	assert_int_equal(fake_count(&t->f, MH_CMD_HEADER), 1);
}

/* The pairs of the 'D' at packet i: stage byte, then "name=value,..." */
static void macro_text(const struct fake *f, int i, char *out, size_t len)
{
	const struct mh_buf *b = &f->payload[i];
	const uint8_t *d = mh_buf_head(b);
	size_t n = mh_buf_size(b), o = 0;
	o += (size_t)snprintf(out + o, len - o, "%c:", d[0]);
	for (size_t k = 1; k < n;) {
		const char *name = (const char *)d + k;
		k += strlen(name) + 1;
		const char *value = (const char *)d + k;
		k += strlen(value) + 1;
		o += (size_t)snprintf(out + o, len - o, "%s=%s,", name, value);
	}
}

static void macros_filtered_one_write(void **state)
{
	struct t *t = *state;
	char txt[256];
	t->f.neg.macros[MH_STAGE_CONNECT] = "j, {client_addr}";
	t->f.neg.macros[MH_STAGE_EOH] = "{i}";
	start_ok(t);

	const char *cpairs[] = {"{j}", "host", "client_addr", "1.2.3.4", "{daemon_name}", "d"};
	send_wait(t, MH_CMD_CONNECT, "x\0U", 3);
	/* That one went without pairs: an empty 'D' still precedes C. */
	assert_int_equal(t->f.codes[1], MH_CMD_MACRO);
	macro_text(&t->f, 1, txt, sizeof(txt));
	assert_string_equal(txt, "C:");

	int base = t->f.npk;
	assert_int_equal(mh_child_send(t->o.c, MH_CMD_CONNECT, "x\0U", 3, cpairs, 3),
	                 MH_CHILD_WAIT);
	assert_true(run_until(t->loop, &t->o.nanswers, 2, 1));
	assert_int_equal(t->f.codes[base], MH_CMD_MACRO);
	assert_int_equal(t->f.codes[base + 1], MH_CMD_CONNECT);
	assert_int_equal(t->f.readno[base], t->f.readno[base + 1]); /* one write */
	macro_text(&t->f, base, txt, sizeof(txt));
	assert_string_equal(txt, "C:{j}=host,client_addr=1.2.3.4,");

	/* HELO has no list: every pair. */
	const char *hpairs[] = {"{tls_version}", "TLSv1.3", "x", "y"};
	base = t->f.npk;
	assert_int_equal(mh_child_send(t->o.c, MH_CMD_HELO, "h\0", 2, hpairs, 2), MH_CHILD_WAIT);
	assert_true(run_until(t->loop, &t->o.nanswers, 3, 1));
	macro_text(&t->f, base, txt, sizeof(txt));
	assert_string_equal(txt, "H:{tls_version}=TLSv1.3,x=y,");

	/* HEADER carries the EOH list, and a 'D' only when a pair survives. */
	const char *none[] = {"{queue}", "q"};
	const char *some[] = {"i", "ABC", "{queue}", "q"};
	base = t->f.npk;
	assert_int_equal(mh_child_send(t->o.c, MH_CMD_HEADER, "a\0b\0", 4, none, 1), MH_CHILD_WAIT);
	assert_true(run_until(t->loop, &t->o.nanswers, 4, 1));
	assert_int_equal(t->f.codes[base], MH_CMD_HEADER);
	base = t->f.npk;
	assert_int_equal(mh_child_send(t->o.c, MH_CMD_HEADER, "a\0b\0", 4, some, 2), MH_CHILD_WAIT);
	assert_true(run_until(t->loop, &t->o.nanswers, 5, 1));
	macro_text(&t->f, base, txt, sizeof(txt));
	assert_string_equal(txt, "L:i=ABC,");
	assert_int_equal(t->f.codes[base + 1], MH_CMD_HEADER);
	assert_int_equal(t->f.readno[base], t->f.readno[base + 1]);

	/* BODY: no EOM list, so every pair, stage 'B'; no pairs, no 'D'. */
	base = t->f.npk;
	assert_int_equal(mh_child_send(t->o.c, MH_CMD_BODY, "xy", 2, none, 1), MH_CHILD_WAIT);
	assert_true(run_until(t->loop, &t->o.nanswers, 6, 1));
	macro_text(&t->f, base, txt, sizeof(txt));
	assert_string_equal(txt, "B:{queue}=q,");
	base = t->f.npk;
	assert_int_equal(mh_child_send(t->o.c, MH_CMD_BODY, "xy", 2, NULL, 0), MH_CHILD_WAIT);
	assert_true(run_until(t->loop, &t->o.nanswers, 7, 1));
	assert_int_equal(t->f.codes[base], MH_CMD_BODY);

	/* UNKNOWN never gets a 'D'. */
	base = t->f.npk;
	assert_int_equal(mh_child_send(t->o.c, MH_CMD_UNKNOWN, "XX\0", 3, some, 2), MH_CHILD_WAIT);
	assert_true(run_until(t->loop, &t->o.nanswers, 8, 1));
	assert_int_equal(t->f.codes[base], MH_CMD_UNKNOWN);
	assert_int_equal(t->f.npk, base + 1);
}

static void reply_y(struct fake *f, const struct mh_packet *p)
{
	if (p->code == MH_CMD_MAIL)
		fake_send_str(f, MH_REP_REPLYCODE, "550 5.7.1 go away");
}

static void replycode_text_passed(void **state)
{
	struct t *t = *state;
	start_ok(t);
	t->f.on_cmd = reply_y;
	send_wait(t, MH_CMD_MAIL, "<a@b>\0", 6);
	assert_int_equal(t->o.status, MH_ST_REJECT);
	assert_int_equal(t->o.failed, 0);
	assert_true(t->o.has_text);
	assert_string_equal(t->o.text, "550 5.7.1 go away");
}

static void tick_progress(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct fake *f = w->data;
	if (f->ticks_left-- > 0) {
		fake_send(f, MH_REP_PROGRESS);
		return;
	}
	ev_timer_stop(loop, w);
	fake_send(f, MH_REP_CONTINUE);
}

static void progress_on_eom(struct fake *f, const struct mh_packet *p)
{
	if (p->code != MH_CMD_EOB)
		return;
	f->ticks_left = 5;
	ev_timer_init(&f->tick, tick_progress, 0.15, 0.15);
	f->tick.data = f;
	ev_timer_start(f->loop, &f->tick);
}

static void progress_restarts_eom_deadline(void **state)
{
	struct t *t = *state;
	t->conf.eom_timeout = 0.25; /* shorter than the 0.9 s the answer takes */
	start_ok(t);
	t->f.on_cmd = progress_on_eom;
	send_wait(t, MH_CMD_EOB, NULL, 0);
	assert_int_equal(t->o.failed, 0);
	assert_int_equal(t->o.status, MH_ST_CONTINUE);
	assert_int_equal(t->o.nprogress, 5);
}

static void silent(struct fake *f, const struct mh_packet *p) {}

static void read_timeout_gives_fallback(void **state)
{
	struct t *t = *state;
	t->conf.read_timeout = 0.3;
	t->conf.fallback = MH_ST_TEMPFAIL;
	start_ok(t);
	t->f.on_cmd = silent;
	double t0 = ev_time();
	send_wait(t, MH_CMD_RCPT, "<r@b>\0", 6);
	double took = t->o.t_answer - t0;
	assert_true(took >= 0.25 && took < 0.6);
	assert_int_equal(t->o.failed, 1);
	assert_int_equal(t->o.status, MH_ST_TEMPFAIL);
	assert_non_null(strstr(t->o.why, "timeout waiting for reply to RCPT"));
	assert_true(mh_child_dead(t->o.c));
	assert_int_equal(mh_child_send(t->o.c, MH_CMD_RCPT, "<r@b>\0", 6, NULL, 0),
	                 MH_CHILD_NOT_SENT);
	settle(t->loop, 0.05);
	assert_int_equal(t->o.nanswers, 1);
}

static void close_on_mail(struct fake *f, const struct mh_packet *p)
{
	if (p->code == MH_CMD_MAIL)
		fake_close(f);
}

static void close_while_idle_fails_at_once(void **state)
{
	struct t *t = *state;
	start_ok(t);
	fake_close(&t->f);
	assert_true(run_until(t->loop, &t->o.nanswers, 1, 1));
	assert_int_equal(t->o.failed, 1);
	assert_true(mh_child_dead(t->o.c));
}

static void unsolicited(struct fake *f, const struct mh_packet *p)
{
	if (p->code == MH_CMD_ABORT)
		fake_send(f, MH_REP_CONTINUE); /* 'A' takes no reply */
}

static void reply_when_nothing_outstanding_fails(void **state)
{
	struct t *t = *state;
	start_ok(t);
	t->f.on_cmd = unsolicited;
	mh_child_abort(t->o.c);
	assert_true(run_until(t->loop, &t->o.nanswers, 1, 1));
	assert_int_equal(t->o.failed, 1);
	assert_non_null(strstr(t->o.why, "no command is outstanding"));
}

static void header_on_helo(struct fake *f, const struct mh_packet *p)
{
	struct mh_buf b = MH_BUF_INIT;
	if (p->code != MH_CMD_HELO)
		return;
	mh_codec_put_header(&b, MH_REP_ADDHEADER, "X-A", "1");
	mh_codec_put_empty(&b, MH_REP_CONTINUE);
	fake_write(f, &b);
}

static void edits_on_eom(struct fake *f, const struct mh_packet *p)
{
	struct mh_buf b = MH_BUF_INIT;
	const char *rcpt[] = {"<new@x>"};
	if (p->code != MH_CMD_EOB) {
		if (fake_answerable(p->code))
			fake_send(f, MH_REP_CONTINUE);
		return;
	}
	mh_codec_put_header(&b, MH_REP_ADDHEADER, "X-One", "1");
	mh_codec_put_index_header(&b, MH_REP_INSHEADER, 0, "X-Two", "2");
	mh_codec_put_empty(&b, MH_REP_PROGRESS);
	mh_codec_put_index_header(&b, MH_REP_CHGHEADER, 1, "Subject", "");
	mh_codec_put_str(&b, MH_REP_QUARANTINE, "held");
	mh_codec_put_strs(&b, MH_REP_ADDRCPT, rcpt, 1);
	mh_codec_put_raw(&b, MH_REP_REPLBODY, "new body\r\n", 10);
	mh_codec_put_empty(&b, MH_REP_ACCEPT);
	fake_write(f, &b);
}

static void modifications_at_eom_in_order(void **state)
{
	struct t *t = *state;
	start_ok(t);
	t->f.on_cmd = edits_on_eom;
	send_wait(t, MH_CMD_EOB, NULL, 0);
	assert_int_equal(t->o.failed, 0);
	assert_int_equal(t->o.status, MH_ST_ACCEPT);
	assert_int_equal(t->o.nprogress, 1);
	assert_int_equal(t->o.nmods, 6);
	assert_memory_equal(t->o.mods, "himq+b", 6);
	assert_string_equal(t->o.modstr[0], "X-One");
	assert_string_equal(t->o.modstr[1], "X-Two");
	assert_string_equal(t->o.modstr[2], "Subject");
	assert_string_equal(t->o.modstr[3], "held");
	assert_string_equal(t->o.modstr[4], "<new@x>");
}

static void quarantine_any_stage(struct fake *f, const struct mh_packet *p)
{
	struct mh_buf b = MH_BUF_INIT;
	if (!fake_answerable(p->code))
		return;
	mh_codec_put_str(&b, MH_REP_QUARANTINE, "why");
	mh_codec_put_empty(&b, p->code == MH_CMD_BODY ? MH_REP_SKIP : MH_REP_CONTINUE);
	fake_write(f, &b);
}

static void quarantine_anywhere_and_skip_after_body(void **state)
{
	struct t *t = *state;
	start_ok(t);
	t->f.on_cmd = quarantine_any_stage;
	send_wait(t, MH_CMD_MAIL, "<a@b>\0", 6);
	assert_int_equal(t->o.failed, 0);
	assert_int_equal(t->o.nmods, 1);
	assert_int_equal(t->o.mods[0], MH_REP_QUARANTINE);
	send_wait(t, MH_CMD_BODY, "x", 1);
	assert_int_equal(t->o.failed, 0);
	assert_int_equal(t->o.status, MH_ST_SKIP);
}

static void skip_or_shutdown(struct fake *f, const struct mh_packet *p)
{
	if (fake_answerable(p->code))
		fake_send(f, p->code == MH_CMD_RCPT ? MH_REP_SKIP : MH_REP_SHUTDOWN);
}

static void garbage_on_mail(struct fake *f, const struct mh_packet *p)
{
	if (p->code == MH_CMD_MAIL)
		assert_int_equal(write(f->fd, "\0\0\0\0zzzz", 8), 8); /* frame length 0 */
}

static void conn_fail_reply(struct fake *f, const struct mh_packet *p)
{
	if (fake_answerable(p->code))
		fake_send(f, MH_REP_CONN_FAIL);
}

static void bad_replycode(struct fake *f, const struct mh_packet *p)
{
	if (fake_answerable(p->code))
		fake_send_str(f, MH_REP_REPLYCODE, "250 fine");
}

/* A child that misbehaves gets its fallback and is dead (design §2.5). */
struct fail_case {
	const char *name;
	fake_handler handler;
	uint8_t cmd;
	uint32_t actions; /* negotiated; 0 = all */
	const char *why;
};

static const struct fail_case fail_cases[] = {
    {"close_mid_command_fails", close_on_mail, MH_CMD_MAIL, 0,
     "closed the connection (waiting for reply to MAIL)"},
    {"modification_outside_eom_fails", header_on_helo, MH_CMD_HELO, 0,
     "modification 'h' in reply to HELO"},
    {"unnegotiated_action_fails", edits_on_eom, MH_CMD_EOB, MH_ACT_CHGHDRS,
     "modification 'h' without negotiating"},
    {"skip_outside_body_fails", skip_or_shutdown, MH_CMD_RCPT, 0, "skip in reply to RCPT"},
    {"shutdown_fails", skip_or_shutdown, MH_CMD_MAIL, 0, "asked for shutdown"},
    {"conn_fail_reply_fails", conn_fail_reply, MH_CMD_DATA, 0, "unexpected reply 'f'"},
    {"garbage_fails", garbage_on_mail, MH_CMD_MAIL, 0, "malformed packet: frame length 0"},
    {"bad_replycode_fails", bad_replycode, MH_CMD_RCPT, 0, "malformed reply 'y'"},
};

static void child_fails(void **state)
{
	struct t *t = *state;
	t->conf.fallback = MH_ST_TEMPFAIL;
	if (t->fc->actions != 0)
		t->f.neg.actions = t->fc->actions;
	start_ok(t);
	t->f.on_cmd = t->fc->handler;
	send_wait(t, t->fc->cmd, "x\0",
	          t->fc->cmd == MH_CMD_EOB || t->fc->cmd == MH_CMD_DATA ? 0 : 2);
	assert_int_equal(t->o.failed, 1);
	assert_int_equal(t->o.status, MH_ST_TEMPFAIL);
	assert_int_equal(t->o.nmods, 0);
	assert_non_null(strstr(t->o.why, t->fc->why));
	assert_true(mh_child_dead(t->o.c));
	settle(t->loop, 0.02);
	assert_int_equal(t->o.nanswers, 1);
}

static void reject_late(struct fake *f, const struct mh_packet *p)
{
	if (p->code == MH_CMD_RCPT)
		fake_send(f, MH_REP_REJECT);
	else if (p->code == MH_CMD_MAIL)
		fake_send(f, MH_REP_TEMPFAIL);
}

static void abort_drops_the_pending_reply(void **state)
{
	struct t *t = *state;
	start_ok(t);
	t->f.on_cmd = reject_late;
	assert_int_equal(mh_child_send(t->o.c, MH_CMD_MAIL, "<a@b>\0", 6, NULL, 0), MH_CHILD_WAIT);
	mh_child_abort(t->o.c);
	send_wait(t, MH_CMD_RCPT, "<r@b>\0", 6);
	assert_int_equal(t->o.nanswers, 1);
	assert_int_equal(t->o.failed, 0);
	assert_int_equal(t->o.status, MH_ST_REJECT); /* not the MAIL tempfail */
	assert_int_equal(fake_count(&t->f, MH_CMD_ABORT), 1);
}

static void quit_sends_q_and_closes(void **state)
{
	struct t *t = *state;
	start_ok(t);
	mh_child_quit(t->o.c);
	t->o.c = NULL;
	assert_true(run_until(t->loop, &t->f.eof, 1, 1));
	assert_int_equal(t->f.codes[t->f.npk - 1], MH_CMD_QUIT);
	assert_int_equal(t->o.nanswers, 0);
}

static void free_inside_on_answer(void **state)
{
	struct t *t = *state;
	start_ok(t);
	t->o.free_in_answer = 1;
	send_wait(t, MH_CMD_HELO, "h\0", 2);
	assert_null(t->o.c);
	settle(t->loop, 0.05);
	assert_int_equal(t->o.nanswers, 1);
}

static void free_inside_failure_answer(void **state)
{
	struct t *t = *state;
	t->conf.read_timeout = 0.1;
	start_ok(t);
	t->f.on_cmd = silent;
	t->o.free_in_answer = 1;
	send_wait(t, MH_CMD_HELO, "h\0", 2);
	assert_null(t->o.c);
	assert_int_equal(t->o.failed, 1);
}

static void free_mid_eom_stops_callbacks(void **state)
{
	struct t *t = *state;
	start_ok(t);
	t->f.on_cmd = edits_on_eom;
	assert_int_equal(mh_child_send(t->o.c, MH_CMD_EOB, NULL, 0, NULL, 0), MH_CHILD_WAIT);
	mh_child_free(t->o.c);
	t->o.c = NULL;
	settle(t->loop, 0.05);
	assert_int_equal(t->o.nanswers, 0);
	assert_int_equal(t->o.nmods, 0);
}

static void late_continue(struct ev_loop *loop, ev_timer *w, int revents)
{
	fake_send(w->data, MH_REP_CONTINUE);
}

/* Answer only 'E', and that 0.35 s late. */
static void eom_only_late(struct fake *f, const struct mh_packet *p)
{
	if (p->code != MH_CMD_EOB)
		return;
	ev_timer_init(&f->tick, late_continue, 0.35, 0.);
	f->tick.data = f;
	ev_timer_start(f->loop, &f->tick);
}

static void resume_reading(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct fake *f = w->data;
	ev_io_start(loop, &f->rw);
}

/* Queue n 64 KiB NR body chunks while the fake does not read. */
static void flood(struct t *t, int n)
{
	static char chunk[MH_CHUNK_MAX];
	ev_io_stop(t->loop, &t->f.rw);
	for (int i = 0; i < n; i++)
		assert_int_equal(mh_child_send(t->o.c, MH_CMD_BODY, chunk, sizeof(chunk), NULL, 0),
		                 MH_CHILD_NOWAIT);
}

static void write_timeout_while_idle(void **state)
{
	struct t *t = *state;
	t->f.neg.protocol = MH_PROTO_NR_BODY;
	t->conf.write_timeout = 0.2;
	start_ok(t);
	double t0 = ev_time();
	flood(t, 64); /* 4 MiB: more than a unix socket buffers */
	assert_true(run_until(t->loop, &t->o.nanswers, 1, 1));
	assert_true(t->o.t_answer - t0 < 0.5);
	assert_int_equal(t->o.failed, 1);
	assert_non_null(strstr(t->o.why, "timeout writing BODY"));
}

static void slow_reader_within_write_timeout(void **state)
{
	struct t *t = *state;
	t->f.neg.protocol = MH_PROTO_NR_BODY;
	/* Writing ends at ~0.25 s; the answer comes at ~0.6 s, after the
	 * write deadline but before the eom deadline that follows it. */
	t->conf.write_timeout = 0.4;
	t->conf.eom_timeout = 0.5;
	start_ok(t);
	t->f.on_cmd = eom_only_late; /* NR body chunks get no reply */
	flood(t, 64);
	ev_timer_init(&t->f.tick, resume_reading, 0.25, 0.);
	t->f.tick.data = &t->f;
	ev_timer_start(t->loop, &t->f.tick);
	send_wait(t, MH_CMD_EOB, NULL, 0);
	assert_int_equal(t->o.failed, 0);
	assert_int_equal(t->o.status, MH_ST_CONTINUE);
	assert_int_equal(fake_count(&t->f, MH_CMD_BODY), 64);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(negotiation_ok_and_reply_kept),
	    T(missing_socket_fails_negotiation),
	    T(free_in_failed_negotiation),
	    T(refused_negotiation_fails),
	    T(no_event_not_sent),
	    T(noreply_event_nowait),
	    T(macros_filtered_one_write),
	    T(replycode_text_passed),
	    T(progress_restarts_eom_deadline),
	    T(read_timeout_gives_fallback),
	    T(close_while_idle_fails_at_once),
	    T(reply_when_nothing_outstanding_fails),
	    T(modifications_at_eom_in_order),
	    T(quarantine_anywhere_and_skip_after_body),
	    T(abort_drops_the_pending_reply),
	    T(quit_sends_q_and_closes),
	    T(free_inside_on_answer),
	    T(free_inside_failure_answer),
	    T(free_mid_eom_stops_callbacks),
	    T(write_timeout_while_idle),
	    T(slow_reader_within_write_timeout),
	};
	enum { NFAIL = sizeof(fail_cases) / sizeof(fail_cases[0]) };
	struct CMUnitTest all[sizeof(tests) / sizeof(tests[0]) + NFAIL];
	memcpy(all, tests, sizeof(tests));
	for (size_t i = 0; i < NFAIL; i++)
		all[sizeof(tests) / sizeof(tests[0]) + i] = (struct CMUnitTest){
		    fail_cases[i].name, child_fails, setup, teardown, (void *)&fail_cases[i]};
	return _cmocka_run_group_tests("test_child", all, sizeof(all) / sizeof(all[0]), NULL, NULL);
}
