/*
 * test_policy - mh_policy: the action table (every access(5) form the
 * header maps, case, defaults, malformed ones), and the pool against a
 * scripted policy server on 127.0.0.1 served by the test's own libev
 * loop: request bytes, answers end to end, reuse, the connection bound,
 * queue order, a server closing idle connections, timeouts, garbage
 * answers, refused connects, cancel, and freeing pools with requests
 * pending. Every wait is bounded by an ev_timer.
 *
 * The server answers each request with "action=<want>" where want is the
 * request's own want= attribute, unless want names a behaviour
 * ("__hold", "__silent", "__garbage", ...: see srv_request).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
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

#include "child/mh_policy.h"
#include "net/mh_sockspec.h"
#include "protocol/mh_codec.h"
#include "util/mh_buf.h"
#include "util/mh_log.h"

/* ------------------------------------------------------------ the action table */

struct row {
	const char *action;
	int ret;
	enum mh_policy_kind kind;
	const char *text; /* NULL: not checked */
	const char *note; /* NULL: must be NULL */
};

static const struct row rows[] = {
    {"OK", 0, MH_POL_CONTINUE, "", NULL},
    {"ok", 0, MH_POL_CONTINUE, "", NULL},
    {"DUNNO", 0, MH_POL_CONTINUE, "", NULL},
    {"dunno", 0, MH_POL_CONTINUE, "", NULL},
    {"", 0, MH_POL_CONTINUE, "", NULL},
    {"   ", 0, MH_POL_CONTINUE, "", NULL},
    {"DEFER_IF_REJECT", 0, MH_POL_CONTINUE, "", NULL},
    {"defer_if_reject maybe later", 0, MH_POL_CONTINUE, "", NULL},
    /* REJECT: 550 and 5.7.1 by default, the server's enhanced code kept */
    {"REJECT", 0, MH_POL_REJECT, "550 5.7.1 Access denied", NULL},
    {"reject", 0, MH_POL_REJECT, "550 5.7.1 Access denied", NULL},
    {"REJECT Go away", 0, MH_POL_REJECT, "550 5.7.1 Go away", NULL},
    {"Reject   spaced  text  ", 0, MH_POL_REJECT, "550 5.7.1 spaced  text", NULL},
    {"REJECT 5.7.2 Go away", 0, MH_POL_REJECT, "550 5.7.2 Go away", NULL},
    {"REJECT 4.7.2 wrong class", 0, MH_POL_REJECT, "550 5.7.2 wrong class", NULL},
    {"REJECT 5.1.1", 0, MH_POL_REJECT, "550 5.1.1 Access denied", NULL},
    {"REJECT 42 is the answer", 0, MH_POL_REJECT, "550 5.7.1 42 is the answer", NULL},
    {"REJECT 100% spam", 0, MH_POL_REJECT, "550 5.7.1 100%% spam", NULL},
    {"REJECT a\tb\x01"
     "c",
     0, MH_POL_REJECT, "550 5.7.1 a b c", NULL},
    /* DEFER and DEFER_IF_PERMIT: 450 4.7.1 */
    {"DEFER", 0, MH_POL_TEMPFAIL, "450 4.7.1 Try again later", NULL},
    {"defer come back", 0, MH_POL_TEMPFAIL, "450 4.7.1 come back", NULL},
    {"DEFER 4.3.0 busy", 0, MH_POL_TEMPFAIL, "450 4.3.0 busy", NULL},
    {"DEFER_IF_PERMIT", 0, MH_POL_TEMPFAIL, "450 4.7.1 Try again later", NULL},
    {"Defer_If_Permit Greylisted, see http://postgrey.schweikert.ch/help/example.org.html", 0,
     MH_POL_TEMPFAIL,
     "450 4.7.1 Greylisted, see http://postgrey.schweikert.ch/help/example.org.html", NULL},
    /* 4NN / 5NN: the text as given */
    {"450 Greylisted, see http://x.example/", 0, MH_POL_TEMPFAIL,
     "450 Greylisted, see http://x.example/", NULL},
    {"554 5.7.1 No", 0, MH_POL_REJECT, "554 5.7.1 No", NULL},
    {"521 4.7.1 fixed class", 0, MH_POL_REJECT, "521 5.7.1 fixed class", NULL},
    {"421 4.3.2 shutting down", 0, MH_POL_TEMPFAIL, "421 4.3.2 shutting down", NULL},
    {"550", 0, MH_POL_REJECT, "550 5.7.1 Access denied", NULL},
    {"450", 0, MH_POL_TEMPFAIL, "450 4.7.1 Try again later", NULL},
    {"550 42 is the answer", 0, MH_POL_REJECT, "550 5.7.1 42 is the answer", NULL},
    /* DISCARD, HOLD */
    {"DISCARD", 0, MH_POL_DISCARD, "", NULL},
    {"discard spam trap", 0, MH_POL_DISCARD, "spam trap", NULL},
    {"HOLD", 0, MH_POL_HOLD, "", NULL},
    {"hold check me", 0, MH_POL_HOLD, "check me", NULL},
    /* PREPEND */
    {"PREPEND X-Policy: checked", 0, MH_POL_PREPEND, "X-Policy: checked", NULL},
    {"prepend X-A:b", 0, MH_POL_PREPEND, "X-A: b", NULL},
    {"PREPEND X-A :  b c ", 0, MH_POL_PREPEND, "X-A: b c", NULL},
    {"PREPEND X-Empty:", 0, MH_POL_PREPEND, "X-Empty: ", NULL},
    /* accepted, not acted on */
    {"WARN look here", 0, MH_POL_CONTINUE, "look here", "warn"},
    {"warn", 0, MH_POL_CONTINUE, "", "warn"},
    {"INFO hello", 0, MH_POL_CONTINUE, "hello", "warn"},
    {"FILTER smtp:[127.0.0.1]:10025", 0, MH_POL_CONTINUE, "smtp:[127.0.0.1]:10025", "unsupported"},
    {"redirect a@example.org", 0, MH_POL_CONTINUE, "a@example.org", "unsupported"},
    {"BCC a@example.org", 0, MH_POL_CONTINUE, "a@example.org", "unsupported"},
    {"permit", 0, MH_POL_CONTINUE, "", "unsupported"},
    {"FOO bar", 0, MH_POL_CONTINUE, "bar", "unsupported"},
    /* malformed */
    {"5", -1, MH_POL_FAILED, "", NULL},
    {"550x", -1, MH_POL_FAILED, "", NULL},
    {"550x text", -1, MH_POL_FAILED, "", NULL},
    {"5500 text", -1, MH_POL_FAILED, "", NULL},
    {"55 text", -1, MH_POL_FAILED, "", NULL},
    {"250 ok", -1, MH_POL_FAILED, "", NULL},
    {"650 no", -1, MH_POL_FAILED, "", NULL},
    {"5.7.1 no", -1, MH_POL_FAILED, "", NULL},
    {"REJECT a\rb", -1, MH_POL_FAILED, "", NULL},
    {"REJECT a\nb", -1, MH_POL_FAILED, "", NULL},
    {"DUNNO\r", -1, MH_POL_FAILED, "", NULL},
    {"PREPEND", -1, MH_POL_FAILED, "", NULL},
    {"PREPEND nocolon", -1, MH_POL_FAILED, "", NULL},
    {"PREPEND : value", -1, MH_POL_FAILED, "", NULL},
    {"PREPEND Bad Name: value", -1, MH_POL_FAILED, "", NULL},
    {"PREPEND X-\xc3\xa4: value", -1, MH_POL_FAILED, "", NULL},
    {"FILTER", -1, MH_POL_FAILED, "", NULL},
    {"REDIRECT", -1, MH_POL_FAILED, "", NULL},
    {"BCC  ", -1, MH_POL_FAILED, "", NULL},
};

