/*
 * test_scenarios.c — replays every .scn file of tests/scenarios/ against the C
 * engine. The format is specified in tests/scenarios/README.md; the Python and
 * Node replayers follow the same rules, so keep this file and the README in
 * step. Usage: test_scenarios <directory>
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lane_core.h"

#define MAX_LINE 8192
#define MAX_NAME 64

enum ticket_state { PENDING, RUNNING, DONE, CANCELLED };

typedef struct ticket {
    char name[MAX_NAME];
    uint32_t lane;
    uint64_t id;
    uint64_t submitted_ns;
    enum ticket_state state;
} ticket;

typedef struct replay {
    const char *scenario;
    int line_no;
    char error[512];
    lc_engine *engine;
    uint32_t workers;
    char (*lane_names)[MAX_NAME];
    uint32_t lane_count;
    ticket *tickets;
    size_t ticket_count, ticket_cap;
    uint64_t now;
    int commands_seen; /* for "workers must come first" */
} replay;

/* Records the first failure of the scenario; always returns -1. */
static int fail(replay *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->error, sizeof r->error, fmt, ap);
    va_end(ap);
    return -1;
}

static int parse_u64(replay *r, const char *text, uint64_t *out)
{
    if (text == NULL)
        return fail(r, "missing number");
    if (text[0] < '0' || text[0] > '9')
        return fail(r, "not a non-negative number: '%s'", text);
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0')
        return fail(r, "not a number: '%s'", text);
    *out = v;
    return 0;
}

static int parse_u32(replay *r, const char *text, uint32_t *out)
{
    uint64_t v = 0;
    if (parse_u64(r, text, &v) != 0)
        return -1;
    if (v > UINT32_MAX)
        return fail(r, "number too large: '%s'", text);
    *out = (uint32_t)v;
    return 0;
}

static int check_name(replay *r, const char *name)
{
    if (name == NULL)
        return fail(r, "missing name");
    if (strlen(name) >= MAX_NAME)
        return fail(r, "name too long: '%s'", name);
    if (strchr(name, '=') != NULL)
        return fail(r, "'=' in name '%s'", name);
    return 0;
}

static int find_lane(replay *r, const char *name, uint32_t *out)
{
    if (name == NULL)
        return fail(r, "missing lane name");
    for (uint32_t i = 0; i < r->lane_count; i++)
        if (strcmp(r->lane_names[i], name) == 0) {
            *out = i;
            return 0;
        }
    return fail(r, "unknown lane '%s'", name);
}

static ticket *find_ticket(replay *r, const char *name)
{
    for (size_t i = 0; i < r->ticket_count; i++)
        if (strcmp(r->tickets[i].name, name) == 0)
            return &r->tickets[i];
    return NULL;
}

static int known_ticket(replay *r, const char *name, ticket **out)
{
    if (name == NULL)
        return fail(r, "missing ticket name");
    *out = find_ticket(r, name);
    return *out ? 0 : fail(r, "unknown ticket '%s'", name);
}

/* The engine exists from the first command that is not "workers". */
static int ensure_engine(replay *r)
{
    if (r->engine == NULL) {
        r->engine = lc_engine_new(r->workers);
        if (r->engine == NULL)
            return fail(r, "lc_engine_new(%u) returned NULL", r->workers);
    }
    return 0;
}

/* ---- commands; each gets the tokens after the command word ---------------- */

static int cmd_workers(replay *r, char **args, int n)
{
    if (r->commands_seen > 0)
        return fail(r, "'workers' must be the first command");
    if (n != 1)
        return fail(r, "usage: workers <n>");
    return parse_u32(r, args[0], &r->workers);
}

