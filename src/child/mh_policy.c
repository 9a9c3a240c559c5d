/*
 * NAME
 *	mh_policy 3
 * SUMMARY
 *	Postfix policy delegation client: connection pools and requests
 * SYNOPSIS
 *	#include "child/mh_policy.h"
 * DESCRIPTION
 *	mh_policy_parse_action() (mh_policy_action.c) maps one action= value
 *	to a milter answer.
 *
 *	Pools. A registry (a static list) holds one pool per (loop, conf);
 *	conf must outlive it. A pool keeps at most conf->policy_connections
 *	connections (0 means 4), each CONNECTING, BUSY (one request written
 *	or being written, its answer awaited) or IDLE. Requests wait in a
 *	FIFO queue; the head takes the most recently idled connection (LIFO:
 *	the least used ones age out at the server), else a new one while
 *	the limit allows. Before an idle connection is reused it is probed
 *	with recv(MSG_PEEK): one the server closed (EOF, also seen by its
 *	read watcher while idle) is closed quietly and skipped.
 *
 *	Deadlines (one ev_timer per connection): connect_timeout while
 *	connecting; read_timeout from the moment a request starts being
 *	written until its empty line is read. Timeouts of 0 or less in conf
 *	mean the defaults, 5 s and 7 s.
 *
 *	The answer: lines up to "\n" (one trailing CR is tolerated), each
 *	"name=value"; the first action= is kept; an empty line ends it.
 *	A line without '=', no action=, more than 4 KiB, EOF, an i/o error or
 *	a deadline fail the request and close the connection. Bytes after
 *	the empty line (or while idle) close the connection too (the answer
 *	already read still counts).
 * CALLBACKS AND RE-ENTRANCY
 *	done() is called from one place only: the pool's 0 s ev_timer
 *	("kick"), which also starts queued requests. Finished requests
 *	wait in a done list until it runs, so done() never runs inside an
 *	mh_policy_* call and connection code never runs user code. A
 *	request is freed just before its done() (its handle is dead from
 *	then on). done() may call mh_policy_ask, mh_policy_cancel (of other
 *	requests) and mh_policy_pools_free.
 *
 *	mh_policy_cancel(): a queued or finished-not-reported request is
 *	removed; one whose connection is still connecting is taken off it
 *	unsent; one written (or being written) leaves its connection busy
 *	until the answer is read and dropped (or the deadline closes it).
 *	mh_policy_pools_free() must run before the loop is destroyed;
 *	request handles are invalid afterwards.
 * DIAGNOSTICS
 *	mh_warn(sid, "policy NAME: reason") for every failure and for a
 *	malformed action; mh_debug for an idle connection the server closed.
 * SEE ALSO
 *	http://www.postfix.org/SMTPD_POLICY_README.html, access(5),
 *	mh_child_policy.c (the child that uses it)
 */
#include "child/mh_policy.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "protocol/mh_codec.h"
#include "util/mh_buf.h"
#include "util/mh_log.h"

#define ANSWER_MAX 4096 /* the header's limit on one answer */
#define READ_CHUNK 4096
#define DEFAULT_CONNECTIONS 4
#define DEFAULT_CONNECT_TIMEOUT 5.0
#define DEFAULT_READ_TIMEOUT 7.0

/* ------------------------------------------------------------ pools */

enum req_state {
	REQ_QUEUED, /* in pool->queue */
	REQ_ACTIVE, /* conn->req */
	REQ_DONE, /* in pool->done, waiting for the kick to report it */
};

struct pconn;

struct mh_policy_req {
	struct mh_policy_pool *pool;
	struct mh_policy_req *prev, *next; /* queue or done list */
	enum req_state state;
	struct pconn *conn; /* REQ_ACTIVE */
	struct mh_buf out; /* the encoded request until a connection takes it */
	uint64_t sid;
	mh_policy_done done;
	void *arg;
	char *action; /* REQ_DONE: the action= value (owned); NULL: failed */
	char why[200]; /* REQ_DONE and failed: the reason */
};

struct req_list {
	struct mh_policy_req *head, *tail;
};

enum conn_state {
	CONN_CONNECTING,
	CONN_BUSY, /* a request written or being written; req NULL once cancelled */
	CONN_IDLE,
};

