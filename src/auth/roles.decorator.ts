import { SetMetadata } from '@nestjs/common';
import { Role } from './role';

export const ROLES_KEY = 'dr:roles';
export const PUBLIC_KEY = 'dr:public';

/** The roles allowed on a route (ADMIN is always allowed). Every route declares this or {@link Public}. */
export const Roles = (...roles: Role[]) => SetMetadata(ROLES_KEY, roles);

/** Marks a route as reachable without credentials (health probes only). */
export const Public = () => SetMetadata(PUBLIC_KEY, true);

/** Readers: every role may read records. */
export const ANY_ROLE = [Role.VIEWER, Role.OPERATOR, Role.BACKUP_ADMIN, Role.RECOVERY_ADMIN];
