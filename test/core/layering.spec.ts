// The layers of lib/ depend one way (CONTRIBUTING.md, Layout): core names no store, no Nest and
// no ioredis; providers name neither Nest nor ioredis. Read from the import lines of each file.
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

const lib = join(import.meta.dirname, '..', '..', 'lib');

function importsOf(folder: string): { file: string; from: string }[] {
  const found: { file: string; from: string }[] = [];
  for (const entry of readdirSync(join(lib, folder), { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || !entry.name.endsWith('.ts')) continue;
    const path = join(entry.parentPath, entry.name);
    const text = readFileSync(path, 'utf8');
    for (const m of text.matchAll(/^\s*(?:import|export)\b[^;]*?from\s+'([^']+)'/gms)) {
      found.push({ file: relative(lib, path), from: m[1] });
    }
  }
  return found;
}

describe('the layers of lib/', () => {
  it('core imports no store, no Nest and no ioredis', () => {
    const imports = importsOf('core');
    expect(imports.length).toBeGreaterThan(20);
    const wrong = imports.filter(({ from }) => /^\.\.\/(memory|redis|nest)\//.test(from) || /^(@nestjs\/|ioredis)/.test(from));
    expect(wrong).toEqual([]);
  });

  it('providers import neither Nest nor ioredis nor the Nest adapter', () => {
    const imports = importsOf('providers');
    expect(imports.length).toBeGreaterThan(10);
    const wrong = imports.filter(({ from }) => /^\.\.\/(nest|redis)\//.test(from) || /^(@nestjs\/|ioredis)/.test(from));
    expect(wrong).toEqual([]);
  });
});