static int cmd_lane(replay *r, char **args, int n)
{
    if (n != 4)
        return fail(r, "usage: lane <name> <priority> <min> <max>");
    uint32_t prio = 0, min = 0, max = 0, dummy;
    if (check_name(r, args[0]) || parse_u32(r, args[1], &prio) || parse_u32(r, args[2], &min) ||
        parse_u32(r, args[3], &max))
        return -1;
    if (find_lane(r, args[0], &dummy) == 0)
        return fail(r, "lane '%s' declared twice", args[0]);
    if (prio > INT32_MAX)
        return fail(r, "priority too large: %u", prio);
    int idx = lc_lane_add(r->engine, (int32_t)prio, min, max);
    if (idx != (int)r->lane_count)
        return fail(r, "lc_lane_add(%u, %u, %u) returned %d, expected index %u", prio, min, max,
                    idx, r->lane_count);
    char(*names)[MAX_NAME] = realloc(r->lane_names, (r->lane_count + 1) * sizeof *names);
    if (names == NULL)
        return fail(r, "out of memory");
    r->lane_names = names;
    strcpy(r->lane_names[r->lane_count++], args[0]);
    return 0;
}

static int cmd_submit(replay *r, char **args, int n)
{
    uint32_t lane = 0;
    if (n < 2)
        return fail(r, "usage: submit <lane> <ticket> [<ticket> ...]");
    if (find_lane(r, args[0], &lane))
        return -1;
    for (int i = 1; i < n; i++) {
        if (check_name(r, args[i]))
            return -1;
        if (find_ticket(r, args[i]))
            return fail(r, "ticket '%s' submitted twice", args[i]);
        if (r->ticket_count == r->ticket_cap) {
            size_t cap = r->ticket_cap ? r->ticket_cap * 2 : 64;
            ticket *grown = realloc(r->tickets, cap * sizeof *grown);
            if (grown == NULL)
                return fail(r, "out of memory");
            r->tickets = grown;
            r->ticket_cap = cap;
        }
        ticket *t = &r->tickets[r->ticket_count];
        strcpy(t->name, args[i]);
        t->lane = lane;
        t->id = r->ticket_count + 1;
        t->submitted_ns = ++r->now;
        t->state = PENDING;
        r->ticket_count++;
        int rc = lc_submit(r->engine, lane, t->id, t->submitted_ns);
        if (rc != LC_OK)
            return fail(r, "lc_submit(%s) returned %d", t->name, rc);
    }
    return 0;
}

static const char *ticket_name_of_id(replay *r, uint64_t id)
{
    return id >= 1 && id <= r->ticket_count ? r->tickets[id - 1].name : "?";
}

static int cmd_dispatch(replay *r, char **args, int n)
{
    for (int i = 0;; i++) {
        lc_dispatch d;
        int rc = lc_try_next(r->engine, r->now, &d);
        if (rc == LC_NONE) {
            if (i < n)
                return fail(r, "dispatch #%d: expected %s, got nothing", i + 1, args[i]);
            return 0;
        }
        if (rc != LC_DISPATCHED)
            return fail(r, "lc_try_next returned %d", rc);
        if (i >= n)
            return fail(r, "dispatch #%d: expected nothing more, got %s (lane %u)", i + 1,
                        ticket_name_of_id(r, d.ticket), d.lane);
        ticket *want;
        if (known_ticket(r, args[i], &want))
            return -1;
        if (d.ticket != want->id)
            return fail(r, "dispatch #%d: expected %s, got %s (lane %u)", i + 1, want->name,
                        ticket_name_of_id(r, d.ticket), d.lane);
        if (d.lane != want->lane)
            return fail(r, "dispatch #%d: %s came from lane %u, submitted to lane %u", i + 1,
                        want->name, d.lane, want->lane);
        if (d.enqueued_ns != want->submitted_ns)
            return fail(r, "dispatch #%d: %s enqueued_ns %llu, submitted at %llu", i + 1,
                        want->name, (unsigned long long)d.enqueued_ns,
                        (unsigned long long)want->submitted_ns);
        want->state = RUNNING;
    }
}

static int cmd_finish(replay *r, char **args, int n, int outcome)
{
    if (n < 1)
        return fail(r, "usage: complete|fail <ticket> [...]");
    for (int i = 0; i < n; i++) {
        ticket *t;
        if (known_ticket(r, args[i], &t))
            return -1;
        if (t->state != RUNNING)
            return fail(r, "scenario error: %s is not running", t->name);
        int rc = lc_complete(r->engine, t->lane, outcome);
        if (rc != LC_OK)
            return fail(r, "lc_complete(lane of %s) returned %d", t->name, rc);
        t->state = DONE;
    }
    return 0;
}

