// The ten situations zkluks doctor must get right, each built for real under a temp --root: a real
// LUKS2 image, a real initramfs image, the simulator's state.
import { afterEach, describe, expect, it } from 'vitest';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { constants as os } from 'node:os';
import { execa } from 'execa';
import { bundle, zkluks } from '../helpers/cli.ts';
import { addKey, formatLuks } from '../helpers/luks.ts';
import { createRunner, type RunRecord } from '../../src/exec.ts';
import { valueOf } from '../../src/doctor/facts.ts';
import { diagnose, type Diagnosis } from '../../src/doctor/diagnose.ts';
import { gatherFacts } from '../../src/doctor/gather.ts';
import type { Finding } from '../../src/doctor/finding.ts';
import { buildTree, KERNEL, type Tree } from './system-tree.ts';
import { HANG, OPAQUE } from '../helpers/opaque.ts';
import { SimZymkey } from '../../src/device/sim.ts';
import { simKernel, simWakePin } from '../../src/device/sim-control.ts';

let tree: Tree | undefined;
afterEach(() => {
  tree?.cleanup();
  tree = undefined;
});

async function doctor(t: Tree, args: string[] = [], volume: string[] = [t.volume]) {
  const base = [
    'doctor',
    ...volume,
    '--root',
    t.root,
    '--backend',
    'sim',
    '--sim-state',
    t.simState,
    ...args,
  ];
  const json = await zkluks([...base, '--json'], { env: t.env });
  const human = await zkluks(base, { env: t.env });
  const diagnosis = JSON.parse(json.stdout) as Diagnosis;
  expect(human.exitCode).toBe(json.exitCode);
  return { exitCode: json.exitCode, diagnosis, human: human.stdout, stderr: human.stderr };
}

/** Gather the tree's facts in-process (the CLI cannot take a fake I2C bus or record its runs). */
function gatherTree(t: Tree, over: Partial<Parameters<typeof gatherFacts>[0]> = {}) {
  return gatherFacts({
    root: t.root,
    volume: t.volume,
    backend: 'sim',
    simState: t.simState,
    led: null,
    runner: createRunner(),
    ...over,
  });
}

/**
 * The boot record the keyscript (scripts/initramfs/keyscript.sh.in) writes when it falls back: the
 * sealed key of the tree's token run through the simulator's zkunlockifs with no zkifc (as in the
 * initramfs), its end told as write_record and fallback tell it: unseal-failed with the exit status
 * or signal and the last stderr line, or timeout when the tool hangs (ZKLUKS_SIM_OPAQUE=hang).
 */
async function fallbackRecord(t: Tree): Promise<string> {
  const head = 'name=cryptroot\nsource=/dev/mmcblk0p2\nmethod=passphrase\ntried=0\n';
  const tail = 'elapsed_ms=230\nuptime=9.80\n';
  if (HANG) {
    return `${head}reason=timeout\ndetail=the Zymkey did not answer within 10.0 s: zkunlockifs had printed no key at the deadline (ZKLUKS_TIMEOUT=10) and was stopped; type the passphrase or recovery key, and once booted run: zkluks doctor\n${tail}`;
  }
  const header = JSON.parse(await t.cryptsetup('luksDump', '--dump-json-metadata', t.volume)) as {
    tokens: Record<string, { type: string; sealed?: string }>;
  };
  const token = Object.values(header.tokens).find((x) => x.type === 'zkluks-zymkey');
  const sealed = join(t.dir, 'sealed.bin');
  writeFileSync(sealed, Buffer.from(token?.sealed ?? '', 'base64'));
  await t.sim('zkifc', 'stop');
  const r = await execa(process.execPath, [bundle, 'sim', 'tool', 'zkunlockifs', sealed], {
    env: t.env,
    reject: false,
  });
  await t.sim('zkifc', 'start');
  // last_line: the last non-blank line, printable characters only, at most 400.
  const line =
    r.stderr
      .replace(/[^\x20-\x7e\n]/g, '?')
      .split('\n')
      .filter((l) => l.trim() !== '')
      .pop()
      ?.slice(0, 400) ?? '';
  const signal = r.signal ? os.signals[r.signal] : undefined;
  const detail =
    signal !== undefined
      ? `zkunlockifs was killed by signal ${signal}${line ? `: ${line}` : ''}`
      : `zkunlockifs exited with status ${r.exitCode}${line ? `: ${line}` : ''}`;
  expect(r.exitCode).not.toBe(0);
  return `${head}reason=unseal-failed\ndetail=${detail}\n${tail}`;
}

