/*
 * mh_http - a tiny HTTP/1.1 server for the master's statistics endpoint.
 *
 * SUMMARY
 *	mh_http_new() listens on a socket spec and serves one request per
 *	connection on the caller's libev loop: accept (non-blocking), read
 *	the request head, check it, hand path and query to the handler,
 *	write its answer, close. Routes are the handler's business (the
 *	master's /metrics, /stats and /).
 *
 * A CONNECTION'S LIFE
 *	READING   until the blank line ending the head; at most
 *	          MH_HTTP_HEAD_MAX bytes within the read timeout (5 s),
 *	          else it is simply closed (timeout, EOF) or answered
 *	          414/431. A malformed head: 400; a method other than GET
 *	          and HEAD: 405; a version other than HTTP/1.x: 505.
 *	HANDLING  the handler has it; nothing is watched. It ends with
 *	          mh_http_respond(), at once or later.
 *	WRITING   the answer goes out without blocking, all of it within
 *	          the write timeout (10 s), or the connection is closed.
 *	LINGER    our side is shut down; whatever the client still sends
 *	          (the rest of an oversize head, a body) is read and
 *	          dropped until it closes, for at most MH_HTTP_LINGER s
 *	          and MH_HTTP_DRAIN_MAX bytes.
 *	          Closing with unread input would make the kernel send a
 *	          reset, and a client may lose the answer to that reset.
 *	Bytes after the head (a body, a pipelined request) are ignored:
 *	every answer says "Connection: close". The Host header is not
 *	required (lenient to scripts; routes do not depend on it).
 *
 * LIMITS
 *	MH_HTTP_CLIENTS connections are served at once. One more is
 *	answered "503" (without reading its request) and lingers like the
 *	others; up to MH_HTTP_CLIENTS of those, beyond that a new
 *	connection is closed at once. accept() failing for lack of
 *	descriptors pauses accepting for a second instead of spinning.
 *
 * OWNERSHIP AND FORK
 *	As mh_control: requests belong to this module; the handler answers
 *	each exactly once; mh_http_free() drops unanswered ones. The handler
 *	may call mh_http_free() itself. mh_http_forget() stops the watchers
 *	on the loop given to mh_http_new() (call it after ev_loop_fork(), or
 *	on a loop that will not run again), closes the descriptors and
 *	frees; it never unlinks. mh_http_free() unlinks a unix socket file
 *	only if the path still names the inode we created.
 *
 * DIAGNOSTICS
 *	mh_http_new(): one line in err ("http socket: bind inet:...: Address
 *	already in use"). At run time: accept failures are logged (warn); a
 *	client's misbehaviour is answered, not logged.
 */
#include "stats/mh_http.h"

#include "net/mh_sockspec.h"
#include "util/mh_buf.h"
#include "util/mh_err.h"
#include "util/mh_log.h"

#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MH_HTTP_HEAD_MAX 8192 /* request line + headers, blank line included */
#define MH_HTTP_CLIENTS 32
#define MH_HTTP_LINGER 2.0
#define MH_HTTP_DRAIN_MAX (1024 * 1024) /* bytes read and dropped while lingering */
#define MH_HTTP_BACKLOG 64
#define MH_HTTP_ACCEPT_BURST 64
#define MH_HTTP_ACCEPT_PAUSE 1.0

static const char csp[] = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                          "frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

enum req_state { REQ_READING, REQ_HANDLING, REQ_WRITING, REQ_LINGER };

struct mh_http_req {
	struct mh_http *h;
	struct mh_http_req *prev, *next;
	int fd;
	enum req_state state;
	int head_only; /* HEAD: the body is measured, not sent */
	int overflow; /* a 503 beyond the limit: counted in noverflow */
	ev_io io;
	ev_timer timer;
	struct mh_buf out;
	size_t drained; /* LINGER: bytes dropped so far */
	size_t inlen;
	char in[MH_HTTP_HEAD_MAX + 1]; /* + NUL */
};

struct mh_http {
	struct ev_loop *loop;
	int fd;
	ev_io accept_w;
	ev_timer accept_pause_w; /* after EMFILE & co. */
	mh_http_handler handler;
	void *arg;
	struct mh_sockspec spec;
	int have_file; /* unix: dev/ino name the file we created */
	dev_t dev;
	ino_t ino;
	double read_timeout;
	double write_timeout;
	struct mh_http_req *reqs;
	unsigned nreqs;
	unsigned noverflow;
};

static const char *unix_path(const struct mh_sockspec *s)
{
	return ((const struct sockaddr_un *)&s->addr)->sun_path;
}

/* ------------------------------------------------------------ requests */

