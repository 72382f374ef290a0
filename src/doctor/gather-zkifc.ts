// zkifc's unit state and its recent journal, only on the live system (--root /).
import type { Runner } from '../exec.ts';
import { known, unavailable, unreadable, type Fact, type UnitFacts } from './facts.ts';

export async function gatherZkifc(runner: Runner, live: boolean): Promise<Fact<UnitFacts>> {
  if (!live) return unavailable('zkifc is only asked on the live system (--root /)');
  const state = await runner('systemctl', ['is-active', 'zkifc'], { reject: false, timeoutMs: 5000 });
  if (state.exitCode === 127) return unreadable('systemctl is not available');
  const journal = await runner('journalctl', ['-u', 'zkifc', '-n', '20', '--no-pager', '-o', 'short-iso'], {
    reject: false,
    timeoutMs: 5000,
  });
  return known({
    activeState: state.stdout.trim() || 'unknown',
    journal: journal.exitCode === 0 ? journal.stdout.split('\n').filter((l) => l.trim() !== '') : [],
  });
}
