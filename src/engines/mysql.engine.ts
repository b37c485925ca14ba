import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Injectable, Logger } from '@nestjs/common';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ArrayMaxSize, ArrayNotEmpty, IsArray, IsBoolean, IsIn, IsOptional, IsString, Matches, MaxLength } from 'class-validator';
import { DrError } from '../errors/dr-error';
import { SECRET_REF_PATTERN, SecretResolver } from '../secrets/secret-resolver';
import { IsDatabaseUrl } from './database-url';
import { TargetReservationKey, BackupEngine, EngineBackupRun, EngineRestoreResult, EngineRunContext, RecordedContent, RestoreCheck } from './backup-engine';
import { MysqlAddress, MysqlClient, parseMysqlUrl, quoteIdent, rows, scrubbedError } from './mysql-client';
import { MysqlDumpDigestStream } from './mysql-dump-digest';
import { captureMysqlGlobals, createdAccounts, MysqlAccount, mysqlGlobalsScript } from './mysql-globals';
import { TableDigest } from './pg-dump-digest';
import { compareTables } from './postgres.engine';

/** A table name as MySQL allows it (1-64 characters, no NUL), not starting with `-` (it is passed in argv). */
const TABLE_NAME = /^(?!-)[^\u0000]{1,64}$/u;

/** A MySQL or MariaDB server and database: a URL without password, and where the password comes from. */
export class MysqlConnection {
  /** `mysql://user@host:port/database`, optionally `?connect_timeout=S`: no password, no other parameter. */
  @IsString()
  @MaxLength(2000)
  @IsDatabaseUrl('mysql')
  url: string;

  @IsOptional()
  @IsString()
  @Matches(SECRET_REF_PATTERN, { message: 'passwordSecret must be env:NAME or file:/absolute/path' })
  passwordSecret?: string;
}

/** `source` of a MySQL/MariaDB backup: `mysql://user@host:port/database`, its password, and optionally which tables. */
export class MysqlSource extends MysqlConnection {
  /** Only these tables or views (the database's routines and events come along); all of them when absent. */
  @IsOptional()
  @IsArray()
  @ArrayNotEmpty()
  @ArrayMaxSize(10_000)
  @IsString({ each: true })
  @Matches(TABLE_NAME, { each: true, message: 'tables must hold table names (1-64 characters, not starting with "-")' })
  tables?: string[];
}

/** How a restore treats the accounts the backup's globals object names. */
export const USER_MODES = ['create', 'none'] as const;

/** `target` of a MySQL/MariaDB restore: the database to restore into. */
export class MysqlTarget extends MysqlConnection {
  /** Create the database when it does not exist. */
  @IsOptional()
  @IsBoolean()
  create?: boolean;

  /**
   * `create` (the default): after the dump, create the accounts the backup's globals object names that the server
   * lacks (locked, without password) and grant their privileges on the restored database. `none`: neither.
   */
  @IsOptional()
  @IsIn(USER_MODES, { message: `users must be one of ${USER_MODES.join(', ')}` })
  users?: (typeof USER_MODES)[number];
}

/**
 * MySQL and MariaDB logical backups: `mariadb-dump` (or `mysqldump` where MariaDB's is not installed) with
 * `--single-transaction` (one consistent InnoDB snapshot, no table locks) writes SQL that is streamed through
 * {@link MysqlDumpDigestStream} (per-table row counts and SHA-256) into the pipeline; `mariadb` (or `mysql`) reads it
 * back into a target database. The dump names no database (no `CREATE DATABASE`, no `USE`), so it restores into a
 * database of any name. Passwords reach the tools only through `MYSQL_PWD` in their environment (see
 * {@link MysqlClient}), and the driver in memory.
 *
 * Tables of other engines than InnoDB (MyISAM, Aria...) are not covered by the snapshot: the backup records a
 * warning naming them. Events are dumped when the user may read them (EVENT privilege), else a warning says so.
 */
@Injectable()
export class MysqlEngine implements BackupEngine<MysqlSource, MysqlTarget> {
  private readonly logger = new Logger(MysqlEngine.name);
  readonly name = 'mysql' as const;
  readonly artifactExtension = 'sql';
  readonly contentType = 'application/sql';
  readonly indexInRecord = false;
  /** The client executes statements as it reads them: a recovery proves the stored object before it starts. */
  readonly restoreIsStaged = false;
  readonly sourceClass = MysqlSource;
  readonly targetClass = MysqlTarget;

  constructor(
    private readonly mysql: MysqlClient,
    private readonly secrets: SecretResolver,
  ) {}

  async toolVersions(): Promise<Record<string, string>> {
    return (await this.mysql.findTools()).versions;
  }

