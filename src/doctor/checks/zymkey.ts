// The module itself: can it still unseal our key, is it bound where it should be, and is it safe to
// bind it for production.
import { valueOf, type Facts, type Fact } from '../facts.ts';
import type { Finding } from '../finding.ts';
import { decodeLed } from '../led.ts';
import { rescueNow } from '../rescue.ts';
import { plural, unlockPath } from '../unlock-path.ts';
import { describeUnproven, slotsWithoutZymkey, waysIn, type WaysIn } from '../ways-in.ts';

const area = 'Zymkey' as const;

/**
 * A module that answers neither its tools nor its API gives zkluks no reason: the LED the admin
 * reports is the one signal left, and these patterns name the failure as Zymbit documents them.
 */
const LED_FAILURES: Record<string, string> = {
  'atecc-unreachable': 'self-destructed',
  off: 'host-mismatch',
  'not-bound': 'not-bound',
};

/**
 * Codes that say how a call failed, not why: `unknown`, and `timeout` (a tool that hung was stopped
 * at its deadline). Only the probes' reasons outrank the LED.
 */
const NO_REASON = new Set(['unknown', 'timeout']);

/** Why the module fails, as zkluks's own probes (and the LED the admin reported) tell it; null when it works. */
export function moduleFailure(facts: Facts): { code: string; reason: string } | null {
  const z = valueOf(facts.zymkey);
  if (!z) return null;
  const sources: Fact<unknown>[] = [z.unseal, z.rng, z.info, z.binding, z.perimeter];
  for (const s of sources) {
    if (!s.ok && s.code && !NO_REASON.has(s.code)) return { code: s.code, reason: s.reason };
  }
  for (const s of sources) {
    if (!s.ok && s.status === 'unreadable') {
      const led = facts.led === null ? null : decodeLed(facts.led);
      const code = led ? LED_FAILURES[led.name] : undefined;
      if (led && code) return { code, reason: `${s.reason}; the LED shows ${led.looks}: ${led.means}` };
      return { code: s.code ?? 'unknown', reason: s.reason };
    }
  }
  return null;
}

/** The module answers no API call: its info is unreadable (sim) or unknown (the Python API's client is None). */
function apiSilent(facts: Facts): boolean {
  const info = valueOf(facts.zymkey)?.info;
  return info !== undefined && (!info.ok || info.value.model === 'unknown');
}

function ledSays(facts: Facts, name: string): boolean {
  return facts.led !== null && decodeLed(facts.led).name === name;
}

const SAFE_ORDER =
  "the safe order: 1) clear events (python3 -c 'import zymkey; zymkey.client.clear_perimeter_detect_info()'); " +
  '2) verify the circuit: close the enclosure and clear until get_perimeter_detect_info() reads all zeros; ' +
  "3) add recovery: 'zkluks recovery add VOLUME'; 4) then bind (cut the tab on a ZYMKEY4, lock_binding() on HSM/ZYMKEY5) and reboot; " +
  '5) then arm self-destruct';

function tokenEvidence(facts: Facts): string[] {
  const header = valueOf(facts.header);
  return (header?.tokens ?? [])
    .filter((t) => t.type === 'zkluks-zymkey')
    .map(
      (t) =>
        `token ${t.id} (slot ${t.keyslots.join(',') || 'none'}) was sealed by ${t.zymkey?.model ?? '?'} serial ${t.zymkey?.serial ?? '?'} in ${t.zymkey?.binding ?? '?'} mode`,
    );
}

