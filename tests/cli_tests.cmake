# tests/cli_tests.cmake: tests that run the rlc binary, included by tests/CMakeLists.txt.
#
# Memory (label "cpu"), under the backend's cap RLC_MEM_LIMIT_MB (include/rlc/ops.h):
#   mem_model_too_big        a model and optimizer over the cap: exit status non-zero, "rlc: model and optimizer:
#                            cannot allocate N bytes (M available)", before any step
#   mem_group_too_big        the model fits, one rollout group (64 sequences x 512-token KV slots) does not:
#                            "rlc: rollout: one group of 64 sequences ...: cannot allocate N bytes (M available ...)"
#   mem_bad_limit            RLC_MEM_LIMIT_MB=lots: the variable named, what it expects
#   mem_waves_*              the same 2-step GRPO job without a cap and under a cap that takes each step's 16
#                            groups in several waves: the capped run's metrics say rollout_waves > 1 and agree
#                            with the free run's (identical rollout_hash, every other metric within 1e-5)
#
# Multi-rank (label "mpi"):
# Multi-rank (only when the build found MPI): under `mpirun -np 2` (OMP_NUM_THREADS=1),
#   mpi_test_comm            every collective and the data-parallel / ZeRO-1 pieces against one process
#   ranks_<cfg>_*            the same small job with 1 rank, 2 ranks and 2 ranks + ZeRO-1: identical rollouts
#                            (rollout_hash of every step), losses/metrics and final checkpoints (weights, AdamW
#                            moments, train state) within 1e-5 relative (tests/test_ranks.c compares)
#   ranks_resume_*           stopped with N ranks and resumed with another N: the checkpoint of the
#                            uninterrupted 1-rank run
#   ranks_fail, ranks_hang   one rank fails (RLC_TEST_FAIL_RANK) or hangs (RLC_TEST_HANG_RANK, collective timeout
#                            3 s): every rank ends, non-zero, with the failing rank's message, never a hang
# The jobs use AdamW eps 1e-6 and an entropy bonus: Adam divides by |g|, so where the true gradient is (nearly)
# zero it turns the round-off of another summation order into lr-sized weight changes (eps 1e-8 makes its
# first steps nearly sign(g)), and an untrained model's batch may carry no reward signal at all (every sample
# truncated alike). The entropy term guarantees a real gradient in every step. Measured here: weights and
# moments agree to ~1e-6 relative for 2, 3 and 7 ranks, the rollouts bit for bit.
set(RLC_MEM_DIR ${PROJECT_BINARY_DIR}/mem_tests)
set(RLC_MEM_ARGS --quiet --set name=t --set sft.steps=0 --set rl.steps=2 --set task.eval_size=8 --set eval_every=0
                 --set ckpt_every=0 --set model.max_seq_len=512)
add_test(NAME mem_model_too_big COMMAND test_ranks fail 60 "rlc: model and optimizer: cannot allocate"
                                        -- $<TARGET_FILE:rlc> train ${RLC_MEM_ARGS} --set out_dir=${RLC_MEM_DIR}/model)
