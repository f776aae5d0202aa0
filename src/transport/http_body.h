/* The request body of a /files upload, produced piece by piece as the socket
 * takes it: one raw body, or a multipart/form-data form of several parts,
 * each from a copy of the caller's bytes or a read callback of known or
 * unknown size, optionally through a streaming gzip deflate. Memory stays
 * flat whatever the size. The one multipart implementation of the library.
 *
 * Used by http.c only, on the engine's I/O thread after creation. */
#ifndef ENVD_TRANSPORT_HTTP_BODY_H
#define ENVD_TRANSPORT_HTTP_BODY_H

#include "transport/transport.h"

typedef struct envd_http_body envd_http_body;

/* Copies what it needs from parts (data/len bytes included; read callbacks
 * are called later). multipart = 0 takes exactly one part as the raw body.
 * ENVD_E_USAGE for a part without data or callback, ENVD_INVALID_ARGUMENT
 * for names holding CR or LF, ENVD_E_NOMEM. */
envd_status envd_http_body_new(const envd_http_part *parts, size_t n, int multipart, int gzip,
                               envd_http_body **out);
void envd_http_body_free(envd_http_body *b);

/* The Content-Type: the raw part's, or the form's with its boundary. */
const char *envd_http_body_content_type(const envd_http_body *b);
/* Bytes on the wire (framing included), or -1 when unknown (a source of
 * unknown size, or gzip): the request then goes chunked. */
int64_t envd_http_body_wire_size(const envd_http_body *b);
/* Bytes of the parts themselves, without framing and before gzip: what
 * progress counts. total is -1 when a size is unknown. */
int64_t envd_http_body_taken(const envd_http_body *b);
int64_t envd_http_body_total(const envd_http_body *b);
/* 1 once the last byte has been produced. */
int envd_http_body_done(const envd_http_body *b);

/* Fills buf with up to cap bytes of the body. Returns the count (0 at the
 * end), or (size_t)-1 on failure, with the reason in envd_http_body_error:
 * a read callback failed or returned more than asked for, a sized source
 * ended early, compression failed. */
size_t envd_http_body_read(envd_http_body *b, uint8_t *buf, size_t cap);
const char *envd_http_body_error(const envd_http_body *b);

#endif
