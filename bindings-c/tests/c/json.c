/* See json.h. */
#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) {
    fprintf(stderr, "out of memory\n");
    exit(2);
  }
  return p;
}

static void *xrealloc(void *p, size_t n) {
  p = realloc(p, n ? n : 1);
  if (!p) {
    fprintf(stderr, "out of memory\n");
    exit(2);
  }
  return p;
}

void sb_put(sbuf *b, const char *s, size_t n) {
  if (b->len + n + 1 > b->cap) {
    b->cap = (b->len + n + 1) * 2;
    b->p = xrealloc(b->p, b->cap);
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = 0;
}

void sb_puts(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

void sb_free(sbuf *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

static jv *jnew(jtype t) {
  jv *v = xmalloc(sizeof *v);
  memset(v, 0, sizeof *v);
  v->t = t;
  return v;
}

jv *jnull(void) { return jnew(J_NULL); }

jv *jbool(int b) {
  jv *v = jnew(J_BOOL);
  v->b = b != 0;
  return v;
}

jv *jint(int64_t i) {
  char buf[32];
  jv *v = jnew(J_NUM);
  snprintf(buf, sizeof buf, "%lld", (long long)i);
  v->slen = strlen(buf);
  v->s = xmalloc(v->slen + 1);
  memcpy(v->s, buf, v->slen + 1);
  return v;
}

jv *ju64(uint64_t i) {
  char buf[32];
  jv *v = jnew(J_NUM);
  snprintf(buf, sizeof buf, "%llu", (unsigned long long)i);
  v->slen = strlen(buf);
  v->s = xmalloc(v->slen + 1);
  memcpy(v->s, buf, v->slen + 1);
  return v;
}

jv *jstr(const char *s, size_t n) {
  jv *v = jnew(J_STR);
  v->s = xmalloc(n + 1);
  if (n) memcpy(v->s, s, n);
  v->s[n] = 0;
  v->slen = n;
  return v;
}

jv *jcstr(const char *s) { return jstr(s, strlen(s)); }
jv *jarr(void) { return jnew(J_ARR); }
jv *jobj(void) { return jnew(J_OBJ); }

static void grow(jv *v) {
  if (v->n == v->cap) {
    v->cap = v->cap ? v->cap * 2 : 4;
    v->items = xrealloc(v->items, v->cap * sizeof *v->items);
    if (v->t == J_OBJ) {
      v->keys = xrealloc(v->keys, v->cap * sizeof *v->keys);
      v->keylens = xrealloc(v->keylens, v->cap * sizeof *v->keylens);
    }
  }
}

void jpush(jv *arr, jv *item) {
  grow(arr);
  arr->items[arr->n++] = item;
}

static void jset_n(jv *obj, const char *key, size_t klen, jv *item) {
  grow(obj);
  obj->keys[obj->n] = xmalloc(klen + 1);
  memcpy(obj->keys[obj->n], key, klen);
  obj->keys[obj->n][klen] = 0;
  obj->keylens[obj->n] = klen;
  obj->items[obj->n++] = item;
}

void jset(jv *obj, const char *key, jv *item) { jset_n(obj, key, strlen(key), item); }

void json_free(jv *v) {
  size_t i;
  if (!v) return;
  for (i = 0; i < v->n; i++) {
    json_free(v->items[i]);
    if (v->keys) free(v->keys[i]);
  }
  free(v->items);
  free(v->keys);
  free(v->keylens);
  free(v->s);
  free(v);
}

typedef struct {
  const char *p, *end;
  char *err;
  size_t errcap;
  int failed;
} parser;

static void fail(parser *ps, const char *what) {
  if (!ps->failed && ps->errcap) snprintf(ps->err, ps->errcap, "%s", what);
  ps->failed = 1;
}

static void ws(parser *ps) {
  while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\n' || *ps->p == '\r' || *ps->p == '\t'))
    ps->p++;
}

static int hex4(parser *ps, unsigned *out) {
  unsigned v = 0;
  int i;
  if (ps->end - ps->p < 4) return 0;
  for (i = 0; i < 4; i++) {
    char c = ps->p[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
    else return 0;
  }
  ps->p += 4;
  *out = v;
  return 1;
}

static void put_utf8(sbuf *b, unsigned cp) {
  char u[4];
  size_t n;
  if (cp < 0x80) { u[0] = (char)cp; n = 1; }
  else if (cp < 0x800) { u[0] = (char)(0xC0 | (cp >> 6)); u[1] = (char)(0x80 | (cp & 0x3F)); n = 2; }
  else if (cp < 0x10000) {
    u[0] = (char)(0xE0 | (cp >> 12)); u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    u[2] = (char)(0x80 | (cp & 0x3F)); n = 3;
  } else {
    u[0] = (char)(0xF0 | (cp >> 18)); u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    u[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); u[3] = (char)(0x80 | (cp & 0x3F)); n = 4;
  }
  sb_put(b, u, n);
}

static int parse_string(parser *ps, sbuf *out) {
  ps->p++; /* opening quote */
  while (ps->p < ps->end) {
    char c = *ps->p++;
    if (c == '"') return 1;
    if ((unsigned char)c < 0x20) { fail(ps, "control character in string"); return 0; }
    if (c != '\\') { sb_put(out, &c, 1); continue; }
    if (ps->p >= ps->end) break;
    c = *ps->p++;
    switch (c) {
      case '"': sb_put(out, "\"", 1); break;
      case '\\': sb_put(out, "\\", 1); break;
      case '/': sb_put(out, "/", 1); break;
      case 'b': sb_put(out, "\b", 1); break;
      case 'f': sb_put(out, "\f", 1); break;
      case 'n': sb_put(out, "\n", 1); break;
      case 'r': sb_put(out, "\r", 1); break;
      case 't': sb_put(out, "\t", 1); break;
      case 'u': {
        unsigned cp, lo;
        if (!hex4(ps, &cp)) { fail(ps, "bad \\u escape"); return 0; }
        if (cp >= 0xD800 && cp < 0xDC00 && ps->end - ps->p >= 6 && ps->p[0] == '\\' && ps->p[1] == 'u') {
          ps->p += 2;
          if (!hex4(ps, &lo) || lo < 0xDC00 || lo > 0xDFFF) { fail(ps, "bad surrogate pair"); return 0; }
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
        put_utf8(out, cp);
        break;
      }
      default: fail(ps, "bad escape"); return 0;
    }
  }
  fail(ps, "unterminated string");
  return 0;
}

static jv *parse_value(parser *ps, int depth) {
  jv *v;
  ws(ps);
  if (depth > 200) { fail(ps, "nesting too deep"); return NULL; }
  if (ps->p >= ps->end) { fail(ps, "unexpected end"); return NULL; }
  switch (*ps->p) {
    case '{': {
      v = jobj();
      ps->p++;
      ws(ps);
      if (ps->p < ps->end && *ps->p == '}') { ps->p++; return v; }
      for (;;) {
        sbuf key = {0};
        jv *item;
        ws(ps);
        if (ps->p >= ps->end || *ps->p != '"') { fail(ps, "expected a key"); json_free(v); return NULL; }
        if (!parse_string(ps, &key)) { sb_free(&key); json_free(v); return NULL; }
        ws(ps);
        if (ps->p >= ps->end || *ps->p != ':') { fail(ps, "expected ':'"); sb_free(&key); json_free(v); return NULL; }
        ps->p++;
        item = parse_value(ps, depth + 1);
        if (!item) { sb_free(&key); json_free(v); return NULL; }
        jset_n(v, key.p ? key.p : "", key.len, item);
        sb_free(&key);
        ws(ps);
        if (ps->p < ps->end && *ps->p == ',') { ps->p++; continue; }
        if (ps->p < ps->end && *ps->p == '}') { ps->p++; return v; }
        fail(ps, "expected ',' or '}'");
        json_free(v);
        return NULL;
      }
    }
    case '[': {
      v = jarr();
      ps->p++;
      ws(ps);
      if (ps->p < ps->end && *ps->p == ']') { ps->p++; return v; }
      for (;;) {
        jv *item = parse_value(ps, depth + 1);
        if (!item) { json_free(v); return NULL; }
        jpush(v, item);
        ws(ps);
        if (ps->p < ps->end && *ps->p == ',') { ps->p++; continue; }
        if (ps->p < ps->end && *ps->p == ']') { ps->p++; return v; }
        fail(ps, "expected ',' or ']'");
        json_free(v);
        return NULL;
      }
    }
    case '"': {
      sbuf s = {0};
      if (!parse_string(ps, &s)) { sb_free(&s); return NULL; }
      v = jstr(s.p ? s.p : "", s.len);
      sb_free(&s);
      return v;
    }
    case 't':
      if (ps->end - ps->p >= 4 && !memcmp(ps->p, "true", 4)) { ps->p += 4; return jbool(1); }
      break;
    case 'f':
      if (ps->end - ps->p >= 5 && !memcmp(ps->p, "false", 5)) { ps->p += 5; return jbool(0); }
      break;
    case 'n':
      if (ps->end - ps->p >= 4 && !memcmp(ps->p, "null", 4)) { ps->p += 4; return jnull(); }
      break;
    default: {
      const char *start = ps->p;
      if (*ps->p == '-') ps->p++;
      while (ps->p < ps->end && *ps->p && strchr("0123456789.eE+-", *ps->p)) ps->p++;
      if (ps->p > start && (ps->p[-1] >= '0' && ps->p[-1] <= '9')) {
        v = jnew(J_NUM);
        v->slen = (size_t)(ps->p - start);
        v->s = xmalloc(v->slen + 1);
        memcpy(v->s, start, v->slen);
        v->s[v->slen] = 0;
        return v;
      }
    }
  }
  fail(ps, "unexpected character");
  return NULL;
}

jv *json_parse(const char *text, size_t len, char *err, size_t errcap) {
  parser ps;
  jv *v;
  ps.p = text;
  ps.end = text + len;
  ps.err = err;
  ps.errcap = errcap;
  ps.failed = 0;
  v = parse_value(&ps, 0);
  if (!v) return NULL;
  ws(&ps);
  if (ps.p != ps.end) {
    fail(&ps, "trailing characters");
    json_free(v);
    return NULL;
  }
  return v;
}

const jv *json_get(const jv *v, const char *key) {
  size_t i, klen = strlen(key);
  if (!v || v->t != J_OBJ) return NULL;
  for (i = 0; i < v->n; i++)
    if (v->keylens[i] == klen && !memcmp(v->keys[i], key, klen)) return v->items[i];
  return NULL;
}

int json_is_null(const jv *v) { return !v || v->t == J_NULL; }

static int is_integer_text(const jv *v) { return !strpbrk(v->s, ".eE"); }

int json_equal(const jv *a, const jv *b) {
  size_t i;
  if (a->t != b->t) return 0;
  switch (a->t) {
    case J_NULL: return 1;
    case J_BOOL: return a->b == b->b;
    case J_STR: return a->slen == b->slen && !memcmp(a->s, b->s, a->slen);
    case J_NUM:
      if (is_integer_text(a) && is_integer_text(b)) return !strcmp(a->s, b->s);
      return strtod(a->s, NULL) == strtod(b->s, NULL);
    case J_ARR:
      if (a->n != b->n) return 0;
      for (i = 0; i < a->n; i++)
        if (!json_equal(a->items[i], b->items[i])) return 0;
      return 1;
    case J_OBJ:
      if (a->n != b->n) return 0;
      for (i = 0; i < a->n; i++) {
        const jv *other = json_get(b, a->keys[i]);
        if (!other || !json_equal(a->items[i], other)) return 0;
      }
      return 1;
  }
  return 0;
}

static void write_string(const char *s, size_t n, sbuf *b) {
  size_t i;
  sb_put(b, "\"", 1);
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"') sb_put(b, "\\\"", 2);
    else if (c == '\\') sb_put(b, "\\\\", 2);
    else if (c < 0x20) {
      char esc[8];
      snprintf(esc, sizeof esc, "\\u%04x", c);
      sb_put(b, esc, 6);
    } else sb_put(b, (const char *)&s[i], 1);
  }
  sb_put(b, "\"", 1);
}

void json_write(const jv *v, sbuf *b) {
  size_t i;
  switch (v->t) {
    case J_NULL: sb_puts(b, "null"); break;
    case J_BOOL: sb_puts(b, v->b ? "true" : "false"); break;
    case J_NUM: sb_put(b, v->s, v->slen); break;
    case J_STR: write_string(v->s, v->slen, b); break;
    case J_ARR:
      sb_put(b, "[", 1);
      for (i = 0; i < v->n; i++) {
        if (i) sb_put(b, ",", 1);
        json_write(v->items[i], b);
      }
      sb_put(b, "]", 1);
      break;
    case J_OBJ:
      sb_put(b, "{", 1);
      for (i = 0; i < v->n; i++) {
        if (i) sb_put(b, ",", 1);
        write_string(v->keys[i], v->keylens[i], b);
        sb_put(b, ":", 1);
        json_write(v->items[i], b);
      }
      sb_put(b, "}", 1);
      break;
  }
}

int64_t json_int(const jv *v) { return v && v->t == J_NUM ? strtoll(v->s, NULL, 10) : 0; }
uint64_t json_u64(const jv *v) { return v && v->t == J_NUM ? strtoull(v->s, NULL, 10) : 0; }

char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  char *buf;
  long n;
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  n = ftell(f);
  fseek(f, 0, SEEK_SET);
  buf = xmalloc((size_t)n + 1);
  if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
    fclose(f);
    free(buf);
    return NULL;
  }
  buf[n] = 0;
  fclose(f);
  *len = (size_t)n;
  return buf;
}
