import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { IsNull, Repository } from 'typeorm';
import { AuditService } from '../audit/audit.service';
import { AppConfig } from '../config/app-config';
import { DrError } from '../errors/dr-error';
import { ApiKeyEntity } from './api-key.entity';
import { Principal } from './principal';
import { Role } from './role';

const BOOTSTRAP_KEY_NAME = 'bootstrap-admin';
const LAST_USED_RESOLUTION_MS = 60_000;

/** A newly created key: the only time its secret is shown. */
export interface CreatedApiKey {
  key: ApiKeyEntity;
  secret: string;
}

function sha256(value: string): string {
  return createHash('sha256').update(value, 'utf8').digest('hex');
}

/**
 * API keys: `dr_<prefix>_<secret>` strings of 256 random bits. Only their SHA-256 is stored (a fast hash is enough
 * for random high-entropy keys; nothing to brute-force). The first ADMIN key comes from `DR_ADMIN_API_KEY`, or
 * is generated at first start, written to `<DR_DATA_DIR>/admin-api-key` (mode 0600) and printed once.
 */
@Injectable()
export class ApiKeysService implements OnApplicationBootstrap {
  private readonly logger = new Logger(ApiKeysService.name);

  constructor(
    @InjectRepository(ApiKeyEntity) private readonly keys: Repository<ApiKeyEntity>,
    private readonly config: AppConfig,
    private readonly audit: AuditService,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    if (this.config.adminApiKey) {
      await this.ensureBootstrapKey(this.config.adminApiKey);
      return;
    }
    const activeAdmins = await this.keys
      .createQueryBuilder('k')
      .where('k.revoked_at IS NULL')
      .andWhere(':role = ANY(k.roles)', { role: Role.ADMIN })
      .getCount();
    if (activeAdmins > 0) return;
    const { secret } = await this.create(BOOTSTRAP_KEY_NAME, [Role.ADMIN], null);
    await mkdir(this.config.dataDir, { recursive: true, mode: 0o700 });
    const file = join(this.config.dataDir, 'admin-api-key');
    await writeFile(file, `${secret}\n`, { mode: 0o600 });
    // Printed once, on the console only (not through the logger), so it can be copied at first start.
    process.stdout.write(`\nGenerated the first ADMIN API key (also saved to ${file}, mode 0600):\n  ${secret}\n\n`);
  }

  /** Makes `secret` the active bootstrap admin key, revoking a previous bootstrap key with another secret. */
  private async ensureBootstrapKey(secret: string): Promise<void> {
    const hash = sha256(secret);
    if (await this.keys.existsBy({ secretSha256: hash, revokedAt: IsNull() })) return;
    await this.keys.update({ name: BOOTSTRAP_KEY_NAME, revokedAt: IsNull() }, { revokedAt: new Date() });
    await this.keys
      .createQueryBuilder()
      .insert()
      .values({ name: BOOTSTRAP_KEY_NAME, prefix: `env-${randomBytes(6).toString('hex')}`, secretSha256: hash, roles: [Role.ADMIN] })
      .orIgnore()
      .execute();
  }

  /** Creates a key with `roles`. @returns the record and the secret, which is never retrievable again. */
  async create(name: string, roles: Role[], createdBy: string | null): Promise<CreatedApiKey> {
    const prefix = randomBytes(6).toString('hex');
    const secret = `dr_${prefix}_${randomBytes(32).toString('base64url')}`;
    const key = await this.keys.save(this.keys.create({ name, prefix, secretSha256: sha256(secret), roles: [...new Set(roles)], createdBy }));
    await this.audit.record({
      actor: createdBy,
      action: 'api-key.create',
      targetType: 'api-keys',
      targetId: key.id,
      outcome: 'SUCCESS',
      details: { name, prefix, roles: key.roles },
    });
    return { key, secret };
  }

  async list(): Promise<ApiKeyEntity[]> {
    return this.keys.find({ order: { createdAt: 'ASC' } });
  }

  /** Revokes a key; `revokedBy` is written to the audit trail. @throws DrError NOT_FOUND */
  async revoke(id: string, revokedBy: string | null = null): Promise<ApiKeyEntity> {
    const key = await this.keys.findOneBy({ id });
    if (!key) throw DrError.notFound('API key', id);
    if (!key.revokedAt) {
      key.revokedAt = new Date();
      await this.keys.save(key);
      await this.audit.record({
        actor: revokedBy,
        action: 'api-key.revoke',
        targetType: 'api-keys',
        targetId: key.id,
        outcome: 'SUCCESS',
        details: { name: key.name, prefix: key.prefix },
      });
    }
    return key;
  }

  /** The principal of a presented key, or null when it is unknown or revoked. */
  async authenticate(presented: string): Promise<Principal | null> {
    if (presented.length < 16 || presented.length > 512) return null;
    const hash = sha256(presented);
    const key = await this.keys.findOneBy({ secretSha256: hash, revokedAt: IsNull() });
    if (!key || !timingSafeEqual(Buffer.from(key.secretSha256), Buffer.from(hash))) return null;
    if (!key.lastUsedAt || Date.now() - key.lastUsedAt.getTime() > LAST_USED_RESOLUTION_MS) {
      await this.keys.update({ id: key.id }, { lastUsedAt: new Date() });
    }
    return { kind: 'apikey', id: key.id, name: key.name, roles: key.roles };
  }
}
