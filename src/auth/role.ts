/** The roles an API key or a JWT carries. `ADMIN` is allowed on every route. */
export enum Role {
  ADMIN = 'ADMIN',
  BACKUP_ADMIN = 'BACKUP_ADMIN',
  RECOVERY_ADMIN = 'RECOVERY_ADMIN',
  OPERATOR = 'OPERATOR',
  VIEWER = 'VIEWER',
}

export const ALL_ROLES = Object.values(Role);
