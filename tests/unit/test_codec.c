/*
 * test_codec - the milter codec's contract (protocol/mh_codec.h):
 * every command and reply survives encode + decode, every malformation
 * maps to its own error, a stream decodes the same however it is cut,
 * and negotiation follows libmilter (answer) and Postfix (check).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "protocol/mh_codec.h"
#include "util/mh_buf.h"

/* A string literal with embedded NULs: its bytes and their count. */
#define RAW(s) (const uint8_t *)(s), (sizeof(s) - 1)

struct fx {
	struct mh_buf b;
	struct mh_frame_reader r;
	struct mh_packet p;
	struct mh_cmd cmd;
	struct mh_reply rep;
};

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	mh_frame_reader_init(&f->r, MH_PAYLOAD_DEFAULT_MAX);
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;

	mh_buf_free(&f->b);
	mh_frame_reader_free(&f->r);
	free(f);
	return 0;
}

#define FX_TEST(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

/* Frame the bytes in f->b (exactly one frame) into f->p, then empty f->b. */
static void frame_one(struct fx *f)
{
	size_t used = 0;

	assert_int_equal(mh_frame_feed(&f->r, mh_buf_head(&f->b), mh_buf_size(&f->b), &used, &f->p),
	                 1);
	assert_int_equal(used, mh_buf_size(&f->b));
	assert_true(mh_frame_reader_idle(&f->r));
	mh_buf_reset(&f->b);
}

static int cmd_of(struct fx *f)
{
	frame_one(f);
	return mh_codec_decode_cmd(&f->p, &f->cmd);
}

static int reply_of(struct fx *f)
{
	frame_one(f);
	return mh_codec_decode_reply(&f->p, &f->rep);
}

/* Decode a hand-made packet (any payload bytes) as a command / reply. */
static int raw_cmd(struct fx *f, uint8_t code, const uint8_t *payload, size_t len)
{
	mh_codec_put_raw(&f->b, code, payload, len);
	return cmd_of(f);
}

static int raw_reply(struct fx *f, uint8_t code, const uint8_t *payload, size_t len)
{
	mh_codec_put_raw(&f->b, code, payload, len);
	return reply_of(f);
}

static void assert_bytes(const struct mh_buf *b, const uint8_t *want, size_t len)
{
	assert_int_equal(mh_buf_size(b), len);
	assert_memory_equal(mh_buf_head(b), want, len);
}

/* ------------------------------------------------------------ frames */

static void smallest_frame_is_a_continue(void **state)
{
	struct fx *f = *state;

	mh_buf_append(&f->b, RAW("\0\0\0\1c"));
	assert_int_equal(reply_of(f), MH_CODEC_OK);
	assert_int_equal(f->rep.code, MH_REP_CONTINUE);
	assert_int_equal(f->p.len, 0);
	assert_int_equal(f->p.data[0], 0);
}

static void frame_length_zero_is_ezero_and_sticky(void **state)
{
	struct fx *f = *state;
	size_t used = 99;

	/* Detected after the 4 length bytes: a 0 length has no code byte. */
	assert_int_equal(mh_frame_feed(&f->r, RAW("\0\0\0\0c\0\0\0\1c"), &used, &f->p),
	                 MH_CODEC_EZERO);
	assert_int_equal(used, 4);
	assert_false(mh_frame_reader_idle(&f->r));
	assert_int_equal(mh_frame_feed(&f->r, RAW("\0\0\0\1c"), &used, &f->p), MH_CODEC_EZERO);
	assert_int_equal(used, 0);
}

static void frame_above_max_payload_is_etoobig_before_allocating(void **state)
{
	struct fx *f = *state;
	struct mh_frame_reader r;
	size_t used;
	uint8_t frame[5 + 17];

	mh_frame_reader_init(&r, 16);
	memset(frame, 'x', sizeof(frame));
	memcpy(frame, "\0\0\0\x11", 4); /* len 17: payload 16, the maximum */
	assert_int_equal(mh_frame_feed(&r, frame, 5 + 16, &used, &f->p), 1);
	assert_int_equal(f->p.len, 16);
	assert_int_equal(r.buf_cap, 17);

	memcpy(frame, "\0\0\0\x12", 4); /* payload 17 */
	assert_int_equal(mh_frame_feed(&r, frame, 4, &used, &f->p), MH_CODEC_ETOOBIG);
	assert_int_equal(used, 4);
	assert_int_equal(r.buf_cap, 17);
	mh_frame_reader_free(&r);

	/* A 4 GB length must not allocate anything. */
	mh_frame_reader_init(&r, MH_PAYLOAD_DEFAULT_MAX);
	assert_int_equal(mh_frame_feed(&r, RAW("\xff\xff\xff\xff"), &used, &f->p),
	                 MH_CODEC_ETOOBIG);
	assert_null(r.buf);
	assert_int_equal(mh_frame_feed(&r, RAW("\0\0\0\1c"), &used, &f->p), MH_CODEC_ETOOBIG);
	mh_frame_reader_free(&r);
}

static void reader_buffer_grows_to_the_largest_frame(void **state)
{
	struct fx *f = *state;
	static uint8_t body[1000];
	size_t sizes[] = {10, 1000, 5, 999, 0};
	size_t i;

	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		mh_codec_put_raw(&f->b, MH_CMD_BODY, body, sizes[i]);
		frame_one(f);
		assert_int_equal(f->p.len, sizes[i]);
		assert_int_equal(f->p.data[sizes[i]], 0); /* the NUL the reader adds */
	}
	assert_int_equal(f->r.buf_cap, 1001);
}

static void reader_appends_nul_after_payload(void **state)
{
	struct fx *f = *state;

	mh_codec_put_raw(&f->b, MH_CMD_BODY, "abc", 3);
	frame_one(f);
	assert_int_equal(f->p.len, 3);
	assert_memory_equal(f->p.data, "abc", 4);
}

static void reader_stops_after_each_frame_and_reports_idle(void **state)
{
	struct fx *f = *state;
	const uint8_t two[] = {0, 0, 0, 1, 'c', 0, 0, 0, 2, 'H'};
	size_t used;

	assert_true(mh_frame_reader_idle(&f->r));
	assert_int_equal(mh_frame_feed(&f->r, two, sizeof(two), &used, &f->p), 1);
	assert_int_equal(used, 5);
	assert_int_equal(f->p.code, 'c');
	assert_true(mh_frame_reader_idle(&f->r));
	assert_int_equal(mh_frame_feed(&f->r, two + 5, 5, &used, &f->p), 0);
	assert_int_equal(used, 5);
	assert_false(mh_frame_reader_idle(&f->r));
	assert_int_equal(mh_frame_feed(&f->r, NULL, 0, &used, &f->p), 0);
	assert_int_equal(used, 0);
	assert_int_equal(mh_frame_feed(&f->r, RAW("\0"), &used, &f->p), 1);
	assert_int_equal(f->p.code, 'H');
	assert_int_equal(f->p.len, 1);
	assert_true(mh_frame_reader_idle(&f->r));
}

static void reader_free_allows_reuse(void **state)
{
	struct fx *f = *state;
	size_t used;

	assert_int_equal(mh_frame_feed(&f->r, RAW("\0\0\0\0"), &used, &f->p), MH_CODEC_EZERO);
	mh_frame_reader_free(&f->r);
	assert_int_equal(f->r.max_payload, MH_PAYLOAD_DEFAULT_MAX);
	assert_true(mh_frame_reader_idle(&f->r));
	assert_int_equal(mh_frame_feed(&f->r, RAW("\0\0\0\1a"), &used, &f->p), 1);
	assert_int_equal(f->p.code, 'a');
}

/* ------------------------------------------------- split-stream decoding */

struct pkt_copy {
	uint8_t code;
	size_t len;
	uint8_t *data;
};

struct pkt_list {
	struct pkt_copy *v;
	size_t n, cap;
};

static void pkt_list_free(struct pkt_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i].data);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

static void pkt_list_add(struct pkt_list *l, const struct mh_packet *p)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 32;
		l->v = realloc(l->v, l->cap * sizeof(*l->v));
		assert_non_null(l->v);
	}
	l->v[l->n].code = p->code;
	l->v[l->n].len = p->len;
	l->v[l->n].data = malloc(p->len + 1);
	assert_non_null(l->v[l->n].data);
	memcpy(l->v[l->n].data, p->data, p->len + 1); /* NUL included */
	l->n++;
}

