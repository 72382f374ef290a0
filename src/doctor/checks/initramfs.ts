// The initramfs image the firmware will load: built for the right kernel, holding what the unlock
// needs, in step with /var/lib/zymbit, and free of plaintext keys.
import { inSystem, rebuildInitramfs, systemFile, zkluksCommand } from '../../hint.ts';
import { BOOT_PATHS, I2C_MODULES } from '../../initramfs/boot-files.ts';
import { hasFile, moduleName } from '../../initramfs/inspect.ts';
import { valueOf, type Facts } from '../facts.ts';
import type { Finding } from '../finding.ts';
import { compareKernelVersions } from '../kernel-version.ts';
import { waysIn } from '../ways-in.ts';

const area = 'initramfs' as const;
/** The one rebuild hint: the tree's own images, through chroot for a --root tree. */
const rebuild = (facts: Facts) =>
  `${rebuildInitramfs(facts.root)}, then ${zkluksCommand(facts.root, 'initramfs', 'check')}`;

function contents(facts: Facts): Finding[] {
  const image = valueOf(facts.initramfs);
  if (!image) return [];
  const findings: Finding[] = [];
  const entry = valueOf(facts.crypttab)?.entries.find((e) => e.name === valueOf(facts.volume)?.crypttabName);
  const keyscript = entry?.options.find((o) => o.startsWith('keyscript='))?.slice('keyscript='.length);
  const wanted: string[] = [];
  if (keyscript) wanted.push(keyscript.startsWith('/') ? keyscript : `/lib/cryptsetup/scripts/${keyscript}`);
  wanted.push('cryptroot/crypttab');
  const missingFiles = wanted.filter((p) => !hasFile(image.files, p));
  const zkunlockifs = image.files.find((f) => f.endsWith('/zkunlockifs'));
  if (!zkunlockifs) missingFiles.push('zkunlockifs');
  const rootState = valueOf(facts.zymbitState);
  const needed = (rootState?.files ?? []).filter((f) => /salt|^zkenv\.conf$|^key\.bin\.lock$/.test(f.path));
  const inImage = new Map(image.zymbitState.map((f) => [f.path, f.sha256]));
  for (const f of needed) if (!inImage.has(f.path)) missingFiles.push(`var/lib/zymbit/${f.path}`);
  if (missingFiles.length > 0) {
    findings.push({
      id: 'initramfs.missing-files',
      area,
      severity: 'error',
      summary: `The image lacks what the Zymkey unlock needs: ${missingFiles.join(', ')}.`,
      evidence: [`image: ${image.image}`],
      hint: zkluksCommand(facts.root, 'initramfs', 'install'),
    });
  }
  const drift = (rootState?.files ?? []).filter(
    (f) => inImage.has(f.path) && inImage.get(f.path) !== f.sha256,
  );
  if (drift.length > 0) {
    const production = valueOf(valueOf(facts.zymkey)?.binding)?.mode === 'production';
    findings.push({
      id: 'initramfs.zymbit-state-drift',
      area,
      severity: 'error',
      summary: `/var/lib/zymbit changed after the image was built (salt drift): the copy inside the initramfs is stale${production ? ', and in production mode the module rejects it at the next boot' : ', which a production-mode module rejects at boot'}.`,
      evidence: drift.map(
        (f) =>
          `var/lib/zymbit/${f.path}: root filesystem sha256 ${f.sha256.slice(0, 12)}…, image ${inImage.get(f.path)?.slice(0, 12)}…`,
      ),
      hint: waysIn(facts).zymbitLayout
        ? `${inSystem(facts.root, 'update_encr_initrd')} (or ${rebuildInitramfs(facts.root)} and copy the image to the boot partition)`
        : rebuild(facts),
    });
  }
  // A driver counts whether it is a module inside the image or built into its kernel.
  const present = new Set([...(image.builtinModules ?? []), ...image.files.map(moduleName)]);
  const i2cDev = present.has('i2c-dev');
  const busDriver = I2C_MODULES.some((m) => m !== 'i2c-dev' && present.has(m));
  if (!i2cDev || !busDriver) {
    findings.push({
      id: 'initramfs.i2c-modules',
      area,
      severity: 'warning',
      summary: `The image has no ${[!i2cDev && 'i2c-dev', !busDriver && 'I2C bus driver (i2c-bcm2835)'].filter(Boolean).join(' and no ')} module, and its kernel does not build one in: the keyscript cannot reach the Zymkey.`,
      evidence: [
        `image: ${image.image}`,
        image.builtinModules === undefined
          ? 'the image carries no modules.builtin'
          : `modules.builtin lists ${image.builtinModules.filter((m) => m.startsWith('i2c')).join(', ') || 'no I2C driver'}`,
      ],
      hint: `add i2c-dev and i2c-bcm2835 to ${systemFile(facts.root, '/etc/initramfs-tools/modules')}, then ${rebuild(facts)}`,
    });
  }
  if (findings.length === 0) {
    findings.push({
      id: 'initramfs.contents',
      area,
      severity: 'ok',
      summary:
        'The image holds the keyscript, zkunlockifs, the Zymbit state (matching the root filesystem) and the I2C modules.',
      evidence: [`image: ${image.image}`],
      hint: '',
    });
  }
  return findings;
}