static void action_table(void **state)
{
	(void)state;
	char buf[1024];
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *w = &rows[i];
		struct mh_policy_answer a;
		int ret = mh_policy_parse_action(w->action, &a, buf, sizeof(buf));
		if (ret != w->ret || a.kind != w->kind || (w->text && strcmp(a.text, w->text)) ||
		    (w->note == NULL) != (a.note == NULL) || (w->note && strcmp(a.note, w->note)))
			fail_msg("row %zu '%s': ret %d kind %d text '%s' note '%s' why '%s'", i,
			         w->action, ret, a.kind, a.text, a.note ? a.note : "(null)",
			         a.why ? a.why : "(null)");
		assert_string_equal(a.action, w->action); /* the value as received */
		if (ret < 0)
			assert_non_null(a.why);
		else
			assert_null(a.why);
		if (a.kind == MH_POL_REJECT || a.kind == MH_POL_TEMPFAIL)
			assert_true(mh_codec_valid_replytext(a.text));
	}
}

static void action_long_text_is_cut_to_one_reply_line(void **state)
{
	(void)state;
	char action[1100], buf[4096];
	struct mh_policy_answer a;
	strcpy(action, "REJECT ");
	memset(action + 7, 'x', 1000);
	action[1007] = 0;
	assert_int_equal(mh_policy_parse_action(action, &a, buf, sizeof(buf)), 0);
	assert_int_equal(a.kind, MH_POL_REJECT);
	assert_int_equal(strlen(a.text), 510);
	assert_memory_equal(a.text, "550 5.7.1 xxx", 13);
	assert_true(mh_codec_valid_replytext(a.text));
	/* a doubled '%' is never cut in half */
	memset(action + 7, '%', 1000);
	assert_int_equal(mh_policy_parse_action(action, &a, buf, sizeof(buf)), 0);
	assert_int_equal(strlen(a.text) % 2, 0);
	assert_true(strlen(a.text) <= 510);
}