/* Feed one chunk completely, collecting every frame it finishes. */
static void feed_chunk(struct mh_frame_reader *r, const uint8_t *data, size_t n,
                       struct pkt_list *out)
{
	struct mh_packet p;
	size_t used;
	int rc;

	while (n > 0) {
		rc = mh_frame_feed(r, data, n, &used, &p);
		assert_true(rc == 0 || rc == 1);
		assert_true(used <= n);
		if (rc == 1)
			pkt_list_add(out, &p);
		else
			assert_int_equal(used, n);
		data += used;
		n -= used;
	}
}

static void assert_same_packets(const struct pkt_list *a, const struct pkt_list *b)
{
	size_t i;

	assert_int_equal(a->n, b->n);
	for (i = 0; i < a->n; i++) {
		assert_int_equal(a->v[i].code, b->v[i].code);
		assert_int_equal(a->v[i].len, b->v[i].len);
		assert_memory_equal(a->v[i].data, b->v[i].data, a->v[i].len + 1);
	}
}

/* A Postfix-like session (commands) followed by a milter's replies. */
#define SESSION_COMMANDS 17
#define SESSION_PACKETS 27

static void build_session(struct mh_buf *b)
{
	struct mh_optneg offer = {6, MH_ACT_V6_MASK, MH_PROTO_V6_MASK, {NULL}};
	struct mh_optneg reply = {6, MH_ACT_ADDHDRS | MH_ACT_SETSYMLIST, MH_PROTO_NR_HDR, {NULL}};
	const char *cmacros[] = {"j", "mx.example.org", "{daemon_name}", "mx.example.org",
	                         "v", "Postfix 3.7.11"};
	const char *mail[] = {"<sender@example.net>", "SIZE=1234", "BODY=8BITMIME"};
	const char *rcpt[] = {"<rcpt@example.org>"};
	const char *imacro[] = {"i", "4XyZ1"};
	const char *add[] = {"<new@example.org>", "NOTIFY=NEVER"};
	char body[300];
	size_t i;

	for (i = 0; i < sizeof(body); i++)
		body[i] = (char)(i % 7 == 0 ? '\n' : 'a' + i % 26);
	reply.macros[MH_STAGE_RCPT] = "{rcpt_addr} {rcpt_host}";

	mh_codec_put_optneg(b, &offer);
	mh_codec_put_macro(b, 'C', cmacros, 3);
	mh_codec_put_connect(b, "mx.example.net", '4', 54321, "192.0.2.1");
	mh_codec_put_macro(b, 'H', NULL, 0);
	mh_codec_put_str(b, MH_CMD_HELO, "mx.example.net");
	mh_codec_put_strs(b, MH_CMD_MAIL, mail, 3);
	mh_codec_put_strs(b, MH_CMD_RCPT, rcpt, 1);
	mh_codec_put_macro(b, 'T', imacro, 1);
	mh_codec_put_empty(b, MH_CMD_DATA);
	mh_codec_put_header(b, MH_CMD_HEADER, "From", "sender@example.net");
	mh_codec_put_header(b, MH_CMD_HEADER, "Subject", "folded\n\tline");
	mh_codec_put_empty(b, MH_CMD_EOH);
	mh_codec_put_raw(b, MH_CMD_BODY, body, sizeof(body));
	mh_codec_put_empty(b, MH_CMD_EOB);
	mh_codec_put_str(b, MH_CMD_UNKNOWN, "XFOO bar");
	mh_codec_put_empty(b, MH_CMD_ABORT);
	mh_codec_put_empty(b, MH_CMD_QUIT);

	mh_codec_put_optneg(b, &reply);
	mh_codec_put_empty(b, MH_REP_CONTINUE);
	mh_codec_put_empty(b, MH_REP_PROGRESS);
	mh_codec_put_header(b, MH_REP_ADDHEADER, "X-Spam", "no");
	mh_codec_put_index_header(b, MH_REP_INSHEADER, 0, "X-Top", "1");
	mh_codec_put_index_header(b, MH_REP_CHGHEADER, 2, "Subject", "");
	mh_codec_put_strs(b, MH_REP_ADDRCPT_PAR, add, 2);
	mh_codec_put_raw(b, MH_REP_REPLBODY, "new\r\n", 5);
	mh_codec_put_str(b, MH_REP_QUARANTINE, "held");
	assert_int_equal(mh_codec_put_replycode(b, "550-5.7.1 first\r\n550 5.7.1 last"),
	                 MH_CODEC_OK);
}

static void stream_split_anywhere_decodes_identically(void **state)
{
	struct fx *f = *state;
	struct pkt_list whole = {0}, got = {0};
	struct mh_frame_reader r;
	const uint8_t *s;
	size_t len, i, k;

	build_session(&f->b);
	s = mh_buf_head(&f->b);
	len = mh_buf_size(&f->b);

	mh_frame_reader_init(&r, MH_PAYLOAD_DEFAULT_MAX);
	feed_chunk(&r, s, len, &whole);
	assert_int_equal(whole.n, SESSION_PACKETS);
	assert_true(mh_frame_reader_idle(&r));
	for (i = 0; i < whole.n; i++) {
		struct mh_packet p = {whole.v[i].code, whole.v[i].data, whole.v[i].len};
		struct mh_cmd cmd;
		struct mh_reply rep;

		/* commands first, then replies: all well formed */
		if (i < SESSION_COMMANDS)
			assert_int_equal(mh_codec_decode_cmd(&p, &cmd), MH_CODEC_OK);
		else
			assert_int_equal(mh_codec_decode_reply(&p, &rep), MH_CODEC_OK);
	}
	mh_frame_reader_free(&r);

	/* One byte at a time. */
	mh_frame_reader_init(&r, MH_PAYLOAD_DEFAULT_MAX);
	for (i = 0; i < len; i++)
		feed_chunk(&r, s + i, 1, &got);
	assert_same_packets(&whole, &got);
	assert_true(mh_frame_reader_idle(&r));
	mh_frame_reader_free(&r);
	pkt_list_free(&got);

	/* Every split point of a two-chunk feed, one reader reused. */
	mh_frame_reader_init(&r, MH_PAYLOAD_DEFAULT_MAX);
	for (k = 0; k <= len; k++) {
		feed_chunk(&r, s, k, &got);
		feed_chunk(&r, s + k, len - k, &got);
		assert_same_packets(&whole, &got);
		assert_true(mh_frame_reader_idle(&r));
		pkt_list_free(&got);
	}
	mh_frame_reader_free(&r);
	pkt_list_free(&whole);
}

static void stream_with_full_size_body_chunks(void **state)
{
	struct fx *f = *state;
	struct pkt_list whole = {0}, got = {0};
	struct mh_frame_reader r;
	uint8_t *body = malloc(MH_CHUNK_MAX);
	size_t len, k, i;
	const size_t cuts[] = {1, 4, 5, 6, 4096, MH_CHUNK_MAX, MH_CHUNK_MAX + 5, MH_CHUNK_MAX + 9};

	assert_non_null(body);
	for (i = 0; i < MH_CHUNK_MAX; i++)
		body[i] = (uint8_t)(i * 31);
	mh_codec_put_raw(&f->b, MH_CMD_BODY, body, MH_CHUNK_MAX);
	mh_codec_put_raw(&f->b, MH_CMD_BODY, body, MH_CHUNK_MAX);
	mh_codec_put_empty(&f->b, MH_CMD_EOB);
	len = mh_buf_size(&f->b);

	mh_frame_reader_init(&r, MH_PAYLOAD_DEFAULT_MAX);
	feed_chunk(&r, mh_buf_head(&f->b), len, &whole);
	assert_int_equal(whole.n, 3);
	assert_int_equal(whole.v[0].len, MH_CHUNK_MAX);
	assert_memory_equal(whole.v[1].data, body, MH_CHUNK_MAX);
	assert_int_equal(r.buf_cap, MH_CHUNK_MAX + 1);
	for (k = 0; k < sizeof(cuts) / sizeof(cuts[0]); k++) {
		feed_chunk(&r, mh_buf_head(&f->b), cuts[k], &got);
		feed_chunk(&r, mh_buf_head(&f->b) + cuts[k], len - cuts[k], &got);
		assert_same_packets(&whole, &got);
		pkt_list_free(&got);
	}
	mh_frame_reader_free(&r);
	pkt_list_free(&whole);
	free(body);
}

/* ---------------------------------------------------- command round trips */

