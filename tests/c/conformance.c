/*
 * The C runner of the language-neutral conformance cases (the *.json files of tests/conformance) through
 * the C ABI. The format and the rules are tests/conformance/README.md; the reference runner
 * is core/tests/all/conformance.rs, whose rules this file ports one by one.
 *
 *   conformance [--error-codes PATH] DIR_OR_FILE...
 *
 * A directory runs every *.json in it (sorted) and requires at least MIN_FILES files and
 * MIN_STEPS steps; files named one by one run as given (for debugging a single case). The
 * error table defaults to DIR/../error_codes.json of the first directory.
 */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "agentmem.h"

#define MIN_FILES 12
#define MIN_STEPS 500

/* ------------------------------------------------------------------------------ helpers */

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

static char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = xmalloc(n);
    memcpy(p, s, n);
    return p;
}

/* The message of the step that failed; one step runs at a time. */
static char g_msg[8192];

static int fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_msg, sizeof g_msg, fmt, ap);
    va_end(ap);
    return -1;
}

/* ------------------------------------------------------------------------- NUL transport */

/*
 * Case files hold "\u0000" in content that must reach the core unchanged (and be refused
 * there). cJSON stores strings NUL-terminated and would cut them at the NUL, so before
 * parsing, every \u0000 escape becomes an escape of U+10FFFD (a noncharacter no case uses),
 * and when a request is printed, that character goes back to \u0000. The core thus sees
 * exactly the JSON of the case file.
 */
static const char NUL_STANDIN_UTF8[] = "\xF4\x8F\xBF\xBD";
static const char NUL_STANDIN_ESCAPE[] = "\\uDBFF\\uDFFD";

static char *protect_nuls(const char *text) {
    size_t n = strlen(text);
    char *out = xmalloc(2 * n + 1); /* "\u0000" (6) becomes 12 characters */
    size_t o = 0;
    int in_string = 0;
    for (size_t i = 0; i < n; i++) {
        char c = text[i];
        if (in_string && c == '\\' && i + 1 < n) {
            if (strncmp(text + i, "\\u0000", 6) == 0) {
                memcpy(out + o, NUL_STANDIN_ESCAPE, 12);
                o += 12;
                i += 5;
            } else {
                out[o++] = c;
                out[o++] = text[++i];
            }
            continue;
        }
        if (c == '"')
            in_string = !in_string;
        out[o++] = c;
    }
    out[o] = '\0';
    return out;
}

/* Unformatted JSON with the stand-in turned back into \u0000; free with free(). */
static char *to_json_text(const cJSON *value) {
    char *printed = cJSON_PrintUnformatted(value);
    if (!printed) {
        fprintf(stderr, "cannot print JSON\n");
        exit(2);
    }
    size_t n = strlen(printed);
    char *out = xmalloc(n * 2 + 1); /* 4 bytes become 6 */
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        if (strncmp(printed + i, NUL_STANDIN_UTF8, 4) == 0) {
            memcpy(out + o, "\\u0000", 6);
            o += 6;
            i += 4;
        } else {
            out[o++] = printed[i++];
        }
    }
    out[o] = '\0';
    cJSON_free(printed);
    return out;
}

/* A short form of a value for failure messages (results may hold 64 KiB contents). */
static const char *show(const cJSON *value) {
    static char buf[4][1024];
    static int slot;
    char *b = buf[slot++ % 4];
    if (!value) {
        snprintf(b, sizeof buf[0], "(missing)");
        return b;
    }
    char *text = to_json_text(value);
    if (strlen(text) > 700)
        snprintf(b, sizeof buf[0], "%.700s...", text);
    else
        snprintf(b, sizeof buf[0], "%s", text);
    free(text);
    return b;
}

static cJSON *get(const cJSON *object, const char *key) {
    return cJSON_IsObject(object) ? cJSON_GetObjectItemCaseSensitive(object, key) : NULL;
}

/* Like serde_json's value[key]: a copy of the field, or null when it is missing. */
static cJSON *field_or_null(const cJSON *object, const char *key) {
    cJSON *v = get(object, key);
    return v ? cJSON_Duplicate(v, 1) : cJSON_CreateNull();
}

