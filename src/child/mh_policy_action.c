/*
 * NAME
 *	mh_policy_action 3
 * SUMMARY
 *	a Postfix policy answer's action= as a milter answer (pure)
 * SYNOPSIS
 *	#include "child/mh_policy.h"
 *
 *	int	mh_policy_parse_action(const char *action,
 *			struct mh_policy_answer *out, char *buf, size_t buflen);
 * DESCRIPTION
 *	mh_policy_parse_action() maps one action= value (access(5) syntax,
 *	the first word case-insensitive) to what a milter can do at RCPT:
 *
 *	OK, DUNNO, "", DEFER_IF_REJECT	CONTINUE. DEFER_IF_REJECT defers
 *			only if a later restriction rejects; in a milter chain
 *			nothing after the answer rejects for it.
 *	REJECT [text]	REJECT "550 5.7.1 text", text "Access denied" when
 *			none. 550 rather than Postfix's 554 because the reply
 *			refuses one recipient, not the whole transaction.
 *	DEFER [text], DEFER_IF_PERMIT [text]
 *			TEMPFAIL "450 4.7.1 text", text "Try again later" when
 *			none. DEFER_IF_PERMIT defers because the milter chain
 *			ends in an implicit permit, which is when Postfix
 *			defers too; 4.7.1 is the code Postfix uses for it.
 *	4NN [text], 5NN [text]
 *			TEMPFAIL / REJECT with the code and the text as given
 *			(no enhanced code added). No text: the code with the
 *			default enhanced code and text above.
 *	DISCARD [text], HOLD [text]	DISCARD / HOLD, text the reason.
 *	PREPEND name: value	PREPEND, text "name: value" (name printable
 *			ASCII without ':'; blanks around ':' normalised).
 *	WARN [text], INFO [text]	CONTINUE, note "warn", text for the log.
 *	FILTER x, REDIRECT x, BCC x, anything else	CONTINUE, note
 *			"unsupported", text the argument.
 *
 *	Reply texts (REJECT, TEMPFAIL) are made fit for a milter 'y': an
 *	enhanced code the server gave is kept but its class digit is set to
 *	the reply code's (libmilter and Postfix want them to agree); a text
 *	starting with a digit but no enhanced code gets the default one (else
 *	an MTA would read that digit as a mismatched class); '%' is doubled
 *	(milter-protocol.md §3.1); other control characters become spaces
 *	(in every text); the reply is cut at 510 bytes (RFC 5321 reply line).
 *	Malformed, -1 and kind FAILED: CR or LF anywhere, a code that is not
 *	exactly [45]dd ("5", "550x", "250"), PREPEND without a valid
 *	"name: value", FILTER / REDIRECT / BCC without argument, a result
 *	that does not fit buf.
 *
 * SEE ALSO
 *	access(5), mh_policy.c (the pools that read the answers)
 */
#include "child/mh_policy.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "protocol/mh_codec.h"

#define REPLY_MAX 510 /* RFC 5321 4.5.3.1.5: 512 octets with the CRLF */

static int is_blank(int c)
{
	return c == ' ' || c == '\t';
}

static const char *skip_blanks(const char *s)
{
	while (is_blank(*s))
		s++;
	return s;
}

/* Output area in the caller's buffer; max excludes the NUL. */
struct writer {
	char *p;
	size_t len, max;
};

static int put_char(struct writer *w, char c)
{
	if (w->len >= w->max)
		return -1;
	w->p[w->len++] = c;
	w->p[w->len] = 0;
	return 0;
}

static int put_str(struct writer *w, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (put_char(w, s[i]) < 0)
			return -1;
	return 0;
}

/* Append text, control characters as spaces, '%' doubled when pct; -1 when cut. */
static int put_text(struct writer *w, const char *s, size_t n, int pct)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f)
			c = ' ';
		if (c == '%' && pct) {
			if (w->len + 2 > w->max)
				return -1;
			put_char(w, '%');
		}
		if (put_char(w, (char)c) < 0)
			return -1;
	}
	return 0;
}

static int word_is(const char *word, size_t wlen, const char *kw)
{
	return strlen(kw) == wlen && strncasecmp(word, kw, wlen) == 0;
}

/* Length of an RFC 3463 code "c.sss.ddd" at s followed by end or blank, else 0. */
static size_t dsn_len(const char *s)
{
	size_t i = 1;
	if (s[0] != '2' && s[0] != '4' && s[0] != '5')
		return 0;
	for (int part = 0; part < 2; part++) {
		size_t n = 0;
		if (s[i++] != '.')
			return 0;
		while (n < 3 && isdigit((unsigned char)s[i])) {
			i++;
			n++;
		}
		if (n == 0)
			return 0;
	}
	return (s[i] == 0 || is_blank(s[i])) ? i : 0;
}

static int parse_fail(struct mh_policy_answer *out, const char *why)
{
	out->kind = MH_POL_FAILED;
	out->text = "";
	out->note = NULL;
	out->why = why;
	return -1;
}

/*
 * A reply text "CODE [x.y.z] TEXT" for a 'y'. explicit: the action was
 * the code itself (4NN/5NN), whose text is kept without an added
 * enhanced code.
 */
