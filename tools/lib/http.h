/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * The HTTP/1.1 framing that swbackend and swclient share: lines, the end of a head, field
 * lines, the fields that frame a message (Content-Length, Transfer-Encoding, Connection)
 * and chunked bodies. Each tool reads its own start line and decides for itself what the
 * framing means for a request or for a response.
 *
 * This is deliberately not sockwayd's parser (user/helper/http.h). That one refuses
 * whatever two implementations could frame differently; the test tools accept what they
 * always have (bare LF line ends, chunk extensions as free text, HTTP/1.2 read as 1.1),
 * so that the tests can tell what sockwayd let through from what it refused.
 *
 * Nothing here copies or allocates: results point into the caller's buffer.
 */
#ifndef SW_TOOLS_HTTP_H
#define SW_TOOLS_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

/* Chunk-size lines and trailer lines are short; anything longer is an attack or garbage. */
#define HTTP_MAX_LINE_BYTES 8192

/*
 * What one parsing step of a tool or of http_chunked_step() did, besides -EBADMSG. MORE
 * may still have taken bytes (body data) when it needs more to go on.
 */
enum http_step {
	HTTP_STEP_MORE,	    /* needs more bytes */
	HTTP_STEP_ADVANCED, /* took a part of the message; call again */
	HTTP_STEP_DONE,	    /* the message is complete */
};

/*
 * The tools' small predicates are inline: they run for every field line, and swbackend and
 * swclient are the load and the backends of the benchmarks.
 */

/* RFC 9110 tchar: the characters of a method, a header name or a list token. */
static inline bool http_is_tchar(unsigned char ch)
{
	if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'))
		return true;
	return ch && strchr("!#$%&'*+-.^_`|~", ch);
}

/* A field value may hold tabs, spaces, visible ASCII and obs-text, never controls. */
static inline bool http_field_value_valid(const char *value, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = value[i];

		if (ch != '\t' && (ch < 0x20 || ch == 0x7f))
			return false;
	}
	return true;
}

/* Whether name[0..len) is expected, ignoring case. */
static inline bool http_name_is(const char *name, size_t len, const char *expected)
{
	return len == strlen(expected) && !strncasecmp(name, expected, len);
}

/* Takes up to *remaining bytes of a body out of avail; returns how many it took. */
static inline uint64_t http_body_take(uint64_t *remaining, size_t avail)
{
	uint64_t take = *remaining < avail ? *remaining : avail;

	*remaining -= take;
	return take;
}

/*
 * Takes the line at [p, end): sets *line and *line_len (without CR LF) and returns how
 * many bytes it spans with its LF, or 0 when the LF has not arrived yet.
 */
size_t http_line_take(const char *p, const char *end, const char **line, size_t *line_len);

/*
 * Finds the blank line that ends a head in p[0..len). Returns the head's length including
 * it, or 0 when it has not arrived; *scan (0 for a new head) remembers how far there is
 * nothing to find, so a head that trickles in is not searched from the start each time.
 */
size_t http_head_end_find(const char *p, size_t len, size_t *scan);

/* "HTTP/1.x" at p[0..8); sets *http10 for HTTP/1.0. 0 or -EBADMSG. */
int http_version_parse(const char *p, bool *http10);

/* What the start line and the framing fields of a head say. */
struct http_framing {
	bool http10; /* set by the tool from the start line: 1.0 closes unless told not to */
	bool conn_close;
	bool conn_keep_alive;
	bool te_seen;
	bool te_chunked_last;
	int te_chunked_count;
	bool cl_seen;
	uint64_t content_length; /* several Content-Length fields must agree */
};

/* Whether the connection stays open after this message (RFC 9112 9.3). */
static inline bool http_framing_keep_alive(const struct http_framing *fr)
{
	return !fr->conn_close && (!fr->http10 || fr->conn_keep_alive);
}

/* One field line, split. Both point into the head; the value has its whitespace trimmed. */
struct http_field {
	const char *name;
	size_t name_len;
	const char *value;
	size_t value_len;
};

static inline bool http_field_is(const struct http_field *f, const char *name)
{
	return http_name_is(f->name, f->name_len, name);
}

/* Which field a line held: the framing fields are folded into struct http_framing. */
enum http_field_kind {
	HTTP_FIELD_OTHER,
	HTTP_FIELD_CONTENT_LENGTH,
	HTTP_FIELD_TRANSFER_ENCODING,
	HTTP_FIELD_CONNECTION,
};

/*
 * Reads the field lines of a whole head at [p, end), from the one after the start line to
 * the blank line: folds each framing field into fr, then calls field() with every line and
 * its kind. 0, -EBADMSG for a malformed line, or what field() returned when not 0.
 */
int http_fields_parse(const char *p, const char *end, struct http_framing *fr,
		      int (*field)(void *arg, const struct http_field *f,
				   enum http_field_kind kind),
		      void *arg);

/* A chunked body (RFC 9112 7.1), read one line or one run of data at a time. */
enum http_chunk_state {
	HTTP_CHUNK_SIZE,     /* the chunk-size line */
	HTTP_CHUNK_DATA,     /* the chunk's data */
	HTTP_CHUNK_END,	     /* the CRLF after the data */
	HTTP_CHUNK_TRAILERS, /* trailer lines up to the blank one */
};

struct http_chunked {
	enum http_chunk_state state;
	uint64_t remaining;  /* data bytes left of the current chunk */
	uint64_t data_bytes; /* data bytes of the body so far */
};

static inline void http_chunked_start(struct http_chunked *ch)
{
	ch->state = HTTP_CHUNK_SIZE;
	ch->data_bytes = 0;
}

/*
 * Takes one step of the chunked body at p[0..avail) and adds to *pos the bytes it took:
 * HTTP_STEP_ADVANCED, HTTP_STEP_DONE after the blank line that ends the trailers,
 * HTTP_STEP_MORE when it needs more bytes, or -EBADMSG.
 */
int http_chunked_step(struct http_chunked *ch, const char *p, size_t avail, size_t *pos);

#endif /* SW_TOOLS_HTTP_H */
