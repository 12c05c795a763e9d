# tests/repro_tests.cmake: smoke tests of `rlc repro` (label "repro"), included by tests/CMakeLists.txt.
#   repro_quick_<cfg>   `rlc repro configs/paper/<cfg>.json --quick` (one seed, a few steps: the pipeline, not the
#                       science) into <build>/repro_quick/
#   repro_check_<cfg>   test_repro check: table.md has every row with every cell filled, table.csv every (row,
#                       metric), every plot is well-formed SVG with a line and a legend entry per row, and the config
#                       names its paper, table and scaling and states the paper's direction
#   repro_mpi_*         (with MPI) the dpo_ipo grid spread over 2 ranks writes the same table.csv as one process
# Together about a minute on 2 cores.
file(GLOB RLC_PAPER_CONFIGS CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/configs/paper/*.json)
set(RLC_REPRO_DIR ${PROJECT_BINARY_DIR}/repro_quick)
foreach(cfg ${RLC_PAPER_CONFIGS})
  get_filename_component(n ${cfg} NAME_WE)
  add_test(NAME repro_quick_${n}
           COMMAND $<TARGET_FILE:rlc> repro ${cfg} --quick --fresh --quiet --out ${RLC_REPRO_DIR})
  add_test(NAME repro_check_${n} COMMAND test_repro check ${cfg} ${RLC_REPRO_DIR})
  set_tests_properties(repro_quick_${n} PROPERTIES FIXTURES_SETUP repro_${n} LABELS "repro" TIMEOUT 300
                       ENVIRONMENT "OMP_NUM_THREADS=1")
  set_tests_properties(repro_check_${n} PROPERTIES FIXTURES_REQUIRED repro_${n} LABELS "repro" TIMEOUT 60)
endforeach()

if(RLC_HAVE_MPI AND MPIEXEC_EXECUTABLE AND EXISTS ${PROJECT_SOURCE_DIR}/configs/paper/dpo_ipo.json)
  set(_rlc_repro_mpirun ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 2)
  execute_process(COMMAND ${MPIEXEC_EXECUTABLE} --version OUTPUT_VARIABLE _rlc_repro_mpi_version ERROR_QUIET)
  if(_rlc_repro_mpi_version MATCHES "Open MPI|OpenRTE")
    list(APPEND _rlc_repro_mpirun --oversubscribe --allow-run-as-root)
  endif()
  add_test(NAME repro_mpi_np2
           COMMAND ${_rlc_repro_mpirun} $<TARGET_FILE:rlc> repro ${PROJECT_SOURCE_DIR}/configs/paper/dpo_ipo.json
                   --quick --fresh --quiet --out ${PROJECT_BINARY_DIR}/repro_mpi)
  add_test(NAME repro_mpi_same_table
           COMMAND ${CMAKE_COMMAND} -E compare_files ${RLC_REPRO_DIR}/dpo_ipo-quick/table.csv
                   ${PROJECT_BINARY_DIR}/repro_mpi/dpo_ipo-quick/table.csv)
  set_tests_properties(repro_mpi_np2 PROPERTIES FIXTURES_SETUP repro_mpi LABELS "repro;mpi" TIMEOUT 120
                       ENVIRONMENT "OMP_NUM_THREADS=1")
  set_tests_properties(repro_mpi_same_table PROPERTIES FIXTURES_REQUIRED "repro_mpi;repro_dpo_ipo"
                       LABELS "repro;mpi" TIMEOUT 30)
endif()