static void req_close(struct mh_http_req *r)
{
	struct mh_http *h = r->h;
	ev_io_stop(h->loop, &r->io);
	ev_timer_stop(h->loop, &r->timer);
	close(r->fd);
	if (r->prev)
		r->prev->next = r->next;
	else
		h->reqs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	if (r->overflow) {
		assert(h->noverflow > 0);
		h->noverflow--;
	} else {
		assert(h->nreqs > 0);
		h->nreqs--;
	}
	mh_buf_free(&r->out);
	free(r);
}

/* Watch r->fd for events (0: not at all). */
static void req_io(struct mh_http_req *r, int events)
{
	ev_io_stop(r->h->loop, &r->io);
	if (events) {
		ev_io_set(&r->io, r->fd, events);
		ev_io_start(r->h->loop, &r->io);
	}
}

/* (Re)arm the deadline timeout seconds from now; < 0: none. */
static void req_deadline(struct mh_http_req *r, double timeout)
{
	ev_timer_stop(r->h->loop, &r->timer);
	if (timeout >= 0) {
		ev_timer_set(&r->timer, timeout, 0);
		ev_timer_start(r->h->loop, &r->timer);
	}
}

/* Send what is buffered: 1 all sent, 0 more to send later, -1 the client is gone. */
static int req_send(struct mh_http_req *r)
{
	while (mh_buf_size(&r->out) > 0) {
		ssize_t n = send(r->fd, mh_buf_head(&r->out), mh_buf_size(&r->out), MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return -1;
		}
		mh_buf_consume(&r->out, (size_t)n);
	}
	return 1;
}

static void req_flush(struct mh_http_req *r)
{
	int rc = req_send(r);
	if (rc < 0) {
		req_close(r);
	} else if (rc == 0) {
		if (!ev_is_active(&r->io))
			req_io(r, EV_WRITE); /* the write deadline keeps running */
	} else {
		shutdown(r->fd, SHUT_WR);
		r->state = REQ_LINGER;
		double t =
		    r->h->read_timeout < MH_HTTP_LINGER ? r->h->read_timeout : MH_HTTP_LINGER;
		req_io(r, EV_READ);
		req_deadline(r, t);
	}
}

static const char *reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 204:
		return "No Content";
	case 301:
		return "Moved Permanently";
	case 302:
		return "Found";
	case 304:
		return "Not Modified";
	case 400:
		return "Bad Request";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 414:
		return "URI Too Long";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 503:
		return "Service Unavailable";
	case 505:
		return "HTTP Version Not Supported";
	default:
		return "Unknown";
	}
}

