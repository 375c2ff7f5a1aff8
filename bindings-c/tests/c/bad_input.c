/* Bad input through the C API: NULL for every pointer argument, invalid UTF-8,
 * malformed and oversized policy JSON, too-small buffers, out-of-range values, misuse,
 * and two threads on one handle. Prints "N passed, M failed"; exits non-zero on failure. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "writelane.h"

#ifndef EXPECTED_VERSION
#error "compile with -DEXPECTED_VERSION=\"x.y.z\" (the version in Cargo.toml)"
#endif

static int passed, failed;

#define CHECK(cond)                                                    \
  do {                                                                 \
    if (cond) {                                                        \
      passed++;                                                        \
    } else {                                                           \
      failed++;                                                        \
      fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                  \
  } while (0)

#define S(lit) lit, sizeof(lit) - 1

static wl_error err;

/* The status, and the handle's last error path equals `path`. */
static int fails_with(wl_engine *e, wl_status got, wl_status want, const char *path) {
  if (got != want) {
    fprintf(stderr, "  got %s, want %s\n", wl_status_name(got), wl_status_name(want));
    return 0;
  }
  if (wl_engine_last_error(e, &err) != WL_STATUS_OK) return 0;
  if (err.status != want) return 0;
  if (path && strcmp(err.path, path) != 0) {
    fprintf(stderr, "  path %s, want %s (%s)\n", err.path, path, err.message);
    return 0;
  }
  if (path && !strstr(err.message, path)) {
    fprintf(stderr, "  message %s does not name %s\n", err.message, path);
    return 0;
  }
  return 1;
}

static void constructor_and_free(void) {
  wl_engine *e = (wl_engine *)&passed;
  char big[70 * 1024];
  CHECK(wl_engine_new(NULL, 5, 0, &e, &err) == WL_STATUS_NULL_ARGUMENT);
  CHECK(e == NULL);
  CHECK(strcmp(err.path, "policy") == 0);
  CHECK(wl_engine_new(S("\"iam\""), 0, NULL, &err) == WL_STATUS_NULL_ARGUMENT);
  CHECK(strcmp(err.path, "out_engine") == 0);
  CHECK(wl_engine_new(S("\"iam\""), 0, NULL, NULL) == WL_STATUS_NULL_ARGUMENT);
  CHECK(wl_engine_new(S("\"\xff\xfe\""), 0, &e, &err) == WL_STATUS_INVALID_UTF8);
  CHECK(e == NULL && strcmp(err.path, "policy") == 0 && strstr(err.message, "offset 1"));
  CHECK(wl_engine_new(S("{\"preset\": "), 0, &e, &err) == WL_STATUS_INVALID_POLICY);
  CHECK(e == NULL && strcmp(err.path, "$") == 0 && strstr(err.message, "malformed JSON"));
  CHECK(wl_engine_new(S("{\"retry\": {\"conflict\": {\"base_ms\": -1}}}"), 0, &e, &err) ==
        WL_STATUS_INVALID_POLICY);
  CHECK(strcmp(err.path, "retry.conflict.base_ms") == 0);
  CHECK(wl_engine_new(S("[1, 2]"), 0, &e, &err) == WL_STATUS_INVALID_POLICY);
  /* Oversized: a valid JSON document above the 64 KiB limit. */
  memset(big, ' ', sizeof big);
  memcpy(big, "\"iam\"", 5);
  CHECK(wl_engine_new(big, sizeof big, 0, &e, &err) == WL_STATUS_INVALID_POLICY);
  CHECK(strcmp(err.path, "$") == 0 && strstr(err.message, "limit"));
  /* An error struct is reset by a later success. */
  CHECK(wl_engine_new(S("\"aws-standard\""), 0, &e, &err) == WL_STATUS_OK);
  CHECK(e != NULL && err.status == WL_STATUS_OK && err.message[0] == 0 && err.message_len == 0);
  wl_engine_free(e);
  wl_engine_free(NULL); /* fine */
  CHECK(wl_engine_new(S("\"iam\""), 0, &e, NULL) == WL_STATUS_OK);
  wl_engine_free(e);
}

static void null_handle(void) {
  wl_command c;
  wl_str s;
  bool has;
  uint64_t at, op;
  uint32_t level;
  size_t len;
  wl_stats st;
  wl_input in;
  wl_retry_token t;
  wl_failure f;
  wl_retry_decision d;
  memset(&in, 0, sizeof in);
  memset(&t, 0, sizeof t);
  memset(&f, 0, sizeof f);
  CHECK(wl_engine_last_error(NULL, &err) == WL_STATUS_NULL_ARGUMENT);
  CHECK(wl_engine_submit(NULL, S("role/a"), 0, NULL, &op) == WL_STATUS_NULL_ARGUMENT);
  CHECK(wl_engine_handle(NULL, 0, &in) == WL_STATUS_NULL_ARGUMENT);
  CHECK(wl_engine_handle_timeout(NULL, 0) == WL_STATUS_NULL_ARGUMENT);
  CHECK(wl_engine_poll_command(NULL, &c) == WL_STATUS_NULL_ARGUMENT);
  CHECK(wl_engine_poll_command_for(NULL, 1, &c) == WL_STATUS_NULL_ARGUMENT);
  CHECK(wl_engine_poll_timeout(NULL, &has, &at) == WL_STATUS_NULL_ARGUMENT);
  CHECK(wl_engine_poll_timeout_for(NULL, 1, &has, &at) == WL_STATUS_NULL_ARGUMENT);
  CHECK(wl_engine_poll_event(NULL, &s) == WL_STATUS_NULL_ARGUMENT);
  CHECK(wl_engine_stats(NULL, &st) == WL_STATUS_NULL_ARGUMENT);
  CHECK(wl_engine_stats_json(NULL, &s) == WL_STATUS_NULL_ARGUMENT);
  CHECK(wl_engine_export_state(NULL, &s) == WL_STATUS_NULL_ARGUMENT);
  CHECK(wl_engine_import_state(NULL, S("{}")) == WL_STATUS_NULL_ARGUMENT);
  CHECK(wl_engine_policy_json(NULL, NULL, 0, &len) == WL_STATUS_NULL_ARGUMENT);
  CHECK(wl_engine_retry_acquire(NULL, S("iam"), 0, &t) == WL_STATUS_NULL_ARGUMENT);
  CHECK(wl_engine_retry_refresh(NULL, &t, &f, 0, &d) == WL_STATUS_NULL_ARGUMENT);
  CHECK(wl_engine_retry_success(NULL, &t) == WL_STATUS_NULL_ARGUMENT);
  CHECK(wl_engine_retry_capacity(NULL, S("iam"), &level) == WL_STATUS_NULL_ARGUMENT);
}

