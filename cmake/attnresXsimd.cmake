# Finds xsimd. Debian 12's xsimd 8.1 exports a target whose INTERFACE_LINK_LIBRARIES names
# "xtl" without finding it, so linking turns into a bare `-lxtl` that does not exist. xtl is
# header-only and xsimd does not need it here: when no xtl target exists, an empty imported
# one stands in. Used by CMakeLists.txt and by the installed attnresConfig.cmake.
if(NOT TARGET xsimd)
  find_package(xsimd REQUIRED)
endif()
if(NOT TARGET xtl)
  find_package(xtl QUIET CONFIG)
  if(NOT TARGET xtl)
    add_library(xtl INTERFACE IMPORTED)
  endif()
endif()
