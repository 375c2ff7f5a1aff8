/* Runs every conformance vector in a directory through the C API and compares the
 * results with the vector's expectations. Usage: vectors DIR. Prints
 * "N passed, M failed" and exits non-zero on any failure or when no vector is found. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "writelane.h"

static char why[4096];

#define FAILF(...)                                 \
  do {                                             \
    snprintf(why, sizeof why, __VA_ARGS__);        \
    goto done;                                     \
  } while (0)

static wl_str str_of(const jv *v) {
  wl_str s = {NULL, 0};
  if (v && v->t == J_STR) {
    s.ptr = v->s;
    s.len = v->slen;
  }
  return s;
}

static jv *jstr_or_null(wl_str s) { return s.ptr ? jstr(s.ptr, s.len) : jnull(); }

static const char *class_name(wl_error_class c) {
  switch (c) {
    case WL_ERROR_CLASS_CONFLICT: return "conflict";
    case WL_ERROR_CLASS_THROTTLE: return "throttle";
    case WL_ERROR_CLASS_TRANSIENT: return "transient";
    case WL_ERROR_CLASS_UNKNOWN: return "unknown";
    case WL_ERROR_CLASS_FATAL: return "fatal";
    default: return "none";
  }
}

static const char *reason_name(wl_give_up_reason r) {
  switch (r) {
    case WL_GIVE_UP_REASON_ATTEMPTS_EXHAUSTED: return "attempts_exhausted";
    case WL_GIVE_UP_REASON_BUDGET_EXHAUSTED: return "budget_exhausted";
    case WL_GIVE_UP_REASON_DEADLINE_EXCEEDED: return "deadline_exceeded";
    case WL_GIVE_UP_REASON_FATAL: return "fatal";
    case WL_GIVE_UP_REASON_STALE_REVISION: return "stale_revision";
    case WL_GIVE_UP_REASON_CANCELLED: return "cancelled";
    case WL_GIVE_UP_REASON_LEASE_LOST: return "lease_lost";
    case WL_GIVE_UP_REASON_LOCK_UNAVAILABLE: return "lock_unavailable";
    default: return "none";
  }
}

static const char *refusal_name(wl_refusal r) {
  switch (r) {
    case WL_REFUSAL_NOT_RETRYABLE: return "not_retryable";
    case WL_REFUSAL_ATTEMPTS_EXHAUSTED: return "attempts_exhausted";
    case WL_REFUSAL_BUDGET_EXHAUSTED: return "budget_exhausted";
    case WL_REFUSAL_DEADLINE_EXCEEDED: return "deadline_exceeded";
    default: return "none";
  }
}

/* The core's JSON form of a command, built from the flat struct. */
static jv *command_json(const wl_command *c) {
  jv *o = jobj();
  jset(o, "op", ju64(c->op));
  if (c->kind == WL_COMMAND_KIND_READ) {
    jset(o, "type", jcstr("read"));
  } else if (c->kind == WL_COMMAND_KIND_WRITE) {
    jset(o, "type", jcstr("write"));
    jset(o, "attempt", jint(c->attempt));
    jset(o, "base_token", jstr_or_null(c->base_token));
    if (c->has_fence) jset(o, "fence", ju64(c->fence));
  } else if (c->kind == WL_COMMAND_KIND_STORE) {
    char perr[128];
    jv *operation = NULL;
    jset(o, "type", jcstr("store"));
    /* The operation is JSON text, NUL-terminated. */
    if (c->operation.ptr && c->operation.ptr[c->operation.len] == 0)
      operation = json_parse(c->operation.ptr, c->operation.len, perr, sizeof perr);
    jset(o, "operation", operation ? operation : jcstr("<operation missing, not JSON or not NUL-terminated>"));
  } else {
    jv *out = jobj();
    jset(o, "type", jcstr("finish"));
    jset(out, "attempts", jint(c->attempts));
    if (c->outcome == WL_OUTCOME_COMMITTED) {
      jset(out, "status", jcstr("committed"));
      jset(out, "token", jstr_or_null(c->token));
    } else {
      jset(out, "status", jcstr("gave_up"));
      jset(out, "reason", jcstr(reason_name(c->reason)));
      switch (c->reason) {
        case WL_GIVE_UP_REASON_ATTEMPTS_EXHAUSTED:
          jset(out, "class", jcstr(class_name(c->error_class)));
          jset(out, "code", jstr_or_null(c->code));
          break;
        case WL_GIVE_UP_REASON_BUDGET_EXHAUSTED:
          jset(out, "class", jcstr(class_name(c->error_class)));
          jset(out, "scope", jcstr(c->budget_scope == WL_BUDGET_SCOPE_ENTITY ? "entity" : "engine"));
          jset(out, "code", jstr_or_null(c->code));
          break;
        case WL_GIVE_UP_REASON_DEADLINE_EXCEEDED:
          jset(out, "code", jstr_or_null(c->code));
          break;
        case WL_GIVE_UP_REASON_FATAL:
          jset(out, "code", jstr_or_null(c->code));
          jset(out, "http_status", c->http_status ? jint(c->http_status) : jnull());
          break;
        case WL_GIVE_UP_REASON_STALE_REVISION:
          jset(out, "expected", jstr_or_null(c->expected));
          jset(out, "found", jstr_or_null(c->found));
          break;
        default:
          break;
      }
    }
    jset(o, "outcome", out);
  }
  return o;
}

