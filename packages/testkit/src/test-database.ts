import { randomBytes } from 'node:crypto'
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { closeDb, createDb, type Db, type DbOptions, migrateDatabase } from '@postgres-queue/db'
import { type Cluster, startCluster, stopCluster } from '@postgres-queue/devkit'
import postgres from 'postgres'

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

const stateDir = path.join(os.tmpdir(), 'postgres-queue-test')
// tap's before and after scripts and every test file are children of the same tap process, so its
// pid names this run: two runs at once (two checkouts, two terminals) keep separate servers.
const stateFile = path.join(stateDir, `run-${process.ppid}.json`)

/** Server settings for throwaway test clusters: fsync off (a process crash loses nothing). */
const testClusterSettings = { fsync: 'off', max_connections: 300 }

/** tap `before`: start (or reuse) the server and build the migrated template database. */
export async function setUpTestRun(env: NodeJS.ProcessEnv): Promise<void> {
  await stopAbandonedRuns()
  let adminUrl = env.DATABASE_URL
  let dataDir: string | undefined
  if (!adminUrl) {
    dataDir = path.join(stateDir, `cluster-${process.ppid}`)
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
  await mkdir(stateDir, { recursive: true })
  await writeFile(stateFile, JSON.stringify({ adminUrl, template: TEMPLATE, dataDir } satisfies RunState))
}

/** tap `after`: stop the cluster this run started, if any. */
export async function tearDownTestRun(): Promise<void> {
  await endRun(stateFile, await readState())
}

async function endRun(file: string, state: RunState): Promise<void> {
  await rm(file, { force: true })
  if (!state.dataDir) return
  await stopCluster(state.dataDir).catch(() => {}) // already stopped
  await rm(state.dataDir, { recursive: true, force: true })
}

/** Servers of runs that were killed before their `after` script ran. */
async function stopAbandonedRuns(): Promise<void> {
  const files = await readdir(stateDir).catch(() => [])
  for (const file of files) {
    const match = /^run-(\d+)\.json$/.exec(file)
    if (!match || isAlive(Number(match[1]))) continue
    const state = JSON.parse(await readFile(path.join(stateDir, file), 'utf8')) as RunState
    await endRun(path.join(stateDir, file), state)
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM' // alive, someone else's
  }
}

interface Teardown {
  teardown(fn: () => unknown): void
}

/**
 * A fresh, migrated database for one test file, dropped when the test ends. Returns its URL.
 * `{ migrated: false }`: an empty one, for tests of the migration itself.
 */
export async function createTestDatabase(
  t: Teardown,
  { migrated = true }: { migrated?: boolean } = {},
): Promise<string> {
  const state = await readState()
  const name = `test_${randomBytes(6).toString('hex')}`
  const admin = postgres(state.adminUrl, { max: 1, onnotice: () => {} })
  await admin.unsafe(`create database ${name}${migrated ? ` template ${state.template}` : ''}`)
  t.teardown(async () => {
    await admin.unsafe(`drop database if exists ${name} with (force)`)
    await admin.end()
  })
  return withDatabase(state.adminUrl, name)
}

/** A throwaway cluster of the test's own, for tests that stop and start the server. */
export async function startPrivateCluster(t: Teardown): Promise<Cluster> {
  const dataDir = path.join(stateDir, `private-${randomBytes(6).toString('hex')}`)
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

/** `url` (a database URL) with its server at `port` on 127.0.0.1: through a test's TCP proxy. */
export function viaLocalPort(url: string | URL, port: number): string {
  const parsed = new URL(url)
  parsed.hostname = '127.0.0.1'
  parsed.port = String(port)
  return parsed.toString()
}

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url)
  parsed.pathname = `/${database}`
  return parsed.toString()
}

/** A pool on a migrated database of this test's own (createTestDatabase), closed when the test ends. */
export async function openTestDb(t: Teardown, options: DbOptions = {}): Promise<Db> {
  const db = createDb(await createTestDatabase(t), options)
  t.teardown(() => closeDb(db))
  return db
}