static void action_buffer_too_small_fails(void **state)
{
	(void)state;
	char buf[16];
	struct mh_policy_answer a;
	assert_int_equal(mh_policy_parse_action("REJECT Go away", &a, buf, sizeof(buf)), -1);
	assert_int_equal(a.kind, MH_POL_FAILED);
	assert_int_equal(mh_policy_parse_action("REJECT this action is longer than the buffer", &a,
	                                        buf, sizeof(buf)),
	                 -1);
	assert_string_equal(a.action, "");
	assert_int_equal(mh_policy_parse_action(NULL, &a, buf, sizeof(buf)), 0);
	assert_int_equal(a.kind, MH_POL_CONTINUE);
}

/* ------------------------------------------------------------ scripted server */

struct srv_conn {
	struct srv *s;
	struct srv_conn *next;
	int fd;
	ev_io io;
	struct mh_buf in;
	int held; /* requests to answer on srv_release() */
};

struct srv {
	struct ev_loop *loop;
	int lfd, port;
	ev_io accept_io;
	struct srv_conn *conns;
	int accepted, open, max_open;
	int requests;
	int ids[128]; /* id= of each request, in arrival order */
	struct mh_buf bytes; /* every byte received, all connections */
};

static void srv_conn_close(struct srv_conn *c)
{
	struct srv *s = c->s;
	struct srv_conn **pp = &s->conns;
	while (*pp != c)
		pp = &(*pp)->next;
	*pp = c->next;
	ev_io_stop(s->loop, &c->io);
	close(c->fd);
	mh_buf_free(&c->in);
	free(c);
	s->open--;
}

static void srv_send(struct srv_conn *c, const char *text)
{
	size_t n = strlen(text), off = 0;
	while (off < n) {
		ssize_t k = send(c->fd, text + off, n - off, MSG_NOSIGNAL);
		assert_true(k > 0);
		off += (size_t)k;
	}
}

/* The value of attribute name in the request req (lines), into out. */
static void attr_value(const char *req, const char *name, char *out, size_t outlen)
{
	size_t nl = strlen(name);
	out[0] = 0;
	for (const char *line = req; *line != '\n' && *line != 0;) {
		const char *end = strchr(line, '\n');
		if (strncmp(line, name, nl) == 0 && line[nl] == '=') {
			snprintf(out, outlen, "%.*s", (int)(end - line - (ptrdiff_t)nl - 1),
			         line + nl + 1);
			return;
		}
		line = end + 1;
	}
}

/* One complete request: record it and act as its want= says. 0, or -1 when c was closed. */
static int srv_request(struct srv_conn *c, const char *req)
{
	struct srv *s = c->s;
	char want[512], id[32], out[600];
	attr_value(req, "want", want, sizeof(want));
	attr_value(req, "id", id, sizeof(id));
	if (s->requests < 128)
		s->ids[s->requests] = atoi(id);
	s->requests++;
	if (strcmp(want, "__silent") == 0)
		return 0;
	if (strcmp(want, "__hold") == 0) {
		c->held++;
		return 0;
	}
	if (strcmp(want, "__close") == 0) {
		srv_conn_close(c);
		return -1;
	}
	if (strcmp(want, "__garbage") == 0) {
		srv_send(c, "hello\n\n");
	} else if (strcmp(want, "__noeq") == 0) {
		srv_send(c, "action=DUNNO\nno equals sign\n\n");
	} else if (strcmp(want, "__noaction") == 0) {
		srv_send(c, "foo=bar\n\n");
	} else if (strcmp(want, "__long") == 0) {
		char *big = malloc(6000);
		strcpy(big, "action=REJECT ");
		memset(big + 14, 'x', 5000);
		strcpy(big + 5014, "\n\n");
		srv_send(c, big);
		free(big);
	} else if (strcmp(want, "__crlf") == 0) {
		srv_send(c, "action=REJECT crlf\r\n\r\n");
	} else if (strcmp(want, "__extra") == 0) {
		srv_send(c, "action=DUNNO\n\nstray");
	} else {
		/* other attributes are ignored; the first action= counts */
		snprintf(out, sizeof(out), "x=1\naction=%s\naction=OK\n\n", want);
		srv_send(c, out);
	}
	return 0;
}