function kernel(facts: Facts): Finding[] {
  const image = valueOf(facts.initramfs);
  if (!image) return [];
  const installed = [...facts.kernel.installed].sort(compareKernelVersions);
  const newest = installed[installed.length - 1];
  const built = image.kernelVersions;
  if (built.length === 0) {
    return [
      {
        id: 'initramfs.kernel-unknown',
        area,
        severity: 'warning',
        summary: 'The image holds no kernel modules, so the kernel it was built for is unknown.',
        evidence: [`image: ${image.image}`],
        hint: rebuild(facts),
      },
    ];
  }
  const target = newest ?? facts.kernel.running;
  if (target && !built.includes(target)) {
    return [
      {
        id: 'initramfs.kernel-mismatch',
        area,
        severity: 'error',
        summary: `The image the firmware loads was built for kernel ${built.join(', ')}, but the newest installed kernel is ${target}: its modules (dm-crypt, I2C) are missing at the next boot.`,
        evidence: [
          `image: ${image.image} (${image.chosenBecause})`,
          `installed kernels: ${installed.join(', ') || 'none'}`,
          ...(facts.kernel.running ? [`running kernel: ${facts.kernel.running}`] : []),
        ],
        hint: `${inSystem(facts.root, `update-initramfs -c -k ${target}`)}, make sure the result reaches the boot partition, then ${zkluksCommand(facts.root, 'initramfs', 'check')}`,
      },
    ];
  }
  return [
    {
      id: 'initramfs.kernel',
      area,
      severity: 'ok',
      summary: `The image was built for kernel ${built.join(', ')}, the newest installed.`,
      evidence: [`image: ${image.image} (${image.chosenBecause})`],
      hint: '',
    },
  ];
}

function environment(facts: Facts): Finding[] {
  const findings: Finding[] = [];
  if (facts.initramfsModules.ok && facts.initramfsModules.value === 'dep') {
    findings.push({
      id: 'initramfs.modules-dep',
      area,
      severity: 'warning',
      summary:
        'initramfs.conf says MODULES=dep: the image holds only the modules the build host was using, which has left out the I2C modules the unlock needs.',
      evidence: ['/etc/initramfs-tools/initramfs.conf: MODULES=dep'],
      hint: `set MODULES=most in ${systemFile(facts.root, '/etc/initramfs-tools/initramfs.conf')}, then ${rebuild(facts)}`,
    });
  }
  if (facts.kernelPostinstHook.ok && /update_encr_initrd/.test(facts.kernelPostinstHook.value)) {
    findings.push({
      id: 'initramfs.postinst-overwritten',
      area,
      severity: 'warning',
      summary:
        "Zymbit's script replaced the distro's /etc/kernel/postinst.d/initramfs-tools with a call to update_encr_initrd: kernel upgrades write a single initrd.img for the last kernel built, and an initramfs-tools upgrade can put the original back.",
      evidence: ['/etc/kernel/postinst.d/initramfs-tools calls update_encr_initrd'],
      hint: waysIn(facts).zymbitLayout
        ? `${zkluksCommand(facts.root, 'adopt')} (puts the distro's file back, keeping Zymbit's)`
        : `restore the distro file (apt-get install --reinstall -o Dpkg::Options::=--force-confask initramfs-tools), then ${zkluksCommand(facts.root, 'initramfs', 'install')} (it adds its own postinst.d hook)`,
    });
  }
  if (facts.unattendedUpgrades.ok && facts.unattendedUpgrades.value) {
    findings.push({
      id: 'initramfs.unattended-upgrades',
      area,
      severity: 'warning',
      summary:
        'unattended-upgrades is installed: Zymbit warns that an unattended update-initramfs can fail and leave the Pi unable to boot.',
      evidence: ['package unattended-upgrades is installed'],
      hint: `apt-get remove unattended-upgrades (or exclude kernel and initramfs packages); after each upgrade run ${zkluksCommand(facts.root, 'initramfs', 'check')}`,
    });
  }
  for (const k of facts.keyMaterial.filter((m) => m.where !== 'crypttab')) {
    findings.push({
      id: 'initramfs.plaintext-key',
      area,
      severity: 'error',
      summary:
        k.opensSlot !== null
          ? `'${k.path}' in the ${k.where} opens keyslot ${k.opensSlot}: the LUKS key lies there in plaintext, and anyone with the SD card can read it.`
          : `'${k.path}' in the ${k.where} looks like a plaintext key file.`,
      evidence: [
        k.tried
          ? `cryptsetup --test-passphrase with it: ${k.opensSlot !== null ? `opens slot ${k.opensSlot}` : 'opens no slot'}`
          : 'not tried against the header',
      ],
      hint: `remove it (and the hook or KEYFILE_PATTERN that copies it), ${k.opensSlot !== null ? `replace slot ${k.opensSlot} with 'zkluks rotate ${waysIn(facts).volume}', ` : ''}then ${rebuild(facts)}`,
    });
  }
  return findings;
}