static void null_arguments(wl_engine *e) {
  wl_retry_token t;
  wl_failure f;
  wl_retry_decision d;
  uint64_t op, at;
  bool has;
  size_t len;
  memset(&f, 0, sizeof f);
  CHECK(wl_engine_last_error(e, NULL) == WL_STATUS_NULL_ARGUMENT);
  CHECK(fails_with(e, wl_engine_submit(e, NULL, 3, 0, NULL, &op), WL_STATUS_NULL_ARGUMENT, "entity"));
  CHECK(fails_with(e, wl_engine_submit(e, S("role/a"), 0, NULL, NULL), WL_STATUS_NULL_ARGUMENT, "out_op"));
  CHECK(fails_with(e, wl_engine_handle(e, 0, NULL), WL_STATUS_NULL_ARGUMENT, "input"));
  CHECK(fails_with(e, wl_engine_poll_command(e, NULL), WL_STATUS_NULL_ARGUMENT, "out_command"));
  CHECK(fails_with(e, wl_engine_poll_command_for(e, 1, NULL), WL_STATUS_NULL_ARGUMENT, "out_command"));
  CHECK(fails_with(e, wl_engine_poll_timeout(e, NULL, &at), WL_STATUS_NULL_ARGUMENT, "out_has"));
  CHECK(fails_with(e, wl_engine_poll_timeout(e, &has, NULL), WL_STATUS_NULL_ARGUMENT, "out_at_ms"));
  CHECK(fails_with(e, wl_engine_poll_timeout_for(e, 1, NULL, &at), WL_STATUS_NULL_ARGUMENT, "out_has"));
  CHECK(fails_with(e, wl_engine_poll_timeout_for(e, 1, &has, NULL), WL_STATUS_NULL_ARGUMENT, "out_at_ms"));
  CHECK(fails_with(e, wl_engine_poll_event(e, NULL), WL_STATUS_NULL_ARGUMENT, "out_json"));
  CHECK(fails_with(e, wl_engine_stats(e, NULL), WL_STATUS_NULL_ARGUMENT, "out_stats"));
  CHECK(fails_with(e, wl_engine_stats_json(e, NULL), WL_STATUS_NULL_ARGUMENT, "out_json"));
  CHECK(fails_with(e, wl_engine_export_state(e, NULL), WL_STATUS_NULL_ARGUMENT, "out_json"));
  CHECK(fails_with(e, wl_engine_import_state(e, NULL, 2), WL_STATUS_NULL_ARGUMENT, "state_json"));
  CHECK(fails_with(e, wl_engine_policy_json(e, NULL, 0, NULL), WL_STATUS_NULL_ARGUMENT, "out_len"));
  CHECK(fails_with(e, wl_engine_policy_json(e, NULL, 16, &len), WL_STATUS_NULL_ARGUMENT, "buf"));
  CHECK(fails_with(e, wl_engine_retry_acquire(e, NULL, 3, 0, &t), WL_STATUS_NULL_ARGUMENT, "scope"));
  CHECK(fails_with(e, wl_engine_retry_acquire(e, S("iam"), 0, NULL), WL_STATUS_NULL_ARGUMENT, "out_token"));
  CHECK(wl_engine_retry_acquire(e, S("iam"), 0, &t) == WL_STATUS_OK);
  CHECK(fails_with(e, wl_engine_retry_refresh(e, NULL, &f, 0, &d), WL_STATUS_NULL_ARGUMENT, "token"));
  CHECK(fails_with(e, wl_engine_retry_refresh(e, &t, NULL, 0, &d), WL_STATUS_NULL_ARGUMENT, "failure"));
  CHECK(fails_with(e, wl_engine_retry_refresh(e, &t, &f, 0, NULL), WL_STATUS_NULL_ARGUMENT, "out_decision"));
  CHECK(fails_with(e, wl_engine_retry_success(e, NULL), WL_STATUS_NULL_ARGUMENT, "token"));
  CHECK(fails_with(e, wl_engine_retry_capacity(e, NULL, 3, NULL), WL_STATUS_NULL_ARGUMENT, NULL));
  CHECK(fails_with(e, wl_engine_retry_capacity(e, S("iam"), NULL), WL_STATUS_NULL_ARGUMENT, "out_level"));
  /* A successful call clears the last error. */
  CHECK(wl_engine_poll_timeout(e, &has, &at) == WL_STATUS_OK);
  CHECK(wl_engine_last_error(e, &err) == WL_STATUS_OK && err.status == WL_STATUS_OK && err.message[0] == 0);
  {
    char buf[8];
    CHECK(wl_policy_token(NULL, 3, buf, sizeof buf, &len, &err) == WL_STATUS_NULL_ARGUMENT);
    CHECK(strcmp(err.path, "document") == 0);
    CHECK(wl_policy_token(S("{}"), buf, sizeof buf, NULL, &err) == WL_STATUS_NULL_ARGUMENT);
    CHECK(strcmp(err.path, "out_len") == 0);
  }
}

