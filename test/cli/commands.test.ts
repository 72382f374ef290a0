// The command table main.ts hands yargs: names and descriptions up front, each command's module only
// when it runs.
import { describe, expect, it } from 'vitest';
import { commandName, commands, commandsFor, loadCommand } from '../../src/cli/commands.ts';

describe('the command table', () => {
  it("is the one place a command's name and description are written: its module holds neither", async () => {
    for (const entry of commands) {
      const body = await entry.load();
      expect(Object.keys(body).sort(), entry.command).toEqual(['builder', 'handler']);
      expect(body.handler).toBeTypeOf('function');
      const loaded = await loadCommand(entry);
      expect({ command: loaded.command, describe: loaded.describe }).toEqual({
        command: entry.command,
        describe: entry.describe,
      });
    }
  });

  it('finds the command after global options and their values', () => {
    expect(commandName(['list', '--json', 'x'])).toBe('list');
    expect(commandName(['--root', '/mnt', '--backend', 'sim', '--sim-state', '/s', 'doctor'])).toBe('doctor');
    expect(commandName(['--root=/mnt', '--json', 'verify', 'v'])).toBe('verify');
    expect(commandName(['--help'])).toBeUndefined();
    expect(commandName([])).toBeUndefined();
  });

  it('loads only the command that runs', async () => {
    const loaded: string[] = [];
    const spy = commands.map((entry) => ({
      ...entry,
      load: async () => {
        loaded.push(entry.command);
        return entry.load();
      },
    }));
    const yargsCommands = await commandsFor(['--json', 'list', 'vol'], spy);
    expect(loaded).toEqual(['list <volume>']);
    expect(yargsCommands.map((c) => c.command)).toEqual(commands.map((c) => c.command));
    expect(yargsCommands.find((c) => c.command === 'list <volume>')?.builder).toBeDefined();
    loaded.length = 0;
    await commandsFor(['--help'], spy);
    expect(loaded).toEqual([]);
  });
});
