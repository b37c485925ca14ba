import { Command, Option } from 'nest-commander';
import { JobStatus } from '../jobs/job-status';
import { BackupsService } from '../backup/backups.service';
import { ListBackupsQuery } from '../backup/dto/backup.dto';
import { ENGINE_NAMES } from '../engines/backup-engine';
import { DrError } from '../errors/dr-error';
import { validateNested } from '../errors/validation';
import { CliCommand } from './cli-command';
import { compact, formatTable, truncate } from './format';

/** Options of `dr list`, as parsed. */
export interface ListOptions {
  status?: string;
  plan?: string;
  engine?: string;
  limit?: number;
}

const ERROR_WIDTH = 60;

/** `dr list`: the newest backups as a plain aligned table on stdout. */
@Command({ name: 'list', aliases: ['ls'], description: 'List backups, newest first' })
export class ListCommand extends CliCommand {
  constructor(private readonly backups: BackupsService) {
    super();
  }

  /** Prints one row per backup: id, engine, status, createdAt, storedBytes, error (truncated). */
  async run(_args: string[], options: ListOptions): Promise<void> {
    const query = await validateNested(
      ListBackupsQuery,
      compact({ status: options.status, planId: options.plan, engine: options.engine, limit: options.limit }),
      '',
    );
    const page = await this.backups.list(query);
    const rows = page.items.map((b) => [
      b.id,
      b.engine,
      b.status,
      b.createdAt.toISOString(),
      b.storedBytes === null ? '-' : String(b.storedBytes),
      truncate(b.error, ERROR_WIDTH),
    ]);
    process.stdout.write(`${formatTable(['ID', 'ENGINE', 'STATUS', 'CREATED_AT', 'STORED_BYTES', 'ERROR'], rows, [4])}\n`);
    if (page.total > page.items.length) {
      process.stderr.write(`(${page.items.length} of ${page.total} backups shown; use --limit)\n`);
    }
  }

  @Option({ flags: '-s, --status <status>', description: 'only backups with this status', choices: Object.values(JobStatus) })
  parseStatus(value: string): string {
    return value;
  }

  @Option({ flags: '--plan <planId>', description: 'only backups of this plan' })
  parsePlan(value: string): string {
    return value;
  }

  @Option({ flags: '-e, --engine <engine>', description: 'only backups of this engine', choices: ENGINE_NAMES })
  parseEngine(value: string): string {
    return value;
  }

  @Option({ flags: '-n, --limit <n>', description: 'at most this many rows (1-200, default 50)' })
  parseLimit(value: string): number {
    const n = Number(value);
    if (!Number.isInteger(n)) throw DrError.validation([{ field: 'limit', message: 'limit must be an integer' }]);
    return n;
  }
}
