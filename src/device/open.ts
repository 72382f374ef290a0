// The one way to reach a Zymkey: pick the backend, get a port.
import type { Runner } from '../exec.ts';
import type { Backend, ZymkeyPort } from './port.ts';
import { SimZymkey } from './sim.ts';
import { ZymbitZymkey } from './zymbit.ts';

export interface OpenZymkeyOptions {
  backend: Backend;
  /** State directory of the simulator (sim backend only). */
  simState: string;
  /** Runs Zymbit's tools, systemctl and python3 (zymbit backend). */
  runner: Runner;
  /**
   * The system tree zkluks operates on. The module is always the one attached to this machine, so
   * neither backend reads files under it; accepted so callers can pass their options through.
   */
  root?: string;
  /** zymbit backend: told when zkifc could not be started again after a tool ran. */
  onWarning?: (line: string) => void;
}

export function openZymkey(opts: OpenZymkeyOptions): ZymkeyPort {
  if (opts.backend === 'sim') return new SimZymkey(opts.simState);
  return new ZymbitZymkey({ runner: opts.runner, onWarning: opts.onWarning });
}
