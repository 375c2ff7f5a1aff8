/* One logical write of an IAM role through libwritelane: the host carries out the
 * engine's commands; the first write attempt meets a ConcurrentModification conflict.
 * Build: cc write_role.c $(pkg-config --cflags --libs writelane) */
#include <stdio.h>
#include <string.h>
#include <writelane.h>

int main(void) {
  const char *policy = "\"iam\"", *role = "arn:aws:iam::123456789012:role/deploy";
  wl_engine *e;
  wl_error err;
  uint64_t op, now = 0;
  int conflicts_left = 1;
  if (wl_engine_new(policy, strlen(policy), 42, &e, &err) != WL_STATUS_OK) {
    fprintf(stderr, "policy: %s\n", err.message);
    return 1;
  }
  if (wl_engine_submit(e, role, strlen(role), now, NULL, &op) != WL_STATUS_OK) return 1;
  for (;;) {
    wl_command c;
    wl_input in;
    bool has;
    if (wl_engine_poll_command(e, &c) != WL_STATUS_OK) return 1;
    memset(&in, 0, sizeof in);
    in.op = c.op;
    if (c.kind == WL_COMMAND_KIND_READ) { /* GetRolePolicy, then report its token */
      in.kind = WL_INPUT_KIND_READ_DONE;
      in.token = (wl_str){"v1", 2};
    } else if (c.kind == WL_COMMAND_KIND_WRITE && conflicts_left-- > 0) { /* PutRolePolicy */
      in.kind = WL_INPUT_KIND_WRITE_FAILED;
      in.failure.code = (wl_str){"ConcurrentModification", 22};
      in.failure.http_status = 409;
    } else if (c.kind == WL_COMMAND_KIND_WRITE) {
      in.kind = WL_INPUT_KIND_WRITE_DONE;
      in.token = (wl_str){"v2", 2};
    } else if (c.kind == WL_COMMAND_KIND_FINISH) {
      printf("%s after %u attempts at %llu ms\n", c.outcome == WL_OUTCOME_COMMITTED ? "committed" : "gave up",
             c.attempts, (unsigned long long)now);
      break;
    } else { /* nothing to do: sleep until the engine's next timeout */
      if (wl_engine_poll_timeout(e, &has, &now) != WL_STATUS_OK || !has) return 1;
      if (wl_engine_handle_timeout(e, now) != WL_STATUS_OK) return 1;
      continue;
    }
    if (wl_engine_handle(e, now, &in) != WL_STATUS_OK) {
      wl_engine_last_error(e, &err);
      fprintf(stderr, "handle: %s\n", err.message);
      return 1;
    }
  }
  wl_engine_free(e);
  return 0;
}
