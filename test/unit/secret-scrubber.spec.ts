import { scrubDeep, scrubSecrets } from '../../src/logging/secret-scrubber';

describe('secret scrubber (log redaction of messages and serialized requests)', () => {
  it.each([
    ['pg_dump: connection to postgresql://backup:s3cr3t@db:5432/app failed', 'pg_dump: connection to postgresql://backup:***@db:5432/app failed'],
    ['/x?dsn=postgresql%3A%2F%2Fu%3As3cr3t%40db%2Fapp&a=1', '/x?dsn=postgresql%3A%2F%2Fu%3A***%40db%2Fapp&a=1'],
    ['identity AGE-SECRET-KEY-1QYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSQ4Z7ZL in file', 'identity AGE-SECRET-KEY-1*** in file'],
    ['Authorization: Bearer eyJhbGciOi.eyJzdWIi.SflKxw', 'Authorization: Bearer ***'],
    ['key dr_0123456789ab_Qk5fYt0h0ZC8bH3zW0gqJ3m8qN8b1k8XrQ1zq2vS9cY used', 'key dr_0123456789ab_*** used'],
    ['PGPASSWORD=s3cr3t pg_dump', 'PGPASSWORD=*** pg_dump'],
    ["host=db password='two words' user=u", 'host=db password=*** user=u'],
    ['{"password":"s3cr3t","user":"u"}', '{"password":"***","user":"u"}'],
  ])('%s', (input, expected) => {
    expect(scrubSecrets(input)).toBe(expected);
  });

  it('leaves URLs without a password and ordinary text alone', () => {
    const text = 'backup of postgresql://postgres@127.0.0.1:5432/app to s3://bucket/key completed in 3 s';
    expect(scrubSecrets(text)).toBe(text);
  });

  it('masks members named like secrets and scrubs nested strings, not other objects', () => {
    const raw = Buffer.from('x');
    expect(scrubDeep({ query: { password: 'p', apiKey: 'k', page: '2' }, url: '/a?token=t', list: ['Bearer abc'], raw })).toEqual({
      query: { password: '***', apiKey: '***', page: '2' },
      url: '/a?token=***',
      list: ['Bearer ***'],
      raw,
    });
  });
});