static void srv_on_read(struct ev_loop *loop, ev_io *w, int revents)
{
	struct srv_conn *c = w->data;
	(void)loop;
	(void)revents;
	uint8_t *dst = mh_buf_reserve(&c->in, 4096);
	ssize_t n = recv(c->fd, dst, 4096, 0);
	if (n <= 0) {
		if (n < 0 && errno == EAGAIN)
			return;
		srv_conn_close(c);
		return;
	}
	mh_buf_append(&c->s->bytes, dst, (size_t)n);
	c->in.len += (size_t)n;
	c->in.data[c->in.len] = 0;
	for (;;) {
		const char *h = (const char *)mh_buf_head(&c->in);
		const char *end = strstr(h, "\n\n");
		if (h[0] == '\n')
			end = h - 1; /* an empty request */
		if (end == NULL)
			return;
		size_t len = (size_t)(end + 2 - h);
		char *req = mh_xstrndup(h, len);
		mh_buf_consume(&c->in, len);
		int r = srv_request(c, req);
		free(req);
		if (r < 0)
			return;
	}
}

static void srv_on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
	struct srv *s = w->data;
	(void)revents;
	int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return;
	struct srv_conn *c = mh_xcalloc(1, sizeof(*c));
	c->s = s;
	c->fd = fd;
	c->next = s->conns;
	s->conns = c;
	ev_io_init(&c->io, srv_on_read, fd, EV_READ);
	c->io.data = c;
	ev_io_start(loop, &c->io);
	s->accepted++;
	s->open++;
	if (s->open > s->max_open)
		s->max_open = s->open;
}

/* Answer every held request with "REJECT held". */
static void srv_release(struct srv *s)
{
	for (struct srv_conn *c = s->conns; c != NULL; c = c->next)
		for (; c->held > 0; c->held--)
			srv_send(c, "action=REJECT held\n\n");
}

static void srv_close_all(struct srv *s)
{
	while (s->conns != NULL)
		srv_conn_close(s->conns);
}

/* ------------------------------------------------------------ fixture */

#define MAXREQ 64

struct got {
	int calls;
	enum mh_policy_kind kind;
	char text[600], action[600], why[256];
	const char *note;
	double at;
};

struct fix {
	struct ev_loop *loop;
	struct srv srv;
	struct mh_child_conf conf;
	struct mh_policy_pool *pool;
	struct got got[MAXREQ];
	int nanswers;
	int order[MAXREQ]; /* request numbers in callback order */
};

static struct fix *F;

static void on_done(const struct mh_policy_answer *a, void *arg)
{
	int i = (int)(intptr_t)arg;
	assert_true(i >= 0 && i < MAXREQ);
	struct got *g = &F->got[i];
	g->calls++;
	g->kind = a->kind;
	snprintf(g->text, sizeof(g->text), "%s", a->text);
	snprintf(g->action, sizeof(g->action), "%s", a->action);
	snprintf(g->why, sizeof(g->why), "%s", a->why ? a->why : "");
	g->note = a->note;
	g->at = ev_now(F->loop);
	F->order[F->nanswers++] = i;
}

static void set_sock(struct mh_child_conf *conf, int port)
{
	char spec[64], err[200];
	snprintf(spec, sizeof(spec), "inet:%d@127.0.0.1", port);
	assert_int_equal(mh_sockspec_parse(spec, &conf->sock, err, sizeof(err)), 0);
}

static int setup(void **state)
{
	struct fix *f = mh_xcalloc(1, sizeof(*f));
	f->loop = ev_loop_new(EVFLAG_AUTO);
	struct srv *s = &f->srv;
	s->loop = f->loop;
	s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sin);
	assert_int_equal(bind(s->lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(s->lfd, 128), 0);
	assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&sin, &len), 0);
	s->port = ntohs(sin.sin_port);
	ev_io_init(&s->accept_io, srv_on_accept, s->lfd, EV_READ);
	s->accept_io.data = s;
	ev_io_start(f->loop, &s->accept_io);

	f->conf.name = "pol";
	f->conf.kind = MH_CHILD_POLICY;
	f->conf.policy_connections = 4;
	f->conf.connect_timeout = 2;
	f->conf.read_timeout = 2;
	set_sock(&f->conf, s->port);
	F = f;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fix *f = *state;
	mh_policy_pools_free();
	srv_close_all(&f->srv);
	ev_io_stop(f->loop, &f->srv.accept_io);
	close(f->srv.lfd);
	mh_buf_free(&f->srv.bytes);
	ev_loop_destroy(f->loop);
	free(f);
	F = NULL;
	return 0;
}

