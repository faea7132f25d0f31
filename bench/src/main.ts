/**
 * `pnpm bench`: this project, pg-boss and graphile-worker side by side on one embedded PostgreSQL,
 * plus the database's own ceiling for the same patterns. Writes bench/results/latest.{md,json} and a
 * timestamped copy. `--quick` (or BENCH_QUICK=1) is a smoke run with small sizes; `--only=a,b` (or
 * BENCH_ONLY) runs some phases: ceiling, processing, keys, scale, enqueue, latency, steady, retention. `--pg=queue` (or
 * BENCH_PG) runs on PostgreSQL set for a queue (settings.ts, SERVER_PROFILES); its results are
 * written as latest-queue.{md,json}.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { fileURLToPath } from 'node:url'
import type { BenchContext } from './context.js'
import { startCpuMeter } from './cpu.js'
import { describeMachine } from './machine.js'
import { runCeilingPhase } from './phases/ceiling.js'
import { runEnqueuePhase } from './phases/enqueue.js'
import { runKeysPhase } from './phases/keys.js'
import { runLatencyPhase } from './phases/latency.js'
import { runProcessingPhase } from './phases/processing.js'
import { runScalePhase } from './phases/scale.js'
import { runRetentionPhase, runSteadyPhase } from './phases/steady.js'
import { renderMarkdown } from './report.js'
import type { BenchResults } from './results.js'
import { startBenchServer } from './server.js'
import { BUSY_MACHINE_CORES, FULL, QUICK, SERVER_PROFILES, type ServerProfile } from './settings.js'

/** How long the idle check watches the machine before the first measure. */
const IDLE_CHECK_MS = 2000

const PHASES = ['ceiling', 'processing', 'keys', 'scale', 'enqueue', 'latency', 'steady', 'retention'] as const
type Phase = (typeof PHASES)[number]

const args = process.argv.slice(2)
const quick = args.includes('--quick') || process.env.BENCH_QUICK === '1'
const onlyArg = args.find((a) => a.startsWith('--only='))?.slice('--only='.length) ?? process.env.BENCH_ONLY
const only = onlyArg ? onlyArg.split(',').map((p) => p.trim()) : [...PHASES]
const unknown = only.filter((p) => !PHASES.includes(p as Phase))
if (unknown.length) {
  console.error(`unknown phase(s) ${unknown.join(', ')}; phases: ${PHASES.join(', ')}`)
  process.exit(2)
}

const profileArg = args.find((a) => a.startsWith('--pg='))?.slice('--pg='.length) ?? process.env.BENCH_PG ?? 'default'
if (!(profileArg in SERVER_PROFILES)) {
  console.error(`unknown PostgreSQL profile ${profileArg}; profiles: ${Object.keys(SERVER_PROFILES).join(', ')}`)
  process.exit(2)
}
const profile = profileArg as ServerProfile

const resultsDir = fileURLToPath(new URL('../results/', import.meta.url))
const sizes = quick ? QUICK : FULL
const began = performance.now()
const log = (message: string) =>
  console.log(`[${((performance.now() - began) / 1000).toFixed(0).padStart(4)} s] ${message}`)

log(`starting PostgreSQL, ${profile} settings (${quick ? 'quick run' : 'full run'}; phases: ${only.join(', ')})`)
const server = await startBenchServer(SERVER_PROFILES[profile])
// Ctrl-C: the server is detached (pg_ctl), so stop it and remove its files before going.
process.once('SIGINT', () => {
  log('interrupted: stopping PostgreSQL')
  void server.stop().finally(() => process.exit(130))
})
process.on('uncaughtException', (err: Error & { code?: unknown }) => {
  // Each measure ends with DROP DATABASE ... WITH (FORCE). A peer library's client can keep a
  // connection past its stop() (seen once with pg-boss), and then hears of the drop as an 'error'
  // event nobody listens to: 57P01, admin_shutdown. That database is gone on purpose; carry on.
  if (err.code === '57P01') {
    log(`ignored a connection error from a dropped database: ${err.message}`)
    return
  }
  console.error(err)
  log('crashed: stopping PostgreSQL')
  void server.stop().finally(() => process.exit(1))
})