static void strings_and_values(wl_engine *e) {
  wl_input in;
  wl_submit_options o;
  uint64_t op = 0;
  char entity[3000];
  memset(&o, 0, sizeof o);
  CHECK(fails_with(e, wl_engine_submit(e, S("role/\xc3\x28"), 0, NULL, &op), WL_STATUS_INVALID_UTF8, "entity"));
  CHECK(strstr(err.message, "offset 5") != NULL);
  CHECK(fails_with(e, wl_engine_submit(e, "", 0, 0, NULL, &op), WL_STATUS_USAGE_ERROR, NULL));
  CHECK(err.usage == WL_USAGE_INVALID_ENTITY && strcmp(wl_usage_name(err.usage), "invalid_entity") == 0);
  memset(entity, 'a', sizeof entity);
  CHECK(fails_with(e, wl_engine_submit(e, entity, sizeof entity, 0, NULL, &op), WL_STATUS_USAGE_ERROR, NULL));
  CHECK(err.usage == WL_USAGE_INVALID_ENTITY);
  CHECK(fails_with(e, wl_engine_submit(e, entity, (size_t)PTRDIFF_MAX + 1, 0, NULL, &op),
                   WL_STATUS_INVALID_ARGUMENT, "entity"));
  o.expected.ptr = NULL;
  o.expected.len = 4;
  CHECK(fails_with(e, wl_engine_submit(e, S("role/a"), 0, &o, &op), WL_STATUS_INVALID_ARGUMENT, "options.expected"));
  o.expected.ptr = "\xe2\x82";
  o.expected.len = 2;
  CHECK(fails_with(e, wl_engine_submit(e, S("role/a"), 0, &o, &op), WL_STATUS_INVALID_UTF8, "options.expected"));
  /* Nothing was submitted by the refused calls: the first op is 1. */
  o.expected.ptr = "";
  o.expected.len = 0;
  CHECK(wl_engine_submit(e, S("role/a"), 10, &o, &op) == WL_STATUS_OK && op == 1);
  memset(&in, 0, sizeof in);
  in.kind = 99;
  in.op = 1;
  CHECK(fails_with(e, wl_engine_handle(e, 10, &in), WL_STATUS_INVALID_ARGUMENT, "input.kind"));
  in.kind = WL_INPUT_KIND_WRITE_FAILED;
  in.failure.has_retry_after = true;
  in.failure.retry_after_header.ptr = "5";
  in.failure.retry_after_header.len = 1;
  CHECK(fails_with(e, wl_engine_handle(e, 10, &in), WL_STATUS_INVALID_ARGUMENT, "input.failure"));
  memset(&in.failure, 0, sizeof in.failure);
  in.failure.code.ptr = "\xff";
  in.failure.code.len = 1;
  CHECK(fails_with(e, wl_engine_handle(e, 10, &in), WL_STATUS_INVALID_UTF8, "input.failure.code"));
  /* Misuse: the op waits for a read, and its read command was not polled yet. */
  in.kind = WL_INPUT_KIND_WRITE_DONE;
  memset(&in.failure, 0, sizeof in.failure);
  CHECK(fails_with(e, wl_engine_handle(e, 10, &in), WL_STATUS_USAGE_ERROR, NULL));
  CHECK(err.usage == WL_USAGE_UNEXPECTED_INPUT);
  in.kind = WL_INPUT_KIND_READ_DONE;
  CHECK(fails_with(e, wl_engine_handle(e, 10, &in), WL_STATUS_USAGE_ERROR, NULL));
  CHECK(err.usage == WL_USAGE_COMMAND_NOT_DRAINED);
  in.op = 77;
  CHECK(fails_with(e, wl_engine_handle(e, 10, &in), WL_STATUS_USAGE_ERROR, NULL));
  CHECK(err.usage == WL_USAGE_UNKNOWN_OP && strstr(err.message, "77"));
  CHECK(fails_with(e, wl_engine_handle_timeout(e, 9), WL_STATUS_USAGE_ERROR, NULL));
  CHECK(err.usage == WL_USAGE_TIME_WENT_BACKWARDS);
  CHECK(fails_with(e, wl_engine_import_state(e, S("{\"version\": ")), WL_STATUS_USAGE_ERROR, NULL));
  CHECK(err.usage == WL_USAGE_INVALID_STATE);
  CHECK(fails_with(e, wl_engine_import_state(e, S("{\"version\": 99}")), WL_STATUS_USAGE_ERROR, NULL));
  CHECK(err.usage == WL_USAGE_INVALID_STATE && strstr(err.message, "99"));
  {
    wl_retry_token t;
    wl_failure f;
    wl_retry_decision d;
    memset(&t, 0, sizeof t);
    memset(&f, 0, sizeof f);
    t.scope = 12345;
    CHECK(fails_with(e, wl_engine_retry_refresh(e, &t, &f, 20, &d), WL_STATUS_USAGE_ERROR, NULL));
    CHECK(err.usage == WL_USAGE_UNKNOWN_SCOPE);
    CHECK(fails_with(e, wl_engine_retry_success(e, &t), WL_STATUS_USAGE_ERROR, NULL));
  }
  CHECK(strcmp(wl_usage_name(1000), "unknown") == 0);
}

static void buffers(wl_engine *e) {
  size_t len = 0, need;
  char small[8], *full;
  char tok[WL_POLICY_TOKEN_LEN + 1];
  const char doc[] = "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"s3:GetObject\",\"Resource\":\"*\"}]}";
  CHECK(fails_with(e, wl_engine_policy_json(e, NULL, 0, &len), WL_STATUS_BUFFER_TOO_SMALL, "buf"));
  need = len;
  CHECK(need > 100);
  small[0] = 'x';
  CHECK(wl_engine_policy_json(e, small, sizeof small, &len) == WL_STATUS_BUFFER_TOO_SMALL);
  CHECK(len == need && small[0] == 0);
  full = malloc(need + 1);
  CHECK(wl_engine_policy_json(e, full, need, &len) == WL_STATUS_BUFFER_TOO_SMALL); /* no room for NUL */
  CHECK(wl_engine_policy_json(e, full, need + 1, &len) == WL_STATUS_OK);
  CHECK(len == need && strlen(full) == need && strstr(full, "\"preset\": \"iam\""));
  free(full);
  CHECK(wl_policy_token(S(doc), small, sizeof small, &len, &err) == WL_STATUS_BUFFER_TOO_SMALL);
  CHECK(len == WL_POLICY_TOKEN_LEN && strcmp(err.path, "buf") == 0);
  CHECK(wl_policy_token(S(doc), tok, WL_POLICY_TOKEN_LEN, &len, NULL) == WL_STATUS_BUFFER_TOO_SMALL);
  CHECK(wl_policy_token(S(doc), tok, sizeof tok, &len, &err) == WL_STATUS_OK);
  CHECK(len == WL_POLICY_TOKEN_LEN && strncmp(tok, "c1:sha256:", 10) == 0 && err.status == WL_STATUS_OK);
  CHECK(wl_policy_token(S("{\"Statement\": 5}"), tok, sizeof tok, &len, &err) == WL_STATUS_INVALID_DOCUMENT);
  CHECK(err.path_len == strlen(err.path) && err.message_len == strlen(err.message));
  CHECK(wl_policy_token(S("{\"a\":\"\xff\"}"), tok, sizeof tok, &len, &err) == WL_STATUS_INVALID_UTF8);
}

static void names_and_versions(void) {
  char v[32];
  CHECK(strcmp(wl_status_name(WL_STATUS_OK), "WL_STATUS_OK") == 0);
  CHECK(strcmp(wl_status_name(WL_STATUS_BUSY), "WL_STATUS_BUSY") == 0);
  CHECK(strcmp(wl_status_name(WL_STATUS_INVALID_RECORD), "WL_STATUS_INVALID_RECORD") == 0);
  CHECK(strcmp(wl_status_name(12345), "WL_STATUS_UNKNOWN") == 0);
  CHECK(strcmp(wl_version(), WL_VERSION) == 0);
  CHECK(strcmp(WL_VERSION, EXPECTED_VERSION) == 0);
  snprintf(v, sizeof v, "%d.%d.%d", WL_VERSION_MAJOR, WL_VERSION_MINOR, WL_VERSION_PATCH);
  CHECK(strcmp(v, EXPECTED_VERSION) == 0);
  CHECK(wl_abi_version() == WL_ABI_VERSION);
  /* 0.1.0 spelled its ABI 0x000100; its structs were shorter, so a program built against
   * that header must see a different value. */
  CHECK(WL_ABI_VERSION != 0x000100);
}

/* Two threads on one handle: one runs long calls, the other must see WL_STATUS_BUSY, and
 * every call returns either OK or BUSY. */
struct shared {
  wl_engine *e;
  const char *state;
  size_t state_len;
  volatile int stop;
  int busy_seen, bad_status;
};

