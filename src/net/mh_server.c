/*
 * mh_server - the transport of the master's small servers: one request
 * per connection on a libev loop (mh_control, mh_http).
 *
 * SUMMARY
 *	mh_server_new() listens on a socket spec and accepts connections
 *	(non-blocking). Each client's bytes are collected in a buffer of
 *	conf.max_request bytes and offered to ops->on_data after every
 *	read until the protocol answers (mh_server_reply) or takes the
 *	request (mh_server_take, then mh_server_reply later). The answer,
 *	composed in mh_server_out(), is written without blocking; then the
 *	connection is closed, held or lingers (enum mh_server_after).
 *
 * A CONNECTION'S LIFE
 *	READING   read watcher; deadline conf.read_timeout from the accept.
 *	          EOF, the deadline or a full buffer: ops->on_incomplete.
 *	HANDLING  taken by the protocol (or a busy answer being composed);
 *	          nothing is watched.
 *	WRITING   write watcher when the kernel does not take it all at
 *	          once; deadline conf.write_timeout from the reply, else
 *	          the connection is closed.
 *	HELD      answer out; input read and dropped until EOF; no deadline.
 *	LINGER    answer out and our side shut down; input read and dropped
 *	          until EOF, for at most min(conf.linger, read_timeout) s
 *	          and conf.drain_max bytes. Closing with unread input would
 *	          make the kernel send a reset, and a client may lose the
 *	          answer to it.
 *
 * LIMITS
 *	conf.max_clients connections are served at once (held and
 *	lingering ones included). One more gets ops->on_busy (up to
 *	conf.max_busy of those at once, beyond that it is closed at once)
 *	or, without on_busy, the bytes of ops->busy by a single
 *	non-blocking send and is closed. accept() failing for lack of
 *	descriptors pauses accepting for ACCEPT_PAUSE s instead of
 *	spinning; ACCEPT_BURST accepts per wake-up leave the loop to its
 *	other work.
 *
 * OWNERSHIP AND FORK
 *	Clients belong to the server. Callbacks may answer or close the
 *	client they are given; on_data (via the protocol's handler) may
 *	even free the server, which is why the server touches nothing
 *	after on_data returns MH_SERVER_DONE. mh_server_forget() stops the
 *	watchers on the loop given to mh_server_new() (call it after
 *	ev_loop_fork(), or on a loop that will not run again), closes the
 *	descriptors and frees; it never unlinks. mh_server_free() unlinks
 *	a unix socket file only if the path still names the inode we
 *	created (a newer daemon may have replaced it). Both free the
 *	protocol's data (mh_server_data) with the rest.
 *
 * DIAGNOSTICS
 *	mh_server_new(): one line in err, "<name>: <reason>" ("control
 *	socket: bind unix:/x: Permission denied"). At run time: accept
 *	failures are logged (warn) as "<name> <spec>: accept: ..."; a
 *	client's misbehaviour is the protocol's to answer, not logged.
 */
#include "net/mh_server.h"

#include "net/mh_sockspec.h"
#include "util/mh_err.h"
#include "util/mh_log.h"

#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define ACCEPT_BURST 64 /* accepts per wake-up: the loop has other work */
#define ACCEPT_PAUSE 1.0 /* seconds without accept() after EMFILE & co. */
#define DRAIN_READS 16 /* reads per wake-up while dropping input */

enum client_state { CL_READING, CL_HANDLING, CL_WRITING, CL_HELD, CL_LINGER };

struct mh_server_client {
	struct mh_server *s;
	struct mh_server_client *prev, *next; /* s->clients */
	int fd;
	enum client_state state;
	enum mh_server_after after; /* once WRITING is done */
	int busy; /* beyond max_clients: counted in s->nbusy */
	ev_io io; /* EV_READ while reading/held/lingering, EV_WRITE while writing */
	ev_timer deadline;
	char *in; /* conf.max_request + 1 bytes; NULL for busy clients */
	size_t inlen;
	size_t drained; /* HELD/LINGER: bytes dropped so far */
	struct mh_buf out; /* unsent answer */
	max_align_t data[]; /* conf.client_size bytes for the protocol */
};