static char *read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, len = 0;
    char *buf = xmalloc(cap);
    size_t got;
    while ((got = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += got;
        if (cap - len - 1 == 0) {
            cap *= 2;
            char *bigger = realloc(buf, cap);
            if (!bigger) {
                fprintf(stderr, "out of memory\n");
                exit(2);
            }
            buf = bigger;
        }
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

/* ----------------------------------------------------------------------- error code table */

typedef struct {
    char *name;
    unsigned code;
} ErrorName;

static ErrorName *g_errors;
static size_t g_n_errors;

static int load_error_codes(const char *path) {
    char *text = read_file(path);
    if (!text)
        return fail("cannot read %s", path);
    cJSON *table = cJSON_Parse(text);
    free(text);
    cJSON *codes = get(table, "codes");
    if (!cJSON_IsArray(codes)) {
        cJSON_Delete(table);
        return fail("%s: no \"codes\" list", path);
    }
    g_n_errors = (size_t)cJSON_GetArraySize(codes);
    g_errors = xmalloc(g_n_errors * sizeof *g_errors);
    size_t i = 0;
    const cJSON *row;
    cJSON_ArrayForEach(row, codes) {
        const cJSON *name = get(row, "name"), *code = get(row, "code");
        if (!cJSON_IsString(name) || !cJSON_IsNumber(code)) {
            g_n_errors = i;
            cJSON_Delete(table);
            return fail("%s: bad row %s", path, show(row));
        }
        g_errors[i].name = xstrdup(name->valuestring);
        g_errors[i].code = (unsigned)code->valuedouble;
        i++;
    }
    cJSON_Delete(table);
    return 0;
}

static const char *error_name(am_status code) {
    for (size_t i = 0; i < g_n_errors; i++)
        if (g_errors[i].code == code)
            return g_errors[i].name;
    return am_status_str(code); /* the C-only codes have no conformance name */
}

static int error_code(const char *name, am_status *code) {
    for (size_t i = 0; i < g_n_errors; i++)
        if (strcmp(g_errors[i].name, name) == 0) {
            *code = g_errors[i].code;
            return 0;
        }
    return -1;
}

/* -------------------------------------------------------------------------- $ references */

/* A resolved copy of `value`: "$name" references, "$$" escapes, {"$repeat": [text, n]}. */
static cJSON *resolve(const cJSON *value, const cJSON *vars) {
    if (cJSON_IsString(value)) {
        const char *s = value->valuestring;
        if (s[0] == '$' && s[1] == '$')
            return cJSON_CreateString(s + 1);
        if (s[0] == '$') {
            cJSON *saved = cJSON_GetObjectItemCaseSensitive(vars, s + 1);
            if (!saved) {
                fail("unknown reference %s", s);
                return NULL;
            }
            return cJSON_Duplicate(saved, 1);
        }
        return cJSON_Duplicate(value, 1);
    }
    if (cJSON_IsArray(value)) {
        cJSON *out = cJSON_CreateArray();
        const cJSON *item;
        cJSON_ArrayForEach(item, value) {
            cJSON *r = resolve(item, vars);
            if (!r) {
                cJSON_Delete(out);
                return NULL;
            }
            cJSON_AddItemToArray(out, r);
        }
        return out;
    }
    if (cJSON_IsObject(value)) {
        if (cJSON_GetArraySize(value) == 1 && strcmp(value->child->string, "$repeat") == 0) {
            const cJSON *spec = value->child;
            const cJSON *text = cJSON_GetArrayItem(spec, 0), *n = cJSON_GetArrayItem(spec, 1);
            if (!cJSON_IsArray(spec) || cJSON_GetArraySize(spec) != 2 || !cJSON_IsString(text) ||
                !cJSON_IsNumber(n) || n->valuedouble < 0 ||
                n->valuedouble != (double)(unsigned long)n->valuedouble) {
                fail("bad $repeat %s", show(value));
                return NULL;
            }
            size_t times = (size_t)n->valuedouble, len = strlen(text->valuestring);
            char *s = xmalloc(len * times + 1);
            for (size_t i = 0; i < times; i++)
                memcpy(s + i * len, text->valuestring, len);
            s[len * times] = '\0';
            cJSON *out = cJSON_CreateString(s);
            free(s);
            return out;
        }
        cJSON *out = cJSON_CreateObject();
        const cJSON *item;
        cJSON_ArrayForEach(item, value) {
            cJSON *r = resolve(item, vars);
            if (!r) {
                cJSON_Delete(out);
                return NULL;
            }
            cJSON_AddItemToObject(out, item->string, r);
        }
        return out;
    }
    return cJSON_Duplicate(value, 1);
}

/* ------------------------------------------------------------------------ argument checks */

/* The argument types the Rust runner insists on; anything else is a bad case file. */
typedef enum {
    T_OPT_STR,  /* string or null */
    T_REQ_STR,  /* string, required */
    T_OPT_BOOL, /* boolean or null */
    T_OPT_UINT, /* whole number >= 0 or null */
    T_OPT_NUM,  /* number or null */
    T_OBJECT,   /* an object (metadata, weights) */
    T_VECTOR,   /* a list of numbers / "NaN" / "Infinity" / "-Infinity" */
    T_LIST,     /* a list (memories) */
    T_ANY       /* passed to the core as is (filters) */
} ArgType;

typedef struct {
    const char *key;
    ArgType type;
} ArgSpec;

#define END_ARGS {NULL, T_ANY}

static const ArgSpec ADD_ARGS[] = {
    {"content", T_REQ_STR}, {"user_id", T_OPT_STR}, {"agent_id", T_OPT_STR},
    {"run_id", T_OPT_STR},  {"org_id", T_OPT_STR},  {"kind", T_OPT_STR},
    {"metadata", T_OBJECT}, {"expires_at", T_OPT_STR}, END_ARGS};
static const ArgSpec NEW_MEMORY_ARGS[] = {
    {"content", T_REQ_STR}, {"user_id", T_OPT_STR}, {"agent_id", T_OPT_STR},
    {"run_id", T_OPT_STR},  {"org_id", T_OPT_STR},  {"kind", T_OPT_STR},
    {"metadata", T_OBJECT}, {"expires_at", T_OPT_STR}, {"vector", T_VECTOR}, END_ARGS};
static const ArgSpec BATCH_ARGS[] = {{"memories", T_LIST}, END_ARGS};
static const ArgSpec ID_ARGS[] = {{"id", T_REQ_STR}, END_ARGS};
static const ArgSpec LIST_ARGS[] = {
    {"user_id", T_OPT_STR},         {"agent_id", T_OPT_STR},        {"run_id", T_OPT_STR},
    {"org_id", T_OPT_STR},          {"include_global", T_OPT_BOOL}, {"include_expired", T_OPT_BOOL},
    {"filters", T_ANY},             {"order", T_OPT_STR},           {"limit", T_OPT_UINT},
    {"offset", T_OPT_UINT},         {"cursor", T_OPT_STR},          END_ARGS};
static const ArgSpec SELECT_ARGS[] = {{"user_id", T_OPT_STR}, {"agent_id", T_OPT_STR},
                                      {"run_id", T_OPT_STR},  {"org_id", T_OPT_STR},
                                      {"filters", T_ANY},     END_ARGS};
static const ArgSpec UPDATE_ARGS[] = {{"id", T_REQ_STR},      {"content", T_OPT_STR},
                                      {"metadata", T_OBJECT}, {"kind", T_OPT_STR},
                                      {"expires_at", T_OPT_STR}, {"vector", T_VECTOR},
                                      END_ARGS};
static const ArgSpec SEARCH_ARGS[] = {
    {"query", T_OPT_STR},          {"vector", T_VECTOR},           {"mode", T_OPT_STR},
    {"limit", T_OPT_UINT},         {"threshold", T_OPT_NUM},       {"user_id", T_OPT_STR},
    {"agent_id", T_OPT_STR},       {"run_id", T_OPT_STR},          {"org_id", T_OPT_STR},
    {"include_global", T_OPT_BOOL}, {"include_expired", T_OPT_BOOL}, {"filters", T_ANY},
    {"weights", T_OBJECT},         END_ARGS};
static const ArgSpec NO_ARGS[] = {END_ARGS};

static int type_ok(const cJSON *v, ArgType type) {
    switch (type) {
    case T_OPT_STR:
        return cJSON_IsNull(v) || cJSON_IsString(v);
    case T_REQ_STR:
        return cJSON_IsString(v);
    case T_OPT_BOOL:
        return cJSON_IsNull(v) || cJSON_IsBool(v);
    case T_OPT_UINT:
        return cJSON_IsNull(v) ||
               (cJSON_IsNumber(v) && v->valuedouble >= 0 &&
                v->valuedouble == (double)(unsigned long long)v->valuedouble);
    case T_OPT_NUM:
        return cJSON_IsNull(v) || cJSON_IsNumber(v);
    case T_OBJECT:
        return cJSON_IsObject(v);
    case T_VECTOR:
    case T_LIST:
        return cJSON_IsArray(v);
    case T_ANY:
        return 1;
    }
    return 0;
}

/* Every argument is known and of its type; required ones are present. */
static int check_args(const cJSON *args, const ArgSpec *spec) {
    const cJSON *arg;
    cJSON_ArrayForEach(arg, args) {
        const ArgSpec *s = spec;
        while (s->key && strcmp(s->key, arg->string) != 0)
            s++;
        if (!s->key) {
            char allowed[512] = "";
            for (s = spec; s->key; s++) {
                strncat(allowed, s->key, sizeof allowed - strlen(allowed) - 1);
                strncat(allowed, " ", sizeof allowed - strlen(allowed) - 1);
            }
            return fail("bad case: unknown argument \"%s\" (expected one of: %s)", arg->string,
                        allowed);
        }
        if (!type_ok(arg, s->type))
            return fail("bad case: argument %s has a bad value %s", arg->string, show(arg));
    }
    for (const ArgSpec *s = spec; s->key; s++)
        if (s->type == T_REQ_STR && !get(args, s->key))
            return fail("bad case: %s is required", s->key);
    return 0;
}

/* A vector argument as floats; `out` gets at least one element so it is never NULL. */
static int parse_vector(const cJSON *list, float **out, size_t *dims) {
    size_t n = (size_t)cJSON_GetArraySize(list), i = 0;
    float *v = xmalloc((n ? n : 1) * sizeof *v);
    const cJSON *x;
    cJSON_ArrayForEach(x, list) {
        if (cJSON_IsNumber(x))
            v[i++] = (float)x->valuedouble;
        else if (cJSON_IsString(x) && strcmp(x->valuestring, "NaN") == 0)
            v[i++] = NAN;
        else if (cJSON_IsString(x) && strcmp(x->valuestring, "Infinity") == 0)
            v[i++] = INFINITY;
        else if (cJSON_IsString(x) && strcmp(x->valuestring, "-Infinity") == 0)
            v[i++] = -INFINITY;
        else {
            free(v);
            return fail("bad case: bad vector element %s", show(x));
        }
    }
    *out = v;
    *dims = n;
    return 0;
}

/* ---------------------------------------------------------------------------- operations */

typedef enum { OP_OK, OP_API_ERROR, OP_CASE_ERROR } Outcome;

typedef struct {
    cJSON *result;      /* OP_OK: the conformance result object */
    am_status code;     /* OP_API_ERROR */
    char *message;      /* OP_API_ERROR: a copy of am_error_message */
    int synthesized;    /* OP_API_ERROR made by the runner, not the library (see add_batch) */
} OpResult;

static int g_synthesized_refusals;

/* Records a failed call (taking ownership of err). */
static Outcome api_error(OpResult *r, am_status status, am_error *err) {
    r->code = status;
    r->message = xstrdup(err ? am_error_message(err) : "(no error object)");
    if (err && am_error_code(err) != status) {
        /* The error object must carry the returned code. */
        fail("status %s but am_error_code %s", am_status_str(status),
             am_status_str(am_error_code(err)));
        am_error_free(err);
        free(r->message);
        r->message = NULL;
        return OP_CASE_ERROR;
    }
    am_error_free(err);
    return OP_API_ERROR;
}

/* Parses the library's result JSON and frees its string. */
static cJSON *take_json(char *out) {
    cJSON *v = out ? cJSON_Parse(out) : NULL;
    if (!v)
        fail("the result is not JSON: %s", out ? out : "(NULL)");
    am_string_free(out);
    return v;
}

/* A copy of `args` without the keys that go as C arguments. */
static char *request_text(const cJSON *args) {
    cJSON *req = cJSON_Duplicate(args, 1);
    cJSON_DeleteItemFromObjectCaseSensitive(req, "id");
    cJSON_DeleteItemFromObjectCaseSensitive(req, "vector");
    char *text = to_json_text(req);
    cJSON_Delete(req);
    return text;
}

/* The result shape shared by list and search. */
static cJSON *items_result(cJSON *items /* taken */) {
    cJSON *out = cJSON_CreateObject();
    cJSON *ids = cJSON_CreateArray(), *contents = cJSON_CreateArray();
    const cJSON *item;
    cJSON_ArrayForEach(item, items) {
        cJSON_AddItemToArray(ids, field_or_null(item, "id"));
        cJSON_AddItemToArray(contents, field_or_null(item, "content"));
    }
    cJSON_AddNumberToObject(out, "count", cJSON_GetArraySize(items));
    cJSON_AddItemToObject(out, "ids", ids);
    cJSON_AddItemToObject(out, "contents", contents);
    cJSON_AddItemToObject(out, "items", items);
    return out;
}

static Outcome op_add_batch(am_memory *m, const cJSON *args, OpResult *r) {
    if (check_args(args, BATCH_ARGS))
        return OP_CASE_ERROR;
    const cJSON *memories = get(args, "memories");
    if (!cJSON_IsArray(memories))
        return fail("bad case: memories must be a list"), OP_CASE_ERROR;
    size_t n = (size_t)cJSON_GetArraySize(memories), with_vectors = 0, dims = 0;
    int ragged = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, memories) {
        if (!cJSON_IsObject(item))
            return fail("bad case: each memory is an object"), OP_CASE_ERROR;
        if (check_args(item, NEW_MEMORY_ARGS))
            return OP_CASE_ERROR;
        const cJSON *v = get(item, "vector");
        if (v) {
            size_t len = (size_t)cJSON_GetArraySize(v);
            if (with_vectors == 0)
                dims = len;
            else if (len != dims)
                ragged = 1;
            with_vectors++;
        }
    }
    if (with_vectors != 0 && with_vectors != n)
        return fail("bad case: either every memory of a batch has a vector or none has"),
               OP_CASE_ERROR;

    float *vectors = NULL;
    if (with_vectors) {
        vectors = xmalloc((n * dims + 1) * sizeof *vectors);
        size_t row = 0;
        cJSON_ArrayForEach(item, memories) {
            float *v;
            size_t len;
            if (parse_vector(get(item, "vector"), &v, &len)) {
                free(vectors);
                return OP_CASE_ERROR;
            }
            if (!ragged)
                memcpy(vectors + row * dims, v, len * sizeof *v);
            free(v);
            row++;
        }
    }
    if (ragged) {
        /* Vectors of different lengths cannot be written as the one count x dims array the
           C ABI takes: the C signature refuses them before any call, the C equivalent of
           the core's InvalidInput. Counted and reported, never silent. */
        free(vectors);
        g_synthesized_refusals++;
        r->code = AM_ERR_INVALID_INPUT;
        r->message = xstrdup("vectors of different lengths cannot be passed as one count x "
                             "dims array (refused by the C runner)");
        r->synthesized = 1;
        return OP_API_ERROR;
    }

    cJSON *req = cJSON_CreateObject(), *list = cJSON_AddArrayToObject(req, "memories");
    cJSON_ArrayForEach(item, memories) {
        cJSON *copy = cJSON_Duplicate(item, 1);
        cJSON_DeleteItemFromObjectCaseSensitive(copy, "vector");
        cJSON_AddItemToArray(list, copy);
    }
    char *text = to_json_text(req);
    cJSON_Delete(req);
    char *out = NULL;
    am_error *err = NULL;
    am_status s = with_vectors
                      ? am_memory_add_batch_with_vectors(m, text, vectors, n, dims, &out, &err)
                      : am_memory_add_batch(m, text, &out, &err);
    free(text);
    free(vectors);
    if (s != AM_OK)
        return api_error(r, s, err);
    cJSON *outcomes = take_json(out);
    if (!cJSON_IsArray(outcomes)) {
        cJSON_Delete(outcomes);
        return fail("add_batch did not return a list"), OP_CASE_ERROR;
    }
    cJSON *ids = cJSON_CreateArray(), *added = cJSON_CreateArray();
    cJSON_ArrayForEach(item, outcomes) {
        cJSON_AddItemToArray(ids, field_or_null(item, "id"));
        cJSON_AddItemToArray(added, field_or_null(item, "added"));
    }
    cJSON_Delete(outcomes);
    r->result = cJSON_CreateObject();
    cJSON_AddItemToObject(r->result, "ids", ids);
    cJSON_AddItemToObject(r->result, "added", added);
    return OP_OK;
}

/* Formats the current time as the store does: YYYY-MM-DDTHH:MM:SS.ffffffZ. */
static void now_rfc3339(char *buf, size_t size) {
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char date[32];
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, size, "%s.%06ldZ", date, ts.tv_nsec / 1000);
}

