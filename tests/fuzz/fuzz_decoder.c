/*
 * fuzz_decoder - libFuzzer target for the frame reader and the decoders
 * of protocol/mh_codec.h.
 *
 * Input: byte 0 chooses how the rest is cut into chunks and the reader's
 * payload limit; the rest is a milter byte stream. Every frame is decoded
 * both as a command and as a reply. Whatever decodes is encoded again,
 * framed by a second reader and decoded again; the result must equal the
 * first decode (and, except for 'D' and 'O', be byte-identical: the
 * decoders are strict, so a valid packet has exactly one encoding).
 * A failed reader must stay failed. Built and run by build-and-run.sh.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/mh_codec.h"
#include "util/mh_buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz_decoder: invariant broken: %s\n", what);
		abort();
	}
}

/* Read every byte of a decoded string, so ASan sees an over-read. */
static volatile size_t sink;

static int same_str(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	sink += strlen(a);
	return strcmp(a, b) == 0;
}

static int same_bytes(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

static int same_optneg(const struct mh_optneg *a, const struct mh_optneg *b)
{
	int s;

	if (a->version != b->version || a->actions != b->actions || a->protocol != b->protocol)
		return 0;
	for (s = 0; s < MH_STAGE_COUNT; s++)
		if (!same_str(a->macros[s], b->macros[s]))
			return 0;
	return 1;
}

static int same_strv(const char *const *a, const char *const *b, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!same_str(a[i], b[i]))
			return 0;
	return 1;
}

/* ------------------------------------------------------------ commands */

static void encode_cmd(struct mh_buf *b, const struct mh_cmd *c)
{
	switch (c->code) {
	case MH_CMD_ABORT:
	case MH_CMD_QUIT_NC:
	case MH_CMD_EOH:
	case MH_CMD_QUIT:
	case MH_CMD_DATA:
		mh_codec_put_empty(b, c->code);
		break;
	case MH_CMD_BODY:
	case MH_CMD_EOB:
		mh_codec_put_raw(b, c->code, c->u.body.data, c->u.body.len);
		break;
	case MH_CMD_CONNECT:
		mh_codec_put_connect(b, c->u.connect.hostname, c->u.connect.family,
		                     c->u.connect.port, c->u.connect.address);
		break;
	case MH_CMD_MACRO:
		mh_codec_put_macro(b, c->u.macro.stage, c->u.macro.pairs, c->u.macro.npairs);
		break;
	case MH_CMD_HELO:
		mh_codec_put_str(b, c->code, c->u.helo.name);
		break;
	case MH_CMD_HEADER:
		mh_codec_put_header(b, c->code, c->u.header.name, c->u.header.value);
		break;
	case MH_CMD_MAIL:
	case MH_CMD_RCPT:
		mh_codec_put_strs(b, c->code, c->u.env.argv, c->u.env.argc);
		break;
	case MH_CMD_OPTNEG:
		mh_codec_put_optneg(b, &c->u.optneg);
		break;
	case MH_CMD_UNKNOWN:
		mh_codec_put_str(b, c->code, c->u.unknown.line);
		break;
	default:
		require(0, "decoded an unknown command code");
	}
}

static int same_cmd(const struct mh_cmd *a, const struct mh_cmd *b)
{
	if (a->code != b->code)
		return 0;
	switch (a->code) {
	case MH_CMD_BODY:
	case MH_CMD_EOB:
		return same_bytes(a->u.body.data, a->u.body.len, b->u.body.data, b->u.body.len);
	case MH_CMD_CONNECT:
		return same_str(a->u.connect.hostname, b->u.connect.hostname) &&
		       a->u.connect.family == b->u.connect.family &&
		       a->u.connect.port == b->u.connect.port &&
		       same_str(a->u.connect.address, b->u.connect.address);
	case MH_CMD_MACRO:
		return a->u.macro.stage == b->u.macro.stage &&
		       a->u.macro.npairs == b->u.macro.npairs &&
		       same_strv(a->u.macro.pairs, b->u.macro.pairs, 2 * a->u.macro.npairs);
	case MH_CMD_HELO:
		return same_str(a->u.helo.name, b->u.helo.name);
	case MH_CMD_HEADER:
		return same_str(a->u.header.name, b->u.header.name) &&
		       same_str(a->u.header.value, b->u.header.value);
	case MH_CMD_MAIL:
	case MH_CMD_RCPT:
		return a->u.env.argc == b->u.env.argc &&
		       same_strv(a->u.env.argv, b->u.env.argv, a->u.env.argc);
	case MH_CMD_OPTNEG:
		return same_optneg(&a->u.optneg, &b->u.optneg);
	case MH_CMD_UNKNOWN:
		return same_str(a->u.unknown.line, b->u.unknown.line);
	}
	return 1; /* no payload */
}

