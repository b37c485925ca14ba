import { Command, Option } from 'nest-commander';
import { VerificationsService } from '../validation/verifications.service';
import { JobStatus } from '../jobs/job-status';
import { CliCommand } from './cli-command';
import { EXIT, setExitCode } from './cli-errors';
import { formatBytes, formatDuration, requireUuid } from './format';

/**
 * `dr verify <backupId> [--restore]`: checks the manifest's signature and every stored object's SHA-256; with
 * `--restore`, also restores into a scratch target and compares it with what the backup recorded. Exit 0 if ok,
 * 1 if a problem was found or the verification could not run.
 */
@Command({
  name: 'verify',
  arguments: '<backupId>',
  description: "Check a completed backup: manifest signature, every object's SHA-256, and with --restore a scratch restore",
  argsDescription: { backupId: 'id of a COMPLETED backup' },
})
export class VerifyCommand extends CliCommand {
  constructor(private readonly verifications: VerificationsService) {
    super();
  }

  @Option({ flags: '--restore', description: 'also restore into a scratch target and compare it with the backup' })
  parseRestore(): boolean {
    return true;
  }

  /** Runs the (recorded) verification and prints `ok` or each problem. */
  async run([backupId]: string[], options: { restore?: boolean }): Promise<void> {
    const v = await this.verifications.verify(
      requireUuid(backupId, 'backupId'),
      { mode: options.restore ? 'restore' : 'checksum', waitSeconds: Infinity },
      'cli',
    );
    if (v.status === JobStatus.FAILED) {
      process.stdout.write(`backup ${v.backupId}: verification could not run: ${v.error}\n`);
      setExitCode(EXIT.FAILED);
      return;
    }
    const read = `${formatBytes(v.bytesRead)} read in ${formatDuration(v.durationMs ?? 0)}`;
    if (v.ok) {
      process.stdout.write(`backup ${v.backupId}: ok (${read}, verification ${v.id})\n`);
      return;
    }
    const problems = v.problems.map((p) => `  - ${p}`).join('\n');
    process.stdout.write(`backup ${v.backupId}: FAILED verification (${read}, verification ${v.id})\n${problems}\n`);
    setExitCode(EXIT.FAILED);
  }
}
