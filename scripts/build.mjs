// Builds the package twice from lib/: dist/esm (import) and dist/commonjs (require), each with its
// own declarations, after regenerating the Lua module. A package.json in each folder tells Node
// and TypeScript which format its .js and .d.ts files are (the root package is "type": "module").
import { spawn } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');

function run(args) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: root, stdio: 'inherit' });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${args.join(' ')} exited with ${code}`))));
  });
}

const started = performance.now();
await run([join(root, 'scripts', 'generate-lua.mjs')]);
rmSync(join(root, 'dist'), { recursive: true, force: true });
await Promise.all([run([tsc, '-p', 'tsconfig.build.json']), run([tsc, '-p', 'tsconfig.cjs.json'])]);
for (const [dir, type] of [
  ['esm', 'module'],
  ['commonjs', 'commonjs'],
]) {
  mkdirSync(join(root, 'dist', dir), { recursive: true });
  writeFileSync(join(root, 'dist', dir, 'package.json'), `${JSON.stringify({ type }, null, 2)}\n`);
}
console.log(`built dist/esm and dist/commonjs in ${((performance.now() - started) / 1000).toFixed(1)} s`);
