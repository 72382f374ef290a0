import { describe, expect, it } from 'vitest';
import { placeholders, render } from '../../src/initramfs/render.ts';
import { readTemplate, type TemplateName } from '../../src/initramfs/templates.ts';
import {
  hookVars,
  keyscriptVars,
  kernelPostinstVars,
  renderBootFiles,
} from '../../src/initramfs/boot-files.ts';

describe('render', () => {
  it('replaces every placeholder with its value', () => {
    expect(render('a=@A@ b=@B_2@ a=@A@ "$@"', { A: '1', B_2: 'two' })).toBe('a=1 b=two a=1 "$@"');
  });

  it('refuses a placeholder without a value', () => {
    expect(() => render('x=@X@ y=@Y@', { X: '1' })).toThrow(/no value for '@Y@'/);
  });

  it('refuses a value that no placeholder asks for', () => {
    expect(() => render('x=@X@', { X: '1', EXTRA: '2' })).toThrow(/no placeholder '@EXTRA@'/);
  });

  it('refuses a value that would leave a placeholder behind', () => {
    expect(() => render('x=@X@', { X: '@Y@' })).toThrow(/left over/);
  });
});

describe('boot-script templates', () => {
  const cases: Array<[TemplateName, Record<string, string>]> = [
    ['keyscript', keyscriptVars({ zkunlockifs: '/sbin/zkunlockifs' })],
    ['hook', hookVars({ zkunlockifs: '/sbin/zkunlockifs' })],
    ['kernel-postinst', kernelPostinstVars({ zkunlockifs: '/sbin/zkunlockifs' })],
  ];
  it.each(cases)('the %s template asks for exactly the values zkluks provides', (name, vars) => {
    expect(placeholders(readTemplate(name)).sort()).toEqual(Object.keys(vars).sort());
  });

  it('renders every boot file with no placeholder left', () => {
    const files = renderBootFiles({ zkunlockifs: '/usr/sbin/zkunlockifs', timeoutSeconds: 7 });
    expect(files.map((f) => f.path)).toEqual([
      '/lib/cryptsetup/scripts/zkluks',
      '/etc/initramfs-tools/hooks/zkluks',
      '/etc/kernel/postinst.d/zz-zkluks',
      '/etc/zkluks/boot.conf',
    ]);
    for (const f of files) expect(f.content).not.toMatch(/@[A-Z][A-Z0-9_]*@/);
    expect(files[0]?.content).toContain('TIMEOUT=10\n');
    expect(files[0]?.content).toContain('UNLOCK=${ZKLUKS_UNLOCK:-/usr/sbin/zkunlockifs}');
    expect(files[3]?.content).toContain('ZKLUKS_TIMEOUT=7\n');
  });

  it('refuses a value that is not a plain path', () => {
    expect(() => keyscriptVars({ zkunlockifs: "/x'; rm -rf /" })).toThrow(/not a plain path/);
  });
});
