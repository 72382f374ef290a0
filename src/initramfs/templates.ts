// The boot-script templates under scripts/initramfs/, embedded as text at build time, so the single
// bundle dist/zkluks.mjs carries them and `initramfs install` needs no files beside it.
import hook from '../../scripts/initramfs/hook.sh.in?raw';
import kernelPostinst from '../../scripts/initramfs/kernel-postinst.sh.in?raw';
import keyscript from '../../scripts/initramfs/keyscript.sh.in?raw';

export type TemplateName = 'keyscript' | 'hook' | 'kernel-postinst';

const TEMPLATES: Record<TemplateName, string> = {
  keyscript,
  hook,
  'kernel-postinst': kernelPostinst,
};

export function readTemplate(name: TemplateName): string {
  return TEMPLATES[name];
}
