// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/* The HTTP/1.1 framing of swbackend and swclient: see http.h. */
#include <errno.h>

#include "http.h"

size_t http_line_take(const char *p, const char *end, const char **line, size_t *line_len)
{
	const char *lf = memchr(p, '\n', end - p);

	if (!lf)
		return 0;
	*line = p;
	*line_len = lf - p;
	if (*line_len && p[*line_len - 1] == '\r')
		(*line_len)--;
	return lf - p + 1;
}

size_t http_head_end_find(const char *p, size_t len, size_t *scan)
{
	size_t i = *scan;

	while (i < len) {
		const char *lf = memchr(p + i, '\n', len - i);

		if (!lf)
			break;
		i = lf - p + 1;
		if (i < len && p[i] == '\n')
			return i + 1;
		if (i + 1 < len && p[i] == '\r' && p[i + 1] == '\n')
			return i + 2;
		if (i == len || (i + 1 == len && p[i] == '\r')) {
			/* The next line has not arrived: look at this LF again. */
			*scan = lf - p;
			return 0;
		}
	}
	*scan = len;
	return 0;
}

int http_version_parse(const char *p, bool *http10)
{
	/* HTTP/1.2 and later minor versions are read as HTTP/1.1 (RFC 9110 2.5). */
	if (memcmp(p, "HTTP/1.", 7) || p[7] < '0' || p[7] > '9')
		return -EBADMSG;
	*http10 = p[7] == '0';
	return 0;
}

/* Next token of a comma-separated list in [*p, end), without whitespace; false at end. */
static bool list_next(const char **p, const char *end, const char **token, size_t *token_len)
{
	const char *s = *p;

	while (s < end && (*s == ',' || *s == ' ' || *s == '\t'))
		s++;
	if (s == end)
		return false;
	*token = s;
	while (s < end && *s != ',')
		s++;
	*p = s;
	while (s > *token && (s[-1] == ' ' || s[-1] == '\t'))
		s--;
	*token_len = s - *token;
	return true;
}

