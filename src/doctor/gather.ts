// Gather every fact once, in dependency order: crypttab names the volume, the header names the sealed
// key, the Zymkey is asked about it, the firmware config names the image. Every path under the
// system tree is joined to --root; sources of the running system (zkifc, the running kernel, the I2C
// bus) are read only when they belong to that tree.
import { existsSync } from 'node:fs';
import { release } from 'node:os';
import { resolve } from 'node:path';
import type { Runner } from '../exec.ts';
import { probeZymkeyBus, listI2cBuses, type I2cOpener } from '../device/i2c.ts';
import { openZymkey } from '../device/open.ts';
import type { Backend, ZymkeyPort } from '../device/port.ts';
import { resolveRootDevice } from '../root-device.ts';
import { under } from '../root-path.ts';
import {
  known,
  missing,
  unavailable,
  unreadable,
  valueOf,
  type Fact,
  type Facts,
  type KeyMaterialFacts,
  type VolumeFacts,
} from './facts.ts';
import { gatherBootRecord } from './gather-boot-record.ts';
import { gatherCrypttab, rootEntry } from './gather-crypttab.ts';
import { gatherEncryption } from './gather-encryption.ts';
import { gatherHeader } from './gather-header.ts';
import { gatherInitramfs, type ImageChoice } from './gather-initramfs.ts';
import {
  gatherCpuGovernor,
  gatherFirmwareConfig,
  gatherInitramfsModules,
  gatherKernelCmdline,
  gatherKernelPostinstHook,
  gatherKernels,
  gatherPackageInstalled,
  gatherPiModel,
  gatherZkenv,
  gatherZymbitState,
} from './gather-system.ts';
import { gatherZkifc } from './gather-zkifc.ts';
import { gatherSupervisedBoot, gatherZymkey } from './gather-zymkey.ts';
import { keyFileOpens } from './key-test.ts';
import { chooseBootImage } from './boot-image-choice.ts';

export interface GatherOptions {
  root: string;
  /** The volume as the user named it; default: crypttab's root entry. */
  volume?: string;
  backend: Backend;
  simState: string;
  led: string | null;
  runner: Runner;
  /** The Zymkey port; default: openZymkey with the options above. */
  port?: ZymkeyPort;
  /** The I2C bus opener for the probe (tests); default: i2c-bus. */
  i2cOpener?: I2cOpener;
}

function volumeFact(
  opts: GatherOptions,
  live: boolean,
  entries: ReturnType<typeof gatherCrypttab>,
): Fact<VolumeFacts> {
  const list = valueOf(entries)?.entries ?? [];
  if (opts.volume) {
    const byPath = list.find((e) => e.source === opts.volume);
    const path = existsSync(opts.volume) || live ? opts.volume : under(opts.root, opts.volume);
    return known({
      name: opts.volume,
      path,
      from: 'argument',
      crypttabName: byPath?.name ?? null,
      present: existsSync(path),
    });
  }
  const entry = rootEntry(list);
  if (!entry) {
    return missing(
      entries.ok
        ? 'crypttab has no entries and no volume was named'
        : `no volume named and ${entries.reason}`,
    );
  }
  const device = resolveRootDevice(opts.root, entry.source);
  return known({
    name: entry.source,
    path: device.path ?? device.name,
    from: 'crypttab',
    crypttabName: entry.name,
    present: device.found !== null,
  });
}

async function gatherI2c(opts: GatherOptions, live: boolean): Promise<Facts['i2c']> {
  if (!live && listI2cBuses(opts.root).length === 0) {
    return unavailable('the I2C bus belongs to the running system; not probed under --root');
  }
  return known(await probeZymkeyBus({ root: opts.root, open: opts.i2cOpener }));
}

