/* crc32c.h: CRC-32C (Castagnoli), the one checksum of events and snapshots. */
#ifndef LORE_CRC32C_H
#define LORE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Chains like zlib's crc32: start with 0, feed the previous result. Uses the
 * SSE4.2 instruction where the CPU has it, slicing-by-8 otherwise. */
uint32_t crc32c(uint32_t crc, const void *data, size_t len);
/* The table-driven version crc32c falls back to; exported so a test can check
 * that both give the same result. */
uint32_t crc32c_portable(uint32_t crc, const void *data, size_t len);

#endif
