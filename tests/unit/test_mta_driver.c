/*
 * test_mta_driver - the MTA end for test_mta (see the header).
 */
#include <errno.h>
#include <poll.h>
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

#include "test_mta_driver.h"
#include "util/mh_log.h"

int answerable(uint8_t c)
{
	return strchr("CHMRTLNBEU", c) != NULL;
}

static void hit(struct t *t)
{
	if (++t->events >= t->want_events)
		ev_break(t->loop, EVBREAK_ONE);
}

static void on_optneg(struct mh_mta *m, const struct mh_optneg *offer, void *arg)
{
	struct t *t = arg;

	assert_int_equal(offer->version, 6);
	t->noptneg++;
	if (t->reply_optneg)
		mh_mta_reply_optneg(m, &t->neg);
	hit(t);
}

static void on_command(struct mh_mta *m, const struct mh_cmd *cmd, void *arg)
{
	struct t *t = arg;
	const char *v;

	assert_ptr_equal(m, t->m);
	assert_true(t->ncmds < MAXCMD);
	v = t->probe != NULL ? mh_mta_macro(m, t->probe) : NULL;
	snprintf(t->probe_val[t->ncmds], sizeof(t->probe_val[0]), "%s", v != NULL ? v : NONE_SEEN);
	t->codes[t->ncmds++] = cmd->code;
	if (cmd->code == t->free_at) {
		mh_mta_free(m);
		t->m = NULL;
	} else if (t->auto_continue && answerable(cmd->code)) {
		mh_mta_reply(m, MH_ST_CONTINUE, NULL);
	}
	hit(t);
}

static void on_close(struct mh_mta *m, enum mh_conn_why why, void *arg)
{
	struct t *t = arg;

	t->nclosed++;
	t->why = why;
	if (t->free_on_close) {
		mh_mta_free(m);
		t->m = NULL;
	}
	hit(t);
}

static const struct mh_mta_ops ops = {on_optneg, on_command, on_close};

static void on_guard(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)w;
	(void)revents;
	ev_break(loop, EVBREAK_ONE);
}

/* Run the loop until n more callbacks happened or max seconds passed. */
void run(struct t *t, int n, double max)
{
	t->want_events = t->events + n;
	ev_timer_set(&t->guard, max, 0.);
	ev_timer_start(t->loop, &t->guard);
	ev_run(t->loop, 0);
	ev_timer_stop(t->loop, &t->guard);
}

void start(struct t *t, double idle)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	t->fd = sv[1];
	t->m = mh_mta_new(t->loop, sv[0], MH_PAYLOAD_DEFAULT_MAX, idle, 42, &ops, t);
}

int setup(void **state)
{
	struct t *t = calloc(1, sizeof(*t));

	assert_non_null(t);
	t->loop = ev_loop_new(EVFLAG_AUTO);
	ev_timer_init(&t->guard, on_guard, 1., 0.);
	mh_frame_reader_init(&t->rd, 1 << 20);
	t->fd = -1;
	*state = t;
	mh_log_set_level(getenv("TEST_MTA_LOG") ? MH_LOG_DEBUG : MH_LOG_ERR);
	return 0;
}

int teardown(void **state)
{
	struct t *t = *state;

	if (t->m != NULL)
		mh_mta_free(t->m);
	if (t->fd >= 0)
		close(t->fd);
	mh_buf_free(&t->out);
	mh_buf_free(&t->in);
	mh_frame_reader_free(&t->rd);
	ev_loop_destroy(t->loop);
	free(t);
	return 0;
}

/* Write everything queued in t->out, in one write. */
void send_out(struct t *t)
{
	while (mh_buf_size(&t->out) > 0) {
		ssize_t n = write(t->fd, mh_buf_head(&t->out), mh_buf_size(&t->out));
		assert_true(n > 0);
		mh_buf_consume(&t->out, (size_t)n);
	}
}

/* Read one reply: 1, or 0 when nothing comes within ms, -1 at EOF. */
int next_reply(struct t *t, int ms)
{
	for (;;) {
		if (mh_buf_size(&t->in) > 0) {
			size_t used = 0;
			struct mh_packet p;
			int rc = mh_frame_feed(&t->rd, mh_buf_head(&t->in), mh_buf_size(&t->in),
			                       &used, &p);
			mh_buf_consume(&t->in, used);
			if (rc == 1) {
				assert_int_equal(mh_codec_decode_reply(&p, &t->rep), MH_CODEC_OK);
				return 1;
			}
			assert_int_equal(rc, 0);
		}
		struct pollfd pfd = {t->fd, POLLIN, 0};
		if (poll(&pfd, 1, ms) == 0)
			return 0;
		uint8_t buf[8192];
		ssize_t n = read(t->fd, buf, sizeof(buf));
		if (n <= 0)
			return -1;
		mh_buf_append(&t->in, buf, (size_t)n);
	}
}

