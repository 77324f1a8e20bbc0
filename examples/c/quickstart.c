/*
 * Quickstart for the agent_mem C API: a store file, memories for two users, and a search.
 *
 * Build and run (after `make -C ffi install`):
 *   cc quickstart.c $(pkg-config --cflags --libs agentmem) -o quickstart
 *   ./quickstart memories.db
 *
 * Every call returns an am_status; on failure it also hands out an am_error, whose message
 * says what went wrong. Requests and results are JSON text; every char* the library returns
 * is freed with am_string_free.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <agentmem.h>

static void print_hits(const char *hits_json);

/* Prints why a call failed and frees the error. */
static int report(const char *what, am_status status, am_error *err) {
    fprintf(stderr, "%s failed (%s): %s\n", what, am_status_str(status), am_error_message(err));
    am_error_free(err);
    return 1;
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "memories.db";
    am_memory *mem = NULL;
    am_error *err = NULL;
    char *out = NULL;
    am_status status;

    printf("agent_mem %s, store %s\n", am_version(), path);

    /* NULL options: the defaults, including the local embedding model (all-MiniLM-L6-v2). */
    status = am_memory_open(path, NULL, &mem, &err);
    if (status != AM_OK)
        return report("am_memory_open", status, err);

    static const char *const memories[] = {
        "{\"content\": \"I am vegetarian and allergic to nuts\", \"user_id\": \"alice\"}",
        "{\"content\": \"I live in Lisbon\", \"user_id\": \"alice\"}",
        "{\"content\": \"I love steak\", \"user_id\": \"bob\"}",
    };
    for (size_t i = 0; i < sizeof memories / sizeof memories[0]; i++) {
        status = am_memory_add(mem, memories[i], &out, &err);
        if (status != AM_OK) {
            am_memory_free(mem);
            return report("am_memory_add", status, err);
        }
        /* {"added": true, "id": "..."}; added is false when it was stored already. */
        printf("add %s -> %s\n", memories[i], out);
        am_string_free(out);
    }

    /* Only Alice's memories: a search is scoped like the memories are. */
    const char *query = "what should I cook for dinner?";
    char request[256];
    snprintf(request, sizeof request, "{\"query\": \"%s\", \"user_id\": \"alice\", \"limit\": 3}",
             query);
    status = am_memory_search(mem, request, &out, &err);
    if (status != AM_OK) {
        am_memory_free(mem);
        return report("am_memory_search", status, err);
    }
    printf("\n[alice] %s\n", query);
    print_hits(out);
    am_string_free(out);

    am_memory_free(mem); /* also saves the vector index beside the database */
    return 0;
}

/* --------------------------------------------------------------------------------------
 * A minimal reader of the search result, a JSON list of hits, each an object with
 * "content", "score" (the fused rank score) and "similarity" (cosine to the query), and
 * more: "id", "metadata", "explain", ... A real program
 * would use a JSON library (cJSON, jansson, ...); this one stays dependency-free.
 */

static const char *skip_space(const char *p) {
    while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')
        p++;
    return p;
}

/* p is at a string's opening quote; returns the character after its closing quote. */
static const char *skip_string(const char *p) {
    for (p++; *p && *p != '"'; p++)
        if (*p == '\\' && p[1])
            p++;
    return *p ? p + 1 : p;
}

/* Skips one value of any kind (nested objects and lists included). */
static const char *skip_value(const char *p) {
    p = skip_space(p);
    if (*p == '"')
        return skip_string(p);
    if (*p == '{' || *p == '[') {
        int depth = 0;
        while (*p) {
            if (*p == '"') {
                p = skip_string(p);
                continue;
            }
            if (*p == '{' || *p == '[')
                depth++;
            else if (*p == '}' || *p == ']')
                depth--;
            p++;
            if (depth == 0)
                break;
        }
        return p;
    }
    while (*p && *p != ',' && *p != '}' && *p != ']') /* number, true, false, null */
        p++;
    return p;
}

static void print_hits(const char *json) {
    const char *p = skip_space(json);
    if (*p++ != '[')
        return;
    for (int rank = 1;; rank++) {
        p = skip_space(p);
        if (*p != '{')
            break;
        const char *content = NULL;
        int content_len = 0;
        double score = 0, similarity = 0;
        p++; /* the members of one hit: "key": value, ... */
        while (*(p = skip_space(p)) == '"') {
            const char *key = p + 1, *value;
            p = skip_space(skip_string(p));
            if (*p++ != ':')
                return;
            value = skip_space(p);
            p = skip_value(value);
            if (strncmp(key, "content\"", 8) == 0) {
                content = value + 1;
                content_len = (int)(p - value) - 2;
            } else if (strncmp(key, "score\"", 6) == 0) {
                score = strtod(value, NULL);
            } else if (strncmp(key, "similarity\"", 11) == 0) {
                similarity = strtod(value, NULL);
            }
            p = skip_space(p);
            if (*p == ',')
                p++;
        }
        p++; /* the closing brace */
        /* The content is printed as JSON has it: quotes and the like stay escaped. */
        printf("  %d. score %.3f (cosine %.3f)  %.*s\n", rank, score, similarity, content_len,
               content ? content : "");
        p = skip_space(p);
        if (*p == ',')
            p++;
    }
}
