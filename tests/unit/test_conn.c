/*
 * test_conn - mh_conn over real sockets on one libev loop: frame order,
 * frames split across writes, partial writes, deadline, EOF, malformed
 * input, pause/resume (soft: read-ahead while paused, bounded; EOF while
 * paused), async connect, and closing from inside callbacks.
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
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "net/mh_conn.h"
#include "protocol/mh_codec.h"

#define MAXPKT 64

/* What one side saw. */
struct side {
	struct mh_conn *conn;
	int npackets;
	uint8_t codes[MAXPKT];
	size_t lens[MAXPKT];
	struct mh_buf bytes; /* all payloads concatenated */
	int nclosed;
	enum mh_conn_why why;
	int last_error;
	int connected;
	/* behaviour */
	int close_at; /* close the conn from on_packet at this packet number */
	int pause_at; /* pause at this packet number */
	int flush_in_close_at; /* write+flush, then close(flush_first) */
	int stop_at; /* ev_break when npackets reaches this */
	int close_in_connected;
	struct ev_loop *loop;
};

static void on_packet(struct mh_conn *c, const struct mh_packet *p, void *arg)
{
	struct side *s = arg;
	assert_ptr_equal(c, s->conn);
	assert_true(s->npackets < MAXPKT);
	assert_int_equal(p->data[p->len], 0); /* the reader's NUL */
	s->codes[s->npackets] = p->code;
	s->lens[s->npackets] = p->len;
	mh_buf_append(&s->bytes, p->data, p->len);
	s->npackets++;
	if (s->npackets == s->pause_at)
		mh_conn_pause(c);
	if (s->npackets == s->flush_in_close_at) {
		mh_codec_put_empty(mh_conn_out(c), MH_REP_CONTINUE);
		mh_conn_close(c, 1);
		/* p->data must stay readable after a close in here */
		assert_int_equal(p->data[p->len], 0);
		s->conn = NULL;
	}
	if (s->npackets == s->close_at) {
		mh_conn_close(c, 0);
		mh_conn_close(c, 0); /* twice is harmless inside the callback */
		s->conn = NULL;
	}
	if (s->npackets == s->stop_at)
		ev_break(s->loop, EVBREAK_ALL);
}

static void on_close(struct mh_conn *c, enum mh_conn_why why, void *arg)
{
	struct side *s = arg;
	assert_int_equal(mh_conn_fd(c), -1);
	s->nclosed++;
	s->why = why;
	s->last_error = mh_conn_last_error(c);
	s->conn = NULL;
	ev_break(s->loop, EVBREAK_ALL);
}

static void on_connected(struct mh_conn *c, void *arg)
{
	struct side *s = arg;
	s->connected++;
	if (s->close_in_connected) {
		mh_conn_close(c, 0);
		s->conn = NULL;
	}
	ev_break(s->loop, EVBREAK_ALL);
}

static const struct mh_conn_ops ops = {on_connected, on_packet, on_close};

struct fixture {
	struct ev_loop *loop;
	int fds[2];
	struct side a, b;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	f->loop = ev_loop_new(EVFLAG_AUTO);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, f->fds) < 0)
		return -1;
	f->a.loop = f->b.loop = f->loop;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	if (f->a.conn)
		mh_conn_close(f->a.conn, 0);
	if (f->b.conn)
		mh_conn_close(f->b.conn, 0);
	for (int i = 0; i < 2; i++)
		if (f->fds[i] >= 0)
			close(f->fds[i]);
	mh_buf_free(&f->a.bytes);
	mh_buf_free(&f->b.bytes);
	ev_loop_destroy(f->loop);
	free(f);
	return 0;
}

/* Wrap both ends of the socketpair; the fds then belong to the conns. */
static void wrap_both(struct fixture *f)
{
	f->a.conn = mh_conn_new(f->loop, f->fds[0], MH_PAYLOAD_DEFAULT_MAX, &ops, &f->a);
	f->b.conn = mh_conn_new(f->loop, f->fds[1], MH_PAYLOAD_DEFAULT_MAX, &ops, &f->b);
	f->fds[0] = f->fds[1] = -1;
}

