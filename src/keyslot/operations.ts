// Every keyslot operation, one file each: enroll.ts, rotate.ts, remove.ts (remove and recovery
// remove), recovery-add.ts, verify.ts, recovery-verify.ts and repair.ts, on the run operation.ts
// shares (lock, settle an interrupted change, plan, apply).
export { enroll, type EnrollRequest } from './enroll.ts';
export type { KeyslotDeps, OperationResult } from './operation.ts';
export { recoveryAdd, type RecoveryAddRequest } from './recovery-add.ts';
export { unlockEscrow, verifyRecovery, type RecoveryVerifyReport } from './recovery-verify.ts';
export { recoveryRemove, remove, type RemoveRequest } from './remove.ts';
export { repair, type RepairResult } from './repair.ts';
export { rotate, type RotateRequest } from './rotate.ts';
export { verifyZymkey, type VerifyReport } from './verify.ts';
export { checkZymkeyTokens } from './zymkey-tokens.ts';
