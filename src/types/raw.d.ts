// `import text from './file?raw'`: the file's content as a string (vitest natively; esbuild through
// the plugin in scripts/bundle.mjs).
declare module '*?raw' {
  const text: string;
  export default text;
}