static void *long_calls(void *arg) {
  struct shared *s = arg;
  long tries;
  int done = 0;
  /* Calls refused with BUSY (the other thread holds the handle) are retried; stop after
   * 200 completed imports, or once the other thread has seen enough. */
  for (tries = 0; tries < 10000000 && done < 200 && !s->stop; tries++) {
    wl_status st = wl_engine_import_state(s->e, s->state, s->state_len);
    if (st == WL_STATUS_OK) done++;
    else if (st != WL_STATUS_BUSY) s->bad_status = 1;
    else sched_yield();
  }
  s->stop = 1;
  return NULL;
}

static void two_threads(void) {
  struct shared s;
  pthread_t t;
  size_t cap = 64 * 1024 * 40, n, i;
  char *state = malloc(cap);
  memset(&s, 0, sizeof s);
  CHECK(wl_engine_new(S("\"iam\""), 1, &s.e, NULL) == WL_STATUS_OK);
  n = (size_t)snprintf(state, cap, "{\"version\":1,\"entities\":{");
  for (i = 0; i < 20000; i++)
    n += (size_t)snprintf(state + n, cap - n, "%s\"role/r%zu\":{\"committed_token\":\"v%zu\"}", i ? "," : "", i, i);
  n += (size_t)snprintf(state + n, cap - n, "}}");
  s.state = state;
  s.state_len = n;
  pthread_create(&t, NULL, long_calls, &s);
  while (!s.stop) {
    bool has;
    uint64_t at;
    wl_status st = wl_engine_poll_timeout(s.e, &has, &at);
    if (st == WL_STATUS_BUSY) {
      s.busy_seen++;
      if (s.busy_seen >= 3) s.stop = 1;
    } else if (st != WL_STATUS_OK) {
      s.bad_status = 1;
    }
    /* Yield outside any call, so that a scheduler which serialises threads (valgrind)
     * switches while this thread does not hold the handle. */
    sched_yield();
  }
  pthread_join(t, NULL);
  CHECK(s.busy_seen > 0);
  CHECK(!s.bad_status);
  {
    uint64_t op;
    wl_command c;
    CHECK(wl_engine_submit(s.e, S("role/r7"), 0, NULL, &op) == WL_STATUS_OK);
    CHECK(wl_engine_poll_command(s.e, &c) == WL_STATUS_OK);
    /* The imported token is trusted: the first writer writes at once on it. */
    CHECK(c.kind == WL_COMMAND_KIND_WRITE && c.base_token.len == 2 && memcmp(c.base_token.ptr, "v7", 2) == 0);
  }
  {
    /* Export what was learned and import it into a fresh engine. */
    wl_str out;
    wl_engine *fresh = NULL;
    uint64_t op;
    wl_command c;
    CHECK(wl_engine_export_state(s.e, &out) == WL_STATUS_OK && out.ptr && out.ptr[out.len] == 0);
    CHECK(strstr(out.ptr, "\"role/r19999\":{\"committed_token\":\"v19999\"") != NULL);
    CHECK(wl_engine_new(S("\"iam\""), 2, &fresh, NULL) == WL_STATUS_OK);
    CHECK(wl_engine_import_state(fresh, out.ptr, out.len) == WL_STATUS_OK);
    CHECK(wl_engine_submit(fresh, S("role/r19999"), 0, NULL, &op) == WL_STATUS_OK);
    {
      uint64_t cleared = 0;
      wl_str ev;
      CHECK(wl_engine_clear_events(fresh, &cleared) == WL_STATUS_OK && cleared == 1); /* submitted */
      CHECK(wl_engine_poll_event(fresh, &ev) == WL_STATUS_OK && ev.ptr == NULL);
      CHECK(wl_engine_clear_events(fresh, NULL) == WL_STATUS_OK);
      CHECK(wl_engine_clear_events(NULL, NULL) == WL_STATUS_NULL_ARGUMENT);
    }
    CHECK(wl_engine_poll_command(fresh, &c) == WL_STATUS_OK && c.kind == WL_COMMAND_KIND_WRITE &&
          c.base_token.len == 6 && memcmp(c.base_token.ptr, "v19999", 6) == 0);
    wl_engine_free(fresh);
  }
  wl_engine_free(s.e);
  free(state);
}

/* The budget-free delay decision and classification used by SDK adapters. */
static void delays_and_classes(void) {
  wl_engine *e = NULL;
  wl_failure f;
  wl_retry_decision d;
  wl_error_class c;
  uint32_t level = 0;
  const char policy[] = "{\"preset\":\"aws-standard\",\"retry\":{\"transient\":{\"jitter\":\"none\"}}}";
  CHECK(wl_engine_new(S(policy), 3, &e, &err) == WL_STATUS_OK);
  memset(&f, 0, sizeof f);
  f.code = (wl_str){"InternalFailure", 15};
  f.http_status = 500;
  CHECK(wl_engine_retry_delay(e, 1, &f, 0, &d) == WL_STATUS_OK && d.retry && d.delay_ms == 50 &&
        d.error_class == WL_ERROR_CLASS_TRANSIENT);
  CHECK(wl_engine_retry_delay(e, 2, &f, 0, &d) == WL_STATUS_OK && d.retry && d.delay_ms == 100);
  CHECK(wl_engine_retry_delay(e, 3, &f, 0, &d) == WL_STATUS_OK && !d.retry &&
        d.refusal == WL_REFUSAL_ATTEMPTS_EXHAUSTED);
  CHECK(fails_with(e, wl_engine_retry_delay(e, 0, &f, 0, &d), WL_STATUS_INVALID_ARGUMENT, "attempt"));
  CHECK(wl_engine_retry_capacity(e, S(""), &level) == WL_STATUS_OK && level == 500);
  f.code = (wl_str){"AccessDenied", 12};
  f.http_status = 403;
  CHECK(wl_engine_retry_delay(e, 1, &f, 0, &d) == WL_STATUS_OK && !d.retry && d.refusal == WL_REFUSAL_NOT_RETRYABLE &&
        d.error_class == WL_ERROR_CLASS_FATAL);
  CHECK(wl_engine_classify(e, &f, &c) == WL_STATUS_OK && c == WL_ERROR_CLASS_FATAL);
  f.code = (wl_str){"ConcurrentModificationException", 31};
  CHECK(wl_engine_classify(e, &f, &c) == WL_STATUS_OK && c == WL_ERROR_CLASS_CONFLICT);
  f.code = (wl_str){"LimitExceeded", 13};
  f.http_status = 409;
  CHECK(wl_engine_classify(e, &f, &c) == WL_STATUS_OK && c == WL_ERROR_CLASS_FATAL);
  f.code = (wl_str){NULL, 0};
  f.http_status = 503;
  CHECK(wl_engine_classify(e, &f, &c) == WL_STATUS_OK && c == WL_ERROR_CLASS_TRANSIENT);
  f.outcome_unknown = true;
  CHECK(wl_engine_classify(e, &f, &c) == WL_STATUS_OK && c == WL_ERROR_CLASS_UNKNOWN);
  CHECK(fails_with(e, wl_engine_classify(e, NULL, &c), WL_STATUS_NULL_ARGUMENT, "failure"));
  CHECK(fails_with(e, wl_engine_classify(e, &f, NULL), WL_STATUS_NULL_ARGUMENT, "out_class"));
  CHECK(wl_engine_classify(NULL, &f, &c) == WL_STATUS_NULL_ARGUMENT);
  CHECK(wl_engine_retry_delay(NULL, 1, &f, 0, &d) == WL_STATUS_NULL_ARGUMENT);
  CHECK(fails_with(e, wl_engine_retry_delay(e, 1, NULL, 0, &d), WL_STATUS_NULL_ARGUMENT, "failure"));
  CHECK(fails_with(e, wl_engine_retry_delay(e, 1, &f, 0, NULL), WL_STATUS_NULL_ARGUMENT, "out_decision"));
  wl_engine_free(e);
}

