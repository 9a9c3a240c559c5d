/*
 * NAME
 *	mh_codec 3
 * SUMMARY
 *	milter wire protocol: frame reader, decoders, encoders
 * SYNOPSIS
 *	#include "protocol/mh_codec.h"
 *
 *	void	mh_frame_reader_init(struct mh_frame_reader *r, size_t max_payload);
 *	void	mh_frame_reader_free(struct mh_frame_reader *r);
 *	int	mh_frame_feed(struct mh_frame_reader *r, const uint8_t *data,
 *			size_t n, size_t *consumed, struct mh_packet *out);
 *	int	mh_frame_reader_idle(const struct mh_frame_reader *r);
 *
 *	int	mh_codec_decode_cmd(const struct mh_packet *p, struct mh_cmd *out);
 *	int	mh_codec_decode_reply(const struct mh_packet *p, struct mh_reply *out);
 *	int	mh_reply_is_decision(uint8_t code);
 *	int	mh_reply_is_modification(uint8_t code);
 *
 *	void	mh_codec_put_*(struct mh_buf *b, ...);
 *	int	mh_codec_put_replycode(struct mh_buf *b, const char *text);
 *	void	mh_codec_put_reply(struct mh_buf *b, const struct mh_reply *r);
 *	int	mh_codec_valid_replytext(const char *text);
 *	const char *mh_codec_strerror(int err);
 * DESCRIPTION
 *	This module turns the byte stream of a milter connection into
 *	packets and packets into commands or replies, and back. It does
 *	no I/O and keeps no global state. Negotiation policy (what to
 *	answer to an 'O', what to accept in one) lives in mh_optneg.c.
 *
 *	mh_frame_reader_init() prepares a reader that accepts payloads of
 *	at most max_payload bytes. mh_frame_reader_free() releases its
 *	buffer; the reader may be used again afterwards.
 *
 *	mh_frame_feed() consumes input until one frame is complete, so a
 *	stream cut at any byte boundary yields the same packets. The
 *	length word is checked as soon as its four bytes are in, before
 *	anything is allocated: 0 is MH_CODEC_EZERO (no code byte follows),
 *	a payload above max_payload is MH_CODEC_ETOOBIG. The payload is
 *	collected in one buffer that grows to the largest frame seen plus
 *	one byte: the reader stores a NUL after every payload, so text
 *	fields are C strings even when a caller forgets the length. An
 *	error is sticky: the reader returns it again, consuming nothing,
 *	until mh_frame_reader_free(). mh_frame_reader_idle() is true
 *	between frames (EOF there is a clean close).
 *
 *	mh_codec_decode_cmd() and mh_codec_decode_reply() check a packet
 *	against the layout of its code (protocol doc sections 2-4) and fill
 *	a struct whose strings point into the packet (zero copy). The checks
 *	never read past p->len and never rely on the NUL the reader adds.
 *	A field that is absent because the payload ended is MH_CODEC_ESIZE;
 *	a string that is present but not NUL-terminated is MH_CODEC_ENONUL;
 *	bytes after the last field are MH_CODEC_ESIZE. Codes that carry no
 *	payload (A K N Q T; a c d f p r s t 4) must be empty. A 'D' packet
 *	may hold zero pairs and any stage byte (Postfix sends 'L', 'B');
 *	a trailing name without value is dropped, as libmilter ignores it.
 *	The 'O' layout (three u32 and an optional trailer of u32 stage +
 *	str list, stages 0..6, each at most once) is decoded the same way
 *	in both directions; version and flags are not judged here.
 *	A 'y' text must pass mh_codec_valid_replytext().
 *
 *	mh_codec_valid_replytext() returns 1 when text is an SMTP reply an
 *	MTA accepts from 'y' (Postfix 3.12's check, the strictest): lines
 *	separated by CRLF, none after the last, no other CR or LF; every
 *	line starts with [45]dd followed by ' ' or '-' ('-' not on the
 *	last line, which may also end right after the code); an enhanced
 *	status code, if present, starts with the same digit as the reply
 *	code. It returns 0 otherwise.
 *
 *	The encoders append one complete frame to a caller-owned mh_buf.
 *	They compute the length first and never patch it afterwards, so
 *	they work on a buffer with unconsumed output in it. They do not
 *	enforce decoder limits (tests build oversized packets with them);
 *	only mh_codec_put_replycode() refuses bad input. mh_codec_put_reply()
 *	re-encodes a decoded reply of any code (a proxy forwards a child's
 *	modification as it came); for the same struct it produces the bytes
 *	the decoder read, except that an 'O' trailer comes out in stage order.
 * DIAGNOSTICS
 *	Decoders and the frame reader return one enum mh_codec_err value
 *	per kind of malformation; mh_codec_strerror() names it. Encoders
 *	assert that a frame's length fits its 32-bit length word.
 * SEE ALSO
 *	../shared/docs/milter-protocol.md, the wire protocol facts
 *	mh_optneg.c, negotiation helpers
 */

