# Builds tests/package/consumer against attnres, either after `cmake --install` (MODE=find_package)
# or with add_subdirectory (MODE=add_subdirectory), and runs it. Invoked by ctest with
# -DSOURCE_DIR= -DWORK_DIR= -DMODE= -DCXX=.
file(REMOVE_RECURSE ${WORK_DIR})
function(run)
  execute_process(COMMAND ${ARGV} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGV}")
  endif()
endfunction()
set(common -DCMAKE_CXX_COMPILER=${CXX} -DCMAKE_BUILD_TYPE=Release)
if(MODE STREQUAL "find_package")
  run(${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${WORK_DIR}/lib ${common} -DCMAKE_INSTALL_PREFIX=${WORK_DIR}/prefix
      -DATTNRES_BUILD_TESTS=OFF -DATTNRES_BUILD_EXAMPLES=OFF -DATTNRES_BUILD_BENCHMARKS=OFF
      -DATTNRES_BUILD_TOOL=OFF)
  run(${CMAKE_COMMAND} --install ${WORK_DIR}/lib)
  if(NOT EXISTS ${WORK_DIR}/prefix/include/attnres/attnres.hpp)
    message(FATAL_ERROR "headers were not installed")
  endif()
  run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/package/consumer -B ${WORK_DIR}/consumer ${common}
      -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix)
else()
  run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/package/consumer -B ${WORK_DIR}/consumer ${common}
      -DATTNRES_SOURCE_DIR=${SOURCE_DIR})
endif()
run(${CMAKE_COMMAND} --build ${WORK_DIR}/consumer)
run(${WORK_DIR}/consumer/consumer)
message(STATUS "package consumer (${MODE}) built and ran")
