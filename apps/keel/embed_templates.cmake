# Compiles apps/templates into the keel binary: writes a .cpp with one
# {path, content} entry per file, so `keel new` works with the source tree gone.
#   cmake -DDIR=apps/templates -DOUT=templates_data.cpp -P embed_templates.cmake
file(GLOB_RECURSE files RELATIVE "${DIR}" "${DIR}/*")
list(REMOVE_ITEM files "README.md")  # about the templates, not part of one
list(SORT files)
set(out "// Generated from apps/templates by embed_templates.cmake: edit those files instead.\n")
string(APPEND out "#include \"template_files.hpp\"\n\nnamespace keel::cli {\n\n")
string(APPEND out "namespace {\nconstexpr template_file files[] = {\n")
foreach(f IN LISTS files)
  file(READ "${DIR}/${f}" content)
  string(FIND "${content}" ")keel_tpl\"" clash)
  if(NOT clash EQUAL -1)
    message(FATAL_ERROR "${DIR}/${f} contains the raw-string delimiter )keel_tpl\"")
  endif()
  string(APPEND out "    {\"${f}\", R\"keel_tpl(${content})keel_tpl\"},\n")
endforeach()
string(APPEND out "};\n}  // namespace\n\n")
string(APPEND out "std::span<template_file const> embedded_templates() { return files; }\n\n}  // namespace keel::cli\n")
file(WRITE "${OUT}.tmp" "${out}")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUT}.tmp")
