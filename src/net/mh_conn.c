/*
 * mh_conn - one milter connection on a libev loop: framed reads, queued
 * writes, one deadline.
 *
 * SUMMARY
 *	An mh_conn owns a non-blocking stream fd, a frame reader, an output
 *	buffer and three libev watchers (read, write, deadline). Bytes read
 *	are fed to the mh_frame_reader and each complete frame goes to
 *	ops->on_packet. Output is appended by the caller to mh_conn_out()
 *	and sent by mh_conn_flush(): one send() at once, and whatever the
 *	kernel does not take waits for the write watcher.
 *
 * CALLBACKS AND RE-ENTRANCY
 *	Callbacks are made only from libev watcher callbacks, never from
 *	inside an mh_conn_* call the owner makes. A write error found by
 *	mh_conn_flush() is therefore reported later, from the loop, as
 *	on_close(MH_CONN_IOERR). Any mh_conn_* call, mh_conn_close()
 *	included, is allowed from inside on_packet/on_connected: a conn
 *	closed there gets no further callback, its remaining buffered bytes
 *	are dropped, and its memory is released once the outermost callback
 *	returns (in_callback counts the depth; p->data stays valid until
 *	then). Callbacks must not run the loop recursively.
 *
 *	on_close reasons: EOF at a frame boundary = MH_CONN_EOF; EOF inside
 *	a frame (last_error 0) or a read/write error (last_error errno) =
 *	MH_CONN_IOERR; malformed frame = MH_CONN_PROTOCOL (last_error the
 *	negative mh_codec_err); deadline = MH_CONN_TIMEOUT (ETIMEDOUT);
 *	connect refused/failed = MH_CONN_CONNECT (errno), and a deadline
 *	that expires while still connecting is MH_CONN_CONNECT with
 *	ETIMEDOUT (the peer was never reached).
 *
 * PAUSE
 *	mh_conn_pause() stops delivering, not reading: the read watcher stays
 *	started (stopping and restarting it costs an epoll_ctl per command
 *	of the MTA, which pauses until the hub answers: design §7). Bytes of
 *	the current read that follow the frame during which it was paused,
 *	and bytes that arrive while paused, are kept in c->pending and
 *	delivered, in order, after mh_conn_resume() (from the loop). Once
 *	c->pending holds MH_CONN_PAUSE_MAX bytes the watcher is stopped, so
 *	a peer that keeps writing meets back-pressure in the kernel. EOF or
 *	a read error seen while paused stops the watcher too and is reported
 *	only after resume, once the frames before it have been delivered.
 *
 * MEMORY
 *	Reads go through a 64 KiB stack buffer, so an idle conn holds only
 *	the struct, plus the reader's and the output buffer's storage; both
 *	are released when idle if they grew above MH_CONN_KEEP bytes (a body
 *	chunk must not pin 64 KiB per conn: design §7, 10,000 sessions x 3
 *	conns in < 256 MiB). c->pending exists only while paused with bytes
 *	waiting (at most MH_CONN_PAUSE_MAX plus one read) and is freed once
 *	delivered.
 *
 * SYSCALLS
 *	The socket family is looked up once (TCP_NODELAY only on TCP); a
 *	connect() that completed at once (always so for unix sockets) is
 *	reported from the loop without waiting for writability or asking
 *	SO_ERROR. One read() per readiness; the next read happens only when
 *	epoll says there is more.
 *
 * SIGNALS
 *	Sockets are written with send(MSG_NOSIGNAL); a non-socket fd falls
 *	back to write(), where the process must ignore SIGPIPE itself.
 */
#include "net/mh_conn.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#define MH_CONN_READ_CHUNK 65536
#define MH_CONN_KEEP 1024
#define MH_CONN_PAUSE_MAX 65536 /* bytes read ahead while paused */

struct mh_conn {
	struct ev_loop *loop;
	ev_io rio; /* readable; stopped while connecting, or paused with a full pending */
	ev_io wio; /* writable; active while output waits or connecting */
	ev_timer timer; /* the single deadline */
	const struct mh_conn_ops *ops;
	void *arg;
	struct mh_frame_reader reader;
	struct mh_buf out; /* frames waiting for the kernel */
	struct mh_buf pending; /* read but not yet fed (paused mid-read) */
	int fd;
	int family; /* AF_UNIX, AF_INET, ... (0 when not a socket) */
	int last_error;
	int rd_error; /* read error (errno) seen while paused */
	unsigned in_callback; /* depth of callbacks into the owner */
	unsigned closed : 1; /* no more callbacks; free at depth 0 */
	unsigned paused : 1;
	unsigned connecting : 1;
	unsigned not_socket : 1; /* send() gave ENOTSOCK: use write() */
	unsigned failing : 1; /* failure waiting to be reported */
	unsigned at_once : 1; /* connect() completed in the call */
	unsigned rd_end : 1; /* EOF or read error seen while paused: report after resume */
	enum mh_conn_why fail_why;
};

