/* ref.h: actor references as Lua values (userdata "lore.ref") and as bytes. */
#ifndef LORE_REF_H
#define LORE_REF_H

#include <lua.h>
#include <stddef.h>
#include <stdint.h>

/*
 * A ref names an actor by address (scheduler index + actor id, valid for the
 * actor's life), by persistence id (valid across restarts: the runtime routes
 * it to whichever actor holds that id), or by entity manager and id (valid
 * across passivation too: a message wakes the entity up). Never by a memory
 * address of this process, so a ref kept in an event or sent elsewhere stays
 * meaningful. A ref is immutable. In MessagePack it is the extension type
 * REF_EXT_TYPE whose bytes are ref_serialize's output.
 */
#define REF_EXT_TYPE 1
#define REF_METATABLE "lore.ref"
#define REF_SERIALIZED_MAX 4096 /* longest accepted name is REF_SERIALIZED_MAX - 1 */

/* 15 bytes before the name: every actor keeps its own ref (its self), so
 * the header is paid once per actor. Ids are shorter than
 * REF_SERIALIZED_MAX and managers' names at most REF_MANAGER_MAX: the
 * lengths fit 16 and 8 bits (ref_new and ref_alloc refuse longer ones). */
typedef struct lore_ref {
  uint64_t aid;        /* actor id; 0 for a ref by name */
  uint32_t sched;      /* scheduler index (address refs) */
  uint16_t name_len;   /* 0 for an address ref */
  uint8_t manager_len; /* entity refs: the manager's name follows the id */
  char name[];         /* persistence id, NUL; then the manager's name, NUL */
} lore_ref;

#define REF_MANAGER_MAX 255 /* longest entity manager name */
/* The bytes of a ref whose names take extra bytes (NULs included). */
#define REF_SIZE(extra) (offsetof(lore_ref, name) + (extra))

/* The manager's name of an entity ref (NULL for others). */
static inline const char *ref_manager(const lore_ref *r) {
  return r->manager_len ? r->name + r->name_len + 1 : NULL;
}

/* Creates the metatable (idempotent). Methods are added by the runtime. */
void ref_init(lua_State *L);
lore_ref *ref_push_addr(lua_State *L, uint32_t sched, uint64_t aid);
lore_ref *ref_push_name(lua_State *L, const char *name, size_t len);
lore_ref *ref_push_entity(lua_State *L, const char *manager, size_t mlen, const char *id,
                          size_t len);
/* The ref at idx, or NULL if that value is not a ref. */
lore_ref *ref_test(lua_State *L, int idx);
lore_ref *ref_check(lua_State *L, int idx);
/* Writes the bytes of r into buf; returns their length, or 0 if cap is too small. */
size_t ref_serialize(const lore_ref *r, char *buf, size_t cap);
/* Whether those bytes are a well-formed serialized ref (no Lua needed). */
int ref_serialized_valid(const char *buf, size_t len);
/* Pushes the ref those bytes describe; returns 0, or -1 (nothing pushed) if malformed. */
int ref_push_serialized(lua_State *L, const char *buf, size_t len);

#endif