/* Wrap only fds[1] as b; the test writes raw bytes to fds[0]. */
static void wrap_b(struct fixture *f)
{
	f->b.conn = mh_conn_new(f->loop, f->fds[1], MH_PAYLOAD_DEFAULT_MAX, &ops, &f->b);
	f->fds[1] = -1;
}

static void on_guard(struct ev_loop *loop, ev_timer *w, int revents)
{
	*(int *)w->data = 1;
	ev_break(loop, EVBREAK_ALL);
}

/* Run the loop until a callback breaks it or `seconds` pass; 1 if broken. */
static int run_for(struct ev_loop *loop, double seconds)
{
	int expired = 0;
	ev_timer guard;
	ev_timer_init(&guard, on_guard, seconds, 0.);
	guard.data = &expired;
	ev_timer_start(loop, &guard);
	ev_run(loop, 0);
	ev_timer_stop(loop, &guard);
	return !expired;
}

static void frames_from_one_flush_arrive_in_order(void **state)
{
	struct fixture *f = *state;
	wrap_both(f);
	struct mh_buf *out = mh_conn_out(f->a.conn);
	uint8_t body[1000];
	for (size_t i = 0; i < sizeof(body); i++)
		body[i] = (uint8_t)i;
	mh_codec_put_empty(out, MH_CMD_ABORT);
	mh_codec_put_str(out, MH_CMD_HELO, "mx.example.org");
	mh_codec_put_raw(out, MH_CMD_BODY, body, sizeof(body));
	mh_codec_put_empty(out, MH_CMD_EOH);
	mh_conn_flush(f->a.conn);
	assert_int_equal(mh_buf_size(out), 0); /* the kernel took it all at once */
	f->b.stop_at = 4;
	assert_true(run_for(f->loop, 5));
	assert_int_equal(f->b.npackets, 4);
	assert_int_equal(f->b.codes[0], 'A');
	assert_int_equal(f->b.codes[1], 'H');
	assert_int_equal(f->b.codes[2], 'B');
	assert_int_equal(f->b.codes[3], 'N');
	assert_int_equal(f->b.lens[0], 0);
	assert_int_equal(f->b.lens[1], 15);
	assert_int_equal(f->b.lens[2], 1000);
	assert_memory_equal(f->b.bytes.data, "mx.example.org\0", 15);
	assert_memory_equal(f->b.bytes.data + 15, body, 1000);
	assert_int_equal(f->b.nclosed, 0);
	assert_int_equal(f->a.nclosed, 0);
}

static void write_all(int fd, const void *p, size_t n)
{
	assert_int_equal(write(fd, p, n), (ssize_t)n);
}

static void frame_split_across_writes_arrives_whole(void **state)
{
	struct fixture *f = *state;
	wrap_b(f);
	struct mh_buf frame = MH_BUF_INIT;
	mh_codec_put_str(&frame, MH_CMD_HELO, "split.example");
	size_t n = mh_buf_size(&frame);
	f->b.stop_at = 1;
	/* one byte at a time through the length word, then the rest in two */
	for (size_t i = 0; i < 4; i++) {
		write_all(f->fds[0], frame.data + i, 1);
		assert_false(run_for(f->loop, 0.02));
	}
	write_all(f->fds[0], frame.data + 4, 5);
	assert_false(run_for(f->loop, 0.02));
	assert_int_equal(f->b.npackets, 0);
	write_all(f->fds[0], frame.data + 9, n - 9);
	assert_true(run_for(f->loop, 5));
	assert_int_equal(f->b.npackets, 1);
	assert_int_equal(f->b.codes[0], 'H');
	assert_string_equal((const char *)f->b.bytes.data, "split.example");
	mh_buf_free(&frame);
}