const char *mh_conn_why_str(enum mh_conn_why why)
{
	switch (why) {
	case MH_CONN_EOF:
		return "closed by peer";
	case MH_CONN_IOERR:
		return "i/o error";
	case MH_CONN_TIMEOUT:
		return "timeout";
	case MH_CONN_PROTOCOL:
		return "protocol error";
	case MH_CONN_CONNECT:
		return "connect failed";
	}
	return "?";
}

static void conn_free(struct mh_conn *c)
{
	mh_frame_reader_free(&c->reader);
	mh_buf_free(&c->out);
	mh_buf_free(&c->pending);
	free(c);
}

/* Stop everything and release the fd; the struct lives until depth 0. */
static void conn_shutdown(struct mh_conn *c)
{
	c->closed = 1;
	ev_io_stop(c->loop, &c->rio);
	ev_io_stop(c->loop, &c->wio);
	ev_timer_stop(c->loop, &c->timer);
	ev_clear_pending(c->loop, &c->rio);
	ev_clear_pending(c->loop, &c->wio);
	ev_clear_pending(c->loop, &c->timer);
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
}

static void enter(struct mh_conn *c)
{
	c->in_callback++;
}

/* Returns 1 when the conn is gone (freed or still to be freed up-stack). */
static int leave(struct mh_conn *c)
{
	c->in_callback--;
	if (!c->closed)
		return 0;
	if (c->in_callback == 0)
		conn_free(c);
	return 1;
}

/* Report a failure; only from inside a watcher callback (depth > 0). */
static void conn_fail(struct mh_conn *c, enum mh_conn_why why)
{
	if (c->closed)
		return;
	conn_shutdown(c);
	c->ops->on_close(c, why, c->arg);
}

/* Report a failure found outside a watcher callback: from the loop. */
static void conn_fail_later(struct mh_conn *c, enum mh_conn_why why, int err)
{
	if (c->closed || c->failing)
		return;
	c->failing = 1;
	c->fail_why = why;
	c->last_error = err;
	ev_io_stop(c->loop, &c->rio);
	ev_feed_event(c->loop, &c->wio, EV_CUSTOM);
}

static int stopped(const struct mh_conn *c)
{
	return c->closed || c->paused || c->failing;
}

/* Release storage that an idle conn need not keep. */
static void conn_trim(struct mh_conn *c)
{
	if (c->reader.buf_cap > MH_CONN_KEEP && mh_frame_reader_idle(&c->reader)) {
		size_t max = c->reader.max_payload;
		mh_frame_reader_free(&c->reader);
		mh_frame_reader_init(&c->reader, max);
	}
	if (mh_buf_size(&c->out) == 0 && c->out.cap > MH_CONN_KEEP)
		mh_buf_free(&c->out);
}

/* Feed bytes to the reader, one on_packet per frame; returns bytes used. */
static size_t conn_deliver(struct mh_conn *c, const uint8_t *data, size_t n)
{
	size_t off = 0;
	while (off < n && !stopped(c)) {
		size_t used = 0;
		struct mh_packet p;
		int rc = mh_frame_feed(&c->reader, data + off, n - off, &used, &p);
		off += used;
		if (rc == 1) {
			/* The watcher callback holds a depth level: a close in
			 * here only marks the conn; the loop test sees it. */
			c->ops->on_packet(c, &p, c->arg);
			continue;
		}
		if (rc < 0) {
			c->last_error = rc;
			conn_fail(c, MH_CONN_PROTOCOL);
		}
		break;
	}
	return off;
}