export async function gatherFacts(opts: GatherOptions): Promise<Facts> {
  const root = resolve(opts.root);
  const live = root === '/';
  const { runner } = opts;
  const crypttab = gatherCrypttab(root);
  let volume = volumeFact({ ...opts, root }, live, crypttab);
  const header = volume.ok ? await gatherHeader(runner, volume.value.path) : unavailable<never>('no volume');
  // A volume named on the command line finds its crypttab entry through the header's UUID.
  if (volume.ok && volume.value.crypttabName === null && header.ok) {
    const uuid = header.value.uuid.toLowerCase();
    const entry = valueOf(crypttab)?.entries.find(
      (e) => e.source.toLowerCase().replace(/["']/g, '') === `uuid=${uuid}`,
    );
    if (entry) volume = known({ ...volume.value, crypttabName: entry.name });
  }
  const volumePath = valueOf(volume)?.path ?? null;
  const entry = valueOf(crypttab)?.entries.find((e) => e.name === valueOf(volume)?.crypttabName);

  const keyMaterial: KeyMaterialFacts[] = [];
  const keyFile = entry && !['none', '-', ''].includes(entry.keyFile) ? entry.keyFile : null;
  if (keyFile && existsSync(under(root, keyFile))) {
    const slot =
      volumePath && header.ok ? await keyFileOpens(runner, volumePath, under(root, keyFile)) : null;
    keyMaterial.push({
      where: 'crypttab',
      path: keyFile,
      opensSlot: slot,
      tried: volumePath !== null && header.ok,
    });
  }
  for (const stale of ['/run/key.bin']) {
    if (!existsSync(under(root, stale))) continue;
    const slot = volumePath && header.ok ? await keyFileOpens(runner, volumePath, under(root, stale)) : null;
    keyMaterial.push({
      where: 'root filesystem',
      path: stale,
      opensSlot: slot,
      tried: volumePath !== null && header.ok,
    });
  }

  const firmwareConfig = gatherFirmwareConfig(root);
  const kernel = gatherKernels(root, live ? release() : null);
  const piModel = gatherPiModel(root);
  const choice: Fact<ImageChoice> = chooseBootImage(root, valueOf(piModel));
  const image = await gatherInitramfs({
    runner,
    root,
    choice,
    crypttabKeyFile: keyFile,
    keyOpens: async (file) => (volumePath && header.ok ? keyFileOpens(runner, volumePath, file) : null),
  });
  keyMaterial.push(...image.keyMaterial);

  let zymkey: Facts['zymkey'];
  let supervisedBoot: Facts['supervisedBoot'];
  try {
    const port = opts.port ?? openZymkey({ backend: opts.backend, simState: opts.simState, runner, root });
    supervisedBoot = await gatherSupervisedBoot(port, root);
    zymkey = known(
      await gatherZymkey({
        port,
        runner,
        root,
        volumePath: header.ok ? volumePath : null,
        header: valueOf(header),
      }),
    );
  } catch (error) {
    zymkey = unreadable(`cannot open the Zymkey port: ${(error as Error).message}`);
  }

  return {
    root,
    live,
    volume,
    crypttab,
    header,
    initramfs: image.initramfs,
    keyMaterial,
    kernel,
    firmwareConfig,
    kernelCmdline: gatherKernelCmdline(root),
    zkenv: gatherZkenv(root),
    piModel,
    zymbitState: gatherZymbitState(root),
    initramfsModules: gatherInitramfsModules(root),
    unattendedUpgrades: gatherPackageInstalled(root, 'unattended-upgrades'),
    cpuGovernor: gatherCpuGovernor(root),
    kernelPostinstHook: gatherKernelPostinstHook(root),
    zkifc:
      opts.backend === 'zymbit'
        ? await gatherZkifc(runner, live)
        : unavailable('simulator backend: no zkifc'),
    bootRecord: gatherBootRecord(root, valueOf(volume)?.crypttabName ?? null),
    zymkey,
    ...(supervisedBoot === undefined ? {} : { supervisedBoot }),
    i2c: await gatherI2c({ ...opts, root }, live),
    led: opts.led,
    encryption: await gatherEncryption({
      runner,
      root,
      volumePath: header.ok ? volumePath : null,
      volumeUuid: valueOf(header)?.uuid ?? null,
    }),
  };
}
