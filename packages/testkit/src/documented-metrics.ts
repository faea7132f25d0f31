import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import type { Test } from 'tap'

/** A metric as docs/operations.md documents it: its name, type, and the label names it mentions. */
interface DocumentedMetric {
  name: string
  type: string
  /** Every backticked word of the labels cell: the label names, and the values some list. */
  labelWords: string[]
}

/** A metric as a registry serves it: its TYPE line and the label names of its samples. */
export interface ServedMetric {
  name: string
  type: string
  labels: string[]
}

const operationsDoc = fileURLToPath(new URL('../../../docs/operations.md', import.meta.url))

/** The metrics table under the heading that starts with `heading` in docs/operations.md. */
async function documentedMetrics(heading: string): Promise<DocumentedMetric[]> {
  const lines = (await readFile(operationsDoc, 'utf8')).split('\n')
  const start = lines.findIndex((line) => line.startsWith(`### ${heading}`))
  if (start < 0) throw new Error(`docs/operations.md has no heading "### ${heading}"`)
  const metrics: DocumentedMetric[] = []
  for (const line of lines.slice(start + 1)) {
    if (line.startsWith('#')) break
    const cells = line.split('|').map((cell) => cell.trim())
    const name = /^`(postgres_queue_\w+)`$/.exec(cells[1] ?? '')?.[1]
    if (name)
      metrics.push({
        name,
        type: cells[2] ?? '',
        labelWords: [...(cells[3] ?? '').matchAll(/`(\w+)`/g)].map((m) => m[1] as string),
      })
  }
  return metrics
}

/**
 * Asserts that `served` (servedMetrics) are exactly the metrics documented under `heading` in
 * docs/operations.md: the same names, each with its documented type, every label named in its row.
 */
export async function checkDocumentedMetrics(t: Test, heading: string, served: readonly ServedMetric[]): Promise<void> {
  const documented = await documentedMetrics(heading)
  t.same(documented.map((m) => m.name).sort(), served.map((m) => m.name).sort(), 'the same names')
  for (const metric of served) {
    const doc = documented.find((m) => m.name === metric.name)
    t.equal(doc?.type, metric.type, `${metric.name} is a ${metric.type}`)
    t.same(
      metric.labels.filter((label) => !doc?.labelWords.includes(label)),
      [],
      `${metric.name}: every label documented`,
    )
  }
}

/**
 * The product's own metrics (`postgres_queue_*`) in a Prometheus text exposition, with the label
 * names of their samples, less `le` (a histogram's buckets) and `ignoredLabels`.
 */
export function servedMetrics(exposition: string, ignoredLabels: readonly string[] = []): ServedMetric[] {
  const served = new Map<string, ServedMetric>()
  for (const line of exposition.split('\n')) {
    const type = /^# TYPE (postgres_queue_\w+) (\w+)$/.exec(line)
    if (type) served.set(type[1] as string, { name: type[1] as string, type: type[2] as string, labels: [] })
    const sample = /^(postgres_queue_\w+?)(?:_bucket|_sum|_count)?\{([^}]*)\}/.exec(line)
    const metric = sample && served.get(sample[1] as string)
    if (!metric) continue
    for (const [, label] of (sample[2] as string).matchAll(/(\w+)="/g)) {
      if (label && label !== 'le' && !ignoredLabels.includes(label) && !metric.labels.includes(label))
        metric.labels.push(label)
    }
  }
  return [...served.values()]
}
