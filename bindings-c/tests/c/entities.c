/* The entity table through the C API (wl_iam_entities): writes with their sorted keys,
 * reads, unknown operations and untracked services, an undetermined write as data, and
 * NULL pointers, bad UTF-8, bad JSON and a short buffer as typed statuses. Prints
 * "N passed, M failed"; exits non-zero on failure. */
#include <stdio.h>
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

static char out[1024];
static size_t out_len;
static wl_error err;

/* Call with NUL-terminated texts (NULL params or context: none). */
static wl_status call(const char *service, const char *op, const char *params, const char *ctx) {
  return wl_iam_entities(service, strlen(service), op, strlen(op), params, params ? strlen(params) : 0, ctx,
                         ctx ? strlen(ctx) : 0, out, sizeof out, &out_len, &err);
}

/* The call succeeded and its JSON is exactly want. */
static int gives(wl_status st, const char *want) {
  if (st != WL_STATUS_OK) {
    fprintf(stderr, "  got %s: %s\n", wl_status_name(st), err.message);
    return 0;
  }
  if (strcmp(out, want) != 0 || out_len != strlen(want)) {
    fprintf(stderr, "  got %s\n  want %s\n", out, want);
    return 0;
  }
  return 1;
}

/* The call failed with this status and path. */
static int refused(wl_status st, wl_status want, const char *path) {
  if (st != want || err.status != want || strcmp(err.path, path) != 0) {
    fprintf(stderr, "  got %s path %s (%s), want %s path %s\n", wl_status_name(st), err.path, err.message,
            wl_status_name(want), path);
    return 0;
  }
  return 1;
}

int main(void) {
  CHECK(gives(call("IAM", "PutRolePolicy", "{\"RoleName\":\"app\",\"PolicyDocument\":\"{}\"}", NULL),
              "{\"access\":\"write\",\"keys\":[\"role/app\"],\"params\":[\"RoleName\"]}"));
  CHECK(gives(call("iam", "AddUserToGroup", "{\"UserName\":\"zed\",\"GroupName\":\"admins\"}",
                   "{\"account\":\"123456789012\"}"),
              "{\"access\":\"write\",\"keys\":[\"arn:aws:iam::123456789012:group/admins\",\"arn:aws:iam::"
              "123456789012:user/zed\"],\"params\":[\"GroupName\",\"UserName\"]}"));
  CHECK(gives(call("iam", "GetRole", "{\"RoleName\":\"app\"}", NULL), "{\"access\":\"read\",\"keys\":[],\"params\":[]}"));
  CHECK(gives(call("iam", "FrobnicateRole", NULL, NULL), "{\"access\":\"unknown\",\"keys\":[],\"params\":[]}"));
  CHECK(gives(call("sts", "AssumeRole", NULL, NULL), "{\"access\":\"untracked\",\"keys\":[],\"params\":[]}"));
  CHECK(gives(call("iam", "PutRolePolicy", "{}", NULL),
              "{\"access\":\"write\",\"keys\":[],\"parameter\":\"RoleName\",\"params\":[\"RoleName\"],"
              "\"undetermined\":\"PutRolePolicy: missing parameter RoleName\"}"));

  CHECK(refused(call("iam", "PutRolePolicy", "{\"RoleName\":", NULL), WL_STATUS_INVALID_DOCUMENT, "params"));
  CHECK(refused(call("iam", "PutRolePolicy", NULL, "{\"acount\":\"1\"}"), WL_STATUS_INVALID_DOCUMENT, "context.acount"));
  CHECK(refused(call("iam", "", NULL, NULL), WL_STATUS_INVALID_ARGUMENT, "operation"));
  CHECK(refused(call("iam", "PutRolePolicy", "{\"RoleName\":\"\xff\"}", NULL), WL_STATUS_INVALID_UTF8, "params"));
  CHECK(refused(wl_iam_entities(NULL, 0, "X", 1, NULL, 0, NULL, 0, out, sizeof out, &out_len, &err),
                WL_STATUS_NULL_ARGUMENT, "service"));
  CHECK(refused(wl_iam_entities("iam", 3, NULL, 0, NULL, 0, NULL, 0, out, sizeof out, &out_len, &err),
                WL_STATUS_NULL_ARGUMENT, "operation"));
  CHECK(refused(wl_iam_entities("iam", 3, "X", 1, NULL, 4, NULL, 0, out, sizeof out, &out_len, &err),
                WL_STATUS_INVALID_ARGUMENT, "params"));
  CHECK(refused(wl_iam_entities("iam", 3, "X", 1, NULL, 0, NULL, 0, out, sizeof out, NULL, &err),
                WL_STATUS_NULL_ARGUMENT, "out_len"));
  CHECK(wl_iam_entities("iam", 3, "X", 1, NULL, 0, NULL, 0, out, sizeof out, &out_len, NULL) == WL_STATUS_OK);
  /* A short buffer: the length needed, then the text in a buffer that fits. */
  char small[8];
  CHECK(wl_iam_entities("iam", 3, "GetRole", 7, NULL, 0, NULL, 0, small, sizeof small, &out_len, &err) ==
        WL_STATUS_BUFFER_TOO_SMALL);
  CHECK(out_len == strlen("{\"access\":\"read\",\"keys\":[],\"params\":[]}") && small[0] == '\0');
  CHECK(wl_iam_entities("iam", 3, "GetRole", 7, NULL, 0, NULL, 0, NULL, 0, &out_len, &err) == WL_STATUS_BUFFER_TOO_SMALL);

  printf("entities: %d passed, %d failed\n", passed, failed);
  return failed != 0;
}