struct mh_server {
	struct ev_loop *loop;
	int fd; /* listening socket */
	ev_io accept_w;
	ev_timer accept_pause_w;
	struct mh_server_conf conf;
	const struct mh_server_ops *ops;
	struct mh_sockspec spec;
	int have_file; /* unix: dev/ino name the file we created */
	dev_t dev;
	ino_t ino;
	struct mh_server_client *clients;
	unsigned nclients;
	unsigned nbusy;
	max_align_t data[]; /* conf.data_size bytes for the protocol: the callbacks' arg */
};

static const char *unix_path(const struct mh_sockspec *s)
{
	return ((const struct sockaddr_un *)&s->addr)->sun_path;
}

/* ------------------------------------------------------------ clients */

void mh_server_close(struct mh_server_client *cl)
{
	struct mh_server *s = cl->s;
	ev_io_stop(s->loop, &cl->io);
	ev_timer_stop(s->loop, &cl->deadline);
	close(cl->fd);
	if (cl->prev)
		cl->prev->next = cl->next;
	else
		s->clients = cl->next;
	if (cl->next)
		cl->next->prev = cl->prev;
	if (cl->busy) {
		assert(s->nbusy > 0);
		s->nbusy--;
	} else {
		assert(s->nclients > 0);
		s->nclients--;
	}
	mh_buf_free(&cl->out);
	free(cl->in);
	free(cl);
}

/* Watch cl->fd for events (0: not at all). */
static void client_io(struct mh_server_client *cl, int events)
{
	ev_io_stop(cl->s->loop, &cl->io);
	if (events) {
		ev_io_set(&cl->io, cl->fd, events);
		ev_io_start(cl->s->loop, &cl->io);
	}
}

/* (Re)arm the deadline timeout seconds from now; < 0: none. */
static void client_deadline(struct mh_server_client *cl, double timeout)
{
	ev_timer_stop(cl->s->loop, &cl->deadline);
	if (timeout >= 0) {
		ev_timer_set(&cl->deadline, timeout, 0);
		ev_timer_start(cl->s->loop, &cl->deadline);
	}
}

