import { DatabaseUrlError, parseDatabaseUrl, postgresClientConfig, postgresToolUrl } from '../../src/engines/database-url';

/** The parser's message for `raw`, or 'ok'. */
function problem(raw: string, kind: 'postgres' | 'mysql' = 'postgres', requireDatabase = true): string {
  try {
    parseDatabaseUrl(raw, kind, requireDatabase);
    return 'ok';
  } catch (error) {
    expect(error).toBeInstanceOf(DatabaseUrlError);
    return (error as Error).message;
  }
}

describe('the one strict database URL parser (issue 10, item 6)', () => {
  it('refuses the libpq parameters that would override what was checked, or read files, or carry a password', () => {
    // the cases: restored into "victim" although "newdb" was checked; a password stored and shown; a record saying "nosuch"
    expect(problem('postgresql://u@h:5432/newdb?dbname=victim')).toBe("must not hold dbname: the database is the URL's path");
    expect(problem('postgresql://u@h/db?password=hunter2')).toBe('must not hold a password; name it with passwordSecret instead');
    expect(problem('postgresql://u@h/nosuch?dbname=src')).toBe("must not hold dbname: the database is the URL's path");
    expect(problem('postgresql://u@h/db?user=postgres')).toBe("must not hold user: the user is the URL's user part");
    expect(problem('postgresql://u@h/db?host=10.0.0.9')).toBe("must not hold host: the host is the URL's host part");
    expect(problem('postgresql://u@h/db?hostaddr=10.0.0.9')).toBe("must not hold hostaddr: the host is the URL's host part");
    expect(problem('postgresql://u@h/db?port=5433')).toBe("must not hold port: the port is the URL's port part");
    expect(problem('postgresql://u@h/db?service=prod')).toBe("must not hold service: it reads connection settings from a file on the service's host");
    expect(problem('postgresql://u@h/db?passfile=/root/.pgpass')).toBe("must not hold passfile: it reads a file on the service's host; use passwordSecret");
    expect(problem('postgresql://u@h/db?options=-c%20search_path%3Devil')).toBe(
      'query parameter "options" is not supported (allowed: sslmode, sslrootcert, application_name, connect_timeout)',
    );
    expect(problem('postgresql://u@h/db?sslkey=/etc/ssl/private/k.pem')).toMatch(/^query parameter "sslkey" is not supported/);
    expect(problem('postgresql://u:hunter2@h/db')).toBe('must not contain a password; name it with passwordSecret instead');
    expect(problem('postgresql://u@h/db?sslmode=require&sslmode=disable')).toBe('query parameter "sslmode" is given more than once');
  });

  it('allows the documented parameters with valid values only', () => {
    expect(
      parseDatabaseUrl(
        'postgresql://backup@db.example:6432/orders?sslmode=verify-full&sslrootcert=/etc/ssl/ca.pem&application_name=dr%20backup&connect_timeout=5',
        'postgres',
      ),
    ).toEqual({
      kind: 'postgres',
      host: 'db.example',
      port: 6432,
      user: 'backup',
      database: 'orders',
      params: { sslmode: 'verify-full', sslrootcert: '/etc/ssl/ca.pem', application_name: 'dr backup', connect_timeout: '5' },
    });
    expect(problem('postgresql://u@h/db?sslmode=sometimes')).toMatch(/^sslmode must be/);
    expect(problem('postgresql://u@h/db?sslrootcert=/proc/self/environ')).toMatch(/^sslrootcert must be/);
    expect(problem('postgresql://u@h/db?sslrootcert=/etc/../etc/ca.pem')).toMatch(/^sslrootcert must be/);
    expect(problem('postgresql://u@h/db?sslrootcert=relative.pem')).toMatch(/^sslrootcert must be/);
    expect(problem('postgresql://u@h/db?connect_timeout=0')).toMatch(/^connect_timeout must be/);
    expect(problem('postgresql://u@h/db?connect_timeout=3601')).toMatch(/^connect_timeout must be/);
    expect(problem('postgresql://u@h/db?application_name=%0Aline')).toMatch(/^application_name must be/);
    expect(problem('mysql://u@h/db?connect_timeout=7', 'mysql')).toBe('ok');
    expect(problem('mysql://u@h/db?ssl=1', 'mysql')).toBe('query parameter "ssl" is not supported (allowed: connect_timeout)');
    expect(problem('mysql://u@h/db?sslmode=require', 'mysql')).toMatch(/^query parameter "sslmode" is not supported/);
  });

  it('refuses hosts that are socket paths or lists, names PostgreSQL would truncate or read as a connection string, fragments', () => {
    expect(problem('postgresql://u@%2Fvar%2Frun%2Fpostgresql/db')).toMatch(/^the host must be/);
    expect(problem('postgresql://u@/db')).toMatch(/^must name a host|^not a valid URL/);
    expect(problem('postgresql:///db')).toMatch(/^must name a host/);
    expect(problem('postgresql://u@h1,h2/db')).toMatch(/^the host must be|^not a valid URL/);
    expect(problem(`postgresql://u@h/${'d'.repeat(64)}`)).toMatch(/^must name a database \(1-63 bytes/);
    expect(problem(`postgresql://u@h/${'d'.repeat(63)}`)).toBe('ok');
    expect(problem('postgresql://u@h/a%3Db')).toMatch(/^must name a database/); // "a=b": a conninfo string to libpq
    expect(problem('postgresql://u@h/db#frag')).toBe('must not have a fragment');
    expect(problem('postgresql://u@h/')).toMatch(/^must name a database/);
    expect(problem('postgresql://u@h/', 'postgres', false)).toBe('ok');
    expect(problem('mysql://u@h/-db', 'mysql')).toMatch(/^must name a database/);
    expect(problem('mysql://h/db', 'mysql')).toBe('must name a user, e.g. mysql://user@host:3306/dbname');
    expect(problem('http://u@h/db')).toBe('must be a postgresql:// URL');
    expect(problem('not a url')).toBe('not a valid URL');
    expect(parseDatabaseUrl('postgres://u@[::1]/db', 'postgres')).toMatchObject({ host: '::1', port: 5432 });
    expect(parseDatabaseUrl('postgresql://db_1.internal/app', 'postgres')).toMatchObject({ host: 'db_1.internal', user: undefined });
  });

  it('gives libpq a URL rebuilt from the checked parts, and node-postgres the parts one by one with the password', async () => {
    const address = parseDatabaseUrl('postgresql://b%40ck@[::1]:6543/my%20db?sslmode=require&connect_timeout=3', 'postgres');
    expect(postgresToolUrl(address)).toBe('postgresql://b%40ck@[::1]:6543/my%20db?sslmode=require&connect_timeout=3');
    expect(postgresToolUrl(address, 'postgres')).toBe('postgresql://b%40ck@[::1]:6543/postgres?sslmode=require&connect_timeout=3');
    expect(await postgresClientConfig(address, 'pw', 'postgres')).toEqual({
      host: '::1',
      port: 6543,
      user: 'b@ck',
      password: 'pw',
      database: 'postgres',
      ssl: { rejectUnauthorized: false },
      application_name: undefined,
      connectionTimeoutMillis: 3000,
    });
    const plain = parseDatabaseUrl('postgresql://u@h/db', 'postgres');
    expect(await postgresClientConfig(plain, undefined, 'db')).toMatchObject({ ssl: false, connectionTimeoutMillis: 10_000, password: undefined });
  });
});