  async checkSource(source: MysqlSource): Promise<void> {
    parseMysqlUrl(source.url, 'source.url');
  }

  /**
   * Probes the server (version, tables outside InnoDB, whether events are readable), then streams the dump.
   * @throws Error "cannot connect to host:port/db as user: ..." when the probe fails (wrong password, unreachable).
   */
  async backup(source: MysqlSource, context: EngineRunContext): Promise<EngineBackupRun> {
    const address = parseMysqlUrl(source.url, 'source.url');
    const password = await this.password(source, 'source.passwordSecret');
    await this.mysql.findTools();
    const warnings: string[] = [];
    const probe = await this.mysql
      .withConnection(address, password, address.database, async (c) => {
        const [version] = await rows<{ version: string; comment: string }>(c, 'SELECT VERSION() AS version, @@version_comment AS comment');
        const others = await rows<{ name: string; engine: string | null }>(
          c,
          `SELECT TABLE_NAME AS name, ENGINE AS engine FROM information_schema.TABLES
          WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' AND (ENGINE IS NULL OR ENGINE <> 'InnoDB') ORDER BY TABLE_NAME`,
          [address.database],
        );
        let events = true;
        try {
          await c.query(`SHOW EVENTS FROM ${quoteIdent(address.database)}`);
        } catch (error) {
          events = false;
          warnings.push(`events not dumped: ${scrubbedError(error, password).message}`);
        }
        return { server: `${version.version} (${version.comment})`, others, events };
      })
      .catch((error: Error) => {
        throw scrubbedError(error, password, `cannot connect to ${address.host}:${address.port}/${address.database} as ${address.user}: `);
      });
    const wanted = source.tables ? new Set(source.tables) : undefined;
    const inconsistent = probe.others.filter((t) => !wanted || wanted.has(t.name));
    if (inconsistent.length) {
      const shown = inconsistent
        .slice(0, 20)
        .map((t) => `${t.name} (${t.engine ?? 'unknown engine'})`)
        .join(', ');
      warnings.push(
        `not covered by the consistent snapshot (--single-transaction covers InnoDB tables only), dumped as they were read: ${shown}` +
          (inconsistent.length > 20 ? ` and ${inconsistent.length - 20} more` : ''),
      );
    }
    for (const w of warnings) this.logger.warn(`backup ${context.runId}: ${w}`);

    const proc = await this.mysql.dump(address, password, { code: true, events: probe.events, tables: source.tables }, context.signal);
    const digest = new MysqlDumpDigestStream();
    proc.stdout.once('error', (error) => digest.destroy(error));
    const stream = proc.stdout.pipe(digest);
    const digested = new Promise<void>((resolve, reject) => {
      digest.once('end', resolve);
      digest.once('error', reject);
    });
    digested.catch(() => undefined);
    const done = Promise.all([proc.done, digested]).then(
      async () => {
        const globalsPath = await this.captureGlobals(address, password, context).catch((error: Error) => {
          warnings.push(`${error.message}; a restore onto another server must find the accounts there`);
          return undefined;
        });
        return {
          warnings: digest.problem ? [...warnings, digest.problem] : warnings,
          tables: digest.problem ? undefined : digest.digests,
          tools: { 'mysql-server': probe.server },
          globalsPath,
        };
      },
      (error: unknown) => {
        throw scrubbedError(error, password);
      },
    );
    return { stream, done };
  }

  /**
   * Writes the globals script of `address.database` (accounts and their grants, {@link captureMysqlGlobals}) to
   * `<scratchDir>/<runId>.globals.sql`. @returns its path (the caller removes it)
   */
  private async captureGlobals(address: MysqlAddress, password: string | undefined, context: EngineRunContext): Promise<string> {
    const { accounts, grants } = await this.mysql
      .withConnection(address, password, undefined, (c) => captureMysqlGlobals(c, address.database))
      .catch((error: Error) => {
        throw scrubbedError(error, password, 'cannot capture the accounts the database needs (globals): ');
      });
    await mkdir(context.scratchDir, { recursive: true, mode: 0o700 });
    const path = join(context.scratchDir, `${context.runId}.globals.sql`);
    await writeFile(path, `${mysqlGlobalsScript(accounts, grants).join('\n')}\n`, { mode: 0o600 });
    return path;
  }

  /**
   * Refuses a target database that exists and holds tables (TARGET_EXISTS) unless `overwrite`, and a missing one
   * unless `target.create` (VALIDATION_FAILED on `target.create`). An unreachable server is VALIDATION_FAILED on
   * `target.url`. @throws DrError
   */
  async checkTarget(target: MysqlTarget, overwrite: boolean): Promise<void> {
    await this.assessTarget(target, overwrite);
  }

