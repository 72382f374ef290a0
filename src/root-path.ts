// Every file of the system zkluks works on is a path joined to --root (`/` on a running system, a
// mounted or staged tree otherwise).
import { join } from 'node:path';

/** `path` (absolute in the system) inside the tree at `root`. */
export function under(root: string, path: string): string {
  return join(root, path);
}
