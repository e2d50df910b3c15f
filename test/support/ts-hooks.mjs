// Module hooks that let a plain `node` child process run the library's TypeScript sources, the
// way the test files see them under ts-jest: `./x.js` imports resolve to `./x.ts`, and .ts files
// are transpiled module by module (types stripped, no type-check: `npm run typecheck` does that).
// Transpiled output is cached by content hash, so only the first child of a run pays for it.
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const CACHE_DIR = join(tmpdir(), 'llmrl-ts-cache');
// Read from its package.json: loading the compiler itself takes half a second.
const TS_VERSION = JSON.parse(readFileSync(createRequire(import.meta.url).resolve('typescript/package.json'), 'utf8')).version;
let ts;

async function transpile(source, path) {
  const key = createHash('sha1').update(TS_VERSION).update('\0').update(path).update('\0').update(source).digest('hex');
  const cached = join(CACHE_DIR, `${key}.js`);
  if (existsSync(cached)) return readFileSync(cached, 'utf8');
  ts ??= (await import('typescript')).default;
  const { outputText } = ts.transpileModule(source, {
    fileName: path,
    compilerOptions: {
      module: ts.ModuleKind.ESNext,
      target: ts.ScriptTarget.ES2022,
      experimentalDecorators: true,
      emitDecoratorMetadata: true,
      useDefineForClassFields: true,
      inlineSourceMap: true,
      inlineSources: true,
    },
  });
  mkdirSync(CACHE_DIR, { recursive: true });
  // Written aside and renamed, so a child never reads another's half-written file.
  const partial = `${cached}.${process.pid}.tmp`;
  writeFileSync(partial, outputText);
  renameSync(partial, cached);
  return outputText;
}

export async function resolve(specifier, context, nextResolve) {
  if ((specifier.startsWith('./') || specifier.startsWith('../')) && specifier.endsWith('.js') && context.parentURL?.endsWith('.ts')) {
    const asTs = new URL(specifier.replace(/\.js$/, '.ts'), context.parentURL);
    if (existsSync(fileURLToPath(asTs))) return { url: asTs.href, format: 'module', shortCircuit: true };
  }
  return nextResolve(specifier, context);
}

export async function load(url, context, nextLoad) {
  if (!url.startsWith('file:') || !url.endsWith('.ts')) return nextLoad(url, context);
  const path = fileURLToPath(url);
  return { format: 'module', source: await transpile(readFileSync(path, 'utf8'), path), shortCircuit: true };
}