static void cmd_empty_codes_round_trip(void **state)
{
	struct fx *f = *state;
	const uint8_t codes[] = {MH_CMD_ABORT, MH_CMD_QUIT_NC, MH_CMD_EOH, MH_CMD_QUIT,
	                         MH_CMD_DATA};
	size_t i;

	for (i = 0; i < sizeof(codes); i++) {
		const uint8_t wire[] = {0, 0, 0, 1, codes[i]};

		mh_codec_put_empty(&f->b, codes[i]);
		assert_bytes(&f->b, wire, sizeof(wire));
		assert_int_equal(cmd_of(f), MH_CODEC_OK);
		assert_int_equal(f->cmd.code, codes[i]);
	}
}

static void cmd_body_and_eob_round_trip(void **state)
{
	struct fx *f = *state;

	mh_codec_put_raw(&f->b, MH_CMD_BODY, "a\0b\r\n", 5);
	assert_int_equal(cmd_of(f), MH_CODEC_OK);
	assert_int_equal(f->cmd.code, MH_CMD_BODY);
	assert_int_equal(f->cmd.u.body.len, 5);
	assert_memory_equal(f->cmd.u.body.data, "a\0b\r\n", 5);

	mh_codec_put_empty(&f->b, MH_CMD_EOB);
	assert_int_equal(cmd_of(f), MH_CODEC_OK);
	assert_int_equal(f->cmd.code, MH_CMD_EOB);
	assert_int_equal(f->cmd.u.body.len, 0);

	/* libmilter takes data in 'E' as the final chunk. */
	mh_codec_put_raw(&f->b, MH_CMD_EOB, "tail", 4);
	assert_int_equal(cmd_of(f), MH_CODEC_OK);
	assert_int_equal(f->cmd.u.body.len, 4);
	assert_memory_equal(f->cmd.u.body.data, "tail", 4);
}

static void cmd_connect_round_trip_all_families(void **state)
{
	struct fx *f = *state;

	/* protocol doc 2.1 example */
	mh_codec_put_connect(&f->b, "mx.example.com", '4', 25, "192.0.2.1");
	assert_bytes(&f->b, RAW("\0\0\0\x1d"
	                        "C"
	                        "mx.example.com\0"
	                        "4"
	                        "\0\x19"
	                        "192.0.2.1\0"));
	assert_int_equal(cmd_of(f), MH_CODEC_OK);
	assert_int_equal(f->cmd.code, MH_CMD_CONNECT);
	assert_string_equal(f->cmd.u.connect.hostname, "mx.example.com");
	assert_int_equal(f->cmd.u.connect.family, '4');
	assert_int_equal(f->cmd.u.connect.port, 25);
	assert_string_equal(f->cmd.u.connect.address, "192.0.2.1");

	mh_codec_put_connect(&f->b, "[2001:db8::1]", '6', 65535, "2001:db8::1");
	assert_int_equal(cmd_of(f), MH_CODEC_OK);
	assert_int_equal(f->cmd.u.connect.family, '6');
	assert_int_equal(f->cmd.u.connect.port, 65535);
	assert_string_equal(f->cmd.u.connect.address, "2001:db8::1");

	mh_codec_put_connect(&f->b, "localhost", 'L', 0, "/run/postfix/socket");
	assert_int_equal(cmd_of(f), MH_CODEC_OK);
	assert_int_equal(f->cmd.u.connect.family, 'L');
	assert_string_equal(f->cmd.u.connect.address, "/run/postfix/socket");

	/* 'U': no port, no address on the wire */
	mh_codec_put_connect(&f->b, "unknown", 'U', 25, "ignored");
	assert_bytes(&f->b, RAW("\0\0\0\x0a"
	                        "C"
	                        "unknown\0"
	                        "U"));
	assert_int_equal(cmd_of(f), MH_CODEC_OK);
	assert_int_equal(f->cmd.u.connect.family, 'U');
	assert_int_equal(f->cmd.u.connect.port, 0);
	assert_null(f->cmd.u.connect.address);
	assert_string_equal(f->cmd.u.connect.hostname, "unknown");
}

static void cmd_macro_round_trip(void **state)
{
	struct fx *f = *state;
	const char *pairs[] = {"j", "mx.example.org", "{client_addr}", "192.0.2.1"};

	mh_codec_put_macro(&f->b, 'C', pairs, 2);
	assert_int_equal(cmd_of(f), MH_CODEC_OK);
	assert_int_equal(f->cmd.code, MH_CMD_MACRO);
	assert_int_equal(f->cmd.u.macro.stage, 'C');
	assert_int_equal(f->cmd.u.macro.npairs, 2);
	assert_string_equal(f->cmd.u.macro.pairs[0], "j");
	assert_string_equal(f->cmd.u.macro.pairs[1], "mx.example.org");
	assert_string_equal(f->cmd.u.macro.pairs[2], "{client_addr}");
	assert_string_equal(f->cmd.u.macro.pairs[3], "192.0.2.1");

	/* Postfix: no pairs at all, and stage bytes outside SMFIM ('L'). */
	mh_codec_put_macro(&f->b, 'L', NULL, 0);
	assert_bytes(&f->b, RAW("\0\0\0\2DL"));
	assert_int_equal(cmd_of(f), MH_CODEC_OK);
	assert_int_equal(f->cmd.u.macro.stage, 'L');
	assert_int_equal(f->cmd.u.macro.npairs, 0);
}

static void cmd_macro_odd_count_drops_the_lone_name(void **state)
{
	struct fx *f = *state;

	assert_int_equal(raw_cmd(f, MH_CMD_MACRO, RAW("Mi\0Q1\0{auth_type}\0")), MH_CODEC_OK);
	assert_int_equal(f->cmd.u.macro.stage, 'M');
	assert_int_equal(f->cmd.u.macro.npairs, 1);
	assert_string_equal(f->cmd.u.macro.pairs[0], "i");
	assert_string_equal(f->cmd.u.macro.pairs[1], "Q1");
	assert_null(f->cmd.u.macro.pairs[2]);
}

static void cmd_helo_unknown_header_round_trip(void **state)
{
	struct fx *f = *state;

	mh_codec_put_str(&f->b, MH_CMD_HELO, "mx.example.net");
	assert_int_equal(cmd_of(f), MH_CODEC_OK);
	assert_int_equal(f->cmd.code, MH_CMD_HELO);
	assert_string_equal(f->cmd.u.helo.name, "mx.example.net");

	mh_codec_put_str(&f->b, MH_CMD_UNKNOWN, "XFOO bar");
	assert_int_equal(cmd_of(f), MH_CODEC_OK);
	assert_int_equal(f->cmd.code, MH_CMD_UNKNOWN);
	assert_string_equal(f->cmd.u.unknown.line, "XFOO bar");

	mh_codec_put_header(&f->b, MH_CMD_HEADER, "Subject", "two\n\tlines");
	assert_bytes(&f->b, RAW("\0\0\0\x14LSubject\0two\n\tlines\0"));
	assert_int_equal(cmd_of(f), MH_CODEC_OK);
	assert_int_equal(f->cmd.code, MH_CMD_HEADER);
	assert_string_equal(f->cmd.u.header.name, "Subject");
	assert_string_equal(f->cmd.u.header.value, "two\n\tlines");

	mh_codec_put_header(&f->b, MH_CMD_HEADER, "X-Empty", "");
	assert_int_equal(cmd_of(f), MH_CODEC_OK);
	assert_string_equal(f->cmd.u.header.value, "");
}

static void cmd_mail_rcpt_round_trip(void **state)
{
	struct fx *f = *state;
	const char *mail[] = {"<a@example.net>", "SIZE=10", "BODY=8BITMIME"};
	const char *null_sender[] = {""};
	const char *rcpt[] = {"<b@example.org>", "NOTIFY=NEVER"};

	mh_codec_put_strs(&f->b, MH_CMD_MAIL, mail, 3);
	assert_int_equal(cmd_of(f), MH_CODEC_OK);
	assert_int_equal(f->cmd.code, MH_CMD_MAIL);
	assert_int_equal(f->cmd.u.env.argc, 3);
	assert_string_equal(f->cmd.u.env.argv[0], "<a@example.net>");
	assert_string_equal(f->cmd.u.env.argv[2], "BODY=8BITMIME");

	/* non_smtpd_milters: the null sender is one NUL */
	mh_codec_put_strs(&f->b, MH_CMD_MAIL, null_sender, 1);
	assert_bytes(&f->b, RAW("\0\0\0\2M\0"));
	assert_int_equal(cmd_of(f), MH_CODEC_OK);
	assert_int_equal(f->cmd.u.env.argc, 1);
	assert_string_equal(f->cmd.u.env.argv[0], "");

	mh_codec_put_strs(&f->b, MH_CMD_RCPT, rcpt, 2);
	assert_int_equal(cmd_of(f), MH_CODEC_OK);
	assert_int_equal(f->cmd.code, MH_CMD_RCPT);
	assert_int_equal(f->cmd.u.env.argc, 2);
	assert_string_equal(f->cmd.u.env.argv[1], "NOTIFY=NEVER");
}