let exitCode = 0
try {
  const info = await server.describe()
  log(
    `${info.version}; ${Object.entries(info.settings)
      .map(([k, v]) => `${k}=${v}`)
      .join(', ')}`,
  )
  const ctx: BenchContext = {
    server,
    sizes,
    log,
    startCpuMeter: (servicePids) => startCpuMeter(server.postmasterPid, servicePids),
  }
  const startedAt = new Date().toISOString()
  const machine = await describeMachine(info, await idleCheck(ctx))
  const ceiling = only.includes('ceiling') ? await runCeilingPhase(ctx) : []
  const processing = only.includes('processing') ? await runProcessingPhase(ctx) : []
  const results: BenchResults = {
    startedAt,
    quick,
    durationSeconds: 0,
    machine,
    settings: { ...sizes },
    ceiling,
    processing,
    keys: only.includes('keys') ? await runKeysPhase(ctx) : [],
    scale: only.includes('scale') ? await runScalePhase(ctx, processing) : [],
    enqueue: only.includes('enqueue') ? await runEnqueuePhase(ctx) : [],
    latency: only.includes('latency') ? await runLatencyPhase(ctx) : [],
    steady: only.includes('steady') ? await runSteadyPhase(ctx) : { probes: [], runs: [] },
  }
  if (only.includes('retention')) results.steady.runs.push(await runRetentionPhase(ctx, results.steady.probes))
  results.durationSeconds = (performance.now() - began) / 1000
  const markdown = renderMarkdown(results)
  await writeResults(results, markdown)
  console.log(`\n${markdown}`)
  const failed = [
    ...results.processing,
    ...results.keys,
    ...results.scale,
    ...results.enqueue,
    ...results.latency,
    ...results.ceiling,
    ...results.steady.runs,
  ].filter((r) => !r.exactlyOnce.ok)
  if (failed.length) {
    console.error(`exactly-once check failed in ${failed.length} measure(s)`)
    exitCode = 1
  }
} catch (err) {
  console.error(err)
  exitCode = 1
} finally {
  log('stopping PostgreSQL')
  await server.stop()
}
process.exit(exitCode)

/**
 * What the rest of the machine uses before anything starts: another checkout's test run on a 2-core
 * machine halves every figure, and the report should say so up front.
 */
async function idleCheck(ctx: BenchContext): Promise<number | undefined> {
  const stop = await ctx.startCpuMeter(() => [])
  await new Promise((resolve) => setTimeout(resolve, IDLE_CHECK_MS))
  const use = await stop()
  if (use && use.other > BUSY_MACHINE_CORES) {
    log(`WARNING: other processes already use ${use.other} cores of ${os.cpus().length}: expect noisy numbers`)
  }
  return use?.other
}

/**
 * latest.{md,json} plus a timestamped copy; a quick run writes only quick.{md,json}, and a run of
 * some phases only partial.{md,json}: neither replaces a full run's figures.
 */
async function writeResults(results: BenchResults, markdown: string): Promise<void> {
  await mkdir(resultsDir, { recursive: true })
  const json = `${JSON.stringify(results, null, 2)}\n`
  const partial = only.length < PHASES.length
  const suffix = profile === 'default' ? '' : `-${profile}`
  const names = (
    quick ? ['quick'] : partial ? ['partial'] : ['latest', `run-${results.startedAt.replace(/[:.]/g, '-')}`]
  ).map((name) => `${name}${suffix}`)
  for (const name of names) {
    await writeFile(`${resultsDir}${name}.md`, markdown)
    await writeFile(`${resultsDir}${name}.json`, json)
  }
  log(`wrote ${names.map((n) => `bench/results/${n}.{md,json}`).join(', ')}`)
}
