/** The `p`th percentile (0-100) of `values`, nearest-rank; NaN for none. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)))
  return sorted[rank - 1]!
}

export interface LatencySummary {
  count: number
  p50: number
  p95: number
  p99: number
  p999: number
  max: number
}

export function summarizeLatencies(values: readonly number[]): LatencySummary {
  return {
    count: values.length,
    p50: round(percentile(values, 50), 2),
    p95: round(percentile(values, 95), 2),
    p99: round(percentile(values, 99), 2),
    p999: round(percentile(values, 99.9), 2),
    max: round(percentile(values, 100), 2),
  }
}

/** Items per second, rounded to a whole number. */
export function perSecond(items: number, ms: number): number {
  return ms > 0 ? Math.round((items * 1000) / ms) : 0
}

export function mean(values: readonly number[]): number {
  return values.reduce((sum, v) => sum + v, 0) / values.length
}

export function round(value: number, digits = 0): number {
  const scale = 10 ** digits
  return Math.round(value * scale) / scale
}

/**
 * Checks that every key in [from, from + count) was handled exactly once, given every key handled.
 * Returns problems, empty when all is well.
 */
export function checkExactlyOnce(handled: readonly number[], expected: readonly number[]): string[] {
  const seen = new Map<number, number>()
  for (const key of handled) seen.set(key, (seen.get(key) ?? 0) + 1)
  const missing = expected.filter((key) => !seen.has(key))
  const expectedSet = new Set(expected)
  const duplicated = [...seen].filter(([, times]) => times > 1).map(([key]) => key)
  const unexpected = [...seen.keys()].filter((key) => !expectedSet.has(key))
  const problems: string[] = []
  if (missing.length) problems.push(`${missing.length} never handled (e.g. ${missing.slice(0, 5).join(', ')})`)
  if (duplicated.length)
    problems.push(`${duplicated.length} handled more than once (e.g. ${duplicated.slice(0, 5).join(', ')})`)
  if (unexpected.length)
    problems.push(`${unexpected.length} unexpected keys (e.g. ${unexpected.slice(0, 5).join(', ')})`)
  return problems
}
