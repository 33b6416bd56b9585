# embed_cli_lua.cmake: turns the `lore` command's own Lua files (bindings/cli/*.lua) into a C
# table of {name, source, length}, so the executable needs no Lua search path to find them.
# cmake -DOUT=file.c -DSRC_DIR=bindings/cli -P embed_cli_lua.cmake
file(GLOB files ${SRC_DIR}/*.lua)
list(SORT files)
set(body "/* generated from the Lua files of bindings/cli: do not edit */\n#include <stddef.h>\n")
set(table "")
set(i 0)
foreach(f ${files})
  get_filename_component(name ${f} NAME_WE)
  file(READ ${f} hex HEX)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," hex "${hex}")
  string(APPEND body "static const char src_${i}[] = {${hex}0};\n")
  string(APPEND table "  {\"${name}\", src_${i}, sizeof(src_${i}) - 1},\n")
  math(EXPR i "${i} + 1")
endforeach()
string(APPEND body "const struct lore_cli_lua { const char *name; const char *src; size_t len; } lore_cli_lua[] = {\n${table}  {NULL, NULL, 0}\n};\n")
file(WRITE ${OUT} "${body}")
