import type { BatchTransaction } from '@postgres-queue/db'
import type { ProcessedOrder } from './report.js'
import { describeError } from './thrown.js'

/**
 * Runs one order's CommitWork in a savepoint of `tx` (BatchTransaction.runInSavepoint): its writes
 * commit with the order's completion or not at all. If it throws or outlives `timeoutMs`, its
 * writes are undone (a statement still running is cancelled on the server first) and only this
 * order fails, its attempt counted like any other failure; the rest of the batch goes on. Throws
 * only when `tx` itself is broken. An order without CommitWork is returned as it is.
 */
export async function runCommitWork(
  tx: BatchTransaction,
  processed: ProcessedOrder,
  { timeoutMs }: { timeoutMs: number },
): Promise<ProcessedOrder> {
  const { result } = processed
  if (!result.ok || result.commit === undefined) return processed
  const commit = result.commit
  const outcome = await tx.runInSavepoint((savepoint) => commit(savepoint), { timeoutMs })
  if (outcome.ok) return processed
  const thrown = outcome.timedOut ? new CommitWorkTimeoutError(timeoutMs) : outcome.error
  return { ...processed, result: { ok: false, error: describeError(thrown), thrown, processMs: result.processMs } }
}

class CommitWorkTimeoutError extends Error {
  override readonly name = 'CommitWorkTimeoutError'
  constructor(timeoutMs: number) {
    super(
      `the order's commit work did not finish within ${timeoutMs} ms; its statements were cancelled and rolled back`,
    )
  }
}
