import { execFileSync } from 'node:child_process';
import { AuditChainChecker, auditEntryHash, auditRecordJson, canonicalJson, GENESIS_HASH } from '../../src/audit/audit-chain';
import { AuditEntryEntity } from '../../src/audit/audit-entry.entity';
import { sanitizeDetails } from '../../src/audit/audit.service';

function chain(n: number): AuditEntryEntity[] {
  const entries: AuditEntryEntity[] = [];
  let prevHash = GENESIS_HASH;
  for (let seq = 1; seq <= n; seq++) {
    const draft = {
      seq,
      at: new Date(Date.UTC(2026, 10, 24, 13, 0, seq, 123)),
      actor: 'apikey:ops',
      roles: ['ADMIN'],
      action: 'POST /backups',
      targetType: 'backups',
      targetId: `id-${seq}`,
      outcome: 'SUCCESS' as const,
      httpStatus: 202,
      requestId: `req-${seq}`,
      details: sanitizeDetails({ engine: 'filesystem', note: 'é ü 中 "quoted" \\ /', nested: { b: 1, a: [true, null] } }) as Record<string, unknown>,
      prevHash,
    };
    const entry = Object.assign(new AuditEntryEntity(), draft, { hash: auditEntryHash(draft) });
    entries.push(entry);
    prevHash = entry.hash;
  }
  return entries;
}

describe('audit hash chain', () => {
  it('canonical JSON sorts keys at every depth and has no whitespace', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { z: 0, y: 'x' }], c: null } })).toBe('{"a":{"c":null,"d":[1,{"y":"x","z":0}]},"b":1}');
  });

  it('the documented jq + sha256sum command recomputes every hash of an export line', () => {
    for (const entry of chain(3)) {
      const line = JSON.stringify({ ...auditRecordJson(entry), hash: entry.hash });
      const canonical = execFileSync('jq', ['-cSj', 'del(.hash)'], { input: line }).toString();
      const digest = execFileSync('sha256sum', { input: canonical }).toString().split(' ')[0];
      expect(digest).toBe(entry.hash);
    }
  });

  it('a valid chain has no problems; an edited entry, a broken link and removed entries are named', () => {
    const entries = chain(6);
    const ok = new AuditChainChecker();
    entries.forEach((e) => ok.add(e));
    ok.finish({ seq: 6, hash: entries[5].hash });
    expect(ok.problems).toEqual([]);

    const tampered = chain(6);
    tampered[1].actor = 'apikey:someone-else';
    tampered[3].prevHash = GENESIS_HASH;
    const checker = new AuditChainChecker();
    [tampered[0], tampered[1], tampered[3], tampered[5]].forEach((e) => checker.add(e));
    checker.finish({ seq: 7, hash: 'f'.repeat(64) });
    expect(checker.problems).toEqual([
      { seq: 2, problem: 'hash mismatch' },
      { seq: 3, problem: 'missing entry' },
      { seq: 4, problem: 'hash mismatch' },
      { seq: 5, problem: 'missing entry' },
      { seq: 7, problem: 'missing entry' },
    ]);
    expect(checker.firstBadSeq).toBe(2);
  });

  it("an entry edited with its hash recomputed is caught by the next entry's prev_hash link only", () => {
    const entries = chain(6);
    const forged = entries.map((e) => Object.assign(new AuditEntryEntity(), e));
    // the forger rewrites entry 3 consistently: its own hash matches its content again
    const { hash: _old, ...edited } = Object.assign(forged[2], { actor: 'apikey:innocent' });
    forged[2].hash = auditEntryHash(edited);
    const checker = new AuditChainChecker();
    forged.forEach((e) => checker.add(e));
    checker.finish({ seq: 6, hash: forged[5].hash });
    expect(checker.problems).toEqual([{ seq: 4, problem: 'prev_hash mismatch' }]);
    expect(checker.firstBadSeq).toBe(4);

    // and one that repoints its own link (then rehashes): caught at itself and at the next entry
    const relinked = chain(6).map((e) => Object.assign(new AuditEntryEntity(), e));
    relinked[2].prevHash = relinked[0].hash;
    const { hash: _h, ...draft } = relinked[2];
    relinked[2].hash = auditEntryHash(draft);
    const second = new AuditChainChecker();
    relinked.forEach((e) => second.add(e));
    expect(second.problems).toEqual([
      { seq: 3, problem: 'prev_hash mismatch' },
      { seq: 4, problem: 'prev_hash mismatch' },
    ]);
  });

  it('details keep no control characters or fractions that would hash differently after jsonb and jq', () => {
    expect(sanitizeDetails({ a: 'x\u0000y\u007f', n: 1.5, big: 2 ** 60, ok: 3 })).toEqual({ a: 'x\ufffdy\ufffd', n: '1.5', big: String(2 ** 60), ok: 3 });
  });
});