/* ------------------------------------------------------ reply round trips */

static void reply_empty_codes_round_trip(void **state)
{
	struct fx *f = *state;
	const uint8_t codes[] = {MH_REP_SHUTDOWN, MH_REP_ACCEPT,    MH_REP_CONTINUE,
	                         MH_REP_DISCARD,  MH_REP_CONN_FAIL, MH_REP_PROGRESS,
	                         MH_REP_REJECT,   MH_REP_SKIP,      MH_REP_TEMPFAIL};
	size_t i;

	for (i = 0; i < sizeof(codes); i++) {
		mh_codec_put_empty(&f->b, codes[i]);
		assert_int_equal(reply_of(f), MH_CODEC_OK);
		assert_int_equal(f->rep.code, codes[i]);
	}
}

static void reply_rcpt_edits_round_trip(void **state)
{
	struct fx *f = *state;
	const char *one[] = {"<new@example.org>"};
	const char *two[] = {"<new@example.org>", "NOTIFY=NEVER ORCPT=rfc822;x@y"};

	mh_codec_put_str(&f->b, MH_REP_ADDRCPT, "<new@example.org>");
	assert_int_equal(reply_of(f), MH_CODEC_OK);
	assert_int_equal(f->rep.code, MH_REP_ADDRCPT);
	assert_string_equal(f->rep.u.rcpt.rcpt, "<new@example.org>");
	assert_null(f->rep.u.rcpt.args);

	mh_codec_put_str(&f->b, MH_REP_DELRCPT, "<old@example.org>");
	assert_int_equal(reply_of(f), MH_CODEC_OK);
	assert_int_equal(f->rep.code, MH_REP_DELRCPT);
	assert_string_equal(f->rep.u.rcpt.rcpt, "<old@example.org>");

	mh_codec_put_strs(&f->b, MH_REP_ADDRCPT_PAR, one, 1);
	assert_int_equal(reply_of(f), MH_CODEC_OK);
	assert_int_equal(f->rep.code, MH_REP_ADDRCPT_PAR);
	assert_null(f->rep.u.rcpt.args);

	mh_codec_put_strs(&f->b, MH_REP_ADDRCPT_PAR, two, 2);
	assert_int_equal(reply_of(f), MH_CODEC_OK);
	assert_string_equal(f->rep.u.rcpt.rcpt, "<new@example.org>");
	assert_string_equal(f->rep.u.rcpt.args, "NOTIFY=NEVER ORCPT=rfc822;x@y");
}

static void reply_chgfrom_round_trip(void **state)
{
	struct fx *f = *state;
	const char *one[] = {"<s@example.net>"};
	const char *two[] = {"<s@example.net>", "RET=HDRS ENVID=x"};

	mh_codec_put_strs(&f->b, MH_REP_CHGFROM, one, 1);
	assert_int_equal(reply_of(f), MH_CODEC_OK);
	assert_int_equal(f->rep.code, MH_REP_CHGFROM);
	assert_string_equal(f->rep.u.chgfrom.addr, "<s@example.net>");
	assert_null(f->rep.u.chgfrom.args);

	mh_codec_put_strs(&f->b, MH_REP_CHGFROM, two, 2);
	assert_int_equal(reply_of(f), MH_CODEC_OK);
	assert_string_equal(f->rep.u.chgfrom.args, "RET=HDRS ENVID=x");
}

static void reply_header_edits_round_trip(void **state)
{
	struct fx *f = *state;

	mh_codec_put_header(&f->b, MH_REP_ADDHEADER, "X-Spam", "no");
	assert_int_equal(reply_of(f), MH_CODEC_OK);
	assert_int_equal(f->rep.code, MH_REP_ADDHEADER);
	assert_int_equal(f->rep.u.header.index, 0);
	assert_string_equal(f->rep.u.header.name, "X-Spam");
	assert_string_equal(f->rep.u.header.value, "no");

	mh_codec_put_index_header(&f->b, MH_REP_INSHEADER, 0, "X-Top", " v");
	assert_bytes(&f->b, RAW("\0\0\0\x0e"
	                        "i"
	                        "\0\0\0\0"
	                        "X-Top\0 v\0"));
	assert_int_equal(reply_of(f), MH_CODEC_OK);
	assert_int_equal(f->rep.code, MH_REP_INSHEADER);
	assert_int_equal(f->rep.u.header.index, 0);
	assert_string_equal(f->rep.u.header.value, " v");

	mh_codec_put_index_header(&f->b, MH_REP_CHGHEADER, 0x01020304, "Subject", "");
	assert_int_equal(reply_of(f), MH_CODEC_OK);
	assert_int_equal(f->rep.code, MH_REP_CHGHEADER);
	assert_int_equal(f->rep.u.header.index, 0x01020304);
	assert_string_equal(f->rep.u.header.name, "Subject");
	assert_string_equal(f->rep.u.header.value, "");
}

static void reply_body_quarantine_replycode_round_trip(void **state)
{
	struct fx *f = *state;

	mh_codec_put_raw(&f->b, MH_REP_REPLBODY, "x\0y\r\n", 5);
	assert_int_equal(reply_of(f), MH_CODEC_OK);
	assert_int_equal(f->rep.code, MH_REP_REPLBODY);
	assert_int_equal(f->rep.u.replbody.len, 5);
	assert_memory_equal(f->rep.u.replbody.data, "x\0y\r\n", 5);

	mh_codec_put_raw(&f->b, MH_REP_REPLBODY, NULL, 0);
	assert_int_equal(reply_of(f), MH_CODEC_OK);
	assert_int_equal(f->rep.u.replbody.len, 0);

	mh_codec_put_str(&f->b, MH_REP_QUARANTINE, "suspicious");
	assert_int_equal(reply_of(f), MH_CODEC_OK);
	assert_int_equal(f->rep.code, MH_REP_QUARANTINE);
	assert_string_equal(f->rep.u.quarantine.reason, "suspicious");
}

static void reply_replycode_round_trip(void **state)
{
	struct fx *f = *state;
	const char *ml = "450-4.2.0 first\r\n450-4.2.0 second\r\n450 4.2.0 last";

	assert_int_equal(mh_codec_put_replycode(&f->b, "550 5.7.1 no"), MH_CODEC_OK);
	assert_bytes(&f->b, RAW("\0\0\0\x0ey550 5.7.1 no\0"));
	assert_int_equal(reply_of(f), MH_CODEC_OK);
	assert_int_equal(f->rep.code, MH_REP_REPLYCODE);
	assert_string_equal(f->rep.u.replycode.text, "550 5.7.1 no");

	assert_int_equal(mh_codec_put_replycode(&f->b, ml), MH_CODEC_OK);
	assert_int_equal(reply_of(f), MH_CODEC_OK);
	assert_string_equal(f->rep.u.replycode.text, ml);
}

