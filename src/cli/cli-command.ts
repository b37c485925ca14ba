import { CommandRunner } from 'nest-commander';

type CommanderCommand = Parameters<CommandRunner['setCommand']>[0];

/**
 * Base of the `dr` commands. nest-commander installs the `errorHandler` only on the root command, so a usage
 * error or `--help` of a sub-command would call `process.exit` before the app (and the embedded database) is
 * closed; here each sub-command throws instead, and the error reaches the CLI's error reporting.
 */
export abstract class CliCommand extends CommandRunner {
  override setCommand(command: CommanderCommand): this {
    command.exitOverride((error) => {
      throw error;
    });
    return super.setCommand(command);
  }
}
