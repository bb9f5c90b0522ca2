# Install rules and the exported package `keel` (find_package(keel CONFIG)).
#
# Included at the end of the top-level CMakeLists.txt, after every target
# exists. Layout under the prefix:
#
#   include/keel/...                  public headers (framework, middleware, redis, testing)
#   lib/libkeel_{boost,framework,middleware,redis,testing}.a
#   lib/cmake/keel/keelConfig.cmake   + keelConfigVersion.cmake, keelTargets*.cmake,
#                                       keelRedisTargets*.cmake (the redis component)
#   bin/keel                          the CLI (apps/keel), when it is built
#
# See docs/building.md, "Using an installed keel".
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(KEEL_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/keel"
  CACHE STRING "Where keelConfig.cmake is installed, relative to the prefix")
mark_as_advanced(KEEL_INSTALL_CMAKEDIR)

# keel's public headers need C++20 (coroutines): say so in the usage
# requirements, so a consumer gets it from keel::boost without setting it.
target_compile_features(keel_boost PUBLIC cxx_std_20)

# --- Libraries and headers ---------------------------------------------------
set(_keel_exported_targets keel_boost keel_framework keel_middleware keel_testing)

install(TARGETS ${_keel_exported_targets}
  EXPORT keelTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT keel_development
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT keel_development)

# keel::redis is exported apart, as the component `redis`: its hiredis is found
# only by the projects that ask for it (find_package(keel COMPONENTS redis)).
if(TARGET keel_redis)
  install(TARGETS keel_redis
    EXPORT keelRedisTargets
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT keel_development
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT keel_development)
  install(EXPORT keelRedisTargets
    NAMESPACE keel::
    FILE keelRedisTargets.cmake
    DESTINATION ${KEEL_INSTALL_CMAKEDIR}
    COMPONENT keel_development)
endif()

foreach(_keel_dir framework middleware redis testing)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/${_keel_dir}/include/
    DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
    COMPONENT keel_development
    FILES_MATCHING PATTERN "*.hpp" PATTERN "*.ipp" PATTERN "*.h")
endforeach()

install(EXPORT keelTargets
  NAMESPACE keel::
  FILE keelTargets.cmake
  DESTINATION ${KEEL_INSTALL_CMAKEDIR}
  COMPONENT keel_development)

# --- What the config must find_dependency -------------------------------------
# Scanned from the exported targets' link libraries, so a library that someone
# links later (ZLIB for permessage-deflate, SQLite, Catch2 for keel::testing...)
# is found by consumers without editing keelConfig.cmake.in. Static libraries
# carry their PRIVATE dependencies too ($<LINK_ONLY:...>), hence both lists.
set(_keel_boost_components "")
set(KEEL_FIND_EXTRA_DEPENDENCIES "")
foreach(_keel_target IN LISTS _keel_exported_targets)
  get_target_property(_keel_links ${_keel_target} LINK_LIBRARIES)
  get_target_property(_keel_ilinks ${_keel_target} INTERFACE_LINK_LIBRARIES)
  foreach(_keel_lib IN LISTS _keel_links _keel_ilinks)
    if(_keel_lib MATCHES "^Boost::([a-z_]+)$" AND NOT CMAKE_MATCH_1 STREQUAL "headers"
       AND NOT CMAKE_MATCH_1 STREQUAL "boost")
      list(APPEND _keel_boost_components ${CMAKE_MATCH_1})
    elseif(_keel_lib MATCHES "ZLIB::ZLIB")
      string(APPEND KEEL_FIND_EXTRA_DEPENDENCIES "find_dependency(ZLIB)\n")
    elseif(_keel_lib MATCHES "PkgConfig::BROTLI")
      string(APPEND KEEL_FIND_EXTRA_DEPENDENCIES
             "find_dependency(PkgConfig)\npkg_check_modules(BROTLI REQUIRED IMPORTED_TARGET libbrotlienc libbrotlidec)\n")
    elseif(_keel_lib MATCHES "SQLite::SQLite3")
      string(APPEND KEEL_FIND_EXTRA_DEPENDENCIES "find_dependency(SQLite3)\n")
    elseif(_keel_lib MATCHES "Catch2::Catch2")
      string(APPEND KEEL_FIND_EXTRA_DEPENDENCIES "find_dependency(Catch2 2.13)\n")
    endif()
  endforeach()
endforeach()
list(REMOVE_DUPLICATES _keel_boost_components)
list(SORT _keel_boost_components)
list(JOIN _keel_boost_components " " KEEL_BOOST_COMPONENTS)
# find_dependency lines appear once each, in a stable order.
string(REPLACE "\n" ";" _keel_extra "${KEEL_FIND_EXTRA_DEPENDENCIES}")
list(REMOVE_ITEM _keel_extra "")
list(REMOVE_DUPLICATES _keel_extra)
list(SORT _keel_extra)
list(JOIN _keel_extra "\n" KEEL_FIND_EXTRA_DEPENDENCIES)
set(KEEL_BOOST_MIN_VERSION 1.81)

# --- keelConfig.cmake and keelConfigVersion.cmake -----------------------------
configure_package_config_file(
  ${PROJECT_SOURCE_DIR}/cmake/keelConfig.cmake.in
  ${PROJECT_BINARY_DIR}/keelConfig.cmake
  INSTALL_DESTINATION ${KEEL_INSTALL_CMAKEDIR})

# keel is 0.x: a minor release may break the API (semver's rule for 0.y.z),
# so find_package(keel 0.1) accepts 0.1.x only. From 1.0 on this becomes
# SameMajorVersion.
write_basic_package_version_file(
  ${PROJECT_BINARY_DIR}/keelConfigVersion.cmake
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY SameMinorVersion)

install(FILES
  ${PROJECT_BINARY_DIR}/keelConfig.cmake
  ${PROJECT_BINARY_DIR}/keelConfigVersion.cmake
  DESTINATION ${KEEL_INSTALL_CMAKEDIR}
  COMPONENT keel_development)

# --- The `keel` CLI and its templates (apps/keel) -----------------------------
# Installed when built (KEEL_BUILD_APPS). Not part of keelTargets: the export
# set must not depend on whether the apps were built. The templates are
# compiled into the binary (apps/keel/embed_templates.cmake): nothing to find.
foreach(_keel_cli keel)
  if(TARGET ${_keel_cli})
    install(TARGETS ${_keel_cli} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT keel_cli)
  endif()
endforeach()
