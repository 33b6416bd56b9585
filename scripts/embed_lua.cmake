# embed_lua.cmake: turns the Lua files of a folder into a C table of
# {module name, source, length}, so the library (lua/lore/*.lua, names
# "lore.X") and the `lore` command (bindings/cli/*.lua, names "X") need no
# Lua search path to find their own code.
#   cmake -DOUT=file.c -DSRC_DIR=dir -DPREFIX=lore. -DSYMBOL=lore_embedded_lua -P embed_lua.cmake
file(GLOB files ${SRC_DIR}/*.lua)
list(SORT files)
set(body "/* generated from the Lua files in ${SRC_DIR}: do not edit */\n#include <stddef.h>\n")
set(table "")
set(i 0)
foreach(f ${files})
  get_filename_component(name ${f} NAME_WE)
  file(READ ${f} hex HEX)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," hex "${hex}")
  string(APPEND body "static const char src_${i}[] = {${hex}0};\n")
  string(APPEND table "  {\"${PREFIX}${name}\", src_${i}, sizeof(src_${i}) - 1},\n")
  math(EXPR i "${i} + 1")
endforeach()
string(APPEND body "const struct ${SYMBOL} { const char *name; const char *src; size_t len; } ${SYMBOL}[] = {\n${table}  {NULL, NULL, 0}\n};\n")
file(WRITE ${OUT} "${body}")