struct pconn {
	struct mh_policy_pool *pool;
	struct pconn *prev, *next; /* pool->conns, most recently idled first */
	enum conn_state state;
	int fd;
	ev_io rio, wio;
	ev_timer deadline;
	struct mh_buf out, in;
	size_t answer_bytes; /* of the answer so far, in complete lines */
	char *action; /* the first action= of the answer so far (owned) */
	struct mh_policy_req *req;
	uint64_t sid; /* of the request last given to it, for logs */
};

struct mh_policy_pool {
	struct mh_policy_pool *next; /* the registry */
	struct ev_loop *loop;
	const struct mh_child_conf *conf;
	size_t max, nconns, opened;
	double connect_timeout, read_timeout;
	struct pconn *conns;
	struct req_list queue, done;
	ev_timer kick; /* 0 s: report finished requests, start queued ones */
	int *alive; /* while the kick reports: cleared when the pool is freed */
};

static struct mh_policy_pool *registry;

static void list_append(struct req_list *l, struct mh_policy_req *r)
{
	r->next = NULL;
	r->prev = l->tail;
	if (l->tail != NULL)
		l->tail->next = r;
	else
		l->head = r;
	l->tail = r;
}

static void list_remove(struct req_list *l, struct mh_policy_req *r)
{
	if (r->prev != NULL)
		r->prev->next = r->next;
	else
		l->head = r->next;
	if (r->next != NULL)
		r->next->prev = r->prev;
	else
		l->tail = r->prev;
	r->prev = r->next = NULL;
}

static void req_free(struct mh_policy_req *r)
{
	mh_buf_free(&r->out);
	free(r->action);
	free(r);
}

static void schedule(struct mh_policy_pool *p)
{
	if (!ev_is_active(&p->kick)) {
		ev_timer_set(&p->kick, 0., 0.);
		ev_timer_start(p->loop, &p->kick);
	}
}

/* The request is answered (action, owned) or failed (action NULL, why): report it soon. */
static void req_finish(struct mh_policy_req *r, char *action, const char *why)
{
	r->state = REQ_DONE;
	r->conn = NULL;
	r->action = action;
	snprintf(r->why, sizeof(r->why), "%s", why != NULL ? why : "");
	list_append(&r->pool->done, r);
	schedule(r->pool);
}

/* A log-safe copy of untrusted bytes: printable ASCII, at most dstlen - 1 bytes. */
static const char *printable(char *dst, size_t dstlen, const char *s, size_t n)
{
	size_t i;
	for (i = 0; i < n && i + 1 < dstlen; i++)
		dst[i] = (s[i] >= 32 && s[i] < 127) ? s[i] : '?';
	dst[i] = 0;
	return dst;
}

static void conn_close(struct pconn *c)
{
	struct mh_policy_pool *p = c->pool;
	ev_io_stop(p->loop, &c->rio);
	ev_io_stop(p->loop, &c->wio);
	ev_timer_stop(p->loop, &c->deadline);
	close(c->fd);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		p->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	p->nconns--;
	mh_buf_free(&c->in);
	mh_buf_free(&c->out);
	free(c->action);
	free(c);
}

