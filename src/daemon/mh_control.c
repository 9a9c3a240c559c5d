/*
 * mh_control - the master's control socket (transport only).
 *
 * SUMMARY
 *	mh_control_new() listens on a socket spec and serves the one-line
 *	protocol of mh_control.h on the caller's libev loop: accept
 *	(non-blocking), read one request line, split it into words, hand
 *	them to the handler, write its answer, close. What the commands
 *	mean is the handler's business (mh_master_ctl.c).
 *
 * LIMITS (all bounded, nothing blocks the loop)
 *	A request line holds at most MH_CONTROL_LINE_MAX bytes before its
 *	"\n" (a trailing "\r" is dropped, so `nc` users are served too).
 *	Words are separated by runs of spaces or tabs. The line must be
 *	complete within MH_CONTROL_TIMEOUT seconds of the accept, and the
 *	answer written within MH_CONTROL_TIMEOUT seconds of the reply;
 *	otherwise the client gets "error\nbad request: ...\n" or is simply
 *	closed. At most MH_CONTROL_CLIENTS connections are served at once
 *	(held ones included); one more is answered "error\nbusy\n" by a
 *	single non-blocking send and closed. accept() failing for lack of
 *	descriptors pauses accepting for a second instead of spinning.
 *
 * OWNERSHIP
 *	A struct mh_control_req belongs to this module. The handler gets
 *	it and must answer it exactly once (mh_control_reply/hold), at once
 *	or later; after that the pointer is dead. mh_control_free() drops
 *	requests still unanswered: their pointers are dead too. The handler
 *	may call mh_control_free() itself.
 *
 * THE UNIX SOCKET FILE
 *	Before listening, an existing file at the path is examined: not a
 *	socket: error; a socket whose connect() is refused (or that vanished):
 *	stale, unlinked; a socket that accepts or whose backlog is full: "in
 *	use by another milterhub". The check uses a non-blocking connect, so
 *	a wedged peer cannot stall start-up. The file's device and inode
 *	are remembered; mh_control_free() unlinks the path only if it still
 *	names that inode (a newer daemon may have replaced it), and
 *	mh_control_forget() never unlinks.
 *
 * FORK
 *	mh_control_forget() stops the watchers on the loop given to
 *	mh_control_new() (the worker's inherited copy: call it after
 *	ev_loop_fork(), or on a loop that will not run again), closes the
 *	descriptors and frees; the master's socket and clients are intact.
 *
 * DIAGNOSTICS
 *	mh_control_new(): one line in err, e.g. "control socket
 *	unix:/run/x.sock is in use by another milterhub", "control socket:
 *	bind unix:/x: Permission denied". At run time: accept failures are
 *	logged (warn); a client's misbehaviour is answered, not logged.
 */
#include "daemon/mh_control.h"

#include "net/mh_sockspec.h"
#include "util/mh_buf.h"
#include "util/mh_err.h"
#include "util/mh_log.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define MH_CONTROL_LINE_MAX 1024 /* bytes before the "\n" */
#define MH_CONTROL_TIMEOUT 5.0 /* seconds: to send the line, to take the answer */
#define MH_CONTROL_CLIENTS 16 /* connections served at once */
#define MH_CONTROL_BACKLOG 32
#define MH_CONTROL_ACCEPT_BURST 64 /* accepts per wake-up: the loop has other work */
#define MH_CONTROL_ACCEPT_PAUSE 1.0 /* seconds without accept() after EMFILE */

enum req_state {
	REQ_READING, /* waiting for the request line; read watcher + deadline */
	REQ_HANDLING, /* the handler has it; no watcher */
	REQ_WRITING, /* answer queued; write watcher + deadline */
	REQ_HELD, /* answer written, kept open until mh_control_free; read watcher (EOF) */
};

struct mh_control_req {
	struct mh_control *c;
	struct mh_control_req *prev, *next; /* c->reqs */
	int fd;
	enum req_state state;
	int hold; /* after the answer: REQ_HELD instead of close */
	ev_io io; /* EV_READ while reading/held, EV_WRITE while writing */
	ev_timer deadline;
	size_t len; /* bytes in line */
	char line[MH_CONTROL_LINE_MAX + 2]; /* the line, its "\n", a NUL */
	struct mh_buf out; /* unsent answer */
};

struct mh_control {
	struct ev_loop *loop;
	int fd; /* listening socket */
	ev_io accept_w;
	ev_timer accept_pause_w; /* after EMFILE & co. */
	mh_control_handler handler;
	void *arg;
	struct mh_sockspec spec;
	int have_file; /* unix: path/dev/ino name the file we created */
	dev_t dev;
	ino_t ino;
	struct mh_control_req *reqs;
	unsigned nreqs;
};

static const char *unix_path(const struct mh_sockspec *s)
{
	return ((const struct sockaddr_un *)&s->addr)->sun_path;
}

/* ------------------------------------------------------------ requests */

static void req_close(struct mh_control_req *r)
{
	struct mh_control *c = r->c;
	ev_io_stop(c->loop, &r->io);
	ev_timer_stop(c->loop, &r->deadline);
	close(r->fd);
	if (r->prev)
		r->prev->next = r->next;
	else
		c->reqs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	assert(c->nreqs > 0);
	c->nreqs--;
	mh_buf_free(&r->out);
	free(r);
}

