import { describe, expect, it } from 'vitest';
import { RefusedError } from '../../src/errors.ts';
import { BOOT_PATHS } from '../../src/initramfs/boot-files.ts';
import { parseCrypttab, findEntry } from '../../src/initramfs/crypttab.ts';
import type { InstallFacts } from '../../src/initramfs/install-facts.ts';
import { planInstall, planRemove, updateCommand } from '../../src/initramfs/plan-install.ts';

const UUID = '0b6d4a5e-3c1f-4a8e-9d2b-7f1e2c3d4e5f';

function facts(over: Partial<InstallFacts> = {}, crypttab = '# mine\n'): InstallFacts {
  return {
    root: '/',
    crypttab,
    crypttabBackup: null,
    crypttabWasAbsent: false,
    installed: {},
    zkunlockifs: '/sbin/zkunlockifs',
    zymbitState: true,
    zkenv: true,
    volume: {
      name: null,
      uuid: UUID,
      device: '/dev/mmcblk0p2',
      entry: findEntry(parseCrypttab(crypttab), { uuid: UUID }) ?? null,
      hasZymkeyToken: true,
      headerError: null,
    },
    modules: 'most',
    bootImages: { kind: 'generic', bootPartition: null, images: [] },
    kernels: [],
    console: null,
    ...over,
  };
}

describe('planInstall', () => {
  it('backs up crypttab, writes the four files and the line, then rebuilds and verifies', () => {
    const plan = planInstall(facts(), { noUpdate: false });
    expect(plan.steps.map((s) => `${s.kind} ${'path' in s ? s.path : ''}`.trim())).toEqual([
      `backup-crypttab ${BOOT_PATHS.crypttabBackup}`,
      `write-file ${BOOT_PATHS.keyscript}`,
      `write-file ${BOOT_PATHS.hook}`,
      `write-file ${BOOT_PATHS.kernelPostinst}`,
      `write-file ${BOOT_PATHS.bootConf}`,
      'write-crypttab /etc/crypttab',
      'update-initramfs',
      'verify-images',
    ]);
    expect(plan.volume).toEqual({ name: 'cryptroot', uuid: UUID, device: '/dev/mmcblk0p2' });
  });

  it('refuses when zkunlockifs is not installed, since every boot would skip the Zymkey', () => {
    expect(() => planInstall(facts({ zkunlockifs: null }), { noUpdate: true })).toThrow(RefusedError);
    expect(() => planInstall(facts({ zkunlockifs: null }), { noUpdate: true })).toThrow(
      /zkunlockifs is not installed/,
    );
  });

  it('refuses a volume whose header has no zkluks-zymkey token', () => {
    const f = facts();
    f.volume.hasZymkeyToken = false;
    expect(() => planInstall(f, { noUpdate: true })).toThrow(/has no zkluks-zymkey token/);
  });

  it('refuses to reuse a crypttab name that belongs to another device', () => {
    const f = facts({}, 'cryptroot UUID=11111111-2222-3333-4444-555555555555 none luks\n');
    expect(() => planInstall(f, { noUpdate: true })).toThrow(RefusedError);
  });

  it('keeps an existing boot.conf and an unchanged crypttab line, and keeps the first backup', () => {
    const first = planInstall(facts(), { noUpdate: true });
    const written = Object.fromEntries(
      first.steps.flatMap((s) => (s.kind === 'write-file' ? [[s.path, s.content]] : [])),
    );
    const crypttab = first.steps.find((s) => s.kind === 'write-crypttab');
    const again = facts(
      { installed: { ...written, [BOOT_PATHS.bootConf]: 'ZKLUKS_TIMEOUT=30\n' }, crypttabBackup: '# mine\n' },
      crypttab && 'content' in crypttab ? crypttab.content : '',
    );
    const plan = planInstall(again, { noUpdate: true });
    expect(plan.steps).toEqual([]);
    expect(plan.unchanged).toContain(BOOT_PATHS.bootConf);
    expect(plan.unchanged).toContain('/etc/crypttab');
  });

  it('rewrites boot.conf when a timeout is given', () => {
    const plan = planInstall(facts({ installed: { [BOOT_PATHS.bootConf]: 'x' } }), {
      noUpdate: true,
      timeoutSeconds: 20,
    });
    const conf = plan.steps.find((s) => s.kind === 'write-file' && s.path === BOOT_PATHS.bootConf);
    expect(conf && 'content' in conf ? conf.content : '').toContain('ZKLUKS_TIMEOUT=20\n');
  });

  it('warns about MODULES=dep and a missing wake-pin file', () => {
    const plan = planInstall(facts({ modules: 'dep', zkenv: false }), { noUpdate: true });
    expect(plan.warnings.join('\n')).toMatch(/MODULES=dep/);
    expect(plan.warnings.join('\n')).toMatch(/zkenv\.conf is missing/);
  });

  it('reports a key file it replaces and a tries=1 it raises, for the summary', () => {
    const crypttab = `cryptroot UUID=${UUID} /etc/keys/root.key luks,tries=1\n`;
    const plan = planInstall(facts({}, crypttab), { noUpdate: true });
    expect(plan.notes).toEqual([
      "crypttab key file '/etc/keys/root.key' becomes 'none': the zkluks keyscript gives the key",
      'crypttab tries=1 becomes tries=2: the passphrase prompt comes on the try after a rejected Zymkey key',
    ]);
    const step = plan.steps.find((s) => s.kind === 'write-crypttab');
    expect(step && 'after' in step ? step.after : '').toMatch(/ none luks,initramfs,tries=2,keyscript=/);
  });

  it('backs up a missing crypttab as a marker, so remove deletes the file it created', () => {
    const plan = planInstall(facts({ crypttab: null }, ''), { noUpdate: true });
    expect(plan.steps[0]).toMatchObject({ kind: 'backup-crypttab', path: '/etc/zkluks/crypttab.absent' });
  });

  it('rebuilds inside the tree with chroot when --root is not /', () => {
    expect(updateCommand('/')).toEqual(['update-initramfs', '-u', '-k', 'all']);
    expect(updateCommand('/mnt/pi')).toEqual(['chroot', '/mnt/pi', 'update-initramfs', '-c', '-k', 'all']);
  });
});