  /** {@link checkTarget}. @returns whether the database exists */
  private async assessTarget(target: MysqlTarget, overwrite: boolean): Promise<boolean> {
    const address = parseMysqlUrl(target.url, 'target.url');
    const password = await this.password(target, 'target.passwordSecret');
    let state: { exists: boolean; tables: number };
    try {
      state = await this.mysql.withConnection(address, password, undefined, async (c) => {
        const schemata = await rows(c, 'SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?', [address.database]);
        const [count] = await rows<{ n: string }>(c, 'SELECT COUNT(*) AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?', [address.database]);
        return { exists: schemata.length > 0, tables: Number(count.n) };
      });
    } catch (error) {
      throw DrError.validation([{ field: 'target.url', message: `cannot connect to the target server: ${scrubbedError(error, password).message}` }]);
    }
    if (state.exists && state.tables > 0 && !overwrite) {
      throw new DrError(
        'TARGET_EXISTS',
        `target database "${address.database}" exists and holds ${state.tables} tables; set "overwrite": true to restore into it`,
        [{ field: 'target.url', message: 'database exists and is not empty' }],
      );
    }
    if (!state.exists && !target.create) {
      throw DrError.validation([{ field: 'target.create', message: `database "${address.database}" does not exist; set target.create to create it` }]);
    }
    return state.exists;
  }

  /**
   * Runs the dump through `mariadb` (or `mysql`) into the target database, creating it first when asked. The
   * dump's `DROP TABLE IF EXISTS` replaces the tables it holds (with `overwrite`); other tables stay. The client
   * stops at the first failing statement; its stderr is the recorded reason. When the input fails (a checksum
   * mismatch), the client is killed so that it never runs a truncated statement.
   * @throws Error with the client's reason (secrets masked), or the input's error.
   */
  async restore(target: MysqlTarget, input: Readable, overwrite: boolean, context: EngineRunContext): Promise<EngineRestoreResult> {
    const address = parseMysqlUrl(target.url, 'target.url');
    const exists = await this.assessTarget(target, overwrite);
    const password = await this.password(target, 'target.passwordSecret');
    const applyGlobals = context.openGlobals !== undefined && (target.users ?? 'create') === 'create';
    const globalsScript = join(context.scratchDir, `${context.runId}.globals.sql`);
    let created: MysqlAccount[] = [];
    try {
      if (applyGlobals) {
        // read whole (and its SHA-256 checked) before anything runs
        await mkdir(context.scratchDir, { recursive: true, mode: 0o700 });
        await pipeline(await context.openGlobals!(), createWriteStream(globalsScript, { mode: 0o600 }), { signal: context.signal });
      }
      await this.restoreDump(address, password, exists, input, context);
      if (applyGlobals) created = await this.applyGlobals(address, password, globalsScript, context);
    } catch (error) {
      created = (error as { created?: MysqlAccount[] }).created ?? created;
      const left = !exists || created.length ? await this.undoCreated(address, password, !exists, created) : [];
      if (!left.length) throw error;
      throw new Error(`${(error as Error).message}; could not undo: ${left.join('; ')}`);
    } finally {
      await rm(globalsScript, { force: true });
    }
    const names = created.map((a) => `'${a.user}'@'${a.host}'`);
    return { warnings: names.length ? [`created accounts the database needs, locked and without password: ${names.join(', ')}`] : [] };
  }