static int build_reply(struct writer *w, const char code[3], const char *rest, size_t rlen,
                       int explicit_code, struct mh_policy_answer *out)
{
	const char *txt = rest;
	size_t tlen = rlen;
	size_t dl = dsn_len(rest);
	/* The limit of a reply line, if the buffer has that much room. */
	if (w->max > w->len + REPLY_MAX)
		w->max = w->len + REPLY_MAX;
	if (put_str(w, code, 3) < 0 || put_char(w, ' ') < 0)
		return parse_fail(out, "answer buffer too small");
	if (dl > 0 && dl <= rlen) {
		/* Keep the server's enhanced code, in the reply code's class. */
		if (put_char(w, code[0]) < 0 || put_str(w, rest + 1, dl - 1) < 0 ||
		    put_char(w, ' ') < 0)
			return parse_fail(out, "answer buffer too small");
		txt = skip_blanks(rest + dl);
		tlen = rlen - (size_t)(txt - rest);
	} else if (!explicit_code || rlen == 0 || isdigit((unsigned char)rest[0])) {
		if (put_char(w, code[0]) < 0 || put_str(w, ".7.1 ", 5) < 0)
			return parse_fail(out, "answer buffer too small");
	}
	if (tlen == 0) {
		txt = code[0] == '5' ? "Access denied" : "Try again later";
		tlen = strlen(txt);
	}
	(void)put_text(w, txt, tlen, 1); /* cut at the limit: a shorter reply still works */
	if (!mh_codec_valid_replytext(w->p))
		return parse_fail(out, "cannot make a valid SMTP reply of it");
	out->kind = code[0] == '5' ? MH_POL_REJECT : MH_POL_TEMPFAIL;
	out->text = w->p;
	return 0;
}

/* PREPEND's argument: "name: value" with a valid header name. */
static int build_header(struct writer *w, const char *rest, size_t rlen,
                        struct mh_policy_answer *out)
{
	size_t n = 0;
	while (n < rlen && rest[n] > 32 && rest[n] < 127 && rest[n] != ':')
		n++;
	if (n == 0)
		return parse_fail(out, "PREPEND without a header name");
	size_t i = n;
	while (i < rlen && is_blank(rest[i]))
		i++;
	if (i >= rlen || rest[i] != ':')
		return parse_fail(out, "PREPEND without \"name: value\"");
	i++;
	while (i < rlen && is_blank(rest[i]))
		i++;
	if (put_str(w, rest, n) < 0 || put_str(w, ": ", 2) < 0 ||
	    put_text(w, rest + i, rlen - i, 0) < 0)
		return parse_fail(out, "answer buffer too small");
	out->kind = MH_POL_PREPEND;
	out->text = w->p;
	return 0;
}

int mh_policy_parse_action(const char *action, struct mh_policy_answer *out, char *buf,
                           size_t buflen)
{
	out->kind = MH_POL_FAILED;
	out->text = "";
	out->action = "";
	out->note = NULL;
	out->why = NULL;
	if (action == NULL)
		action = "";
	size_t alen = strlen(action);
	if (buf == NULL || buflen < alen + 2)
		return parse_fail(out, "action too long for the answer buffer");
	memcpy(buf, action, alen + 1);
	out->action = buf;
	if (strpbrk(action, "\r\n") != NULL)
		return parse_fail(out, "CR or LF in the action");

	struct writer w = {buf + alen + 1, 0, buflen - alen - 2};
	w.p[0] = 0;
	const char *word = skip_blanks(action);
	size_t wlen = strcspn(word, " \t");
	const char *rest = skip_blanks(word + wlen);
	size_t rlen = strlen(rest);
	while (rlen > 0 && is_blank(rest[rlen - 1]))
		rlen--;

	if (wlen == 0) {
		out->kind = MH_POL_CONTINUE;
		return 0;
	}
	if (isdigit((unsigned char)word[0])) {
		if (wlen != 3 || (word[0] != '4' && word[0] != '5') ||
		    !isdigit((unsigned char)word[1]) || !isdigit((unsigned char)word[2]))
			return parse_fail(out, "not a 4NN or 5NN reply code");
		return build_reply(&w, word, rest, rlen, 1, out);
	}
	if (word_is(word, wlen, "OK") || word_is(word, wlen, "DUNNO") ||
	    word_is(word, wlen, "DEFER_IF_REJECT")) {
		out->kind = MH_POL_CONTINUE;
		return 0;
	}
	if (word_is(word, wlen, "REJECT"))
		return build_reply(&w, "550", rest, rlen, 0, out);
	if (word_is(word, wlen, "DEFER") || word_is(word, wlen, "DEFER_IF_PERMIT"))
		return build_reply(&w, "450", rest, rlen, 0, out);
	if (word_is(word, wlen, "PREPEND"))
		return build_header(&w, rest, rlen, out);

	if (word_is(word, wlen, "DISCARD")) {
		out->kind = MH_POL_DISCARD;
	} else if (word_is(word, wlen, "HOLD")) {
		out->kind = MH_POL_HOLD;
	} else if (word_is(word, wlen, "WARN") || word_is(word, wlen, "INFO")) {
		out->kind = MH_POL_CONTINUE;
		out->note = "warn";
	} else {
		if ((word_is(word, wlen, "FILTER") || word_is(word, wlen, "REDIRECT") ||
		     word_is(word, wlen, "BCC")) &&
		    rlen == 0)
			return parse_fail(out, "FILTER, REDIRECT or BCC without argument");
		out->kind = MH_POL_CONTINUE;
		out->note = "unsupported";
	}
	if (put_text(&w, rest, rlen, 0) < 0)
		return parse_fail(out, "answer buffer too small");
	out->text = w.p;
	return 0;
}
