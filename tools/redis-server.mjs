// The one way this repository starts a throw-away redis-server from PATH: the test suite's global
// setup, the tests that stop or reconfigure a server of their own, and the benchmarks all use it.
// Plain JavaScript (with types beside it in redis-server.d.mts) so that Jest's global setup and
// the .mjs benchmarks can load it without a TypeScript step.
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const INSTALL_HINT =
  'install Redis (Debian/Ubuntu: sudo apt-get install -y redis-server; macOS: brew install redis) or set REDIS_URL=redis://host:port to a Redis you may flush';

/** A free TCP port on loopback (nothing listens on it once this resolves). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/** Whether a server answers PING on the port (NOAUTH counts: it is up, it wants a password). */
function answersPing(port, pingArgs) {
  return new Promise((resolve) => {
    execFile('redis-cli', ['-p', String(port), ...pingArgs, 'ping'], { encoding: 'utf8', timeout: 2000 }, (_error, stdout) => {
      resolve(stdout?.trim() === 'PONG' || stdout?.includes('NOAUTH') === true);
    });
  });
}

/**
 * A redis-server process of the caller's own, on loopback. Stops exactly what it started; can be
 * killed, frozen (SIGSTOP) and started again on the same port.
 */
export class RedisServerProcess {
  #child;
  #dir = mkdtempSync(join(tmpdir(), 'llmrl-redis-'));

  constructor(port, extraArgs, options) {
    this.port = port;
    this.extraArgs = extraArgs;
    this.options = options;
  }

  /**
   * Starts a server and resolves once it answers PING. `options`: `port` (default a free one),
   * `configFile` (passed first; Sentinel needs one it can rewrite), `tlsOnly` (listen with TLS
   * only on the port; certificates in extraArgs), `pingArgs` (extra redis-cli arguments for the
   * liveness PING), `detached` (in a process group of its own and not holding this process
   * open: Jest's global setup starts the server for the whole run, its teardown stops it).
   */
  static async start(extraArgs = [], options = {}) {
    const server = new RedisServerProcess(options.port ?? (await freePort()), extraArgs, options);
    await server.startAgain();
    return server;
  }

  get url() {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** The folder the server keeps its files in (removed by `stop`). */
  get directory() {
    return this.#dir;
  }

  /** The process id while it runs. */
  get pid() {
    return this.alive ? this.#child?.pid : undefined;
  }

  /** Whether the process is alive (a frozen one counts as alive). */
  get alive() {
    const child = this.#child;
    return child !== undefined && child.exitCode === null && child.signalCode === null;
  }

  /** (Re)starts the server on the same port and resolves once it answers. */
  async startAgain() {
    if (this.alive) return;
    const { configFile, tlsOnly, pingArgs = [], detached = false } = this.options;
    const listen = tlsOnly ? ['--port', '0', '--tls-port', String(this.port)] : ['--port', String(this.port)];
    const args = [
      ...(configFile ? [configFile] : []),
      ...listen,
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      this.#dir,
      ...this.extraArgs,
    ];
    const child = spawn('redis-server', args, { stdio: 'ignore', detached });
    if (detached) child.unref();
    this.#child = child;
    const failed = new Promise((_, reject) => {
      child.once('error', (error) => reject(new Error(`could not start redis-server (${error.message}): ${INSTALL_HINT}`)));
      child.once('exit', (code) => reject(new Error(`redis-server on port ${this.port} exited with code ${code} before answering`)));
    });
    failed.catch(() => undefined);
    const until = Date.now() + 5000;
    while (!(await Promise.race([answersPing(this.port, pingArgs), failed]))) {
      if (Date.now() > until) throw new Error(`redis-server on port ${this.port} did not answer PING within 5 s`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    child.removeAllListeners('exit');
  }

  /** Freezes the server (SIGSTOP): connections stay open, nothing answers. */
  freeze() {
    if (this.alive) this.#child.kill('SIGSTOP');
  }

  /** Lets a frozen server go on (SIGCONT). */
  thaw() {
    if (this.alive) this.#child.kill('SIGCONT');
  }

  /** Kills the server (SIGKILL: no goodbye to clients) and resolves once it is gone. */
  async kill() {
    const child = this.#child;
    if (!child || !this.alive) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    // A detached server is unref'd; without this the event loop may empty before its 'exit'
    // event comes, and the process end there with code 0 (Jest's teardown did: every failing
    // run exited 0).
    child.ref();
    child.kill('SIGKILL');
    await exited;
  }

  /** Kills the server and removes its folder. */
  async stop() {
    await this.kill();
    rmSync(this.#dir, { recursive: true, force: true });
  }
}

/** Whether redis-server is on PATH. */
export function redisServerInstalled() {
  return new Promise((resolve) => execFile('redis-server', ['--version'], (error) => resolve(!error)));
}
