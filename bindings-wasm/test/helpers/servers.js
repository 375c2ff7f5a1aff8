'use strict';
// Starts the real servers the lease-store tests talk to, on free loopback ports:
// `redis-server` (Debian package) and a moto server (PyPI) playing DynamoDB. Each
// resolves to a handle with `stop()` (and `start()` again on the same port, for tests that
// stop a store mid-run).

const { spawn } = require('node:child_process');
const net = require('node:net');
const path = require('node:path');

/** A free TCP port on 127.0.0.1. */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Resolve once something accepts connections on the port (or reject after `ms`). */
async function waitForPort(port, ms, child, stderr) {
  const until = Date.now() + ms;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}: ${stderr()}`);
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`server did not listen on ${port} within ${ms} ms: ${stderr()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Spawn `cmd args` and wait for it to listen on `port`; returns a stoppable process. */
async function serve(cmd, args, port, readyMs) {
  let log = '';
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const keep = (d) => {
    log += d;
    if (log.length > 20000) log = log.slice(-20000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  await waitForPort(port, readyMs, child, () => log);
  return {
    child,
    log: () => log,
    stop: () => new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 5000).unref();
    }),
  };
}

/**
 * A redis-server on a free port, without persistence. Resolves to
 * `{port, url, stop(), start()}`; `start()` restarts a stopped server on the same port.
 */
async function startRedis() {
  const port = await freePort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
  let proc = await serve('redis-server', args, port, 20000);
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    stop: () => proc.stop(),
    start: async () => {
      proc = await serve('redis-server', args, port, 20000);
    },
  };
}

/**
 * A moto server (DynamoDB and the rest of AWS, in memory) on a free port, carrying
 * requests out one at a time so that conditional writes are atomic as in DynamoDB (see
 * tests/iamlab/moto_atomic.py). Resolves to `{port, endpoint, stop(), start()}`.
 */
async function startMoto() {
  const port = await freePort();
  const python = process.env.PYTHON || 'python3';
  const args = [path.join(__dirname, '..', '..', '..', 'tests', 'iamlab', 'moto_atomic.py'), String(port)];
  let proc = await serve(python, args, port, 60000);
  return {
    port,
    endpoint: `http://127.0.0.1:${port}`,
    stop: () => proc.stop(),
    start: async () => {
      proc = await serve(python, args, port, 60000);
    },
  };
}

/** Fake credentials and a region for the AWS SDK against local servers. */
const AWS_TEST_CONFIG = Object.freeze({
  region: 'us-east-1',
  credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
});

module.exports = { freePort, startRedis, startMoto, AWS_TEST_CONFIG };
