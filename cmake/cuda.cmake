# cmake/cuda.cmake: the CUDA build, included (OPTIONAL) by the top-level CMakeLists.txt.
# With RLC_CUDA=AUTO (and nvcc found) or ON it builds:
#   rlc_cuda          static library of kernels/cuda/*.cu for sm_90a and sm_80 (cuBLAS, NCCL when found:
#                     RLC_HAVE_NCCL), the real counterpart of the emulated rlc_cuda_emu (tests/emu)
#   gpu/kat_gpu       the emulator's known-answer tests built for the GPU (tests/gpu/check.sh compares its
#                     outputs with the emulator's)
#   gpu/test_*        one program per tests/gpu/test_*.cu|cpp, linked to rlc_cuda and rlc_core
#   gpu/bench_*       one program per bench/bench_*.cu and bench/gpu/bench_*.cu
#   rlc_backend_cuda  host/backend.c with RLC_HAVE_CUDA, linked into the rlc executable: device "cuda" / "auto"
# None of these is a ctest test (CI has no GPU); tests/gpu/check.sh runs everything in <build>/gpu/.
if(RLC_CUDA STREQUAL "OFF")
  return()
endif()
include(CheckLanguage)
check_language(CUDA)
if(NOT CMAKE_CUDA_COMPILER)
  if(RLC_CUDA STREQUAL "ON")
    message(FATAL_ERROR "RLC_CUDA=ON but no CUDA compiler (nvcc) was found")
  endif()
  message(STATUS "CUDA: nvcc not found; the CUDA library is not built")
  return()
endif()
enable_language(CUDA)
find_package(CUDAToolkit REQUIRED)
set(CMAKE_CUDA_STANDARD 17)
set(CMAKE_CUDA_STANDARD_REQUIRED ON)

# Targets are named explicitly (-gencode), which works with every CMake that knows CUDA.
set(RLC_CUDA_GENCODE -gencode=arch=compute_90a,code=sm_90a -gencode=arch=compute_80,code=sm_80)
set(RLC_CUDA_FLAGS ${RLC_CUDA_GENCODE} -Xcompiler=-Wall,-Wextra)
if(RLC_WERROR)
  list(APPEND RLC_CUDA_FLAGS -Werror=all-warnings -Xcompiler=-Werror)
endif()

find_path(RLC_NCCL_INCLUDE_DIR nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS})
find_library(RLC_NCCL_LIBRARY nccl HINTS ${CUDAToolkit_LIBRARY_DIR})

file(GLOB RLC_CUDA_SRC CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/kernels/cuda/*.cu)
add_library(rlc_cuda STATIC ${RLC_CUDA_SRC})
set_target_properties(rlc_cuda PROPERTIES CUDA_ARCHITECTURES OFF POSITION_INDEPENDENT_CODE ON)
target_compile_options(rlc_cuda PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:${RLC_CUDA_FLAGS}>)
target_include_directories(rlc_cuda PUBLIC ${PROJECT_SOURCE_DIR}/kernels/cuda ${PROJECT_SOURCE_DIR}/include)
target_link_libraries(rlc_cuda PUBLIC CUDA::cudart CUDA::cublas CUDA::cublasLt)
if(RLC_NCCL_INCLUDE_DIR AND RLC_NCCL_LIBRARY)
  target_compile_definitions(rlc_cuda PRIVATE RLC_HAVE_NCCL=1)
  target_include_directories(rlc_cuda PRIVATE ${RLC_NCCL_INCLUDE_DIR})
  target_link_libraries(rlc_cuda PUBLIC ${RLC_NCCL_LIBRARY})
  message(STATUS "CUDA: building rlc_cuda for sm_90a and sm_80, with NCCL (${RLC_NCCL_LIBRARY})")
else()
  message(STATUS "CUDA: building rlc_cuda for sm_90a and sm_80, without NCCL (single-rank rlc_comm)")
endif()

function(rlc_gpu_program name)
  add_executable(${name} ${ARGN})
  set_target_properties(${name} PROPERTIES CUDA_ARCHITECTURES OFF
                        RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/gpu)
  target_compile_options(${name} PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:${RLC_CUDA_FLAGS}>)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/kernels/cuda ${PROJECT_SOURCE_DIR}/tests/emu
                                             ${PROJECT_SOURCE_DIR}/tests ${PROJECT_SOURCE_DIR}/include)
  target_compile_definitions(${name} PRIVATE RLC_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
                                             RLC_BINARY_DIR="${PROJECT_BINARY_DIR}")
  target_link_libraries(${name} PRIVATE rlc_cuda)
endfunction()

file(GLOB RLC_KAT_CU CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tests/emu/kat_*.cu)
set_source_files_properties(${PROJECT_SOURCE_DIR}/tests/emu/kat_main.cpp PROPERTIES LANGUAGE CUDA)
rlc_gpu_program(kat_gpu ${PROJECT_SOURCE_DIR}/tests/emu/kat_main.cpp ${RLC_KAT_CU})

file(GLOB RLC_GPU_TESTS CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tests/gpu/test_*.cu ${PROJECT_SOURCE_DIR}/tests/gpu/test_*.cpp)
file(GLOB RLC_GPU_BENCHES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/bench/bench_*.cu ${PROJECT_SOURCE_DIR}/bench/gpu/bench_*.cu)
foreach(src ${RLC_GPU_TESTS} ${RLC_GPU_BENCHES})
  get_filename_component(name ${src} NAME_WE)
  if(src MATCHES "\\.cpp$")
    set_source_files_properties(${src} PROPERTIES LANGUAGE CUDA)
  endif()
  rlc_gpu_program(gpu_${name} ${src})
  set_target_properties(gpu_${name} PROPERTIES OUTPUT_NAME ${name})
  target_link_libraries(gpu_${name} PRIVATE rlc_core)
endforeach()

# The rlc executable gets the CUDA backend: host/backend.c once more with RLC_HAVE_CUDA (see include/rlc/backend.h).
# Its objects are linked directly into rlc, ahead of rlc_core's CPU-only copy of the same symbols.
add_library(rlc_backend_cuda OBJECT ${PROJECT_SOURCE_DIR}/host/backend.c)
target_compile_definitions(rlc_backend_cuda PRIVATE RLC_HAVE_CUDA=1)
target_compile_options(rlc_backend_cuda PRIVATE ${RLC_WARN})
target_link_libraries(rlc_backend_cuda PUBLIC rlc_core rlc_cuda CUDA::cudart)
target_link_libraries(rlc PRIVATE rlc_backend_cuda)
set_target_properties(rlc_backend_cuda rlc PROPERTIES CUDA_ARCHITECTURES OFF) # C targets linking CUDA code
