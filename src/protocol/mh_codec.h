/*
 * mh_codec - the milter wire protocol (versions 2..6), both directions.
 *
 * Pure: no I/O, no global state. Decoding is incremental (mh_frame_feed
 * accepts a stream cut at any byte boundary) and zero-copy: decoded
 * strings point into the frame reader's payload buffer and stay valid
 * until the next call to mh_frame_feed on that reader. Encoding appends
 * complete frames to a caller-owned mh_buf, so a macro packet and its
 * command can be built back to back and written with one write().
 *
 * Facts: ../shared/docs/milter-protocol.md (sections 1-6).
 */
#ifndef MH_CODEC_H
#define MH_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "util/mh_buf.h"

/* Largest payload libmilter accepts by default (len <= 65536). */
#define MH_PAYLOAD_DEFAULT_MAX 65535u
/* Body chunks and replacement-body packets are cut at this size. */
#define MH_CHUNK_MAX 65535u
/* Most strs one MAIL/RCPT/'D' packet may hold; more is MH_CODEC_ETOOMANY.
 * 256 strs = 128 macro pairs: Sendmail caps a list at 50 names, and the hub
 * asks for the union of its children's lists (design §2.4). */
#define MH_ARGS_MAX 256

/* Commands, MTA -> milter. */
enum mh_cmd_code {
	MH_CMD_ABORT = 'A',
	MH_CMD_BODY = 'B',
	MH_CMD_CONNECT = 'C',
	MH_CMD_MACRO = 'D',
	MH_CMD_EOB = 'E',
	MH_CMD_HELO = 'H',
	MH_CMD_QUIT_NC = 'K',
	MH_CMD_HEADER = 'L',
	MH_CMD_MAIL = 'M',
	MH_CMD_EOH = 'N',
	MH_CMD_OPTNEG = 'O',
	MH_CMD_QUIT = 'Q',
	MH_CMD_RCPT = 'R',
	MH_CMD_DATA = 'T',
	MH_CMD_UNKNOWN = 'U',
};

/* Replies, milter -> MTA. */
enum mh_reply_code {
	MH_REP_ADDRCPT = '+',
	MH_REP_DELRCPT = '-',
	MH_REP_ADDRCPT_PAR = '2',
	MH_REP_SHUTDOWN = '4',
	MH_REP_ACCEPT = 'a',
	MH_REP_REPLBODY = 'b',
	MH_REP_CONTINUE = 'c',
	MH_REP_DISCARD = 'd',
	MH_REP_CHGFROM = 'e',
	MH_REP_CONN_FAIL = 'f',
	MH_REP_ADDHEADER = 'h',
	MH_REP_INSHEADER = 'i',
	MH_REP_CHGHEADER = 'm',
	MH_REP_OPTNEG = 'O',
	MH_REP_PROGRESS = 'p',
	MH_REP_QUARANTINE = 'q',
	MH_REP_REJECT = 'r',
	MH_REP_SKIP = 's',
	MH_REP_TEMPFAIL = 't',
	MH_REP_REPLYCODE = 'y',
};

/* Action flags (SMFIF_*), the second u32 of 'O'. */
enum {
	MH_ACT_ADDHDRS = 0x001,
	MH_ACT_CHGBODY = 0x002,
	MH_ACT_ADDRCPT = 0x004,
	MH_ACT_DELRCPT = 0x008,
	MH_ACT_CHGHDRS = 0x010,
	MH_ACT_QUARANTINE = 0x020,
	MH_ACT_CHGFROM = 0x040,
	MH_ACT_ADDRCPT_PAR = 0x080,
	MH_ACT_SETSYMLIST = 0x100,
	MH_ACT_V2_MASK = 0x03f,
	MH_ACT_V6_MASK = 0x1ff,
};

/* Protocol flags (SMFIP_*), the third u32 of 'O'. */
enum {
	MH_PROTO_NOCONNECT = 0x00000001,
	MH_PROTO_NOHELO = 0x00000002,
	MH_PROTO_NOMAIL = 0x00000004,
	MH_PROTO_NORCPT = 0x00000008,
	MH_PROTO_NOBODY = 0x00000010,
	MH_PROTO_NOHDRS = 0x00000020,
	MH_PROTO_NOEOH = 0x00000040,
	MH_PROTO_NR_HDR = 0x00000080,
	MH_PROTO_NOUNKNOWN = 0x00000100,
	MH_PROTO_NODATA = 0x00000200,
	MH_PROTO_SKIP = 0x00000400,
	MH_PROTO_RCPT_REJ = 0x00000800,
	MH_PROTO_NR_CONN = 0x00001000,
	MH_PROTO_NR_HELO = 0x00002000,
	MH_PROTO_NR_MAIL = 0x00004000,
	MH_PROTO_NR_RCPT = 0x00008000,
	MH_PROTO_NR_DATA = 0x00010000,
	MH_PROTO_NR_UNKN = 0x00020000,
	MH_PROTO_NR_EOH = 0x00040000,
	MH_PROTO_NR_BODY = 0x00080000,
	MH_PROTO_HDR_LEADSPC = 0x00100000,
	MH_PROTO_V2_MASK = 0x0000007f,
	MH_PROTO_V3_MASK = 0x0000017f,
	MH_PROTO_V4_MASK = 0x0000037f,
	MH_PROTO_V6_MASK = 0x001fffff,
};

