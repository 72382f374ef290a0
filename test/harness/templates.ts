// The volumes the crash and race harnesses start from, each made once and copied per trial: a fresh
// LUKS2 image with only its passphrase, one enrolled with a recovery key, one enrolled without.
import { enroll, type KeyslotDeps } from '../../src/keyslot/operations.ts';
import { makeLuksImage, type TestImage } from '../helpers/luks.ts';

export type Template = 'fresh' | 'enrolled' | 'enrolled-no-recovery';
export const TEMPLATES: readonly Template[] = ['fresh', 'enrolled', 'enrolled-no-recovery'];

export interface TemplateVolume {
  image: TestImage;
  /** The recovery key enroll delivered (the 'enrolled' template only). */
  recoveryKey: string | null;
}

export async function makeTemplate(deps: KeyslotDeps, t: Template): Promise<TemplateVolume> {
  const image = await makeLuksImage({ sizeMiB: 16 });
  if (t === 'fresh') return { image, recoveryKey: null };
  const r = await enroll(deps, image.path, {
    force: false,
    recoveryKey: t === 'enrolled',
    escrow: null,
    dryRun: false,
    unlock: Buffer.from(image.passphrase),
  });
  return { image, recoveryKey: r.applied?.recoveryKey ?? null };
}
