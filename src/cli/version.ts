// The zkluks version, from package.json at build time (the bundle defines ZKLUKS_VERSION).
declare const ZKLUKS_VERSION: string | undefined;

export const VERSION: string = typeof ZKLUKS_VERSION === 'string' ? ZKLUKS_VERSION : 'development';
