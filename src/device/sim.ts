// The sim backend: a software Zymkey behind the same port as the real module. Every call reads the
// state file afresh, so a breach or an unplug done by `zkluks sim …` in another process takes effect
// on the next call (also in a running `zkluks sim serve`).
import { randomBytes } from 'node:crypto';
import { zymkeyFailure } from './failures.ts';
import {
  checkRandomCount,
  type BindingInfo,
  type PerimeterChannel,
  type ZymkeyInfo,
  type ZymkeyPort,
} from './port.ts';
import { BlobError, openBlob, sealBlob } from './sealed-blob.ts';
import { loadSimState, type SimState } from './sim-state.ts';

/** Read the state and fail like the module would when it cannot be talked to at all. */
export function reachableSimState(stateDir: string, action: string): SimState {
  const state = loadSimState(stateDir);
  if (!state.reachable) {
    throw zymkeyFailure('unreachable', action, 'the simulated module is unplugged');
  }
  return state;
}

/** The state, if the module will do crypto now; otherwise the failure a real module would give. */
function cryptoReadyState(stateDir: string, action: string): SimState & { secret: string } {
  const state = reachableSimState(stateDir, action);
  if (state.selfDestruct !== null || state.secret === null) {
    const sd = state.selfDestruct;
    throw zymkeyFailure(
      'self-destructed',
      action,
      sd
        ? `perimeter channel ${sd.channel} was breached at ${sd.at} with self-destruct armed in production mode`
        : undefined,
    );
  }
  if (state.binding.mode === 'production' && state.host !== state.binding.boundHost) {
    throw zymkeyFailure(
      'host-mismatch',
      action,
      `the module is bound to host ${state.binding.boundHost} but sits on host ${state.host}`,
    );
  }
  return state as SimState & { secret: string };
}

export class SimZymkey implements ZymkeyPort {
  readonly backend = 'sim' as const;

  constructor(readonly stateDir: string) {}

  async randomBytes(n: number): Promise<Buffer> {
    checkRandomCount(n);
    cryptoReadyState(this.stateDir, 'read random bytes from the Zymkey');
    return randomBytes(n);
  }

  async seal(plain: Buffer): Promise<Buffer> {
    const state = cryptoReadyState(this.stateDir, 'seal data with the Zymkey');
    return sealBlob(plain, {
      secret: Buffer.from(state.secret, 'base64'),
      moduleId: Buffer.from(state.module.id, 'hex'),
      host: state.binding.mode === 'production' ? state.host : null,
    });
  }

  async unseal(sealed: Buffer): Promise<Buffer> {
    const action = 'unseal data with the Zymkey';
    const state = cryptoReadyState(this.stateDir, action);
    try {
      return openBlob(
        sealed,
        Buffer.from(state.secret, 'base64'),
        Buffer.from(state.module.id, 'hex'),
        state.host,
      );
    } catch (error) {
      if (error instanceof BlobError) throw zymkeyFailure(error.reason, action, error.message);
      throw error;
    }
  }

  async info(): Promise<ZymkeyInfo> {
    const { model, serial, firmware } = reachableSimState(this.stateDir, 'read Zymkey info').module;
    return { model, serial, firmware };
  }

  async binding(): Promise<BindingInfo> {
    const state = reachableSimState(this.stateDir, 'read Zymkey binding');
    return { mode: state.binding.mode, bound: state.host === state.binding.boundHost };
  }

  async perimeter(): Promise<PerimeterChannel[]> {
    const state = reachableSimState(this.stateDir, 'read Zymkey perimeter');
    return state.perimeter.map((c) => ({ channel: c.channel, action: c.action, firstBreach: c.firstBreach }));
  }
}