/* Splits "Name: value" into f; 0 or -EBADMSG. */
static int field_split(const char *line, size_t len, struct http_field *f)
{
	const char *end = line + len, *colon = memchr(line, ':', len), *value;

	if (!colon || colon == line)
		return -EBADMSG;
	f->name = line;
	f->name_len = colon - line;
	for (size_t i = 0; i < f->name_len; i++) {
		/* Also refuses obs-fold and "Name :" (RFC 9112 5.1, 5.2). */
		if (!http_is_tchar(line[i]))
			return -EBADMSG;
	}
	value = colon + 1;
	while (value < end && (*value == ' ' || *value == '\t'))
		value++;
	while (end > value && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	f->value = value;
	f->value_len = end - value;
	return http_field_value_valid(f->value, f->value_len) ? 0 : -EBADMSG;
}

static int content_length_fold(const struct http_field *f, struct http_framing *fr)
{
	uint64_t cl = 0;

	/* 18 digits cannot overflow; a list such as "5, 5" is refused, not merged. */
	if (!f->value_len || f->value_len > 18)
		return -EBADMSG;
	for (size_t i = 0; i < f->value_len; i++) {
		if (f->value[i] < '0' || f->value[i] > '9')
			return -EBADMSG;
		cl = cl * 10 + (f->value[i] - '0');
	}
	if (fr->cl_seen && cl != fr->content_length)
		return -EBADMSG;
	fr->cl_seen = true;
	fr->content_length = cl;
	return 0;
}

/* Folds a framing field into fr; its enum http_field_kind, or -EBADMSG. */
static int framing_fold(const struct http_field *f, struct http_framing *fr)
{
	const char *p = f->value, *end = f->value + f->value_len, *token;
	size_t token_len;

	if (http_name_is(f->name, f->name_len, "content-length"))
		return content_length_fold(f, fr) ? -EBADMSG : HTTP_FIELD_CONTENT_LENGTH;
	if (http_name_is(f->name, f->name_len, "transfer-encoding")) {
		/* Only the last coding counts: whether the tool accepts the rest is its call. */
		fr->te_seen = true;
		while (list_next(&p, end, &token, &token_len)) {
			fr->te_chunked_last = http_name_is(token, token_len, "chunked");
			fr->te_chunked_count += fr->te_chunked_last;
		}
		return HTTP_FIELD_TRANSFER_ENCODING;
	}
	if (http_name_is(f->name, f->name_len, "connection")) {
		while (list_next(&p, end, &token, &token_len)) {
			if (http_name_is(token, token_len, "close"))
				fr->conn_close = true;
			else if (http_name_is(token, token_len, "keep-alive"))
				fr->conn_keep_alive = true;
		}
		return HTTP_FIELD_CONNECTION;
	}
	return HTTP_FIELD_OTHER;
}

int http_fields_parse(const char *p, const char *end, struct http_framing *fr,
		      int (*field)(void *arg, const struct http_field *f,
				   enum http_field_kind kind),
		      void *arg)
{
	struct http_field f;
	const char *line;
	size_t line_len, used;
	int kind, err;

	for (; (used = http_line_take(p, end, &line, &line_len)) && line_len; p += used) {
		err = field_split(line, line_len, &f);
		if (err)
			return err;
		kind = framing_fold(&f, fr);
		if (kind < 0)
			return kind;
		err = field(arg, &f, kind);
		if (err)
			return err;
	}
	return 0;
}

/* "<hex>[;ext]" of a chunk-size line; 0 or -EBADMSG. */
static int chunk_size_parse(const char *line, size_t len, uint64_t *size)
{
	size_t i;

	*size = 0;
	for (i = 0; i < len; i++) {
		char ch = line[i];
		int digit;

		if (ch >= '0' && ch <= '9')
			digit = ch - '0';
		else if ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f')
			digit = (ch | 0x20) - 'a' + 10;
		else
			break;
		/* 15 hex digits cannot overflow 64 bits. */
		if (i == 15)
			return -EBADMSG;
		*size = *size * 16 + digit;
	}
	if (i == 0)
		return -EBADMSG;
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;
	if (i < len && line[i] != ';')
		return -EBADMSG;
	return http_field_value_valid(line + i, len - i) ? 0 : -EBADMSG;
}

int http_chunked_step(struct http_chunked *ch, const char *p, size_t avail, size_t *pos)
{
	const char *end = p + avail, *line;
	size_t used, line_len;
	uint64_t take;

	switch (ch->state) {
	case HTTP_CHUNK_SIZE:
		used = http_line_take(p, end, &line, &line_len);
		if (!used)
			return avail > HTTP_MAX_LINE_BYTES ? -EBADMSG : HTTP_STEP_MORE;
		if (chunk_size_parse(line, line_len, &ch->remaining))
			return -EBADMSG;
		*pos += used;
		ch->state = ch->remaining ? HTTP_CHUNK_DATA : HTTP_CHUNK_TRAILERS;
		return HTTP_STEP_ADVANCED;

	case HTTP_CHUNK_DATA:
		take = http_body_take(&ch->remaining, avail);
		*pos += take;
		ch->data_bytes += take;
		if (ch->remaining)
			return HTTP_STEP_MORE;
		ch->state = HTTP_CHUNK_END;
		return HTTP_STEP_ADVANCED;

	case HTTP_CHUNK_END:
		/* The CRLF after a chunk's data; a bare LF is taken too. */
		if (avail >= 1 && p[0] == '\n')
			used = 1;
		else if (avail >= 2 && p[0] == '\r' && p[1] == '\n')
			used = 2;
		else if (avail == 0 || (avail == 1 && p[0] == '\r'))
			return HTTP_STEP_MORE;
		else
			return -EBADMSG;
		*pos += used;
		ch->state = HTTP_CHUNK_SIZE;
		return HTTP_STEP_ADVANCED;

	case HTTP_CHUNK_TRAILERS:
		used = http_line_take(p, end, &line, &line_len);
		if (!used)
			return avail > HTTP_MAX_LINE_BYTES ? -EBADMSG : HTTP_STEP_MORE;
		*pos += used;
		if (!line_len)
			return HTTP_STEP_DONE;
		/* Trailer fields are read for their syntax and otherwise ignored. */
		if (!memchr(line, ':', line_len) || !http_is_tchar(line[0]) ||
		    !http_field_value_valid(line, line_len))
			return -EBADMSG;
		return HTTP_STEP_ADVANCED;
	}
	return -EBADMSG;
}