/* ------------------------------------------------------------- replies */

/* The codec's re-encoder; a decoded 'y' text must also pass the checked encoder. */
static void encode_reply(struct mh_buf *b, const struct mh_reply *r)
{
	if (r->code == MH_REP_REPLYCODE) {
		struct mh_buf chk = MH_BUF_INIT;
		require(mh_codec_put_replycode(&chk, r->u.replycode.text) == MH_CODEC_OK,
		        "a decoded 'y' text fails the encoder's check");
		mh_buf_free(&chk);
	}
	require(r->code == MH_REP_OPTNEG || mh_reply_is_decision(r->code) ||
	            mh_reply_is_modification(r->code) || r->code == MH_REP_PROGRESS ||
	            r->code == MH_REP_QUARANTINE,
	        "decoded an unknown reply code");
	mh_codec_put_reply(b, r);
}

static int same_reply(const struct mh_reply *a, const struct mh_reply *b)
{
	if (a->code != b->code)
		return 0;
	switch (a->code) {
	case MH_REP_ADDRCPT:
	case MH_REP_DELRCPT:
	case MH_REP_ADDRCPT_PAR:
		return same_str(a->u.rcpt.rcpt, b->u.rcpt.rcpt) &&
		       same_str(a->u.rcpt.args, b->u.rcpt.args);
	case MH_REP_CHGFROM:
		return same_str(a->u.chgfrom.addr, b->u.chgfrom.addr) &&
		       same_str(a->u.chgfrom.args, b->u.chgfrom.args);
	case MH_REP_REPLBODY:
		return same_bytes(a->u.replbody.data, a->u.replbody.len, b->u.replbody.data,
		                  b->u.replbody.len);
	case MH_REP_ADDHEADER:
	case MH_REP_INSHEADER:
	case MH_REP_CHGHEADER:
		return a->u.header.index == b->u.header.index &&
		       same_str(a->u.header.name, b->u.header.name) &&
		       same_str(a->u.header.value, b->u.header.value);
	case MH_REP_OPTNEG:
		return same_optneg(&a->u.optneg, &b->u.optneg);
	case MH_REP_QUARANTINE:
		return same_str(a->u.quarantine.reason, b->u.quarantine.reason);
	case MH_REP_REPLYCODE:
		return same_str(a->u.replycode.text, b->u.replycode.text);
	}
	return 1; /* no payload */
}

/* ------------------------------------------------------------- driver */

/* Frame the single packet in b with a fresh reader; r must be freed. */
static void reframe(struct mh_frame_reader *r, size_t max_payload, const struct mh_buf *b,
                    struct mh_packet *p)
{
	size_t used = 0;

	mh_frame_reader_init(r, max_payload);
	require(mh_frame_feed(r, mh_buf_head(b), mh_buf_size(b), &used, p) == 1,
	        "re-encoded packet does not frame");
	require(used == mh_buf_size(b), "re-encoded packet has trailing bytes");
	require(mh_frame_reader_idle(r), "reader not idle after a frame");
}

