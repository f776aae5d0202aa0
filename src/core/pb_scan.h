/* A look at a protobuf message's top level without decoding it: how many
 * times a field occurs. Used before protobuf-c unpacks a reply whose
 * decoded form can be far larger than its bytes (a repeated field of empty
 * submessages: two bytes on the wire, a struct and a pointer decoded), so
 * that the count can be refused first.
 *
 * Reads the framing as protobuf-c 1.4 does (keys of at most 5 bytes,
 * varints of at most 10, lengths of at most 5 and below 2 GiB within the
 * message, wire types 0, 1, 2 and 5), so that whatever protobuf-c decodes
 * is counted as it counts it (tests/unit/test_pb_scan.c, and the fuzz
 * target fuzz_fs_proto on arbitrary input). */
#ifndef ENVD_CORE_PB_SCAN_H
#define ENVD_CORE_PB_SCAN_H

#include <stddef.h>
#include <stdint.h>

/* 0 and *count = length-delimited occurrences of field (a repeated
 * message, string or bytes field); -1 when the framing is malformed. */
int envd_pb_count_field(const uint8_t *msg, size_t len, uint32_t field, size_t *count);

#endif
