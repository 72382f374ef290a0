// Facts in, findings out: every check is a pure function over the same gathered facts.
import type { Facts } from './facts.ts';
import type { Check, Finding } from './finding.ts';
import { checkBootFirmware } from './checks/boot-firmware.ts';
import { checkCrypttab } from './checks/crypttab.ts';
import { checkEncryption } from './checks/encryption.ts';
import { checkI2c } from './checks/i2c.ts';
import { checkInitramfs } from './checks/initramfs.ts';
import { checkLastBoot } from './checks/last-boot.ts';
import { checkLuksHeader } from './checks/luks-header.ts';
import { checkSupervisedBoot } from './checks/supervised-boot.ts';
import { checkZymkey } from './checks/zymkey.ts';
import { verdict, type Verdict } from './verdict.ts';

export const CHECKS: readonly Check<Facts>[] = [
  checkZymkey,
  checkI2c,
  checkLuksHeader,
  checkCrypttab,
  checkInitramfs,
  checkBootFirmware,
  checkSupervisedBoot,
  checkLastBoot,
  checkEncryption,
];

export interface Diagnosis {
  version: 1;
  verdict: Verdict;
  findings: Finding[];
}

export function diagnose(facts: Facts): Diagnosis {
  const findings = CHECKS.flatMap((check) => check(facts));
  return { version: 1, verdict: verdict(findings), findings };
}