static void on_expire(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	*(int *)w->data = 1;
}

/* Run the loop until *counter >= want or secs pass; returns whether it got there. */
static int wait_count(const int *counter, int want, double secs)
{
	int expired = 0;
	ev_timer t;
	ev_timer_init(&t, on_expire, secs, 0.);
	t.data = &expired;
	ev_timer_start(F->loop, &t);
	while (*counter < want && !expired)
		ev_run(F->loop, EVRUN_ONCE);
	ev_timer_stop(F->loop, &t);
	return *counter >= want;
}

/* Run the loop for secs (to see that nothing more happens). */
static void run_for(double secs)
{
	int never = 0;
	(void)wait_count(&never, 1, secs);
}

static struct mh_policy_req *ask(int i, const char *want)
{
	char id[16];
	snprintf(id, sizeof(id), "%d", i);
	struct mh_policy_attr attrs[] = {
	    {"request", "smtpd_access_policy"},
	    {"id", id},
	    {"want", want},
	};
	return mh_policy_ask(F->pool, attrs, 3, 100 + (uint64_t)i, on_done, (void *)(intptr_t)i);
}

static struct mh_policy_pool *make_pool(size_t connections, double read_timeout)
{
	F->conf.policy_connections = connections;
	F->conf.read_timeout = read_timeout;
	F->pool = mh_policy_pool_get(F->loop, &F->conf);
	return F->pool;
}

/* ------------------------------------------------------------ pool tests */

static void pool_is_one_per_loop_and_conf(void **state)
{
	struct fix *f = *state;
	struct mh_child_conf other = f->conf;
	struct mh_policy_pool *p = mh_policy_pool_get(f->loop, &f->conf);
	assert_ptr_equal(mh_policy_pool_get(f->loop, &f->conf), p);
	assert_ptr_not_equal(mh_policy_pool_get(f->loop, &other), p);
	struct ev_loop *loop2 = ev_loop_new(EVFLAG_AUTO);
	assert_ptr_not_equal(mh_policy_pool_get(loop2, &f->conf), p);
	assert_int_equal(mh_policy_pool_connections(p), 0);
	assert_int_equal(mh_policy_pool_opened(p), 0);
	mh_policy_pools_free();
	ev_loop_destroy(loop2);
}

static void request_bytes_are_attrs_then_empty_line(void **state)
{
	struct fix *f = *state;
	make_pool(4, 2);
	struct mh_policy_attr attrs[] = {
	    {"request", "smtpd_access_policy"},
	    {"protocol_state", "RCPT"},
	    {"protocol_name", "ESMTP"},
	    {"client_address", "192.0.2.1"},
	    {"sender", "a@example.org"},
	    {"recipient", "b@example.net"},
	    {"empty", ""},
	    {"want", "DUNNO"},
	};
	mh_policy_ask(f->pool, attrs, sizeof(attrs) / sizeof(attrs[0]), 7, on_done, (void *)0);
	assert_int_equal(f->nanswers, 0); /* never from inside mh_policy_ask */
	assert_true(wait_count(&f->nanswers, 1, 3));
	assert_string_equal(
	    (const char *)mh_buf_head(&f->srv.bytes),
	    "request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n"
	    "client_address=192.0.2.1\nsender=a@example.org\n"
	    "recipient=b@example.net\nempty=\nwant=DUNNO\n\n");
	assert_int_equal(f->got[0].kind, MH_POL_CONTINUE);
	assert_string_equal(f->got[0].action, "DUNNO");
}

static void answers_map_end_to_end(void **state)
{
	struct fix *f = *state;
	static const struct {
		const char *want;
		enum mh_policy_kind kind;
		const char *text;
	} cases[] = {
	    {"REJECT Go away", MH_POL_REJECT, "550 5.7.1 Go away"},
	    {"DEFER_IF_PERMIT Greylisted, see http://postgrey.schweikert.ch/help/example.org.html",
	     MH_POL_TEMPFAIL,
	     "450 4.7.1 Greylisted, see http://postgrey.schweikert.ch/help/example.org.html"},
	    {"450 Greylisted", MH_POL_TEMPFAIL, "450 Greylisted"},
	    {"OK", MH_POL_CONTINUE, ""},
	    {"DISCARD bye", MH_POL_DISCARD, "bye"},
	    {"HOLD look", MH_POL_HOLD, "look"},
	    {"PREPEND X-Checked: yes", MH_POL_PREPEND, "X-Checked: yes"},
	    {"__crlf", MH_POL_REJECT, "550 5.7.1 crlf"},
	    {"550x", MH_POL_FAILED, ""},
	};
	const int n = (int)(sizeof(cases) / sizeof(cases[0]));
	make_pool(2, 2);
	for (int i = 0; i < n; i++)
		ask(i, cases[i].want);
	assert_true(wait_count(&f->nanswers, n, 3));
	for (int i = 0; i < n; i++) {
		assert_int_equal(f->got[i].calls, 1);
		assert_int_equal(f->got[i].kind, cases[i].kind);
		assert_string_equal(f->got[i].text, cases[i].text);
	}
	assert_string_equal(f->got[n - 1].action, "550x");
	assert_true(f->got[n - 1].why[0] != 0);
	/* a malformed action is not a broken connection */
	assert_int_equal(mh_policy_pool_connections(f->pool), 2);
}