/* The connection failed: log, fail its request, close it; queued requests go on. */
static void conn_fail(struct pconn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void conn_fail(struct pconn *c, const char *fmt, ...)
{
	struct mh_policy_pool *p = c->pool;
	char why[200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	mh_warn(c->sid, "policy %s: %s%s", p->conf->name, why,
	        c->req == NULL && c->state == CONN_BUSY ? " (request cancelled)" : "");
	if (c->req != NULL)
		req_finish(c->req, NULL, why);
	c->req = NULL;
	conn_close(c);
	if (p->queue.head != NULL)
		schedule(p);
}

static void conn_become_idle(struct pconn *c)
{
	struct mh_policy_pool *p = c->pool;
	c->state = CONN_IDLE;
	ev_timer_stop(p->loop, &c->deadline);
	ev_io_stop(p->loop, &c->wio);
	/* LIFO: the most recently idled connection is taken first. */
	if (p->conns != c) {
		c->prev->next = c->next;
		if (c->next != NULL)
			c->next->prev = c->prev;
		c->prev = NULL;
		c->next = p->conns;
		p->conns->prev = c;
		p->conns = c;
	}
	if (p->queue.head != NULL)
		schedule(p);
}

/* Write what is pending; 0, or -1 when the connection failed (c freed). */
static int conn_write(struct pconn *c)
{
	while (mh_buf_size(&c->out) > 0) {
		ssize_t n = send(c->fd, mh_buf_head(&c->out), mh_buf_size(&c->out), MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				ev_io_start(c->pool->loop, &c->wio);
				return 0;
			}
			conn_fail(c, "write to %s: %s", c->pool->conf->sock.text, strerror(errno));
			return -1;
		}
		mh_buf_consume(&c->out, (size_t)n);
	}
	ev_io_stop(c->pool->loop, &c->wio);
	return 0;
}

/* The request's clock starts when it starts being written (header). */
static void conn_start_request(struct pconn *c)
{
	struct mh_policy_pool *p = c->pool;
	c->state = CONN_BUSY;
	c->answer_bytes = 0;
	ev_timer_stop(p->loop, &c->deadline);
	ev_timer_set(&c->deadline, p->read_timeout, 0.);
	ev_timer_start(p->loop, &c->deadline);
	(void)conn_write(c);
}

static void conn_connected(struct pconn *c)
{
	ev_io_stop(c->pool->loop, &c->wio);
	ev_io_start(c->pool->loop, &c->rio);
	if (c->req != NULL)
		conn_start_request(c);
	else
		conn_become_idle(c); /* its request was cancelled while connecting */
}

/* The empty line: hand the action over and make the connection reusable. */
static void conn_answer_complete(struct pconn *c)
{
	struct mh_policy_pool *p = c->pool;
	char *action = c->action;
	if (action == NULL) {
		conn_fail(c, "answer without action=");
		return;
	}
	c->action = NULL;
	if (c->req != NULL)
		req_finish(c->req, action, NULL);
	else
		free(action); /* cancelled: read and dropped */
	c->req = NULL;
	if (mh_buf_size(&c->in) > 0 || mh_buf_size(&c->out) > 0) {
		mh_warn(c->sid, "policy %s: data after the answer, connection closed",
		        p->conf->name);
		conn_close(c);
		if (p->queue.head != NULL)
			schedule(p);
		return;
	}
	conn_become_idle(c);
}

/* Take complete lines of the answer; may finish or fail (free) c. */
static void conn_parse(struct pconn *c)
{
	char shown[64];
	for (;;) {
		const char *h = (const char *)mh_buf_head(&c->in);
		size_t size = mh_buf_size(&c->in);
		const char *nl = memchr(h, '\n', size);
		if (nl == NULL) {
			if (c->answer_bytes + size > ANSWER_MAX)
				conn_fail(c, "answer longer than %d bytes", ANSWER_MAX);
			return;
		}
		size_t ll = (size_t)(nl - h);
		c->answer_bytes += ll + 1;
		if (c->answer_bytes > ANSWER_MAX) {
			conn_fail(c, "answer longer than %d bytes", ANSWER_MAX);
			return;
		}
		size_t l = ll;
		if (l > 0 && h[l - 1] == '\r')
			l--;
		if (l == 0) {
			mh_buf_consume(&c->in, ll + 1);
			conn_answer_complete(c);
			return;
		}
		const char *eq = memchr(h, '=', l);
		if (eq == NULL) {
			conn_fail(c, "malformed answer line '%s'",
			          printable(shown, sizeof(shown), h, l));
			return;
		}
		if (eq - h == 6 && memcmp(h, "action", 6) == 0 && c->action == NULL)
			c->action = mh_xstrndup(eq + 1, l - 7);
		mh_buf_consume(&c->in, ll + 1);
	}
}

static void on_read(struct ev_loop *loop, ev_io *w, int revents)
{
	struct pconn *c = w->data;
	struct mh_policy_pool *p = c->pool;
	(void)loop;
	(void)revents;
	uint8_t *dst = mh_buf_reserve(&c->in, READ_CHUNK);
	ssize_t n = recv(c->fd, dst, READ_CHUNK, 0);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (c->state == CONN_IDLE) {
		if (n > 0)
			mh_warn(0, "policy %s: data on an idle connection, closed", p->conf->name);
		else
			mh_debug(0, "policy %s: idle connection closed by the server",
			         p->conf->name);
		conn_close(c);
		return;
	}
	if (n < 0) {
		conn_fail(c, "read from %s: %s", p->conf->sock.text, strerror(errno));
		return;
	}
	if (n == 0) {
		conn_fail(c, "%s closed the connection before answering", p->conf->sock.text);
		return;
	}
	c->in.len += (size_t)n;
	c->in.data[c->in.len] = 0;
	conn_parse(c);
}

static void on_write(struct ev_loop *loop, ev_io *w, int revents)
{
	struct pconn *c = w->data;
	(void)loop;
	(void)revents;
	if (c->state != CONN_CONNECTING) {
		(void)conn_write(c);
		return;
	}
	int err = 0;
	socklen_t len = sizeof(err);
	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err != 0) {
		conn_fail(c, "connect %s: %s", c->pool->conf->sock.text, strerror(err));
		return;
	}
	conn_connected(c);
}

