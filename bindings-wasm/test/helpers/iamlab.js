'use strict';
// Starts the IAM contention lab (tests/iamlab) for a test file and talks to its control
// endpoints. The lab prints one JSON line with its endpoint once it is ready.

const { spawn } = require('node:child_process');
const path = require('node:path');
const readline = require('node:readline');

const LAB = path.resolve(__dirname, '../../../tests/iamlab/iamlab.py');

/**
 * Start the lab; resolves to `{endpoint, stats(), reset(), config(obj), stop()}`.
 * @param {{serviceMs?: number}} [options]
 */
async function startLab(options = {}) {
  const python = process.env.PYTHON || 'python3';
  const child = spawn(python, [LAB, '--port', '0', '--service-ms', String(options.serviceMs ?? 20)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
    if (stderr.length > 20000) stderr = stderr.slice(-20000);
  });
  const lines = readline.createInterface({ input: child.stdout });
  const ready = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`iamlab did not start in 60 s: ${stderr}`)), 60000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`iamlab exited with ${code}: ${stderr}`));
    });
    lines.once('line', (line) => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(line));
      } catch (e) {
        reject(new Error(`iamlab printed ${line}: ${e}`));
      }
    });
  });
  const endpoint = ready.endpoint;
  async function call(method, route, body) {
    const res = await fetch(`${endpoint}${route}`, {
      method,
      headers: body ? { 'content-type': 'application/json' } : undefined,
      body: body ? JSON.stringify(body) : undefined,
    });
    if (!res.ok) throw new Error(`${method} ${route}: HTTP ${res.status}`);
    return res.json();
  }
  return {
    endpoint,
    stats: () => call('GET', '/_lab/stats'),
    reset: () => call('POST', '/_lab/reset'),
    config: (cfg) => call('POST', '/_lab/config', cfg),
    stop: () => new Promise((resolve) => {
      if (child.exitCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 5000).unref();
    }),
  };
}

module.exports = { startLab };
