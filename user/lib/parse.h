/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * Operator input: the parsers of every kind of value the CLI and the policy file take, and
 * the formatters that print those values back in the form the parsers read.
 */
#ifndef SOCKWAY_PARSE_H
#define SOCKWAY_PARSE_H

#include <stddef.h>
#include <sys/socket.h>

#include "sockway/abi.h"
#include "err.h"

/* The shard header an endpoint reads unless told otherwise. */
#define SW_DEFAULT_SHARD_HEADER "X-SERVE-SHARD-KEY"

/* Room for a quoted name or value in a message (sw_format_quoted); longer input is cut. */
#define SW_SHOWN_MAX 72

/* The SW_METHOD_* bits an operator can name; SW_METHOD_OTHER is only a request's. */
#define SW_METHODS_KNOWN ((SW_METHOD_TRACE << 1) - 1)

/* Parsers of operator input. Each returns 0 or -EINVAL with e filled. */
int sw_parse_name(const char *s, const char *what, struct sw_err *e);
/* "a.b.c.d:port" or "[ipv6]:port", port 1..65535. */
int sw_parse_addr(const char *s, struct sw_addr *a, struct sw_err *e);
/* A decimal number in [0, 1] (e.g. "0.99", "1", "1e-2") to 1/SW_WEIGHT_ONE units. */
int sw_parse_fraction(const char *s, const char *what, __u32 *out, struct sw_err *e);
/* Converts a number already parsed (e.g. from JSON) the same way. */
int sw_fraction_from_double(double v, const char *what, __u32 *out, struct sw_err *e);
/* "GET,POST" (case-insensitive) to SW_METHOD_* bits. */
int sw_parse_methods(const char *csv, __u32 *mask, struct sw_err *e);
/*
 * A path prefix: starts with '/', printable, no '?', '#', ';', spaces or empty segments, in
 * the normal form requests are routed in (include/sockway/norm.h); a trailing '/' is dropped
 * ("/api/" becomes "/api"), except for the root "/".
 */
int sw_parse_route(const char *s, char out[SW_PREFIX_MAX], struct sw_err *e);
/* A host name or bracketed IPv6 literal without port, stored in lower case without a
 * trailing dot. */
int sw_parse_host(const char *s, char out[SW_HOST_MAX], struct sw_err *e);
/* An HTTP header field name (RFC 9110 token) without '_'. */
int sw_parse_header_name(const char *s, char out[SW_HEADER_NAME_MAX], struct sw_err *e);

/* The socket address of a replica; returns its length. */
socklen_t sw_addr_to_sockaddr(const struct sw_addr *a, struct sockaddr_storage *ss);

/* Printers: "a.b.c.d:port" or "[ipv6]:port"; "GET,POST" ("" for 0). Return buf. */
char *sw_format_addr(const struct sw_addr *a, char *buf, size_t len);
char *sw_format_methods(__u32 mask, char *buf, size_t len);
/*
 * The shortest decimal that reads back as the same fixed-point value ("0.99", "1", "0").
 * 64 bits wide, so that a sum of weights prints too.
 */
char *sw_format_fraction(__u64 v, char *buf, size_t len);
/*
 * Operator input made safe to echo inside "..." in a message: '"' and '\\' escaped, other
 * bytes outside printable ASCII as \xNN, cut with "..." to fit len.
 */
char *sw_format_quoted(const char *s, char *buf, size_t len);

#endif /* SOCKWAY_PARSE_H */