void expect_reply(struct t *t, uint8_t code)
{
	assert_int_equal(next_reply(t, 2000), 1);
	assert_int_equal(t->rep.code, code);
}

void expect_silence(struct t *t)
{
	assert_int_equal(next_reply(t, 30), 0);
}

/* Queue a 'D': stage, then name, value, ..., NULL. */
void w_macro(struct t *t, uint8_t stage, ...)
{
	const char *pairs[16];
	size_t n = 0;
	va_list ap;

	va_start(ap, stage);
	while ((pairs[n] = va_arg(ap, const char *)) != NULL)
		n++;
	va_end(ap);
	mh_codec_put_macro(&t->out, stage, pairs, n / 2);
}

void w_empty(struct t *t, uint8_t code)
{
	mh_codec_put_empty(&t->out, code);
}

void w_connect(struct t *t)
{
	mh_codec_put_connect(&t->out, "mx.example.com", '4', 25, "192.0.2.1");
}

void w_str(struct t *t, uint8_t code, const char *s)
{
	if (code == MH_CMD_MAIL || code == MH_CMD_RCPT)
		mh_codec_put_strs(&t->out, code, &s, 1);
	else if (code == MH_CMD_HEADER)
		mh_codec_put_header(&t->out, code, s, "v");
	else
		mh_codec_put_str(&t->out, code, s);
}

void w_optneg(struct t *t)
{
	struct mh_optneg o = {6, MH_ACT_V6_MASK, MH_PROTO_V6_MASK, {NULL}};
	mh_codec_put_optneg(&t->out, &o);
}

/* O in, reply with these actions/protocol, check the 'O' on the wire. */
void negotiate(struct t *t, uint32_t actions, uint32_t protocol)
{
	struct mh_optneg reply = {6, actions, protocol, {NULL}};

	reply.macros[MH_STAGE_RCPT] = "{rcpt_addr}";
	w_optneg(t);
	send_out(t);
	run(t, 1, 2.);
	assert_int_equal(t->noptneg, 1);
	assert_int_equal(mh_mta_offer(t->m)->protocol, MH_PROTO_V6_MASK);
	mh_mta_reply_optneg(t->m, &reply);
	expect_reply(t, MH_REP_OPTNEG);
	assert_int_equal(t->rep.u.optneg.version, 6);
	assert_int_equal(t->rep.u.optneg.actions, actions);
	assert_int_equal(t->rep.u.optneg.protocol, protocol);
	assert_string_equal(t->rep.u.optneg.macros[MH_STAGE_RCPT], "{rcpt_addr}");
	assert_int_equal(mh_mta_negotiated(t->m)->protocol, protocol);
	assert_string_equal(mh_mta_negotiated(t->m)->macros[MH_STAGE_RCPT], "{rcpt_addr}");
}

/* Send what is queued; run until an answerable command arrives; it must be `code`. */
void await_cmd(struct t *t, uint8_t code)
{
	int before = t->ncmds;
	int i;

	send_out(t);
	for (i = 0; i < 20 && t->nclosed == 0; i++) {
		if (t->ncmds > before && answerable(t->codes[t->ncmds - 1]))
			break;
		run(t, 1, 2.);
	}
	assert_true(t->ncmds > before);
	assert_int_equal(t->codes[t->ncmds - 1], code);
}

/* Deliver the queued command(s), expect `code`, answer st, read the reply. */
void step(struct t *t, uint8_t code, enum mh_status st, uint8_t reply)
{
	await_cmd(t, code);
	mh_mta_reply(t->m, st, NULL);
	if (reply != 0)
		expect_reply(t, reply);
	else
		expect_silence(t);
}

void expect_protocol_close(struct t *t)
{
	send_out(t);
	run(t, 1, 2.);
	assert_int_equal(t->nclosed, 1);
	assert_int_equal(t->why, MH_CONN_PROTOCOL);
	assert_int_equal(next_reply(t, 2000), -1); /* the socket was closed */
}