static void sequential_requests_reuse_one_connection(void **state)
{
	struct fix *f = *state;
	make_pool(4, 2);
	for (int i = 0; i < 10; i++) {
		char want[32];
		snprintf(want, sizeof(want), "REJECT n%d", i);
		ask(i, want);
		assert_true(wait_count(&f->nanswers, i + 1, 3));
		char text[64];
		snprintf(text, sizeof(text), "550 5.7.1 n%d", i);
		assert_string_equal(f->got[i].text, text);
	}
	assert_int_equal(mh_policy_pool_opened(f->pool), 1);
	assert_int_equal(mh_policy_pool_connections(f->pool), 1);
	assert_int_equal(f->srv.accepted, 1);
	assert_int_equal(f->srv.requests, 10);
}

static void concurrent_requests_stay_within_the_connection_limit(void **state)
{
	struct fix *f = *state;
	make_pool(3, 2);
	for (int i = 0; i < 50; i++) {
		char want[32];
		snprintf(want, sizeof(want), "REJECT n%d", i);
		ask(i, want);
	}
	assert_true(wait_count(&f->nanswers, 50, 5));
	for (int i = 0; i < 50; i++) {
		char text[64];
		snprintf(text, sizeof(text), "550 5.7.1 n%d", i);
		assert_int_equal(f->got[i].calls, 1);
		assert_string_equal(f->got[i].text, text);
	}
	assert_true(mh_policy_pool_opened(f->pool) <= 3);
	assert_true(mh_policy_pool_connections(f->pool) <= 3);
	assert_true(f->srv.max_open <= 3);
	assert_int_equal(f->srv.requests, 50);
}

static void connections_zero_means_four(void **state)
{
	struct fix *f = *state;
	make_pool(0, 2);
	for (int i = 0; i < 10; i++)
		ask(i, "__hold");
	assert_true(wait_count(&f->srv.requests, 4, 3));
	run_for(0.05);
	assert_int_equal(f->srv.requests, 4);
	assert_int_equal(mh_policy_pool_opened(f->pool), 4);
	srv_release(&f->srv);
	assert_true(wait_count(&f->srv.requests, 8, 3));
	srv_release(&f->srv);
	assert_true(wait_count(&f->srv.requests, 10, 3));
	srv_release(&f->srv);
	assert_true(wait_count(&f->nanswers, 10, 3));
	assert_int_equal(mh_policy_pool_opened(f->pool), 4);
	assert_true(f->srv.max_open <= 4);
}

static void queued_requests_go_in_order(void **state)
{
	struct fix *f = *state;
	make_pool(1, 2);
	for (int i = 0; i < 10; i++)
		ask(i, "DUNNO");
	assert_true(wait_count(&f->nanswers, 10, 3));
	for (int i = 0; i < 10; i++) {
		assert_int_equal(f->srv.ids[i], i);
		assert_int_equal(f->order[i], i);
	}
	assert_int_equal(mh_policy_pool_opened(f->pool), 1);
}

static void idle_connection_closed_by_server_is_replaced(void **state)
{
	struct fix *f = *state;
	make_pool(4, 2);
	ask(0, "OK");
	assert_true(wait_count(&f->nanswers, 1, 3));
	assert_int_equal(mh_policy_pool_connections(f->pool), 1);
	/* seen by the idle connection's read watcher */
	srv_close_all(&f->srv);
	for (int i = 0; i < 100 && mh_policy_pool_connections(f->pool) > 0; i++)
		run_for(0.01);
	assert_int_equal(mh_policy_pool_connections(f->pool), 0);
	ask(1, "REJECT again");
	assert_true(wait_count(&f->nanswers, 2, 3));
	assert_int_equal(f->got[1].kind, MH_POL_REJECT);
	assert_int_equal(mh_policy_pool_opened(f->pool), 2);
	/* closed just before the next request: found when the connection is taken */
	srv_close_all(&f->srv);
	ask(2, "REJECT third");
	assert_true(wait_count(&f->nanswers, 3, 3));
	assert_int_equal(f->got[2].kind, MH_POL_REJECT);
	assert_string_equal(f->got[2].text, "550 5.7.1 third");
	assert_int_equal(mh_policy_pool_opened(f->pool), 3);
}