function broken(facts: Facts, ways: WaysIn, code: string, reason: string): Finding {
  const z = valueOf(facts.zymkey);
  const binding = valueOf(z?.binding);
  const evidence = [
    `Zymkey: ${reason}`,
    ...(binding ? [`binding: ${binding.mode}`] : []),
    ...(valueOf(z?.perimeter) ?? [])
      .filter((c) => c.firstBreach)
      .map((c) => `perimeter channel ${c.channel}: action ${c.action}, first breach ${c.firstBreach}`),
    ...tokenEvidence(facts),
    unlockPath(facts, ways, NO_REASON.has(code) ? undefined : code),
  ];
  const v = ways.volume;
  switch (code) {
    case 'self-destructed':
      return {
        id: 'zymkey.self-destructed',
        area,
        severity: 'error',
        summary: `The Zymkey destroyed its key material (self-destruct after a perimeter breach): it will never unseal again, so the next boot will NOT unlock through the Zymkey${
          !ways.known
            ? '.'
            : ways.provenSlots.length > 0
              ? '; it will stop at the passphrase prompt.'
              : slotsWithoutZymkey(ways).length > 0
                ? `; it will stop at the passphrase prompt, and no recovery key is proven to open the volume: ${[...ways.unproven.map((u) => describeUnproven(ways, u)), ...ways.ignoredSlots.map((s) => `slot ${s} has priority ignore: the prompt never tries it`)].join('; ')}.`
                : ', and no other keyslot opens this volume: after a reboot the data is gone.'
        }`,
        evidence,
        hint: `${rescueNow(ways)}; to use a Zymkey again: fit a new module, then 'zkluks enroll ${v} --force --unlock-key-file FILE' with the recovery key or passphrase in FILE`,
      };
    case 'host-mismatch':
      return {
        id: 'zymkey.host-mismatch',
        area,
        severity: 'error',
        summary:
          'The Zymkey is bound in production mode to another host (a replacement Pi or a cloned SD card): it refuses to unseal here, at every boot, and production binding cannot be undone.',
        evidence,
        hint:
          ways.provenSlots.length > 0
            ? `put the module back on its original Pi with its original SD card; to keep this Pi: a production module never binds to another Pi, so unlock with the recovery key ('zkluks recovery unlock ${v} --identity FILE', or type it at the prompt), fit a new module here (it starts in developer mode), then 'zkluks enroll ${v} --force --unlock-key-file FILE' with the recovery key or passphrase in FILE`
            : slotsWithoutZymkey(ways).length > 0
              ? `put the module back on its original Pi with its original SD card; to keep this Pi: a production module never binds to another Pi, so unlock with a passphrase of ${plural(slotsWithoutZymkey(ways), 'slot')} if you hold one (no token proves one; type it at the prompt), fit a new module here (it starts in developer mode), then 'zkluks enroll ${v} --force --unlock-key-file FILE' with that passphrase in FILE`
              : 'put the module back on its original Pi with its original SD card: this volume has no slot that opens without that exact module, Pi and card',
      };
    case 'wrong-module':
      return {
        id: 'zymkey.wrong-module',
        area,
        severity: 'error',
        summary: 'The sealed key was made by a different Zymkey: this module cannot unseal it.',
        evidence,
        hint: `fit the module that sealed it, or unlock with the recovery key and run 'zkluks rotate ${v}'`,
      };
    case 'unreachable':
      return {
        id: 'zymkey.unreachable',
        area,
        severity: 'error',
        summary:
          'The Zymkey does not answer: the boot cannot unseal the key and will fall back to the prompt.',
        evidence,
        hint: "run 'zkluks device probe'; check dtparam=i2c_arm=on in config.txt and ZK_GPIO_WAKE_PIN in /var/lib/zymbit/zkenv.conf",
      };
    case 'not-bound':
      return {
        id: 'zymkey.not-bound',
        area,
        severity: 'error',
        summary: 'The Zymkey has not bound to this host, so it refuses every crypto call.',
        evidence,
        hint: "check the wake pin and I2C, then 'systemctl restart zkifc' and wait for one blink every 3 s",
      };
    case 'state-missing':
    case 'state-corrupt':
      return {
        id: `zymkey.${code}`,
        area,
        severity: 'error',
        summary: `Zymbit's state directory is ${code === 'state-missing' ? 'missing' : 'corrupt'}: the module cannot work, and in production mode it never will again.`,
        evidence,
        hint: `restore /var/lib/zymbit from a backup of this exact host; otherwise unlock with the recovery key and run 'zkluks rotate ${v}'`,
      };
    case 'tool-missing':
      return {
        id: 'zymkey.tool-missing',
        area,
        severity: 'error',
        summary: "Zymbit's standalone tools (zkgrifs, zklockifs, zkunlockifs) are not installed.",
        evidence,
        hint: 'apt-get install zksaapps',
      };
    case 'corrupt-blob':
      return {
        id: 'zymkey.corrupt-blob',
        area,
        severity: 'error',
        summary: 'The sealed key in the header fails authentication: it was changed or damaged.',
        evidence,
        hint: `unlock with the recovery key, then 'zkluks rotate ${v}'`,
      };
    default:
      return {
        id: 'zymkey.failed',
        area,
        severity: 'error',
        summary: `The Zymkey fails (${code}): the boot cannot unseal the key through it.`,
        evidence,
        hint:
          NO_REASON.has(code) && facts.led === null && apiSilent(facts)
            ? "only the LED tells why a module that answers nothing fails: read it and run 'zkluks doctor --led PATTERN' (the patterns: zkluks doctor --help)"
            : "run 'zkluks device info' and 'systemctl status zkifc'",
      };
  }
}

