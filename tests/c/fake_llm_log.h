/*
 * What the C tests that talk to tests/fake_llm.py (test_infer.c, test_chat.c) read of it: the
 * requests it logged (one JSON line each, in the file its --log option names) and how many
 * replies its script holds. Header-only, after check.h; the program sets g_log.
 */
#ifndef AGENTMEM_TEST_FAKE_LLM_LOG_H
#define AGENTMEM_TEST_FAKE_LLM_LOG_H

#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#include "check.h"

static const char *g_log; /* the server's request log */

/* The requests the server logged so far: a cJSON array of its JSON lines. */
static cJSON *logged_requests(void) {
    cJSON *all = cJSON_CreateArray();
    FILE *f = fopen(g_log, "r");
    if (!f)
        return all; /* nothing logged yet */
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        if (n <= 1)
            continue;
        cJSON *r = cJSON_Parse(line);
        g_checks++;
        if (!r) {
            report(__FILE__, __LINE__, "the request log holds a line that is not JSON: %s", line);
            continue;
        }
        cJSON_AddItemToArray(all, r);
    }
    free(line);
    fclose(f);
    return all;
}

static int requests_seen(void) {
    cJSON *all = logged_requests();
    int n = cJSON_GetArraySize(all);
    cJSON_Delete(all);
    return n;
}

/* The body of the n-th logged request (0-based), as JSON; NULL if there is none. */
static cJSON *request_body(int n) {
    cJSON *all = logged_requests();
    cJSON *body = cJSON_DetachItemFromObjectCaseSensitive(cJSON_GetArrayItem(all, n), "body");
    cJSON_Delete(all);
    if (cJSON_IsString(body)) { /* a body kept as text */
        cJSON *parsed = cJSON_Parse(body->valuestring);
        cJSON_Delete(body);
        body = parsed;
    }
    return body;
}

/* How many replies the script holds. */
static int script_length(const char *file) {
    FILE *f = fopen(file, "r");
    if (!f) {
        fprintf(stderr, "cannot read %s\n", file);
        exit(2);
    }
    static char text[65536];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    cJSON *script = cJSON_Parse(text);
    if (!cJSON_IsArray(script)) {
        fprintf(stderr, "%s is not a JSON list\n", file);
        exit(2);
    }
    int length = cJSON_GetArraySize(script);
    cJSON_Delete(script);
    return length;
}

#endif
