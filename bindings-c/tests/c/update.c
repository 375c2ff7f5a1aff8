/* Group commit through the C API: updates submitted with wl_engine_submit_update and
 * drained with wl_engine_poll_action / _for (WL_COMMAND_KIND_APPLY answered with
 * WL_INPUT_KIND_APPLY_DONE), a refused change, misuse of the apply step, NULL for every
 * pointer argument of the new functions, and the IAM document helpers with bad JSON and
 * wrong shapes. Prints "N passed, M failed"; exits non-zero on failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "writelane.h"

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

/* The status, and the handle's last error has this status, usage and path. */
static int fails_with(wl_engine *e, wl_status got, wl_status want, wl_usage usage, const char *path) {
  if (got != want) {
    fprintf(stderr, "  got %s, want %s\n", wl_status_name(got), wl_status_name(want));
    return 0;
  }
  if (wl_engine_last_error(e, &err) != WL_STATUS_OK || err.status != want) return 0;
  if (err.usage != usage) {
    fprintf(stderr, "  usage %s, want %s (%s)\n", wl_usage_name(err.usage), wl_usage_name(usage), err.message);
    return 0;
  }
  if (path && strcmp(err.path, path) != 0) {
    fprintf(stderr, "  path %s, want %s (%s)\n", err.path, path, err.message);
    return 0;
  }
  return 1;
}

static wl_input input(uint32_t kind, uint64_t op) {
  wl_input in;
  memset(&in, 0, sizeof in);
  in.kind = kind;
  in.op = op;
  return in;
}

static wl_input apply_done(uint64_t op, const char *results) {
  wl_input in = input(WL_INPUT_KIND_APPLY_DONE, op);
  in.reply.ptr = results;
  in.reply.len = strlen(results);
  return in;
}

