/*
 * testmilter_log - JSON command log of the test milter.
 *
 * Line format (docs/tools.md): {"conn":N,"cmd":NAME, fields..., "macros":{...}}.
 * "macros" appears only when a 'D' preceded the command ({} for an empty
 * one). A failed write is reported once on stderr; the milter goes on.
 */
#include "testmilter_log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/mh_json.h"
#include "util/mh_log.h"

struct tm_log {
	int fd;
	int write_failed; /* reported once */
	struct mh_buf line;
};

uint64_t tm_fnv1a(uint64_t h, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

struct tm_log *tm_log_open(const char *path, char *err, size_t errlen)
{
	struct tm_log *l;
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	l = mh_xcalloc(1, sizeof(*l));
	l->fd = fd;
	return l;
}

void tm_log_close(struct tm_log *l)
{
	if (l == NULL)
		return;
	close(l->fd);
	mh_buf_free(&l->line);
	free(l);
}

void tm_macros_add(struct tm_macros *m, const struct mh_cmd *cmd)
{
	m->present = 1;
	for (size_t i = 0; i < 2 * cmd->u.macro.npairs; i++) {
		const char *s = cmd->u.macro.pairs[i];
		mh_buf_append_strz(&m->strs, s != NULL ? s : "");
		m->nstr++;
	}
}

void tm_macros_clear(struct tm_macros *m)
{
	m->present = 0;
	m->nstr = 0;
	mh_buf_reset(&m->strs);
}

void tm_macros_free(struct tm_macros *m)
{
	mh_buf_free(&m->strs);
	m->present = 0;
	m->nstr = 0;
}

static void line_begin(struct tm_log *l, struct mh_json *j, uint64_t conn, const char *cmd)
{
	mh_buf_reset(&l->line);
	mh_json_init(j, &l->line);
	mh_json_obj_begin(j);
	mh_json_key(j, "conn");
	mh_json_int(j, (int64_t)conn);
	mh_json_key(j, "cmd");
	mh_json_str(j, cmd);
}

static void line_end(struct tm_log *l, struct mh_json *j)
{
	const uint8_t *p;
	size_t n;

	mh_json_obj_end(j);
	mh_buf_append_byte(&l->line, '\n');
	p = mh_buf_head(&l->line);
	n = mh_buf_size(&l->line);
	/* one write() per line: O_APPEND keeps lines whole */
	while (n > 0) {
		ssize_t w = write(l->fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			if (!l->write_failed)
				mh_err(0, "log write failed: %s", strerror(errno));
			l->write_failed = 1;
			return;
		}
		p += w;
		n -= (size_t)w;
	}
}

static void str_array(struct mh_json *j, const char *const *argv, size_t argc)
{
	mh_json_arr_begin(j);
	for (size_t i = 0; i < argc; i++)
		mh_json_str(j, argv[i]);
	mh_json_arr_end(j);
}

static void macros_obj(struct mh_json *j, const struct tm_macros *m)
{
	const char *s = m->nstr ? (const char *)mh_buf_head(&m->strs) : NULL;

	mh_json_key(j, "macros");
	mh_json_obj_begin(j);
	for (size_t i = 0; i < m->nstr; i += 2) {
		const char *name = s, *value;
		s += strlen(s) + 1;
		value = i + 1 < m->nstr ? s : NULL;
		if (value != NULL)
			s += strlen(s) + 1;
		mh_json_key(j, name);
		mh_json_str(j, value);
	}
	mh_json_obj_end(j);
}

static const char *cmd_name(uint8_t code)
{
	switch (code) {
	case MH_CMD_OPTNEG:
		return "optneg";
	case MH_CMD_CONNECT:
		return "connect";
	case MH_CMD_HELO:
		return "helo";
	case MH_CMD_MAIL:
		return "mail";
	case MH_CMD_RCPT:
		return "rcpt";
	case MH_CMD_DATA:
		return "data";
	case MH_CMD_HEADER:
		return "header";
	case MH_CMD_EOH:
		return "eoh";
	case MH_CMD_BODY:
		return "body";
	case MH_CMD_EOB:
		return "eom";
	case MH_CMD_UNKNOWN:
		return "unknown";
	case MH_CMD_ABORT:
		return "abort";
	case MH_CMD_QUIT:
		return "quit";
	case MH_CMD_QUIT_NC:
		return "quit_nc";
	default:
		return "?";
	}
}

void tm_log_command(struct tm_log *l, uint64_t conn, const struct mh_cmd *cmd,
                    const struct tm_macros *m, const struct tm_msg_stats *stats)
{
	struct mh_json j;
	char hex[17];
	char fam[2];

	if (l == NULL)
		return;
	line_begin(l, &j, conn, cmd_name(cmd->code));
	switch (cmd->code) {
	case MH_CMD_OPTNEG:
		mh_json_key(&j, "version");
		mh_json_int(&j, cmd->u.optneg.version);
		mh_json_key(&j, "actions");
		mh_json_int(&j, cmd->u.optneg.actions);
		mh_json_key(&j, "protocol");
		mh_json_int(&j, cmd->u.optneg.protocol);
		break;
	case MH_CMD_CONNECT:
		fam[0] = cmd->u.connect.family;
		fam[1] = '\0';
		mh_json_key(&j, "hostname");
		mh_json_str(&j, cmd->u.connect.hostname);
		mh_json_key(&j, "family");
		mh_json_str(&j, fam);
		mh_json_key(&j, "port");
		if (cmd->u.connect.family == 'U')
			mh_json_null(&j);
		else
			mh_json_int(&j, cmd->u.connect.port);
		mh_json_key(&j, "address");
		mh_json_str(&j, cmd->u.connect.address);
		break;
	case MH_CMD_HELO:
		mh_json_key(&j, "helo");
		mh_json_str(&j, cmd->u.helo.name);
		break;
	case MH_CMD_MAIL:
	case MH_CMD_RCPT:
		mh_json_key(&j, "args");
		str_array(&j, cmd->u.env.argv, cmd->u.env.argc);
		break;
	case MH_CMD_HEADER:
		mh_json_key(&j, "name");
		mh_json_str(&j, cmd->u.header.name);
		mh_json_key(&j, "value");
		mh_json_str(&j, cmd->u.header.value);
		break;
	case MH_CMD_BODY:
		mh_json_key(&j, "len");
		mh_json_int(&j, (int64_t)cmd->u.body.len);
		break;
	case MH_CMD_EOB:
		snprintf(hex, sizeof(hex), "%016" PRIx64, stats->body_fnv);
		mh_json_key(&j, "body_len");
		mh_json_int(&j, (int64_t)stats->body_len);
		mh_json_key(&j, "body_fnv");
		mh_json_str(&j, hex);
		mh_json_key(&j, "headers");
		mh_json_int(&j, stats->headers);
		break;
	case MH_CMD_UNKNOWN:
		mh_json_key(&j, "line");
		mh_json_str(&j, cmd->u.unknown.line);
		break;
	default:
		break;
	}
	if (m != NULL && m->present)
		macros_obj(&j, m);
	line_end(l, &j);
}

void tm_log_closed(struct tm_log *l, uint64_t conn, const char *reason)
{
	struct mh_json j;

	if (l == NULL)
		return;
	line_begin(l, &j, conn, "close");
	mh_json_key(&j, "reason");
	mh_json_str(&j, reason);
	line_end(l, &j);
}
