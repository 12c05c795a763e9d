// host/main.c: the `rlc` command line: train, sft, config. Parses the config (embedded default, optional file,
// --set overrides), validates it before any work starts, then hands over to the trainer. Started by an MPI
// launcher (mpirun, srun), `train` and `sft` join the job's process group and train data-parallel.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rlc/comm.h"
#include "rlc/config.h"
#include "rlc/repro.h"
#include "rlc/trainer.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: rlc <command> [CONFIG.json] [options]\n"
            "commands:\n"
            "  train    SFT warm start (if sft.steps > 0), then RL; with no CONFIG runs the embedded default\n"
            "  sft      supervised fine-tuning only\n"
            "  config   print the effective config (after validation) and exit\n"
            "  repro    reproduce a paper's method comparison: rlc repro CONFIG [--quick] (rlc repro --help)\n"
            "options:\n"
            "  --set key.path=value   override any config key (repeatable)\n"
            "  --resume runs/<name>   continue a run from its last checkpoint\n"
            "  --max-steps N          stop after N optimizer steps in this invocation\n"
            "  --quiet                no progress line\n"
            "multi-rank: mpirun -np N rlc train CONFIG.json (one rank per GPU or CPU socket; see README)\n");
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "repro") == 0) return rlc_repro_main(argc, argv); // its own options (host/repro.c)
    if (strcmp(cmd, "train") != 0 && strcmp(cmd, "sft") != 0 && strcmp(cmd, "config") != 0) {
        fprintf(stderr, "rlc: unknown command \"%s\"\n", cmd);
        usage(stderr);
        return 2;
    }
    const char *path = NULL, *resume = NULL;
    const char **over = calloc((size_t)argc, sizeof(char *));
    int n_over = 0, quiet = 0, max_steps = 0;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--set") == 0 && i + 1 < argc) over[n_over++] = argv[++i];
        else if (strncmp(argv[i], "--set=", 6) == 0) over[n_over++] = argv[i] + 6;
        else if (strcmp(argv[i], "--resume") == 0 && i + 1 < argc) resume = argv[++i];
        else if (strcmp(argv[i], "--max-steps") == 0 && i + 1 < argc) max_steps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--quiet") == 0) quiet = 1;
        else if (argv[i][0] == '-') {
            fprintf(stderr, "rlc: unknown option \"%s\"\n", argv[i]);
            usage(stderr);
            free(over);
            return 2;
        } else if (!path) path = argv[i];
        else {
            fprintf(stderr, "rlc: more than one config file given (\"%s\" and \"%s\")\n", path, argv[i]);
            free(over);
            return 2;
        }
    }
    // a multi-rank job: join it before anything can fail, so that any rank's error ends every rank
    rlc_dist dist;
    rlc_dist_single(&dist);
    if (strcmp(cmd, "config") != 0) {
        char derr[512];
        if (rlc_dist_init(&dist, &argc, &argv, derr, sizeof derr) != 0) {
            fprintf(stderr, "rlc: %s\n", derr);
            free(over);
            return 1;
        }
    }
    rlc_config cfg;
    char err[1024];
    char resume_cfg[1024];
    if (resume && !path) { // a resumed run keeps its own effective config unless another is given
        snprintf(resume_cfg, sizeof resume_cfg, "%s/config.json", resume);
        path = resume_cfg;
    }
    if (rlc_config_load(&cfg, path, over, n_over, err, sizeof err) != 0) {
        free(over);
        if (dist.size > 1) rlc_dist_abort(&dist, 1, "%s", err);
        fprintf(stderr, "rlc: %s\n", err);
        rlc_dist_finalize(&dist);
        return 1;
    }
    free(over);
    if (strcmp(cmd, "config") == 0) {
        char *js = rlc_config_to_json(&cfg);
        printf("%s\n", js);
        free(js);
        return 0;
    }
    rlc_train_opts opts = {.resume = resume, .sft_only = strcmp(cmd, "sft") == 0, .quiet = quiet,
                           .max_steps = max_steps, .dist = &dist};
    int rc = rlc_train(&cfg, &opts);
    rlc_dist_finalize(&dist); // rlc_train's errors on several ranks are global (or it aborted the job)
    return rc;
}
