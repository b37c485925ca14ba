import { claimAt, rolesOf } from '../../src/auth/jwt.strategy';

describe('roles from a JWT claim', () => {
  it('reads a top-level claim, a dotted path, and a namespaced claim whose name contains dots', () => {
    const payload = {
      roles: ['VIEWER'],
      realm_access: { roles: ['operator'] },
      'https://dr.example.test/roles': 'BACKUP_ADMIN',
      resource_access: { dr: { roles: ['RECOVERY_ADMIN'] } },
    };
    expect(claimAt(payload, 'roles')).toEqual(['VIEWER']);
    expect(claimAt(payload, 'realm_access.roles')).toEqual(['operator']);
    expect(claimAt(payload, 'https://dr.example.test/roles')).toBe('BACKUP_ADMIN');
    expect(claimAt(payload, 'resource_access.dr.roles')).toEqual(['RECOVERY_ADMIN']);
    expect(claimAt(payload, 'realm_access.missing.roles')).toBeUndefined();
    expect(claimAt(payload, 'toString')).toBeUndefined(); // no prototype lookups
  });

  it('keeps only known roles, from an array or a space/comma separated string, without duplicates', () => {
    expect(rolesOf(['backup_admin', 'BACKUP_ADMIN', 'offline_access', 42, null])).toEqual(['BACKUP_ADMIN']);
    expect(rolesOf('viewer operator,RECOVERY_ADMIN')).toEqual(['VIEWER', 'OPERATOR', 'RECOVERY_ADMIN']);
    expect(rolesOf(undefined)).toEqual([]);
    expect(rolesOf({ ADMIN: true })).toEqual([]);
    expect(rolesOf(['ROOT', 'superuser'])).toEqual([]);
  });
});
