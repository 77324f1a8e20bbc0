/*
 * am_memory_chat end to end through the C ABI, against a real HTTP server on this machine:
 * tests/fake_llm.py, which answers with the scripted replies of tests/c/chat_script.json in
 * order (streamed answers as server-sent events, whole answers, the extraction of the
 * exchange remembered) and logs every request it receives, one JSON line each.
 *
 *   test_chat http://127.0.0.1:PORT REQUEST_LOG SCRIPT
 *
 * tests/c/run.sh starts the server, runs this under valgrind and stops the server. The tests
 * run in the order of the script: each one consumes its replies, and after each call the
 * number of requests in the log says how many model calls it made.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "agentmem.h"
#include "check.h"
#include "fake_llm_log.h"

/* The answer of the first replies: non-ASCII throughout, so that pieces of three bytes cut
   characters (and the JSON of the events) everywhere. */
#define ANSWER                                                                                 \
    "Für dich: Gemüse-Crêpes mit Käse 🧀 [1]. Guten Appetit — 素晴らしい!"
#define QUESTION "What should I cook tonight? Something with crêpes?"
#define CHAT_PROMPT_MARK "long-term memory of the person"

static const char *g_url; /* the server's root, without a path */

/* ------------------------------------------------------------------------------- helpers */

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* Whether s is well-formed UTF-8 (no cut or overlong sequence, no surrogate). */
static int utf8_valid(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int n;
        unsigned min;
        unsigned c = *p;
        if (c < 0x80) {
            p++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            n = 1, min = 0x80, c &= 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2, min = 0x800, c &= 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3, min = 0x10000, c &= 0x07;
        } else {
            return 0;
        }
        for (int i = 1; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return 0;
            c = (c << 6) | (p[i] & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
            return 0;
        p += n + 1;
    }
    return 1;
}

/* What a streamed call's callback saw, and how it behaves. */
typedef struct {
    am_memory *m;        /* the store, for the callback's own calls */
    int chunks;          /* how many times it was called */
    int stop_at;         /* returns non-zero on this call (1-based); 0: never */
    const char *reenter; /* on the first call, counts this selection of m (NULL: no call) */
    uint64_t counted;    /* what that count gave */
    double first_ms;     /* when the first piece came */
    char text[4096];     /* the deltas joined */
} Stream;

/* The am_chunk_fn of every streamed call: each piece must be the JSON object
   {"delta": "text"} alone, the text whole UTF-8. */
static int on_chunk(const char *json_chunk, void *user) {
    Stream *s = user;
    if (++s->chunks == 1)
        s->first_ms = now_ms();
    cJSON *chunk = cJSON_Parse(json_chunk);
    const char *delta = str_field(chunk, "delta");
    g_checks++;
    if (!cJSON_IsObject(chunk) || cJSON_GetArraySize(chunk) != 1 || !delta ||
        strncmp(json_chunk, "{\"delta\":", 9) != 0 || !utf8_valid(delta)) {
        report(__FILE__, __LINE__, "piece %d is not {\"delta\": text}: %s", s->chunks, json_chunk);
    } else {
        size_t used = strlen(s->text);
        snprintf(s->text + used, sizeof s->text - used, "%s", delta);
    }
    cJSON_Delete(chunk);
    if (s->reenter && s->chunks == 1) {
        /* The callback may call the library again, on the same store. */
        am_error *err = NULL;
        EXPECT(am_memory_count(s->m, s->reenter, &s->counted, &err), AM_OK);
    }
    return s->stop_at != 0 && s->chunks >= s->stop_at;
}

/* Opens a store in memory with the hashing embedder and, with_llm, the fake OpenAI
   endpoint. */
static am_memory *open_store(int with_llm) {
    char options[1024];
    am_memory *m = NULL;
    am_error *err = NULL;
    if (with_llm)
        snprintf(options, sizeof options,
                 "{\"embedder\":{\"provider\":\"hashing\",\"dimensions\":64},"
                 "\"llm\":{\"provider\":\"openai\",\"model\":\"gpt-4.1-nano\","
                 "\"api_key\":\"sk-test\",\"base_url\":\"%s/v1\",\"timeout_ms\":5000,"
                 "\"max_retries\":0}}",
                 g_url);
    else
        snprintf(options, sizeof options,
                 "{\"embedder\":{\"provider\":\"hashing\",\"dimensions\":64}}");
    if (!EXPECT(am_memory_open(":memory:", options, &m, &err), AM_OK) || !m) {
        fprintf(stderr, "cannot continue without a store\n");
        exit(1);
    }
    return m;
}

/* A chat that must succeed, streamed to s unless s is NULL; its reply (the caller deletes
   it; an empty object when the call failed). */
static cJSON *chat_ok(const char *file, int line, am_memory *m, const char *request, Stream *s) {
    char *out = NULL;
    am_error *err = NULL;
    am_status status = am_memory_chat(m, request, s ? on_chunk : NULL, s, &out, &err);
    if (!expect_status(file, line, request, status, AM_OK, &err, NULL))
        return cJSON_CreateObject();
    cJSON *reply = take(file, line, &out);
    return reply ? reply : cJSON_CreateObject();
}
#define CHAT_OK(m, request, s) chat_ok(__FILE__, __LINE__, (m), (request), (s))

static uint64_t count_of(am_memory *m, const char *selection) {
    uint64_t n = 0;
    am_error *err = NULL;
    EXPECT(am_memory_count(m, selection, &n, &err), AM_OK);
    return n;
}

/* Every memory (working ones too) as one JSON text, to compare before and after; the caller
   frees it with am_string_free. */
static char *snapshot(am_memory *m) {
    char *out = NULL;
    am_error *err = NULL;
    EXPECT(am_memory_list(m, "{\"order\":\"created_asc\",\"limit\":1000}", &out, &err), AM_OK);
    return out;
}

static const cJSON *field(const cJSON *object, const char *key) {
    return cJSON_GetObjectItemCaseSensitive(object, key);
}

/* The system prompt of a logged chat request, into buf ("" when missing). */
static const char *system_prompt_of(const cJSON *body, char *buf, size_t size) {
    const cJSON *first = cJSON_GetArrayItem(field(body, "messages"), 0);
    const char *role = str_field(first, "role"), *content = str_field(first, "content");
    snprintf(buf, size, "%s", role && content && strcmp(role, "system") == 0 ? content : "");
    return buf;
}

/* ------------------------------------------------------------------------------- answers */

/* A streamed answer: the pieces, cut anywhere on the wire, come as whole JSON chunks whose
   deltas join into the answer; the memory it cites is the one stored; the turn is kept as
   working memory and the exchange remembered inline (one extraction, no facts). The callback
   counts the store meanwhile. Replies 1 and 2. */
static void test_streamed(am_memory *m, const char *vegetarian) {
    int before = requests_seen();
    uint64_t stored = count_of(m, NULL);
    Stream s = {.m = m, .reenter = "{\"user_id\":\"alice\"}"};
    cJSON *reply = CHAT_OK(m, "{\"messages\":\"" QUESTION "\",\"user_id\":\"alice\"}", &s);

    CHECK_INT(s.chunks, 3);
    CHECK_STR(s.text, ANSWER);
    CHECK_STR(str_field(reply, "answer"), ANSWER);
    CHECK_INT(s.counted, 1); /* read while the answer streamed: the turn is not kept yet */

    const cJSON *used = cJSON_GetArrayItem(field(reply, "memories_used"), 0);
    CHECK_INT(cJSON_GetNumberValue(field(used, "ref")), 1);
    CHECK_STR(str_field(used, "id"), vegetarian);
    CHECK_STR(str_field(used, "source"), "search");
    const cJSON *cited = field(reply, "citations");
    CHECK_INT(cJSON_GetArraySize(cited), 1);
    CHECK_INT(cJSON_GetNumberValue(field(cJSON_GetArrayItem(cited, 0), "ref")), 1);
    CHECK_STR(str_field(cJSON_GetArrayItem(cited, 0), "id"), vegetarian);
    CHECK_STR(str_field(reply, "model"), "openai:gpt-4.1-nano");

    const cJSON *remember = field(reply, "remember");
    CHECK_STR(str_field(remember, "status"), "done");
    CHECK(cJSON_IsArray(field(remember, "events")));
    CHECK_INT(cJSON_GetArraySize(field(remember, "events")), 0);

    /* The turn, kept as working memory: the only memory added. */
    const char *working = str_field(reply, "working_memory_id");
    CHECK(working && strlen(working) == 36);
    CHECK_INT(count_of(m, NULL), stored + 1);
    if (working) {
        char *out = NULL;
        am_error *err = NULL;
        EXPECT(am_memory_get(m, working, &out, &err), AM_OK);
        cJSON *record = TAKE(out);
        CHECK_STR(str_field(record, "kind"), "working");
        CHECK(str_field(record, "content") && strstr(str_field(record, "content"), ANSWER));
        cJSON_Delete(record);
    }
    cJSON_Delete(reply);

    /* Two model calls: the answer, streamed, with the memory listed; then the extraction. */
    CHECK_INT(requests_seen(), before + 2);
    char system[8192];
    cJSON *body = request_body(before);
    CHECK(cJSON_IsTrue(field(body, "stream")));
    system_prompt_of(body, system, sizeof system);
    CHECK(strstr(system, CHAT_PROMPT_MARK) != NULL);
    CHECK(strstr(system, "[1] Alice is vegetarian and loves crêpes") != NULL);
    CHECK(strstr(system, vegetarian) == NULL); /* the model never sees the store's ids */
    cJSON_Delete(body);
    body = request_body(before + 1);
    CHECK(!cJSON_IsTrue(field(body, "stream")));
    CHECK(strstr(system_prompt_of(body, system, sizeof system), CHAT_PROMPT_MARK) == NULL);
    cJSON_Delete(body);
}

/* on_chunk NULL: the model is asked for the whole answer; the reply is the same. Nothing is
   kept (no working memory, remember off). Reply 3. */
static void test_not_streamed(am_memory *m, const char *vegetarian) {
    int before = requests_seen();
    char *before_state = snapshot(m);
    cJSON *reply = CHAT_OK(m,
                           "{\"messages\":\"" QUESTION "\",\"user_id\":\"alice\","
                           "\"remember\":\"off\",\"session_window\":0}",
                           NULL);
    CHECK_STR(str_field(reply, "answer"), ANSWER);
    CHECK_INT(cJSON_GetArraySize(field(reply, "citations")), 1);
    CHECK_STR(str_field(cJSON_GetArrayItem(field(reply, "citations"), 0), "id"), vegetarian);
    CHECK_STR(str_field(field(reply, "remember"), "status"), "off");
    CHECK(field(reply, "working_memory_id") == NULL);
    cJSON_Delete(reply);

    CHECK_INT(requests_seen(), before + 1);
    cJSON *body = request_body(before);
    CHECK(!cJSON_IsTrue(field(body, "stream")));
    cJSON_Delete(body);
    char *after_state = snapshot(m);
    CHECK_STR(after_state, before_state);
    am_string_free(before_state);
    am_string_free(after_state);
}

/* ------------------------------------------------------------------------------ failures */

/* The callback stops the stream at its second piece: AM_ERR_CANCELLED, no result, no more
   pieces, nothing stored (the remembering, inline by default, never runs). Reply 4. */
static void test_cancelled(am_memory *m) {
    int before = requests_seen();
    char *before_state = snapshot(m);
    char *out = NULL;
    am_error *err = NULL;
    Stream s = {.m = m, .stop_at = 2};
    EXPECT_MSG(am_memory_chat(m, "{\"messages\":\"And for dessert?\",\"user_id\":\"alice\"}",
                              on_chunk, &s, &out, &err),
               AM_ERR_CANCELLED, "cancel");
    CHECK(out == NULL);
    CHECK_INT(s.chunks, 2);
    CHECK_STR(s.text, "Crêpes Suzette ");
    CHECK_STR(am_status_str(AM_ERR_CANCELLED), "AM_ERR_CANCELLED");
    CHECK_INT(requests_seen(), before + 1);
    char *after_state = snapshot(m);
    CHECK_STR(after_state, before_state);
    am_string_free(before_state);
    am_string_free(after_state);
}

/* The connection ends before the model finished (no finish, no [DONE]): AM_ERR_LLM after
   the pieces that came, nothing stored. Reply 5. */
static void test_cut_stream(am_memory *m) {
    int before = requests_seen();
    char *before_state = snapshot(m);
    char *out = NULL;
    am_error *err = NULL;
    Stream s = {.m = m};
    EXPECT(am_memory_chat(m, "{\"messages\":\"Tell me a story\",\"user_id\":\"alice\"}", on_chunk,
                          &s, &out, &err),
           AM_ERR_LLM);
    CHECK(out == NULL);
    CHECK_STR(s.text, "Ein Stück ");
    CHECK_INT(requests_seen(), before + 1);
    char *after_state = snapshot(m);
    CHECK_STR(after_state, before_state);
    am_string_free(before_state);
    am_string_free(after_state);
}

/* The pieces come as the model writes them, not all at the end: the server waits 250 ms
   between two events, so the first piece comes long before the call returns. Reply 6. */
static void test_pieces_come_live(am_memory *m) {
    Stream s = {.m = m};
    cJSON *reply = CHAT_OK(m,
                           "{\"messages\":\"Count to four\",\"user_id\":\"alice\","
                           "\"remember\":\"off\",\"session_window\":0}",
                           &s);
    double returned = now_ms();
    CHECK_INT(s.chunks, 4);
    CHECK_STR(s.text, "Eins, zwei, drei, vier.");
    CHECK_STR(str_field(reply, "answer"), "Eins, zwei, drei, vier.");
    g_checks++;
    if (returned - s.first_ms < 500.0)
        report(__FILE__, __LINE__, "the first piece came %.0f ms before the end",
               returned - s.first_ms);
    cJSON_Delete(reply);
}

/* remember "background": the reply carries a handle at once; chat_remembered (through
   am_memory_call) waits for the outcome, hands it out once, then knows the handle no more.
   Replies 7 and 8. */
static void test_background(am_memory *m) {
    int before = requests_seen();
    Stream s = {.m = m};
    cJSON *reply = CHAT_OK(m,
                           "{\"messages\":\"I bake bread every Sunday.\",\"user_id\":\"zoe\","
                           "\"remember\":\"background\",\"session_window\":0}",
                           &s);
    CHECK_STR(s.text, "Lovely: fresh bread on Sundays.");
    const cJSON *remember = field(reply, "remember");
    CHECK_STR(str_field(remember, "status"), "running");
    const char *handle = str_field(remember, "handle");
    CHECK(handle != NULL);
    char request[256];
    snprintf(request, sizeof request, "{\"handle\":\"%s\",\"wait\":true}", handle ? handle : "");
    cJSON_Delete(reply);

    char *out = NULL;
    am_error *err = NULL;
    EXPECT(am_memory_call(m, "chat_remembered", request, &out, &err), AM_OK);
    cJSON *outcome = TAKE(out);
    CHECK_STR(str_field(outcome, "status"), "done");
    const cJSON *events = field(outcome, "events");
    CHECK_INT(cJSON_GetArraySize(events), 1);
    CHECK_STR(str_field(cJSON_GetArrayItem(events, 0), "event"), "ADD");
    CHECK_STR(str_field(cJSON_GetArrayItem(events, 0), "memory"), "Bakes bread on Sundays");
    cJSON_Delete(outcome);
    EXPECT(am_memory_call(m, "chat_remembered", request, &out, &err), AM_ERR_NOT_FOUND);
    CHECK(out == NULL);
    CHECK_INT(count_of(m, "{\"user_id\":\"zoe\"}"), 1);
    CHECK_INT(requests_seen(), before + 2);
}

/* Refused before any model call, the callback never called, nothing stored. */
static void test_refused_requests(am_memory *m) {
    int before = requests_seen();
    char *before_state = snapshot(m);
    char *out = NULL;
    am_error *err = NULL;
    Stream s = {.m = m};

    /* NULL is the empty request, which has no messages. */
    EXPECT_MSG(am_memory_chat(m, NULL, on_chunk, &s, &out, &err), AM_ERR_INVALID_INPUT,
               "messages");
    EXPECT_MSG(am_memory_chat(m, "{\"messages\":[],\"user_id\":\"alice\"}", on_chunk, &s, &out,
                              &err),
               AM_ERR_INVALID_INPUT, "empty");
    EXPECT_MSG(am_memory_chat(m,
                              "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"},"
                              "{\"role\":\"assistant\",\"content\":\"Hello!\"}],"
                              "\"user_id\":\"alice\"}",
                              on_chunk, &s, &out, &err),
               AM_ERR_INVALID_INPUT, "last message");
    EXPECT_MSG(am_memory_chat(m, "{\"messages\":\"Hi\"}", on_chunk, &s, &out, &err),
               AM_ERR_INVALID_INPUT, "scope");
    EXPECT_MSG(am_memory_chat(m, "{\"messages\":\"Hi\",\"user_id\":\"alice\",\"remeber\":\"off\"}",
                              on_chunk, &s, &out, &err),
               AM_ERR_INVALID_INPUT, "remeber");
    EXPECT(am_memory_chat(m, "{\"messages\":\"Hi\",\"user_id\":\"alice\",\"remember\":\"later\"}",
                          NULL, NULL, &out, &err),
           AM_ERR_INVALID_INPUT);
    EXPECT_MSG(am_memory_chat(m,
                              "{\"messages\":\"Hi\",\"user_id\":\"alice\","
                              "\"prompt\":\"Be brief\"}",
                              on_chunk, &s, &out, &err),
               AM_ERR_INVALID_INPUT, "{memories}");
    EXPECT_MSG(am_memory_chat(m, "{\"messages\":\"Hi\",", on_chunk, &s, &out, &err),
               AM_ERR_INVALID_INPUT, "JSON");
    EXPECT_MSG(am_memory_chat(m, "{\"messages\":\"\xff\",\"user_id\":\"alice\"}", on_chunk, &s,
                              &out, &err),
               AM_ERR_INVALID_INPUT, "request_json is not valid UTF-8");
    EXPECT(am_memory_chat(NULL, "{\"messages\":\"Hi\",\"user_id\":\"alice\"}", on_chunk, &s, &out,
                          &err),
           AM_ERR_NULL_ARG);
    EXPECT_MSG(am_memory_chat(m, "{\"messages\":\"Hi\",\"user_id\":\"alice\"}", on_chunk, &s, NULL,
                              &err),
               AM_ERR_NULL_ARG, "out_json");
    /* err may be NULL: the status alone tells. */
    CHECK_INT(am_memory_chat(m, "{\"messages\":[]}", on_chunk, &s, &out, NULL),
              AM_ERR_INVALID_INPUT);

    CHECK(out == NULL);
    CHECK_INT(s.chunks, 0);
    CHECK_INT(requests_seen(), before);
    char *after_state = snapshot(m);
    CHECK_STR(after_state, before_state);
    am_string_free(before_state);
    am_string_free(after_state);
}