static void silent_server_fails_after_the_read_timeout(void **state)
{
	struct fix *f = *state;
	make_pool(4, 0.2);
	ev_now_update(f->loop);
	double t0 = ev_now(f->loop);
	ask(0, "__silent");
	assert_true(wait_count(&f->nanswers, 1, 3));
	assert_int_equal(f->got[0].kind, MH_POL_FAILED);
	assert_string_equal(f->got[0].action, "");
	assert_non_null(strstr(f->got[0].why, "no answer"));
	double took = f->got[0].at - t0;
	assert_true(took >= 0.19 && took < 1.0);
	assert_int_equal(mh_policy_pool_connections(f->pool), 0);
}

static void queued_request_clock_starts_when_written(void **state)
{
	struct fix *f = *state;
	make_pool(1, 0.3);
	ask(0, "__hold");
	ask(1, "__hold");
	assert_true(wait_count(&f->srv.requests, 1, 3));
	run_for(0.2);
	srv_release(&f->srv); /* request 0 answered 0.2 s into its 0.3 s */
	assert_true(wait_count(&f->srv.requests, 2, 3));
	run_for(0.2);
	srv_release(&f->srv); /* request 1: 0.4 s after mh_policy_ask, 0.2 s after written */
	assert_true(wait_count(&f->nanswers, 2, 3));
	assert_int_equal(f->got[0].kind, MH_POL_REJECT);
	assert_int_equal(f->got[1].kind, MH_POL_REJECT);
	assert_int_equal(mh_policy_pool_opened(f->pool), 1);
}

static void garbage_answers_fail_and_close(void **state)
{
	struct fix *f = *state;
	static const char *const wants[] = {"__garbage", "__noeq", "__noaction", "__long",
	                                    "__close"};
	make_pool(4, 2);
	for (int i = 0; i < 5; i++) {
		ask(i, wants[i]);
		assert_true(wait_count(&f->nanswers, i + 1, 3));
		assert_int_equal(f->got[i].kind, MH_POL_FAILED);
		assert_true(f->got[i].why[0] != 0);
		assert_int_equal(mh_policy_pool_connections(f->pool), 0);
	}
	assert_int_equal(mh_policy_pool_opened(f->pool), 5);
	/* an answer followed by stray bytes counts, but the connection goes */
	ask(5, "__extra");
	assert_true(wait_count(&f->nanswers, 6, 3));
	assert_int_equal(f->got[5].kind, MH_POL_CONTINUE);
	assert_int_equal(mh_policy_pool_connections(f->pool), 0);
	/* and the pool still works */
	ask(6, "DISCARD");
	assert_true(wait_count(&f->nanswers, 7, 3));
	assert_int_equal(f->got[6].kind, MH_POL_DISCARD);
}

static void refused_connection_fails_promptly(void **state)
{
	struct fix *f = *state;
	/* a port nobody listens on */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sin);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	set_sock(&f->conf, ntohs(sin.sin_port));
	make_pool(2, 2);
	ev_now_update(f->loop);
	double t0 = ev_now(f->loop);
	for (int i = 0; i < 5; i++)
		ask(i, "OK");
	assert_int_equal(f->nanswers, 0); /* not from inside mh_policy_ask */
	assert_true(wait_count(&f->nanswers, 5, 3));
	close(fd);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(f->got[i].kind, MH_POL_FAILED);
		assert_non_null(strstr(f->got[i].why, "refused"));
		assert_true(f->got[i].at - t0 < 0.5);
	}
	assert_int_equal(mh_policy_pool_connections(f->pool), 0);
}

static void cancel_queued_request(void **state)
{
	struct fix *f = *state;
	make_pool(1, 2);
	ask(0, "__hold");
	struct mh_policy_req *r1 = ask(1, "REJECT one");
	ask(2, "REJECT two");
	mh_policy_cancel(r1);
	assert_true(wait_count(&f->srv.requests, 1, 3));
	srv_release(&f->srv);
	assert_true(wait_count(&f->nanswers, 2, 3));
	run_for(0.05);
	assert_int_equal(f->nanswers, 2);
	assert_int_equal(f->got[1].calls, 0);
	assert_string_equal(f->got[0].text, "550 5.7.1 held");
	assert_string_equal(f->got[2].text, "550 5.7.1 two");
	assert_int_equal(f->srv.requests, 2);
	assert_int_equal(f->srv.ids[1], 2);
}

