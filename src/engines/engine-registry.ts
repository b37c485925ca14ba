import { Inject, Injectable } from '@nestjs/common';
import { DrError } from '../errors/dr-error';
import { BACKUP_ENGINES, BackupEngine, ENGINE_NAMES, EngineName } from './backup-engine';

/** Picks an engine by name from the list registered under {@link BACKUP_ENGINES}. */
@Injectable()
export class EngineRegistry {
  private readonly byName: Map<string, BackupEngine>;

  constructor(@Inject(BACKUP_ENGINES) engines: BackupEngine[]) {
    this.byName = new Map(engines.map((e) => [e.name, e]));
  }

  /** @throws DrError VALIDATION_FAILED on `field` for an unknown engine name. */
  get(name: string, field = 'engine'): BackupEngine {
    const engine = this.byName.get(name);
    if (!engine) {
      throw DrError.validation([{ field, message: `${field} must be one of: ${ENGINE_NAMES.join(', ')}` }]);
    }
    return engine;
  }

  names(): EngineName[] {
    return [...this.byName.keys()] as EngineName[];
  }
}