/* A store without a chat model: AM_ERR_UNSUPPORTED, streamed or not, before any work. */
static void test_without_a_model(void) {
    am_memory *m = open_store(0);
    char *out = NULL;
    am_error *err = NULL;
    Stream s = {.m = m};
    const char *request = "{\"messages\":\"" QUESTION "\",\"user_id\":\"alice\"}";
    EXPECT_MSG(am_memory_chat(m, request, on_chunk, &s, &out, &err), AM_ERR_UNSUPPORTED, "llm");
    EXPECT(am_memory_chat(m, request, NULL, NULL, &out, &err), AM_ERR_UNSUPPORTED);
    CHECK(out == NULL);
    CHECK_INT(s.chunks, 0);
    CHECK_INT(count_of(m, NULL), 0);
    am_memory_free(m);
}

/* --------------------------------------------------------------------------------- main */

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s http://127.0.0.1:PORT REQUEST_LOG SCRIPT\n", argv[0]);
        return 2;
    }
    g_url = argv[1];
    g_log = argv[2];
    int scripted = script_length(argv[3]);

    am_memory *m = open_store(1);
    char vegetarian[37];
    ADD(m, "{\"content\":\"Alice is vegetarian and loves crêpes\",\"user_id\":\"alice\"}",
        vegetarian);
    test_streamed(m, vegetarian);
    test_not_streamed(m, vegetarian);
    test_cancelled(m);
    test_cut_stream(m);
    test_pieces_come_live(m);
    test_background(m);
    test_refused_requests(m);
    am_memory_free(m);
    test_without_a_model();

    /* Every scripted reply was asked for, and nothing more. */
    CHECK_INT(requests_seen(), scripted);
    if (g_failures) {
        fprintf(stderr, "%d of %d checks FAILED\n", g_failures, g_checks);
        return 1;
    }
    printf("test_chat: all %d checks passed\n", g_checks);
    return 0;
}
