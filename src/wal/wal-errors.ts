/**
 * The errors of the WAL archive commands, in a module of their own so that `dr wal-push` / `dr wal-fetch` can tell
 * them apart (exit codes) without loading the storage and compression modules that raise them.
 */

/** Raised when a different file is pushed under the name of one already archived. */
export class WalConflictError extends Error {}

/** Raised when a WAL file is not archived (wal-fetch exits 1 quietly). */
export class WalFileNotArchivedError extends Error {}

/** Raised for a name that is not a WAL file name PostgreSQL would archive. */
export class InvalidWalFileNameError extends Error {}

/** Raised for a config file that cannot be read or is not valid; the message names the field. */
export class WalConfigError extends Error {}
