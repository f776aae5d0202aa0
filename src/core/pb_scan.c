/* Counting a field at a protobuf message's top level (pb_scan.h). */
#include "core/pb_scan.h"

/* A varint of at most max bytes; 0 when cut off or longer. */
static int varint(const uint8_t **p, const uint8_t *end, unsigned max, uint64_t *out)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < max && *p < end; i++) {
        uint8_t b = *(*p)++;
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *out = v;
            return 1;
        }
    }
    return 0;
}

/* A field's key as protobuf-c reads it: at most 5 bytes, the number kept
 * to 32 bits, and a first byte with neither number bits nor a following
 * byte refused (so field 0 passes when spelt in more than one byte). */
static int key(const uint8_t **p, const uint8_t *end, uint32_t *field, unsigned *wire)
{
    uint64_t k;
    if ((**p & 0xf8) == 0 || !varint(p, end, 5, &k))
        return 0;
    *field = (uint32_t)(k >> 3);
    *wire = (unsigned)(k & 7);
    return 1;
}

int envd_pb_count_field(const uint8_t *msg, size_t len, uint32_t field, size_t *count)
{
    const uint8_t *p = msg, *end = msg ? msg + len : msg;
    size_t n = 0;
    while (p < end) {
        uint64_t v;
        uint32_t f;
        unsigned wire;
        if (!key(&p, end, &f, &wire))
            return -1;
        switch (wire) {
        case 0:
            if (!varint(&p, end, 10, &v))
                return -1;
            break;
        case 1:
        case 5: {
            size_t w = wire == 1 ? 8 : 4;
            if ((size_t)(end - p) < w)
                return -1;
            p += w;
            break;
        }
        case 2:
            if (!varint(&p, end, 5, &v) || v > INT32_MAX || v > (uint64_t)(end - p))
                return -1;
            p += v;
            break;
        default:
            return -1;
        }
        if (f == field && wire == 2)
            n++;
    }
    *count = n;
    return 0;
}
