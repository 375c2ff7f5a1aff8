/* A small JSON reader, writer and comparer for the writelane C tests (not part of the
 * library). Strings keep their length (they may hold NUL); numbers keep their text. */
#ifndef WL_TEST_JSON_H
#define WL_TEST_JSON_H

#include <stddef.h>
#include <stdint.h>

typedef enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ } jtype;

typedef struct jv {
  jtype t;
  int b;           /* J_BOOL */
  char *s;         /* J_STR: decoded text; J_NUM: the number's text */
  size_t slen;
  struct jv **items; /* J_ARR, J_OBJ */
  char **keys;       /* J_OBJ */
  size_t *keylens;
  size_t n, cap;
} jv;

/* A growable byte buffer. */
typedef struct {
  char *p;
  size_t len, cap;
} sbuf;

void sb_put(sbuf *b, const char *s, size_t n);
void sb_puts(sbuf *b, const char *s);
void sb_free(sbuf *b);

/* Parse; NULL on error with a message in err. */
jv *json_parse(const char *text, size_t len, char *err, size_t errcap);
void json_free(jv *v);
/* Member of an object, or NULL when absent (or v is not an object). */
const jv *json_get(const jv *v, const char *key);
int json_is_null(const jv *v); /* NULL pointer or JSON null */
int json_equal(const jv *a, const jv *b);
/* Compact JSON text, appended to b. */
void json_write(const jv *v, sbuf *b);
int64_t json_int(const jv *v);
uint64_t json_u64(const jv *v);

jv *jnull(void);
jv *jbool(int b);
jv *jint(int64_t i);
jv *ju64(uint64_t i);
jv *jstr(const char *s, size_t n);
jv *jcstr(const char *s);
jv *jarr(void);
jv *jobj(void);
void jpush(jv *arr, jv *item);
void jset(jv *obj, const char *key, jv *item);

char *read_file(const char *path, size_t *len);

#endif
