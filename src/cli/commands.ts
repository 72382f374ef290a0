// Every zkluks command. Each module under ./commands/ exports one yargs CommandModule.
import type { CommandModule } from 'yargs';
import { deviceCommand } from './commands/device.ts';
import { doctorCommand } from './commands/doctor.ts';
import { simCommand } from './commands/sim.ts';
import { initramfsCommand } from './commands/initramfs.ts';
import { enrollCommand } from './commands/enroll.ts';
import { listCommand } from './commands/list.ts';
import { verifyCommand } from './commands/verify.ts';
import { rotateCommand } from './commands/rotate.ts';
import { removeCommand } from './commands/remove.ts';
import { recoveryCommand } from './commands/recovery.ts';
import { repairCommand } from './commands/repair.ts';

export const commands: CommandModule[] = [
  deviceCommand,
  simCommand,
  doctorCommand,
  initramfsCommand,
  enrollCommand,
  listCommand,
  verifyCommand,
  rotateCommand,
  removeCommand,
  recoveryCommand,
  repairCommand,
];