static void on_req_read(struct ev_loop *loop, ev_io *w, int revents);
static void on_req_write(struct ev_loop *loop, ev_io *w, int revents);

/* The answer is out: close, or keep it open and watch for the client leaving. */
static void req_written(struct mh_control_req *r)
{
	if (!r->hold) {
		req_close(r);
		return;
	}
	struct mh_control *c = r->c;
	r->state = REQ_HELD;
	ev_timer_stop(c->loop, &r->deadline);
	ev_io_stop(c->loop, &r->io);
	ev_io_init(&r->io, on_req_read, r->fd, EV_READ);
	r->io.data = r;
	ev_io_start(c->loop, &r->io);
}

/* Send what the kernel takes. Returns 1 when all is out, 0 to wait, -1 on error. */
static int req_send(struct mh_control_req *r)
{
	while (mh_buf_size(&r->out) > 0) {
		ssize_t n = send(r->fd, mh_buf_head(&r->out), mh_buf_size(&r->out),
		                 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			mh_buf_consume(&r->out, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		return -1;
	}
	return 1;
}

/* Queue "ok"/"error" + body and start sending; may free r. */
static void req_answer(struct mh_control_req *r, int ok, const char *body, int hold)
{
	struct mh_control *c = r->c;
	mh_buf_append_str(&r->out, ok ? "ok\n" : "error\n");
	if (body != NULL && body[0] != '\0') {
		mh_buf_append_str(&r->out, body);
		if (body[strlen(body) - 1] != '\n') /* the protocol: a body ends with "\n" */
			mh_buf_append_byte(&r->out, '\n');
	}
	r->hold = hold;
	r->state = REQ_WRITING;
	ev_io_stop(c->loop, &r->io);
	ev_timer_stop(c->loop, &r->deadline);
	int rc = req_send(r);
	if (rc < 0) {
		req_close(r);
		return;
	}
	if (rc > 0) {
		req_written(r);
		return;
	}
	ev_io_init(&r->io, on_req_write, r->fd, EV_WRITE);
	r->io.data = r;
	ev_io_start(c->loop, &r->io);
	ev_timer_set(&r->deadline, MH_CONTROL_TIMEOUT, 0);
	ev_timer_start(c->loop, &r->deadline);
}

static void bad_request(struct mh_control_req *r, const char *why)
{
	char body[128];
	snprintf(body, sizeof(body), "bad request: %s", why);
	req_answer(r, 0, body, 0);
}

static void on_req_write(struct ev_loop *loop, ev_io *w, int revents)
{
	struct mh_control_req *r = w->data;
	int rc = req_send(r);
	if (rc < 0)
		req_close(r);
	else if (rc > 0)
		req_written(r);
}

static void on_req_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct mh_control_req *r = w->data;
	if (r->state == REQ_READING)
		bad_request(r, "no complete request line within 5 s");
	else
		req_close(r); /* the client does not take its answer */
}

/* Split line[0..len) into words in place; argv has room for len/2 + 2. */
static int split_words(char *line, char **argv)
{
	int argc = 0;
	char *p = line;
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		argv[argc++] = p;
		while (*p != '\0' && *p != ' ' && *p != '\t')
			p++;
		if (*p == '\0')
			break;
		*p++ = '\0';
	}
	argv[argc] = NULL;
	return argc;
}

/* A complete line of n bytes is in r->line: check it, call the handler. */
static void req_dispatch(struct mh_control_req *r, size_t n)
{
	struct mh_control *c = r->c;
	if (n > 0 && r->line[n - 1] == '\r')
		n--;
	r->line[n] = '\0';
	if (memchr(r->line, '\0', n) != NULL) {
		bad_request(r, "NUL byte in the request line");
		return;
	}
	char *argv[MH_CONTROL_LINE_MAX / 2 + 2];
	int argc = split_words(r->line, argv);
	if (argc == 0) {
		bad_request(r, "empty request line");
		return;
	}
	r->state = REQ_HANDLING;
	ev_io_stop(c->loop, &r->io);
	ev_timer_stop(c->loop, &r->deadline);
	/* The handler may answer (and so free r) or free c: touch neither after. */
	c->handler(r, argc, argv, c->arg);
}

static void on_req_read(struct ev_loop *loop, ev_io *w, int revents)
{
	struct mh_control_req *r = w->data;
	if (r->state == REQ_HELD) {
		/* Only the client's leaving matters now; discard anything it sends. */
		char junk[256];
		ssize_t n = recv(r->fd, junk, sizeof(junk), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
			req_close(r);
		return;
	}
	size_t room = MH_CONTROL_LINE_MAX + 1 - r->len; /* the line and its "\n" */
	ssize_t n = recv(r->fd, r->line + r->len, room, MSG_DONTWAIT);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		req_close(r);
		return;
	}
	if (n == 0) {
		if (r->len == 0)
			req_close(r); /* connected and left: nobody to answer */
		else
			bad_request(r, "connection closed before the end of the request line");
		return;
	}
	char *nl = memchr(r->line + r->len, '\n', (size_t)n);
	r->len += (size_t)n;
	if (nl != NULL) {
		req_dispatch(r, (size_t)(nl - r->line)); /* bytes after the line are ignored */
		return;
	}
	if (r->len > MH_CONTROL_LINE_MAX)
		bad_request(r, "request line longer than 1024 bytes");
}