  /** Runs the globals script on the target database. @returns the accounts it created (also when it failed: on the error) */
  private async applyGlobals(address: MysqlAddress, password: string | undefined, script: string, context: EngineRunContext): Promise<MysqlAccount[]> {
    const proc = await this.mysql.client(address, password, context.signal, ['--skip-column-names']);
    let out = '';
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (c: string) => (out += c));
    await pipeline(createReadStream(script), proc.stdin).catch(() => undefined); // the exit code tells
    try {
      await proc.done;
    } catch (error) {
      throw Object.assign(scrubbedError(error, password, 'the accounts the database needs could not be created (globals): '), {
        created: createdAccounts(out),
      });
    }
    return createdAccounts(out);
  }

  /**
   * After a failed restore: drops the database when the restore created it (`dropDatabase`), and the accounts the
   * restore created. @returns what could not be removed
   */
  private async undoCreated(address: MysqlAddress, password: string | undefined, dropDatabase: boolean, created: MysqlAccount[]): Promise<string[]> {
    const left: string[] = [];
    await this.mysql
      .withConnection(address, password, undefined, async (c) => {
        if (dropDatabase)
          await c.query(`DROP DATABASE IF EXISTS ${quoteIdent(address.database)}`).catch((e: Error) => left.push(`database ${address.database}: ${e.message}`));
        for (const a of created)
          await c.query('DROP USER IF EXISTS ?@?', [a.user, a.host]).catch((e: Error) => left.push(`account ${a.user}@${a.host}: ${e.message}`));
      })
      .catch((e: Error) => left.push(scrubbedError(e, password).message));
    for (const l of left) this.logger.warn(`could not undo a failed restore: ${l}`);
    return left;
  }

  /** The dump through the client into the database (created first when `!exists`). See {@link restore}. */
  private async restoreDump(address: MysqlAddress, password: string | undefined, exists: boolean, input: Readable, context: EngineRunContext): Promise<void> {
    if (!exists) {
      await this.mysql
        .withConnection(address, password, undefined, (c) => c.query(`CREATE DATABASE IF NOT EXISTS ${quoteIdent(address.database)} CHARACTER SET utf8mb4`))
        .catch((error: Error) => {
          throw scrubbedError(error, password, `cannot create database ${address.database}: `);
        });
    }
    const proc = await this.mysql.client(address, password, context.signal);
    proc.stdout.resume();
    // Not pipeline(): on an input error it would close the client's stdin, and the client runs what it has read
    // so far at end of input (a truncated INSERT can still be valid SQL). The client is killed first instead.
    let inputError: Error | undefined;
    const fed = new Promise<void>((resolve) => {
      input.once('end', () => {
        proc.stdin.end();
        resolve();
      });
      input.once('error', (error) => {
        inputError = error;
        proc.child.kill('SIGKILL');
        resolve();
      });
    });
    input.pipe(proc.stdin, { end: false });
    try {
      await proc.done;
    } catch (error) {
      if (inputError) throw inputError;
      throw scrubbedError(error, password);
    }
    if (!inputError && !input.readableEnded) {
      input.destroy();
      throw new Error('the client exited before it had read the whole dump');
    }
    await fed;
    if (inputError) throw inputError;
  }

  async reservationKey(target: MysqlTarget): Promise<TargetReservationKey> {
    const address = parseMysqlUrl(target.url, 'target.url');
    return { key: `mysql://${address.host.toLowerCase()}:${address.port}/${address.database}`, field: 'target.url' };
  }

  describeTarget(target: MysqlTarget): Record<string, unknown> {
    return { ...target };
  }

  /**
   * Deep verification: restores into a scratch database `dr_verify_<run>` on the source's server (the source's
   * user needs CREATE and DROP there), dumps its rows again with the same tool and options through the same
   * parser, and compares every table's rows and SHA-256 with those recorded at backup time. The scratch database
   * is dropped whatever happens.
   */
  async verifyRestore(source: MysqlSource, input: Readable, recorded: RecordedContent, context: EngineRunContext): Promise<RestoreCheck> {
    if (!recorded.tables) throw new Error('this backup recorded no table digests to compare a restore with');
    const address = parseMysqlUrl(source.url, 'source.url');
    const database = `dr_verify_${context.runId
      .replace(/[^a-z0-9]/gi, '')
      .slice(0, 24)
      .toLowerCase()}`;
    const url = new URL(source.url);
    url.pathname = `/${database}`;
    const target = Object.assign(new MysqlTarget(), { url: url.toString(), passwordSecret: source.passwordSecret, create: true });
    const scratch = { ...address, database };
    const password = await this.password(source, 'source.passwordSecret');
    const drop = () => this.mysql.withConnection(scratch, password, undefined, (c) => c.query(`DROP DATABASE IF EXISTS ${quoteIdent(database)}`));
    await drop().catch((error: Error) => {
      throw scrubbedError(error, password, `cannot prepare scratch database ${database}: `);
    });
    try {
      await this.restore(target, input, false, context);
      const restored = await this.digestDatabase(scratch, password, context);
      return { ...compareTables(recorded.tables, restored), scratchTarget: `${address.host}:${address.port}/${database}` };
    } finally {
      await drop().catch((error: Error) => this.logger.warn(`could not drop scratch database ${database}: ${scrubbedError(error, password).message}`));
    }
  }

  /** Dumps the rows of `address` (no routines, triggers, events) through the parser. @returns per-table digests */
  private async digestDatabase(address: MysqlAddress, password: string | undefined, context: EngineRunContext): Promise<TableDigest[]> {
    const proc = await this.mysql.dump(address, password, { code: false, events: false }, context.signal);
    const digest = new MysqlDumpDigestStream();
    try {
      await pipeline(proc.stdout, digest, new Writable({ write: (_c, _e, cb) => cb() }));
      await proc.done;
    } catch (error) {
      throw scrubbedError(error, password);
    }
    if (digest.problem) throw new Error(digest.problem);
    return digest.digests;
  }

  private async password(conn: MysqlConnection, field: string): Promise<string | undefined> {
    return conn.passwordSecret ? this.secrets.resolve(conn.passwordSecret, field) : undefined;
  }
}
