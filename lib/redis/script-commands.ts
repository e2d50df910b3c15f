import { readdirSync, readFileSync } from 'node:fs';

const LUA_DIR = new URL('../../lua/', import.meta.url);
const CALL = /redis\.p?call\(\s*'([A-Za-z]+)'/g;

let commands: readonly string[] | undefined;

/**
 * Every Redis command the limiter's scripts call (read from lua/ once), upper case and sorted.
 * An ACL user of the limiter needs each of them besides EVAL and EVALSHA: Redis checks the
 * commands a script calls against the caller's ACL.
 */
export function scriptCommands(): readonly string[] {
  if (!commands) {
    const found = new Set<string>();
    for (const dir of [LUA_DIR, new URL('includes/', LUA_DIR)]) {
      for (const file of readdirSync(dir).filter((f) => f.endsWith('.lua'))) {
        for (const [, name] of readFileSync(new URL(file, dir), 'utf8').matchAll(CALL)) found.add(name.toUpperCase());
      }
    }
    commands = Object.freeze([...found].sort());
  }
  return commands;
}
