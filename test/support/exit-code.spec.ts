// The test command's exit code is what CI reads: a run with a failing test must end non-zero,
// with the suite's own global setup and teardown (a throw-away redis-server) around it. The
// teardown once let the process end before Jest set the code, and every failing run exited 0.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..', '..');

function runJest(spec: string): number | null {
  // Inside the package (an ES module like the tests), in a folder git ignores and the suite's roots do not reach.
  mkdirSync(join(root, '.redis-test'), { recursive: true });
  const dir = mkdtempSync(join(root, '.redis-test', 'exit-probe-'));
  try {
    writeFileSync(join(dir, 'probe.spec.ts'), spec);
    const env = { ...process.env };
    // The real global setup starts its own redis-server, as `npm test` does without REDIS_URL.
    delete env.REDIS_URL;
    const result = spawnSync(
      process.execPath,
      [
        '--experimental-vm-modules',
        join(root, 'node_modules', 'jest', 'bin', 'jest.js'),
        '-c',
        join(root, 'jest.config.mjs'),
        '--roots',
        dir,
      ],
      { cwd: root, env, encoding: 'utf8', timeout: 120_000 },
    );
    return result.status;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("the test command's exit code", () => {
  it('is non-zero when a test fails, and zero when all pass', () => {
    expect(runJest("it('fails', () => { expect(1).toBe(2); });\n")).toBe(1);
    expect(runJest("it('passes', () => { expect(1).toBe(1); });\n")).toBe(0);
  }, 240_000);
});
