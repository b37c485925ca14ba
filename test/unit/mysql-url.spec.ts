import { DrError } from '../../src/errors/dr-error';
import { parseMysqlUrl } from '../../src/engines/mysql-client';

describe('parseMysqlUrl', () => {
  it('reads user, host, port (3306 by default) and database, percent-decoded', () => {
    expect(parseMysqlUrl('mysql://backup@db.example:3307/orders', 'source.url')).toEqual({
      host: 'db.example',
      port: 3307,
      user: 'backup',
      database: 'orders',
    });
    expect(parseMysqlUrl('mysql://backup@db/orders?connect_timeout=4', 'source.url')).toEqual({
      host: 'db',
      port: 3306,
      user: 'backup',
      database: 'orders',
      connectTimeoutSeconds: 4,
    });
    expect(parseMysqlUrl('mariadb://b%40ck@[::1]/my%20db', 'source.url')).toEqual({ host: '::1', port: 3306, user: 'b@ck', database: 'my db' });
  });

  it.each([
    ['mysql://backup:secret@h/db', /must not contain a password/],
    ['mysql://h/db', /must name a user/],
    ['mysql://backup@h/', /must name a database/],
    ['mysql://backup@h/a/b', /must name a database/],
    ['mysql://backup@h/-db', /must name a database/],
    [`mysql://backup@h/${'x'.repeat(65)}`, /must name a database/],
    ['mysql://backup@h/db?ssl=1', /query parameter "ssl" is not supported/],
    ['mysql://backup@h/db?password=x', /must not hold a password/],
    ['postgresql://backup@h/db', /mysql:\/\//],
    ['not a url', /not a valid URL/],
  ])('refuses %s naming the field', (url, message) => {
    let error: unknown;
    try {
      parseMysqlUrl(url, 'target.url');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(DrError);
    expect((error as DrError).code).toBe('VALIDATION_FAILED');
    expect(JSON.stringify(error)).not.toContain('secret');
    expect((error as DrError).details).toEqual([{ field: 'target.url', message: expect.stringMatching(message) }]);
  });
});