static wl_failure failure_of(const jv *f) {
  wl_failure out;
  const jv *ra = json_get(f, "retry_after_ms");
  const jv *ou = json_get(f, "outcome_unknown");
  memset(&out, 0, sizeof out);
  out.code = str_of(json_get(f, "code"));
  out.http_status = (uint16_t)json_int(json_get(f, "status"));
  if (ra && ra->t == J_NUM) {
    out.has_retry_after = true;
    out.retry_after_ms = json_u64(ra);
  } else if (ra && ra->t == J_STR) {
    out.retry_after_header = str_of(ra);
  }
  out.outcome_unknown = ou && ou->t == J_BOOL && ou->b;
  out.intended_token = str_of(json_get(f, "intended_token"));
  return out;
}

static void show(const char *label, const jv *v) {
  sbuf b = {0};
  json_write(v, &b);
  fprintf(stderr, "    %s: %s\n", label, b.p ? b.p : "");
  sb_free(&b);
}

/* Compare the outcome of a call with the step's "error" expectation. */
static int check_error(wl_engine *e, wl_status st, const jv *step) {
  const jv *want = json_get(step, "error");
  wl_error err;
  if (json_is_null(want)) {
    if (st != WL_STATUS_OK) {
      wl_engine_last_error(e, &err);
      snprintf(why, sizeof why, "unexpected %s: %s", wl_status_name(st), err.message);
      return 0;
    }
    return 1;
  }
  if (st != WL_STATUS_USAGE_ERROR) {
    snprintf(why, sizeof why, "expected usage error %s, got %s", want->s, wl_status_name(st));
    return 0;
  }
  if (wl_engine_last_error(e, &err) != WL_STATUS_OK || err.status != WL_STATUS_USAGE_ERROR ||
      strcmp(wl_usage_name(err.usage), want->s) != 0) {
    snprintf(why, sizeof why, "expected usage error %s, got %s (%s)", want->s, wl_usage_name(err.usage),
             err.message);
    return 0;
  }
  return 1;
}