export function checkInitramfs(facts: Facts): Finding[] {
  if (!facts.initramfs.ok) {
    return [
      {
        id: 'initramfs.image-unreadable',
        area,
        severity: facts.initramfs.status === 'unavailable' ? 'warning' : 'error',
        summary:
          facts.initramfs.status === 'missing'
            ? 'The initramfs image the firmware will load does not exist: the root cannot be unlocked at boot.'
            : facts.initramfs.status === 'unavailable'
              ? 'Which initramfs image the firmware loads could not be told, so none was examined.'
              : 'The initramfs image could not be read.',
        evidence: [facts.initramfs.reason],
        hint: rebuild(facts),
      },
      ...environment(facts),
    ];
  }
  return [...kernel(facts), ...contents(facts), ...tokenCopy(facts), ...environment(facts)];
}

/**
 * The image's copy of this volume's token. A copy made before the header's last change is only
 * slower (boots read the header); a copy under the header's own checksum that differs from the
 * token was changed after the image was built, and boots unseal what it holds.
 */
function tokenCopy(facts: Facts): Finding[] {
  const image = valueOf(facts.initramfs);
  const header = valueOf(facts.header);
  const name = valueOf(facts.volume)?.crypttabName;
  const copy = image?.tokenCopies?.find((c) => c.name === name);
  if (!image || !header?.checksum || !copy) return [];
  const evidence = [
    `image: ${image.image}, ${BOOT_PATHS.tokenCopyDir}/${copy.name}.copy: token ${copy.token}, header checksum ${copy.csum.slice(0, 16)}…`,
    `the header's checksum now: ${header.checksum.slice(0, 16)}…`,
  ];
  if (copy.csum !== header.checksum) {
    return [
      {
        id: 'initramfs.token-copy-stale',
        area,
        severity: 'info',
        summary: `The image's copy of the ${copy.name} token predates the header's last change (a rotate, a new key), so each boot reads the LUKS2 header instead, a few milliseconds more, until the image is rebuilt.`,
        evidence,
        hint: rebuild(facts),
      },
    ];
  }
  const token = header.tokens.find((t) => t.id === copy.token);
  // A token that does not parse has findings of its own; only a readable one can be compared.
  if (token && token.sealed === undefined) return [];
  if (token?.sealed && Buffer.from(token.sealed, 'base64').equals(Buffer.from(copy.sealed, 'base64')))
    return [];
  return [
    {
      id: 'initramfs.token-copy-altered',
      area,
      severity: 'warning',
      summary: `The image's copy of the ${copy.name} token differs from token ${copy.token} of the header it was made under: the image was changed after it was built, and boots unseal what the copy holds.`,
      evidence: [
        ...evidence,
        token ? `token ${copy.token} holds another sealed key` : `the header has no token ${copy.token}`,
      ],
      hint: rebuild(facts),
    },
  ];
}