/**
 * The binding mode as far as it can be known: the module's answer (HSM family), else the LED the
 * admin reported, else what the token recorded when the key was sealed. A ZYMKEY4 refuses the query.
 */
function bindingMode(facts: Facts): { mode: 'developer' | 'production' | 'unknown'; from: string } {
  const binding = valueOf(valueOf(facts.zymkey)?.binding);
  if (binding && binding.mode !== 'unknown') return { mode: binding.mode, from: 'the module' };
  if (ledSays(facts, 'production-bound'))
    return { mode: 'production', from: 'the LED (3 rapid blinks every 3 s)' };
  if (ledSays(facts, 'dev-bound')) return { mode: 'developer', from: 'the LED (1 blink every 3 s)' };
  const recorded = (valueOf(facts.header)?.tokens ?? [])
    .map((t) => t.zymkey?.binding)
    .find((b) => b === 'production' || b === 'developer');
  if (recorded) return { mode: recorded, from: 'the token, when the key was sealed' };
  return {
    mode: 'unknown',
    from: 'nothing: the module does not answer the binding query (ZYMKEY4) and no LED was given',
  };
}

function productionReadiness(facts: Facts, ways: WaysIn): Finding[] {
  const z = valueOf(facts.zymkey);
  if (!z?.binding.ok) return [];
  const { mode, from } = bindingMode(facts);
  if (mode === 'production') {
    return [
      {
        id: 'zymkey.binding',
        area,
        severity: 'ok',
        summary: 'Bound in production mode (permanent).',
        evidence: [`binding: production (from ${from})`],
        hint: '',
      },
    ];
  }
  const perimeter = valueOf(z.perimeter) ?? [];
  const problems: string[] = [];
  for (const c of perimeter) {
    if (c.firstBreach) {
      problems.push(
        `channel ${c.channel} has a breach latched (first breach ${c.firstBreach}): the circuit is open or faulty, and the API cannot read back whether it is armed to self-destruct; if it is, binding destroys the keys`,
      );
    }
  }
  if (ways.known && ways.zymkeySlots.length > 0 && slotsWithoutZymkey(ways).length === 0) {
    problems.push(
      `no recovery path: ${plural(ways.zymkeySlots, 'slot')} need${ways.zymkeySlots.length === 1 ? 's' : ''} the Zymkey and no other slot opens the volume, so once bound any Pi, card or module failure leaves the disk unrecoverable`,
    );
  }
  const modeLine = `binding: ${mode} (from ${from})`;
  if (problems.length === 0) {
    return [
      {
        id: 'zymkey.binding',
        area,
        severity: 'ok',
        summary:
          mode === 'developer'
            ? 'Bound in developer mode; nothing stops a later production binding.'
            : 'Binding mode unknown; nothing stops a later production binding.',
        evidence: [
          modeLine,
          ...perimeter.map(
            (c) => `channel ${c.channel}: ${c.firstBreach ? `breach latched ${c.firstBreach}` : 'no breach'}`,
          ),
        ],
        hint: mode === 'unknown' ? "tell the doctor what the LED shows: 'zkluks doctor --led PATTERN'" : '',
      },
    ];
  }
  return [
    {
      id: 'zymkey.not-ready-for-production',
      area,
      severity: 'error',
      summary: `${mode === 'developer' ? 'Still in developer mode' : 'Not known to be bound for production'}, and binding for production now (cutting the tab, lock_binding) would destroy the keys or leave the disk unrecoverable.`,
      evidence: [modeLine, ...problems],
      hint: SAFE_ORDER.replace('VOLUME', `${ways.volume}${ways.zymbitAuthority}`),
    },
  ];
}

function perimeter(facts: Facts, destroyed: boolean): Finding[] {
  if (destroyed) return [];
  const z = valueOf(facts.zymkey);
  // Before production a latched breach is part of the readiness finding.
  const production = bindingMode(facts).mode === 'production';
  return (valueOf(z?.perimeter) ?? [])
    .filter((c) => c.firstBreach && production)
    .map((c) => ({
      id: 'zymkey.breach-latched',
      area,
      severity: 'warning' as const,
      summary: `Perimeter channel ${c.channel} has a latched breach.`,
      evidence: [`channel ${c.channel}: first breach ${c.firstBreach}`],
      hint: "verify the circuit, then clear it: python3 -c 'import zymkey; zymkey.client.clear_perimeter_detect_info()'",
    }));
}