/* More than the socket buffer takes: partial writes + the write watcher. */
static void large_output_arrives_whole_in_order(void **state)
{
	struct fixture *f = *state;
	wrap_both(f);
	struct mh_buf *out = mh_conn_out(f->a.conn);
	uint8_t *chunk = malloc(MH_CHUNK_MAX);
	for (int i = 0; i < 40; i++) {
		memset(chunk, 'a' + i % 26, MH_CHUNK_MAX);
		mh_codec_put_raw(out, MH_CMD_BODY, chunk, MH_CHUNK_MAX);
	}
	mh_codec_put_empty(out, MH_CMD_EOB);
	mh_conn_flush(f->a.conn);
	assert_true(mh_buf_size(out) > 0); /* ~2.6 MB: some must wait */
	f->b.stop_at = 41;
	assert_true(run_for(f->loop, 10));
	assert_int_equal(f->b.npackets, 41);
	for (int i = 0; i < 40; i++) {
		assert_int_equal(f->b.codes[i], 'B');
		assert_int_equal(f->b.lens[i], MH_CHUNK_MAX);
		assert_int_equal(f->b.bytes.data[(size_t)i * MH_CHUNK_MAX], 'a' + i % 26);
		assert_int_equal(f->b.bytes.data[(size_t)(i + 1) * MH_CHUNK_MAX - 1], 'a' + i % 26);
	}
	assert_int_equal(f->b.codes[40], 'E');
	assert_int_equal(mh_buf_size(out), 0);
	free(chunk);
}

static void deadline_fires_timeout(void **state)
{
	struct fixture *f = *state;
	wrap_b(f);
	mh_conn_set_deadline(f->b.conn, 10);
	mh_conn_set_deadline(f->b.conn, 0.05); /* re-arming replaces */
	ev_now_update(f->loop);
	ev_tstamp t0 = ev_now(f->loop);
	assert_true(run_for(f->loop, 5));
	assert_int_equal(f->b.nclosed, 1);
	assert_int_equal(f->b.why, MH_CONN_TIMEOUT);
	assert_int_equal(f->b.last_error, ETIMEDOUT);
	assert_true(ev_now(f->loop) - t0 >= 0.04);
	assert_string_equal(mh_conn_why_str(MH_CONN_TIMEOUT), "timeout");
}

static void disarmed_deadline_does_not_fire(void **state)
{
	struct fixture *f = *state;
	wrap_b(f);
	mh_conn_set_deadline(f->b.conn, 0.02);
	mh_conn_set_deadline(f->b.conn, 0);
	assert_false(run_for(f->loop, 0.1));
	assert_int_equal(f->b.nclosed, 0);
}

static void peer_close_gives_eof(void **state)
{
	struct fixture *f = *state;
	wrap_b(f);
	struct mh_buf frame = MH_BUF_INIT;
	mh_codec_put_empty(&frame, MH_CMD_QUIT);
	write_all(f->fds[0], frame.data, frame.len);
	close(f->fds[0]);
	f->fds[0] = -1;
	assert_true(run_for(f->loop, 5));
	assert_int_equal(f->b.npackets, 1);
	assert_int_equal(f->b.codes[0], 'Q');
	assert_int_equal(f->b.nclosed, 1);
	assert_int_equal(f->b.why, MH_CONN_EOF);
	mh_buf_free(&frame);
}

static void eof_inside_a_frame_gives_ioerr(void **state)
{
	struct fixture *f = *state;
	wrap_b(f);
	write_all(f->fds[0], "\0\0\0\x05Hab", 7);
	close(f->fds[0]);
	f->fds[0] = -1;
	assert_true(run_for(f->loop, 5));
	assert_int_equal(f->b.npackets, 0);
	assert_int_equal(f->b.nclosed, 1);
	assert_int_equal(f->b.why, MH_CONN_IOERR);
	assert_int_equal(f->b.last_error, 0);
}