function finding(d: Diagnosis, id: string): Finding {
  const f = d.findings.find((x) => x.id === id);
  if (!f)
    throw new Error(`no finding '${id}' in: ${d.findings.map((x) => `${x.id}(${x.severity})`).join(', ')}`);
  return f;
}

const ids = (d: Diagnosis, severity: Finding['severity']) =>
  d.findings.filter((f) => f.severity === severity).map((f) => f.id);

describe('zkluks doctor scenarios', () => {
  it('1: a self-destructed module while LUKS still boots: says the keys are gone, how the root was unlocked, that the next boot will not use the Zymkey, and the rescue to do now', async () => {
    tree = await buildTree({ recovery: false });
    await tree.sim('bind-lock');
    await tree.sim('arm', '--channel', '0', '--action', 'self-destruct');
    await tree.sim('breach', '--channel', '0');
    // With opaque failures only the LED the admin reads tells a destroyed module (as `sim status` shows it).
    const { exitCode, diagnosis, human } = await doctor(tree, OPAQUE ? ['--led', '5-slow'] : []);
    expect(exitCode).toBe(1);
    expect(diagnosis.verdict.status).toBe('error');
    expect(diagnosis.verdict.summary).toMatch(/destroyed its key material/);
    const f = finding(diagnosis, 'zymkey.self-destructed');
    expect(f.summary).toMatch(/next boot will NOT unlock through the Zymkey/);
    expect(f.evidence.join('\n')).toMatch(
      /this boot the root was unlocked through the Zymkey .*cryptroot\.record/,
    );
    // A destroyed module answers nothing: no perimeter or binding readback stands in the evidence.
    expect(f.evidence.join('\n')).not.toMatch(/perimeter channel \d: action|^binding:/m);
    expect(f.hint).toMatch(/while the volume is open: 'zkluks recovery add /);
    expect(f.hint).toMatch(/cryptsetup luksHeaderBackup/);
    expect(f.hint).toMatch(/fit a new module, then 'zkluks enroll \S+ --force --unlock-key-file FILE'/);
    expect(diagnosis.findings.some((x) => x.id === 'zymkey.breach-latched')).toBe(false);
    expect(human.split('\n')[0]).toMatch(/^verdict: ERROR The Zymkey destroyed its key material/);
  });

  it("1: without --led, a self-destructed module is named from the simulator's reason, or with opaque tools the doctor says only the LED tells", async () => {
    tree = await buildTree({ recovery: false });
    await tree.sim('bind-lock');
    await tree.sim('arm', '--channel', '0', '--action', 'self-destruct');
    await tree.sim('breach', '--channel', '0');
    const { exitCode, diagnosis } = await doctor(tree);
    expect(exitCode).toBe(1);
    if (!OPAQUE) {
      expect(finding(diagnosis, 'zymkey.self-destructed').severity).toBe('error');
      return;
    }
    // Tools and API fail alike for a destroyed, unbound, unplugged or refused module: no verdict yet.
    expect(diagnosis.findings.map((x) => x.id)).not.toContain('zymkey.self-destructed');
    const f = finding(diagnosis, 'zymkey.failed');
    expect(f.severity).toBe('error');
    expect(f.evidence.join('\n')).toMatch(/answers no API call either .*only its LED tells which/);
    expect(f.hint).toMatch(/read it and run 'zkluks doctor --led PATTERN'/);
  });

  it('1: with the boot record of a fallback boot, says the passphrase unlocked the root this time', async () => {
    tree = await buildTree();
    await tree.sim('bind-lock');
    await tree.sim('arm', '--channel', '1', '--action', 'self-destruct');
    await tree.sim('breach', '--channel', '1');
    tree.file('/run/zkluks/cryptroot.record', await fallbackRecord(tree));
    const { diagnosis } = await doctor(tree, OPAQUE ? ['--led', '5-slow'] : []);
    const f = finding(diagnosis, 'zymkey.self-destructed');
    expect(f.evidence.join('\n')).toMatch(
      /unlocked with a typed passphrase or recovery key after the Zymkey path failed \(self-destructed/,
    );
    expect(finding(diagnosis, 'last-boot.fallback').summary).toMatch(/had destroyed its keys/);
    // What the keyscript recorded stays as evidence of how the unseal ended.
    expect(finding(diagnosis, 'last-boot.fallback').summary).toMatch(
      /as the module shows now; the keyscript recorded: /,
    );
    expect(f.evidence.join('\n')).toMatch(/the keyscript recorded (unseal-failed: zkunlockifs |timeout: )/);
    // A recovery key exists already: the rescue checks it is still at hand.
    expect(f.hint).toMatch(/recovery key of slot 2 \('zkluks recovery verify /);
  });

  it('2: a production-mode module on a replacement Pi reports the binding mismatch and the way back', async () => {
    tree = await buildTree();
    await tree.sim('bind-lock');
    await tree.sim('swap-host');
    // A production module refusing this host: rapid blinking, then the LED stays off.
    const { exitCode, diagnosis } = await doctor(tree, OPAQUE ? ['--led', 'off'] : []);
    expect(exitCode).toBe(1);
    const f = finding(diagnosis, 'zymkey.host-mismatch');
    expect(f.severity).toBe('error');
    expect(f.summary).toMatch(/bound in production mode to another host/);
    expect(f.hint).toMatch(/original Pi/);
    expect(f.hint).toMatch(/zkluks recovery unlock/);
    // The way to keep this Pi leads to the fix: a new module and enroll --force (rotate would fail here).
    expect(f.hint).toMatch(/fit a new module here .*'zkluks enroll \S+ --force --unlock-key-file FILE'/);
    expect(f.hint).not.toMatch(/zkluks rotate/);
    // A module that refuses this host answers no binding query: no "Bound in production mode" ok beside it.
    expect(diagnosis.findings.map((x) => x.id)).not.toContain('zymkey.binding');
    expect(diagnosis.verdict.summary).toMatch(/another host/);
  });

  it("3: Zymbit's own layout is flagged as having no recovery path, naming zkluks recovery add", async () => {
    tree = await buildTree({ zymkey: false, recovery: false });
    // mk_encr_sd_rfs.sh: a 512-byte key from the module, sealed to key.bin.lock, the only keyslot.
    const key = join(tree.dir, 'key.bin');
    writeFileSync(key, await tree.simTool('zkgrifs', '512'), { mode: 0o600 });
    const sealed = await tree.simTool('zklockifs', key);
    tree.file('/var/lib/zymbit/key.bin.lock', sealed);
    await formatLuks(tree.volume, readFileSync(key));
    const uuid = (await tree.cryptsetup('luksUUID', tree.volume)).trim();
    tree.file(
      '/etc/crypttab',
      `cryptrfs /dev/mmcblk0p2 /etc/cryptroot/key.bin luks,keyscript=/lib/cryptsetup/scripts/zk_get_key,tries=100,timeout=30s\n`,
    );
    tree.file(
      '/lib/cryptsetup/scripts/zk_get_key',
      '#!/bin/sh\n/sbin/zkunlockifs /var/lib/zymbit/key.bin.lock\n',
      0o755,
    );
    tree.file(
      '/etc/kernel/postinst.d/initramfs-tools',
      '#!/bin/sh -e\n/usr/sbin/update_encr_initrd "$1"\n',
      0o755,
    );
    tree.file('/boot/firmware/config.txt', 'dtparam=i2c_arm=on\ninitramfs initrd.img followkernel\n');
    tree.remove('/run/zkluks');
    const image = tree.healthyImage();
    delete image['lib/cryptsetup/scripts/zkluks'];
    image['usr/lib/cryptsetup/scripts/zk_get_key'] = '#!/bin/sh\n';
    image['cryptroot/crypttab'] =
      `cryptrfs UUID=${uuid} /etc/cryptroot/key.bin luks,keyscript=/lib/cryptsetup/scripts/zk_get_key\n`;
    image['var/lib/zymbit/key.bin.lock'] = sealed;
    await tree.buildImage(image, '/boot/firmware/initrd.img');
    // No VOLUME argument: the doctor finds the root through crypttab; the tree's /dev/mmcblk0p2 is the image.
    mkdirSync(join(tree.root, 'dev'), { recursive: true });
    symlinkSync(tree.volume, join(tree.root, 'dev/mmcblk0p2'));
    const { exitCode, diagnosis } = await doctor(tree, [], []);
    expect(exitCode).toBe(1);
    const f = finding(diagnosis, 'luks.no-recovery-path');
    expect(f.severity).toBe('error');
    expect(f.hint).toMatch(/zkluks recovery add/);
    expect(f.evidence.join('\n')).toMatch(/key\.bin\.lock/);
    expect(finding(diagnosis, 'crypttab.zymbit-keyscript').severity).toBe('warning');
    expect(finding(diagnosis, 'initramfs.postinst-overwritten').severity).toBe('warning');
    // The module still unseals Zymbit's key.bin.lock and it opens the single slot.
    expect(finding(diagnosis, 'zymkey.unseal').summary).toMatch(/key\.bin\.lock and it opens slot 0/);
    expect(finding(diagnosis, 'zymkey.not-ready-for-production').evidence.join('\n')).toMatch(
      /no recovery path/,
    );
  });

  it('4: a kernel upgrade without a rebuilt initramfs is a version mismatch', async () => {
    tree = await buildTree();
    const newer = '6.6.62+rpt-rpi-v8';
    tree.file(`/lib/modules/${newer}/modules.dep`, '');
    const { exitCode, diagnosis } = await doctor(tree);
    expect(exitCode).toBe(1);
    const f = finding(diagnosis, 'initramfs.kernel-mismatch');
    expect(f.summary).toContain(`built for kernel ${KERNEL}`);
    expect(f.summary).toContain(`newest installed kernel is ${newer}`);
    expect(f.hint).toContain(`chroot ${tree.root} update-initramfs -c -k ${newer}`);
  });

  it('5: /var/lib/zymbit changed after the initramfs was built is salt drift', async () => {
    tree = await buildTree();
    tree.file('/var/lib/zymbit/SIM-0001/s1_fp_salt.bin', Buffer.from('regenerated salt'));
    const { exitCode, diagnosis } = await doctor(tree);
    expect(exitCode).toBe(1);
    const f = finding(diagnosis, 'initramfs.zymbit-state-drift');
    expect(f.evidence.join('\n')).toMatch(/SIM-0001\/s1_fp_salt\.bin: root filesystem sha256/);
  });

  it('6: no wake pin on kernel 6.6, I2C off in config.txt, and another chip at 0x30 are each an error', async () => {
    tree = await buildTree();
    tree.file('/var/lib/zymbit/zkenv.conf', '# no wake pin\n');
    tree.file('/boot/firmware/config.txt', 'dtparam=audio=on\n#dtparam=i2c_arm=on\nauto_initramfs=1\n');
    await tree.buildImage(tree.healthyImage());
    // The tree's /sys and /dev name bus 1 (bcm2835); the transfer is answered by a chip at 0x30.
    tree.file('/sys/class/i2c-dev/i2c-1/name', 'bcm2835 (i2c@7e804000)\n');
    tree.file('/dev/i2c-1', '');
    const facts = await gatherTree(tree, {
      i2cOpener: async () => ({ receiveByte: async () => 0x5a, close: async () => undefined }),
    });
    const d = diagnose(facts);
    expect(finding(d, 'i2c.wake-pin-unset').hint).toContain('ZK_GPIO_WAKE_PIN=516');
    expect(finding(d, 'firmware.i2c-disabled').severity).toBe('error');
    expect(finding(d, 'i2c.address-conflict').summary).toMatch(/Another chip answers at 0x30/);
    expect(d.verdict.status).toBe('error');
  });

  it('a module that never bound (no wake pin on kernel 6.6 and later) is zymkey.not-bound, an error', async () => {
    tree = await buildTree();
    simKernel(tree.simState, '6.12.25+rpt-rpi-v8');
    simWakePin(tree.simState, null);
    const { exitCode, diagnosis } = await doctor(tree);
    expect(exitCode).toBe(1);
    const f = finding(diagnosis, 'zymkey.not-bound');
    expect(f.severity).toBe('error');
    expect(f.hint).toMatch(/wake pin/);
  });

  it('a module whose tools hang is asked once: the test unseal is skipped after zkgrifs timed out', async () => {
    tree = await buildTree();
    await tree.sim('bind-lock');
    await tree.sim('arm', '--channel', '0', '--action', 'self-destruct');
    await tree.sim('breach', '--channel', '0');
    const sim = new SimZymkey(tree.simState);
    const calls: string[] = [];
    const port = new Proxy(sim, {
      get(target, name, receiver) {
        const value: unknown = Reflect.get(target, name, receiver);
        if (name !== 'randomBytes' && name !== 'unseal' && name !== 'seal') return value;
        return (...args: unknown[]) => {
          calls.push(name);
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    const facts = await gatherTree(tree, { port });
    const z = valueOf(facts.zymkey);
    expect(z?.rng.ok).toBe(false);
    if (HANG) {
      // Each hung tool costs its whole deadline: the doctor waits for one, not two.
      expect(calls).toEqual(['randomBytes']);
      expect(z?.unseal.ok === false && z.unseal.reason).toMatch(
        /test unseal .* skipped because the module did not answer/,
      );
      expect(finding(diagnose(facts), 'zymkey.failed').evidence.join('\n')).toMatch(
        /skipped because the module did not answer/,
      );
    } else {
      // A tool that fails at once costs nothing: the unseal is tried and tells what it can.
      expect(calls).toEqual(['randomBytes', 'unseal']);
    }
  });

  it('gathering reads the LUKS header once and the initramfs image once (one unpack, no separate listing)', async () => {
    tree = await buildTree();
    const records: RunRecord[] = [];
    const facts = await gatherTree(tree, { runner: createRunner({ records }) });
    expect(facts.initramfs.ok && facts.header.ok).toBe(true);
    const runs = (file: string, arg?: string) =>
      records.filter((r) => r.file === file && (arg === undefined || r.args[0] === arg)).length;
    expect(runs('cryptsetup', 'luksDump')).toBe(1);
    expect(runs('unmkinitramfs')).toBe(1);
    expect(runs('lsinitramfs')).toBe(0);
    expect(valueOf(facts.initramfs)?.kernelVersions).toEqual([KERNEL]);
  });

  it('7: a plaintext copy of the key inside the initramfs and in crypttab is found and proven to open a slot', async () => {
    tree = await buildTree();
    const image = tree.healthyImage();
    image['etc/cryptroot/key.bin'] = tree.zymkeyKey;
    await tree.buildImage(image);
    tree.file('/etc/keys/root.key', tree.zymkeyKey, 0o600);
    tree.file(
      '/etc/crypttab',
      `cryptroot UUID=${tree.uuid} /etc/keys/root.key luks,initramfs,keyscript=/lib/cryptsetup/scripts/zkluks\n`,
    );
    const { exitCode, diagnosis } = await doctor(tree);
    expect(exitCode).toBe(1);
    const inImage = finding(diagnosis, 'initramfs.plaintext-key');
    expect(inImage.summary).toMatch(/'\/etc\/cryptroot\/key\.bin' in the initramfs opens keyslot 1/);
    const inCrypttab = finding(diagnosis, 'crypttab.plaintext-key');
    expect(inCrypttab.severity).toBe('error');
    expect(inCrypttab.summary).toMatch(/'\/etc\/keys\/root\.key' named in crypttab opens keyslot 1/);
  });

  it('8: a token pointing at a missing slot, a Zymkey slot without token, and keyslot= in crypttab', async () => {
    tree = await buildTree();
    await tree.cryptsetup('luksKillSlot', '--batch-mode', tree.volume, String(tree.zymkeySlot));
    // A second Zymkey-style slot whose token was lost.
    await addKey(tree.volume, readFileSync(tree.passphraseFile), 'orphan-key-material-0123456789', 5);
    await tree.cryptsetup('config', '--priority', 'prefer', '--key-slot', '5', tree.volume);
    tree.file(
      '/etc/crypttab',
      `cryptroot UUID=${tree.uuid} none luks,initramfs,keyslot=1,keyscript=/lib/cryptsetup/scripts/zkluks\n`,
    );
    const { exitCode, diagnosis } = await doctor(tree);
    expect(exitCode).toBe(1);
    expect(finding(diagnosis, 'luks.token-dangling').summary).toMatch(
      /Token 0 \(zkluks-zymkey\) points at a keyslot that does not exist/,
    );
    expect(finding(diagnosis, 'luks.slot-without-token').summary).toMatch(/Keyslot 5/);
    const pin = finding(diagnosis, 'crypttab.keyslot-option');
    expect(pin.severity).toBe('error');
    expect(pin.summary).toMatch(/'keyslot=1'/);
  });

  it('8b: a zkluks-zymkey token copied onto the passphrase slot is named, with the commands that settle it', async () => {
    tree = await buildTree();
    const original = JSON.parse(await tree.cryptsetup('token', 'export', '--token-id', '0', tree.volume));
    await createRunner()('cryptsetup', ['token', 'import', '--token-id', '3', tree.volume], {
      input: JSON.stringify({ ...original, keyslots: ['0'] }),
    });
    const { exitCode, diagnosis } = await doctor(tree);
    // The genuine token still unlocks at boot: a warning, not an error.
    expect(exitCode).toBe(0);
    const foreign = finding(diagnosis, 'luks.token-foreign');
    expect(foreign.severity).toBe('warning');
    expect(foreign.summary).toMatch(/Token 3 \(zkluks-zymkey\) was not made for keyslot 0/);
    expect(foreign.hint).toMatch(
      /zkluks verify .*, then 'zkluks enroll --force .*keyslot 0 is wiped only if the Zymkey shows its key opens it/,
    );
    expect(diagnosis.findings.filter((f) => f.id === 'luks.token-foreign')).toHaveLength(1);
  });

  it('9: a healthy system is all ok, exits 0, and fits on one screen', async () => {
    tree = await buildTree();
    const { exitCode, diagnosis, human } = await doctor(tree);
    expect(ids(diagnosis, 'error')).toEqual([]);
    expect(ids(diagnosis, 'warning')).toEqual([]);
    expect(exitCode).toBe(0);
    expect(diagnosis.verdict).toEqual({
      status: 'ok',
      summary: 'Healthy: the next boot will unlock through the Zymkey, and a recovery path exists.',
    });
    for (const id of [
      'zymkey.unseal',
      'luks.recovery-path',
      'crypttab.entry',
      'initramfs.kernel',
      'initramfs.contents',
      'firmware.i2c',
      'i2c.wake-pin',
      'last-boot.zymkey',
    ]) {
      expect(finding(diagnosis, id).severity).toBe('ok');
    }
    // The doctor unseals the key to test it against its slot; the key never reaches its output.
    for (const text of [human, JSON.stringify(diagnosis)]) {
      expect(text).not.toContain(tree.zymkeyKey.toString('hex'));
      expect(text).not.toContain(tree.zymkeyKey.toString('base64'));
    }
    const lines = human.trimEnd().split('\n');
    expect(lines[0]).toBe(
      'verdict: OK Healthy: the next boot will unlock through the Zymkey, and a recovery path exists.',
    );
    expect(lines.length).toBeLessThanOrEqual(30);
  });

  it('10: before production, a latched breach on an armed channel and no recovery path is an error now with the safe order', async () => {
    tree = await buildTree({ recovery: false });
    // Remove the passphrase slot too: only the Zymkey opens the volume.
    await tree.cryptsetup('luksKillSlot', '--batch-mode', tree.volume, '0');
    await tree.sim('arm', '--channel', '0', '--action', 'self-destruct');
    await tree.sim('breach', '--channel', '0');
    const { exitCode, diagnosis } = await doctor(tree);
    expect(exitCode).toBe(1);
    const f = finding(diagnosis, 'zymkey.not-ready-for-production');
    expect(f.summary).toMatch(
      /binding for production now \(cutting the tab, lock_binding\) would destroy the keys or leave the disk unrecoverable/,
    );
    const evidence = f.evidence.join('\n');
    expect(evidence).toMatch(
      /channel 0 has a breach latched .*cannot read back whether it is armed to self-destruct/,
    );
    expect(evidence).toMatch(/binding: developer \(from the token/);
    expect(evidence).toMatch(/no recovery path/);
    expect(f.hint).toMatch(
      /1\) clear events.*2\) verify the circuit.*3\) add recovery: 'zkluks recovery add .*4\) then bind.*5\) then arm/,
    );
    // Developer mode only reports the breach: the key still unseals today.
    expect(finding(diagnosis, 'zymkey.unseal').severity).toBe('ok');
    expect(diagnosis.verdict.summary).toMatch(/developer mode/);
  });
});

describe('zkluks doctor --led', () => {
  it('folds the reported LED pattern into the verdict', async () => {
    tree = await buildTree();
    const { diagnosis } = await doctor(tree, ['--led', '5 slow blinks']);
    const f = finding(diagnosis, 'zymkey.led.atecc-unreachable');
    expect(f.severity).toBe('error');
    expect(diagnosis.verdict.status).toBe('error');
  });

  it('refuses a pattern it does not know, listing the documented ones', async () => {
    mkdirSync('/tmp', { recursive: true });
    const r = await zkluks(['doctor', '--led', 'purple', '--root', '/nonexistent', '--backend', 'sim']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/Failed to decode LED pattern 'purple'/);
    expect(r.stderr).toMatch(/atecc-unreachable/);
  });
});

describe('zkluks doctor on a volume enrolled by zkluks enroll', () => {
  it('reads the tokens enroll writes: the Zymkey unseals, the recovery key is a way in, all healthy', async () => {
    tree = await buildTree({ zymkey: false, recovery: false });
    const enroll = await zkluks(
      [
        'enroll',
        tree.volume,
        '--backend',
        'sim',
        '--sim-state',
        tree.simState,
        '--unlock-key-file',
        tree.passphraseFile,
        '--recovery-key-file',
        join(tree.dir, 'recovery.txt'),
        '--yes',
      ],
      { env: tree.env },
    );
    expect(enroll.stderr + enroll.stdout).not.toMatch(/internal error/);
    expect(enroll.exitCode).toBe(0);
    const { exitCode, diagnosis } = await doctor(tree);
    expect(finding(diagnosis, 'zymkey.unseal').summary).toMatch(
      /^The Zymkey unseals the key in token \d+ and it opens slot \d+\.$/,
    );
    expect(finding(diagnosis, 'luks.recovery-path').summary).toMatch(/recovery key in slot/);
    expect(ids(diagnosis, 'error')).toEqual([]);
    expect(exitCode).toBe(0);
  });
});
