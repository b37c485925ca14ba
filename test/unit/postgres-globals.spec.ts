import { createdRoles, GlobalsRecord, globalsScript, settingClause } from '../../src/engines/postgres-globals';

const role = (name: string, extra: Partial<Extract<GlobalsRecord, { kind: 'role' }>> = {}): GlobalsRecord => ({
  kind: 'role',
  name,
  predefined: false,
  superuser: false,
  inherit: true,
  createRole: false,
  createDb: false,
  login: true,
  replication: false,
  bypassRls: false,
  connectionLimit: -1,
  validUntil: null,
  passwordHash: null,
  ...extra,
});

async function script(records: GlobalsRecord[]): Promise<string[]> {
  const lines: string[] = [];
  for await (const line of globalsScript(
    (async function* () {
      yield* records;
    })(),
    'db',
  ))
    lines.push(line);
  return lines;
}

/** The psql script of a database's globals (the e2e test fresh-server.spec.ts runs it on a real server). */
describe('postgres globals script', () => {
  it('keeps a canonical identifier list (search_path) and quotes any other value as one literal', () => {
    expect(settingClause('search_path=app, "$user", public')).toBe('search_path TO app, "$user", public');
    expect(settingClause('search_path=x; DROP ROLE postgres')).toBe("search_path TO 'x; DROP ROLE postgres'");
    expect(settingClause('work_mem=8MB')).toBe("work_mem TO '8MB'");
    expect(settingClause("app.note=it's")).toBe("app.note TO 'it''s'");
    expect(settingClause('bad name;=1')).toBeNull();
  });

  it('quotes role names as identifiers and literals, creates no predefined role, and grants memberships to created roles only', async () => {
    const lines = await script([
      role('pg_read_all_data', { predefined: true, login: false }),
      role('we"ird\'name', { connectionLimit: 3, passwordHash: 'SCRAM-SHA-256$4096:x' }),
      { kind: 'membership', role: 'pg_read_all_data', member: 'we"ird\'name', adminOption: false },
      { kind: 'membership', role: 'we"ird\'name', member: 'pg_read_all_data', adminOption: false },
      { kind: 'role-setting', role: 'we"ird\'name', setting: 'work_mem=8MB' },
      { kind: 'database', owner: 'we"ird\'name', acl: [{ grantee: null, privilege: 'TEMPORARY', grantable: false }] },
      { kind: 'database-setting', role: null, setting: 'search_path=app' },
    ]);
    const text = lines.join('\n');
    expect(text).not.toContain('CREATE ROLE "pg_read_all_data"');
    expect(lines).toContain(`SELECT NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'we"ird''name') AS dr_created_1 \\gset`);
    expect(lines).toContain(
      `CREATE ROLE "we""ird'name" WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 3 PASSWORD 'SCRAM-SHA-256$4096:x';`,
    );
    expect(text).toContain(`\\if :dr_created_1\nGRANT "pg_read_all_data" TO "we""ird'name";\n\\endif`);
    expect(text).not.toContain('TO "pg_read_all_data"'); // a predefined role is never changed
    expect(text).toContain(`\\if :dr_created_1\nALTER ROLE "we""ird'name" SET work_mem TO '8MB';\n\\endif`);
    expect(text).toContain(`ALTER DATABASE :"dr_database" OWNER TO "we""ird'name";`);
    expect(text).toContain('REVOKE ALL ON DATABASE :"dr_database" FROM PUBLIC;\nGRANT TEMPORARY ON DATABASE :"dr_database" TO PUBLIC;');
    expect(lines.slice(-2)).toEqual(['ALTER DATABASE :"dr_database" SET search_path TO app;', '\\endif']);
  });

  it("refuses records out of the query's order, and reads the created roles from psql's output", async () => {
    await expect(script([{ kind: 'membership', role: 'a', member: 'b', adminOption: false }, role('a')])).rejects.toThrow('a role record after later records');
    expect(createdRoles('"c_app"\n"new\\nline"\n')).toEqual(['c_app', 'new\nline']);
    expect(() => createdRoles('CREATE ROLE\n')).toThrow('unexpected output of the globals script');
  });
});