/* Every reply code: decode, mh_codec_put_reply, byte-identical frame. */
static void put_reply_re_encodes_every_decoded_reply(void **state)
{
	struct fx *f = *state;
	static const struct {
		uint8_t code;
		const char *payload;
		size_t len;
	} cases[] = {
	    {'a', "", 0},
	    {'c', "", 0},
	    {'d', "", 0},
	    {'r', "", 0},
	    {'t', "", 0},
	    {'s', "", 0},
	    {'p', "", 0},
	    {'4', "", 0},
	    {'f', "", 0},
	    {'+', "<a@b>", 6},
	    {'-', "<a@b>", 6},
	    {'2', "<a@b>", 6},
	    {'2', "<a@b>\0NOTIFY=NEVER", 19},
	    {'e', "<>", 3},
	    {'e', "<s@x>\0RET=HDRS ENVID=1", 23},
	    {'b', "x\0y\r\n", 5},
	    {'b', "", 0},
	    {'h', "X-A\0 v", 7},
	    {'i', "\0\0\0\x03X-B\0v\nw", 12},
	    {'m', "\0\0\0\x01Subject\0", 13},
	    {'q', "held", 5},
	    {'y', "550 5.7.1 no", 13},
	    {'y', "421-4.3.0 a\r\n421 4.3.0 b", 25},
	    {'O', "\0\0\0\x06\0\0\x01\xff\0\x1f\xff\xff", 12},
	    {'O',
	     "\0\0\0\x06"
	     "\0\0\x01\0"
	     "\0\0\0\0"
	     "\0\0\0\x03"
	     "{rcpt_addr}",
	     28},
	};
	struct mh_buf orig = MH_BUF_INIT;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		mh_buf_reset(&orig);
		mh_codec_put_raw(&orig, cases[i].code, cases[i].payload, cases[i].len);
		mh_buf_append(&f->b, mh_buf_head(&orig), mh_buf_size(&orig));
		assert_int_equal(reply_of(f), MH_CODEC_OK);
		mh_codec_put_reply(&f->b, &f->rep);
		assert_bytes(&f->b, mh_buf_head(&orig), mh_buf_size(&orig));
		mh_buf_reset(&f->b);
	}
	mh_buf_free(&orig);
}

/* ------------------------------------------------------------ malformed */

struct bad_case {
	int reply; /* 0: decode as command, 1: as reply */
	uint8_t code;
	const char *payload;
	size_t len;
};

#define CMD(c, s)                                                                                  \
	{                                                                                          \
		0, (c), (s), sizeof(s) - 1                                                         \
	}
#define REP(c, s)                                                                                  \
	{                                                                                          \
		1, (c), (s), sizeof(s) - 1                                                         \
	}

static void expect_all(struct fx *f, const struct bad_case *cases, size_t n, int err)
{
	size_t i;
	int rc;

	for (i = 0; i < n; i++) {
		const struct bad_case *c = &cases[i];

		if (c->reply)
			rc = raw_reply(f, c->code, (const uint8_t *)c->payload, c->len);
		else
			rc = raw_cmd(f, c->code, (const uint8_t *)c->payload, c->len);
		if (rc != err)
			fail_msg("case %zu ('%c' as %s): got %d (%s), want %d (%s)", i, c->code,
			         c->reply ? "reply" : "command", rc, mh_codec_strerror(rc), err,
			         mh_codec_strerror(err));
	}
}

static void missing_nul_is_enonul(void **state)
{
	static const struct bad_case cases[] = {
	    CMD('H', "mx.example.net"),
	    CMD('U', "XFOO"),
	    CMD('L', "Subject"),
	    CMD('L', "Subject\0value"),
	    CMD('M', "<a@b>"),
	    CMD('M', "<a@b>\0SIZE=1"),
	    CMD('R', "<a@b>"),
	    CMD('D', "Cj"),
	    CMD('D', "Cj\0value"),
	    CMD('C', "host"),
	    CMD('C', "host\0"
	             "4\0\x19"
	             "192.0.2.1"),
	    CMD('O', "\0\0\0\6\0\0\1\xff\0\x1f\xff\xff\0\0\0\0{j}"),
	    REP('O', "\0\0\0\6\0\0\1\xff\0\0\0\0\0\0\0\3{rcpt_addr}"),
	    REP('+', "<a@b>"),
	    REP('-', "<a@b>"),
	    REP('2', "<a@b>\0NOTIFY=NEVER"),
	    REP('e', "<a@b>"),
	    REP('h', "X-A\0value"),
	    REP('i', "\0\0\0\1X-A\0value"),
	    REP('m', "\0\0\0\1X-A"),
	    REP('q', "reason"),
	    REP('y', "550 5.7.1 no"),
	};

	expect_all(*state, cases, sizeof(cases) / sizeof(cases[0]), MH_CODEC_ENONUL);
}

static void payload_on_empty_codes_is_esize(void **state)
{
	static const struct bad_case cases[] = {
	    CMD('A', "x"), CMD('K', "x"),  CMD('N', "\0"), CMD('Q', "x"), CMD('T', "x"),
	    REP('a', "x"), REP('c', "\0"), REP('d', "x"),  REP('f', "x"), REP('p', "x"),
	    REP('r', "x"), REP('s', "x"),  REP('t', "x"),  REP('4', "x"),
	};

	expect_all(*state, cases, sizeof(cases) / sizeof(cases[0]), MH_CODEC_ESIZE);
}

static void wrong_layout_size_is_esize(void **state)
{
	static const struct bad_case cases[] = {
	    /* a required field is absent */
	    CMD('H', ""),
	    CMD('U', ""),
	    CMD('L', ""),
	    CMD('L', "Subject\0"),
	    CMD('M', ""),
	    CMD('R', ""),
	    CMD('D', ""),
	    CMD('C', ""),
	    CMD('C', "host\0"),
	    CMD('C', "host\0"
	             "4"),
	    CMD('C', "host\0"
	             "4\0"),
	    CMD('C', "host\0"
	             "6\0\x19"),
	    REP('+', ""),
	    REP('h', "X-A\0"),
	    REP('i', "\0\0\0"),
	    REP('m', "\0\0\0\1"),
	    REP('m', "\0\0\0\1X-A\0"),
	    REP('y', ""),
	    /* bytes after the last field */
	    CMD('H', "a\0b\0"),
	    CMD('U', "a\0b"),
	    CMD('L', "a\0b\0c\0"),
	    CMD('C', "host\0U\0"),
	    CMD('C', "host\0"
	             "4\0\x19"
	             "192.0.2.1\0x"),
	    REP('+', "a\0b\0"),
	    REP('-', "a\0b\0"),
	    REP('2', "a\0b\0c\0"),
	    REP('e', "a\0b\0c\0"),
	    REP('h', "a\0b\0c\0"),
	    REP('i', "\0\0\0\0a\0b\0c\0"),
	    REP('q', "a\0b\0"),
	    REP('y', "550 no\0x\0"),
	};

	expect_all(*state, cases, sizeof(cases) / sizeof(cases[0]), MH_CODEC_ESIZE);
}

static void optneg_short_or_bad_trailer_is_esize(void **state)
{
	static const struct bad_case cases[] = {
	    CMD('O', ""),
	    CMD('O', "\0\0\0\6\0\0\1\xff\0\x1f\xff"), /* 11 bytes */
	    REP('O', "\0\0\0\6\0\0\1\xff\0\x1f\xff"),
	    REP('O', "\0\0\0\6"),
	    /* trailer: a partial stage word, or a stage without its list */
	    REP('O', "\0\0\0\6\0\0\1\xff\0\0\0\0\0"),
	    REP('O', "\0\0\0\6\0\0\1\xff\0\0\0\0\0\0\0"),
	    REP('O', "\0\0\0\6\0\0\1\xff\0\0\0\0\0\0\0\1"),
	    REP('O', "\0\0\0\6\0\0\1\xff\0\0\0\0\0\0\0\1{j}\0\0\0"),
	};

	expect_all(*state, cases, sizeof(cases) / sizeof(cases[0]), MH_CODEC_ESIZE);
}

static void optneg_trailer_bad_stage_is_evalue(void **state)
{
	static const struct bad_case cases[] = {
	    REP('O', "\0\0\0\6\0\0\1\xff\0\0\0\0\0\0\0\7{j}\0"),
	    REP('O', "\0\0\0\6\0\0\1\xff\0\0\0\0\xff\xff\xff\xff{j}\0"),
	    CMD('O', "\0\0\0\6\0\0\1\xff\0\0\0\0\0\0\0\x08{j}\0"),
	    /* one list per stage */
	    REP('O', "\0\0\0\6\0\0\1\xff\0\0\0\0\0\0\0\3{a}\0\0\0\0\3{b}\0"),
	};

	expect_all(*state, cases, sizeof(cases) / sizeof(cases[0]), MH_CODEC_EVALUE);
}

static void connect_unknown_family_is_efamily(void **state)
{
	static const struct bad_case cases[] = {
	    CMD('C', "host\0"
	             "5\0\x19"
	             "192.0.2.1\0"),
	    CMD('C', "host\0"
	             "u"),
	    CMD('C', "host\0\0"),
	    CMD('C', "host\0I\0\x19"
	             "192.0.2.1\0"),
	};

	expect_all(*state, cases, sizeof(cases) / sizeof(cases[0]), MH_CODEC_EFAMILY);
}

