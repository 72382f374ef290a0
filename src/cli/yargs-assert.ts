// The two checks yargs' platform shim takes from node:assert, so that no command loads node:assert
// (and the modules it pulls in) at start-up only for yargs' internal invariants. The bundle maps
// yargs' `assert` import here (scripts/bundle.mjs). Like node:assert's, they compare with Object.is.

export function strictEqual(actual: unknown, expected: unknown, message?: string): void {
  if (!Object.is(actual, expected)) {
    throw new Error(message ?? `expected ${String(expected)}, got ${String(actual)}`);
  }
}

export function notStrictEqual(actual: unknown, expected: unknown, message?: string): void {
  if (Object.is(actual, expected)) throw new Error(message ?? `expected anything but ${String(expected)}`);
}
