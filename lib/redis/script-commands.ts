import { LUA_FILES } from './lua-sources.generated.js';

const CALL = /redis\.p?call\(\s*'([A-Za-z]+)'/g;

let commands: readonly string[] | undefined;

/**
 * Every Redis command the limiter's scripts call (from every file of lua/), upper case and sorted.
 * An ACL user of the limiter needs each of them besides EVAL and EVALSHA: Redis checks the
 * commands a script calls against the caller's ACL.
 */
export function scriptCommands(): readonly string[] {
  if (!commands) {
    const found = new Set<string>();
    for (const source of Object.values(LUA_FILES)) {
      for (const [, name] of source.matchAll(CALL)) found.add(name.toUpperCase());
    }
    commands = Object.freeze([...found].sort());
  }
  return commands;
}