/* Write as much output as the kernel takes. Returns -1 with errno on error. */
static int conn_write(struct mh_conn *c)
{
	while (mh_buf_size(&c->out) > 0) {
		ssize_t n;
		if (!c->not_socket)
			n = send(c->fd, mh_buf_head(&c->out), mh_buf_size(&c->out), MSG_NOSIGNAL);
		else
			n = write(c->fd, mh_buf_head(&c->out), mh_buf_size(&c->out));
		if (n > 0) {
			mh_buf_consume(&c->out, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n < 0 && errno == ENOTSOCK && !c->not_socket) {
			c->not_socket = 1;
			continue;
		}
		if (n == 0)
			errno = EIO;
		return -1;
	}
	return 0;
}

/* EOF or a read error: report it (the reader tells EOF from a cut frame). */
static void conn_read_end(struct mh_conn *c, int err)
{
	c->last_error = err;
	if (err != 0)
		conn_fail(c, MH_CONN_IOERR);
	else
		conn_fail(c, mh_frame_reader_idle(&c->reader) ? MH_CONN_EOF : MH_CONN_IOERR);
}

/* Paused: keep what arrives, up to MH_CONN_PAUSE_MAX, then stop reading. */
static void read_while_paused(struct mh_conn *c)
{
	size_t have = mh_buf_size(&c->pending);
	uint8_t buf[MH_CONN_READ_CHUNK];
	ssize_t n;

	if (have >= MH_CONN_PAUSE_MAX) {
		ev_io_stop(c->loop, &c->rio);
		return;
	}
	size_t room = MH_CONN_PAUSE_MAX - have;
	do
		n = read(c->fd, buf, room < sizeof(buf) ? room : sizeof(buf));
	while (n < 0 && errno == EINTR);
	if (n > 0) {
		mh_buf_append(&c->pending, buf, (size_t)n);
		have += (size_t)n;
	} else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
		c->rd_end = 1;
		c->rd_error = n == 0 ? 0 : errno;
	}
	if (c->rd_end || have >= MH_CONN_PAUSE_MAX)
		ev_io_stop(c->loop, &c->rio);
}

static void on_readable(struct ev_loop *loop, ev_io *w, int revents)
{
	struct mh_conn *c = w->data;
	enter(c);
	if (mh_buf_size(&c->pending) > 0 && !stopped(c)) {
		size_t used = conn_deliver(c, mh_buf_head(&c->pending), mh_buf_size(&c->pending));
		if (c->closed)
			goto out;
		mh_buf_consume(&c->pending, used);
		if (mh_buf_size(&c->pending) > 0) {
			if (c->paused && (revents & EV_READ) && !c->rd_end && ev_is_active(&c->rio))
				read_while_paused(c);
			goto out; /* paused again */
		}
		mh_buf_free(&c->pending);
	}
	if (c->closed || c->failing)
		goto out;
	if (c->paused) {
		if ((revents & EV_READ) && !c->rd_end && ev_is_active(&c->rio))
			read_while_paused(c);
		goto out;
	}
	if (c->rd_end) {
		/* EOF / error seen while paused, after the frames before it. */
		conn_read_end(c, c->rd_error);
		goto out;
	}
	if (!(revents & EV_READ))
		goto out;

	uint8_t buf[MH_CONN_READ_CHUNK];
	ssize_t n;
	do
		n = read(c->fd, buf, sizeof(buf));
	while (n < 0 && errno == EINTR);
	if (n > 0) {
		size_t used = conn_deliver(c, buf, (size_t)n);
		if (!c->closed && !c->failing && used < (size_t)n)
			mh_buf_append(&c->pending, buf + used, (size_t)n - used);
	} else if (n == 0) {
		conn_read_end(c, 0);
	} else if (errno != EAGAIN && errno != EWOULDBLOCK) {
		conn_read_end(c, errno);
	}
	if (!c->closed)
		conn_trim(c);
out:
	leave(c);
}

static void connect_done(struct mh_conn *c)
{
	int err = 0;
	socklen_t len = sizeof(err);
	if (c->at_once)
		; /* connect() returned 0: nothing to ask the kernel */
	else if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err == 0 && !c->at_once) {
		/* A unix connect that "succeeded" may still be refused later;
		 * a TCP one that has not finished reports nothing yet. */
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		if (getpeername(c->fd, (struct sockaddr *)&ss, &sl) < 0 && errno == ENOTCONN)
			return; /* spurious wake-up; wait for the next one */
	}
	if (err != 0) {
		c->last_error = err;
		conn_fail(c, MH_CONN_CONNECT);
		return;
	}
	c->connecting = 0;
	c->at_once = 0;
	ev_timer_stop(c->loop, &c->timer); /* the deadline bounded the connect */
	ev_io_stop(c->loop, &c->wio);
	ev_io_start(c->loop, &c->rio); /* also when paused: reads are kept in pending */
	if (c->ops->on_connected != NULL) {
		c->ops->on_connected(c, c->arg);
		if (c->closed)
			return;
	}
	mh_conn_flush(c); /* output queued while connecting */
}

static void on_writable(struct ev_loop *loop, ev_io *w, int revents)
{
	struct mh_conn *c = w->data;
	enter(c);
	if (c->failing) {
		c->failing = 0;
		conn_fail(c, c->fail_why);
	} else if (c->connecting) {
		connect_done(c);
	} else if (conn_write(c) < 0) {
		c->last_error = errno;
		conn_fail(c, MH_CONN_IOERR);
	} else if (mh_buf_size(&c->out) == 0) {
		ev_io_stop(loop, w);
		conn_trim(c);
	}
	leave(c);
}

