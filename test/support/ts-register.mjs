// `node --import ./test/support/ts-register.mjs child.ts` runs a TypeScript child process
// against the library's sources (see ts-hooks.mjs).
import { register } from 'node:module';

register('./ts-hooks.mjs', import.meta.url);
