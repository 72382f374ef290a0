// Which path unlocked the root this boot, from the boot record when there is one, else from what the
// header allows. Said in one sentence, because a user in trouble needs it first.
import { valueOf, type Facts } from './facts.ts';
import { slotsWithoutZymkey, type WaysIn } from './ways-in.ts';

/**
 * The keyscript's reasons that say how the unseal ended, not why: zkunlockifs's failures are opaque
 * and a hang is stopped at the deadline. The module's own state, as the doctor establishes it now,
 * tells why.
 */
export const RECORDED_HOW = new Set(['unseal-failed', 'timeout']);

/** `established`: why the module fails, as the doctor's own probes tell it now (a failure code). */
export function unlockPath(facts: Facts, ways: WaysIn, established?: string): string {
  const record = valueOf(facts.bootRecord);
  if (record) {
    const f = record.fields;
    const when = f.uptime ? ` (${f.uptime} s after power-on)` : '';
    if (f.method === 'zymkey')
      return `this boot the root was unlocked through the Zymkey${when}, per ${record.path}`;
    if (f.method === 'passphrase') {
      const why =
        f.reason && f.reason !== 'ok'
          ? established && RECORDED_HOW.has(f.reason)
            ? ` after the Zymkey path failed (${established}, as the module shows now; the keyscript recorded ${f.reason}${f.detail ? `: ${f.detail}` : ''})`
            : ` after the Zymkey path failed (${f.reason}${f.detail ? `: ${f.detail}` : ''})`
          : '';
      return `this boot the root was unlocked with a typed passphrase or recovery key${why}, per ${record.path}`;
    }
  }
  if (!ways.known)
    return 'which path unlocked the root this boot is unknown: no boot record and no readable header';
  const others = slotsWithoutZymkey(ways);
  if (others.length > 0) {
    return `no boot record; the header has ${plural(others, 'slot')} besides the Zymkey's, so a passphrase or recovery key may have unlocked it`;
  }
  return `no boot record; the header's only ${plural(ways.zymkeySlots, 'slot')} need${ways.zymkeySlots.length === 1 ? 's' : ''} the Zymkey, so the root was unlocked through the Zymkey before it failed`;
}

export function plural(slots: readonly number[], word: string): string {
  return `${word}${slots.length === 1 ? '' : 's'} ${slots.join(', ')}`;
}
