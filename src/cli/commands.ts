// Every zkluks command. Each module under ./commands/ exports one yargs CommandModule.
import type { CommandModule } from 'yargs';
import { deviceCommand } from './commands/device.ts';
import { doctorCommand } from './commands/doctor.ts';
import { simCommand } from './commands/sim.ts';
import { initramfsCommand } from './commands/initramfs.ts';

export const commands: CommandModule[] = [deviceCommand, simCommand, doctorCommand, initramfsCommand];
