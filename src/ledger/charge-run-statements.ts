// The statements a charge run makes on its key, each coalesced (coalesce.ts) with
// the same statement of the process's other runs: a worker running hundreds of keys at once
// makes a handful of statements and commit flushes where it made one per run. Each
// key's rows and checks are exactly those of the one-key statement (the SQL is
// the same function); only the round trip and the commit are shared.
import { applyCommonSteps, type CommonStep } from './apply-decision.js';
import { type BatchRow, type FormBatchParams, formBatches } from './batches.js';
import { coalesce } from './coalesce.js';
import type { Sql } from './db.js';
import { type KeyLease, type LeasedWork, releaseKeyLeases, takeKeyLeases } from './key-lease.js';
import { type KeyWork, keysHavePendingEvents, probeKeys } from './keys.js';

export class ChargeRunStatements {
  /** What the key has to charge, read without its lease (probeKeys). */
  readonly probe: (keyId: number) => Promise<KeyWork>;
  /** Takes the key's lease for `owner` (takeKeyLease). */
  readonly takeLease: (keyId: number) => Promise<LeasedWork>;
  /** Forms the key's next batch under the lease (formBatch). */
  readonly form: (p: FormBatchParams & { lease: KeyLease }) => Promise<{
    leased: boolean;
    batch: BatchRow | undefined;
  }>;
  /** A plain batch charged or a failed attempt recorded (applyCommonSteps). */
  readonly applyCommon: (s: CommonStep) => Promise<boolean>;
  /** Ends the run's lease (releaseKeyLease). */
  readonly release: (lease: KeyLease) => Promise<void>;
  /** Whether the key has events in no batch (keyHasPendingEvents). */
  readonly hasPendingEvents: (keyId: number) => Promise<boolean>;

  constructor(db: Sql, o: { owner: string; leaseMs: number }) {
    const byKey = { keyOf: (keyId: number) => keyId };
    this.probe = coalesce((keyIds) => probeKeys(db, keyIds));
    this.takeLease = coalesce((keyIds) => takeKeyLeases(db, keyIds, o.owner, o.leaseMs), byKey);
    this.form = coalesce((items) => formBatches(db, items), { keyOf: (p) => p.keyId });
    this.applyCommon = coalesce((steps) => applyCommonSteps(db, steps), { keyOf: (s) => s.lease.keyId });
    this.release = coalesce(
      async (leases) => {
        await releaseKeyLeases(db, leases);
        return leases.map(() => undefined);
      },
      { keyOf: (l) => l.keyId },
    );
    this.hasPendingEvents = coalesce((keyIds) => keysHavePendingEvents(db, keyIds));
  }
}