/* Macro stages as numbered in the negotiation trailer (SMFIM_*). */
enum mh_macro_stage {
	MH_STAGE_CONNECT = 0,
	MH_STAGE_HELO = 1,
	MH_STAGE_MAIL = 2,
	MH_STAGE_RCPT = 3,
	MH_STAGE_DATA = 4,
	MH_STAGE_EOM = 5,
	MH_STAGE_EOH = 6,
	MH_STAGE_COUNT = 7,
};

/* Error values. Every malformed input maps to exactly one of these. */
enum mh_codec_err {
	MH_CODEC_OK = 0,
	MH_CODEC_EZERO = -1, /* frame length 0 */
	MH_CODEC_ETOOBIG = -2, /* frame payload above the reader's maximum */
	MH_CODEC_ENONUL = -3, /* a str field lacks its NUL terminator */
	MH_CODEC_ESIZE = -4, /* payload too short/long for the code's layout */
	MH_CODEC_EUNKNOWN = -5, /* unknown command or reply code */
	MH_CODEC_EFAMILY = -6, /* CONNECT with an unknown address family */
	MH_CODEC_ETOOMANY = -7, /* more than MH_ARGS_MAX strs */
	MH_CODEC_EVALUE = -8, /* a field's value is out of range (version, reply text) */
};

/* Human-readable name of an error value ("frame length 0", ...). */
const char *mh_codec_strerror(int err);

/* One frame: code byte and payload. */
struct mh_packet {
	uint8_t code;
	const uint8_t *data; /* payload, len bytes; data[len] is a NUL the reader adds */
	size_t len;
};

/*
 * Incremental frame reader. Owns one payload buffer that grows to the
 * largest frame seen (never above max_payload + 1).
 */
struct mh_frame_reader {
	size_t max_payload;
	uint8_t hdr[5];
	size_t hdr_have;
	uint32_t frame_len; /* code + payload, valid once hdr_have == 5 */
	uint8_t *buf;
	size_t buf_cap;
	size_t buf_have;
	int failed; /* sticky error after a malformed frame */
};

void mh_frame_reader_init(struct mh_frame_reader *r, size_t max_payload);
void mh_frame_reader_free(struct mh_frame_reader *r);

/*
 * Consume bytes from data[0..n). Returns 1 and fills *out when a frame is
 * complete (stopping right after it), 0 when all input was consumed and
 * more is needed, or a negative mh_codec_err (the reader is then failed:
 * every later call returns the same error). *consumed is always set.
 * out->data points into the reader and is valid until the next call.
 */
int mh_frame_feed(struct mh_frame_reader *r, const uint8_t *data, size_t n, size_t *consumed,
                  struct mh_packet *out);

/* True when no partial frame is buffered (EOF here is a clean close). */
int mh_frame_reader_idle(const struct mh_frame_reader *r);

/* Negotiation, both directions. macros[stage] is NULL when absent. */
struct mh_optneg {
	uint32_t version;
	uint32_t actions;
	uint32_t protocol;
	const char *macros[MH_STAGE_COUNT];
};

/* A decoded command (MTA -> milter). Strings point into the packet. */
struct mh_cmd {
	uint8_t code;
	union {
		struct mh_optneg optneg;
		struct {
			const char *hostname;
			char family; /* 'U' 'L' '4' '6' */
			uint16_t port;
			const char *address; /* NULL when family == 'U' */
		} connect;
		struct {
			const char *name;
		} helo;
		struct { /* MAIL, RCPT: argv[0] is the address */
			const char *argv[MH_ARGS_MAX];
			size_t argc;
		} env;
		struct {
			const char *name;
			const char *value;
		} header;
		struct { /* BODY, and EOB's optional final chunk */
			const uint8_t *data;
			size_t len;
		} body;
		struct {
			uint8_t stage; /* the command byte it precedes: 'C' 'H' ... */
			const char *pairs[MH_ARGS_MAX]; /* name, value, name, value ... */
			size_t npairs; /* number of name/value pairs */
		} macro;
		struct {
			const char *line;
		} unknown;
	} u;
};

/* Decode an MTA command. Returns MH_CODEC_OK or a negative error. */
int mh_codec_decode_cmd(const struct mh_packet *p, struct mh_cmd *out);