static void sleep_ms(long ms) {
    struct timespec ts = {0, ms * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* Runs one operation; on OP_OK r->result is the object the expectations are matched on. */
static Outcome run_op(am_memory *m, const char *op, const cJSON *args, OpResult *r) {
    char *out = NULL;
    am_error *err = NULL;
    am_status s;

    if (strcmp(op, "add") == 0 || strcmp(op, "add_with_vector") == 0) {
        int with_vector = op[3] != '\0';
        if (check_args(args, with_vector ? NEW_MEMORY_ARGS : ADD_ARGS))
            return OP_CASE_ERROR;
        char *text = request_text(args);
        if (with_vector) {
            const cJSON *v = get(args, "vector");
            float *vector;
            size_t dims;
            if (!v) {
                free(text);
                return fail("bad case: add_with_vector needs a vector"), OP_CASE_ERROR;
            }
            if (parse_vector(v, &vector, &dims)) {
                free(text);
                return OP_CASE_ERROR;
            }
            s = am_memory_add_with_vector(m, text, vector, dims, &out, &err);
            free(vector);
        } else {
            s = am_memory_add(m, text, &out, &err);
        }
        free(text);
        if (s != AM_OK)
            return api_error(r, s, err);
        return (r->result = take_json(out)) ? OP_OK : OP_CASE_ERROR;
    }
    if (strcmp(op, "add_batch") == 0)
        return op_add_batch(m, args, r);
    if (strcmp(op, "get") == 0 || strcmp(op, "delete") == 0 || strcmp(op, "history") == 0) {
        if (check_args(args, ID_ARGS))
            return OP_CASE_ERROR;
        const char *id = get(args, "id")->valuestring;
        if (op[0] == 'g')
            s = am_memory_get(m, id, &out, &err);
        else if (op[0] == 'd')
            s = am_memory_delete(m, id, &err);
        else
            s = am_memory_history(m, id, &out, &err);
        if (s != AM_OK)
            return api_error(r, s, err);
        if (op[0] == 'g')
            return (r->result = take_json(out)) ? OP_OK : OP_CASE_ERROR;
        if (op[0] == 'd') {
            r->result = cJSON_CreateObject();
            return OP_OK;
        }
        cJSON *entries = take_json(out);
        if (!cJSON_IsArray(entries)) {
            cJSON_Delete(entries);
            return fail("history did not return a list"), OP_CASE_ERROR;
        }
        cJSON *events = cJSON_CreateArray();
        const cJSON *row;
        cJSON_ArrayForEach(row, entries) cJSON_AddItemToArray(events, field_or_null(row, "event"));
        r->result = cJSON_CreateObject();
        cJSON_AddNumberToObject(r->result, "count", cJSON_GetArraySize(entries));
        cJSON_AddItemToObject(r->result, "events", events);
        cJSON_AddItemToObject(r->result, "entries", entries);
        return OP_OK;
    }
    if (strcmp(op, "list") == 0) {
        if (check_args(args, LIST_ARGS))
            return OP_CASE_ERROR;
        char *text = request_text(args);
        s = am_memory_list(m, text, &out, &err);
        free(text);
        if (s != AM_OK)
            return api_error(r, s, err);
        cJSON *page = take_json(out);
        cJSON *items = cJSON_DetachItemFromObjectCaseSensitive(page, "items");
        if (!cJSON_IsArray(items)) {
            cJSON_Delete(items);
            cJSON_Delete(page);
            return fail("list did not return {\"items\": [...]}"), OP_CASE_ERROR;
        }
        cJSON *cursor = field_or_null(page, "next_cursor");
        cJSON_Delete(page);
        r->result = items_result(items);
        cJSON_AddBoolToObject(r->result, "has_more", !cJSON_IsNull(cursor));
        cJSON_AddItemToObject(r->result, "next_cursor", cursor);
        return OP_OK;
    }
    if (strcmp(op, "count") == 0 || strcmp(op, "delete_all") == 0) {
        if (check_args(args, SELECT_ARGS))
            return OP_CASE_ERROR;
        char *text = request_text(args);
        uint64_t n = 0;
        int is_count = op[0] == 'c';
        s = is_count ? am_memory_count(m, text, &n, &err)
                     : am_memory_delete_all(m, text, &n, &err);
        free(text);
        if (s != AM_OK)
            return api_error(r, s, err);
        r->result = cJSON_CreateObject();
        cJSON_AddNumberToObject(r->result, is_count ? "count" : "deleted", (double)n);
        return OP_OK;
    }
    if (strcmp(op, "update") == 0) {
        if (check_args(args, UPDATE_ARGS))
            return OP_CASE_ERROR;
        const char *id = get(args, "id")->valuestring;
        const cJSON *v = get(args, "vector");
        char *text = request_text(args);
        if (v) {
            float *vector;
            size_t dims;
            if (parse_vector(v, &vector, &dims)) {
                free(text);
                return OP_CASE_ERROR;
            }
            s = am_memory_update_with_vector(m, id, text, vector, dims, &out, &err);
            free(vector);
        } else {
            s = am_memory_update(m, id, text, &out, &err);
        }
        free(text);
        if (s != AM_OK)
            return api_error(r, s, err);
        return (r->result = take_json(out)) ? OP_OK : OP_CASE_ERROR;
    }
    if (strcmp(op, "search") == 0) {
        if (check_args(args, SEARCH_ARGS))
            return OP_CASE_ERROR;
        const cJSON *v = get(args, "vector");
        char *text = request_text(args);
        if (v) {
            float *vector;
            size_t dims;
            if (parse_vector(v, &vector, &dims)) {
                free(text);
                return OP_CASE_ERROR;
            }
            s = am_memory_search_with_vector(m, text, vector, dims, &out, &err);
            free(vector);
        } else {
            s = am_memory_search(m, text, &out, &err);
        }
        free(text);
        if (s != AM_OK)
            return api_error(r, s, err);
        cJSON *hits = take_json(out);
        if (!cJSON_IsArray(hits)) {
            cJSON_Delete(hits);
            return fail("search did not return a list"), OP_CASE_ERROR;
        }
        r->result = items_result(hits);
        return OP_OK;
    }
    if (strcmp(op, "reset") == 0) {
        if (check_args(args, NO_ARGS))
            return OP_CASE_ERROR;
        s = am_memory_reset(m, &err);
        if (s != AM_OK)
            return api_error(r, s, err);
        r->result = cJSON_CreateObject();
        return OP_OK;
    }
    if (strcmp(op, "purge_expired") == 0) {
        if (check_args(args, NO_ARGS))
            return OP_CASE_ERROR;
        uint64_t n = 0;
        s = am_memory_purge_expired(m, &n, &err);
        if (s != AM_OK)
            return api_error(r, s, err);
        r->result = cJSON_CreateObject();
        cJSON_AddNumberToObject(r->result, "deleted", (double)n);
        return OP_OK;
    }
    if (strcmp(op, "mark_time") == 0) {
        if (check_args(args, NO_ARGS))
            return OP_CASE_ERROR;
        /* Strictly after everything before, strictly before everything after. */
        char now[64];
        sleep_ms(3);
        now_rfc3339(now, sizeof now);
        sleep_ms(3);
        r->result = cJSON_CreateObject();
        cJSON_AddStringToObject(r->result, "time", now);
        return OP_OK;
    }
    return fail("bad case: unknown op \"%s\"", op), OP_CASE_ERROR;
}

/* ------------------------------------------------------------------------------ matching */

static int numbers_equal(double a, double b) {
    double d = a - b;
    return (d < 0 ? -d : d) <= 1e-4;
}

/* `expected` matches `actual` (NULL = missing): null matches null or missing, objects by
   the keys they name (metadata, and everything inside it, compared whole), lists element
   by element, numbers within 1e-4, anything else plain equality. */
static int matches(const cJSON *expected, const cJSON *actual, int exact) {
    if (cJSON_IsNull(expected))
        return actual == NULL || cJSON_IsNull(actual);
    if (actual == NULL)
        return 0;
    if (cJSON_IsNumber(expected) && cJSON_IsNumber(actual))
        return numbers_equal(expected->valuedouble, actual->valuedouble);
    if (cJSON_IsArray(expected) && cJSON_IsArray(actual)) {
        if (cJSON_GetArraySize(expected) != cJSON_GetArraySize(actual))
            return 0;
        const cJSON *e = expected->child, *a = actual->child;
        for (; e && a; e = e->next, a = a->next)
            if (!matches(e, a, exact))
                return 0;
        return 1;
    }
    if (cJSON_IsObject(expected) && cJSON_IsObject(actual)) {
        if (exact && cJSON_GetArraySize(expected) != cJSON_GetArraySize(actual))
            return 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, expected) {
            int whole = exact || strcmp(e->string, "metadata") == 0;
            if (!matches(e, cJSON_GetObjectItemCaseSensitive(actual, e->string), whole))
                return 0;
        }
        return 1;
    }
    if (cJSON_IsString(expected) && cJSON_IsString(actual))
        return strcmp(expected->valuestring, actual->valuestring) == 0;
    if (cJSON_IsBool(expected) && cJSON_IsBool(actual))
        return !cJSON_IsTrue(expected) == !cJSON_IsTrue(actual);
    return 0;
}

static int compare_strings(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The same elements, in any order (compared by their JSON text, as the Rust runner does). */
static int same_multiset(const cJSON *expected, const cJSON *actual) {
    if (!cJSON_IsArray(expected) || !cJSON_IsArray(actual))
        return 0;
    size_t n = (size_t)cJSON_GetArraySize(expected);
    if ((size_t)cJSON_GetArraySize(actual) != n)
        return 0;
    char **e = xmalloc(n * sizeof *e), **a = xmalloc(n * sizeof *a);
    size_t i = 0;
    for (const cJSON *x = expected->child, *y = actual->child; x && y; x = x->next, y = y->next, i++) {
        e[i] = to_json_text(x);
        a[i] = to_json_text(y);
    }
    qsort(e, n, sizeof *e, compare_strings);
    qsort(a, n, sizeof *a, compare_strings);
    int same = 1;
    for (i = 0; i < n; i++) {
        same = same && strcmp(e[i], a[i]) == 0;
        free(e[i]);
        free(a[i]);
    }
    free(e);
    free(a);
    return same;
}

static int contains_value(const cJSON *list, const cJSON *value) {
    const cJSON *x;
    cJSON_ArrayForEach(x, list) if (cJSON_Compare(x, value, 1)) return 1;
    return 0;
}

/* Checks every expectation; returns 0, or -1 with the failures in g_msg. */
static int check(const cJSON *expect, const cJSON *result) {
    char failures[sizeof g_msg] = "";
    const cJSON *ids = get(result, "ids");
    const cJSON *e;
#define FAILED(key, exp, got)                                                                  \
    do {                                                                                        \
        size_t used_ = strlen(failures);                                                        \
        snprintf(failures + used_, sizeof failures - used_, "%s%s: expected %s, got %s",        \
                 used_ ? "; " : "", key, show(exp), show(got));                                 \
    } while (0)
    cJSON_ArrayForEach(e, expect) {
        const char *key = e->string;
        if (strcmp(key, "ids_in_order") == 0) {
            if (!matches(e, ids, 0))
                FAILED(key, e, ids);
        } else if (strcmp(key, "contents_in_order") == 0) {
            if (!matches(e, get(result, "contents"), 0))
                FAILED(key, e, get(result, "contents"));
        } else if (strcmp(key, "ids_any_order") == 0 || strcmp(key, "contents_any_order") == 0) {
            const cJSON *got = get(result, key[0] == 'i' ? "ids" : "contents");
            if (!same_multiset(e, got))
                FAILED(key, e, got);
        } else if (strcmp(key, "includes") == 0 || strcmp(key, "excludes") == 0) {
            int want_in = key[0] == 'i', ok = cJSON_IsArray(e);
            const cJSON *id;
            cJSON_ArrayForEach(id, e) if (contains_value(ids, id) != want_in) ok = 0;
            if (!ok)
                FAILED(key, e, ids);
        } else if (strcmp(key, "first") == 0) {
            const cJSON *first = cJSON_GetArrayItem(get(result, "items"), 0);
            if (!first || !matches(e, first, 0))
                FAILED(key, e, first);
        } else {
            const cJSON *got = get(result, key);
            if (!matches(e, got, strcmp(key, "metadata") == 0))
                FAILED(key, e, got);
        }
    }
#undef FAILED
    if (failures[0])
        return fail("%s", failures);
    return 0;
}

/* ------------------------------------------------------------------------------- files */

static const char *const STEP_KEYS[] = {"op",          "args",     "expect",      "expect_error",
                                        "error_contains", "save_id", "save_ids",  "save_cursor",
                                        "save_time",   "note",     NULL};

static void save(cJSON *vars, const char *name, cJSON *value /* taken */) {
    cJSON_DeleteItemFromObjectCaseSensitive(vars, name);
    cJSON_AddItemToObject(vars, name, value);
}

/* Runs one step; 0 when it passed, -1 with the reason in g_msg. */
static int run_step(am_memory *m, const cJSON *step, cJSON *vars) {
    const cJSON *key;
    if (!cJSON_IsObject(step))
        return fail("not an object");
    cJSON_ArrayForEach(key, step) {
        const char *const *k = STEP_KEYS;
        while (*k && strcmp(*k, key->string) != 0)
            k++;
        if (!*k)
            return fail("unknown step key \"%s\"", key->string);
    }
    const cJSON *expect = get(step, "expect"), *expect_error = get(step, "expect_error");
    if (expect && expect_error)
        return fail("expect and expect_error together");
    const cJSON *op = get(step, "op");
    const cJSON *raw_args = get(step, "args");
    cJSON *args = raw_args ? resolve(raw_args, vars) : cJSON_CreateObject();
    if (!args)
        return -1;
    if (!cJSON_IsObject(args)) {
        cJSON_Delete(args);
        return fail("args must be an object");
    }

    OpResult r = {NULL, AM_OK, NULL, 0};
    Outcome outcome = run_op(m, cJSON_IsString(op) ? op->valuestring : "?", args, &r);
    cJSON_Delete(args);
    int rc = 0;
    if (outcome == OP_CASE_ERROR)
        return -1;
    if (outcome == OP_OK && expect_error) {
        rc = fail("expected error %s, got %s", show(expect_error), show(r.result));
        goto done;
    }
    if (outcome == OP_API_ERROR && !expect_error) {
        rc = fail("unexpected error %s: %s", error_name(r.code), r.message);
        goto done;
    }
    if (outcome == OP_API_ERROR) {
        am_status want;
        if (!cJSON_IsString(expect_error) || error_code(expect_error->valuestring, &want)) {
            rc = fail("bad case: unknown error name %s", show(expect_error));
            goto done;
        }
        if (r.code != want) {
            rc = fail("expected error %s, got %s: %s", expect_error->valuestring,
                      error_name(r.code), r.message);
            goto done;
        }
        const cJSON *part = get(step, "error_contains");
        if (part) {
            cJSON *resolved = resolve(part, vars);
            if (!resolved) {
                rc = -1;
                goto done;
            }
            if (!cJSON_IsString(resolved) || !strstr(r.message, resolved->valuestring))
                rc = fail("error \"%s\" does not contain %s", r.message, show(resolved));
            cJSON_Delete(resolved);
        }
        goto done;
    }

    /* Saving comes before the expectations, which may use the saved names. */
    static const char *const SAVES[][2] = {
        {"save_id", "id"}, {"save_cursor", "next_cursor"}, {"save_time", "time"}};
    for (size_t i = 0; i < sizeof SAVES / sizeof SAVES[0]; i++) {
        const cJSON *name = get(step, SAVES[i][0]);
        if (!name)
            continue;
        if (!cJSON_IsString(name)) {
            rc = fail("%s is a name", SAVES[i][0]);
            goto done;
        }
        save(vars, name->valuestring, field_or_null(r.result, SAVES[i][1]));
    }
    const cJSON *names = get(step, "save_ids");
    if (names) {
        if (!cJSON_IsArray(names)) {
            rc = fail("save_ids is a list");
            goto done;
        }
        int j = 0;
        const cJSON *name;
        cJSON_ArrayForEach(name, names) {
            if (!cJSON_IsString(name)) {
                rc = fail("save_ids holds names");
                goto done;
            }
            const cJSON *id = cJSON_GetArrayItem(get(r.result, "ids"), j++);
            save(vars, name->valuestring, id ? cJSON_Duplicate(id, 1) : cJSON_CreateNull());
        }
    }
    if (expect) {
        cJSON *resolved = resolve(expect, vars);
        if (!resolved) {
            rc = -1;
            goto done;
        }
        if (!cJSON_IsObject(resolved))
            rc = fail("expect must be an object");
        else
            rc = check(resolved, r.result);
        cJSON_Delete(resolved);
    }
done:
    cJSON_Delete(r.result);
    free(r.message);
    return rc;
}

/* The file name without directory and ".json". */
static void stem_of(const char *path, char *out, size_t size) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(out, size, "%s", base);
    size_t n = strlen(out);
    if (n > 5 && strcmp(out + n - 5, ".json") == 0)
        out[n - 5] = '\0';
}

/* Runs one case file; returns the number of steps, or -1 with the first failure in g_msg. */
static int run_file(const char *path) {
    char *raw = read_file(path);
    if (!raw)
        return fail("cannot read the file");
    if (strstr(raw, NUL_STANDIN_UTF8) || strstr(raw, "\\uDBFF\\uDFFD") ||
        strstr(raw, "\\udbff\\udffd")) {
        free(raw);
        return fail("the file uses U+10FFFD, the runner's stand-in for NUL");
    }
    char *text = protect_nuls(raw);
    free(raw);
    cJSON *c = cJSON_Parse(text);
    free(text);
    if (!c)
        return fail("not JSON (near: %.60s)", cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() : "");

    char stem[256];
    stem_of(path, stem, sizeof stem);
    const cJSON *name = get(c, "name"), *embedder = get(c, "embedder");
    const cJSON *steps = get(c, "steps");
    const char *options = NULL;
    int rc;
    if (!cJSON_IsString(name) || strcmp(name->valuestring, stem) != 0)
        rc = fail("name %s differs from the file name", show(name));
    else if (!cJSON_IsString(get(c, "description")))
        rc = fail("description missing");
    else if (!cJSON_IsArray(steps))
        rc = fail("steps missing");
    else if (cJSON_IsString(embedder) && strcmp(embedder->valuestring, "hashing-64") == 0)
        options = "{\"embedder\":{\"provider\":\"hashing\",\"dimensions\":64}}", rc = 0;
    else if (cJSON_IsString(embedder) && strcmp(embedder->valuestring, "none") == 0)
        options = "{\"embedder\":\"none\"}", rc = 0;
    else
        rc = fail("unknown embedder %s", show(embedder));
    if (rc) {
        cJSON_Delete(c);
        return -1;
    }

    am_memory *m = NULL;
    am_error *err = NULL;
    am_status s = am_memory_open(":memory:", options, &m, &err);
    if (s != AM_OK) {
        fail("cannot open a store (%s): %s", am_status_str(s), am_error_message(err));
        am_error_free(err);
        cJSON_Delete(c);
        return -1;
    }
    cJSON *vars = cJSON_CreateObject();
    int i = 0;
    const cJSON *step;
    rc = 0;
    cJSON_ArrayForEach(step, steps) {
        if (run_step(m, step, vars)) {
            const cJSON *op = get(step, "op");
            char reason[sizeof g_msg];
            memcpy(reason, g_msg, sizeof reason);
            fail("step %d (%s): %s", i, cJSON_IsString(op) ? op->valuestring : "?", reason);
            rc = -1;
            break;
        }
        i++;
    }
    cJSON_Delete(vars);
    am_memory_free(m);
    cJSON_Delete(c);
    return rc ? -1 : i;
}

/* ------------------------------------------------------------------------------- main */

typedef struct {
    char **items;
    size_t len, cap;
} PathList;

static void push(PathList *l, char *path) {
    if (l->len == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        char **bigger = realloc(l->items, l->cap * sizeof *l->items);
        if (!bigger) {
            fprintf(stderr, "out of memory\n");
            exit(2);
        }
        l->items = bigger;
    }
    l->items[l->len++] = path;
}

static int add_dir(PathList *files, const char *dir) {
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    size_t first = files->len;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n > 5 && strcmp(e->d_name + n - 5, ".json") == 0) {
            char *path = xmalloc(strlen(dir) + n + 2);
            sprintf(path, "%s/%s", dir, e->d_name);
            push(files, path);
        }
    }
    closedir(d);
    qsort(files->items + first, files->len - first, sizeof *files->items, compare_strings);
    return 0;
}

