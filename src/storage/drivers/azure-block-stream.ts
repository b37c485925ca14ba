import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';

/** Azure's limit on committed blocks per block blob. */
export const MAX_BLOCKS_PER_BLOB = 50_000;

/** Stages one block of a blob (Azure `Put Block`). Rejects when the block could not be stored. */
export type StageBlock = (blockId: string, data: Buffer, index: number) => Promise<void>;

/**
 * Block ids of one upload. Azure requires every block id staged on a blob to have the same length, uncommitted
 * blocks left by earlier uploads included (otherwise `400 InvalidBlobOrBlock`), so the id is always
 * `dr1-<16 hex of the upload>-<6-digit index>` (27 bytes, 36 base64 characters). The random upload part means a
 * later upload to the same name never commits a stale block that a crashed upload left under the same index.
 */
export class BlockIds {
  private readonly upload = randomBytes(8).toString('hex');

  /** The base64 block id of block `index` (0-based, < {@link MAX_BLOCKS_PER_BLOB}). */
  of(index: number): string {
    return Buffer.from(`dr1-${this.upload}-${String(index).padStart(6, '0')}`).toString('base64');
  }
}

/**
 * A writable that cuts what is written into blocks of `blockSizeBytes` (the last one shorter) and stages them with
 * at most `concurrency` `Put Block` requests in flight. Memory is bounded: at most `concurrency + 1` block buffers
 * (reused from block to block) plus the writable's own small buffer, whatever the object's size; a write waits
 * while every slot is busy, which is the back-pressure on the producer.
 *
 * The stream finishes only once every block is staged, so `finish` means "ready to commit". A block that fails
 * (after the SDK's retries) destroys the stream with that error; the blocks still in flight are let finish, so that
 * once {@link whenIdle} resolves nothing more can land on the blob (what a cleanup needs to rely on).
 */
export class BlockStagingStream extends Writable {
  /** Ids of the blocks, in object order: the list to commit. */
  readonly blockIds: string[] = [];
  private readonly ids = new BlockIds();
  private readonly inFlight = new Set<Promise<void>>();
  private readonly pool: Buffer[] = [];
  private block: Buffer | null = null;
  private filled = 0;
  private failure: Error | null = null;
  /** Blocks the server confirmed. */
  stagedBlocks = 0;

  /**
   * @param blockSizeBytes size of every block but the last (bytes)
   * @param concurrency maximum `Put Block` requests in flight
   * @param stage stores one block; its rejection fails the stream
   */
  constructor(
    private readonly blockSizeBytes: number,
    private readonly concurrency: number,
    private readonly stage: StageBlock,
  ) {
    super({ highWaterMark: 1 << 20 });
  }

  /** True once a block was handed to {@link StageBlock}, i.e. the blob may hold uncommitted blocks. */
  get startedStaging(): boolean {
    return this.blockIds.length > 0;
  }

  /** Resolves when no `Put Block` request is in flight any more (never rejects). */
  async whenIdle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.consume(chunk).then(() => callback(), callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    (async () => {
      if (this.filled > 0) await this.flush();
      await this.whenIdle();
      if (this.failure) throw this.failure;
    })().then(() => callback(), callback);
  }

  private async consume(chunk: Buffer): Promise<void> {
    let offset = 0;
    while (offset < chunk.length) {
      if (this.failure) throw this.failure;
      this.block ??= this.pool.pop() ?? Buffer.allocUnsafe(this.blockSizeBytes);
      const copied = chunk.copy(this.block, this.filled, offset);
      offset += copied;
      this.filled += copied;
      if (this.filled === this.blockSizeBytes) await this.flush();
    }
  }

  /** Hands the current block to a free slot (waiting for one). */
  private async flush(): Promise<void> {
    const buffer = this.block!;
    const data = buffer.subarray(0, this.filled);
    this.block = null;
    this.filled = 0;
    while (this.inFlight.size >= this.concurrency) await Promise.race(this.inFlight);
    if (this.failure) throw this.failure;
    if (this.destroyed) throw new Error('the upload was aborted');
    const index = this.blockIds.length;
    if (index >= MAX_BLOCKS_PER_BLOB) {
      throw new Error(`the object needs more than ${MAX_BLOCKS_PER_BLOB} blocks of ${this.blockSizeBytes} bytes (Azure's limit); raise blockSizeBytes`);
    }
    const id = this.ids.of(index);
    this.blockIds.push(id);
    const staged: Promise<void> = this.stage(id, data, index).then(
      () => {
        this.stagedBlocks++;
        this.pool.push(buffer); // the request has been answered: nothing references the buffer any more
      },
      (error: Error) => {
        if (!this.failure) {
          this.failure = error;
          this.destroy(error);
        }
      },
    );
    const tracked = staged.finally(() => this.inFlight.delete(tracked));
    this.inFlight.add(tracked);
  }
}