static void on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct pconn *c = w->data;
	struct mh_policy_pool *p = c->pool;
	(void)loop;
	(void)revents;
	if (c->state == CONN_CONNECTING)
		conn_fail(c, "connect %s: timed out after %gs", p->conf->sock.text,
		          p->connect_timeout);
	else
		conn_fail(c, "no answer from %s within %gs", p->conf->sock.text, p->read_timeout);
}

/*
 * Start a connection; NULL with err when it cannot. *ready: connect()
 * finished at once (call conn_connected once a request is on it).
 */
static struct pconn *conn_open(struct mh_policy_pool *p, int *ready, char *err, size_t errlen)
{
	int fd = mh_sockspec_connect_ex(&p->conf->sock, ready, err, errlen);
	if (fd < 0)
		return NULL;
	struct pconn *c = mh_xcalloc(1, sizeof(*c));
	c->pool = p;
	c->fd = fd;
	c->state = CONN_CONNECTING;
	ev_io_init(&c->rio, on_read, fd, EV_READ);
	ev_io_init(&c->wio, on_write, fd, EV_WRITE);
	ev_timer_init(&c->deadline, on_deadline, p->connect_timeout, 0.);
	c->rio.data = c->wio.data = c->deadline.data = c;
	c->next = p->conns;
	if (p->conns != NULL)
		p->conns->prev = c;
	p->conns = c;
	p->nconns++;
	p->opened++;
	if (!*ready) {
		ev_io_start(p->loop, &c->wio);
		ev_timer_start(p->loop, &c->deadline);
	}
	return c;
}

/* An idle connection the server has not closed, most recently idled first. */
static struct pconn *take_idle(struct mh_policy_pool *p)
{
	struct pconn *c = p->conns, *next;
	for (; c != NULL; c = next) {
		next = c->next;
		if (c->state != CONN_IDLE)
			continue;
		char b;
		ssize_t n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			return c;
		if (n > 0)
			mh_warn(0, "policy %s: data on an idle connection, closed", p->conf->name);
		else
			mh_debug(0, "policy %s: idle connection closed by the server",
			         p->conf->name);
		conn_close(c);
	}
	return NULL;
}

/* Give queued requests to connections. Never calls done(). */
static void dispatch(struct mh_policy_pool *p)
{
	while (p->queue.head != NULL) {
		int ready = 0;
		struct pconn *c = take_idle(p);
		if (c == NULL) {
			if (p->nconns >= p->max)
				return;
			char err[200];
			c = conn_open(p, &ready, err, sizeof(err));
			if (c == NULL) {
				struct mh_policy_req *r = p->queue.head;
				list_remove(&p->queue, r);
				mh_warn(r->sid, "policy %s: %s", p->conf->name, err);
				req_finish(r, NULL, err);
				continue;
			}
		}
		struct mh_policy_req *r = p->queue.head;
		list_remove(&p->queue, r);
		r->state = REQ_ACTIVE;
		r->conn = c;
		c->req = r;
		c->sid = r->sid;
		mh_buf_reset(&c->out);
		mh_buf_append(&c->out, mh_buf_head(&r->out), mh_buf_size(&r->out));
		mh_buf_free(&r->out);
		if (c->state == CONN_IDLE)
			conn_start_request(c);
		else if (ready)
			conn_connected(c);
		/* c may be gone (write failure): not used below. */
	}
}

static void deliver(struct mh_policy_pool *p, struct mh_policy_req *r)
{
	char buf[2 * ANSWER_MAX + 64];
	char shown[128];
	struct mh_policy_answer a;
	if (r->action != NULL) {
		if (mh_policy_parse_action(r->action, &a, buf, sizeof(buf)) < 0)
			mh_warn(r->sid, "policy %s: malformed action '%s': %s", p->conf->name,
			        printable(shown, sizeof(shown), r->action, strlen(r->action)),
			        a.why);
	} else {
		snprintf(buf, sizeof(buf), "%s", r->why);
		a.kind = MH_POL_FAILED;
		a.text = a.action = "";
		a.note = NULL;
		a.why = buf;
	}
	mh_policy_done done = r->done;
	void *arg = r->arg;
	req_free(r);
	done(&a, arg);
}