function zkifc(facts: Facts): Finding[] {
  const z = valueOf(facts.zymkey);
  if (z?.backend !== 'zymbit') return [];
  if (!facts.zkifc.ok) {
    return [
      {
        id: 'zymkey.zkifc-unknown',
        area,
        severity: 'info',
        summary: 'zkifc state not read.',
        evidence: [facts.zkifc.reason],
        hint: '',
      },
    ];
  }
  const u = facts.zkifc.value;
  if (u.activeState === 'active') {
    return [
      { id: 'zymkey.zkifc', area, severity: 'ok', summary: 'zkifc is running.', evidence: [], hint: '' },
    ];
  }
  return [
    {
      id: 'zymkey.zkifc-inactive',
      area,
      severity: 'warning',
      summary: `zkifc is ${u.activeState}: the Zymkey API fails on this running system (the boot path does not need it).`,
      evidence: u.journal.slice(-8).map((l) => `journal: ${l}`),
      hint: "systemctl restart zkifc; then 'journalctl -u zkifc -n 50'",
    },
  ];
}

function led(facts: Facts): Finding[] {
  if (facts.led === null) return [];
  const p = decodeLed(facts.led);
  return [
    {
      id: `zymkey.led.${p.name}`,
      area,
      severity: p.severity,
      summary: `The LED shows ${p.looks}: ${p.means}.`,
      evidence: [`--led '${facts.led}' decoded as '${p.name}'`],
      hint: p.hint,
    },
  ];
}

export function checkZymkey(facts: Facts): Finding[] {
  const ways = waysIn(facts);
  const findings: Finding[] = [];
  if (!facts.zymkey.ok) {
    findings.push({
      id: 'zymkey.not-asked',
      area,
      severity: 'warning',
      summary: 'The Zymkey was not asked.',
      evidence: [facts.zymkey.reason],
      hint: "run on the Pi itself, or with '--backend sim --sim-state DIR'",
    });
    return [...findings, ...led(facts)];
  }
  const z = facts.zymkey.value;
  let fail = moduleFailure(facts);
  if (!fail && ledSays(facts, 'atecc-unreachable') && z.binding.ok && z.binding.value.mode === 'production') {
    fail = {
      code: 'self-destructed',
      reason: 'the LED shows 5 slow blinks after a rapid flash (secure element gone)',
    };
  }
  if (fail) {
    findings.push(broken(facts, ways, fail.code, fail.reason));
  } else if (z.unseal.ok) {
    const { tokenId, opensSlot, source } = z.unseal.value;
    const token = valueOf(facts.header)?.tokens.find((t) => t.id === tokenId);
    const slot = token?.keyslots.join(',') ?? (ways.zymkeySlots.join(',') || '?');
    findings.push(
      opensSlot === false
        ? {
            id: 'zymkey.key-rejected',
            area,
            severity: 'error',
            summary: `The Zymkey unseals the key in ${source}, but slot ${slot} rejects it: the boot will fall back to the prompt.`,
            evidence: tokenEvidence(facts),
            hint: `unlock with the recovery key or passphrase, then 'zkluks rotate ${ways.volume}'`,
          }
        : {
            id: 'zymkey.unseal',
            area,
            severity: 'ok',
            summary: `The Zymkey unseals the key in ${source}${opensSlot ? ` and it opens slot ${slot}` : ''}.`,
            evidence: z.info.ok
              ? [`${z.info.value.model} serial ${z.info.value.serial}, firmware ${z.info.value.firmware}`]
              : [],
            hint: '',
          },
    );
  } else if (z.info.ok) {
    findings.push({
      id: 'zymkey.info',
      area,
      severity: 'ok',
      summary: `The Zymkey answers: ${z.info.value.model} serial ${z.info.value.serial}.`,
      evidence: [`unseal not tried: ${z.unseal.reason}`],
      hint: '',
    });
  }
  const info = valueOf(z.info);
  for (const t of valueOf(facts.header)?.tokens ?? []) {
    if (
      t.type === 'zkluks-zymkey' &&
      info &&
      t.zymkey?.serial &&
      info.serial !== 'unknown' &&
      t.zymkey.serial !== info.serial &&
      fail?.code !== 'wrong-module'
    ) {
      findings.push({
        id: 'zymkey.other-module',
        area,
        severity: 'warning',
        summary: `Token ${t.id} was sealed by module serial ${t.zymkey.serial}, but the module fitted is serial ${info.serial}.`,
        evidence: tokenEvidence(facts),
        hint: `'zkluks rotate ${ways.volume}' seals a new key with the fitted module`,
      });
    }
  }
  if (!fail || fail.code !== 'self-destructed') findings.push(...productionReadiness(facts, ways));
  findings.push(...perimeter(facts, fail?.code === 'self-destructed'), ...zkifc(facts), ...led(facts));
  return findings;
}
