/* Connect envelope framing (spec §4.2): one flags byte, a big-endian u32
 * payload length, the payload. An incremental parser that takes the response
 * body in whatever pieces curl hands over and holds at most one frame.
 * No I/O, so it is tested on its own (tests/unit/test_connect_frame.c). */
#ifndef ENVD_TRANSPORT_CONNECT_FRAME_H
#define ENVD_TRANSPORT_CONNECT_FRAME_H

#include "envd/envd.h"

#include <stddef.h>
#include <stdint.h>

#define ENVD_FRAME_COMPRESSED 0x01u
#define ENVD_FRAME_END_STREAM 0x02u
#define ENVD_FRAME_HEADER_LEN 5u
/* Larger frames are refused as a protocol error rather than buffered. */
#define ENVD_FRAME_MAX_DEFAULT ((size_t)64 << 20)

/* One complete frame: flags is 0 for a message or ENVD_FRAME_END_STREAM for
 * the end-of-stream JSON. The payload is valid only during the call. Return
 * non-zero to stop parsing. */
typedef int (*envd_frame_fn)(void *ud, unsigned flags, const uint8_t *payload, size_t len);

typedef struct envd_frame_parser {
    size_t max_len;
    uint8_t hdr[ENVD_FRAME_HEADER_LEN];
    size_t hdr_have;
    unsigned flags; /* of the frame being read, once hdr_have == 5 */
    size_t len;
    uint8_t *buf; /* partial payload */
    size_t cap, have;
    int ended;         /* the end-of-stream frame was seen */
    uint64_t messages; /* message frames delivered */
    uint64_t bytes;    /* payload bytes of message frames delivered */
} envd_frame_parser;

/* max_len 0 means ENVD_FRAME_MAX_DEFAULT. */
void envd_frame_parser_init(envd_frame_parser *p, size_t max_len);
void envd_frame_parser_free(envd_frame_parser *p);

/* Parses data, calling fn for every complete frame. Returns ENVD_OK;
 * ENVD_CANCELED when fn returned non-zero; ENVD_E_PROTOCOL (why explains) for
 * a compressed or unknown flag, an oversized frame, or bytes after the
 * end-of-stream frame; ENVD_E_NOMEM. After a non-OK return, stop feeding. */
envd_status envd_frame_parser_feed(envd_frame_parser *p, const uint8_t *data, size_t len,
                                   envd_frame_fn fn, void *ud, char *why, size_t why_cap);

/* The body ended cleanly: ENVD_OK if the end-of-stream frame was seen,
 * otherwise ENVD_E_PROTOCOL with why ("ended inside a frame", "ended without
 * the end-of-stream frame"). */
envd_status envd_frame_parser_finish(const envd_frame_parser *p, char *why, size_t why_cap);

/* Writes the 5-byte envelope header for a payload. */
void envd_frame_header(uint8_t out[ENVD_FRAME_HEADER_LEN], unsigned flags, uint32_t len);

#endif