static void on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct mh_conn *c = w->data;
	enter(c);
	c->last_error = ETIMEDOUT;
	conn_fail(c, c->connecting ? MH_CONN_CONNECT : MH_CONN_TIMEOUT);
	leave(c);
}

static struct mh_conn *conn_alloc(struct ev_loop *loop, int fd, size_t max_payload,
                                  const struct mh_conn_ops *ops, void *arg)
{
	struct mh_conn *c = mh_xcalloc(1, sizeof(*c));
	c->loop = loop;
	c->fd = fd;
	c->ops = ops;
	c->arg = arg;
	mh_frame_reader_init(&c->reader, max_payload);
	ev_io_init(&c->rio, on_readable, fd, EV_READ);
	ev_io_init(&c->wio, on_writable, fd, EV_WRITE);
	ev_timer_init(&c->timer, on_deadline, 0., 0.);
	c->rio.data = c->wio.data = c->timer.data = c;
	return c;
}

struct mh_conn *mh_conn_new(struct ev_loop *loop, int fd, size_t max_payload,
                            const struct mh_conn_ops *ops, void *arg)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0 && !(fl & O_NONBLOCK))
		(void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	struct mh_conn *c = conn_alloc(loop, fd, max_payload, ops, arg);
	socklen_t len = sizeof(c->family);
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &c->family, &len) < 0)
		c->family = 0;
	if (c->family == AF_INET || c->family == AF_INET6) {
		int one = 1; /* design §7: every TCP socket */
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	ev_io_start(loop, &c->rio);
	return c;
}

struct mh_conn *mh_conn_connect(struct ev_loop *loop, const struct mh_sockspec *s, double timeout,
                                size_t max_payload, const struct mh_conn_ops *ops, void *arg,
                                char *err, size_t errlen)
{
	int done = 0;
	int fd = mh_sockspec_connect_ex(s, &done, err, errlen);
	if (fd < 0)
		return NULL;
	struct mh_conn *c = conn_alloc(loop, fd, max_payload, ops, arg);
	c->family = s->family;
	c->connecting = 1;
	c->at_once = done != 0;
	/* Even a connect that completed at once is reported from the loop:
	 * fed to the write watcher, without waiting for writability. */
	if (c->at_once)
		ev_feed_event(loop, &c->wio, EV_CUSTOM);
	else
		ev_io_start(loop, &c->wio);
	if (timeout > 0)
		mh_conn_set_deadline(c, timeout);
	return c;
}

struct mh_buf *mh_conn_out(struct mh_conn *c)
{
	return &c->out;
}

void mh_conn_flush(struct mh_conn *c)
{
	if (c->closed || c->failing || c->connecting || ev_is_active(&c->wio))
		return;
	if (mh_buf_size(&c->out) == 0)
		return;
	if (conn_write(c) < 0) {
		conn_fail_later(c, MH_CONN_IOERR, errno);
		return;
	}
	if (mh_buf_size(&c->out) > 0)
		ev_io_start(c->loop, &c->wio);
	else
		conn_trim(c);
}

void mh_conn_set_deadline(struct mh_conn *c, double seconds)
{
	if (c->closed)
		return;
	ev_timer_stop(c->loop, &c->timer);
	if (seconds > 0) {
		ev_timer_set(&c->timer, seconds, 0.);
		ev_timer_start(c->loop, &c->timer);
	}
}

void mh_conn_pause(struct mh_conn *c)
{
	if (c->closed || c->paused)
		return;
	c->paused = 1; /* soft: the watcher stays (see PAUSE above) */
}

void mh_conn_resume(struct mh_conn *c)
{
	if (c->closed || !c->paused)
		return;
	c->paused = 0;
	if (c->connecting || c->failing)
		return;
	if (!c->rd_end && !ev_is_active(&c->rio))
		ev_io_start(c->loop, &c->rio);
	/* Bytes kept while paused go first, from the loop (not from here). */
	if (mh_buf_size(&c->pending) > 0 || c->rd_end)
		ev_feed_event(c->loop, &c->rio, EV_CUSTOM);
}

void mh_conn_close(struct mh_conn *c, int flush_first)
{
	if (c->closed)
		return;
	if (flush_first && !c->connecting && !c->failing)
		(void)conn_write(c);
	conn_shutdown(c);
	if (c->in_callback == 0)
		conn_free(c);
}

void mh_conn_set_arg(struct mh_conn *c, void *arg)
{
	c->arg = arg;
}

int mh_conn_fd(const struct mh_conn *c)
{
	return c->fd;
}

int mh_conn_last_error(const struct mh_conn *c)
{
	return c->last_error;
}

int mh_conn_is_tcp(const struct mh_conn *c)
{
	return c->family == AF_INET || c->family == AF_INET6;
}