int main(int argc, char **argv) {
    PathList files = {NULL, 0, 0};
    const char *codes_path = NULL;
    char *default_codes = NULL;
    int any_dir = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--error-codes") == 0 && i + 1 < argc) {
            codes_path = argv[++i];
        } else if (add_dir(&files, argv[i]) == 0) {
            if (!any_dir) {
                default_codes = xmalloc(strlen(argv[i]) + 32);
                sprintf(default_codes, "%s/../error_codes.json", argv[i]);
            }
            any_dir = 1;
        } else {
            push(&files, xstrdup(argv[i]));
        }
    }
    if (files.len == 0) {
        fprintf(stderr, "usage: %s [--error-codes PATH] DIR_OR_FILE...\n", argv[0]);
        return 2;
    }
    if (!codes_path)
        codes_path = default_codes ? default_codes : "tests/error_codes.json";
    if (load_error_codes(codes_path)) {
        fprintf(stderr, "%s\n", g_msg);
        return 2;
    }

    int failed = 0;
    long steps = 0;
    for (size_t i = 0; i < files.len; i++) {
        const char *base = strrchr(files.items[i], '/');
        base = base ? base + 1 : files.items[i];
        int n = run_file(files.items[i]);
        if (n < 0) {
            printf("FAIL %s: %s\n", base, g_msg);
            failed++;
        } else {
            printf("ok   %s (%d steps)\n", base, n);
            steps += n;
        }
        fflush(stdout);
    }
    int status = 0;
    if (failed) {
        printf("%d of %zu case files failed\n", failed, files.len);
        status = 1;
    }
    if (any_dir && files.len < MIN_FILES) {
        printf("only %zu case files (at least %d expected)\n", files.len, MIN_FILES);
        status = 1;
    }
    if (any_dir && steps < MIN_STEPS) {
        printf("only %ld steps ran (at least %d expected)\n", steps, MIN_STEPS);
        status = 1;
    }
    if (g_synthesized_refusals)
        printf("note: %d ragged vector batch(es) refused by the runner, not the library "
               "(the C ABI cannot express them)\n",
               g_synthesized_refusals);
    printf("%zu case files, %ld steps%s\n", files.len, steps, status ? "" : ", all passed");

    for (size_t i = 0; i < files.len; i++)
        free(files.items[i]);
    free(files.items);
    free(default_codes);
    for (size_t i = 0; i < g_n_errors; i++)
        free(g_errors[i].name);
    free(g_errors);
    return status;
}