/* Three updates queued while the first reads ride in one write, one of them refused. */
static void batch_of_three(void) {
  wl_engine *e = NULL;
  CHECK(wl_engine_new(S("\"iam\""), 1, &e, NULL) == WL_STATUS_OK);
  uint64_t a = 0, b = 0, c = 0;
  CHECK(wl_engine_submit_update(e, S("role/app"), 0, NULL, &a) == WL_STATUS_OK);
  wl_command cmd;
  CHECK(wl_engine_poll_action(e, &cmd) == WL_STATUS_OK);
  CHECK(cmd.kind == WL_COMMAND_KIND_READ && cmd.op == a);
  wl_submit_options opts;
  memset(&opts, 0, sizeof opts);
  opts.has_deadline = true;
  opts.deadline_ms = 60000;
  opts.holder.ptr = "worker 2";
  opts.holder.len = 8;
  CHECK(wl_engine_submit_update(e, S("role/app"), 1, &opts, &b) == WL_STATUS_OK);
  CHECK(wl_engine_submit_update(e, S("role/app"), 2, NULL, &c) == WL_STATUS_OK);
  CHECK(a != b && b != c);
  /* The members wait: nothing for them yet. */
  CHECK(wl_engine_poll_action_for(e, b, &cmd) == WL_STATUS_OK && cmd.kind == WL_COMMAND_KIND_NONE);
  wl_input in = input(WL_INPUT_KIND_READ_DONE, a);
  in.token.ptr = "v0";
  in.token.len = 2;
  /* Answering the apply before it is polled is misuse. */
  CHECK(wl_engine_handle(e, 3, &in) == WL_STATUS_OK);
  char early[96];
  snprintf(early, sizeof early, "[{\"op\":%llu,\"applied\":true}]", (unsigned long long)a);
  wl_input bad = apply_done(a, early);
  CHECK(fails_with(e, wl_engine_handle(e, 3, &bad), WL_STATUS_USAGE_ERROR, WL_USAGE_COMMAND_NOT_DRAINED, NULL));
  /* poll_command never hands out an apply step. */
  CHECK(wl_engine_poll_command_for(e, a, &cmd) == WL_STATUS_OK && cmd.kind == WL_COMMAND_KIND_NONE);
  CHECK(wl_engine_poll_action_for(e, a, &cmd) == WL_STATUS_OK);
  CHECK(cmd.kind == WL_COMMAND_KIND_APPLY && cmd.op == a);
  char want[128];
  snprintf(want, sizeof want, "{\"type\":\"apply\",\"op\":%llu,\"ops\":[%llu,%llu,%llu]}", (unsigned long long)a,
           (unsigned long long)a, (unsigned long long)b, (unsigned long long)c);
  CHECK(cmd.operation.ptr != NULL && cmd.operation.len == strlen(want));
  CHECK(cmd.operation.ptr && strcmp(cmd.operation.ptr, want) == 0); /* NUL-terminated */
  /* Wrong answers change nothing: results not in the apply's order, too few, bad JSON. */
  char wrong[256];
  snprintf(wrong, sizeof wrong,
           "[{\"op\":%llu,\"applied\":true},{\"op\":%llu,\"applied\":true},{\"op\":%llu,\"applied\":true}]",
           (unsigned long long)b, (unsigned long long)a, (unsigned long long)c);
  bad = apply_done(a, wrong);
  CHECK(fails_with(e, wl_engine_handle(e, 4, &bad), WL_STATUS_USAGE_ERROR, WL_USAGE_UNEXPECTED_INPUT, NULL));
  bad = apply_done(a, early);
  CHECK(fails_with(e, wl_engine_handle(e, 4, &bad), WL_STATUS_USAGE_ERROR, WL_USAGE_UNEXPECTED_INPUT, NULL));
  bad = apply_done(a, "[{\"op\":1,\"applied\":tru");
  CHECK(fails_with(e, wl_engine_handle(e, 4, &bad), WL_STATUS_INVALID_ARGUMENT, WL_USAGE_NONE, "input.reply"));
  CHECK(strstr(err.message, "apply results") != NULL);
  bad = apply_done(a, "{\"op\":1}");
  CHECK(fails_with(e, wl_engine_handle(e, 4, &bad), WL_STATUS_INVALID_ARGUMENT, WL_USAGE_NONE, "input.reply"));
  bad = apply_done(a, "[{\"op\":1,\"applied\":true,\"extra\":1}]");
  CHECK(fails_with(e, wl_engine_handle(e, 4, &bad), WL_STATUS_INVALID_ARGUMENT, WL_USAGE_NONE, "input.reply"));
  bad = input(WL_INPUT_KIND_APPLY_DONE, a); /* no reply at all */
  CHECK(fails_with(e, wl_engine_handle(e, 4, &bad), WL_STATUS_NULL_ARGUMENT, WL_USAGE_NONE, "input.reply"));
  bad = apply_done(a, "[{\"op\":1,\"applied\":\xff}]");
  CHECK(fails_with(e, wl_engine_handle(e, 4, &bad), WL_STATUS_INVALID_UTF8, WL_USAGE_NONE, "input.reply"));
  /* A code over 256 bytes. */
  char *longcode = malloc(1024);
  int n = snprintf(longcode, 1024, "[{\"op\":%llu,\"applied\":true},{\"op\":%llu,\"applied\":false,\"code\":\"",
                   (unsigned long long)a, (unsigned long long)b);
  for (int i = 0; i < 300; i++) longcode[n++] = 'X';
  snprintf(longcode + n, 1024 - (size_t)n, "\"},{\"op\":%llu,\"applied\":true}]", (unsigned long long)c);
  bad = apply_done(a, longcode);
  CHECK(fails_with(e, wl_engine_handle(e, 4, &bad), WL_STATUS_USAGE_ERROR, WL_USAGE_INVALID_CODE, NULL));
  free(longcode);
  /* The right answer: b's change refused. */
  char right[256];
  snprintf(right, sizeof right,
           "[{\"op\":%llu,\"applied\":true},{\"op\":%llu,\"applied\":false,\"code\":\"ValueError\"},"
           "{\"op\":%llu,\"applied\":true}]",
           (unsigned long long)a, (unsigned long long)b, (unsigned long long)c);
  in = apply_done(a, right);
  CHECK(wl_engine_handle(e, 4, &in) == WL_STATUS_OK);
  int finished = 0, wrote = 0;
  for (int guard = 0; guard < 20; guard++) {
    CHECK(wl_engine_poll_action(e, &cmd) == WL_STATUS_OK);
    if (cmd.kind == WL_COMMAND_KIND_NONE) break;
    if (cmd.kind == WL_COMMAND_KIND_WRITE) {
      CHECK(cmd.op == a && cmd.attempt == 1 && cmd.base_token.len == 2);
      wrote++;
      in = input(WL_INPUT_KIND_WRITE_DONE, a);
      in.token.ptr = "v1";
      in.token.len = 2;
      CHECK(wl_engine_handle(e, 5, &in) == WL_STATUS_OK);
    } else if (cmd.kind == WL_COMMAND_KIND_FINISH) {
      finished++;
      if (cmd.op == b) {
        CHECK(cmd.outcome == WL_OUTCOME_GAVE_UP && cmd.reason == WL_GIVE_UP_REASON_FATAL);
        CHECK(cmd.code.len == 10 && memcmp(cmd.code.ptr, "ValueError", 10) == 0);
      } else {
        CHECK(cmd.op == a || cmd.op == c);
        CHECK(cmd.outcome == WL_OUTCOME_COMMITTED && cmd.token.len == 2 && memcmp(cmd.token.ptr, "v1", 2) == 0);
      }
    } else {
      CHECK(!"an unexpected command");
    }
  }
  CHECK(wrote == 1 && finished == 3);
  wl_stats st;
  CHECK(wl_engine_stats(e, &st) == WL_STATUS_OK);
  CHECK(st.global.writes == 1 && st.global.reads == 1 && st.global.committed == 2 && st.global.gave_up == 1);
  CHECK(st.active_ops == 0);
  wl_engine_free(e);
}