#define SHARED "{\"lanes\": {\"mode\": \"shared\"}}"

/* Shared lanes: the owner, the holder, store replies as JSON text. */
static void shared_lanes(void) {
  wl_engine *e = (wl_engine *)&passed;
  wl_submit_options o;
  wl_input in;
  wl_command c;
  uint64_t op = 0;
  char holder[1100];
  CHECK(wl_engine_new_with_owner(S(SHARED), 1, NULL, 3, &e, &err) == WL_STATUS_NULL_ARGUMENT);
  CHECK(e == NULL && strcmp(err.path, "owner") == 0);
  CHECK(wl_engine_new_with_owner(S(SHARED), 1, "", 0, &e, &err) == WL_STATUS_USAGE_ERROR);
  CHECK(e == NULL && err.usage == WL_USAGE_INVALID_OWNER && strcmp(wl_usage_name(err.usage), "invalid_owner") == 0);
  CHECK(wl_engine_new_with_owner(S(SHARED), 1, S("\xff"), &e, &err) == WL_STATUS_INVALID_UTF8);
  CHECK(e == NULL && strcmp(err.path, "owner") == 0);
  CHECK(wl_engine_new_with_owner(S("{\"lease\": {\"lease_ms\": 1000, \"renew_ms\": 600}}"), 1, S("host-a"), &e, &err) ==
        WL_STATUS_INVALID_POLICY);
  CHECK(e == NULL && strcmp(err.path, "lease.lease_ms") == 0);
  /* Shared lanes without an owner: the submit is refused. */
  CHECK(wl_engine_new(S(SHARED), 1, &e, &err) == WL_STATUS_OK);
  CHECK(fails_with(e, wl_engine_submit(e, S("role/a"), 0, NULL, &op), WL_STATUS_USAGE_ERROR, NULL));
  CHECK(err.usage == WL_USAGE_INVALID_OWNER);
  wl_engine_free(e);

  CHECK(wl_engine_new_with_owner(S(SHARED), 1, S("host-a:1"), &e, &err) == WL_STATUS_OK);
  memset(&o, 0, sizeof o);
  memset(holder, 'h', sizeof holder);
  o.holder.ptr = holder;
  o.holder.len = sizeof holder;
  CHECK(fails_with(e, wl_engine_submit(e, S("role/a"), 0, &o, &op), WL_STATUS_USAGE_ERROR, NULL));
  CHECK(err.usage == WL_USAGE_INVALID_OWNER);
  o.holder.ptr = NULL;
  CHECK(fails_with(e, wl_engine_submit(e, S("role/a"), 0, &o, &op), WL_STATUS_INVALID_ARGUMENT, "options.holder"));
  o.holder.ptr = "\xff";
  o.holder.len = 1;
  CHECK(fails_with(e, wl_engine_submit(e, S("role/a"), 0, &o, &op), WL_STATUS_INVALID_UTF8, "options.holder"));
  o.holder.ptr = "ci run 7";
  o.holder.len = 8;
  CHECK(wl_engine_submit(e, S("role/a"), 0, &o, &op) == WL_STATUS_OK && op == 1);
  CHECK(wl_engine_poll_command(e, &c) == WL_STATUS_OK && c.kind == WL_COMMAND_KIND_STORE && c.op == 1);
  CHECK(c.operation.ptr && c.operation.ptr[c.operation.len] == 0 &&
        strcmp(c.operation.ptr, "{\"op\":\"get\",\"key\":\"role/a\"}") == 0);
  memset(&in, 0, sizeof in);
  in.kind = WL_INPUT_KIND_STORE_REPLY;
  in.op = 1;
  CHECK(fails_with(e, wl_engine_handle(e, 1, &in), WL_STATUS_NULL_ARGUMENT, "input.reply"));
  in.reply.ptr = "{\"reply\":\"maybe\"}";
  in.reply.len = strlen(in.reply.ptr);
  CHECK(fails_with(e, wl_engine_handle(e, 1, &in), WL_STATUS_INVALID_ARGUMENT, "input.reply"));
  CHECK(strstr(err.message, "maybe") != NULL);
  in.reply.ptr = "{\"reply\":\"found\",\"record\":{\"owner\":\"x\",\"epoch\":-1}}";
  in.reply.len = strlen(in.reply.ptr);
  CHECK(fails_with(e, wl_engine_handle(e, 1, &in), WL_STATUS_INVALID_ARGUMENT, "input.reply"));
  in.reply.ptr = "{\"reply\":\"found\",\"record\":null} trailing";
  in.reply.len = strlen(in.reply.ptr);
  CHECK(fails_with(e, wl_engine_handle(e, 1, &in), WL_STATUS_INVALID_ARGUMENT, "input.reply"));
  in.reply.ptr = "\"\xff\"";
  in.reply.len = 3;
  CHECK(fails_with(e, wl_engine_handle(e, 1, &in), WL_STATUS_INVALID_UTF8, "input.reply"));
  /* A reply to an op that has no store command pending is misuse; nothing changes. */
  in.reply.ptr = "{\"reply\":\"found\",\"record\":null}";
  in.reply.len = strlen(in.reply.ptr);
  in.op = 2;
  CHECK(fails_with(e, wl_engine_handle(e, 1, &in), WL_STATUS_USAGE_ERROR, NULL) && err.usage == WL_USAGE_UNKNOWN_OP);
  /* The refused replies changed nothing: a good one moves on to put_if_absent, with the
     holder in the record. */
  in.op = 1;
  CHECK(wl_engine_handle(e, 2, &in) == WL_STATUS_OK);
  CHECK(wl_engine_poll_command(e, &c) == WL_STATUS_OK && c.kind == WL_COMMAND_KIND_STORE);
  CHECK(c.operation.ptr && strstr(c.operation.ptr, "\"op\":\"put_if_absent\"") &&
        strstr(c.operation.ptr, "\"holder\":\"ci run 7\"") && strstr(c.operation.ptr, "\"owner\":\"host-a:1\""));
  in.reply.ptr = "{\"reply\":\"done\"}";
  in.reply.len = strlen(in.reply.ptr);
  CHECK(wl_engine_handle(e, 3, &in) == WL_STATUS_OK);
  CHECK(wl_engine_poll_command(e, &c) == WL_STATUS_OK && c.kind == WL_COMMAND_KIND_READ);
  memset(&in, 0, sizeof in);
  in.kind = WL_INPUT_KIND_READ_DONE;
  in.op = 1;
  CHECK(wl_engine_handle(e, 4, &in) == WL_STATUS_OK);
  CHECK(wl_engine_poll_command(e, &c) == WL_STATUS_OK && c.kind == WL_COMMAND_KIND_WRITE && c.has_fence && c.fence == 1);
  wl_engine_free(e);
  /* Without shared lanes a write carries no fence. */
  CHECK(wl_engine_new_with_owner(S("\"iam\""), 1, S("host-a:1"), &e, &err) == WL_STATUS_OK);
  CHECK(wl_engine_submit(e, S("role/a"), 0, NULL, &op) == WL_STATUS_OK);
  CHECK(wl_engine_poll_command(e, &c) == WL_STATUS_OK && c.kind == WL_COMMAND_KIND_READ);
  memset(&in, 0, sizeof in);
  in.kind = WL_INPUT_KIND_READ_DONE;
  in.op = op;
  CHECK(wl_engine_handle(e, 1, &in) == WL_STATUS_OK);
  CHECK(wl_engine_poll_command(e, &c) == WL_STATUS_OK && c.kind == WL_COMMAND_KIND_WRITE && !c.has_fence && c.fence == 0);
  CHECK(c.operation.ptr == NULL);
  wl_engine_free(e);
  CHECK(strcmp(wl_usage_name(WL_USAGE_INVALID_OWNER), "invalid_owner") == 0);
}