static void malformed_frame_gives_protocol(void **state)
{
	struct fixture *f = *state;
	wrap_b(f);
	/* a good frame, then a zero length word, then more that is never read */
	write_all(f->fds[0], "\0\0\0\x01N\0\0\0\0\0\0\0\x01N", 14);
	assert_true(run_for(f->loop, 5));
	assert_int_equal(f->b.npackets, 1);
	assert_int_equal(f->b.nclosed, 1);
	assert_int_equal(f->b.why, MH_CONN_PROTOCOL);
	assert_int_equal(f->b.last_error, MH_CODEC_EZERO);
}

static void oversized_frame_gives_protocol(void **state)
{
	struct fixture *f = *state;
	f->b.conn = mh_conn_new(f->loop, f->fds[1], 16, &ops, &f->b);
	f->fds[1] = -1;
	write_all(f->fds[0],
	          "\0\0\0\x20"
	          "B",
	          5);
	assert_true(run_for(f->loop, 5));
	assert_int_equal(f->b.why, MH_CONN_PROTOCOL);
	assert_int_equal(f->b.last_error, MH_CODEC_ETOOBIG);
}

static void close_inside_on_packet_is_safe(void **state)
{
	struct fixture *f = *state;
	wrap_b(f);
	/* three frames in one read; the conn closes itself at the second */
	write_all(f->fds[0], "\0\0\0\x01N\0\0\0\x01T\0\0\0\x01Q", 15);
	f->b.close_at = 2;
	assert_false(run_for(f->loop, 0.1));
	assert_int_equal(f->b.npackets, 2);
	assert_int_equal(f->b.nclosed, 0); /* the owner closed it: no on_close */
	/* the fd was closed: the peer sees EOF */
	char c;
	assert_int_equal(read(f->fds[0], &c, 1), 0);
}

static void close_with_flush_inside_on_packet_sends_reply(void **state)
{
	struct fixture *f = *state;
	wrap_b(f);
	write_all(f->fds[0], "\0\0\0\x01Q\0\0\0\x01Q", 10);
	f->b.flush_in_close_at = 1;
	assert_false(run_for(f->loop, 0.05));
	assert_int_equal(f->b.npackets, 1);
	char buf[16];
	assert_int_equal(read(f->fds[0], buf, sizeof(buf)), 5);
	assert_memory_equal(buf,
	                    "\0\0\0\x01"
	                    "c",
	                    5);
	assert_int_equal(read(f->fds[0], buf, sizeof(buf)), 0);
}

static void pause_holds_frames_until_resume(void **state)
{
	struct fixture *f = *state;
	wrap_b(f);
	write_all(f->fds[0], "\0\0\0\x01N\0\0\0\x01T\0\0\0\x02H\0\0\0\0\x01Q", 21);
	f->b.pause_at = 1;
	assert_false(run_for(f->loop, 0.05));
	assert_int_equal(f->b.npackets, 1);
	mh_conn_resume(f->b.conn);
	assert_int_equal(f->b.npackets, 1); /* nothing delivered from inside resume */
	f->b.stop_at = 4;
	assert_true(run_for(f->loop, 5));
	assert_int_equal(f->b.npackets, 4);
	assert_memory_equal(f->b.codes, "NTHQ", 4);
	/* paused again from outside: later bytes are read ahead, not delivered */
	mh_conn_pause(f->b.conn);
	write_all(f->fds[0], "\0\0\0\x01N", 5);
	assert_false(run_for(f->loop, 0.05));
	assert_int_equal(f->b.npackets, 4);
	mh_conn_resume(f->b.conn);
	f->b.stop_at = 5;
	assert_true(run_for(f->loop, 5));
	assert_int_equal(f->b.codes[4], 'N');
}