/* RFC 9110 IMF-fixdate, without the locale's day and month names. */
static void http_date(char *out, size_t n)
{
	static const char *const day[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char *const mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	snprintf(out, n, "%s, %02d %s %04d %02d:%02d:%02d GMT", day[tm.tm_wday], tm.tm_mday,
	         mon[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* Queue the whole answer and start writing it (r may be freed on return). */
static void req_answer(struct mh_http_req *r, int status, const char *content_type,
                       const void *body, size_t len)
{
	char date[64];
	assert(body != NULL || len == 0);
	http_date(date, sizeof(date));
	if (content_type == NULL)
		content_type = "text/plain; charset=utf-8";
	mh_buf_printf(&r->out,
	              "HTTP/1.1 %d %s\r\n"
	              "Date: %s\r\n"
	              "Content-Type: %s\r\n"
	              "Content-Length: %zu\r\n"
	              "Cache-Control: no-store\r\n"
	              "X-Content-Type-Options: nosniff\r\n",
	              status, reason(status), date, content_type, len);
	if (strncasecmp(content_type, "text/html", 9) == 0)
		mh_buf_printf(&r->out, "Content-Security-Policy: %s\r\n", csp);
	if (status == 405)
		mh_buf_append_str(&r->out, "Allow: GET, HEAD\r\n");
	mh_buf_append_str(&r->out, "Connection: close\r\n\r\n");
	if (!r->head_only && len > 0)
		mh_buf_append(&r->out, body, len);
	r->state = REQ_WRITING;
	req_io(r, 0);
	req_deadline(r, r->h->write_timeout);
	req_flush(r);
}

/* An answer of our own: the status line repeated as text/plain. */
static void req_error(struct mh_http_req *r, int status)
{
	char body[80];
	int n = snprintf(body, sizeof(body), "%d %s\n", status, reason(status));
	req_answer(r, status, "text/plain; charset=utf-8", body, (size_t)n);
}

/* End of the head (offset after its blank line), 0 if not there yet. */
static size_t head_end(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] != '\n')
			continue;
		if (i + 1 < n && p[i + 1] == '\n')
			return i + 2;
		if (i + 2 < n && p[i + 1] == '\r' && p[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

/* Check the head in r->in[0..end) and call the handler, or answer an error. */
static void req_dispatch(struct mh_http_req *r, size_t end)
{
	char *p = r->in;
	if (memchr(p, '\0', end) != NULL) {
		req_error(r, 400);
		return;
	}
	p[end] = '\0';
	/* Header lines: "name: value", no obsolete line folding (RFC 9112 §5.2: 400). */
	char *line = strchr(p, '\n') + 1;
	while (*line != '\r' && *line != '\n') {
		char *nl = strchr(line, '\n');
		char *colon = memchr(line, ':', (size_t)(nl - line));
		if (*line == ' ' || *line == '\t' || colon == NULL || colon == line) {
			req_error(r, 400);
			return;
		}
		line = nl + 1;
	}
	/* The request line: METHOD SP TARGET SP VERSION. */
	char *eol = strchr(p, '\n');
	if (eol > p && eol[-1] == '\r')
		eol--;
	*eol = '\0';
	char *sp1 = strchr(p, ' ');
	char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
	if (sp1 == NULL || sp2 == NULL || sp1 == p || sp2 == sp1 + 1 || strchr(sp2 + 1, ' ')) {
		req_error(r, 400);
		return;
	}
	*sp1 = *sp2 = '\0';
	const char *method = p, *version = sp2 + 1;
	char *target = sp1 + 1;
	if (strncmp(version, "HTTP/", 5) != 0) {
		req_error(r, 400);
		return;
	}
	if (strcmp(version, "HTTP/1.1") != 0 && strcmp(version, "HTTP/1.0") != 0) {
		req_error(r, 505);
		return;
	}
	if (strcmp(method, "HEAD") == 0)
		r->head_only = 1;
	else if (strcmp(method, "GET") != 0) {
		req_error(r, 405);
		return;
	}
	if (target[0] != '/') {
		req_error(r, 400);
		return;
	}
	for (const char *c = target; *c; c++)
		if ((unsigned char)*c < 0x21 || *c == 0x7f) {
			req_error(r, 400);
			return;
		}
	const char *query = "";
	char *q = strchr(target, '?');
	if (q != NULL) {
		*q = '\0';
		query = q + 1;
	}
	r->state = REQ_HANDLING;
	req_io(r, 0);
	req_deadline(r, -1);
	r->h->handler(r, target, query, r->h->arg); /* r may be dead now */
}

static void req_read_head(struct mh_http_req *r)
{
	for (;;) {
		size_t room = MH_HTTP_HEAD_MAX - r->inlen;
		ssize_t n = recv(r->fd, r->in + r->inlen, room, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				req_close(r);
			return;
		}
		if (n == 0) {
			req_close(r); /* gave up before the head was complete */
			return;
		}
		/* The blank line may straddle two reads: look again from 3 bytes back. */
		size_t from = r->inlen > 3 ? r->inlen - 3 : 0;
		r->inlen += (size_t)n;
		size_t end = head_end(r->in + from, r->inlen - from);
		if (end > 0) {
			req_dispatch(r, from + end);
			return;
		}
		if (r->inlen >= MH_HTTP_HEAD_MAX) {
			req_error(r, memchr(r->in, '\n', r->inlen) == NULL ? 414 : 431);
			return;
		}
	}
}

static void req_drain(struct mh_http_req *r)
{
	char sink[4096];
	/* A few reads per wake-up, so a client that keeps sending cannot hold the loop. */
	for (int i = 0; i < 16; i++) {
		ssize_t n = recv(r->fd, sink, sizeof(sink), 0);
		if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
			return; /* level-triggered: called again when there is more */
		if (n <= 0) {
			req_close(r); /* EOF or error: done */
			return;
		}
		r->drained += (size_t)n;
		if (r->drained > MH_HTTP_DRAIN_MAX) {
			req_close(r); /* it is not going to stop */
			return;
		}
	}
}

static void on_req_io(struct ev_loop *loop, ev_io *w, int revents)
{
	struct mh_http_req *r = w->data;
	switch (r->state) {
	case REQ_READING:
		req_read_head(r);
		break;
	case REQ_WRITING:
		req_flush(r);
		break;
	case REQ_LINGER:
		req_drain(r);
		break;
	case REQ_HANDLING:
		break;
	}
}

static void on_req_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	req_close(w->data); /* reading, writing or lingering too long */
}

/* ------------------------------------------------------------- accept */

static struct mh_http_req *req_new(struct mh_http *h, int fd, int overflow)
{
	struct mh_http_req *r = mh_xcalloc(1, sizeof(*r));
	r->h = h;
	r->fd = fd;
	r->overflow = overflow;
	r->next = h->reqs;
	if (h->reqs)
		h->reqs->prev = r;
	h->reqs = r;
	if (overflow)
		h->noverflow++;
	else
		h->nreqs++;
	ev_io_init(&r->io, on_req_io, fd, EV_READ);
	r->io.data = r;
	ev_timer_init(&r->timer, on_req_timer, h->read_timeout, 0);
	r->timer.data = r;
	return r;
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
	struct mh_http *h = w->data;
	for (int i = 0; i < MH_HTTP_ACCEPT_BURST; i++) {
		int fd = accept4(h->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				mh_warn(0, "http socket %s: accept: %s (pausing for %.0f s)",
				        h->spec.text, strerror(errno), MH_HTTP_ACCEPT_PAUSE);
				ev_io_stop(loop, &h->accept_w);
				ev_timer_set(&h->accept_pause_w, MH_HTTP_ACCEPT_PAUSE, 0);
				ev_timer_start(loop, &h->accept_pause_w);
				return;
			}
			mh_warn(0, "http socket %s: accept: %s", h->spec.text, strerror(errno));
			return;
		}
		mh_socket_nodelay(fd);
		if (h->nreqs < MH_HTTP_CLIENTS) {
			struct mh_http_req *r = req_new(h, fd, 0);
			r->state = REQ_READING;
			req_io(r, EV_READ);
			req_deadline(r, h->read_timeout);
		} else if (h->noverflow < MH_HTTP_CLIENTS) {
			req_error(req_new(h, fd, 1), 503);
		} else {
			close(fd);
		}
	}
}

static void on_accept_pause_end(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct mh_http *h = w->data;
	ev_io_start(loop, &h->accept_w);
}

/* ------------------------------------------------------------- socket */

struct mh_http *mh_http_new(struct ev_loop *loop, const char *spec, mh_http_handler handler,
                            void *arg, char *err, size_t errlen)
{
	struct mh_sockspec s;
	char why[256];
	if (mh_sockspec_parse(spec, &s, why, sizeof(why)) < 0) {
		mh_errf(err, errlen, "http socket: %s", why);
		return NULL;
	}
	int fd = mh_sockspec_listen(&s, MH_HTTP_BACKLOG, 0, why, sizeof(why));
	if (fd < 0) {
		mh_errf(err, errlen, "http socket: %s", why);
		return NULL;
	}
	struct mh_http *h = mh_xcalloc(1, sizeof(*h));
	h->loop = loop;
	h->fd = fd;
	h->handler = handler;
	h->arg = arg;
	h->spec = s;
	h->read_timeout = MH_HTTP_READ_TIMEOUT;
	h->write_timeout = MH_HTTP_WRITE_TIMEOUT;
	struct stat st;
	if (s.family == AF_UNIX && lstat(unix_path(&s), &st) == 0) {
		h->have_file = 1;
		h->dev = st.st_dev;
		h->ino = st.st_ino;
	}
	ev_io_init(&h->accept_w, on_accept, fd, EV_READ);
	h->accept_w.data = h;
	ev_timer_init(&h->accept_pause_w, on_accept_pause_end, MH_HTTP_ACCEPT_PAUSE, 0);
	h->accept_pause_w.data = h;
	ev_io_start(loop, &h->accept_w);
	return h;
}

int mh_http_port(const struct mh_http *h)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	if (getsockname(h->fd, (struct sockaddr *)&ss, &len) < 0)
		return -1;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return -1;
}

void mh_http_set_timeouts(struct mh_http *h, double read_s, double write_s)
{
	h->read_timeout = read_s;
	h->write_timeout = write_s;
}

void mh_http_respond(struct mh_http_req *r, int status, const char *content_type, const void *body,
                     size_t len)
{
	assert(r->state == REQ_HANDLING);
	req_answer(r, status, content_type, body, len);
}

/* ------------------------------------------------------------- the end */

static void release(struct mh_http *h, int last_words)
{
	ev_io_stop(h->loop, &h->accept_w);
	ev_timer_stop(h->loop, &h->accept_pause_w);
	close(h->fd);
	while (h->reqs != NULL) {
		struct mh_http_req *r = h->reqs;
		if (last_words && r->state == REQ_WRITING)
			(void)req_send(r); /* one last non-blocking try */
		req_close(r);
	}
	free(h);
}

void mh_http_forget(struct mh_http *h)
{
	if (h == NULL)
		return;
	release(h, 0);
}

void mh_http_free(struct mh_http *h)
{
	if (h == NULL)
		return;
	struct stat st;
	if (h->have_file && lstat(unix_path(&h->spec), &st) == 0 && st.st_dev == h->dev &&
	    st.st_ino == h->ino)
		unlink(unix_path(&h->spec));
	release(h, 1);
}