set_tests_properties(mem_model_too_big PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=1;RLC_MEM_LIMIT_MB=4")
add_test(NAME mem_group_too_big COMMAND test_ranks fail 60 "rlc: rollout: one group of 64 sequences"
                                        -- $<TARGET_FILE:rlc> train ${RLC_MEM_ARGS} --set rollout.group_size=64
                                           --set out_dir=${RLC_MEM_DIR}/group)
set_tests_properties(mem_group_too_big PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=1;RLC_MEM_LIMIT_MB=80")
add_test(NAME mem_bad_limit COMMAND test_ranks fail 60 "RLC_MEM_LIMIT_MB=lots: expected a positive number of MiB"
                                    -- $<TARGET_FILE:rlc> train ${RLC_MEM_ARGS} --set out_dir=${RLC_MEM_DIR}/bad)
set_tests_properties(mem_bad_limit PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=1;RLC_MEM_LIMIT_MB=lots")
add_test(NAME mem_waves_clean COMMAND ${CMAKE_COMMAND} -E rm -rf ${RLC_MEM_DIR}/free ${RLC_MEM_DIR}/cap)
add_test(NAME mem_waves_free COMMAND $<TARGET_FILE:rlc> train ${RLC_MEM_ARGS} --set out_dir=${RLC_MEM_DIR}/free)
add_test(NAME mem_waves_cap COMMAND $<TARGET_FILE:rlc> train ${RLC_MEM_ARGS} --set out_dir=${RLC_MEM_DIR}/cap)
set_tests_properties(mem_waves_cap PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=1;RLC_MEM_LIMIT_MB=110")
add_test(NAME mem_waves_several COMMAND ${CMAKE_COMMAND} -E cat ${RLC_MEM_DIR}/cap/t/metrics.jsonl)
set_tests_properties(mem_waves_several PROPERTIES PASS_REGULAR_EXPRESSION "\"rollout_waves\":([2-9]|1[0-9])")
add_test(NAME mem_waves_same COMMAND test_ranks metrics ${RLC_MEM_DIR}/free/t/metrics.jsonl
                                     ${RLC_MEM_DIR}/cap/t/metrics.jsonl 1e-5)
set_tests_properties(mem_waves_clean PROPERTIES FIXTURES_SETUP mem_waves_dir)
set_tests_properties(mem_waves_free mem_waves_cap PROPERTIES FIXTURES_REQUIRED mem_waves_dir
                     FIXTURES_SETUP mem_waves_runs)
set_tests_properties(mem_waves_several mem_waves_same PROPERTIES FIXTURES_REQUIRED mem_waves_runs)
set_tests_properties(mem_model_too_big mem_group_too_big mem_bad_limit mem_waves_clean mem_waves_free mem_waves_cap
                     mem_waves_several mem_waves_same PROPERTIES LABELS "cpu" TIMEOUT 120)
set_tests_properties(mem_waves_free PROPERTIES ENVIRONMENT "OMP_NUM_THREADS=1")

if(NOT RLC_HAVE_MPI OR NOT MPIEXEC_EXECUTABLE)
  return()
endif()

set(RLC_MPIRUN ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} 2)
execute_process(COMMAND ${MPIEXEC_EXECUTABLE} --version OUTPUT_VARIABLE _rlc_mpi_version ERROR_QUIET)
if(_rlc_mpi_version MATCHES "Open MPI|OpenRTE")
  # CI machines may have fewer cores than ranks, and CI containers often run as root
  list(APPEND RLC_MPIRUN --oversubscribe --allow-run-as-root)
endif()
set(RLC_RANKS_DIR ${PROJECT_BINARY_DIR}/ranks_tests)
set(RLC_RANKS_ENV "OMP_NUM_THREADS=1")

add_test(NAME mpi_test_comm COMMAND ${RLC_MPIRUN} $<TARGET_FILE:test_comm>)
set_tests_properties(mpi_test_comm PROPERTIES LABELS "mpi" TIMEOUT 120 ENVIRONMENT "${RLC_RANKS_ENV}")

# A tiny model and job; each config below adds its method.
set(RLC_RANKS_BASE
  --quiet --set name=t --set threads=1
  --set model.dim=32 --set model.n_layers=2 --set model.n_heads=2 --set model.n_kv_heads=1
  --set model.head_dim=16 --set model.hidden_dim=64
  --set sft.steps=3 --set sft.batch_size=8 --set sft.micro_batch_tokens=48
  --set rollout.prompts_per_step=5 --set rollout.group_size=4
  --set rl.steps=4 --set rl.micro_batch_tokens=48 --set rl.mini_batches=2 --set rl.epochs=2
  --set task.eval_size=9 --set eval_every=2 --set ckpt_every=0
  --set rl.optim.lr=1e-3 --set sft.optim.lr=1e-3 --set rl.optim.eps=1e-6 --set sft.optim.eps=1e-6
  --set rl.ent_coef=0.01)

set(RLC_RANKS_grpo --set rl.kl_beta=0.01 --set rl.overlong_buffer=4 --set rl.adv_scale=batch)
set(RLC_RANKS_ppo --set rl.method=ppo --set model.value_head=true --set rl.kl_beta=0.02 --set rl.kl_in_reward=true
                  --set rl.overlong_buffer=4)
set(RLC_RANKS_rppb --set rl.method=reinforce++-baseline --set rl.overlong_buffer=4)
set(RLC_RANKS_dpo --set rl.method=dpo)
# DAPO's dynamic sampling: rounds of generation until groups with signal are found (an untrained model finds
# none: every round is all-gathered and dropped alike on every rank count)
set(RLC_RANKS_dapo --set rl.method=dapo --set rl.dynamic_sampling=true --set rl.steps=2)
# multi-turn maze with EMPG (its step-entropy normalisation is ill-conditioned on an untrained model, so the job
# starts RL from identical weights: no SFT phase)
set(RLC_RANKS_maze --set task.name=maze --set model.max_seq_len=128 --set rl.method=dapo --set rl.empg=true
                   --set rl.micro_batch_tokens=160 --set rollout.max_new_tokens=4 --set task.max_turns=6
                   --set sft.steps=0 --set rl.steps=3)

foreach(cfg grpo ppo rppb dpo dapo maze)
  set(dir ${RLC_RANKS_DIR}/${cfg})
  set(args ${RLC_RANKS_BASE} ${RLC_RANKS_${cfg}})
  add_test(NAME ranks_${cfg}_clean COMMAND ${CMAKE_COMMAND} -E rm -rf ${dir})
  add_test(NAME ranks_${cfg}_np1 COMMAND $<TARGET_FILE:rlc> train ${args} --set out_dir=${dir}/np1)
  add_test(NAME ranks_${cfg}_np2 COMMAND ${RLC_MPIRUN} $<TARGET_FILE:rlc> train ${args} --set out_dir=${dir}/np2)
  add_test(NAME ranks_${cfg}_zero1
           COMMAND ${RLC_MPIRUN} $<TARGET_FILE:rlc> train ${args} --set rl.zero1=true --set out_dir=${dir}/zero1)
  add_test(NAME ranks_${cfg}_compare_np2_metrics
           COMMAND test_ranks metrics ${dir}/np1/t/metrics.jsonl ${dir}/np2/t/metrics.jsonl 1e-5)
  add_test(NAME ranks_${cfg}_compare_np2_ckpt COMMAND test_ranks ckpt ${dir}/np1/t ${dir}/np2/t 1e-5)
  add_test(NAME ranks_${cfg}_compare_zero1_metrics
           COMMAND test_ranks metrics ${dir}/np2/t/metrics.jsonl ${dir}/zero1/t/metrics.jsonl 1e-5)
  add_test(NAME ranks_${cfg}_compare_zero1_ckpt COMMAND test_ranks ckpt ${dir}/np2/t ${dir}/zero1/t 1e-5)
  set_tests_properties(ranks_${cfg}_clean PROPERTIES FIXTURES_SETUP ranks_${cfg}_dir)
  set_tests_properties(ranks_${cfg}_np1 ranks_${cfg}_np2 ranks_${cfg}_zero1 PROPERTIES
                       FIXTURES_REQUIRED ranks_${cfg}_dir FIXTURES_SETUP ranks_${cfg}_runs)
  set_tests_properties(ranks_${cfg}_compare_np2_metrics ranks_${cfg}_compare_np2_ckpt
                       ranks_${cfg}_compare_zero1_metrics ranks_${cfg}_compare_zero1_ckpt PROPERTIES
                       FIXTURES_REQUIRED ranks_${cfg}_runs)
  set_tests_properties(ranks_${cfg}_clean ranks_${cfg}_np1 ranks_${cfg}_np2 ranks_${cfg}_zero1
                       ranks_${cfg}_compare_np2_metrics ranks_${cfg}_compare_np2_ckpt
                       ranks_${cfg}_compare_zero1_metrics ranks_${cfg}_compare_zero1_ckpt PROPERTIES
                       LABELS "mpi" TIMEOUT 120 ENVIRONMENT "${RLC_RANKS_ENV}")
endforeach()

# Resume on another number of ranks: 2 ranks with ZeRO-1 stop after 5 optimizer steps (3 SFT + 2 RL), 1 rank
# finishes; and 1 rank stops, 2 ranks with ZeRO-1 finish. Both end where the uninterrupted 1-rank GRPO run did.
set(dir ${RLC_RANKS_DIR}/resume)
set(args ${RLC_RANKS_BASE} ${RLC_RANKS_grpo})
add_test(NAME ranks_resume_clean COMMAND ${CMAKE_COMMAND} -E rm -rf ${dir})
add_test(NAME ranks_resume_2to1_first
         COMMAND ${RLC_MPIRUN} $<TARGET_FILE:rlc> train ${args} --set rl.zero1=true --set out_dir=${dir}/a --max-steps 5)
add_test(NAME ranks_resume_2to1_second COMMAND $<TARGET_FILE:rlc> train --resume ${dir}/a/t --quiet)
add_test(NAME ranks_resume_1to2_first COMMAND $<TARGET_FILE:rlc> train ${args} --set out_dir=${dir}/b --max-steps 5)
add_test(NAME ranks_resume_1to2_second
         COMMAND ${RLC_MPIRUN} $<TARGET_FILE:rlc> train --resume ${dir}/b/t --set rl.zero1=true --quiet)
add_test(NAME ranks_resume_2to1_compare COMMAND test_ranks ckpt ${RLC_RANKS_DIR}/grpo/np1/t ${dir}/a/t 1e-5)
add_test(NAME ranks_resume_1to2_compare COMMAND test_ranks ckpt ${RLC_RANKS_DIR}/grpo/np1/t ${dir}/b/t 1e-5)
set_tests_properties(ranks_resume_clean PROPERTIES FIXTURES_SETUP ranks_resume_dir)
set_tests_properties(ranks_resume_2to1_first ranks_resume_1to2_first PROPERTIES
                     FIXTURES_REQUIRED ranks_resume_dir FIXTURES_SETUP ranks_resume_first)
set_tests_properties(ranks_resume_2to1_second ranks_resume_1to2_second PROPERTIES
                     FIXTURES_REQUIRED ranks_resume_first FIXTURES_SETUP ranks_resume_second)
set_tests_properties(ranks_resume_2to1_compare ranks_resume_1to2_compare PROPERTIES
                     FIXTURES_REQUIRED "ranks_resume_second;ranks_grpo_runs")
set_tests_properties(ranks_resume_clean ranks_resume_2to1_first ranks_resume_2to1_second ranks_resume_1to2_first
                     ranks_resume_1to2_second ranks_resume_2to1_compare ranks_resume_1to2_compare PROPERTIES
                     LABELS "mpi" TIMEOUT 120 ENVIRONMENT "${RLC_RANKS_ENV}")

# Failures end every rank, quickly, with the failing rank's message (test_ranks kills the job after 60 s: a hang).
set(args ${RLC_RANKS_BASE} --set sft.steps=1)
add_test(NAME ranks_fail COMMAND test_ranks fail 60 "rlc: rank 1: injected failure"
                                 -- ${RLC_MPIRUN} $<TARGET_FILE:rlc> train ${args} --set out_dir=${RLC_RANKS_DIR}/fail)
set_tests_properties(ranks_fail PROPERTIES LABELS "mpi" TIMEOUT 90
                     ENVIRONMENT "${RLC_RANKS_ENV};RLC_TEST_FAIL_RANK=1")
add_test(NAME ranks_hang COMMAND test_ranks fail 60 "rlc: rank 0: collective"
                                 -- ${RLC_MPIRUN} $<TARGET_FILE:rlc> train ${args} --set out_dir=${RLC_RANKS_DIR}/hang)
set_tests_properties(ranks_hang PROPERTIES LABELS "mpi" TIMEOUT 90
                     ENVIRONMENT "${RLC_RANKS_ENV};RLC_TEST_HANG_RANK=1;RLC_COLLECTIVE_TIMEOUT=3")
# A process started without a launcher never initialises MPI (RLC_TEST_FAIL_RANK=0 still fails it, as rank 0).
add_test(NAME ranks_single_fail COMMAND test_ranks fail 60 "rlc: injected failure"
                                        -- $<TARGET_FILE:rlc> train ${args} --set out_dir=${RLC_RANKS_DIR}/single)
set_tests_properties(ranks_single_fail PROPERTIES LABELS "mpi" TIMEOUT 90
                     ENVIRONMENT "${RLC_RANKS_ENV};RLC_TEST_FAIL_RANK=0")
