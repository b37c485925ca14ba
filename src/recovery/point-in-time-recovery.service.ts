import { appendFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Injectable, Logger } from '@nestjs/common';
import { Client } from 'pg';
import type { BackupEntity } from '../backup/backup.entity';
import { AppConfig } from '../config/app-config';
import { EngineRunContext } from '../engines/backup-engine';
import { PointInTimeTarget, PostgresBaseEngine } from '../engines/postgres-base.engine';
import { DrError } from '../errors/dr-error';
import { SecretResolver } from '../secrets/secret-resolver';
import { OPERATOR_SECRET_VARIABLES } from '../secrets/secret-reference';
import { logReasons, pgCtl, runAs, serverIdentity } from './postgres-server';
import type { WalArchiveEntity } from '../wal/wal-archive.entity';
import { WalArchivesService } from '../wal/wal-archives.service';
import { parseLsn, segmentNumberOf, segmentOfLsn } from '../wal/wal-names';

/** What a POINT_IN_TIME recovery reached, recorded on the recovery (`pointInTime`) and returned by the API. */
export interface PointReached {
  baseBackupId: string;
  walArchiveId: string;
  /** The requested target, as given. */
  target: { time?: string; lsn?: string; name?: string; latest?: boolean };
  action: 'promote' | 'pause';
  /** Last WAL position replayed (`pg_last_wal_replay_lsn()`). */
  lsn: string | null;
  /** Commit time of the last transaction replayed (`pg_last_xact_replay_timestamp()`, UTC, microseconds). */
  lastTransactionAt: string | null;
  /** Timeline the server is on once recovery stopped (a new one after promotion). */
  timeline: number | null;
  /** `promoted` (read-write) or `paused` (read-only, replay paused at the target). */
  state: 'promoted' | 'paused';
  /** Milliseconds from the server's start to the target being reached (WAL replay, fetches included). */
  replayMs: number;
  server: { dataDirectory: string; port: number; running: boolean; osUser: string | null };
}

/** What {@link PointInTimeRecovery.precheck} found: the archive, segments missing (not needed by the target), warnings. */
export interface PointInTimePlan {
  archive: WalArchiveEntity;
  gaps: string[];
  warnings: string[];
  /** The newest segment archived when the recovery was checked: a `latest` recovery must replay into it. */
  newestSegment: string | null;
}

