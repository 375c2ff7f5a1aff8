'use strict';
/**
 * The clock a `Lane` reads and sleeps on. The engine never reads a clock: the lane passes
 * `clock.nowMs()` into every call and sleeps with `clock.sleep` where the engine says. The
 * default is the process's monotonic clock and `setTimeout`; tests inject a virtual one.
 *
 * @module writelane/clock
 */

const { argumentError } = require('./errors.js');

const origin = performance.now();

/**
 * Whole milliseconds on the monotonic clock, and a sleep on a Node timer that an
 * `AbortSignal` cuts short.
 * @type {{nowMs(): number, sleep(ms: number, signal?: AbortSignal): Promise<void>}}
 */
const systemClock = Object.freeze({
  nowMs() {
    return Math.floor(performance.now() - origin);
  },
  sleep(ms, signal) {
    return new Promise((resolve) => {
      if (signal?.aborted) {
        resolve();
        return;
      }
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal?.addEventListener('abort', done, { once: true });
    });
  },
});

/** The `clock` option: an object with `nowMs()` and `sleep(ms, signal)`, or the system's. */
function clockOf(options, field = 'options.clock') {
  const clock = options?.clock;
  if (clock === undefined || clock === null) return systemClock;
  if (typeof clock !== 'object' || typeof clock.nowMs !== 'function' || typeof clock.sleep !== 'function') {
    throw argumentError(field, 'must be an object with nowMs() and sleep(ms, signal)', clock);
  }
  return clock;
}

module.exports = { systemClock, clockOf };
