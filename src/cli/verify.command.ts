import { Command } from 'nest-commander';
import { BackupsService } from '../backup/backups.service';
import { CliCommand } from './cli-command';
import { EXIT, setExitCode } from './cli-errors';
import { formatBytes, formatDuration, requireUuid } from './format';

/** `dr verify <backupId>`: re-reads the stored artifact and manifest and checks them; exit 0 if ok, else 1. */
@Command({
  name: 'verify',
  arguments: '<backupId>',
  description: "Check a completed backup's stored artifact (size, SHA-256) and manifest against its record",
  argsDescription: { backupId: 'id of a COMPLETED backup' },
})
export class VerifyCommand extends CliCommand {
  constructor(private readonly backups: BackupsService) {
    super();
  }

  /** Runs the (recorded) verification and prints `ok` or each problem. */
  async run([backupId]: string[]): Promise<void> {
    const v = await this.backups.verify(requireUuid(backupId, 'backupId'), 'cli');
    const read = `${formatBytes(v.bytesRead)} read in ${formatDuration(v.durationMs)}`;
    if (v.ok) {
      process.stdout.write(`backup ${v.backupId}: ok (${read}, verification ${v.id})\n`);
      return;
    }
    const problems = v.problems.map((p) => `  - ${p}`).join('\n');
    process.stdout.write(`backup ${v.backupId}: FAILED verification (${read}, verification ${v.id})\n${problems}\n`);
    setExitCode(EXIT.FAILED);
  }
}
