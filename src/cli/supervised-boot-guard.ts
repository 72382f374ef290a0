// A change that may rewrite boot files, run so that a Zymbit SCM's Supervised Boot manifest is
// signed again for each file it changed (or refused first when zkluks could not sign): for the
// commands whose core does not hold the Zymkey port across its rewrites (adopt, encrypt-root). A dry
// run changes nothing and says what the run would sign (or refuses as the run would).
import { openZymkey } from '../device/open.ts';
import { createRunner } from '../exec.ts';
import {
  guardBootFiles,
  planSigning,
  signAfterRebuildWarning,
  withSignedBootFiles,
  type BootRewrites,
  type SigningPlan,
} from '../initramfs/supervised-boot.ts';
import type { GlobalOptions } from './global-options.ts';
import type { Output } from './output.ts';

export async function withBootFilesSigned<T>(
  g: GlobalOptions,
  out: Output,
  what: string,
  change: () => Promise<T>,
): Promise<T> {
  if (g.dryRun) return change();
  const port = openZymkey({ backend: g.backend, simState: g.simState, runner: createRunner(), root: g.root });
  const guard = await guardBootFiles(port, g.root, what);
  const { result, signed } = await withSignedBootFiles(guard, change);
  if (signed.length > 0)
    out.info(`supervised boot: signed ${signed.join(', ')} in the SCM's manifest (they changed)`);
  return result;
}

/** For --dry-run: what the run would sign in the SCM's manifest, or the run's own refusal. */
export function planBootFilesSigning(
  g: GlobalOptions,
  what: string,
  rewrites: BootRewrites,
): Promise<SigningPlan> {
  const port = openZymkey({ backend: g.backend, simState: g.simState, runner: createRunner(), root: g.root });
  return planSigning(port, g.root, what, rewrites);
}

/**
 * After a change that left the initramfs rebuild to the admin (--no-update): on a Pi whose SCM
 * verifies initramfs images, name the command that signs them after that rebuild.
 */
export async function warnSignAfterRebuild(g: GlobalOptions, out: Output, what: string): Promise<void> {
  const plan = await planBootFilesSigning(g, what, { initramfs: false, paths: [], rebuildLater: true });
  if (plan.afterRebuild.length > 0) out.warn(signAfterRebuildWarning(g.root, plan.afterRebuild));
}