static int run_engine(const jv *v) {
  int ok = 0;
  size_t i;
  sbuf policy = {0};
  wl_engine *e = NULL;
  wl_error err;
  const jv *steps = json_get(v, "steps");
  const jv *imp = json_get(v, "import_state");
  const jv *fin = json_get(v, "final_stats");
  json_write(json_get(v, "policy"), &policy);
  if (json_get(v, "owner")) {
    const jv *owner = json_get(v, "owner");
    if (wl_engine_new_with_owner(policy.p, policy.len, json_u64(json_get(v, "seed")), owner->s, owner->slen, &e, &err) !=
        WL_STATUS_OK)
      FAILF("wl_engine_new_with_owner: %s", err.message);
  } else if (wl_engine_new(policy.p, policy.len, json_u64(json_get(v, "seed")), &e, &err) != WL_STATUS_OK) {
    FAILF("wl_engine_new: %s", err.message);
  }
  if (imp) {
    sbuf s = {0};
    wl_status st;
    json_write(imp, &s);
    st = wl_engine_import_state(e, s.p, s.len);
    sb_free(&s);
    if (st != WL_STATUS_OK) FAILF("import_state: %s", wl_status_name(st));
  }
  for (i = 0; steps && i < steps->n; i++) {
    const jv *step = steps->items[i];
    uint64_t at = json_u64(json_get(step, "at"));
    const jv *sub = json_get(step, "submit"), *in = json_get(step, "input");
    const jv *want;
    jv *got;
    wl_status st;
    if (sub) {
      wl_submit_options opts;
      const jv *ent = json_get(sub, "entity"), *dl = json_get(sub, "deadline_ms");
      uint64_t op = 0;
      memset(&opts, 0, sizeof opts);
      opts.expected = str_of(json_get(sub, "expected"));
      opts.holder = str_of(json_get(sub, "holder"));
      opts.no_read = json_get(sub, "no_read") && json_get(sub, "no_read")->t == J_BOOL && json_get(sub, "no_read")->b;
      if (!json_is_null(dl)) {
        opts.has_deadline = true;
        opts.deadline_ms = json_u64(dl);
      }
      st = wl_engine_submit(e, ent->s, ent->slen, at, &opts, &op);
      if (!check_error(e, st, step)) goto step_failed;
      if (st == WL_STATUS_OK && json_get(step, "op") && op != json_u64(json_get(step, "op")))
        FAILF("step %zu: submit returned op %llu", i, (unsigned long long)op);
    } else if (in) {
      wl_input input;
      sbuf reply = {0};
      const char *type = json_get(in, "type")->s;
      memset(&input, 0, sizeof input);
      input.op = json_u64(json_get(in, "op"));
      input.token = str_of(json_get(in, "token"));
      if (!strcmp(type, "read_done")) input.kind = WL_INPUT_KIND_READ_DONE;
      else if (!strcmp(type, "read_failed")) input.kind = WL_INPUT_KIND_READ_FAILED;
      else if (!strcmp(type, "write_done")) input.kind = WL_INPUT_KIND_WRITE_DONE;
      else if (!strcmp(type, "write_failed")) input.kind = WL_INPUT_KIND_WRITE_FAILED;
      else if (!strcmp(type, "cancel")) input.kind = WL_INPUT_KIND_CANCEL;
      else if (!strcmp(type, "store_reply")) {
        input.kind = WL_INPUT_KIND_STORE_REPLY;
        if (!json_get(in, "reply")) FAILF("step %zu: store_reply without a reply", i);
        json_write(json_get(in, "reply"), &reply);
        input.reply.ptr = reply.p;
        input.reply.len = reply.len;
      } else FAILF("step %zu: unknown input type %s", i, type);
      if (json_get(in, "failure")) input.failure = failure_of(json_get(in, "failure"));
      st = wl_engine_handle(e, at, &input);
      sb_free(&reply);
      if (!check_error(e, st, step)) goto step_failed;
    } else if (json_get(step, "timeout")) {
      st = wl_engine_handle_timeout(e, at);
      if (!check_error(e, st, step)) goto step_failed;
    } else {
      FAILF("step %zu: no action", i);
    }
    /* Drain commands. */
    got = jarr();
    for (;;) {
      wl_command c;
      if (wl_engine_poll_command(e, &c) != WL_STATUS_OK) {
        json_free(got);
        FAILF("step %zu: poll_command failed", i);
      }
      if (c.kind == WL_COMMAND_KIND_NONE) break;
      jpush(got, command_json(&c));
    }
    want = json_get(step, "commands");
    if (want && !json_equal(got, want)) {
      show("expected commands", want);
      show("got commands", got);
      json_free(got);
      FAILF("step %zu: commands differ", i);
    }
    json_free(got);
    /* Drain events. */
    got = jarr();
    for (;;) {
      wl_str ev;
      jv *parsed;
      char perr[128];
      if (wl_engine_poll_event(e, &ev) != WL_STATUS_OK) {
        json_free(got);
        FAILF("step %zu: poll_event failed", i);
      }
      if (!ev.ptr) break;
      if (ev.ptr[ev.len] != 0) {
        json_free(got);
        FAILF("step %zu: event text is not NUL-terminated", i);
      }
      parsed = json_parse(ev.ptr, ev.len, perr, sizeof perr);
      if (!parsed) {
        json_free(got);
        FAILF("step %zu: event is not JSON: %s", i, perr);
      }
      jpush(got, parsed);
    }
    want = json_get(step, "events");
    if (want && !json_equal(got, want)) {
      show("expected events", want);
      show("got events", got);
      json_free(got);
      FAILF("step %zu: events differ", i);
    }
    json_free(got);
    if (json_get(step, "next_timeout")) {
      bool has;
      uint64_t t;
      const jv *nt = json_get(step, "next_timeout");
      if (wl_engine_poll_timeout(e, &has, &t) != WL_STATUS_OK) FAILF("step %zu: poll_timeout failed", i);
      if (json_is_null(nt) ? has : (!has || t != json_u64(nt)))
        FAILF("step %zu: next_timeout %s%llu", i, has ? "" : "none ", (unsigned long long)t);
    }
    continue;
  step_failed: {
      char copy[sizeof why];
      memcpy(copy, why, sizeof why);
      FAILF("step %zu: %.3000s", i, copy);
    }
  }
  if (fin) {
    wl_str s;
    jv *stats;
    char perr[128];
    if (wl_engine_stats_json(e, &s) != WL_STATUS_OK) FAILF("stats_json failed");
    stats = json_parse(s.ptr, s.len, perr, sizeof perr);
    if (!stats) FAILF("stats are not JSON: %s", perr);
    if (!json_equal(json_get(stats, "global"), json_get(fin, "global")) ||
        !json_equal(json_get(stats, "budget"), json_get(fin, "budget"))) {
      show("expected final stats", fin);
      show("got stats", stats);
      json_free(stats);
      FAILF("final stats differ");
    }
    json_free(stats);
  }
  ok = 1;
done:
  wl_engine_free(e);
  sb_free(&policy);
  return ok;
}

