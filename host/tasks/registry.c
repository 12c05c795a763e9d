// host/tasks/registry.c: the table of built-in tasks (rlc_task_find, rlc_task_names).
#include "tasks_internal.h"

static const rlc_task *const all_tasks[] = {&rlc_task_addition, &rlc_task_multiplication, &rlc_task_arithmetic,
                                            &rlc_task_countdown, &rlc_task_maze,         &rlc_task_preference};

const rlc_task *rlc_task_find(const char *name) {
    if (!name) return NULL;
    for (size_t i = 0; i < sizeof all_tasks / sizeof all_tasks[0]; i++)
        if (strcmp(all_tasks[i]->name, name) == 0) return all_tasks[i];
    return NULL;
}

const char *rlc_task_names(void) { return "addition, multiplication, arithmetic, countdown, maze, preference"; }