/* Send what the kernel takes. Returns 1 when all is out, 0 to wait, -1 on error. */
static int client_send(struct mh_server_client *cl)
{
	while (mh_buf_size(&cl->out) > 0) {
		ssize_t n = send(cl->fd, mh_buf_head(&cl->out), mh_buf_size(&cl->out),
		                 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			mh_buf_consume(&cl->out, (size_t)n);
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

/* WRITING: send more; when all is out, close, hold or linger. */
static void client_flush(struct mh_server_client *cl)
{
	int rc = client_send(cl);
	if (rc < 0) {
		mh_server_close(cl);
		return;
	}
	if (rc == 0) {
		if (!ev_is_active(&cl->io))
			client_io(cl, EV_WRITE); /* the write deadline keeps running */
		return;
	}
	const struct mh_server_conf *conf = &cl->s->conf;
	switch (cl->after) {
	case MH_SERVER_CLOSE:
		mh_server_close(cl);
		return;
	case MH_SERVER_HOLD:
		cl->state = CL_HELD;
		client_deadline(cl, -1);
		break;
	case MH_SERVER_LINGER:
		shutdown(cl->fd, SHUT_WR);
		cl->state = CL_LINGER;
		client_deadline(cl, conf->read_timeout < conf->linger ? conf->read_timeout
		                                                      : conf->linger);
		break;
	}
	client_io(cl, EV_READ);
}

/* HELD/LINGER: read and drop input; close at EOF (or when a lingerer sends too much). */
static void client_drain(struct mh_server_client *cl)
{
	char sink[4096];
	/* A few reads per wake-up, so a client that keeps sending cannot hold the loop. */
	for (int i = 0; i < DRAIN_READS; i++) {
		ssize_t n = recv(cl->fd, sink, sizeof(sink), MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
			return; /* level-triggered: called again when there is more */
		if (n <= 0) {
			mh_server_close(cl); /* EOF or error: done */
			return;
		}
		cl->drained += (size_t)n;
		if (cl->state == CL_LINGER && cl->drained > cl->s->conf.drain_max) {
			mh_server_close(cl); /* it is not going to stop */
			return;
		}
	}
}

/* The request is not coming (why): the protocol answers or closes. */
static void client_incomplete(struct mh_server_client *cl, enum mh_server_stall why)
{
	struct mh_server *s = cl->s;
	if (s->ops->on_incomplete == NULL) {
		mh_server_close(cl);
		return;
	}
	s->ops->on_incomplete(cl, why, cl->in, cl->inlen, s->data);
}

/* READING: take what there is, offer it to the protocol. */
static void client_read(struct mh_server_client *cl)
{
	struct mh_server *s = cl->s;
	for (;;) {
		size_t room = s->conf.max_request - cl->inlen;
		ssize_t n = recv(cl->fd, cl->in + cl->inlen, room, MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				mh_server_close(cl);
			return;
		}
		if (n == 0) {
			client_incomplete(cl, MH_SERVER_EOF);
			return;
		}
		size_t seen = cl->inlen;
		cl->inlen += (size_t)n;
		/* On DONE the protocol's handler may have freed cl, even s: touch neither. */
		if (s->ops->on_data(cl, cl->in, cl->inlen, seen, s->data) == MH_SERVER_DONE)
			return;
		if (cl->inlen >= s->conf.max_request) {
			client_incomplete(cl, MH_SERVER_FULL);
			return;
		}
	}
}

static void on_client_io(struct ev_loop *loop, ev_io *w, int revents)
{
	struct mh_server_client *cl = w->data;
	switch (cl->state) {
	case CL_READING:
		client_read(cl);
		break;
	case CL_WRITING:
		client_flush(cl);
		break;
	case CL_HELD:
	case CL_LINGER:
		client_drain(cl);
		break;
	case CL_HANDLING:
		break;
	}
}

static void on_client_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct mh_server_client *cl = w->data;
	if (cl->state == CL_READING)
		client_incomplete(cl, MH_SERVER_TIMEOUT);
	else
		mh_server_close(cl); /* writing or lingering too long */
}

void *mh_server_client_data(struct mh_server_client *cl)
{
	return cl->data;
}

void mh_server_take(struct mh_server_client *cl)
{
	assert(cl->state == CL_READING);
	cl->state = CL_HANDLING;
	client_io(cl, 0);
	client_deadline(cl, -1);
}

struct mh_buf *mh_server_out(struct mh_server_client *cl)
{
	return &cl->out;
}

void mh_server_reply(struct mh_server_client *cl, enum mh_server_after after)
{
	assert(cl->state == CL_READING || cl->state == CL_HANDLING);
	cl->after = after;
	cl->state = CL_WRITING;
	client_io(cl, 0);
	client_deadline(cl, cl->s->conf.write_timeout);
	client_flush(cl);
}

/* ------------------------------------------------------------- accept */

static struct mh_server_client *client_new(struct mh_server *s, int fd, int busy)
{
	struct mh_server_client *cl = mh_xcalloc(1, sizeof(*cl) + s->conf.client_size);
	cl->s = s;
	cl->fd = fd;
	cl->busy = busy;
	cl->next = s->clients;
	if (s->clients)
		s->clients->prev = cl;
	s->clients = cl;
	if (busy)
		s->nbusy++;
	else
		s->nclients++;
	ev_io_init(&cl->io, on_client_io, fd, EV_READ);
	cl->io.data = cl;
	ev_timer_init(&cl->deadline, on_client_deadline, s->conf.read_timeout, 0);
	cl->deadline.data = cl;
	return cl;
}

/* A connection beyond max_clients. */
static void client_busy(struct mh_server *s, int fd)
{
	if (s->ops->on_busy == NULL) {
		/* A fresh socket's buffer takes a short text; if not, the client loses nothing it
		 * asked for. */
		(void)!send(fd, s->ops->busy, strlen(s->ops->busy), MSG_NOSIGNAL | MSG_DONTWAIT);
		close(fd);
	} else if (s->nbusy < s->conf.max_busy) {
		struct mh_server_client *cl = client_new(s, fd, 1);
		cl->state = CL_HANDLING;
		s->ops->on_busy(cl, s->data);
	} else {
		close(fd);
	}
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
	struct mh_server *s = w->data;
	for (int i = 0; i < ACCEPT_BURST; i++) {
		int fd = accept4(s->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				mh_warn(0, "%s %s: accept: %s (pausing for %.0f s)", s->conf.name,
				        s->spec.text, strerror(errno), ACCEPT_PAUSE);
				ev_io_stop(loop, &s->accept_w);
				ev_timer_set(&s->accept_pause_w, ACCEPT_PAUSE, 0);
				ev_timer_start(loop, &s->accept_pause_w);
				return;
			}
			mh_warn(0, "%s %s: accept: %s", s->conf.name, s->spec.text,
			        strerror(errno));
			return;
		}
		if (s->conf.nodelay)
			mh_socket_nodelay(fd);
		if (s->nclients >= s->conf.max_clients) {
			client_busy(s, fd);
			continue;
		}
		struct mh_server_client *cl = client_new(s, fd, 0);
		cl->state = CL_READING;
		cl->in = mh_xmalloc(s->conf.max_request + 1);
		client_io(cl, EV_READ);
		client_deadline(cl, s->conf.read_timeout);
	}
}

static void on_accept_pause_end(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct mh_server *s = w->data;
	ev_io_start(loop, &s->accept_w);
}

/* ------------------------------------------------------------- socket */

struct mh_server *mh_server_new(struct ev_loop *loop, const char *spec, unsigned mode,
                                const struct mh_server_conf *conf, const struct mh_server_ops *ops,
                                char *err, size_t errlen)
{
	assert(conf->max_request > 0 && (ops->on_busy != NULL || ops->busy != NULL));
	struct mh_sockspec ss;
	char why[256];
	if (mh_sockspec_parse(spec, &ss, why, sizeof(why)) < 0) {
		mh_errf(err, errlen, "%s: %s", conf->name, why);
		return NULL;
	}
	int fd = mh_sockspec_listen(&ss, conf->backlog, mode, why, sizeof(why));
	if (fd < 0) {
		mh_errf(err, errlen, "%s: %s", conf->name, why);
		return NULL;
	}
	struct mh_server *s = mh_xcalloc(1, sizeof(*s) + conf->data_size);
	s->loop = loop;
	s->fd = fd;
	s->conf = *conf;
	s->ops = ops;
	s->spec = ss;
	struct stat st;
	if (ss.family == AF_UNIX && lstat(unix_path(&ss), &st) == 0) {
		s->have_file = 1;
		s->dev = st.st_dev;
		s->ino = st.st_ino;
	}
	ev_io_init(&s->accept_w, on_accept, fd, EV_READ);
	s->accept_w.data = s;
	ev_timer_init(&s->accept_pause_w, on_accept_pause_end, ACCEPT_PAUSE, 0);
	s->accept_pause_w.data = s;
	ev_io_start(loop, &s->accept_w);
	return s;
}

void *mh_server_data(struct mh_server *s)
{
	return s->data;
}

int mh_server_port(const struct mh_server *s)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	if (getsockname(s->fd, (struct sockaddr *)&ss, &len) < 0)
		return -1;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return -1;
}

void mh_server_set_timeouts(struct mh_server *s, double read_s, double write_s)
{
	s->conf.read_timeout = read_s;
	s->conf.write_timeout = write_s;
}

/* ------------------------------------------------------------- the end */

static void release(struct mh_server *s, int last_words)
{
	ev_io_stop(s->loop, &s->accept_w);
	ev_timer_stop(s->loop, &s->accept_pause_w);
	close(s->fd);
	while (s->clients != NULL) {
		struct mh_server_client *cl = s->clients;
		if (last_words && cl->state == CL_WRITING)
			(void)client_send(cl); /* one last non-blocking try */
		mh_server_close(cl);
	}
	free(s);
}

void mh_server_forget(struct mh_server *s)
{
	if (s == NULL)
		return;
	release(s, 0);
}

void mh_server_free(struct mh_server *s)
{
	if (s == NULL)
		return;
	struct stat st;
	if (s->have_file && lstat(unix_path(&s->spec), &st) == 0 && st.st_dev == s->dev &&
	    st.st_ino == s->ino)
		unlink(unix_path(&s->spec));
	release(s, 1);
}
