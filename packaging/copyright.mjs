// Prints the package's copyright file (machine-readable format): zkluks under LICENSE, then each npm
// package bundled into /usr/lib/zkluks with the licence text it ships. The bundled set is the
// non-development part of package-lock.json less the optional native i2c-bus (never bundled).
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';

const repo = resolve(new URL('..', import.meta.url).pathname);
const lock = JSON.parse(readFileSync(join(repo, 'package-lock.json'), 'utf8'));
const notBundled = new Set(['i2c-bus', 'bindings', 'file-uri-to-path', 'nan']);
const para = (text) =>
  text
    .trim()
    .split('\n')
    .map((l) => (l.trim() === '' ? ' .' : ` ${l.trimEnd()}`))
    .join('\n');

const out = [
  'Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/',
  'Upstream-Name: zkluks',
  '',
  'Files: *',
  'Copyright: 2026 zkluks contributors',
  'License: MIT',
  '',
];
const notices = new Set(['2026 zkluks contributors']);
const bundled = [];
const texts = new Map();
for (const [path, meta] of Object.entries(lock.packages)) {
  if (!path || meta.dev) continue;
  const name = path.replace(/^.*node_modules\//, '');
  if (notBundled.has(name)) continue;
  const dir = join(repo, path);
  const file = existsSync(dir) ? readdirSync(dir).find((f) => /^(licen[cs]e|copying)/i.test(f)) : undefined;
  if (!file) throw new Error(`no licence file in ${path}; cannot write the copyright for ${name}`);
  const text = readFileSync(join(dir, file), 'utf8');
  const found = text
    .split('\n')
    .filter((l) => /copyright\s+(\(c\)|©|\d)/i.test(l))
    .map((l) => l.trim().replace(/^copyright\s*(\(c\)|©)?\s*/i, ''));
  for (const n of found.length > 0 ? found : [`the ${name} authors`]) notices.add(n);
  bundled.push(`${name} ${meta.version} (${meta.license})`);
  if (!texts.has(meta.license)) texts.set(meta.license, text);
}
const names = [...texts.keys()].sort();
out.push(
  'Files: usr/lib/zkluks/*',
  `Copyright: ${[...notices].join('\n ')}`,
  `License: ${names.join(' and ')}`,
  `Comment: /usr/lib/zkluks bundles zkluks with these npm packages: ${bundled.join(', ')}.`,
  '',
);
// Last, so it overrides usr/lib/zkluks/* (later paragraphs win). Read beside the code at run time and kept under its own licence: the distro's kernel hook that
// `zkluks adopt` puts back (src/migrate/adopt/layout.ts), byte for byte as initramfs-tools ships it.
out.push(
  'Files: usr/lib/zkluks/debian-initramfs-tools.postinst',
  'Copyright: the initramfs-tools authors (Debian)',
  'License: GPL-2+',
  " This file is /etc/kernel/postinst.d/initramfs-tools from Debian's initramfs-tools 0.142,",
  ' unchanged. It is free software; you can redistribute it and/or modify it under the terms of the',
  ' GNU General Public License as published by the Free Software Foundation; either version 2 of the',
  ' License, or (at your option) any later version.',
  ' .',
  ' On Debian systems the full text of the GNU General Public License version 2 is in',
  ' /usr/share/common-licenses/GPL-2.',
  '',
);
for (const name of names) {
  if (name === 'MIT') {
    out.push(
      'License: MIT',
      para(readFileSync(join(repo, 'LICENSE'), 'utf8').replace(/^MIT License\s*/, '')),
      '',
    );
  } else if (name === 'Apache-2.0') {
    out.push(
      'License: Apache-2.0',
      ' On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0.',
      '',
    );
  } else {
    out.push(`License: ${name}`, para(texts.get(name).replace(/^.*copyright.*$/im, '')), '');
  }
}
process.stdout.write(out.join('\n'));
