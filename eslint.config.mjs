// ESLint for the library, its tests, benchmarks and sample: typescript-eslint's type-aware
// recommended rules, with the few exceptions this codebase needs said next to each. Formatting is
// Prettier's job (npm run format:check), not ESLint's.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: ['dist/**', 'dist-check/**', 'coverage/**', 'sample/dist/**', 'bench/provider/.build/**', 'consumers/**'],
  },
  js.configs.recommended,
  {
    files: ['**/*.ts'],
    extends: [tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // Unused names are errors, except those deliberately ignored with a leading underscore.
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      // Nest modules and decorator targets are classes with only static members or none at all.
      '@typescript-eslint/no-extraneous-class': 'off',
    },
  },
  {
    // The sample imports the package by name. Its own tsconfig builds it against dist/ (as a user
    // would); linted, it is read with the root tsconfig, whose paths map the name to lib/, so
    // lint needs no build.
    files: ['sample/**/*.ts'],
    languageOptions: {
      parserOptions: { projectService: false, project: './tsconfig.json', tsconfigRootDir: import.meta.dirname },
    },
  },
  {
    // `async` without `await` is deliberate here: the memory store, test doubles and benchmark
    // adapters implement Promise-returning interfaces (the store port, a limiter, an SDK's stream
    // method, a Nest async factory) with synchronous work, where a throw must still become a
    // rejection; and async generators stand in for provider streams.
    files: ['lib/memory/memory-store.ts', 'test/**/*.ts', 'bench/**/*.ts', 'sample/**/*.ts'],
    rules: {
      '@typescript-eslint/require-await': 'off',
    },
  },
  {
    // Tests reach into private state on purpose, hand partial objects to the code under test, and
    // read JSON bodies as `any` whose shape their assertions check.
    files: ['test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/unbound-method': 'off',
    },
  },
  {
    files: ['**/*.mjs', '**/*.js'],
    languageOptions: {
      globals: {
        process: 'readonly',
        console: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        performance: 'readonly',
        globalThis: 'readonly',
        URL: 'readonly',
        Buffer: 'readonly',
        AbortController: 'readonly',
        fetch: 'readonly',
        setImmediate: 'readonly',
      },
    },
    rules: {
      'no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
    },
  },
);