/* Soft pause: read-ahead stops at 64 KiB, the rest stays in the kernel. */
static void pause_reads_ahead_at_most_64k(void **state)
{
	struct fixture *f = *state;
	enum { N = 60, LEN = 1995 }; /* 60 x 2000 bytes: above 64 KiB, below MAXPKT */
	static uint8_t wire[N * (LEN + 5)];
	wrap_b(f);
	mh_conn_pause(f->b.conn);
	for (int i = 0; i < N; i++) {
		uint8_t *p = wire + i * (LEN + 5);
		p[0] = 0;
		p[1] = 0;
		p[2] = (LEN + 1) >> 8;
		p[3] = (LEN + 1) & 0xff;
		p[4] = 'B';
		memset(p + 5, 'a' + i % 26, LEN);
	}
	write_all(f->fds[0], wire, sizeof(wire));
	assert_false(run_for(f->loop, 0.05));
	assert_int_equal(f->b.npackets, 0);
	int left = -1;
	assert_int_equal(ioctl(mh_conn_fd(f->b.conn), FIONREAD, &left), 0);
	assert_int_equal(left, (int)sizeof(wire) - 65536); /* reading stopped at the bound */
	mh_conn_resume(f->b.conn);
	f->b.stop_at = N;
	assert_true(run_for(f->loop, 5));
	assert_int_equal(f->b.npackets, N);
	for (int i = 0; i < N; i++) {
		assert_int_equal(f->b.codes[i], 'B');
		assert_int_equal(f->b.lens[i], LEN);
		assert_int_equal(f->b.bytes.data[i * LEN], 'a' + i % 26);
	}
	assert_int_equal(f->b.nclosed, 0);
}

/* EOF seen while paused waits for resume and for the frames before it. */
static void eof_while_paused_comes_after_resume_and_frames(void **state)
{
	struct fixture *f = *state;
	wrap_b(f);
	write_all(f->fds[0], "\0\0\0\x01N\0\0\0\x01T\0\0\0\x01Q", 15);
	close(f->fds[0]);
	f->fds[0] = -1;
	f->b.pause_at = 1;
	assert_false(run_for(f->loop, 0.1));
	assert_int_equal(f->b.npackets, 1);
	assert_int_equal(f->b.nclosed, 0); /* not while paused */
	f->b.pause_at = 0;
	mh_conn_resume(f->b.conn);
	assert_int_equal(f->b.nclosed, 0); /* nor from inside resume */
	assert_true(run_for(f->loop, 5));
	assert_int_equal(f->b.npackets, 3);
	assert_memory_equal(f->b.codes, "NTQ", 3);
	assert_int_equal(f->b.nclosed, 1);
	assert_int_equal(f->b.why, MH_CONN_EOF);
}

/* EOF inside a frame seen while paused: i/o error, after resume. */
static void cut_frame_while_paused_gives_ioerr_after_resume(void **state)
{
	struct fixture *f = *state;
	wrap_b(f);
	mh_conn_pause(f->b.conn);
	write_all(f->fds[0], "\0\0\0\x01N\0\0\0\x05H", 10);
	close(f->fds[0]);
	f->fds[0] = -1;
	assert_false(run_for(f->loop, 0.1));
	assert_int_equal(f->b.nclosed, 0);
	assert_int_equal(f->b.npackets, 0);
	mh_conn_resume(f->b.conn);
	assert_true(run_for(f->loop, 5));
	assert_int_equal(f->b.npackets, 1);
	assert_int_equal(f->b.nclosed, 1);
	assert_int_equal(f->b.why, MH_CONN_IOERR);
	assert_int_equal(f->b.last_error, 0);
}

/* Closing from on_packet while read-ahead bytes are delivered is safe. */
static void close_while_delivering_read_ahead_is_safe(void **state)
{
	struct fixture *f = *state;
	wrap_b(f);
	mh_conn_pause(f->b.conn);
	write_all(f->fds[0], "\0\0\0\x01N\0\0\0\x01T\0\0\0\x01Q", 15);
	assert_false(run_for(f->loop, 0.05));
	f->b.close_at = 2;
	mh_conn_resume(f->b.conn);
	assert_false(run_for(f->loop, 0.1));
	assert_int_equal(f->b.npackets, 2);
	assert_int_equal(f->b.nclosed, 0);
	char c;
	assert_int_equal(read(f->fds[0], &c, 1), 0);
}

