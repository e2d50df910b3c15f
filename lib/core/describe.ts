/**
 * A value as an error message shows it after "got": never throws (JSON.stringify does on BigInt
 * and cycles), and says what to do about a number given as a string, the usual shape of a
 * setting read from an environment variable.
 */
export function describe(value: unknown): string {
  if (value instanceof Error) return `${value.name}: ${value.message}`;
  if (typeof value === 'string') {
    if (value.trim() !== '' && Number.isFinite(Number(value))) {
      return `${JSON.stringify(value)}, a string: wrap a value read from the environment in Number(), such as Number(process.env.TPM)`;
    }
    return JSON.stringify(value);
  }
  if (typeof value === 'bigint') return `bigint ${value}n`;
  if (typeof value === 'symbol' || typeof value === 'function') return typeof value;
  if (value === null || typeof value !== 'object') return String(value);
  if (Array.isArray(value)) return 'an array';
  try {
    return `an object ${JSON.stringify(value)}`;
  } catch {
    return 'an object';
  }
}