/* A decoded reply (milter -> MTA). Strings point into the packet. */
struct mh_reply {
	uint8_t code;
	union {
		struct mh_optneg optneg;
		struct {
			const char *text; /* "550 5.7.1 text", lines joined by CRLF */
		} replycode;
		struct { /* ADDRCPT, ADDRCPT_PAR, DELRCPT */
			const char *rcpt;
			const char *args; /* ADDRCPT_PAR only; NULL when absent */
		} rcpt;
		struct { /* ADDHEADER (index 0), INSHEADER, CHGHEADER */
			uint32_t index;
			const char *name;
			const char *value;
		} header;
		struct {
			const char *addr;
			const char *args; /* NULL when absent */
		} chgfrom;
		struct {
			const uint8_t *data;
			size_t len;
		} replbody;
		struct {
			const char *reason;
		} quarantine;
	} u;
};

/* Decode a milter reply. Returns MH_CODEC_OK or a negative error. */
int mh_codec_decode_reply(const struct mh_packet *p, struct mh_reply *out);

/* Protocol name of a command code for log lines ("CONNECT", "EOM", ...; "?" if unknown). */
const char *mh_cmd_name(uint8_t code);
/* The NR* bit that silences the reply to a command; 0 when it is always answered. */
uint32_t mh_cmd_nr_bit(uint8_t code);

/* The action flag (MH_ACT_*) a modification reply needs; 0 for other codes. */
uint32_t mh_reply_action(uint8_t code);

/* A macro name without one pair of braces ("{x}" -> "x"); its length in *len. */
const char *mh_macro_bare(const char *name, size_t *len);
/* Do two macro names name the same macro ("x" and "{x}" do)? */
int mh_macro_name_eq(const char *a, const char *b);

/* Class of a reply code. */
int mh_reply_is_decision(uint8_t code); /* a c d r t y s 4 f */
int mh_reply_is_modification(uint8_t code); /* + - 2 b e h i m */

/*
 * Encoders: each appends one complete frame to b. They cannot fail
 * (mh_buf allocation must succeed) except where documented.
 */
void mh_codec_put_empty(struct mh_buf *b, uint8_t code); /* A N Q K T, a c d r t s p 4 */
void mh_codec_put_optneg(struct mh_buf *b,
                         const struct mh_optneg *o); /* trailer only for stages set */
void mh_codec_put_connect(struct mh_buf *b, const char *hostname, char family, uint16_t port,
                          const char *address);
void mh_codec_put_str(struct mh_buf *b, uint8_t code, const char *s); /* H U q y */
void mh_codec_put_strs(struct mh_buf *b, uint8_t code, const char *const *argv,
                       size_t argc); /* M R, and + - 2 e with their args */
void mh_codec_put_header(struct mh_buf *b, uint8_t code, const char *name,
                         const char *value); /* L and h */
void mh_codec_put_index_header(struct mh_buf *b, uint8_t code, uint32_t index, const char *name,
                               const char *value); /* i m */
void mh_codec_put_raw(struct mh_buf *b, uint8_t code, const void *data,
                      size_t len); /* B E b: caller keeps len <= MH_CHUNK_MAX */
/* 'D': stage byte and npairs name/value pairs. */
void mh_codec_put_macro(struct mh_buf *b, uint8_t stage, const char *const *pairs, size_t npairs);
/* 'y': returns MH_CODEC_EVALUE (nothing appended) unless text is a valid reply. */
int mh_codec_put_replycode(struct mh_buf *b, const char *text);
/*
 * Any reply as mh_codec_decode_reply() returns it, encoded again (a 'y'
 * text is not re-checked: a decoded one is valid). 'b' is one frame:
 * the caller keeps replbody.len <= MH_CHUNK_MAX.
 */
void mh_codec_put_reply(struct mh_buf *b, const struct mh_reply *r);

/* Checks an SMTP reply text for 'y': [45]dd[ -] on every line, CRLF between lines. */
int mh_codec_valid_replytext(const char *text);

/* Negotiation helpers. */
uint32_t mh_optneg_action_mask(uint32_t version);
uint32_t mh_optneg_protocol_mask(uint32_t version);
/*
 * Milter side: build the reply to an MTA offer. want holds what the
 * milter asks for (version is its highest). Returns MH_CODEC_OK, or
 * MH_CODEC_EVALUE when the offer's version is below 2 or the milter
 * needs actions the MTA did not offer.
 * Per libmilter: reply version = min(want, offer); actions 0 in the offer
 * means 0x0F and protocol 0 means 0x3F; NR bits not offered are dropped;
 * macro lists are copied only for version 6.
 */
int mh_optneg_answer(const struct mh_optneg *offer, const struct mh_optneg *want,
                     struct mh_optneg *reply);
/*
 * MTA side: check a milter's reply against our offer. Returns MH_CODEC_OK
 * or MH_CODEC_EVALUE (version above ours or below 2, actions not offered).
 */
int mh_optneg_check(const struct mh_optneg *offer, const struct mh_optneg *reply);

/* 'D' stage byte for a SMFIM stage number, and back (-1 when none). */
uint8_t mh_macro_stage_cmd(enum mh_macro_stage s);
int mh_macro_stage_of_cmd(uint8_t cmd);

#endif
