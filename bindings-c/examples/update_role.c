/* Group commit through libwritelane: three updates of one role's inline policy (each puts
 * one statement) ride in one read and one write. The host keeps each update's change (here
 * a statement) by operation id, runs the changes when the engine hands out the apply step,
 * and writes the result. Build: cc update_role.c $(pkg-config --cflags --libs writelane) */
#include <stdio.h>
#include <string.h>
#include <writelane.h>

#define N 3

static const char *statements[N] = {
    "{\"Sid\":\"A\",\"Effect\":\"Allow\",\"Action\":\"s3:GetObject\",\"Resource\":\"*\"}",
    "{\"Sid\":\"B\",\"Effect\":\"Allow\",\"Action\":\"s3:PutObject\",\"Resource\":\"*\"}",
    "{\"Sid\":\"C\",\"Effect\":\"Allow\",\"Action\":\"s3:ListBucket\",\"Resource\":\"*\"}",
};

int main(void) {
  const char *policy = "\"iam\"", *role = "role/deploy";
  wl_engine *e;
  wl_error err;
  uint64_t ops[N];
  char stored[4096] = "null", doc[4096], next[4096], results[512];
  size_t len;
  int committed = 0, writes = 0;
  if (wl_engine_new(policy, strlen(policy), 42, &e, &err) != WL_STATUS_OK) return 1;
  /* The first update takes the lane and is told to read; two more queue behind it. */
  if (wl_engine_submit_update(e, role, strlen(role), 0, NULL, &ops[0]) != WL_STATUS_OK) return 1;
  wl_command c;
  if (wl_engine_poll_action(e, &c) != WL_STATUS_OK || c.kind != WL_COMMAND_KIND_READ) return 1;
  for (int i = 1; i < N; i++)
    if (wl_engine_submit_update(e, role, strlen(role), 1, NULL, &ops[i]) != WL_STATUS_OK) return 1;
  for (;;) {
    wl_input in;
    memset(&in, 0, sizeof in);
    in.op = c.op;
    if (c.kind == WL_COMMAND_KIND_READ) { /* GetRolePolicy */
      strcpy(doc, stored);
      in.kind = WL_INPUT_KIND_READ_DONE;
      in.token = (wl_str){"v1", 2};
    } else if (c.kind == WL_COMMAND_KIND_APPLY) {
      /* c.operation is {"type":"apply","op":L,"ops":[...]}: here the ops are ours, in
       * submission order; run each one's change on the document, in that order. */
      char want[128];
      snprintf(want, sizeof want, "{\"type\":\"apply\",\"op\":%llu,\"ops\":[%llu,%llu,%llu]}",
               (unsigned long long)ops[0], (unsigned long long)ops[0], (unsigned long long)ops[1],
               (unsigned long long)ops[2]);
      if (strcmp(c.operation.ptr, want) != 0) return 1; /* a real host parses the JSON */
      size_t n = 0;
      n += (size_t)snprintf(results + n, sizeof results - n, "[");
      for (int i = 0; i < N; i++) {
        int applied = wl_iam_put_statement(doc, strlen(doc), statements[i], strlen(statements[i]), next,
                                           sizeof next, &len, &err) == WL_STATUS_OK;
        if (applied) strcpy(doc, next);
        n += (size_t)snprintf(results + n, sizeof results - n, "%s{\"op\":%llu,\"applied\":%s%s}", i ? "," : "",
                              (unsigned long long)ops[i], applied ? "true" : "false",
                              applied ? "" : ",\"code\":\"InvalidDocument\"");
      }
      snprintf(results + n, sizeof results - n, "]");
      in.kind = WL_INPUT_KIND_APPLY_DONE;
      in.reply = (wl_str){results, strlen(results)};
    } else if (c.kind == WL_COMMAND_KIND_WRITE) { /* PutRolePolicy(doc) */
      strcpy(stored, doc);
      writes++;
      in.kind = WL_INPUT_KIND_WRITE_DONE;
      in.token = (wl_str){"v2", 2};
    } else if (c.kind == WL_COMMAND_KIND_FINISH) {
      committed += c.outcome == WL_OUTCOME_COMMITTED;
      if (committed == N) break;
    } else {
      return 1; /* nothing pending and not done: not in this example */
    }
    if (in.kind != 0 && wl_engine_handle(e, 2, &in) != WL_STATUS_OK) {
      wl_engine_last_error(e, &err);
      fprintf(stderr, "handle: %s\n", err.message);
      return 1;
    }
    if (wl_engine_poll_action(e, &c) != WL_STATUS_OK) return 1;
  }
  printf("committed %d updates in %d write(s): %s\n", committed, writes, stored);
  wl_engine_free(e);
  return 0;
}
