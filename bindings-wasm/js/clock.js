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

/**
 * Call `wake` once `ms` have passed on `clock`; returns a function that cancels it. On
 * the system clock this is a bare timer (an AbortController costs more than a decision).
 */
function startTimer(clock, ms, wake) {
  if (clock === systemClock) {
    const handle = setTimeout(wake, ms);
    return () => clearTimeout(handle);
  }
  const controller = new AbortController();
  const fire = () => {
    if (!controller.signal.aborted) wake();
  };
  Promise.resolve(clock.sleep(ms, controller.signal)).then(fire, fire);
  return () => controller.abort();
}

module.exports = { systemClock, clockOf, startTimer };
