/*
 * fuzz_mta_session - libFuzzer target for the MTA-facing session: a real
 * mh_hub on a libev loop takes one end of a socketpair as an MTA
 * connection; the fuzz input is what the "MTA" writes into the other end
 * (random, out-of-order, truncated, oversize milter frames), followed by
 * EOF.
 *
 * Input: byte 0 picks the setup, the rest is the MTA's byte stream.
 *   bits 0-1  children: 0 none (the manager's fallback), 1 and 3 one
 *             in-process fake child on a unix socket that negotiates
 *             v6 with every action and answers continue to everything
 *             (bit 2: it also adds a header, changes the body and adds a
 *             recipient at end of message), 2 one child whose socket does
 *             not exist (its fallback stands in)
 *   bit 3     body memory limit 64 bytes (the temp-file path) instead of 4 MiB
 *   bits 4-5  how the stream is cut into writes: whole, 1, 7 or 61 bytes
 * The loop runs in bounded EVRUN_NOWAIT steps, draining the hub's replies,
 * until the session is gone; then everything is freed. A session that is
 * still open long after EOF is a hang: abort. LeakSanitizer checks the rest.
 * Built and run by build-and-run.sh.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "hub/mh_hub.h"
#include "net/mh_sockspec.h"
#include "protocol/mh_codec.h"
#include "util/mh_buf.h"
#include "util/mh_log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FAKE_CONNS 8
#define STEPS_AFTER_EOF 400

static struct ev_loop *loop;
static char sock_dir[64];
static struct mh_child_conf child_fake, child_missing;

/* ------------------------------------------------ the fake child milter */

struct fake_conn {
	int fd; /* -1: slot free */
	ev_io rw;
	struct mh_frame_reader rd;
};

static int fake_lfd = -1;
static ev_io fake_lw;
static struct fake_conn fakes[FAKE_CONNS];
static int fake_mods; /* answer 'E' with modifications too */

static void fake_close(struct fake_conn *f)
{
	if (f->fd < 0)
		return;
	ev_io_stop(loop, &f->rw);
	close(f->fd);
	mh_frame_reader_free(&f->rd);
	f->fd = -1;
}

/* Replies are tiny; a full socket buffer here is the hub's problem to report. */
static void fake_write(struct fake_conn *f, struct mh_buf *b)
{
	const uint8_t *p = b->data + b->off;
	size_t n = b->len - b->off;

	while (n > 0) {
		ssize_t w = write(f->fd, p, n);
		if (w <= 0)
			break;
		p += w;
		n -= (size_t)w;
	}
	mh_buf_free(b);
}

static void fake_answer(struct fake_conn *f, const struct mh_packet *p)
{
	struct mh_buf b = MH_BUF_INIT;

	switch (p->code) {
	case MH_CMD_OPTNEG: {
		struct mh_optneg o = {.version = 6, .actions = MH_ACT_V6_MASK, .protocol = 0};
		mh_codec_put_optneg(&b, &o);
		break;
	}
	case MH_CMD_EOB:
		if (fake_mods) {
			const char *rcpt[] = {"<extra@example.org>"};
			mh_codec_put_header(&b, MH_REP_ADDHEADER, "X-Fuzz", "yes");
			mh_codec_put_raw(&b, MH_REP_REPLBODY, "new body\r\n", 10);
			mh_codec_put_strs(&b, MH_REP_ADDRCPT, rcpt, 1);
		}
		mh_codec_put_empty(&b, MH_REP_CONTINUE);
		break;
	case MH_CMD_CONNECT:
	case MH_CMD_HELO:
	case MH_CMD_MAIL:
	case MH_CMD_RCPT:
	case MH_CMD_DATA:
	case MH_CMD_HEADER:
	case MH_CMD_EOH:
	case MH_CMD_BODY:
	case MH_CMD_UNKNOWN:
		mh_codec_put_empty(&b, MH_REP_CONTINUE);
		break;
	default: /* D A Q K: no reply */
		return;
	}
	fake_write(f, &b);
}

static void fake_read_cb(struct ev_loop *l, ev_io *w, int revents)
{
	struct fake_conn *f = w->data;
	uint8_t in[4096];
	ssize_t n = read(f->fd, in, sizeof in);
	size_t off = 0;

	if (n <= 0) {
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		fake_close(f);
		return;
	}
	while (off < (size_t)n) {
		struct mh_packet p;
		size_t used;
		int rc = mh_frame_feed(&f->rd, in + off, (size_t)n - off, &used, &p);
		off += used;
		if (rc < 0) {
			fake_close(f);
			return;
		}
		if (rc == 0)
			break;
		fake_answer(f, &p);
	}
}

