/*
 * child_fake - the fake child milter of test_child (see child_fake.h).
 */
#include "child_fake.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "net/mh_sockspec.h"

void fake_write(struct fake *f, struct mh_buf *b)
{
	while (mh_buf_size(b) > 0) {
		ssize_t n = send(f->fd, mh_buf_head(b), mh_buf_size(b), MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
			break; /* the link closed first (tests that free it) */
		assert_true(n > 0); /* a few bytes into an empty socket buffer */
		mh_buf_consume(b, (size_t)n);
	}
	mh_buf_free(b);
}

void fake_send(struct fake *f, uint8_t code)
{
	struct mh_buf b = MH_BUF_INIT;
	mh_codec_put_empty(&b, code);
	fake_write(f, &b);
}

void fake_send_str(struct fake *f, uint8_t code, const char *s)
{
	struct mh_buf b = MH_BUF_INIT;
	mh_codec_put_str(&b, code, s);
	fake_write(f, &b);
}

void fake_close(struct fake *f)
{
	ev_io_stop(f->loop, &f->rw);
	ev_timer_stop(f->loop, &f->tick);
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
}

int fake_answerable(uint8_t code)
{
	return strchr("CHMRTLNBEU", code) != NULL;
}

static void fake_packet(struct fake *f, const struct mh_packet *p)
{
	assert_true(f->npk < MAXPK);
	f->codes[f->npk] = p->code;
	f->readno[f->npk] = f->nreads;
	mh_buf_append(&f->payload[f->npk], p->data, p->len);
	f->npk++;
	if (p->code == MH_CMD_OPTNEG) {
		struct mh_buf b = MH_BUF_INIT;
		mh_codec_put_optneg(&b, &f->neg);
		fake_write(f, &b);
		return;
	}
	if (p->code == MH_CMD_MACRO)
		return; /* never answered */
	if (f->on_cmd != NULL)
		f->on_cmd(f, p);
	else if (fake_answerable(p->code))
		fake_send(f, MH_REP_CONTINUE);
}

static void fake_readable(struct ev_loop *loop, ev_io *w, int revents)
{
	struct fake *f = w->data;
	uint8_t buf[65536];
	ssize_t n = read(f->fd, buf, sizeof(buf));
	if (n <= 0) {
		f->eof = 1;
		fake_close(f);
		return;
	}
	f->nreads++;
	size_t off = 0;
	while (off < (size_t)n && f->fd >= 0) {
		size_t used;
		struct mh_packet p;
		int rc = mh_frame_feed(&f->rd, buf + off, (size_t)n - off, &used, &p);
		assert_true(rc >= 0);
		off += used;
		if (rc == 1)
			fake_packet(f, &p);
	}
}

static void fake_accept(struct ev_loop *loop, ev_io *w, int revents)
{
	struct fake *f = w->data;
	int fd = accept(f->lfd, NULL, NULL);
	if (fd < 0)
		return;
	assert_int_equal(f->fd, -1);
	f->fd = fd;
	ev_io_init(&f->rw, fake_readable, fd, EV_READ);
	f->rw.data = f;
	ev_io_start(loop, &f->rw);
}

/* Default negotiation: v6, all actions, no NO/NR bits, no lists. */
void fake_init(struct fake *f, struct ev_loop *loop)
{
	char err[128];
	struct mh_sockspec s;
	char spec[160];

	memset(f, 0, sizeof(*f));
	f->loop = loop;
	f->fd = -1;
	strcpy(f->dir, "/tmp/test_child.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/milter.sock", f->dir);
	snprintf(spec, sizeof(spec), "unix:%s", f->path);
	assert_int_equal(mh_sockspec_parse(spec, &s, err, sizeof(err)), 0);
	f->lfd = mh_sockspec_listen(&s, 8, 0, err, sizeof(err));
	assert_true(f->lfd >= 0);
	ev_io_init(&f->lw, fake_accept, f->lfd, EV_READ);
	f->lw.data = f;
	ev_io_start(loop, &f->lw);
	mh_frame_reader_init(&f->rd, 1 << 20);
	f->neg.version = 6;
	f->neg.actions = MH_ACT_V6_MASK;
	f->neg.protocol = 0;
}

void fake_free(struct fake *f)
{
	fake_close(f);
	ev_io_stop(f->loop, &f->lw);
	close(f->lfd);
	unlink(f->path);
	rmdir(f->dir);
	mh_frame_reader_free(&f->rd);
	for (int i = 0; i < MAXPK; i++)
		mh_buf_free(&f->payload[i]);
}

int fake_count(const struct fake *f, uint8_t code)
{
	int n = 0;
	for (int i = 0; i < f->npk; i++)
		n += f->codes[i] == code;
	return n;
}
