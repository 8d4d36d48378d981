# Optimised BLAS for Eigen's matrix products (EIGEN_USE_BLAS).
#
# Eigen's own GEMM kernels reach ~50-80% of an AVX2 core; OpenBLAS reaches more and picks its
# kernels at run time (AVX-512 where the CPU has it). We take the OpenMP build of Debian's OpenBLAS
# (libopenblas-openmp-dev): it shares the library's OpenMP thread pool and runs single-threaded
# when called inside one of our parallel regions. The pthreads build (libopenblas-pthread-dev)
# starts its own threads, which fight OpenMP's (PyTorch measured 2.5x slower), so it is refused.
#
# In:  ATTNRES_BLAS_LIBRARY  a BLAS to use instead (full path; anything exporting sgemm_), or empty
# Out: ATTNRES_WITH_BLAS     ON when a BLAS was found; ATTNRES_BLAS_LIBRARY its full path
set(ATTNRES_WITH_BLAS OFF)
if(NOT ATTNRES_BLAS_LIBRARY)
  find_library(ATTNRES_BLAS_LIBRARY NAMES openblas
               PATHS /usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}/openblas-openmp /usr/lib64/openblas-openmp
               NO_DEFAULT_PATH)
endif()
if(ATTNRES_BLAS_LIBRARY)
  if(ATTNRES_BLAS_LIBRARY MATCHES "openblas-pthread")
    message(WARNING "attnres: ${ATTNRES_BLAS_LIBRARY} is the pthreads build of OpenBLAS; its threads "
                    "fight OpenMP's. Not using it: install libopenblas-openmp-dev (Debian) or set "
                    "ATTNRES_BLAS_LIBRARY to an OpenMP or single-threaded BLAS.")
  else()
    set(ATTNRES_WITH_BLAS ON)
    message(STATUS "attnres: matrix products through BLAS: ${ATTNRES_BLAS_LIBRARY}")
  endif()
else()
  message(STATUS "attnres: no OpenMP OpenBLAS found (Debian: libopenblas-openmp-dev); "
                 "matrix products use Eigen's own kernels")
endif()