static void fake_accept_cb(struct ev_loop *l, ev_io *w, int revents)
{
	int fd = accept4(fake_lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	int i;

	if (fd < 0)
		return;
	for (i = 0; i < FAKE_CONNS; i++) {
		struct fake_conn *f = &fakes[i];
		if (f->fd >= 0)
			continue;
		f->fd = fd;
		mh_frame_reader_init(&f->rd, MH_PAYLOAD_DEFAULT_MAX);
		ev_io_init(&f->rw, fake_read_cb, fd, EV_READ);
		f->rw.data = f;
		ev_io_start(loop, &f->rw);
		return;
	}
	close(fd);
}

/* ------------------------------------------------------------- set-up */

/* libFuzzer ends with exit(): leave no socket directory behind. */
static void remove_sock_dir(void)
{
	char path[128];

	snprintf(path, sizeof path, "%s/child.sock", sock_dir);
	(void)unlink(path);
	(void)rmdir(sock_dir);
}

static void child_conf_init(struct mh_child_conf *c, const char *name, const char *path)
{
	char spec[128], err[256];

	memset(c, 0, sizeof *c);
	c->name = (char *)name;
	c->kind = MH_CHILD_MILTER;
	snprintf(spec, sizeof spec, "unix:%s", path);
	if (mh_sockspec_parse(spec, &c->sock, err, sizeof err) != 0) {
		fprintf(stderr, "fuzz_mta_session: %s: %s\n", spec, err);
		abort();
	}
	c->socket_text = c->sock.text;
	c->fallback = MH_ST_ACCEPT;
	/* Never reached: the harness's steps take milliseconds. */
	c->connect_timeout = 30;
	c->write_timeout = 30;
	c->read_timeout = 30;
	c->eom_timeout = 30;
	c->enabled = 1;
}

static void init_once(void)
{
	char path[128], err[256];
	struct mh_sockspec s;
	int i;

	signal(SIGPIPE, SIG_IGN);
	/* FUZZ_VERBOSE=1: the modules' debug log, to see how far a seed gets. */
	mh_log_set_level(getenv("FUZZ_VERBOSE") ? MH_LOG_DEBUG : MH_LOG_ERR);
	loop = ev_default_loop(EVFLAG_AUTO);
	snprintf(sock_dir, sizeof sock_dir, "%s/mhfuzz.XXXXXX",
	         getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (strlen(sock_dir) > 40 || mkdtemp(sock_dir) == NULL) {
		perror("fuzz_mta_session: mkdtemp");
		abort();
	}
	atexit(remove_sock_dir);
	snprintf(path, sizeof path, "%s/child.sock", sock_dir);
	child_conf_init(&child_fake, "fake", path);
	s = child_fake.sock;
	fake_lfd = mh_sockspec_listen(&s, 64, 0600, err, sizeof err);
	if (fake_lfd < 0) {
		fprintf(stderr, "fuzz_mta_session: listen: %s\n", err);
		abort();
	}
	ev_io_init(&fake_lw, fake_accept_cb, fake_lfd, EV_READ);
	ev_io_start(loop, &fake_lw);
	for (i = 0; i < FAKE_CONNS; i++)
		fakes[i].fd = -1;

	snprintf(path, sizeof path, "%s/missing.sock", sock_dir);
	child_conf_init(&child_missing, "missing", path);
}

/* ------------------------------------------------------------- driver */

static void drain(int fd)
{
	uint8_t junk[4096];

	while (read(fd, junk, sizeof junk) > 0)
		;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t chunk_of[4] = {0, 1, 7, 61};
	struct mh_hub_conf conf;
	struct mh_hub *h;
	size_t chunk, off = 0;
	int sv[2], i, steps = 0;
	uint8_t mode;

	if (loop == NULL)
		init_once();
	if (size < 1)
		return 0;
	mode = data[0];
	data++;
	size--;

	memset(&conf, 0, sizeof conf);
	conf.fallback = MH_ST_ACCEPT;
	conf.body_memory_limit = (mode & 8) ? 64 : 4u << 20;
	conf.tmpdir = sock_dir;
	conf.mta_timeout = 30;
	conf.max_payload = MH_PAYLOAD_DEFAULT_MAX;
	switch (mode & 3) {
	case 0:
		break;
	case 2:
		conf.children = &child_missing;
		conf.nchildren = 1;
		break;
	default:
		conf.children = &child_fake;
		conf.nchildren = 1;
		break;
	}
	fake_mods = (mode & 4) != 0;
	chunk = chunk_of[(mode >> 4) & 3];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) {
		perror("fuzz_mta_session: socketpair");
		abort();
	}
	h = mh_hub_new(loop, &conf);
	mh_hub_accept(h, sv[0]);

	/* Feed the stream, letting the hub answer in between. */
	while (off < size) {
		size_t n = size - off;
		ssize_t w;
		if (chunk != 0 && n > chunk)
			n = chunk;
		w = write(sv[1], data + off, n);
		if (w > 0)
			off += (size_t)w;
		else if (w < 0 && errno != EAGAIN && errno != EINTR)
			break; /* the hub closed the session */
		ev_run(loop, EVRUN_NOWAIT);
		drain(sv[1]);
		if (mh_hub_sessions(h) == 0)
			break;
		if (++steps > 100000) {
			fprintf(stderr, "fuzz_mta_session: the hub stopped reading\n");
			abort();
		}
	}
	shutdown(sv[1], SHUT_WR);
	for (steps = 0; mh_hub_sessions(h) > 0 && steps < STEPS_AFTER_EOF; steps++) {
		ev_run(loop, EVRUN_NOWAIT);
		drain(sv[1]);
	}
	if (mh_hub_sessions(h) > 0) {
		fprintf(stderr, "fuzz_mta_session: session still open %d steps after EOF\n",
		        STEPS_AFTER_EOF);
		abort();
	}
	mh_hub_free(h);
	close(sv[1]);
	/* Links the hub closed: let the fake see EOF, then drop what is left. */
	ev_run(loop, EVRUN_NOWAIT);
	for (i = 0; i < FAKE_CONNS; i++)
		fake_close(&fakes[i]);
	return 0;
}
