// The files that arm the encrypting boot, rendered: the initramfs hook and local-top script (from
// scripts/initramfs/, embedded in the bundle), the plan the script reads (no secrets), and the
// systemd unit that runs `zkluks encrypt-root --finish` on the first boot of the encrypted root.
import bootScript from '../../../scripts/initramfs/encrypt-root.sh.in?raw';
import hook from '../../../scripts/initramfs/encrypt-root-hook.sh.in?raw';
import { BOOT_PATHS, I2C_MODULES } from '../../initramfs/boot-files.ts';
import { render } from '../../initramfs/render.ts';
import {
  ENCRYPT_PATHS,
  RECOVERY_SLOT,
  RECOVERY_TOKEN_ID,
  REDUCE_MIB,
  ZYMKEY_SLOT,
  ZYMKEY_TOKEN_ID,
} from './layout.ts';

const base = (path: string) => path.slice(path.lastIndexOf('/') + 1);

export function renderBootScript(): string {
  return render(
    bootScript,
    {
      PLAN_CONF: ENCRYPT_PATHS.planConf,
      SEALED_KEYS: ENCRYPT_PATHS.sealedKeys,
      ZYMKEY_TOKEN: ENCRYPT_PATHS.zymkeyToken,
      RECOVERY_TOKEN: ENCRYPT_PATHS.recoveryToken,
      RECORD: ENCRYPT_PATHS.record,
      ZKENV: BOOT_PATHS.zkenv,
      I2C_MODULES: I2C_MODULES.join(' '),
    },
    'the encrypt-root boot script',
  );
}

export function renderHook(): string {
  return render(
    hook,
    {
      DIR: ENCRYPT_PATHS.dir,
      FILES: [
        ENCRYPT_PATHS.planConf,
        ENCRYPT_PATHS.sealedKeys,
        ENCRYPT_PATHS.zymkeyToken,
        ENCRYPT_PATHS.recoveryToken,
      ]
        .map(base)
        .join(' '),
    },
    'the encrypt-root hook',
  );
}

export interface PlanConf {
  name: string;
  uuid: string;
  /** How the boot finds the plain root's partition (PARTUUID=…, or a /dev path). */
  device: string;
  zkunlockifs: string;
  armed: Date;
}

const PLAIN = /^[A-Za-z0-9=:._/+-]+$/;

export function renderPlanConf(p: PlanConf): string {
  const values: Array<[string, string]> = [
    ['ZKLUKS_ENC_NAME', p.name],
    ['ZKLUKS_ENC_UUID', p.uuid],
    ['ZKLUKS_ENC_DEVICE', p.device],
    ['ZKLUKS_ENC_REDUCE_MIB', String(REDUCE_MIB)],
    ['ZKLUKS_ENC_RECOVERY_SLOT', String(RECOVERY_SLOT)],
    ['ZKLUKS_ENC_ZYMKEY_SLOT', String(ZYMKEY_SLOT)],
    ['ZKLUKS_ENC_ZYMKEY_TOKEN_ID', String(ZYMKEY_TOKEN_ID)],
    ['ZKLUKS_ENC_RECOVERY_TOKEN_ID', String(RECOVERY_TOKEN_ID)],
    ['ZKLUKS_ENC_ZKUNLOCKIFS', p.zkunlockifs],
    ['ZKLUKS_ENC_ARMED', p.armed.toISOString()],
  ];
  for (const [k, v] of values) {
    if (!PLAIN.test(v)) throw new Error(`encrypt-root plan: ${k} '${v}' is not a plain word`);
  }
  return [
    '# zkluks encrypt-root: the plan of the boot that encrypts the root (no secrets).',
    '# Written by `zkluks encrypt-root`; removed by `zkluks encrypt-root --finish`.',
    ...values.map(([k, v]) => `${k}=${v}`),
    '',
  ].join('\n');
}

/** KEY=VALUE lines of plan.conf (comments skipped). */
export function parsePlanConf(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^(ZKLUKS_ENC_[A-Z_]+)=(.*)$/.exec(line.trim());
    if (m) out[m[1] ?? ''] = m[2] ?? '';
  }
  return out;
}

export function renderFinishUnit(zkluks: string): string {
  return [
    '[Unit]',
    'Description=zkluks: finish encrypting the root (rebuild the initramfs for the normal unlock path)',
    `ConditionPathExists=${ENCRYPT_PATHS.planConf}`,
    'After=local-fs.target',
    '',
    '[Service]',
    'Type=oneshot',
    `ExecStart=${zkluks} encrypt-root --finish --yes`,
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}
