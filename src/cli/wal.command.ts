import { Command, Option } from 'nest-commander';
import { walMain } from '../wal/wal-cli';
import { CliCommand } from './cli-command';
import { setExitCode } from './cli-errors';

/** Options of `dr wal-push` / `dr wal-fetch`, as parsed. */
interface WalOptions {
  config?: string;
}

const CONFIG_OPTION = {
  flags: '--config <file>',
  description: "the WAL archive's client config (JSON, GET /wal-archives/{id}/client-config); default: $DR_WAL_CONFIG",
};

/** Runs the light entry's `command` with the parsed arguments and records its exit code ({@link WAL_EXIT}). */
async function runWalCommand(command: 'wal-push' | 'wal-fetch', args: string[], options: WalOptions): Promise<void> {
  setExitCode(await walMain([command, ...args, ...(options.config ? ['--config', options.config] : [])]));
}

/*
 * `dr wal-push` and `dr wal-fetch` as the full CLI knows them, so that `dr --help` lists them. `bin/dr` sends both
 * straight to the light entry (src/wal/wal-cli.ts: no Nest, no metadata database) before this CLI boots; these
 * commands are reached only through `node dist/cli.js wal-push ...` and delegate to the same code, with the same
 * exit codes.
 */

/** `dr wal-push <path>`: PostgreSQL's archive_command. */
@Command({
  name: 'wal-push',
  arguments: '<path>',
  description: "Archive one WAL file (PostgreSQL's archive_command: dr wal-push %p --config FILE); runs without the service",
  argsDescription: { path: 'the WAL segment or history file (%p)' },
})
export class WalPushCommand extends CliCommand {
  async run(args: string[], options: WalOptions): Promise<void> {
    await runWalCommand('wal-push', args, options);
  }

  @Option(CONFIG_OPTION)
  parseConfig(value: string): string {
    return value;
  }
}

/** `dr wal-fetch <name> <path>`: PostgreSQL's restore_command. */
@Command({
  name: 'wal-fetch',
  arguments: '<name> <path>',
  description: "Restore one archived WAL file (PostgreSQL's restore_command: dr wal-fetch %f %p --config FILE); runs without the service",
  argsDescription: { name: 'the WAL file name (%f)', path: 'where to write it (%p)' },
})
export class WalFetchCommand extends CliCommand {
  async run(args: string[], options: WalOptions): Promise<void> {
    await runWalCommand('wal-fetch', args, options);
  }

  @Option(CONFIG_OPTION)
  parseConfig(value: string): string {
    return value;
  }
}