#define RECORD "{\"owner\":\"host-b:9:00000000000000ff\",\"epoch\":3,\"rvn\":77,\"lease_ms\":20000,\"committed_token\":\"v3\",\"holder\":\"ci job 9\"}"

/* The lease helpers without a handle: a store's record checked by the core, owner ids,
 * force-release plan and finish, and an engine for a store. NULL pointers, invalid UTF-8,
 * malformed records and replies, too-small buffers. */
static void lease_helpers(void) {
  char buf[512], small[8], op[512];
  size_t len = 99, oplen;
  bool swap = true, known = true;
  wl_engine *e = (wl_engine *)&passed;
  wl_submit_options o;
  wl_command c;
  uint64_t id = 0;

  /* wl_lease_record_check */
  CHECK(wl_lease_record_check(S(RECORD), buf, sizeof buf, &len, &err) == WL_STATUS_OK);
  CHECK(len == strlen(RECORD) && strcmp(buf, RECORD) == 0 && err.status == WL_STATUS_OK);
  /* Missing optional fields come back as null: the canonical six fields. */
  CHECK(wl_lease_record_check(S("{\"owner\":\"\",\"epoch\":1,\"rvn\":1,\"lease_ms\":5}"), buf, sizeof buf, &len, &err) ==
        WL_STATUS_OK);
  CHECK(strcmp(buf, "{\"owner\":\"\",\"epoch\":1,\"rvn\":1,\"lease_ms\":5,\"committed_token\":null,\"holder\":null}") == 0);
  CHECK(wl_lease_record_check(NULL, 3, buf, sizeof buf, &len, &err) == WL_STATUS_NULL_ARGUMENT);
  CHECK(strcmp(err.path, "record") == 0);
  CHECK(wl_lease_record_check(S(RECORD), buf, sizeof buf, NULL, &err) == WL_STATUS_NULL_ARGUMENT);
  CHECK(strcmp(err.path, "out_len") == 0);
  CHECK(wl_lease_record_check(S(RECORD), NULL, 16, &len, &err) == WL_STATUS_NULL_ARGUMENT);
  CHECK(strcmp(err.path, "buf") == 0);
  CHECK(wl_lease_record_check(S(RECORD), small, sizeof small, &len, &err) == WL_STATUS_BUFFER_TOO_SMALL);
  CHECK(len == strlen(RECORD) && small[0] == 0);
  CHECK(wl_lease_record_check(S(RECORD), NULL, 0, &len, NULL) == WL_STATUS_BUFFER_TOO_SMALL && len == strlen(RECORD));
  /* Malformed records: the field and the rule. Bytes that are not UTF-8 are a bad record. */
  CHECK(wl_lease_record_check(S("{\"owner\":\"\xff\",\"epoch\":1,\"rvn\":1,\"lease_ms\":5}"), buf, sizeof buf, &len, &err) ==
        WL_STATUS_INVALID_RECORD);
  CHECK(strcmp(err.path, "$") == 0 && strstr(err.message, "UTF-8"));
  CHECK(wl_lease_record_check(S("{\"owner\":\"\",\"epoch\":0,\"rvn\":1,\"lease_ms\":5}"), buf, sizeof buf, &len, &err) ==
        WL_STATUS_INVALID_RECORD);
  CHECK(err.status == WL_STATUS_INVALID_RECORD && strcmp(err.path, "epoch") == 0 && strstr(err.message, "at least 1"));
  CHECK(wl_lease_record_check(S("{\"owner\":\"\",\"epoch\":1,\"rvn\":9007199254740992,\"lease_ms\":5}"), buf, sizeof buf,
                              &len, &err) == WL_STATUS_INVALID_RECORD);
  CHECK(strcmp(err.path, "rvn") == 0);
  CHECK(wl_lease_record_check(S("{\"owner\":\"\",\"epoch\":1,\"rvn\":1,\"lease_ms\":0}"), buf, sizeof buf, &len, &err) ==
        WL_STATUS_INVALID_RECORD);
  CHECK(strcmp(err.path, "lease_ms") == 0);
  CHECK(wl_lease_record_check(S("{\"owner\":\"\",\"epoch\":-1,\"rvn\":1,\"lease_ms\":5}"), buf, sizeof buf, &len, &err) ==
        WL_STATUS_INVALID_RECORD);
  CHECK(strcmp(err.path, "$") == 0 && strstr(err.message, "does not parse"));
  CHECK(wl_lease_record_check(S("{\"owner\":\"\""), buf, sizeof buf, &len, &err) == WL_STATUS_INVALID_RECORD);
  CHECK(wl_lease_record_check(S("null"), buf, sizeof buf, &len, &err) == WL_STATUS_INVALID_RECORD);
  CHECK(wl_lease_record_check("", 0, buf, sizeof buf, &len, &err) == WL_STATUS_INVALID_RECORD);
  CHECK(wl_lease_record_check(S("{\"owner\":\"\",\"epoch\":0,\"rvn\":1,\"lease_ms\":5}"), buf, sizeof buf, &len, NULL) ==
        WL_STATUS_INVALID_RECORD);

  /* wl_owner_id */
  CHECK(wl_owner_id(S("ci-runner-7"), 4242, 0xc0ffee, buf, sizeof buf, &len, &err) == WL_STATUS_OK);
  CHECK(strcmp(buf, "ci-runner-7:4242:0000000000c0ffee") == 0 && len == strlen(buf));
  CHECK(wl_owner_id(S("a:b c"), 1, 0, buf, sizeof buf, &len, &err) == WL_STATUS_OK && strcmp(buf, "a_b_c:1:0000000000000000") == 0);
  CHECK(wl_owner_id(NULL, 3, 1, 0, buf, sizeof buf, &len, &err) == WL_STATUS_NULL_ARGUMENT && strcmp(err.path, "host") == 0);
  CHECK(wl_owner_id(S("\xc3\x28"), 1, 0, buf, sizeof buf, &len, &err) == WL_STATUS_INVALID_UTF8 && strcmp(err.path, "host") == 0);
  CHECK(wl_owner_id(S("h"), 1, 0, buf, sizeof buf, NULL, &err) == WL_STATUS_NULL_ARGUMENT && strcmp(err.path, "out_len") == 0);
  CHECK(wl_owner_id(S("h"), 1, 0, small, sizeof small, &len, &err) == WL_STATUS_BUFFER_TOO_SMALL && len == 20);

  /* wl_force_release_plan: a held record gives a compare-and-swap to carry out. */
  CHECK(wl_force_release_plan(S("role/a"), S(RECORD), false, 0, 42, &swap, op, sizeof op, &oplen, &err) == WL_STATUS_OK);
  CHECK(swap && oplen == strlen(op) && strstr(op, "\"op\":\"compare_and_swap\"") && strstr(op, "\"expected_rvn\":77") &&
        strstr(op, "\"epoch\":4") && strstr(op, "\"owner\":\"\"") && strstr(op, "\"holder\":null"));
  CHECK(wl_force_release_plan(S("role/a"), NULL, 0, false, 0, 42, &swap, buf, sizeof buf, &len, &err) == WL_STATUS_OK);
  CHECK(!swap && strcmp(buf, "{\"result\":\"no_record\"}") == 0);
  CHECK(wl_force_release_plan(S("role/a"), S(RECORD), true, 76, 42, &swap, buf, sizeof buf, &len, &err) == WL_STATUS_OK);
  CHECK(!swap && strncmp(buf, "{\"result\":\"changed\",\"current\":{", 31) == 0);
  CHECK(wl_force_release_plan(NULL, 3, S(RECORD), false, 0, 42, &swap, buf, sizeof buf, &len, &err) == WL_STATUS_NULL_ARGUMENT);
  CHECK(strcmp(err.path, "key") == 0);
  CHECK(wl_force_release_plan("", 0, S(RECORD), false, 0, 42, &swap, buf, sizeof buf, &len, &err) == WL_STATUS_INVALID_ARGUMENT);
  CHECK(strcmp(err.path, "key") == 0);
  CHECK(wl_force_release_plan(S("role/\xff"), S(RECORD), false, 0, 42, &swap, buf, sizeof buf, &len, &err) ==
        WL_STATUS_INVALID_UTF8);
  CHECK(wl_force_release_plan(S("role/a"), NULL, 5, false, 0, 42, &swap, buf, sizeof buf, &len, &err) ==
        WL_STATUS_INVALID_ARGUMENT);
  CHECK(strcmp(err.path, "found") == 0);
  CHECK(wl_force_release_plan(S("role/a"), S("{\"owner\":\"x\",\"epoch\":0,\"rvn\":1,\"lease_ms\":5}"), false, 0, 42, &swap, buf,
                              sizeof buf, &len, &err) == WL_STATUS_INVALID_RECORD);
  CHECK(strcmp(err.path, "found.epoch") == 0 && strstr(err.message, "found"));
  CHECK(wl_force_release_plan(S("role/a"), S("[]"), false, 0, 42, &swap, buf, sizeof buf, &len, &err) ==
        WL_STATUS_INVALID_RECORD);
  CHECK(strcmp(err.path, "found") == 0);
  CHECK(wl_force_release_plan(S("role/a"), S(RECORD), false, 0, 42, NULL, buf, sizeof buf, &len, &err) ==
        WL_STATUS_NULL_ARGUMENT);
  CHECK(strcmp(err.path, "out_swap") == 0);
  CHECK(wl_force_release_plan(S("role/a"), S(RECORD), false, 0, 42, &swap, small, sizeof small, &len, &err) ==
        WL_STATUS_BUFFER_TOO_SMALL);
  CHECK(swap && len == oplen);

  /* wl_force_release_finish */
  CHECK(wl_force_release_finish(op, oplen, S("{\"reply\":\"done\"}"), &known, buf, sizeof buf, &len, &err) == WL_STATUS_OK);
  CHECK(known && strncmp(buf, "{\"result\":\"released\",\"record\":{\"owner\":\"\",\"epoch\":4,", 50) == 0);
  CHECK(wl_force_release_finish(op, oplen, S("{\"reply\":\"lost\"}"), &known, buf, sizeof buf, &len, &err) == WL_STATUS_OK);
  CHECK(!known && len == 0 && buf[0] == 0);
  CHECK(wl_force_release_finish(op, oplen, S("{\"reply\":\"unavailable\"}"), &known, buf, sizeof buf, &len, &err) ==
        WL_STATUS_OK && !known);
  CHECK(wl_force_release_finish(op, oplen, S("{\"reply\":\"refused\",\"current\":" RECORD "}"), &known, buf, sizeof buf, &len,
                                &err) == WL_STATUS_OK);
  CHECK(known && strncmp(buf, "{\"result\":\"changed\",\"current\":{\"owner\":\"host-b", 45) == 0);
  CHECK(wl_force_release_finish(NULL, 2, S("{\"reply\":\"done\"}"), &known, buf, sizeof buf, &len, &err) ==
        WL_STATUS_NULL_ARGUMENT);
  CHECK(strcmp(err.path, "operation") == 0);
  CHECK(wl_force_release_finish(op, oplen, NULL, 2, &known, buf, sizeof buf, &len, &err) == WL_STATUS_NULL_ARGUMENT);
  CHECK(strcmp(err.path, "reply") == 0);
  CHECK(wl_force_release_finish(op, oplen, S("{\"reply\":\"done\"}"), NULL, buf, sizeof buf, &len, &err) ==
        WL_STATUS_NULL_ARGUMENT);
  CHECK(strcmp(err.path, "out_known") == 0);
  CHECK(wl_force_release_finish(S("{\"op\":\"get\",\"key\":\"role/a\"}"), S("{\"reply\":\"done\"}"), &known, buf, sizeof buf, &len,
                                &err) == WL_STATUS_INVALID_ARGUMENT);
  CHECK(strcmp(err.path, "operation") == 0 && strstr(err.message, "compare_and_swap"));
  CHECK(wl_force_release_finish(S("not json"), S("{\"reply\":\"done\"}"), &known, buf, sizeof buf, &len, &err) ==
        WL_STATUS_INVALID_ARGUMENT);
  CHECK(strcmp(err.path, "operation") == 0);
  CHECK(wl_force_release_finish(op, oplen, S("{\"reply\":\"maybe\"}"), &known, buf, sizeof buf, &len, &err) ==
        WL_STATUS_INVALID_ARGUMENT);
  CHECK(strcmp(err.path, "reply") == 0 && strstr(err.message, "maybe"));
  CHECK(wl_force_release_finish(op, oplen, S("\"\xff\""), &known, buf, sizeof buf, &len, &err) == WL_STATUS_INVALID_UTF8);
  CHECK(strcmp(err.path, "reply") == 0);
  CHECK(wl_force_release_finish(op, oplen, S("{\"reply\":\"done\"}"), &known, small, sizeof small, &len, &err) ==
        WL_STATUS_BUFFER_TOO_SMALL);
  CHECK(known && len > sizeof small);

  /* wl_engine_new_for_store: aws-standard (lanes none) with a store is shared. */
  CHECK(wl_engine_new_for_store(S("\"aws-standard\""), 1, NULL, 3, &e, &err) == WL_STATUS_NULL_ARGUMENT);
  CHECK(e == NULL && strcmp(err.path, "owner") == 0);
  CHECK(wl_engine_new_for_store(S("\"aws-standard\""), 1, "", 0, &e, &err) == WL_STATUS_USAGE_ERROR);
  CHECK(e == NULL && err.usage == WL_USAGE_INVALID_OWNER);
  CHECK(wl_engine_new_for_store(NULL, 3, 1, S("host-a"), &e, &err) == WL_STATUS_NULL_ARGUMENT && e == NULL);
  CHECK(wl_engine_new_for_store(S("{\"lanes\": {\"mode\": \"sideways\"}}"), 1, S("host-a"), &e, &err) ==
        WL_STATUS_INVALID_POLICY);
  CHECK(e == NULL && strcmp(err.path, "lanes.mode") == 0);
  CHECK(wl_engine_new_for_store(S("\"aws-standard\""), 1, S("host-a"), &e, &err) == WL_STATUS_OK);
  CHECK(wl_engine_policy_json(e, NULL, 0, &len) == WL_STATUS_BUFFER_TOO_SMALL);
  {
    char *policy = malloc(len + 1);
    CHECK(policy && wl_engine_policy_json(e, policy, len + 1, &len) == WL_STATUS_OK);
    CHECK(policy && strstr(policy, "\"mode\": \"shared\"") != NULL);
    free(policy);
  }
  CHECK(wl_engine_submit(e, S("role/a"), 0, NULL, &id) == WL_STATUS_OK);
  CHECK(wl_engine_poll_command(e, &c) == WL_STATUS_OK && c.kind == WL_COMMAND_KIND_STORE);
  wl_engine_free(e);

  /* wl_engine_poll_timeouts_for: many operations' timers in one call. */
  {
    uint64_t ops[3], at[3] = {0, 0, 0};
    bool has;
    uint64_t one;
    CHECK(wl_engine_new(S("{\"deadline_ms\": 5000}"), 1, &e, &err) == WL_STATUS_OK);
    CHECK(wl_engine_submit(e, S("role/a"), 10, NULL, &ops[0]) == WL_STATUS_OK);
    CHECK(wl_engine_submit(e, S("role/a"), 20, NULL, &ops[1]) == WL_STATUS_OK); /* queued: its deadline */
    ops[2] = 999;                                                               /* unknown */
    CHECK(wl_engine_poll_timeouts_for(e, ops, 3, at) == WL_STATUS_OK);
    CHECK(wl_engine_poll_timeout_for(e, ops[1], &has, &one) == WL_STATUS_OK && has && at[1] == one && one == 5020);
    CHECK(at[2] == UINT64_MAX);
    CHECK(wl_engine_poll_command(e, &c) == WL_STATUS_OK && c.kind == WL_COMMAND_KIND_READ); /* op 1: no timer now */
    CHECK(wl_engine_poll_timeouts_for(e, ops, 1, at) == WL_STATUS_OK && at[0] == UINT64_MAX);
    CHECK(wl_engine_poll_timeouts_for(e, NULL, 0, NULL) == WL_STATUS_OK);
    CHECK(fails_with(e, wl_engine_poll_timeouts_for(e, NULL, 2, at), WL_STATUS_NULL_ARGUMENT, "ops"));
    CHECK(fails_with(e, wl_engine_poll_timeouts_for(e, ops, 2, NULL), WL_STATUS_NULL_ARGUMENT, "out_at_ms"));
    CHECK(fails_with(e, wl_engine_poll_timeouts_for(e, ops, SIZE_MAX, at), WL_STATUS_INVALID_ARGUMENT, "n"));
    CHECK(wl_engine_poll_timeouts_for(NULL, ops, 1, at) == WL_STATUS_NULL_ARGUMENT);
    wl_engine_free(e);
  }

  /* no_read: never a read; with an expected token the submit is refused. */
  CHECK(wl_engine_new(S("\"iam\""), 1, &e, &err) == WL_STATUS_OK);
  memset(&o, 0, sizeof o);
  o.no_read = true;
  o.expected = (wl_str){"v1", 2};
  CHECK(fails_with(e, wl_engine_submit(e, S("role/a"), 0, &o, &id), WL_STATUS_USAGE_ERROR, NULL));
  CHECK(err.usage == WL_USAGE_EXPECTED_NEEDS_READ && strcmp(wl_usage_name(err.usage), "expected_needs_read") == 0);
  o.expected = (wl_str){NULL, 0};
  CHECK(wl_engine_submit(e, S("role/a"), 0, &o, &id) == WL_STATUS_OK);
  CHECK(wl_engine_poll_command(e, &c) == WL_STATUS_OK && c.kind == WL_COMMAND_KIND_WRITE && c.base_token.ptr == NULL);
  wl_engine_free(e);
}

int main(void) {
  wl_engine *e = NULL;
  names_and_versions();
  constructor_and_free();
  null_handle();
  if (wl_engine_new(S("\"iam\""), 7, &e, NULL) != WL_STATUS_OK) return 1;
  null_arguments(e);
  strings_and_values(e);
  buffers(e);
  wl_engine_free(e);
  delays_and_classes();
  shared_lanes();
  lease_helpers();
  two_threads();
  printf("bad_input: %d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