static void cancel_in_flight_request_drops_its_answer(void **state)
{
	struct fix *f = *state;
	make_pool(1, 2);
	struct mh_policy_req *r0 = ask(0, "__hold");
	assert_true(wait_count(&f->srv.requests, 1, 3));
	mh_policy_cancel(r0);
	ask(1, "REJECT mine");
	run_for(0.05);
	assert_int_equal(f->srv.requests, 1); /* still busy with the cancelled one */
	srv_release(&f->srv);
	assert_true(wait_count(&f->nanswers, 1, 3));
	run_for(0.05);
	assert_int_equal(f->nanswers, 1);
	assert_int_equal(f->got[0].calls, 0);
	assert_string_equal(f->got[1].text, "550 5.7.1 mine"); /* not "held" */
	assert_int_equal(mh_policy_pool_opened(f->pool), 1);
	assert_int_equal(mh_policy_pool_connections(f->pool), 1);
}

static void cancel_while_connecting_and_after_answer(void **state)
{
	struct fix *f = *state;
	make_pool(1, 2);
	/* cancelled before the loop ran: never written, the connection kept */
	struct mh_policy_req *r0 = ask(0, "REJECT never");
	mh_policy_cancel(r0);
	ask(1, "REJECT later");
	assert_true(wait_count(&f->nanswers, 1, 3));
	assert_int_equal(f->got[0].calls, 0);
	assert_string_equal(f->got[1].text, "550 5.7.1 later");
	assert_int_equal(mh_policy_pool_opened(f->pool), 1);
	assert_int_equal(f->srv.requests, 1);
}

static void free_pools_with_requests_pending(void **state)
{
	struct fix *f = *state;
	make_pool(2, 2);
	for (int i = 0; i < 6; i++)
		ask(i, "__hold");
	assert_true(wait_count(&f->srv.requests, 2, 3));
	mh_policy_pools_free();
	srv_release(&f->srv);
	run_for(0.1);
	assert_int_equal(f->nanswers, 0);
}

/* done() frees every pool while other answers wait to be reported. */
static void free_pools_from_a_callback(const struct mh_policy_answer *a, void *arg)
{
	on_done(a, arg);
	mh_policy_pools_free();
}

static void free_pools_from_inside_done(void **state)
{
	struct fix *f = *state;
	make_pool(2, 2);
	char id[8];
	for (int i = 0; i < 2; i++) {
		snprintf(id, sizeof(id), "%d", i);
		struct mh_policy_attr attrs[] = {{"id", id}, {"want", "__hold"}};
		mh_policy_ask(f->pool, attrs, 2, 0, free_pools_from_a_callback,
		              (void *)(intptr_t)i);
	}
	ask(2, "__hold"); /* queued */
	assert_true(wait_count(&f->srv.requests, 2, 3));
	srv_release(&f->srv);
	assert_true(wait_count(&f->nanswers, 1, 3));
	run_for(0.1);
	assert_int_equal(f->nanswers, 1);
}

int main(void)
{
	mh_log_set_level(MH_LOG_ERR); /* the failures below are meant */
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(action_table),
	    cmocka_unit_test(action_long_text_is_cut_to_one_reply_line),
	    cmocka_unit_test(action_buffer_too_small_fails),
	    cmocka_unit_test_setup_teardown(pool_is_one_per_loop_and_conf, setup, teardown),
	    cmocka_unit_test_setup_teardown(request_bytes_are_attrs_then_empty_line, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(answers_map_end_to_end, setup, teardown),
	    cmocka_unit_test_setup_teardown(sequential_requests_reuse_one_connection, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(concurrent_requests_stay_within_the_connection_limit,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(connections_zero_means_four, setup, teardown),
	    cmocka_unit_test_setup_teardown(queued_requests_go_in_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(idle_connection_closed_by_server_is_replaced, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(silent_server_fails_after_the_read_timeout, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(queued_request_clock_starts_when_written, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(garbage_answers_fail_and_close, setup, teardown),
	    cmocka_unit_test_setup_teardown(refused_connection_fails_promptly, setup, teardown),
	    cmocka_unit_test_setup_teardown(cancel_queued_request, setup, teardown),
	    cmocka_unit_test_setup_teardown(cancel_in_flight_request_drops_its_answer, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(cancel_while_connecting_and_after_answer, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(free_pools_with_requests_pending, setup, teardown),
	    cmocka_unit_test_setup_teardown(free_pools_from_inside_done, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