/** Characters refused in paths written into restore_command (a shell command inside a single-quoted setting). */
const UNSAFE_PATH = /["'`$\\\s]/;
const POLL_MS = 250;

/**
 * Point-in-time recovery, as pgBackRest and WAL-G do it: the base backup's tar is laid into a new data directory,
 * `recovery.signal` and the recovery settings are written (restore_command = `dr wal-fetch %f %p` with the archive's
 * client config, recovery_target_*, recovery_target_action, the port, archive_mode off so the recovered cluster
 * never writes into the archive it replays), the server is started (as DR_PG_OS_USER when the service is root)
 * and watched until it has reached the target and is promoted (or paused), then the exact point reached is read
 * back. A failure stops the server and names the reason from its log (and any missing WAL segment).
 * See https://www.postgresql.org/docs/15/continuous-archiving.html#BACKUP-PITR-RECOVERY.
 */
@Injectable()
export class PointInTimeRecovery {
  private readonly logger = new Logger(PointInTimeRecovery.name);

  constructor(
    private readonly config: AppConfig,
    private readonly archives: WalArchivesService,
    private readonly engine: PostgresBaseEngine,
    private readonly secrets: SecretResolver,
  ) {}

  /**
   * The base backup to restore for `target` when none is named: the newest completed base backup of archive
   * `walArchiveId` that ended before the target time (or LSN); the newest one for a name or latest.
   * @throws DrError VALIDATION_FAILED naming `target.walArchiveId` / `target.recoveryTarget` when there is none.
   */
  async chooseBaseBackup(walArchiveId: string, target: PointInTimeTarget): Promise<BackupEntity> {
    await this.archives.get(walArchiveId).catch(() => {
      throw DrError.validation([{ field: 'target.walArchiveId', message: `WAL archive ${walArchiveId} does not exist` }]);
    });
    const candidates = (await this.archives.baseBackupsOf(walArchiveId)).filter((b) => this.covers(b, target) === null);
    const chosen = candidates[candidates.length - 1];
    if (!chosen) {
      throw DrError.validation([
        { field: 'target.recoveryTarget', message: `no completed base backup of WAL archive ${walArchiveId} ended before this recovery target` },
      ]);
    }
    return chosen;
  }

  /** Null when base backup `backup` can reach `target`, else why not (the target is before its end). */
  covers(backup: BackupEntity, target: PointInTimeTarget): string | null {
    const range = backup.walRange;
    if (!range) return `backup ${backup.id} is not a base backup (engine postgres-base)`;
    const t = target.recoveryTarget;
    if (t.time !== undefined && new Date(t.time).getTime() < new Date(range.stoppedAt).getTime()) {
      return `recovery target time ${t.time} is before base backup ${backup.id} ended (${range.stoppedAt})`;
    }
    if (t.lsn !== undefined && parseLsn(t.lsn)! < parseLsn(range.endLsn)!) {
      return `recovery target LSN ${t.lsn} is before base backup ${backup.id} ended (${range.endLsn})`;
    }
    return null;
  }

  /**
   * Checks, before anything is read or laid down, that `backup` can reach `target` and that the WAL it needs is in
   * the archive (continuity from the backup's start segment).
   * @throws Error naming the reason: a target before the backup's end, missing WAL segments the target needs.
   * @returns the plan {@link recover} carries out (the archive, gaps that may not matter, warnings).
   */
  async precheck(backup: BackupEntity, target: PointInTimeTarget): Promise<PointInTimePlan> {
    const range = backup.walRange;
    if (!range) throw new Error(`backup ${backup.id} is not a base backup (engine postgres-base)`);
    const uncovered = this.covers(backup, target);
    if (uncovered) throw new Error(uncovered);
    if (UNSAFE_PATH.test(target.dataDirectory) || UNSAFE_PATH.test(this.config.cliPath)) {
      throw new Error('the data directory and DR_CLI_PATH must not hold quotes, $, backslashes or spaces (they go into restore_command)');
    }
    const archive = await this.archives.get(range.walArchiveId);
    const warnings: string[] = [];
    const status = await this.archives.status(archive, { timeline: range.timeline, startLsn: range.startLsn });
    const gaps = status.continuity.missing;
    const t = target.recoveryTarget;
    if (status.continuity.missingCount > 0) {
      const first = gaps[0];
      const needed =
        t.latest ||
        (t.lsn !== undefined && segmentNumberOf(first.slice(8), archive.segmentSizeBytes) <= segmentOfLsn(parseLsn(t.lsn)!, archive.segmentSizeBytes));
      const description = `${status.continuity.missingCount} WAL segment(s) missing from archive ${archive.name} after base backup ${backup.id}: ${gaps.slice(0, 5).join(', ')}`;
      if (needed) throw new Error(`${description}; replay to this target would stop at the gap`);
      warnings.push(description);
    }
    return { archive, gaps, warnings, newestSegment: status.newestSegment };
  }

  /**
   * Runs the recovery planned by {@link precheck}: lays down the base backup from `raw` (the decrypted,
   * decompressed base tar), configures, starts and watches the server.
   * @throws Error with the reason (log lines of the server, missing WAL segments); the server is stopped then.
   */
  async recover(
    backup: BackupEntity,
    target: PointInTimeTarget,
    raw: Readable,
    overwrite: boolean,
    context: EngineRunContext,
    plan: PointInTimePlan,
  ): Promise<{ warnings: string[]; pointInTime: PointReached }> {
    const { archive, gaps, warnings } = plan;
    const t = target.recoveryTarget;
    const identity = await serverIdentity(this.config.pgOsUser);
    await this.engine.restore(target, raw, overwrite, context);
    const dir = target.dataDirectory;
    const clientConfig = await this.archives.clientConfig(archive);
    const configFile = join(dir, 'dr-wal-fetch.json');
    await writeFile(configFile, JSON.stringify(clientConfig, null, 1), { mode: 0o600 });
    await writeFile(join(dir, 'recovery.signal'), '', { mode: 0o600 });
    const action = target.action ?? 'promote';
    const settings = [
      '',
      `# written by the disaster-recovery service for a POINT_IN_TIME recovery of base backup ${backup.id}`,
      `restore_command = '"${this.config.cliPath}" wal-fetch "%f" "%p" --config "${configFile}"'`,
      `recovery_target_timeline = 'latest'`,
      // PostgreSQL's recovery_target_time wants `YYYY-MM-DD HH:MM:SS[.ffffff]+TZ`, not ISO's `T` and `Z`.
      ...(t.time !== undefined ? [`recovery_target_time = '${t.time.replace('T', ' ').replace(/Z$/i, '+00')}'`] : []),
      ...(t.lsn !== undefined ? [`recovery_target_lsn = '${t.lsn}'`] : []),
      ...(t.name !== undefined ? [`recovery_target_name = '${t.name}'`] : []),
      ...(t.latest ? [] : [`recovery_target_action = '${action}'`, `recovery_target_inclusive = ${target.inclusive === false ? 'off' : 'on'}`]),
      `port = ${target.port}`,
      `archive_mode = off`,
      '',
    ];
    await appendFile(join(dir, 'postgresql.auto.conf'), settings.join('\n'));
    if (identity) {
      const chown = await runAs(null, 'chown', ['-R', `${identity.uid}:${identity.gid}`, dir]);
      if (chown.code !== 0) throw new Error(`chown of ${dir} to ${identity.name} failed: ${chown.stderr.trim()}`);
    }
    const env = this.secretEnv(clientConfig);
    const logFile = join(dir, 'dr-recovery.log');
    const timeoutSeconds = target.timeoutSeconds ?? 600;
    const started = Date.now();
    const start = await runAs(identity, pgCtl(this.config.pgBinDir), ['start', '-D', dir, '-l', logFile, '-w', '-t', String(timeoutSeconds)], env, dir);
    if (start.code !== 0) {
      await this.stop(identity, dir, 'immediate');
      throw new Error(`the recovered server did not start: ${await this.reasons(logFile, gaps)}`);
    }
    try {
      const password = target.passwordSecret ? await this.secrets.resolve(target.passwordSecret, 'target.passwordSecret') : undefined;
      const reached = await this.waitForTarget(target, password, action, started + timeoutSeconds * 1000, logFile, gaps, context.signal);
      const replayMs = Date.now() - started;
      if (t.latest) this.checkReachedNewest(reached.lsn, plan.newestSegment, archive.segmentSizeBytes);
      let running = true;
      if (target.stopServer) {
        await this.stop(identity, dir, 'fast');
        running = false;
      }
      this.logger.log(
        `point-in-time recovery of base backup ${backup.id} reached ${reached.lsn} (${reached.lastTransactionAt}) on timeline ${reached.timeline} in ${replayMs} ms`,
      );
      return {
        warnings,
        pointInTime: {
          baseBackupId: backup.id,
          walArchiveId: archive.id,
          target: { ...t },
          action,
          ...reached,
          replayMs,
          server: { dataDirectory: dir, port: target.port, running, osUser: identity?.name ?? null },
        },
      };
    } catch (error) {
      await this.stop(identity, dir, 'immediate');
      throw error;
    }
  }

  /**
   * Polls the server until it is promoted (or paused at the target, for `pause`), connecting as `target.user` with
   * `password` (the recovered cluster keeps the source's pg_hba.conf and roles: it may require one).
   */
  private async waitForTarget(
    target: PointInTimeTarget,
    password: string | undefined,
    action: 'promote' | 'pause',
    deadline: number,
    logFile: string,
    gaps: string[],
    signal: AbortSignal,
  ): Promise<Pick<PointReached, 'lsn' | 'lastTransactionAt' | 'timeline' | 'state'>> {
    let lastError = '';
    while (Date.now() < deadline) {
      if (signal.aborted) throw new Error('interrupted: the service was shut down during the recovery');
      const client = new Client({
        host: '127.0.0.1',
        port: target.port,
        user: target.user ?? 'postgres',
        password,
        database: 'postgres',
        connectionTimeoutMillis: 5000,
      });
      try {
        await client.connect();
        await client.query(`SET TimeZone = 'UTC'`);
        const { rows } = await client.query<{ in_recovery: boolean; pause_state: string }>(
          `SELECT pg_is_in_recovery() AS in_recovery, CASE WHEN pg_is_in_recovery() THEN pg_get_wal_replay_pause_state() ELSE 'not paused' END AS pause_state`,
        );
        const { in_recovery: inRecovery, pause_state: pauseState } = rows[0];
        if (!inRecovery || (action === 'pause' && pauseState === 'paused')) {
          const point = await client.query<{ lsn: string | null; ts: string | null; tli: string | null }>(
            inRecovery
              ? `SELECT pg_last_wal_replay_lsn()::text AS lsn, pg_last_xact_replay_timestamp()::text AS ts, (pg_control_checkpoint()).timeline_id::text AS tli`
              : `SELECT pg_last_wal_replay_lsn()::text AS lsn, pg_last_xact_replay_timestamp()::text AS ts, ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int::text AS tli`,
          );
          const p = point.rows[0];
          return { lsn: p.lsn, lastTransactionAt: p.ts, timeline: p.tli === null ? null : Number(p.tli), state: inRecovery ? 'paused' : 'promoted' };
        }
        if (action === 'promote' && pauseState === 'paused') {
          throw new Error('recovery paused instead of promoting (hot_standby pause on a missing target?)');
        }
      } catch (error) {
        lastError = (error as Error).message;
        if (lastError.startsWith('recovery paused')) throw error;
        // The server stops when the target cannot be reached: the log says why.
        const reasons = await logReasons(logFile);
        if (reasons.some((l) => /FATAL|PANIC/.test(l)) && /ECONNREFUSED|terminat|shutting down|starting up|not yet accepting/i.test(lastError)) {
          throw new Error(`recovery failed: ${await this.reasons(logFile, gaps)}`);
        }
      } finally {
        await client.end().catch(() => undefined);
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
    throw new Error(
      `the recovery target was not reached within ${target.timeoutSeconds ?? 600} s (last: ${lastError || 'still replaying'}); ${await this.reasons(logFile, gaps)}`,
    );
  }

  /**
   * A `latest` recovery ends where restore_command first fails, and PostgreSQL takes any failure (an unreachable
   * store as much as a segment not archived yet) for the end of the WAL. Replay that stopped before the newest
   * segment the archive held when the recovery was checked therefore lost archived transactions: refused.
   * @throws Error naming the segment reached and the newest archived one.
   */
  private checkReachedNewest(lsn: string | null, newestSegment: string | null, segmentBytes: number): void {
    if (!newestSegment) return;
    const reached = lsn === null ? null : parseLsn(lsn);
    const newest = segmentNumberOf(newestSegment.slice(8), segmentBytes);
    if (reached === null || segmentOfLsn(reached, segmentBytes) < newest) {
      throw new Error(
        `replay to latest stopped at ${lsn ?? 'no LSN'}, before the archive's newest segment ${newestSegment}: ` +
          'a WAL fetch failed or a segment is unreadable; the recovered server was stopped (see the server log)',
      );
    }
  }

  private async reasons(logFile: string, gaps: string[]): Promise<string> {
    const lines = await logReasons(logFile);
    const gap = gaps.length ? ` Missing WAL segments in the archive: ${gaps.slice(0, 5).join(', ')}.` : '';
    return `${lines.join(' | ') || 'no reason in the server log'}.${gap}`;
  }

  private async stop(identity: Awaited<ReturnType<typeof serverIdentity>>, dir: string, mode: 'fast' | 'immediate'): Promise<void> {
    const result = await runAs(identity, pgCtl(this.config.pgBinDir), ['stop', '-D', dir, '-m', mode, '-w', '-t', '60'], {}, dir).catch((e: Error) => ({
      code: -1,
      stderr: e.message,
      stdout: '',
    }));
    if (result.code !== 0 && !/PID file .* does not exist|Is server running/.test(result.stderr)) {
      this.logger.warn(`pg_ctl stop -D ${dir} failed: ${result.stderr.trim()}`);
    }
  }

  /**
   * The environment restore_command (`dr wal-fetch`) runs in, inherited from the recovered server: the variables
   * the archive's config references (`env:NAME`) that the request allow-list permits, and that allow-list itself
   * (`DR_SECRET_ENV_PREFIX`, `DR_SECRET_DIRS`, and `DR_DATA_DIR` with the configuration references whose targets it
   * denies), so wal-fetch resolves exactly what the service would. Nothing else of the service's environment.
   */
  private secretEnv(config: object): Record<string, string> {
    const policy = this.config.secretPolicy;
    const env: Record<string, string> = { ...policy.toEnvironment(), DR_DATA_DIR: this.config.dataDir };
    for (const variable of OPERATOR_SECRET_VARIABLES) {
      const ref = this.operatorReference(variable);
      if (ref) env[variable] = ref; // a reference, never a value: wal-fetch denies what it names
    }
    for (const m of JSON.stringify(config).matchAll(/"env:([A-Za-z_][A-Za-z0-9_]*)"/g)) {
      const value = process.env[m[1]];
      if (value !== undefined && policy.allowsEnv(m[1])) env[m[1]] = value;
    }
    return env;
  }

  private operatorReference(variable: (typeof OPERATOR_SECRET_VARIABLES)[number]): string | undefined {
    switch (variable) {
      case 'DR_JWT_SECRET':
        return this.config.jwt?.secretRef;
      case 'DR_AGE_IDENTITY_SECRET':
        return this.config.ageIdentitySecret;
      case 'DR_MANIFEST_SIGNING_KEY_SECRET':
        return this.config.manifestSigningKeySecret;
      case 'DR_VERIFY_PG_PASSWORD_SECRET':
        return this.config.verifyPgPasswordSecret;
    }
  }
}
