import { createHash, randomBytes } from 'node:crypto'
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { migrateDatabase } from '@postgres-queue/db'
import postgres from 'postgres'
import { type Cluster, startCluster, stopCluster } from './postgres-cluster.js'

/**
 * The test run's PostgreSQL: `DATABASE_URL` when set, otherwise one embedded cluster started by
 * tap's `before` script and stopped by its `after` script. Each test file then gets a database of
 * its own, copied from a migrated template, so files run in parallel without seeing each other.
 */
interface RunState {
  /** A URL with rights to create databases. */
  adminUrl: string
  template: string
  /** Set when this run started the cluster and must stop it. */
  dataDir?: string
}

const TEMPLATE = 'postgres_queue_template'

// One state file per checkout, so two checkouts can test at once.
const stateFile = path.join(
  os.tmpdir(),
  'postgres-queue-test',
  `${createHash('sha256').update(process.cwd()).digest('hex').slice(0, 12)}.json`,
)

/** Server settings for throwaway test clusters: fsync off (a process crash loses nothing). */
export const testClusterSettings = { fsync: 'off', max_connections: 300 }

/** tap `before`: start (or reuse) the server and build the migrated template database. */
export async function setUpTestRun(env: NodeJS.ProcessEnv): Promise<void> {
  let adminUrl = env.DATABASE_URL
  let dataDir: string | undefined
  if (!adminUrl) {
    dataDir = path.join(os.tmpdir(), 'postgres-queue-test', `cluster-${process.pid}`)
    const cluster = await startCluster({ dataDir, port: 0, settings: testClusterSettings })
    adminUrl = cluster.url()
  }
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} })
  try {
    await admin.unsafe(`drop database if exists ${TEMPLATE} with (force)`)
    await admin.unsafe(`create database ${TEMPLATE}`)
  } finally {
    await admin.end()
  }
  await migrateDatabase(withDatabase(adminUrl, TEMPLATE))
  await mkdir(path.dirname(stateFile), { recursive: true })
  await writeFile(stateFile, JSON.stringify({ adminUrl, template: TEMPLATE, dataDir } satisfies RunState))
}

/** tap `after`: stop the cluster this run started, if any. */
export async function tearDownTestRun(): Promise<void> {
  const state = await readState()
  await rm(stateFile, { force: true })
  if (!state.dataDir) return
  await stopCluster(state.dataDir)
  await rm(state.dataDir, { recursive: true, force: true })
}

interface Teardown {
  teardown(fn: () => unknown): void
}

/** A fresh, migrated database for one test file, dropped when the test ends. Returns its URL. */
export async function createTestDatabase(t: Teardown): Promise<string> {
  const state = await readState()
  const name = `test_${randomBytes(6).toString('hex')}`
  const admin = postgres(state.adminUrl, { max: 1, onnotice: () => {} })
  await admin.unsafe(`create database ${name} template ${state.template}`)
  t.teardown(async () => {
    await admin.unsafe(`drop database if exists ${name} with (force)`)
    await admin.end()
  })
  return withDatabase(state.adminUrl, name)
}

/** A throwaway cluster of the test's own, for tests that stop and start the server. */
export async function startPrivateCluster(t: Teardown): Promise<Cluster> {
  const dataDir = path.join(os.tmpdir(), 'postgres-queue-test', `private-${randomBytes(6).toString('hex')}`)
  const cluster = await startCluster({ dataDir, port: 0, settings: testClusterSettings })
  t.teardown(async () => {
    await cluster.stop().catch(() => {})
    await rm(dataDir, { recursive: true, force: true })
  })
  return cluster
}

async function readState(): Promise<RunState> {
  try {
    return JSON.parse(await readFile(stateFile, 'utf8')) as RunState
  } catch (err) {
    throw new Error('no test database: run the tests with `pnpm test` (tap starts PostgreSQL in its `before` script)', {
      cause: err,
    })
  }
}

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url)
  parsed.pathname = `/${database}`
  return parsed.toString()
}