#define MAX_TOKENS 16

static int run_strategy(const jv *v) {
  int ok = 0;
  size_t i, ntok = 0, k;
  const char *names[MAX_TOKENS];
  wl_retry_token toks[MAX_TOKENS];
  sbuf policy = {0};
  wl_engine *e = NULL;
  wl_error err;
  const jv *steps = json_get(v, "steps");
  json_write(json_get(v, "policy"), &policy);
  if (wl_engine_new(policy.p, policy.len, json_u64(json_get(v, "seed")), &e, &err) != WL_STATUS_OK)
    FAILF("wl_engine_new: %s", err.message);
  for (i = 0; i < steps->n; i++) {
    const jv *step = steps->items[i];
    uint64_t at = json_u64(json_get(step, "at"));
    const jv *acq = json_get(step, "acquire"), *ref = json_get(step, "refresh"), *suc = json_get(step, "success");
    const jv *cap = json_get(step, "capacity");
    const jv *act = acq ? acq : ref ? ref : suc;
    const char *name;
    wl_retry_token *tok = NULL;
    wl_status st;
    if (!act) FAILF("step %zu: no action", i);
    name = json_get(act, "token")->s;
    for (k = 0; k < ntok; k++)
      if (!strcmp(names[k], name)) tok = &toks[k];
    if (acq) {
      const jv *scope = json_get(acq, "scope");
      if (!tok) {
        if (ntok == MAX_TOKENS) FAILF("too many tokens");
        names[ntok] = name;
        tok = &toks[ntok++];
      }
      st = wl_engine_retry_acquire(e, scope->s, scope->slen, at, tok);
      if (!check_error(e, st, step)) goto step_failed;
    } else if (ref) {
      wl_failure f = failure_of(json_get(ref, "failure"));
      wl_retry_decision d;
      const jv *want = json_get(step, "result");
      jv *got = jobj();
      if (!tok) FAILF("step %zu: unknown token %s", i, name);
      st = wl_engine_retry_refresh(e, tok, &f, at, &d);
      if (!check_error(e, st, step)) {
        json_free(got);
        goto step_failed;
      }
      if (d.retry) {
        jset(got, "delay_ms", ju64(d.delay_ms));
        jset(got, "cost", jint(d.cost));
        jset(got, "class", jcstr(class_name(d.error_class)));
      } else {
        jset(got, "refused", jcstr(refusal_name(d.refusal)));
      }
      if (st == WL_STATUS_OK && want && !json_equal(got, want)) {
        show("expected", want);
        show("got", got);
        json_free(got);
        FAILF("step %zu: refresh result differs", i);
      }
      json_free(got);
    } else {
      if (!tok) FAILF("step %zu: unknown token %s", i, name);
      st = wl_engine_retry_success(e, tok);
      if (!check_error(e, st, step)) goto step_failed;
    }
    if (cap) {
      const jv *scope = json_get(cap, "scope");
      uint32_t level = 0;
      if (wl_engine_retry_capacity(e, scope->s, scope->slen, &level) != WL_STATUS_OK)
        FAILF("step %zu: capacity failed", i);
      if (level != json_u64(json_get(cap, "level")))
        FAILF("step %zu: capacity %u, expected %llu", i, level, (unsigned long long)json_u64(json_get(cap, "level")));
    }
    continue;
  step_failed: {
      char copy[sizeof why];
      memcpy(copy, why, sizeof why);
      FAILF("step %zu: %.3000s", i, copy);
    }
  }
  ok = 1;
done:
  wl_engine_free(e);
  sb_free(&policy);
  return ok;
}