static void too_many_strs_is_etoomany(void **state)
{
	struct fx *f = *state;
	const char *argv[MH_ARGS_MAX + 1];
	size_t i;

	for (i = 0; i < MH_ARGS_MAX + 1; i++)
		argv[i] = i % 2 ? "value" : "{name}";

	mh_codec_put_strs(&f->b, MH_CMD_MAIL, argv, MH_ARGS_MAX);
	assert_int_equal(cmd_of(f), MH_CODEC_OK);
	assert_int_equal(f->cmd.u.env.argc, MH_ARGS_MAX);
	mh_codec_put_strs(&f->b, MH_CMD_MAIL, argv, MH_ARGS_MAX + 1);
	assert_int_equal(cmd_of(f), MH_CODEC_ETOOMANY);
	mh_codec_put_strs(&f->b, MH_CMD_RCPT, argv, MH_ARGS_MAX + 1);
	assert_int_equal(cmd_of(f), MH_CODEC_ETOOMANY);

	/* 'D': MH_ARGS_MAX strs (32 pairs) fit, one more name does not */
	mh_codec_put_macro(&f->b, 'C', argv, MH_ARGS_MAX / 2);
	assert_int_equal(cmd_of(f), MH_CODEC_OK);
	assert_int_equal(f->cmd.u.macro.npairs, MH_ARGS_MAX / 2);
	mh_buf_append_u32be(&f->b, 1 + 1 + (MH_ARGS_MAX + 1) * 2);
	mh_buf_append(&f->b, "DC", 2);
	for (i = 0; i < MH_ARGS_MAX + 1; i++)
		mh_buf_append(&f->b, "x", 2);
	assert_int_equal(cmd_of(f), MH_CODEC_ETOOMANY);
}

static void unknown_code_is_eunknown(void **state)
{
	static const struct bad_case cases[] = {
	    CMD('Z', ""), CMD('a', ""), CMD('c', ""), CMD('l', ""), CMD(0, ""), CMD('G', "x"),
	    REP('Z', ""), REP('A', ""), REP('C', ""), REP('l', ""), REP(0, ""), REP('y' + 1, ""),
	};

	expect_all(*state, cases, sizeof(cases) / sizeof(cases[0]), MH_CODEC_EUNKNOWN);
}

static void malformed_replycode_is_evalue(void **state)
{
	static const struct bad_case cases[] = {
	    REP('y', "250 ok\0"),
	    REP('y', "550\r\n\0"),
	    REP('y', "550-5.7.1 a\0"),
	    REP('y', "550 4.7.1 class mismatch\0"),
	};
	struct fx *f = *state;

	expect_all(f, cases, sizeof(cases) / sizeof(cases[0]), MH_CODEC_EVALUE);
	assert_int_equal(mh_codec_put_replycode(&f->b, "250 ok"), MH_CODEC_EVALUE);
	assert_int_equal(mh_buf_size(&f->b), 0);
}