static void write_error_is_reported_from_the_loop(void **state)
{
	struct fixture *f = *state;
	wrap_b(f);
	close(f->fds[0]);
	f->fds[0] = -1;
	mh_codec_put_empty(mh_conn_out(f->b.conn), MH_REP_CONTINUE);
	mh_conn_flush(f->b.conn); /* EPIPE, and no SIGPIPE */
	assert_int_equal(f->b.nclosed, 0); /* not from inside flush */
	assert_true(run_for(f->loop, 5));
	assert_int_equal(f->b.nclosed, 1);
	assert_true(f->b.why == MH_CONN_IOERR || f->b.why == MH_CONN_EOF);
	if (f->b.why == MH_CONN_IOERR)
		assert_true(f->b.last_error == EPIPE || f->b.last_error == ECONNRESET);
}

static void async_connect_then_exchange(void **state)
{
	struct fixture *f = *state;
	char spec[64], err[256] = "";
	struct mh_sockspec s;
	assert_int_equal(mh_sockspec_parse("inet:0@127.0.0.1", &s, err, sizeof(err)), 0);
	int lfd = mh_sockspec_listen(&s, 8, 0, err, sizeof(err));
	assert_true(lfd >= 0);
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &len), 0);
	snprintf(spec, sizeof(spec), "inet:%u@127.0.0.1", ntohs(a.sin_port));
	assert_int_equal(mh_sockspec_parse(spec, &s, err, sizeof(err)), 0);

	f->a.conn =
	    mh_conn_connect(f->loop, &s, 5, MH_PAYLOAD_DEFAULT_MAX, &ops, &f->a, err, sizeof(err));
	assert_non_null(f->a.conn);
	/* output queued while connecting leaves once connected */
	mh_codec_put_str(mh_conn_out(f->a.conn), MH_CMD_HELO, "early");
	mh_conn_flush(f->a.conn);
	assert_true(run_for(f->loop, 5));
	assert_int_equal(f->a.connected, 1);
	int afd = accept(lfd, NULL, NULL);
	assert_true(afd >= 0);
	f->b.conn = mh_conn_new(f->loop, afd, MH_PAYLOAD_DEFAULT_MAX, &ops, &f->b);
	f->b.stop_at = 1;
	assert_true(run_for(f->loop, 5));
	assert_int_equal(f->b.codes[0], 'H');
	assert_string_equal((const char *)f->b.bytes.data, "early");
	/* the connect deadline was disarmed on success */
	assert_false(run_for(f->loop, 0.05));
	assert_int_equal(f->a.nclosed, 0);
	close(lfd);
}

static void async_connect_refused(void **state)
{
	struct fixture *f = *state;
	char spec[64], err[256] = "";
	struct mh_sockspec s;
	assert_int_equal(mh_sockspec_parse("inet:0@127.0.0.1", &s, err, sizeof(err)), 0);
	int lfd = mh_sockspec_listen(&s, 8, 0, err, sizeof(err));
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &len), 0);
	close(lfd); /* nobody listens there now */
	snprintf(spec, sizeof(spec), "inet:%u@127.0.0.1", ntohs(a.sin_port));
	assert_int_equal(mh_sockspec_parse(spec, &s, err, sizeof(err)), 0);
	f->a.conn =
	    mh_conn_connect(f->loop, &s, 5, MH_PAYLOAD_DEFAULT_MAX, &ops, &f->a, err, sizeof(err));
	if (f->a.conn == NULL) { /* refused at once: also fine */
		assert_non_null(strstr(err, "refused"));
		return;
	}
	assert_true(run_for(f->loop, 5));
	assert_int_equal(f->a.connected, 0);
	assert_int_equal(f->a.nclosed, 1);
	assert_int_equal(f->a.why, MH_CONN_CONNECT);
	assert_int_equal(f->a.last_error, ECONNREFUSED);
}