/* NULL for every pointer argument of the new functions, bad options, unknown kinds. */
static void bad_arguments(void) {
  wl_engine *e = NULL;
  CHECK(wl_engine_new(S("\"iam\""), 1, &e, NULL) == WL_STATUS_OK);
  uint64_t op = 0;
  wl_command cmd;
  CHECK(wl_engine_submit_update(NULL, S("role/a"), 0, NULL, &op) == WL_STATUS_NULL_ARGUMENT);
  CHECK(wl_engine_poll_action(NULL, &cmd) == WL_STATUS_NULL_ARGUMENT);
  CHECK(wl_engine_poll_action_for(NULL, 1, &cmd) == WL_STATUS_NULL_ARGUMENT);
  CHECK(fails_with(e, wl_engine_submit_update(e, NULL, 3, 0, NULL, &op), WL_STATUS_NULL_ARGUMENT, WL_USAGE_NONE,
                   "entity"));
  CHECK(fails_with(e, wl_engine_submit_update(e, S("role/a"), 0, NULL, NULL), WL_STATUS_NULL_ARGUMENT,
                   WL_USAGE_NONE, "out_op"));
  CHECK(fails_with(e, wl_engine_submit_update(e, S("\xff"), 0, NULL, &op), WL_STATUS_INVALID_UTF8, WL_USAGE_NONE,
                   "entity"));
  CHECK(fails_with(e, wl_engine_submit_update(e, "", 0, 0, NULL, &op), WL_STATUS_USAGE_ERROR,
                   WL_USAGE_INVALID_ENTITY, NULL));
  wl_submit_options opts;
  memset(&opts, 0, sizeof opts);
  opts.expected.ptr = "v1";
  opts.expected.len = 2;
  CHECK(fails_with(e, wl_engine_submit_update(e, S("role/a"), 0, &opts, &op), WL_STATUS_INVALID_ARGUMENT,
                   WL_USAGE_NONE, "options.expected"));
  memset(&opts, 0, sizeof opts);
  opts.no_read = true;
  CHECK(fails_with(e, wl_engine_submit_update(e, S("role/a"), 0, &opts, &op), WL_STATUS_INVALID_ARGUMENT,
                   WL_USAGE_NONE, "options.no_read"));
  memset(&opts, 0, sizeof opts);
  opts.holder.len = 4; /* NULL with a length */
  CHECK(fails_with(e, wl_engine_submit_update(e, S("role/a"), 0, &opts, &op), WL_STATUS_INVALID_ARGUMENT,
                   WL_USAGE_NONE, "options.holder"));
  CHECK(fails_with(e, wl_engine_poll_action(e, NULL), WL_STATUS_NULL_ARGUMENT, WL_USAGE_NONE, "out_command"));
  CHECK(fails_with(e, wl_engine_poll_action_for(e, 1, NULL), WL_STATUS_NULL_ARGUMENT, WL_USAGE_NONE,
                   "out_command"));
  CHECK(wl_engine_poll_action_for(e, 999, &cmd) == WL_STATUS_OK && cmd.kind == WL_COMMAND_KIND_NONE);
  wl_input in = apply_done(999, "[]");
  CHECK(fails_with(e, wl_engine_handle(e, 0, &in), WL_STATUS_USAGE_ERROR, WL_USAGE_UNKNOWN_OP, NULL));
  in.kind = 8;
  CHECK(fails_with(e, wl_engine_handle(e, 0, &in), WL_STATUS_INVALID_ARGUMENT, WL_USAGE_NONE, "input.kind"));
  /* An opaque write answered with apply_done. */
  CHECK(wl_engine_submit(e, S("role/b"), 0, NULL, &op) == WL_STATUS_OK);
  CHECK(wl_engine_poll_action(e, &cmd) == WL_STATUS_OK && cmd.kind == WL_COMMAND_KIND_READ);
  in = apply_done(op, "[]");
  CHECK(fails_with(e, wl_engine_handle(e, 0, &in), WL_STATUS_USAGE_ERROR, WL_USAGE_UNEXPECTED_INPUT, NULL));
  wl_engine_free(e);
}

