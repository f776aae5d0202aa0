/* Incremental Connect envelope parser; see connect_frame.h. */
#include "transport/connect_frame.h"
#include "core/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A payload buffer bigger than this is released after its frame, so one huge
 * message does not pin memory for the rest of a long stream. */
#define KEEP_BUF_MAX ((size_t)256 << 10)

void envd_frame_parser_init(envd_frame_parser *p, size_t max_len)
{
    memset(p, 0, sizeof *p);
    p->max_len = max_len ? max_len : ENVD_FRAME_MAX_DEFAULT;
}

void envd_frame_parser_free(envd_frame_parser *p)
{
    free(p->buf);
    p->buf = NULL;
    p->cap = p->have = 0;
}

void envd_frame_header(uint8_t out[ENVD_FRAME_HEADER_LEN], unsigned flags, uint32_t len)
{
    out[0] = (uint8_t)flags;
    out[1] = (uint8_t)(len >> 24);
    out[2] = (uint8_t)(len >> 16);
    out[3] = (uint8_t)(len >> 8);
    out[4] = (uint8_t)len;
}

/* Validates a complete header; fills flags/len. */
static envd_status take_header(envd_frame_parser *p, const uint8_t *h, char *why, size_t why_cap)
{
    unsigned flags = h[0];
    size_t len = ((size_t)h[1] << 24) | ((size_t)h[2] << 16) | ((size_t)h[3] << 8) | h[4];
    if (flags & ENVD_FRAME_COMPRESSED) {
        snprintf(why, why_cap,
                 "received a compressed frame (flags 0x%02x) but no compression was "
                 "negotiated",
                 flags);
        return ENVD_E_PROTOCOL;
    }
    if (flags & ~(unsigned)ENVD_FRAME_END_STREAM) {
        snprintf(why, why_cap, "received a frame with unknown flags 0x%02x", flags);
        return ENVD_E_PROTOCOL;
    }
    if (len > p->max_len) {
        snprintf(why, why_cap,
                 "received a frame of %zu bytes, over the %zu-byte limit "
                 "(envd_config_set_max_message_bytes)",
                 len, p->max_len);
        return ENVD_E_PROTOCOL;
    }
    p->flags = flags;
    p->len = len;
    return ENVD_OK;
}

static envd_status deliver(envd_frame_parser *p, const uint8_t *payload, size_t len,
                           envd_frame_fn fn, void *ud)
{
    unsigned flags = p->flags;
    p->hdr_have = 0;
    p->have = 0;
    if (flags & ENVD_FRAME_END_STREAM) {
        p->ended = 1;
    } else {
        p->messages++;
        p->bytes += len;
    }
    return fn(ud, flags, payload, len) ? ENVD_CANCELED : ENVD_OK;
}

envd_status envd_frame_parser_feed(envd_frame_parser *p, const uint8_t *data, size_t len,
                                   envd_frame_fn fn, void *ud, char *why, size_t why_cap)
{
    envd_status st;
    while (len > 0) {
        if (p->ended) {
            snprintf(why, why_cap, "received %zu bytes after the end-of-stream frame", len);
            return ENVD_E_PROTOCOL;
        }
        if (p->hdr_have < ENVD_FRAME_HEADER_LEN) {
            /* Fast path: a whole frame in the input, no copy. */
            if (p->hdr_have == 0 && len >= ENVD_FRAME_HEADER_LEN) {
                if ((st = take_header(p, data, why, why_cap)) != ENVD_OK)
                    return st;
                if (len - ENVD_FRAME_HEADER_LEN >= p->len) {
                    const uint8_t *payload = data + ENVD_FRAME_HEADER_LEN;
                    size_t plen = p->len;
                    data += ENVD_FRAME_HEADER_LEN + plen;
                    len -= ENVD_FRAME_HEADER_LEN + plen;
                    if ((st = deliver(p, payload, plen, fn, ud)) != ENVD_OK)
                        return st;
                    continue;
                }
                memcpy(p->hdr, data, ENVD_FRAME_HEADER_LEN);
                p->hdr_have = ENVD_FRAME_HEADER_LEN;
                data += ENVD_FRAME_HEADER_LEN;
                len -= ENVD_FRAME_HEADER_LEN;
            } else {
                size_t n = ENVD_FRAME_HEADER_LEN - p->hdr_have;
                if (n > len)
                    n = len;
                memcpy(p->hdr + p->hdr_have, data, n);
                p->hdr_have += n;
                data += n;
                len -= n;
                if (p->hdr_have < ENVD_FRAME_HEADER_LEN)
                    return ENVD_OK;
                if ((st = take_header(p, p->hdr, why, why_cap)) != ENVD_OK)
                    return st;
            }
            if (p->len == 0) {
                /* A real pointer even for no bytes: consumers compute
                 * payload + len, which is undefined on NULL. */
                static const uint8_t none[1];
                if ((st = deliver(p, none, 0, fn, ud)) != ENVD_OK)
                    return st;
                continue;
            }
            if (p->cap < p->len) {
                /* Exactly one frame's worth; nothing to keep from before. */
                free(p->buf);
                p->buf = envd_malloc(p->len);
                p->cap = p->buf ? p->len : 0;
                if (!p->buf) {
                    snprintf(why, why_cap, "out of memory for a %zu-byte frame", p->len);
                    return ENVD_E_NOMEM;
                }
            }
            p->have = 0;
            if (len == 0)
                return ENVD_OK;
        }
        size_t n = p->len - p->have;
        if (n > len)
            n = len;
        memcpy(p->buf + p->have, data, n);
        p->have += n;
        data += n;
        len -= n;
        if (p->have == p->len) {
            st = deliver(p, p->buf, p->len, fn, ud);
            if (p->cap > KEEP_BUF_MAX) {
                free(p->buf);
                p->buf = NULL;
                p->cap = 0;
            }
            if (st != ENVD_OK)
                return st;
        }
    }
    return ENVD_OK;
}

envd_status envd_frame_parser_finish(const envd_frame_parser *p, char *why, size_t why_cap)
{
    if (p->ended)
        return ENVD_OK;
    if (p->hdr_have > 0 && p->hdr_have < ENVD_FRAME_HEADER_LEN) {
        snprintf(why, why_cap, "the response ended inside a frame header (%zu of 5 bytes)",
                 p->hdr_have);
        return ENVD_E_PROTOCOL;
    }
    if (p->hdr_have == ENVD_FRAME_HEADER_LEN) {
        snprintf(why, why_cap, "the response ended inside a frame (%zu of %zu payload bytes)",
                 p->have, p->len);
        return ENVD_E_PROTOCOL;
    }
    snprintf(why, why_cap,
             "the response ended without the end-of-stream frame (after %llu messages)",
             (unsigned long long)p->messages);
    return ENVD_E_PROTOCOL;
}