static void replytext_rules(void **state)
{
	static const struct {
		const char *text;
		int valid;
	} cases[] = {
	    {"550 5.7.1 Command rejected", 1},
	    {"451 4.7.1 Service unavailable", 1},
	    {"550 rejected", 1}, /* enhanced code is optional */
	    {"550", 1},
	    {"550 ", 1},
	    {"421 4.3.0 closing", 1},
	    {"550-5.7.1 a\r\n550 5.7.1 b", 1},
	    {"550-a\r\n550-b\r\n550 c", 1},
	    {"550 a\r\n550 b", 1}, /* ' ' accepted on non-last lines */
	    {"550-a\r\n550", 1},
	    {"450-4.2.0 x\r\n451 4.2.0 y", 1},
	    {"", 0},
	    {"55", 0},
	    {"250 ok", 0},
	    {"650 x", 0},
	    {"5x0 x", 0},
	    {"55a x", 0},
	    {"550x", 0},
	    {"550_x", 0},
	    {"550-x", 0}, /* '-' on the last line */
	    {"550 x\r\n", 0}, /* CRLF after the last line */
	    {"550 x\r\n\r\n", 0},
	    {"550 x\n550 y", 0}, /* bare LF */
	    {"550 x\r550 y", 0}, /* bare CR */
	    {"550 x\r\n250 y", 0},
	    {"550\r\n550 y", 0}, /* non-last line needs ' ' or '-' */
	    {"550 4.7.1 x", 0}, /* enhanced code of another class */
	    {"450 5.7.1 x", 0},
	    {"550-5.7.1 a\r\n550 4.7.1 b", 0},
	    {"550 x\r\n\r\n550 y", 0},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (mh_codec_valid_replytext(cases[i].text) != cases[i].valid)
			fail_msg("\"%s\": want %d", cases[i].text, cases[i].valid);
	assert_false(mh_codec_valid_replytext(NULL));
}

static void strerror_names_every_error(void **state)
{
	const int errs[] = {MH_CODEC_OK,      MH_CODEC_EZERO,    MH_CODEC_ETOOBIG,
	                    MH_CODEC_ENONUL,  MH_CODEC_ESIZE,    MH_CODEC_EUNKNOWN,
	                    MH_CODEC_EFAMILY, MH_CODEC_ETOOMANY, MH_CODEC_EVALUE};
	size_t i, j;

	(void)state;
	for (i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
		assert_non_null(mh_codec_strerror(errs[i]));
		for (j = 0; j < i; j++)
			assert_string_not_equal(mh_codec_strerror(errs[i]),
			                        mh_codec_strerror(errs[j]));
	}
	assert_string_equal(mh_codec_strerror(MH_CODEC_EZERO), "frame length 0");
	assert_string_equal(mh_codec_strerror(-100), "unknown codec error");
}

/* ---------------------------------------------------------- negotiation */

static void optneg_v2_round_trip(void **state)
{
	struct fx *f = *state;
	struct mh_optneg o = {2, MH_ACT_V2_MASK, MH_PROTO_V2_MASK, {NULL}};
	int s;

	mh_codec_put_optneg(&f->b, &o);
	assert_bytes(&f->b, RAW("\0\0\0\x0dO\0\0\0\2\0\0\0\x3f\0\0\0\x7f"));
	assert_int_equal(cmd_of(f), MH_CODEC_OK);
	assert_int_equal(f->cmd.code, MH_CMD_OPTNEG);
	assert_int_equal(f->cmd.u.optneg.version, 2);
	assert_int_equal(f->cmd.u.optneg.actions, 0x3f);
	assert_int_equal(f->cmd.u.optneg.protocol, 0x7f);
	for (s = 0; s < MH_STAGE_COUNT; s++)
		assert_null(f->cmd.u.optneg.macros[s]);

	mh_codec_put_optneg(&f->b, &o);
	assert_int_equal(reply_of(f), MH_CODEC_OK);
	assert_int_equal(f->rep.code, MH_REP_OPTNEG);
	assert_int_equal(f->rep.u.optneg.version, 2);
}

static void optneg_v4_round_trip(void **state)
{
	struct fx *f = *state;
	struct mh_optneg o = {4, MH_ACT_V2_MASK, MH_PROTO_V4_MASK, {NULL}};

	mh_codec_put_optneg(&f->b, &o);
	assert_bytes(&f->b, RAW("\0\0\0\x0dO\0\0\0\4\0\0\0\x3f\0\0\x03\x7f"));
	assert_int_equal(cmd_of(f), MH_CODEC_OK);
	assert_int_equal(f->cmd.u.optneg.version, 4);
	assert_int_equal(f->cmd.u.optneg.protocol, 0x37f);
}

static void optneg_v6_postfix_offer_and_macro_trailer(void **state)
{
	struct fx *f = *state;
	struct mh_optneg offer = {6, MH_ACT_V6_MASK, MH_PROTO_V6_MASK, {NULL}};
	struct mh_optneg reply = {
	    6, MH_ACT_ADDHDRS | MH_ACT_SETSYMLIST, MH_PROTO_NOHELO | MH_PROTO_NR_HDR, {NULL}};

	/* protocol doc 4.1: Postfix with milter_protocol = 6 */
	mh_codec_put_optneg(&f->b, &offer);
	assert_bytes(&f->b, RAW("\0\0\0\x0dO\0\0\0\6\0\0\1\xff\0\x1f\xff\xff"));
	assert_int_equal(cmd_of(f), MH_CODEC_OK);
	assert_int_equal(f->cmd.u.optneg.actions, 0x1ff);
	assert_int_equal(f->cmd.u.optneg.protocol, 0x1fffff);

	/* The trailer goes out in SMFIM order, only for the stages set. */
	reply.macros[MH_STAGE_EOH] = "i";
	reply.macros[MH_STAGE_CONNECT] = "{client_addr} j";
	reply.macros[MH_STAGE_EOM] = "";
	mh_codec_put_optneg(&f->b, &reply);
	assert_bytes(&f->b, RAW("\0\0\0\x2cO\0\0\0\6\0\0\1\1\0\0\0\x82"
	                        "\0\0\0\0{client_addr} j\0"
	                        "\0\0\0\5\0"
	                        "\0\0\0\6i\0"));
	assert_int_equal(reply_of(f), MH_CODEC_OK);
	assert_int_equal(f->rep.u.optneg.version, 6);
	assert_int_equal(f->rep.u.optneg.actions, 0x101);
	assert_int_equal(f->rep.u.optneg.protocol, 0x82);
	assert_string_equal(f->rep.u.optneg.macros[MH_STAGE_CONNECT], "{client_addr} j");
	assert_string_equal(f->rep.u.optneg.macros[MH_STAGE_EOM], "");
	assert_string_equal(f->rep.u.optneg.macros[MH_STAGE_EOH], "i");
	assert_null(f->rep.u.optneg.macros[MH_STAGE_HELO]);
	assert_null(f->rep.u.optneg.macros[MH_STAGE_MAIL]);
	assert_null(f->rep.u.optneg.macros[MH_STAGE_RCPT]);
	assert_null(f->rep.u.optneg.macros[MH_STAGE_DATA]);

	/* Any stage order is accepted on input. */
	assert_int_equal(raw_reply(f, 'O',
	                           RAW("\0\0\0\6\0\0\1\0\0\0\0\0"
	                               "\0\0\0\3{rcpt_addr}\0"
	                               "\0\0\0\2{mail_addr}\0")),
	                 MH_CODEC_OK);
	assert_string_equal(f->rep.u.optneg.macros[MH_STAGE_RCPT], "{rcpt_addr}");
	assert_string_equal(f->rep.u.optneg.macros[MH_STAGE_MAIL], "{mail_addr}");
}

static void optneg_answer_takes_the_lower_version(void **state)
{
	struct mh_optneg offer = {6, MH_ACT_V6_MASK, MH_PROTO_V6_MASK, {NULL}};
	struct mh_optneg want = {2, MH_ACT_ADDHDRS, 0, {NULL}};
	struct mh_optneg reply;

	(void)state;
	assert_int_equal(mh_optneg_answer(&offer, &want, &reply), MH_CODEC_OK);
	assert_int_equal(reply.version, 2);
	assert_int_equal(reply.actions, MH_ACT_ADDHDRS);

	offer.version = 4;
	want.version = 6;
	assert_int_equal(mh_optneg_answer(&offer, &want, &reply), MH_CODEC_OK);
	assert_int_equal(reply.version, 4);

	offer.version = 7; /* a future MTA */
	assert_int_equal(mh_optneg_answer(&offer, &want, &reply), MH_CODEC_OK);
	assert_int_equal(reply.version, 6);
}

static void optneg_answer_refuses_versions_below_2(void **state)
{
	struct mh_optneg offer = {1, 0x0f, 0x3f, {NULL}};
	struct mh_optneg want = {6, 0, 0, {NULL}};
	struct mh_optneg reply;

	(void)state;
	memset(&reply, 0xa5, sizeof(reply));
	assert_int_equal(mh_optneg_answer(&offer, &want, &reply), MH_CODEC_EVALUE);
	assert_int_equal(reply.version, 0);
	offer.version = 0;
	assert_int_equal(mh_optneg_answer(&offer, &want, &reply), MH_CODEC_EVALUE);
	offer.version = 6;
	want.version = 1;
	assert_int_equal(mh_optneg_answer(&offer, &want, &reply), MH_CODEC_EVALUE);
}

static void optneg_answer_drops_nr_bits_not_offered(void **state)
{
	struct mh_optneg offer = {2, MH_ACT_V2_MASK, MH_PROTO_V2_MASK, {NULL}};
	struct mh_optneg want = {6,
	                         0,
	                         MH_PROTO_NOHELO | MH_PROTO_NR_HDR | MH_PROTO_NR_CONN |
	                             MH_PROTO_NR_BODY | MH_PROTO_NODATA | MH_PROTO_NOUNKNOWN,
	                         {NULL}};
	struct mh_optneg reply;

	(void)state;
	/* A v2 MTA knows no NR bits, no DATA and no UNKNOWN step. */
	assert_int_equal(mh_optneg_answer(&offer, &want, &reply), MH_CODEC_OK);
	assert_int_equal(reply.protocol, MH_PROTO_NOHELO);

	/* A v6 MTA offering them gets them all. */
	offer.version = 6;
	offer.protocol = MH_PROTO_V6_MASK;
	assert_int_equal(mh_optneg_answer(&offer, &want, &reply), MH_CODEC_OK);
	assert_int_equal(reply.protocol, want.protocol);

	/* Only the bits not offered are dropped (0x37F lacks NR_HDR 0x80). */
	offer.protocol = MH_PROTO_V4_MASK | MH_PROTO_NR_CONN;
	assert_int_equal(mh_optneg_answer(&offer, &want, &reply), MH_CODEC_OK);
	assert_int_equal(reply.protocol,
	                 MH_PROTO_NOHELO | MH_PROTO_NR_CONN | MH_PROTO_NODATA | MH_PROTO_NOUNKNOWN);
}

static void optneg_answer_offer_zero_means_v1_flags(void **state)
{
	struct mh_optneg offer = {2, 0, 0, {NULL}};
	struct mh_optneg want = {6, 0x0f, MH_PROTO_NOBODY | MH_PROTO_NOHDRS, {NULL}};
	struct mh_optneg reply;

	(void)state;
	assert_int_equal(mh_optneg_answer(&offer, &want, &reply), MH_CODEC_OK);
	assert_int_equal(reply.actions, 0x0f);
	assert_int_equal(reply.protocol, MH_PROTO_NOBODY | MH_PROTO_NOHDRS);

	want.actions = MH_ACT_QUARANTINE; /* 0x20: not in 0x0F */
	assert_int_equal(mh_optneg_answer(&offer, &want, &reply), MH_CODEC_EVALUE);
	want.actions = 0;
	want.protocol = MH_PROTO_NOEOH; /* 0x40: not in 0x3F */
	assert_int_equal(mh_optneg_answer(&offer, &want, &reply), MH_CODEC_EVALUE);
}

static void optneg_answer_refuses_what_was_not_offered(void **state)
{
	struct mh_optneg offer = {6, MH_ACT_V2_MASK, MH_PROTO_V2_MASK, {NULL}};
	struct mh_optneg want = {6, MH_ACT_ADDHDRS | MH_ACT_CHGFROM, 0, {NULL}};
	struct mh_optneg reply;

	(void)state;
	memset(&reply, 0xa5, sizeof(reply));
	assert_int_equal(mh_optneg_answer(&offer, &want, &reply), MH_CODEC_EVALUE);
	assert_int_equal(reply.actions, 0);
	assert_int_equal(reply.protocol, 0);

	/* A feature bit (SKIP) cannot be dropped like an NR bit. */
	want.actions = MH_ACT_ADDHDRS;
	want.protocol = MH_PROTO_SKIP;
	assert_int_equal(mh_optneg_answer(&offer, &want, &reply), MH_CODEC_EVALUE);
	offer.protocol |= MH_PROTO_SKIP;
	assert_int_equal(mh_optneg_answer(&offer, &want, &reply), MH_CODEC_OK);
	assert_int_equal(reply.protocol, MH_PROTO_SKIP);
}

static void optneg_answer_copies_macros_only_for_v6(void **state)
{
	struct mh_optneg offer = {6, MH_ACT_V6_MASK, MH_PROTO_V6_MASK, {NULL}};
	struct mh_optneg want = {6, MH_ACT_SETSYMLIST, 0, {NULL}};
	struct mh_optneg reply;

	(void)state;
	want.macros[MH_STAGE_RCPT] = "{rcpt_addr}";
	assert_int_equal(mh_optneg_answer(&offer, &want, &reply), MH_CODEC_OK);
	assert_ptr_equal(reply.macros[MH_STAGE_RCPT], want.macros[MH_STAGE_RCPT]);

	offer.version = 4;
	want.actions = 0;
	assert_int_equal(mh_optneg_answer(&offer, &want, &reply), MH_CODEC_OK);
	assert_int_equal(reply.version, 4);
	assert_null(reply.macros[MH_STAGE_RCPT]);
}

static void optneg_answer_reply_may_alias_input(void **state)
{
	struct mh_optneg offer = {4, MH_ACT_V2_MASK, MH_PROTO_V4_MASK, {NULL}};
	struct mh_optneg want = {6, MH_ACT_ADDHDRS, MH_PROTO_NOBODY, {NULL}};

	(void)state;
	assert_int_equal(mh_optneg_answer(&offer, &want, &want), MH_CODEC_OK);
	assert_int_equal(want.version, 4);
	assert_int_equal(want.actions, MH_ACT_ADDHDRS);
	assert_int_equal(want.protocol, MH_PROTO_NOBODY);
}

static void optneg_check_mta_side(void **state)
{
	struct mh_optneg offer = {6, MH_ACT_V6_MASK, MH_PROTO_V6_MASK, {NULL}};
	struct mh_optneg reply = {6, MH_ACT_ADDHDRS | MH_ACT_CHGBODY, MH_PROTO_NR_HDR, {NULL}};

	(void)state;
	assert_int_equal(mh_optneg_check(&offer, &reply), MH_CODEC_OK);
	reply.version = 2; /* lower is fine: we then speak v2 */
	assert_int_equal(mh_optneg_check(&offer, &reply), MH_CODEC_OK);
	reply.version = 7;
	assert_int_equal(mh_optneg_check(&offer, &reply), MH_CODEC_EVALUE);
	reply.version = 1;
	assert_int_equal(mh_optneg_check(&offer, &reply), MH_CODEC_EVALUE);
	reply.version = 0;
	assert_int_equal(mh_optneg_check(&offer, &reply), MH_CODEC_EVALUE);

	reply.version = 4;
	offer.version = 4;
	offer.actions = MH_ACT_V2_MASK;
	assert_int_equal(mh_optneg_check(&offer, &reply), MH_CODEC_OK);
	reply.actions |= MH_ACT_CHGFROM;
	assert_int_equal(mh_optneg_check(&offer, &reply), MH_CODEC_EVALUE);

	/* Like Postfix, the protocol word is not held against the offer. */
	reply.actions = 0;
	offer.protocol = MH_PROTO_V4_MASK;
	reply.protocol = MH_PROTO_SKIP;
	assert_int_equal(mh_optneg_check(&offer, &reply), MH_CODEC_OK);
}

static void optneg_masks_per_version(void **state)
{
	(void)state;
	assert_int_equal(mh_optneg_action_mask(1), 0x0f);
	assert_int_equal(mh_optneg_action_mask(2), 0x3f);
	assert_int_equal(mh_optneg_action_mask(3), 0x3f);
	assert_int_equal(mh_optneg_action_mask(5), 0x3f);
	assert_int_equal(mh_optneg_action_mask(6), 0x1ff);
	assert_int_equal(mh_optneg_action_mask(99), 0x1ff);

	assert_int_equal(mh_optneg_protocol_mask(1), 0x3f);
	assert_int_equal(mh_optneg_protocol_mask(2), 0x7f);
	assert_int_equal(mh_optneg_protocol_mask(3), 0x17f);
	assert_int_equal(mh_optneg_protocol_mask(4), 0x37f);
	assert_int_equal(mh_optneg_protocol_mask(5), 0x37f);
	assert_int_equal(mh_optneg_protocol_mask(6), 0x1fffff);
	assert_int_equal(mh_optneg_protocol_mask(99), 0x1fffff);
}

static void macro_stage_numbers_and_bytes(void **state)
{
	static const struct {
		enum mh_macro_stage stage;
		uint8_t cmd;
	} map[] = {
	    {MH_STAGE_CONNECT, 'C'}, {MH_STAGE_HELO, 'H'}, {MH_STAGE_MAIL, 'M'},
	    {MH_STAGE_RCPT, 'R'},    {MH_STAGE_DATA, 'T'}, {MH_STAGE_EOM, 'E'},
	    {MH_STAGE_EOH, 'N'},
	};
	size_t i;

	(void)state;
	assert_int_equal(MH_STAGE_EOM, 5);
	assert_int_equal(MH_STAGE_EOH, 6);
	for (i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		assert_int_equal(mh_macro_stage_cmd(map[i].stage), map[i].cmd);
		assert_int_equal(mh_macro_stage_of_cmd(map[i].cmd), (int)map[i].stage);
	}
	assert_int_equal(mh_macro_stage_cmd(MH_STAGE_COUNT), 0);
	assert_int_equal(mh_macro_stage_of_cmd('L'), -1);
	assert_int_equal(mh_macro_stage_of_cmd('B'), -1);
	assert_int_equal(mh_macro_stage_of_cmd('U'), -1);
	assert_int_equal(mh_macro_stage_of_cmd(0), -1);
}

static void reply_classes(void **state)
{
	const char *decisions = "acdrtys4f";
	const char *edits = "+-2behim";
	int c;

	(void)state;
	for (c = 0; c < 256; c++) {
		int d = c != 0 && strchr(decisions, c) != NULL;
		int m = c != 0 && strchr(edits, c) != NULL;

		assert_int_equal(mh_reply_is_decision((uint8_t)c), d);
		assert_int_equal(mh_reply_is_modification((uint8_t)c), m);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    FX_TEST(smallest_frame_is_a_continue),
	    FX_TEST(frame_length_zero_is_ezero_and_sticky),
	    FX_TEST(frame_above_max_payload_is_etoobig_before_allocating),
	    FX_TEST(reader_buffer_grows_to_the_largest_frame),
	    FX_TEST(reader_appends_nul_after_payload),
	    FX_TEST(reader_stops_after_each_frame_and_reports_idle),
	    FX_TEST(reader_free_allows_reuse),
	    FX_TEST(stream_split_anywhere_decodes_identically),
	    FX_TEST(stream_with_full_size_body_chunks),
	    FX_TEST(cmd_empty_codes_round_trip),
	    FX_TEST(cmd_body_and_eob_round_trip),
	    FX_TEST(cmd_connect_round_trip_all_families),
	    FX_TEST(cmd_macro_round_trip),
	    FX_TEST(cmd_macro_odd_count_drops_the_lone_name),
	    FX_TEST(cmd_helo_unknown_header_round_trip),
	    FX_TEST(cmd_mail_rcpt_round_trip),
	    FX_TEST(reply_empty_codes_round_trip),
	    FX_TEST(reply_rcpt_edits_round_trip),
	    FX_TEST(reply_chgfrom_round_trip),
	    FX_TEST(reply_header_edits_round_trip),
	    FX_TEST(reply_body_quarantine_replycode_round_trip),
	    FX_TEST(reply_replycode_round_trip),
	    FX_TEST(put_reply_re_encodes_every_decoded_reply),
	    FX_TEST(missing_nul_is_enonul),
	    FX_TEST(payload_on_empty_codes_is_esize),
	    FX_TEST(wrong_layout_size_is_esize),
	    FX_TEST(optneg_short_or_bad_trailer_is_esize),
	    FX_TEST(optneg_trailer_bad_stage_is_evalue),
	    FX_TEST(connect_unknown_family_is_efamily),
	    FX_TEST(too_many_strs_is_etoomany),
	    FX_TEST(unknown_code_is_eunknown),
	    FX_TEST(malformed_replycode_is_evalue),
	    FX_TEST(replytext_rules),
	    FX_TEST(strerror_names_every_error),
	    FX_TEST(optneg_v2_round_trip),
	    FX_TEST(optneg_v4_round_trip),
	    FX_TEST(optneg_v6_postfix_offer_and_macro_trailer),
	    FX_TEST(optneg_answer_takes_the_lower_version),
	    FX_TEST(optneg_answer_refuses_versions_below_2),
	    FX_TEST(optneg_answer_drops_nr_bits_not_offered),
	    FX_TEST(optneg_answer_offer_zero_means_v1_flags),
	    FX_TEST(optneg_answer_refuses_what_was_not_offered),
	    FX_TEST(optneg_answer_copies_macros_only_for_v6),
	    FX_TEST(optneg_answer_reply_may_alias_input),
	    FX_TEST(optneg_check_mta_side),
	    FX_TEST(optneg_masks_per_version),
	    FX_TEST(macro_stage_numbers_and_bytes),
	    FX_TEST(reply_classes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