/* Run one helper into a fresh buffer; returns its status. */
static char out[4096];
static size_t out_len;

static void iam_helpers(void) {
  wl_error e;
  const char *stmt = "{\"Sid\":\"A\",\"Effect\":\"Allow\",\"Action\":\"s3:GetObject\",\"Resource\":\"*\"}";
  CHECK(wl_iam_put_statement(S("null"), stmt, strlen(stmt), out, sizeof out, &out_len, &e) == WL_STATUS_OK);
  CHECK(out_len == strlen(out));
  CHECK(strcmp(out, "{\"Statement\":[{\"Action\":\"s3:GetObject\",\"Effect\":\"Allow\",\"Resource\":\"*\",\"Sid\":\"A\"}],"
                    "\"Version\":\"2012-10-17\"}") == 0);
  /* Idempotent: again on its own result changes nothing. */
  char once[4096];
  memcpy(once, out, out_len + 1);
  CHECK(wl_iam_put_statement(once, strlen(once), stmt, strlen(stmt), out, sizeof out, &out_len, &e) == WL_STATUS_OK);
  CHECK(strcmp(out, once) == 0);
  CHECK(wl_iam_put_statement(once, strlen(once), S("{\"Sid\":\"B\",\"Effect\":\"Deny\"}"), out, sizeof out, &out_len,
                             &e) == WL_STATUS_OK);
  CHECK(strstr(out, "\"Sid\":\"A\"") && strstr(out, "\"Sid\":\"B\""));
  memcpy(once, out, out_len + 1);
  CHECK(wl_iam_remove_statement(once, strlen(once), S("A"), out, sizeof out, &out_len, &e) == WL_STATUS_OK);
  CHECK(!strstr(out, "\"Sid\":\"A\"") && strstr(out, "\"Sid\":\"B\""));
  /* Bad JSON and wrong shapes: typed status, the argument or field named. */
  CHECK(wl_iam_put_statement(S("{\"Statement\":"), stmt, strlen(stmt), out, sizeof out, &out_len, &e) ==
        WL_STATUS_INVALID_DOCUMENT);
  CHECK(strcmp(e.path, "document") == 0 && strstr(e.message, "not JSON"));
  CHECK(wl_iam_put_statement(S("null"), S("{\"Sid\":"), out, sizeof out, &out_len, &e) == WL_STATUS_INVALID_DOCUMENT);
  CHECK(strcmp(e.path, "statement") == 0);
  CHECK(wl_iam_put_statement(S("null"), S("{\"Effect\":\"Allow\"}"), out, sizeof out, &out_len, &e) ==
        WL_STATUS_INVALID_DOCUMENT);
  CHECK(strcmp(e.path, "statement.Sid") == 0);
  CHECK(wl_iam_put_statement(S("{\"Statement\":[1]}"), stmt, strlen(stmt), out, sizeof out, &out_len, &e) ==
        WL_STATUS_INVALID_DOCUMENT);
  CHECK(strcmp(e.path, "Statement[0]") == 0);
  CHECK(wl_iam_put_statement(S("[]"), stmt, strlen(stmt), out, sizeof out, &out_len, &e) == WL_STATUS_INVALID_DOCUMENT);
  CHECK(strcmp(e.path, "$") == 0);
  /* Buffers: too small reports the length; NULL with cap 0 asks for it. */
  CHECK(wl_iam_put_statement(S("null"), stmt, strlen(stmt), out, 8, &out_len, &e) == WL_STATUS_BUFFER_TOO_SMALL);
  size_t need = out_len;
  CHECK(need > 8 && out[0] == 0);
  CHECK(wl_iam_put_statement(S("null"), stmt, strlen(stmt), NULL, 0, &out_len, &e) == WL_STATUS_BUFFER_TOO_SMALL);
  CHECK(out_len == need);
  /* NULL pointers. */
  CHECK(wl_iam_put_statement(NULL, 4, stmt, strlen(stmt), out, sizeof out, &out_len, &e) == WL_STATUS_NULL_ARGUMENT);
  CHECK(strcmp(e.path, "document") == 0);
  CHECK(wl_iam_put_statement(S("null"), NULL, 1, out, sizeof out, &out_len, &e) == WL_STATUS_NULL_ARGUMENT);
  CHECK(strcmp(e.path, "statement") == 0);
  CHECK(wl_iam_put_statement(S("null"), stmt, strlen(stmt), out, sizeof out, NULL, &e) == WL_STATUS_NULL_ARGUMENT);
  CHECK(strcmp(e.path, "out_len") == 0);
  CHECK(wl_iam_put_statement(S("null"), stmt, strlen(stmt), NULL, 10, &out_len, NULL) == WL_STATUS_NULL_ARGUMENT);
  CHECK(wl_iam_remove_statement(S("{}"), NULL, 1, out, sizeof out, &out_len, &e) == WL_STATUS_NULL_ARGUMENT);
  CHECK(strcmp(e.path, "sid") == 0);
  CHECK(wl_iam_remove_statement(S("\"x\""), S("A"), out, sizeof out, &out_len, &e) == WL_STATUS_INVALID_DOCUMENT);
  CHECK(strcmp(e.path, "$") == 0);

  /* Trust principals. */
  CHECK(wl_iam_add_trust_principal(S("null"), S("Trust"), S("Service"), S("lambda.amazonaws.com"), out, sizeof out,
                                   &out_len, &e) == WL_STATUS_OK);
  CHECK(strstr(out, "\"Principal\":{\"Service\":\"lambda.amazonaws.com\"}") && strstr(out, "sts:AssumeRole"));
  memcpy(once, out, out_len + 1);
  CHECK(wl_iam_add_trust_principal(once, strlen(once), S("Trust"), S("Service"), S("ec2.amazonaws.com"), out,
                                   sizeof out, &out_len, &e) == WL_STATUS_OK);
  CHECK(strstr(out, "[\"lambda.amazonaws.com\",\"ec2.amazonaws.com\"]") != NULL);
  CHECK(wl_iam_add_trust_principal(S("null"), S("Trust"), S("Root"), S("x"), out, sizeof out, &out_len, &e) ==
        WL_STATUS_INVALID_DOCUMENT);
  CHECK(strcmp(e.path, "kind") == 0);
  CHECK(wl_iam_add_trust_principal(S("null"), S("Trust"), S("AWS"), S(""), out, sizeof out, &out_len, &e) ==
        WL_STATUS_INVALID_DOCUMENT);
  CHECK(strcmp(e.path, "principal") == 0);
  CHECK(wl_iam_add_trust_principal(S("null"), S("Trust"), NULL, 3, S("x"), out, sizeof out, &out_len, &e) ==
        WL_STATUS_NULL_ARGUMENT);
  CHECK(strcmp(e.path, "kind") == 0);
  CHECK(wl_iam_add_trust_principal(S("nul"), S("Trust"), S("AWS"), S("x"), out, sizeof out, &out_len, &e) ==
        WL_STATUS_INVALID_DOCUMENT);
  CHECK(strcmp(e.path, "document") == 0);

  /* Tags. */
  CHECK(wl_iam_set_tags(S("null"), S("[{\"Key\":\"team\",\"Value\":\"a\"},{\"Key\":\"env\",\"Value\":\"prod\"}]"), out,
                        sizeof out, &out_len, &e) == WL_STATUS_OK);
  CHECK(strcmp(out, "[{\"Key\":\"team\",\"Value\":\"a\"},{\"Key\":\"env\",\"Value\":\"prod\"}]") == 0);
  memcpy(once, out, out_len + 1);
  CHECK(wl_iam_set_tags(once, strlen(once), S("[{\"Key\":\"team\",\"Value\":\"b\"}]"), out, sizeof out, &out_len,
                        &e) == WL_STATUS_OK);
  CHECK(strcmp(out, "[{\"Key\":\"team\",\"Value\":\"b\"},{\"Key\":\"env\",\"Value\":\"prod\"}]") == 0);
  CHECK(wl_iam_set_tags(S("null"), S("{\"team\":\"a\"}"), out, sizeof out, &out_len, &e) == WL_STATUS_INVALID_DOCUMENT);
  CHECK(strcmp(e.path, "set") == 0);
  CHECK(wl_iam_set_tags(S("null"), S("[{\"Key\":\"team\"}]"), out, sizeof out, &out_len, &e) ==
        WL_STATUS_INVALID_DOCUMENT);
  CHECK(strcmp(e.path, "set[0].Value") == 0);
  CHECK(wl_iam_set_tags(S("[{\"Value\":\"x\"}]"), S("[]"), out, sizeof out, &out_len, &e) == WL_STATUS_INVALID_DOCUMENT);
  CHECK(strcmp(e.path, "[0].Key") == 0);
  CHECK(wl_iam_set_tags(S("[]"), S("[{\"Key\":\"\",\"Value\":\"x\"}]"), out, sizeof out, &out_len, &e) ==
        WL_STATUS_INVALID_DOCUMENT);
  CHECK(strcmp(e.path, "key") == 0);
  CHECK(wl_iam_set_tags(S("[]"), S("[x"), out, sizeof out, &out_len, &e) == WL_STATUS_INVALID_DOCUMENT);
  CHECK(strcmp(e.path, "set") == 0);
  CHECK(wl_iam_set_tags(NULL, 0, S("[]"), out, sizeof out, &out_len, &e) == WL_STATUS_NULL_ARGUMENT);
  CHECK(strcmp(e.path, "tags") == 0);
}

int main(void) {
  batch_of_three();
  bad_arguments();
  iam_helpers();
  printf("update: %d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