static void on_kick(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct mh_policy_pool *p = w->data;
	(void)loop;
	(void)revents;
	dispatch(p);
	int alive = 1;
	p->alive = &alive;
	while (alive && p->done.head != NULL) {
		struct mh_policy_req *r = p->done.head;
		list_remove(&p->done, r);
		deliver(p, r);
	}
	if (alive)
		p->alive = NULL;
}

struct mh_policy_pool *mh_policy_pool_get(struct ev_loop *loop, const struct mh_child_conf *conf)
{
	struct mh_policy_pool *p;
	for (p = registry; p != NULL; p = p->next)
		if (p->loop == loop && p->conf == conf)
			return p;
	p = mh_xcalloc(1, sizeof(*p));
	p->loop = loop;
	p->conf = conf;
	p->max = conf->policy_connections > 0 ? conf->policy_connections : DEFAULT_CONNECTIONS;
	p->connect_timeout =
	    conf->connect_timeout > 0 ? conf->connect_timeout : DEFAULT_CONNECT_TIMEOUT;
	p->read_timeout = conf->read_timeout > 0 ? conf->read_timeout : DEFAULT_READ_TIMEOUT;
	ev_timer_init(&p->kick, on_kick, 0., 0.);
	p->kick.data = p;
	p->next = registry;
	registry = p;
	return p;
}

static void free_list(struct req_list *l)
{
	while (l->head != NULL) {
		struct mh_policy_req *r = l->head;
		list_remove(l, r);
		req_free(r);
	}
}

void mh_policy_pools_free(void)
{
	while (registry != NULL) {
		struct mh_policy_pool *p = registry;
		registry = p->next;
		if (p->alive != NULL)
			*p->alive = 0;
		ev_timer_stop(p->loop, &p->kick);
		while (p->conns != NULL) {
			struct pconn *c = p->conns;
			if (c->req != NULL)
				req_free(c->req);
			conn_close(c);
		}
		free_list(&p->queue);
		free_list(&p->done);
		free(p);
	}
}

/* Append s, CR and LF as spaces (and '=' as '_' in a name): one line per attribute. */
static void put_attr_part(struct mh_buf *b, const char *s, int is_name)
{
	for (; *s != 0; s++) {
		char c = *s;
		if (c == '\r' || c == '\n')
			c = ' ';
		else if (c == '=' && is_name)
			c = '_';
		mh_buf_append_byte(b, (uint8_t)c);
	}
}

struct mh_policy_req *mh_policy_ask(struct mh_policy_pool *p, const struct mh_policy_attr *attrs,
                                    size_t n, uint64_t sid, mh_policy_done done, void *arg)
{
	assert(p != NULL && done != NULL);
	struct mh_policy_req *r = mh_xcalloc(1, sizeof(*r));
	r->pool = p;
	r->sid = sid;
	r->done = done;
	r->arg = arg;
	r->state = REQ_QUEUED;
	for (size_t i = 0; i < n; i++) {
		put_attr_part(&r->out, attrs[i].name, 1);
		mh_buf_append_byte(&r->out, '=');
		put_attr_part(&r->out, attrs[i].value != NULL ? attrs[i].value : "", 0);
		mh_buf_append_byte(&r->out, '\n');
	}
	mh_buf_append_byte(&r->out, '\n');
	list_append(&p->queue, r);
	dispatch(p);
	return r;
}

void mh_policy_cancel(struct mh_policy_req *r)
{
	if (r == NULL)
		return;
	struct mh_policy_pool *p = r->pool;
	switch (r->state) {
	case REQ_QUEUED:
		list_remove(&p->queue, r);
		break;
	case REQ_DONE:
		list_remove(&p->done, r);
		break;
	case REQ_ACTIVE:
		r->conn->req = NULL;
		/* Not written yet: the connection becomes idle once connected. */
		if (r->conn->state == CONN_CONNECTING)
			mh_buf_reset(&r->conn->out);
		break;
	}
	req_free(r);
}

size_t mh_policy_pool_connections(const struct mh_policy_pool *p)
{
	return p->nconns;
}

size_t mh_policy_pool_opened(const struct mh_policy_pool *p)
{
	return p->opened;
}
