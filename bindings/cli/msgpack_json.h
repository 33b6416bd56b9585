/* msgpack_json.h: MessagePack values as JSON (jansson), by the rules docs/cli.md documents. */
#ifndef LORE_CLI_MSGPACK_JSON_H
#define LORE_CLI_MSGPACK_JSON_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

/*
 * Every MessagePack value gets a JSON form that any parser accepts and that
 * can be read back without guessing:
 * - nil, booleans, integers (int64) and finite floats are themselves; a float
 *   always prints with a '.' or an exponent, so 1.0 stays apart from 1.
 * - A string that is valid UTF-8 is a JSON string.
 * - What JSON has no literal for is a "tagged value": an object with exactly
 *   ONE member whose name starts with '$':
 *     {"$base64": "..."}  bytes that are not UTF-8 (or a MessagePack bin)
 *     {"$float": "nan" | "inf" | "-inf"}
 *     {"$uint64": "18446744073709551615"}   an unsigned above 2^63-1
 *     {"$ref": {"id": ...} | {"entities": ..., "id": ...} | {"scheduler": N, "actor": N}}
 *     {"$ext": {"type": N, "base64": "..."}}   any other extension type
 *     {"$map": [key1, value1, key2, value2, ...]}   a map that cannot be an object
 * - A map is a JSON object when every key is a UTF-8 string (without NUL) or an integer
 *   (written as its decimal string), no two keys render alike, and it is not
 *   a single key starting with '$'; otherwise it is {"$map": [...]}, whose
 *   keys keep their own JSON form, in the map's order.
 * - More than MPJ_MAX_DEPTH containers nested, more than MPJ_MAX_VALUES values,
 *   malformed or truncated bytes, or bytes after the value: an error (the
 *   runtime itself refuses to decode such a payload).
 */

#define MPJ_MAX_DEPTH 64 /* containers inside each other, as the runtime's own codec */
#define MPJ_MAX_VALUES ((size_t)1 << 22)

typedef struct mpj_ctx {
  /* The number of significant digits (15..17) the finite floats decoded so
   * far need to read back exactly: print with JSON_REAL_PRECISION(precision). */
  int precision;
  size_t values;
  char err[160];
} mpj_ctx;

void mpj_ctx_init(mpj_ctx *ctx);

/* The JSON form of the one MessagePack value in data[0..len); NULL on error
 * (the reason in ctx->err). The caller owns the result (json_decref). */
json_t *mpj_decode(const void *data, size_t len, mpj_ctx *ctx);

/* A byte string by the string rule: a JSON string, or {"$base64": ...}. */
json_t *mpj_bytes(const char *s, size_t n);

/* Bytes in the tagged form {"$base64": ...}, whatever they hold. */
json_t *mpj_bin(const void *data, size_t n);

/* Folds the precision `d` needs into ctx->precision. */
void mpj_note_real(mpj_ctx *ctx, double d);

/* Prints `v` compactly on one line to `out`, floats with `precision` digits.
 * Returns 0, or -1 when the write failed. */
int mpj_print_line(FILE *out, const json_t *v, int precision);

#endif