static void close_inside_on_connected_is_safe(void **state)
{
	struct fixture *f = *state;
	char path[64], err[256] = "";
	snprintf(path, sizeof(path), "/tmp/mh-conn-%d.sock", (int)getpid());
	struct mh_sockspec s;
	assert_int_equal(mh_sockspec_parse(path, &s, err, sizeof(err)), 0);
	int lfd = mh_sockspec_listen(&s, 8, 0, err, sizeof(err));
	assert_true(lfd >= 0);
	f->a.conn = mh_conn_connect(f->loop, &s, 0.05, MH_PAYLOAD_DEFAULT_MAX, &ops, &f->a, err,
	                            sizeof(err));
	assert_non_null(f->a.conn);
	mh_codec_put_empty(mh_conn_out(f->a.conn), MH_CMD_QUIT); /* dropped by the close */
	mh_conn_flush(f->a.conn);
	f->a.close_in_connected = 1;
	assert_true(run_for(f->loop, 5));
	assert_int_equal(f->a.connected, 1);
	assert_null(f->a.conn);
	/* no deadline, no on_close, nothing written */
	assert_false(run_for(f->loop, 0.1));
	assert_int_equal(f->a.nclosed, 0);
	int afd = accept(lfd, NULL, NULL);
	assert_true(afd >= 0);
	char c;
	assert_int_equal(read(afd, &c, 1), 0);
	close(afd);
	close(lfd);
	unlink(path);
}

/* A listener whose backlog is full drops SYNs: the connect hangs. */
static void connect_deadline_gives_connect_etimedout(void **state)
{
	struct fixture *f = *state;
	char spec[64], err[256] = "";
	struct mh_sockspec s;
	assert_int_equal(mh_sockspec_parse("inet:0@127.0.0.1", &s, err, sizeof(err)), 0);
	int lfd = mh_sockspec_listen(&s, 1, 0, err, sizeof(err));
	assert_true(lfd >= 0);
	assert_int_equal(listen(lfd, 0), 0);
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &len), 0);
	snprintf(spec, sizeof(spec), "inet:%u@127.0.0.1", ntohs(a.sin_port));
	assert_int_equal(mh_sockspec_parse(spec, &s, err, sizeof(err)), 0);
	int fillers[4];
	for (int i = 0; i < 4; i++)
		fillers[i] = mh_sockspec_connect(&s, err, sizeof(err));
	assert_false(run_for(f->loop, 0.05));
	f->a.conn = mh_conn_connect(f->loop, &s, 0.1, MH_PAYLOAD_DEFAULT_MAX, &ops, &f->a, err,
	                            sizeof(err));
	assert_non_null(f->a.conn);
	assert_true(run_for(f->loop, 5));
	int connected = f->a.connected;
	if (!connected) {
		assert_int_equal(f->a.nclosed, 1);
		assert_int_equal(f->a.why, MH_CONN_CONNECT);
		assert_int_equal(f->a.last_error, ETIMEDOUT);
	}
	for (int i = 0; i < 4; i++)
		if (fillers[i] >= 0)
			close(fillers[i]);
	close(lfd);
	if (connected) /* the kernel took it after all: nothing tested */
		skip();
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(frames_from_one_flush_arrive_in_order),
	    T(frame_split_across_writes_arrives_whole),
	    T(large_output_arrives_whole_in_order),
	    T(deadline_fires_timeout),
	    T(disarmed_deadline_does_not_fire),
	    T(peer_close_gives_eof),
	    T(eof_inside_a_frame_gives_ioerr),
	    T(malformed_frame_gives_protocol),
	    T(oversized_frame_gives_protocol),
	    T(close_inside_on_packet_is_safe),
	    T(close_with_flush_inside_on_packet_sends_reply),
	    T(pause_holds_frames_until_resume),
	    T(pause_reads_ahead_at_most_64k),
	    T(eof_while_paused_comes_after_resume_and_frames),
	    T(cut_frame_while_paused_gives_ioerr_after_resume),
	    T(close_while_delivering_read_ahead_is_safe),
	    T(write_error_is_reported_from_the_loop),
	    T(async_connect_then_exchange),
	    T(async_connect_refused),
	    T(close_inside_on_connected_is_safe),
	    T(connect_deadline_gives_connect_etimedout),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
