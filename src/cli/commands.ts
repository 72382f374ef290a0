// Every zkluks command. Each module under ./commands/ exports one yargs CommandModule.
import type { CommandModule } from 'yargs';

export const commands: CommandModule[] = [];