static int run_policy_error(const jv *v) {
  int ok = 0;
  sbuf policy = {0};
  wl_engine *e = (wl_engine *)&ok; /* must be reset to NULL on failure */
  wl_error err;
  const jv *want = json_get(v, "error");
  wl_status st;
  json_write(json_get(v, "policy"), &policy);
  st = wl_engine_new(policy.p, policy.len, 0, &e, &err);
  if (st != WL_STATUS_INVALID_POLICY) FAILF("expected WL_STATUS_INVALID_POLICY, got %s", wl_status_name(st));
  if (e != NULL) FAILF("out_engine was not reset to NULL");
  if (err.status != WL_STATUS_INVALID_POLICY) FAILF("error status %s", wl_status_name(err.status));
  if (strcmp(err.path, json_get(want, "path")->s) != 0) FAILF("path %s, expected %s", err.path, json_get(want, "path")->s);
  if (!strstr(err.message, json_get(want, "rule")->s)) FAILF("message %s lacks %s", err.message, json_get(want, "rule")->s);
  ok = 1;
done:
  sb_free(&policy);
  return ok;
}

static int run_token(const jv *v) {
  int ok = 0;
  const jv *doc = json_get(v, "document"), *want = json_get(v, "token");
  char buf[WL_POLICY_TOKEN_LEN + 1];
  size_t len = 0;
  wl_error err;
  wl_status st = wl_policy_token(doc->s, doc->slen, buf, sizeof buf, &len, &err);
  if (want) {
    if (st != WL_STATUS_OK) FAILF("wl_policy_token: %s %s", wl_status_name(st), err.message);
    if (len != want->slen || strcmp(buf, want->s) != 0) FAILF("token %s, expected %s", buf, want->s);
  } else {
    const char *path = json_get(json_get(v, "error"), "path")->s;
    if (st != WL_STATUS_INVALID_DOCUMENT) FAILF("expected WL_STATUS_INVALID_DOCUMENT, got %s", wl_status_name(st));
    if (strcmp(err.path, path) != 0) FAILF("path %s, expected %s", err.path, path);
  }
  ok = 1;
done:
  return ok;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv) {
  DIR *d;
  struct dirent *de;
  char **files = NULL;
  size_t nfiles = 0, i, passed = 0, failed = 0;
  if (argc != 2) {
    fprintf(stderr, "usage: %s VECTOR_DIR\n", argv[0]);
    return 2;
  }
  d = opendir(argv[1]);
  if (!d) {
    fprintf(stderr, "cannot open %s\n", argv[1]);
    return 2;
  }
  while ((de = readdir(d)) != NULL) {
    size_t n = strlen(de->d_name);
    if (n > 5 && !strcmp(de->d_name + n - 5, ".json")) {
      files = realloc(files, (nfiles + 1) * sizeof *files);
      files[nfiles++] = strdup(de->d_name);
    }
  }
  closedir(d);
  qsort(files, nfiles, sizeof *files, by_name);
  for (i = 0; i < nfiles; i++) {
    char path[4096], perr[256];
    size_t len;
    char *text;
    jv *v;
    const jv *kind;
    int ok = 0;
    snprintf(path, sizeof path, "%s/%s", argv[1], files[i]);
    why[0] = 0;
    text = read_file(path, &len);
    v = text ? json_parse(text, len, perr, sizeof perr) : NULL;
    kind = json_get(v, "kind");
    if (!v) snprintf(why, sizeof why, "cannot read or parse: %s", text ? perr : "read failed");
    else if (!kind || kind->t != J_STR) snprintf(why, sizeof why, "no kind");
    else if (!strcmp(kind->s, "engine")) ok = run_engine(v);
    else if (!strcmp(kind->s, "strategy")) ok = run_strategy(v);
    else if (!strcmp(kind->s, "policy_error")) ok = run_policy_error(v);
    else if (!strcmp(kind->s, "token")) ok = run_token(v);
    else snprintf(why, sizeof why, "unknown kind %s", kind->s);
    if (ok) {
      passed++;
    } else {
      failed++;
      fprintf(stderr, "FAIL %s: %s\n", files[i], why);
    }
    json_free(v);
    free(text);
    free(files[i]);
  }
  free(files);
  if (nfiles == 0) {
    fprintf(stderr, "no vector files found in %s\n", argv[1]);
    return 1;
  }
  printf("vectors: %zu passed, %zu failed\n", passed, failed);
  return failed ? 1 : 0;
}