static void check_packet(const struct mh_packet *p, size_t max_payload)
{
	static const struct mh_optneg want = {6, MH_ACT_ADDHDRS, MH_PROTO_NR_HDR, {NULL}};
	struct mh_frame_reader r2;
	struct mh_buf b = MH_BUF_INIT;
	struct mh_packet p2;
	struct mh_cmd cmd, cmd2;
	struct mh_reply rep, rep2;
	struct mh_optneg answer;

	require(p->data[p->len] == '\0', "payload not followed by NUL");
	require(p->len <= max_payload, "payload above the limit");
	sink += (size_t)mh_codec_valid_replytext((const char *)p->data);
	sink += (size_t)mh_reply_is_decision(p->code) + (size_t)mh_reply_is_modification(p->code);
	sink += (size_t)mh_macro_stage_of_cmd(p->code);

	if (mh_codec_decode_cmd(p, &cmd) == MH_CODEC_OK) {
		encode_cmd(&b, &cmd);
		reframe(&r2, max_payload, &b, &p2);
		require(mh_codec_decode_cmd(&p2, &cmd2) == MH_CODEC_OK, "command re-decode fails");
		require(same_cmd(&cmd, &cmd2), "command changed in a round trip");
		if (p->code != MH_CMD_MACRO && p->code != MH_CMD_OPTNEG)
			require(p2.code == p->code && same_bytes(p->data, p->len, p2.data, p2.len),
			        "command re-encoded differently");
		if (cmd.code == MH_CMD_OPTNEG) {
			sink += (size_t)mh_optneg_answer(&cmd.u.optneg, &want, &answer);
			sink += (size_t)mh_optneg_check(&cmd.u.optneg, &want);
		}
		mh_frame_reader_free(&r2);
		mh_buf_reset(&b);
	}

	if (mh_codec_decode_reply(p, &rep) == MH_CODEC_OK) {
		encode_reply(&b, &rep);
		reframe(&r2, max_payload, &b, &p2);
		require(mh_codec_decode_reply(&p2, &rep2) == MH_CODEC_OK, "reply re-decode fails");
		require(same_reply(&rep, &rep2), "reply changed in a round trip");
		if (p->code != MH_REP_OPTNEG)
			require(p2.code == p->code && same_bytes(p->data, p->len, p2.data, p2.len),
			        "reply re-encoded differently");
		if (rep.code == MH_REP_OPTNEG) {
			sink += (size_t)mh_optneg_check(&want, &rep.u.optneg);
			sink += mh_optneg_action_mask(rep.u.optneg.version) +
			        mh_optneg_protocol_mask(rep.u.optneg.version);
		}
		mh_frame_reader_free(&r2);
	}
	mh_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mh_frame_reader r;
	struct mh_packet p;
	size_t max_payload, chunk[2], used, n;
	unsigned turn = 0;
	int rc;

	if (size == 0)
		return 0;
	/* Byte 0: 0 feeds everything at once; otherwise chunks alternate
	 * between 1..16 and 13..208 bytes. Every fifth selector uses a tiny
	 * payload limit so ETOOBIG paths run too. */
	chunk[0] = data[0] == 0 ? size : (size_t)(data[0] & 0x0f) + 1;
	chunk[1] = data[0] == 0 ? size : (size_t)((data[0] >> 4) + 1) * 13;
	max_payload = data[0] % 5 == 4 ? 32 : MH_PAYLOAD_DEFAULT_MAX;
	data++;
	size--;

	mh_frame_reader_init(&r, max_payload);
	while (size > 0) {
		n = chunk[turn++ % 2];
		if (n > size)
			n = size;
		size -= n;
		while (n > 0) {
			rc = mh_frame_feed(&r, data, n, &used, &p);
			require(used <= n, "consumed more than given");
			if (rc < 0) {
				/* Sticky: the same error again, nothing consumed. */
				require(mh_frame_feed(&r, data, n, &used, &p) == rc && used == 0,
				        "failure is not sticky");
				require(!mh_frame_reader_idle(&r), "failed reader claims idle");
				goto done;
			}
			if (rc == 1)
				check_packet(&p, max_payload);
			else
				require(rc == 0 && used == n, "need-more without consuming all");
			data += used;
			n -= used;
		}
	}
done:
	mh_frame_reader_free(&r);
	return 0;
}