#include "protocol/mh_codec.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "util/mh_buf.h"

#define FRAME_LEN_BYTES 4 /* the length word */
#define FRAME_HDR_BYTES 5 /* length word and code byte */
#define OPTNEG_FIXED_BYTES 12

/* Return the error of e, if any, from the calling function. */
#define TRY(e)                                                                                     \
	do {                                                                                       \
		int try_err_ = (e);                                                                \
		if (try_err_ != MH_CODEC_OK)                                                       \
			return try_err_;                                                           \
	} while (0)

const char *mh_codec_strerror(int err)
{
	switch (err) {
	case MH_CODEC_OK:
		return "success";
	case MH_CODEC_EZERO:
		return "frame length 0";
	case MH_CODEC_ETOOBIG:
		return "frame payload too big";
	case MH_CODEC_ENONUL:
		return "string field without NUL terminator";
	case MH_CODEC_ESIZE:
		return "payload size does not match the packet layout";
	case MH_CODEC_EUNKNOWN:
		return "unknown command or reply code";
	case MH_CODEC_EFAMILY:
		return "unknown address family in CONNECT";
	case MH_CODEC_ETOOMANY:
		return "too many strings in one packet";
	case MH_CODEC_EVALUE:
		return "field value out of range";
	}
	return "unknown codec error";
}

/* ---------------------------------------------------------------- frames */

void mh_frame_reader_init(struct mh_frame_reader *r, size_t max_payload)
{
	memset(r, 0, sizeof(*r));
	r->max_payload = max_payload;
}

void mh_frame_reader_free(struct mh_frame_reader *r)
{
	free(r->buf);
	mh_frame_reader_init(r, r->max_payload);
}

int mh_frame_reader_idle(const struct mh_frame_reader *r)
{
	return r->failed == 0 && r->hdr_have == 0;
}

