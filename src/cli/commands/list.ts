// zkluks list VOLUME: every keyslot with what it is for (zymkey, recovery, another tool's token,
// pending in an interrupted change, or unknown: no token says), its KDF and priority, any zkluks
// token that cannot be used, and a change an interruption left recorded in the header.
import type { CommandBody } from '../commands.ts';
import { createRunner } from '../../exec.ts';
import { readHeader } from '../../keyslot/header.ts';
import { describePending, findPending, pendingSlots } from '../../keyslot/pending.ts';
import { viewVolume } from '../../keyslot/volume-view.ts';
import { globalOptions } from '../global-options.ts';
import { safeText } from '../../safe-text.ts';
import { createOutput } from '../output.ts';
import { volumeArg, volumeOf } from '../volume-arg.ts';

export const listCommand: CommandBody = {
  builder: (y) => volumeArg(y),
  handler: async (argv) => {
    const g = globalOptions(argv);
    const volume = volumeOf(argv);
    const header = await readHeader(createRunner(), volume, { concurrent: true });
    const view = viewVolume(header);
    const pending = findPending(header);
    const slots = view.slots.map((s) => ({
      slot: s.id,
      kind: s.kind,
      kdf: s.kdf,
      iterations: s.iterations,
      priority: s.priority,
      tokens: s.tokens,
      tokenType: s.tokens[0]?.type ?? null,
    }));
    const problems = view.problems.map((p) => ({
      token: p.tokenId,
      type: p.type,
      kind: p.kind,
      slot: p.slot,
      problem: p.error.problem,
    }));
    const rows = [
      ['SLOT', 'KIND', 'KDF', 'PRIORITY', 'TOKEN'],
      ...slots.map((s) => [
        String(s.slot),
        s.kind === 'other-token' ? `other (${s.tokenType})` : s.kind,
        `${s.kdf}${s.iterations !== null ? ` (${s.iterations})` : ''}`,
        s.priority,
        s.tokens.map((t) => `${t.id}:${t.type}`).join(',') || '-',
      ]),
    ];
    // Token types come from the header: on a found disk, whoever made it chose them.
    for (const r of rows) r.forEach((c, i) => (r[i] = safeText(c)));
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] as string).length)));
    const table = rows.map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i] as number))
        .join('  ')
        .trimEnd(),
    );
    for (const p of problems)
      table.push(`warning: token ${p.token} (${safeText(p.type)}) is unusable: ${safeText(p.problem)}`);
    const foreign = [...view.zymkey, ...view.recovery].filter((o) => o.match === 'mismatch');
    for (const o of foreign) {
      table.push(
        `warning: token ${o.tokenId} (${safeText(o.token.type)}) was not made for keyslot ${o.slot} (the slot's salt differs from the one it recorded: copied from another volume, or the slot was re-keyed); zkluks ${o.token.type === 'zkluks-zymkey' ? 'wipes that slot only once the Zymkey shows its key opens it, and refuses to guess while the Zymkey cannot answer' : 'keeps that slot when it removes the token'}`,
      );
    }
    for (const p of pending) {
      table.push(
        `warning: ${describePending(p)}; the next zkluks change to this volume settles it (to settle it now: zkluks repair '${volume}')`,
      );
    }
    const unknown = view.slots.filter((s) => s.kind === 'unknown').map((s) => s.id);
    if (unknown.length > 0) {
      table.push(
        `note: keyslot ${unknown.join(', ')} ${unknown.length > 1 ? 'have' : 'has'} no token: a passphrase, or a key nobody holds; zkluks counts such a slot as a way in only when a key you give opens it`,
      );
    }
    const ignored = view.slots.filter((s) => s.priority === 'ignore').map((s) => s.id);
    if (ignored.length > 0) {
      table.push(
        `warning: keyslot ${ignored.join(', ')} ${ignored.length > 1 ? 'have' : 'has'} priority ignore: the boot prompt never tries ${ignored.length > 1 ? 'them' : 'it'}, so ${ignored.length > 1 ? 'they are' : 'it is'} no way in at boot`,
      );
    }
    createOutput(g.json).data(table.join('\n'), {
      volume,
      uuid: view.header.uuid,
      freeKeyslots: view.header.freeKeyslots,
      slots,
      problems,
      foreignTokens: foreign.map((o) => ({ token: o.tokenId, type: o.token.type, slot: o.slot })),
      interrupted: pending.map((p) => ({
        token: p.tokenId,
        operation: p.intent?.operation ?? null,
        phase: p.intent?.phase ?? null,
        slots: p.intent ? pendingSlots(p.intent) : [],
        description: describePending(p),
      })),
    });
  },
};