describe('planRemove', () => {
  it('leaves a crypttab line that does not use the zkluks keyscript alone', () => {
    const plan = planRemove(facts({}, `cryptroot UUID=${UUID} none luks\n`), { noUpdate: true });
    expect(plan.steps).toEqual([]);
    expect(plan.warnings[0]).toMatch(/does not use the zkluks keyscript/);
  });

  it('restores the line from the backup and removes the keyscript last', () => {
    const ours = `cryptroot UUID=${UUID} none luks,initramfs,keyscript=${BOOT_PATHS.keyscript}\n`;
    const f = facts(
      {
        crypttabBackup: 'cryptroot /dev/mmcblk0p2 none luks,discard\n',
        installed: { [BOOT_PATHS.keyscript]: 'x', [BOOT_PATHS.hook]: 'x' },
      },
      ours,
    );
    const plan = planRemove(f, { noUpdate: false });
    expect(plan.steps.map((s) => s.kind)).toEqual([
      'write-crypttab',
      'remove-file',
      'remove-file',
      'remove-file',
      'update-initramfs',
    ]);
    expect(plan.steps[0]).toMatchObject({
      kind: 'write-crypttab',
      action: 'restore',
      content: 'cryptroot /dev/mmcblk0p2 none luks,discard\n',
      before: ours.trimEnd(),
      after: 'cryptroot /dev/mmcblk0p2 none luks,discard',
    });
    expect(
      plan.steps.filter((s) => s.kind === 'remove-file').map((s) => ('path' in s ? s.path : '')),
    ).toEqual([BOOT_PATHS.hook, BOOT_PATHS.crypttabBackup, BOOT_PATHS.keyscript]);
  });

  it('removes a line zkluks added when the backup had none, keeping every other line', () => {
    const ours = `cryptroot UUID=${UUID} none luks,initramfs,keyscript=${BOOT_PATHS.keyscript}`;
    const plan = planRemove(facts({ crypttabBackup: '# mine\n' }, `# mine\n${ours}\n`), { noUpdate: true });
    expect(plan.steps[0]).toMatchObject({
      kind: 'write-crypttab',
      action: 'restore',
      content: '# mine\n',
      before: ours,
      after: null,
    });
  });
});