static uint32_t get_u32be(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The length word is in: bound it, then make room for payload + NUL. */
static int start_frame(struct mh_frame_reader *r)
{
	size_t need;

	r->frame_len = get_u32be(r->hdr);
	if (r->frame_len == 0)
		return MH_CODEC_EZERO;
	if (r->frame_len - 1 > r->max_payload)
		return MH_CODEC_ETOOBIG;
	need = r->frame_len; /* payload (frame_len - 1) + the NUL we append */
	if (r->buf_cap < need) {
		r->buf = mh_xrealloc(r->buf, need);
		r->buf_cap = need;
	}
	r->buf_have = 0;
	return MH_CODEC_OK;
}

int mh_frame_feed(struct mh_frame_reader *r, const uint8_t *data, size_t n, size_t *consumed,
                  struct mh_packet *out)
{
	size_t used = 0;
	size_t payload;
	size_t take;
	int err;

	*consumed = 0;
	if (r->failed != 0)
		return r->failed;

	while (r->hdr_have < FRAME_HDR_BYTES) {
		if (used == n) {
			*consumed = used;
			return 0;
		}
		r->hdr[r->hdr_have++] = data[used++];
		if (r->hdr_have == FRAME_LEN_BYTES && (err = start_frame(r)) != MH_CODEC_OK) {
			*consumed = used;
			r->failed = err;
			return err;
		}
	}

	payload = r->frame_len - 1;
	take = payload - r->buf_have;
	if (take > n - used)
		take = n - used;
	if (take > 0) {
		memcpy(r->buf + r->buf_have, data + used, take);
		r->buf_have += take;
		used += take;
	}
	*consumed = used;
	if (r->buf_have < payload)
		return 0;

	r->buf[payload] = '\0';
	out->code = r->hdr[4];
	out->data = r->buf;
	out->len = payload;
	/* The next call starts a new frame; the payload stays until then. */
	r->hdr_have = 0;
	r->buf_have = 0;
	return 1;
}

/* ------------------------------------------------------ payload cursor */

struct cursor {
	const uint8_t *p;
	size_t left;
};

static int cur_byte(struct cursor *c, uint8_t *v)
{
	if (c->left < 1)
		return MH_CODEC_ESIZE;
	*v = c->p[0];
	c->p += 1;
	c->left -= 1;
	return MH_CODEC_OK;
}

static int cur_u16(struct cursor *c, uint16_t *v)
{
	if (c->left < 2)
		return MH_CODEC_ESIZE;
	*v = (uint16_t)(c->p[0] << 8 | c->p[1]);
	c->p += 2;
	c->left -= 2;
	return MH_CODEC_OK;
}

static int cur_u32(struct cursor *c, uint32_t *v)
{
	if (c->left < 4)
		return MH_CODEC_ESIZE;
	*v = get_u32be(c->p);
	c->p += 4;
	c->left -= 4;
	return MH_CODEC_OK;
}

static int cur_str(struct cursor *c, const char **s)
{
	const uint8_t *nul;

	if (c->left == 0)
		return MH_CODEC_ESIZE;
	nul = memchr(c->p, '\0', c->left);
	if (nul == NULL)
		return MH_CODEC_ENONUL;
	*s = (const char *)c->p;
	c->left -= (size_t)(nul - c->p) + 1;
	c->p = nul + 1;
	return MH_CODEC_OK;
}

/* An optional trailing str: NULL when the payload ends here. */
static int cur_opt_str(struct cursor *c, const char **s)
{
	*s = NULL;
	return c->left > 0 ? cur_str(c, s) : MH_CODEC_OK;
}

/* strs up to the payload end, at most MH_ARGS_MAX of them. */
static int cur_strs(struct cursor *c, const char **v, size_t *n)
{
	*n = 0;
	while (c->left > 0) {
		if (*n == MH_ARGS_MAX)
			return MH_CODEC_ETOOMANY;
		TRY(cur_str(c, &v[*n]));
		*n += 1;
	}
	return MH_CODEC_OK;
}

static int cur_end(const struct cursor *c)
{
	return c->left == 0 ? MH_CODEC_OK : MH_CODEC_ESIZE;
}

/* ------------------------------------------------------------ decoding */

/* 'O', both directions: version, actions, protocol, then the trailer. */
static int decode_optneg(struct cursor *c, struct mh_optneg *o)
{
	uint32_t stage;

	if (c->left < OPTNEG_FIXED_BYTES)
		return MH_CODEC_ESIZE;
	TRY(cur_u32(c, &o->version));
	TRY(cur_u32(c, &o->actions));
	TRY(cur_u32(c, &o->protocol));
	while (c->left > 0) {
		TRY(cur_u32(c, &stage));
		/* One list per stage: a repeated stage has no meaning we could keep. */
		if (stage >= MH_STAGE_COUNT || o->macros[stage] != NULL)
			return MH_CODEC_EVALUE;
		TRY(cur_str(c, &o->macros[stage]));
	}
	return MH_CODEC_OK;
}

static int decode_connect(struct cursor *c, struct mh_cmd *out)
{
	uint8_t family;

	TRY(cur_str(c, &out->u.connect.hostname));
	TRY(cur_byte(c, &family));
	switch (family) {
	case 'U': /* no port, no address */
		out->u.connect.family = 'U';
		return cur_end(c);
	case 'L':
	case '4':
	case '6':
		out->u.connect.family = (char)family;
		break;
	default:
		return MH_CODEC_EFAMILY;
	}
	TRY(cur_u16(c, &out->u.connect.port));
	TRY(cur_str(c, &out->u.connect.address));
	return cur_end(c);
}

static int decode_macro(struct cursor *c, struct mh_cmd *out)
{
	size_t nstrs;

	TRY(cur_byte(c, &out->u.macro.stage));
	TRY(cur_strs(c, out->u.macro.pairs, &nstrs));
	/* protocol doc 9.2: accept an odd count; the lone name has no value. */
	if (nstrs % 2 != 0)
		out->u.macro.pairs[nstrs - 1] = NULL;
	out->u.macro.npairs = nstrs / 2;
	return MH_CODEC_OK;
}

int mh_codec_decode_cmd(const struct mh_packet *p, struct mh_cmd *out)
{
	struct cursor c = {p->data, p->len};

	memset(out, 0, sizeof(*out));
	out->code = p->code;
	switch (p->code) {
	case MH_CMD_ABORT:
	case MH_CMD_QUIT_NC:
	case MH_CMD_EOH:
	case MH_CMD_QUIT:
	case MH_CMD_DATA:
		return cur_end(&c);
	case MH_CMD_BODY:
	case MH_CMD_EOB: /* libmilter takes data in 'E' as a last body chunk */
		out->u.body.data = p->data;
		out->u.body.len = p->len;
		return MH_CODEC_OK;
	case MH_CMD_CONNECT:
		return decode_connect(&c, out);
	case MH_CMD_MACRO:
		return decode_macro(&c, out);
	case MH_CMD_HELO:
		TRY(cur_str(&c, &out->u.helo.name));
		return cur_end(&c);
	case MH_CMD_HEADER:
		TRY(cur_str(&c, &out->u.header.name));
		TRY(cur_str(&c, &out->u.header.value));
		return cur_end(&c);
	case MH_CMD_MAIL:
	case MH_CMD_RCPT:
		if (c.left == 0) /* the address is mandatory (it may be "") */
			return MH_CODEC_ESIZE;
		return cur_strs(&c, out->u.env.argv, &out->u.env.argc);
	case MH_CMD_OPTNEG:
		return decode_optneg(&c, &out->u.optneg);
	case MH_CMD_UNKNOWN:
		TRY(cur_str(&c, &out->u.unknown.line));
		return cur_end(&c);
	}
	return MH_CODEC_EUNKNOWN;
}

int mh_codec_decode_reply(const struct mh_packet *p, struct mh_reply *out)
{
	struct cursor c = {p->data, p->len};

	memset(out, 0, sizeof(*out));
	out->code = p->code;
	switch (p->code) {
	case MH_REP_SHUTDOWN:
	case MH_REP_ACCEPT:
	case MH_REP_CONTINUE:
	case MH_REP_DISCARD:
	case MH_REP_CONN_FAIL:
	case MH_REP_PROGRESS:
	case MH_REP_REJECT:
	case MH_REP_SKIP:
	case MH_REP_TEMPFAIL:
		/* Postfix treats any payload here as a communication error. */
		return cur_end(&c);
	case MH_REP_ADDRCPT:
	case MH_REP_DELRCPT:
		TRY(cur_str(&c, &out->u.rcpt.rcpt));
		return cur_end(&c);
	case MH_REP_ADDRCPT_PAR:
		TRY(cur_str(&c, &out->u.rcpt.rcpt));
		TRY(cur_opt_str(&c, &out->u.rcpt.args));
		return cur_end(&c);
	case MH_REP_CHGFROM:
		TRY(cur_str(&c, &out->u.chgfrom.addr));
		TRY(cur_opt_str(&c, &out->u.chgfrom.args));
		return cur_end(&c);
	case MH_REP_REPLBODY:
		out->u.replbody.data = p->data;
		out->u.replbody.len = p->len;
		return MH_CODEC_OK;
	case MH_REP_ADDHEADER:
		TRY(cur_str(&c, &out->u.header.name));
		TRY(cur_str(&c, &out->u.header.value));
		return cur_end(&c);
	case MH_REP_INSHEADER:
	case MH_REP_CHGHEADER:
		TRY(cur_u32(&c, &out->u.header.index));
		TRY(cur_str(&c, &out->u.header.name));
		TRY(cur_str(&c, &out->u.header.value));
		return cur_end(&c);
	case MH_REP_OPTNEG:
		return decode_optneg(&c, &out->u.optneg);
	case MH_REP_QUARANTINE:
		TRY(cur_str(&c, &out->u.quarantine.reason));
		return cur_end(&c);
	case MH_REP_REPLYCODE:
		TRY(cur_str(&c, &out->u.replycode.text));
		TRY(cur_end(&c));
		return mh_codec_valid_replytext(out->u.replycode.text) ? MH_CODEC_OK
		                                                       : MH_CODEC_EVALUE;
	}
	return MH_CODEC_EUNKNOWN;
}

int mh_reply_is_decision(uint8_t code)
{
	switch (code) {
	case MH_REP_ACCEPT:
	case MH_REP_CONTINUE:
	case MH_REP_DISCARD:
	case MH_REP_REJECT:
	case MH_REP_TEMPFAIL:
	case MH_REP_REPLYCODE:
	case MH_REP_SKIP:
	case MH_REP_SHUTDOWN:
	case MH_REP_CONN_FAIL:
		return 1;
	}
	return 0;
}

int mh_reply_is_modification(uint8_t code)
{
	switch (code) {
	case MH_REP_ADDRCPT:
	case MH_REP_DELRCPT:
	case MH_REP_ADDRCPT_PAR:
	case MH_REP_REPLBODY:
	case MH_REP_CHGFROM:
	case MH_REP_ADDHEADER:
	case MH_REP_INSHEADER:
	case MH_REP_CHGHEADER:
		return 1;
	}
	return 0;
}

/* ---------------------------------------------------------- reply text */

static int is_digit(char ch)
{
	return ch >= '0' && ch <= '9';
}

/* One line of len bytes (no CRLF); last: no line follows. */
static int valid_reply_line(const char *s, size_t len, int last)
{
	if (len < 3 || (s[0] != '4' && s[0] != '5') || !is_digit(s[1]) || !is_digit(s[2]))
		return 0;
	/* A bare CR or LF would end the line early on the SMTP wire. */
	if (memchr(s, '\r', len) != NULL || memchr(s, '\n', len) != NULL)
		return 0;
	if (len == 3)
		return last;
	if (s[3] == '-') {
		if (last)
			return 0;
	} else if (s[3] != ' ') {
		return 0;
	}
	/* Enhanced status code: same class as the reply code (Postfix). */
	if (len > 4 && is_digit(s[4]) && s[4] != s[0])
		return 0;
	return 1;
}

int mh_codec_valid_replytext(const char *text)
{
	const char *line = text;
	const char *eol;

	if (text == NULL)
		return 0;
	for (;;) {
		eol = strstr(line, "\r\n");
		if (eol == NULL)
			return valid_reply_line(line, strlen(line), 1);
		if (!valid_reply_line(line, (size_t)(eol - line), 0))
			return 0;
		line = eol + 2;
	}
}

/* ------------------------------------------------------------ encoding */

/* The length word counts the code byte plus the payload. */
static void put_frame_head(struct mh_buf *b, uint8_t code, size_t payload)
{
	assert(payload < UINT32_MAX);
	mh_buf_append_u32be(b, (uint32_t)payload + 1);
	mh_buf_append_byte(b, code);
}

static size_t strz_len(const char *s)
{
	return strlen(s) + 1;
}

void mh_codec_put_empty(struct mh_buf *b, uint8_t code)
{
	put_frame_head(b, code, 0);
}

void mh_codec_put_optneg(struct mh_buf *b, const struct mh_optneg *o)
{
	size_t payload = OPTNEG_FIXED_BYTES;
	uint32_t stage;

	for (stage = 0; stage < MH_STAGE_COUNT; stage++)
		if (o->macros[stage] != NULL)
			payload += 4 + strz_len(o->macros[stage]);
	put_frame_head(b, MH_CMD_OPTNEG, payload);
	mh_buf_append_u32be(b, o->version);
	mh_buf_append_u32be(b, o->actions);
	mh_buf_append_u32be(b, o->protocol);
	for (stage = 0; stage < MH_STAGE_COUNT; stage++) {
		if (o->macros[stage] != NULL) {
			mh_buf_append_u32be(b, stage);
			mh_buf_append_strz(b, o->macros[stage]);
		}
	}
}

void mh_codec_put_connect(struct mh_buf *b, const char *hostname, char family, uint16_t port,
                          const char *address)
{
	size_t payload = strz_len(hostname) + 1;

	assert(family == 'U' || family == 'L' || family == '4' || family == '6');
	if (family != 'U')
		payload += 2 + strz_len(address);
	put_frame_head(b, MH_CMD_CONNECT, payload);
	mh_buf_append_strz(b, hostname);
	mh_buf_append_byte(b, (uint8_t)family);
	if (family != 'U') {
		mh_buf_append_u16be(b, port);
		mh_buf_append_strz(b, address);
	}
}

void mh_codec_put_str(struct mh_buf *b, uint8_t code, const char *s)
{
	put_frame_head(b, code, strz_len(s));
	mh_buf_append_strz(b, s);
}

void mh_codec_put_strs(struct mh_buf *b, uint8_t code, const char *const *argv, size_t argc)
{
	size_t payload = 0;
	size_t i;

	for (i = 0; i < argc; i++)
		payload += strz_len(argv[i]);
	put_frame_head(b, code, payload);
	for (i = 0; i < argc; i++)
		mh_buf_append_strz(b, argv[i]);
}

void mh_codec_put_header(struct mh_buf *b, uint8_t code, const char *name, const char *value)
{
	put_frame_head(b, code, strz_len(name) + strz_len(value));
	mh_buf_append_strz(b, name);
	mh_buf_append_strz(b, value);
}

void mh_codec_put_index_header(struct mh_buf *b, uint8_t code, uint32_t index, const char *name,
                               const char *value)
{
	put_frame_head(b, code, 4 + strz_len(name) + strz_len(value));
	mh_buf_append_u32be(b, index);
	mh_buf_append_strz(b, name);
	mh_buf_append_strz(b, value);
}

void mh_codec_put_raw(struct mh_buf *b, uint8_t code, const void *data, size_t len)
{
	put_frame_head(b, code, len);
	if (len > 0)
		mh_buf_append(b, data, len);
}

void mh_codec_put_macro(struct mh_buf *b, uint8_t stage, const char *const *pairs, size_t npairs)
{
	size_t payload = 1;
	size_t i;

	for (i = 0; i < 2 * npairs; i++)
		payload += strz_len(pairs[i]);
	put_frame_head(b, MH_CMD_MACRO, payload);
	mh_buf_append_byte(b, stage);
	for (i = 0; i < 2 * npairs; i++)
		mh_buf_append_strz(b, pairs[i]);
}

int mh_codec_put_replycode(struct mh_buf *b, const char *text)
{
	if (!mh_codec_valid_replytext(text))
		return MH_CODEC_EVALUE;
	mh_codec_put_str(b, MH_REP_REPLYCODE, text);
	return MH_CODEC_OK;
}

void mh_codec_put_reply(struct mh_buf *b, const struct mh_reply *r)
{
	const char *argv[2];

	switch (r->code) {
	case MH_REP_SHUTDOWN:
	case MH_REP_ACCEPT:
	case MH_REP_CONTINUE:
	case MH_REP_DISCARD:
	case MH_REP_CONN_FAIL:
	case MH_REP_PROGRESS:
	case MH_REP_REJECT:
	case MH_REP_SKIP:
	case MH_REP_TEMPFAIL:
		mh_codec_put_empty(b, r->code);
		return;
	case MH_REP_ADDRCPT:
	case MH_REP_DELRCPT:
	case MH_REP_ADDRCPT_PAR:
		argv[0] = r->u.rcpt.rcpt;
		argv[1] = r->u.rcpt.args;
		mh_codec_put_strs(b, r->code, argv, argv[1] != NULL ? 2 : 1);
		return;
	case MH_REP_CHGFROM:
		argv[0] = r->u.chgfrom.addr;
		argv[1] = r->u.chgfrom.args;
		mh_codec_put_strs(b, r->code, argv, argv[1] != NULL ? 2 : 1);
		return;
	case MH_REP_REPLBODY:
		mh_codec_put_raw(b, r->code, r->u.replbody.data, r->u.replbody.len);
		return;
	case MH_REP_ADDHEADER:
		mh_codec_put_header(b, r->code, r->u.header.name, r->u.header.value);
		return;
	case MH_REP_INSHEADER:
	case MH_REP_CHGHEADER:
		mh_codec_put_index_header(b, r->code, r->u.header.index, r->u.header.name,
		                          r->u.header.value);
		return;
	case MH_REP_OPTNEG:
		mh_codec_put_optneg(b, &r->u.optneg);
		return;
	case MH_REP_QUARANTINE:
		mh_codec_put_str(b, r->code, r->u.quarantine.reason);
		return;
	case MH_REP_REPLYCODE:
		mh_codec_put_str(b, r->code, r->u.replycode.text);
		return;
	}
	assert(!"mh_codec_put_reply: not a reply code");
}

const char *mh_cmd_name(uint8_t code)
{
	switch (code) {
	case MH_CMD_ABORT:
		return "ABORT";
	case MH_CMD_BODY:
		return "BODY";
	case MH_CMD_CONNECT:
		return "CONNECT";
	case MH_CMD_MACRO:
		return "MACRO";
	case MH_CMD_EOB:
		return "EOM";
	case MH_CMD_HELO:
		return "HELO";
	case MH_CMD_QUIT_NC:
		return "QUIT_NC";
	case MH_CMD_HEADER:
		return "HEADER";
	case MH_CMD_MAIL:
		return "MAIL";
	case MH_CMD_EOH:
		return "EOH";
	case MH_CMD_OPTNEG:
		return "OPTNEG";
	case MH_CMD_QUIT:
		return "QUIT";
	case MH_CMD_RCPT:
		return "RCPT";
	case MH_CMD_DATA:
		return "DATA";
	case MH_CMD_UNKNOWN:
		return "UNKNOWN";
	}
	return "?";
}

uint32_t mh_cmd_nr_bit(uint8_t code)
{
	switch (code) {
	case MH_CMD_CONNECT:
		return MH_PROTO_NR_CONN;
	case MH_CMD_HELO:
		return MH_PROTO_NR_HELO;
	case MH_CMD_MAIL:
		return MH_PROTO_NR_MAIL;
	case MH_CMD_RCPT:
		return MH_PROTO_NR_RCPT;
	case MH_CMD_DATA:
		return MH_PROTO_NR_DATA;
	case MH_CMD_UNKNOWN:
		return MH_PROTO_NR_UNKN;
	case MH_CMD_HEADER:
		return MH_PROTO_NR_HDR;
	case MH_CMD_EOH:
		return MH_PROTO_NR_EOH;
	case MH_CMD_BODY:
		return MH_PROTO_NR_BODY;
	}
	return 0;
}

uint32_t mh_reply_action(uint8_t code)
{
	switch (code) {
	case MH_REP_ADDHEADER:
	case MH_REP_INSHEADER:
		return MH_ACT_ADDHDRS;
	case MH_REP_CHGHEADER:
		return MH_ACT_CHGHDRS;
	case MH_REP_REPLBODY:
		return MH_ACT_CHGBODY;
	case MH_REP_ADDRCPT:
		return MH_ACT_ADDRCPT;
	case MH_REP_DELRCPT:
		return MH_ACT_DELRCPT;
	case MH_REP_ADDRCPT_PAR:
		return MH_ACT_ADDRCPT_PAR;
	case MH_REP_CHGFROM:
		return MH_ACT_CHGFROM;
	case MH_REP_QUARANTINE:
		return MH_ACT_QUARANTINE;
	}
	return 0;
}

const char *mh_macro_bare(const char *name, size_t *len)
{
	size_t n = strlen(name);

	if (n >= 2 && name[0] == '{' && name[n - 1] == '}') {
		*len = n - 2;
		return name + 1;
	}
	*len = n;
	return name;
}

int mh_macro_name_eq(const char *a, const char *b)
{
	size_t la, lb;

	a = mh_macro_bare(a, &la);
	b = mh_macro_bare(b, &lb);
	return la == lb && memcmp(a, b, la) == 0;
}
