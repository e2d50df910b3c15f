// Both builds carry the Lua scripts compiled in (lib/redis/lua-sources.generated.ts), so the
// checked-in module must be exactly what scripts/generate-lua.mjs makes of lua/ today.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const root = join(import.meta.dirname, '..', '..');

describe('the generated Lua module', () => {
  it('matches lua/ (after editing a .lua file, run npm run generate:lua)', async () => {
    const generator = (await import(pathToFileURL(join(root, 'scripts', 'generate-lua.mjs')).href)) as {
      generateLuaModule(): string;
      GENERATED: string;
    };
    expect(readFileSync(generator.GENERATED, 'utf8')).toBe(generator.generateLuaModule());
  });
});
