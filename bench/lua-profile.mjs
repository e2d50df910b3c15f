// `npm run bench:lua-profile`: runs bench/lua-profile/profile.lua (needs lua5.1 on PATH: Debian
// `apt-get install lua5.1`) on lua/queue.lua as the library assembles it. A diagnostic for work
// on the script, not a benchmark: it shows which functions the Lua time goes to.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadScript } from '../dist/esm/redis/scripts.js';

const file = join(mkdtempSync(join(tmpdir(), 'llmrl-lua-')), 'queue.lua');
writeFileSync(file, loadScript('queue'));
const profiler = new URL('./lua-profile/profile.lua', import.meta.url).pathname;
try {
  process.stdout.write(execFileSync('lua5.1', [profiler, file, process.env.BENCH_CALLS ?? '20000'], { encoding: 'utf8' }));
} catch (error) {
  if (error.code === 'ENOENT') {
    console.error('lua5.1 is not on PATH: install it (Debian/Ubuntu: apt-get install lua5.1)');
    process.exit(1);
  }
  throw error;
}