static int cmd_cancel(replay *r, char **args, int n)
{
    if (n != 2 || (strcmp(args[1], "yes") != 0 && strcmp(args[1], "no") != 0))
        return fail(r, "usage: cancel <ticket> yes|no");
    ticket *t;
    if (known_ticket(r, args[0], &t))
        return -1;
    int want = strcmp(args[1], "yes") == 0;
    int rc = lc_cancel(r->engine, t->lane, t->id);
    if (rc != want)
        return fail(r, "lc_cancel(%s) returned %d, expected %d", t->name, rc, want);
    if (rc == 1)
        t->state = CANCELLED;
    return 0;
}

static int cmd_pause_resume(replay *r, char **args, int n, int pause)
{
    uint32_t lane = 0;
    if (n != 1)
        return fail(r, "usage: pause|resume <lane>");
    if (find_lane(r, args[0], &lane))
        return -1;
    int rc = pause ? lc_pause(r->engine, lane) : lc_resume(r->engine, lane);
    if (rc != LC_OK)
        return fail(r, "lc_%s(%s) returned %d", pause ? "pause" : "resume", args[0], rc);
    return 0;
}

static int stat_field(const lc_lane_stats *s, const char *key, uint64_t *out)
{
    static const struct {
        const char *key;
        size_t offset;
    } u64_fields[] = {
        {"pending", offsetof(lc_lane_stats, pending)},
        {"active", offsetof(lc_lane_stats, active)},
        {"submitted", offsetof(lc_lane_stats, submitted)},
        {"dispatched", offsetof(lc_lane_stats, dispatched)},
        {"completed", offsetof(lc_lane_stats, completed)},
        {"failed", offsetof(lc_lane_stats, failed)},
        {"cancelled", offsetof(lc_lane_stats, cancelled)},
    };
    if (strcmp(key, "paused") == 0) {
        *out = s->paused;
        return 0;
    }
    for (size_t i = 0; i < sizeof u64_fields / sizeof u64_fields[0]; i++)
        if (strcmp(key, u64_fields[i].key) == 0) {
            memcpy(out, (const char *)s + u64_fields[i].offset, sizeof *out);
            return 0;
        }
    return -1;
}

static int cmd_stats(replay *r, char **args, int n)
{
    uint32_t lane = 0;
    if (n < 2)
        return fail(r, "usage: stats <lane> <key>=<n> ...");
    if (find_lane(r, args[0], &lane))
        return -1;
    lc_lane_stats s;
    int rc = lc_read_lane_stats(r->engine, lane, &s);
    if (rc != LC_OK)
        return fail(r, "lc_read_lane_stats(%s) returned %d", args[0], rc);
    for (int i = 1; i < n; i++) {
        char *eq = strchr(args[i], '=');
        if (eq == NULL)
            return fail(r, "expected key=value, got '%s'", args[i]);
        *eq = '\0';
        uint64_t want = 0, got = 0;
        if (parse_u64(r, eq + 1, &want))
            return -1;
        if (stat_field(&s, args[i], &got) != 0)
            return fail(r, "unknown stats key '%s'", args[i]);
        if (got != want)
            return fail(r, "stats %s: %s is %llu, expected %llu", args[0], args[i],
                        (unsigned long long)got, (unsigned long long)want);
    }
    return 0;
}

/* ---- driver ---------------------------------------------------------------- */