/* ------------------------------------------------------------- accept */

static void busy(int fd)
{
	static const char msg[] = "error\nbusy\n";
	/* A fresh socket's buffer takes 11 bytes; if not, the client loses nothing it asked for. */
	(void)!send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	close(fd);
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
	struct mh_control *c = w->data;
	for (int i = 0; i < MH_CONTROL_ACCEPT_BURST; i++) {
		int fd = accept4(c->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				mh_warn(0, "control socket %s: accept: %s (pausing for %.0f s)",
				        c->spec.text, strerror(errno), MH_CONTROL_ACCEPT_PAUSE);
				ev_io_stop(loop, &c->accept_w);
				ev_timer_set(&c->accept_pause_w, MH_CONTROL_ACCEPT_PAUSE, 0);
				ev_timer_start(loop, &c->accept_pause_w);
				return;
			}
			mh_warn(0, "control socket %s: accept: %s", c->spec.text, strerror(errno));
			return;
		}
		if (c->nreqs >= MH_CONTROL_CLIENTS) {
			busy(fd);
			continue;
		}
		struct mh_control_req *r = mh_xcalloc(1, sizeof(*r));
		r->c = c;
		r->fd = fd;
		r->state = REQ_READING;
		r->next = c->reqs;
		if (c->reqs)
			c->reqs->prev = r;
		c->reqs = r;
		c->nreqs++;
		ev_io_init(&r->io, on_req_read, fd, EV_READ);
		r->io.data = r;
		ev_timer_init(&r->deadline, on_req_deadline, MH_CONTROL_TIMEOUT, 0);
		r->deadline.data = r;
		ev_io_start(loop, &r->io);
		ev_timer_start(loop, &r->deadline);
	}
}

static void on_accept_pause_end(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct mh_control *c = w->data;
	ev_io_start(loop, &c->accept_w);
}

/* ------------------------------------------------------------- socket */

struct mh_control *mh_control_new(struct ev_loop *loop, const char *spec, unsigned mode,
                                  mh_control_handler handler, void *arg, char *err, size_t errlen)
{
	struct mh_sockspec s;
	char why[256];
	if (mh_sockspec_parse(spec, &s, why, sizeof(why)) < 0) {
		mh_errf(err, errlen, "control socket: %s", why);
		return NULL;
	}
	/* A stale socket file is replaced, a live one refused (mh_sockspec_listen). */
	int fd = mh_sockspec_listen(&s, MH_CONTROL_BACKLOG, mode, why, sizeof(why));
	if (fd < 0) {
		mh_errf(err, errlen, "control socket: %s", why);
		return NULL;
	}
	struct mh_control *c = mh_xcalloc(1, sizeof(*c));
	c->loop = loop;
	c->fd = fd;
	c->handler = handler;
	c->arg = arg;
	c->spec = s;
	struct stat st;
	if (s.family == AF_UNIX && lstat(unix_path(&s), &st) == 0) {
		c->have_file = 1;
		c->dev = st.st_dev;
		c->ino = st.st_ino;
	}
	ev_io_init(&c->accept_w, on_accept, fd, EV_READ);
	c->accept_w.data = c;
	ev_timer_init(&c->accept_pause_w, on_accept_pause_end, MH_CONTROL_ACCEPT_PAUSE, 0);
	c->accept_pause_w.data = c;
	ev_io_start(loop, &c->accept_w);
	return c;
}

/* ------------------------------------------------------------- answers */

void mh_control_reply(struct mh_control_req *r, int ok, const char *body)
{
	assert(r->state == REQ_HANDLING);
	req_answer(r, ok, body, 0);
}

void mh_control_hold(struct mh_control_req *r, int ok, const char *body)
{
	assert(r->state == REQ_HANDLING);
	req_answer(r, ok, body, 1);
}

/* ------------------------------------------------------------- the end */

static void release(struct mh_control *c, int last_words)
{
	ev_io_stop(c->loop, &c->accept_w);
	ev_timer_stop(c->loop, &c->accept_pause_w);
	close(c->fd);
	while (c->reqs != NULL) {
		struct mh_control_req *r = c->reqs;
		if (last_words && r->state == REQ_WRITING)
			(void)req_send(r); /* one last non-blocking try */
		req_close(r);
	}
	free(c);
}

void mh_control_forget(struct mh_control *c)
{
	if (c == NULL)
		return;
	release(c, 0);
}

void mh_control_free(struct mh_control *c)
{
	if (c == NULL)
		return;
	struct stat st;
	if (c->have_file && lstat(unix_path(&c->spec), &st) == 0 && st.st_dev == c->dev &&
	    st.st_ino == c->ino)
		unlink(unix_path(&c->spec));
	release(c, 1);
}
