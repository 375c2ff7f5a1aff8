/* Per-decision cost of the engine through the C ABI, called from C: the same cycle as
 * benches/decision.rs (one logical write with one conflict, 11 calls). Prints ns/call. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "writelane.h"

#define S(lit) lit, sizeof(lit) - 1

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static double run(wl_engine *e, long cycles, uint64_t *now) {
  static const char *entities[4] = {"role/a", "role/b", "role/c", "role/d"};
  wl_command c;
  wl_input in;
  double start = now_ns();
  long i;
  for (i = 0; i < cycles; i++) {
    uint64_t op;
    if (wl_engine_submit(e, entities[i % 4], 6, *now, NULL, &op) != WL_STATUS_OK) exit(1);
    wl_engine_poll_command(e, &c);
    if (c.kind != WL_COMMAND_KIND_READ) exit(1);
    memset(&in, 0, sizeof in);
    in.op = op;
    in.kind = WL_INPUT_KIND_READ_DONE;
    in.token = (wl_str){"v1", 2};
    if (wl_engine_handle(e, *now, &in) != WL_STATUS_OK) exit(1);
    wl_engine_poll_command(e, &c);
    if (c.kind != WL_COMMAND_KIND_WRITE) exit(1);
    in.kind = WL_INPUT_KIND_WRITE_FAILED;
    in.token = (wl_str){NULL, 0};
    in.failure.code = (wl_str){"ConcurrentModification", 22};
    in.failure.http_status = 409;
    if (wl_engine_handle(e, *now, &in) != WL_STATUS_OK) exit(1);
    (*now)++;
    if (wl_engine_handle_timeout(e, *now) != WL_STATUS_OK) exit(1);
    wl_engine_poll_command(e, &c);
    if (c.kind != WL_COMMAND_KIND_READ) exit(1);
    memset(&in.failure, 0, sizeof in.failure);
    in.kind = WL_INPUT_KIND_READ_DONE;
    in.token = (wl_str){"v1", 2};
    if (wl_engine_handle(e, *now, &in) != WL_STATUS_OK) exit(1);
    wl_engine_poll_command(e, &c);
    if (c.kind != WL_COMMAND_KIND_WRITE) exit(1);
    in.kind = WL_INPUT_KIND_WRITE_DONE;
    in.token = (wl_str){"v2", 2};
    if (wl_engine_handle(e, *now, &in) != WL_STATUS_OK) exit(1);
    wl_engine_poll_command(e, &c);
    if (c.kind != WL_COMMAND_KIND_FINISH) exit(1);
  }
  return (now_ns() - start) / ((double)cycles * 11);
}

int main(int argc, char **argv) {
  const char policy[] =
      "{\"preset\":\"iam\",\"retry\":{\"conflict\":{\"base_ms\":1,\"cap_ms\":1,\"jitter\":\"none\"}},"
      "\"spike\":{\"enabled\":false},\"budget\":{\"enabled\":false},\"tokens\":{\"handoff\":false}}";
  long cycles = argc > 1 ? atol(argv[1]) : 50000;
  wl_engine *e;
  uint64_t now = 0;
  double best = 1e18;
  int r;
  if (wl_engine_new(S(policy), 1, &e, NULL) != WL_STATUS_OK) return 1;
  run(e, 1000, &now);
  for (r = 0; r < 7; r++) {
    double ns = run(e, cycles, &now);
    if (ns < best) best = ns;
  }
  printf("c_abi_from_c_ns_per_call=%.1f\n", best);
  wl_engine_free(e);
  return 0;
}