static int run_command(replay *r, char **tok, int n)
{
    const char *cmd = tok[0];
    char **args = tok + 1;
    int nargs = n - 1;
    if (strcmp(cmd, "workers") == 0)
        return cmd_workers(r, args, nargs);
    if (ensure_engine(r))
        return -1;
    if (strcmp(cmd, "lane") == 0)
        return cmd_lane(r, args, nargs);
    if (strcmp(cmd, "submit") == 0)
        return cmd_submit(r, args, nargs);
    if (strcmp(cmd, "dispatch") == 0)
        return cmd_dispatch(r, args, nargs);
    if (strcmp(cmd, "complete") == 0)
        return cmd_finish(r, args, nargs, LC_OUTCOME_COMPLETED);
    if (strcmp(cmd, "fail") == 0)
        return cmd_finish(r, args, nargs, LC_OUTCOME_FAILED);
    if (strcmp(cmd, "cancel") == 0)
        return cmd_cancel(r, args, nargs);
    if (strcmp(cmd, "pause") == 0)
        return cmd_pause_resume(r, args, nargs, 1);
    if (strcmp(cmd, "resume") == 0)
        return cmd_pause_resume(r, args, nargs, 0);
    if (strcmp(cmd, "stats") == 0)
        return cmd_stats(r, args, nargs);
    return fail(r, "unknown command '%s'", cmd);
}

/* Splits a line into tokens, dropping the comment. Returns the count. */
static int tokenize(char *line, char **tok, int max_tok)
{
    char *hash = strchr(line, '#');
    if (hash)
        *hash = '\0';
    int n = 0;
    char *save = NULL;
    for (char *t = strtok_r(line, " \t\r\n", &save); t; t = strtok_r(NULL, " \t\r\n", &save)) {
        if (n == max_tok)
            return -1;
        tok[n++] = t;
    }
    return n;
}

static int replay_file(replay *r, FILE *f)
{
    static char line[MAX_LINE];
    char *tok[MAX_LINE / 2];
    while (fgets(line, sizeof line, f)) {
        r->line_no++;
        if (strchr(line, '\n') == NULL && !feof(f))
            return fail(r, "line longer than %d characters", MAX_LINE - 2);
        int n = tokenize(line, tok, (int)(sizeof tok / sizeof tok[0]));
        if (n < 0)
            return fail(r, "too many tokens");
        if (n == 0)
            continue;
        if (run_command(r, tok, n) != 0)
            return -1;
        r->commands_seen++;
    }
    return 0;
}

/* Returns 0 when the scenario passes. */
static int run_scenario(const char *dir, const char *file)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    char name[256];
    snprintf(name, sizeof name, "%.*s", (int)(strlen(file) - 4), file);

    replay r = {0};
    r.scenario = name;
    FILE *f = fopen(path, "r");
    int rc;
    if (f == NULL) {
        rc = fail(&r, "cannot open %s", path);
    } else {
        rc = replay_file(&r, f);
        fclose(f);
    }
    if (rc == 0 && r.engine == NULL)
        rc = fail(&r, "empty scenario");
    if (rc == 0)
        printf("PASS %s\n", name);
    else
        printf("FAIL %s:%d: %s\n", name, r.line_no, r.error);
    if (r.engine)
        lc_engine_free(r.engine);
    free(r.lane_names);
    free(r.tickets);
    return rc;
}

static int ends_with_scn(const char *s)
{
    size_t n = strlen(s);
    return n > 4 && strcmp(s + n - 4, ".scn") == 0;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s <scenario directory>\n", argv[0]);
        return 2;
    }
    DIR *dir = opendir(argv[1]);
    if (dir == NULL) {
        perror(argv[1]);
        return 2;
    }
    char **files = NULL;
    size_t count = 0;
    for (struct dirent *ent; (ent = readdir(dir)) != NULL;) {
        if (!ends_with_scn(ent->d_name))
            continue;
        char **grown = realloc(files, (count + 1) * sizeof *files);
        if (grown == NULL || (grown[count] = strdup(ent->d_name)) == NULL) {
            fprintf(stderr, "out of memory\n");
            return 2;
        }
        files = grown;
        count++;
    }
    closedir(dir);
    if (count == 0) {
        fprintf(stderr, "no *.scn files in %s\n", argv[1]);
        return 1;
    }
    qsort(files, count, sizeof *files, compare_names);

    int failed = 0;
    for (size_t i = 0; i < count; i++) {
        if (run_scenario(argv[1], files[i]) != 0)
            failed++;
        free(files[i]);
    }
    free(files);
    printf("%zu scenarios, %d failed\n", count, failed);
    return failed ? 1 : 0;
}
