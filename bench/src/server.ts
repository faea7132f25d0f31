import { randomBytes } from 'node:crypto'
import { readFile, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { startCluster } from '@postgres-queue/devkit'
import postgres from 'postgres'

export interface ServerInfo {
  version: string
  settings: Record<string, string>
  dataDir: string
}

export interface BenchServer {
  /** The postmaster's pid: its children are the server's processes, for the CPU meter. */
  postmasterPid: number | undefined
  /** A fresh, empty database; dropped by `dropDatabase` or when the server stops. */
  createDatabase(label: string): Promise<string>
  dropDatabase(url: string): Promise<void>
  /** Flushes dirty pages now, so a preload's writes are not checkpointed during the measure after it. */
  checkpoint(): Promise<void>
  describe(): Promise<ServerInfo>
  stop(): Promise<void>
}

/** Settings the report states, read back from the running server rather than trusted from the config. */
const REPORTED_SETTINGS = [
  'shared_buffers',
  'fsync',
  'synchronous_commit',
  'max_connections',
  'wal_level',
  'max_wal_size',
  'checkpoint_timeout',
  'work_mem',
  'effective_io_concurrency',
  'autovacuum',
  'autovacuum_naptime',
  'autovacuum_vacuum_scale_factor',
  'autovacuum_analyze_scale_factor',
] as const

/**
 * The benchmark's own PostgreSQL: the embedded server of the test harness, in a temp dir of its own,
 * started with durable commits (fsync and synchronous_commit on, unlike the tests) and removed at
 * the end. The data dir sits directly in the temp dir because the server runs as the `postgres` OS
 * user, which must be able to reach it.
 */
export async function startBenchServer(settings: Record<string, string | number>): Promise<BenchServer> {
  const dataDir = path.join(os.tmpdir(), `postgres-queue-bench-${randomBytes(6).toString('hex')}`)
  const cluster = await startCluster({ dataDir, port: 0, settings })
  const admin = postgres(cluster.url(), { max: 1, onnotice: () => {} })
  let databases = 0

  return {
    postmasterPid: await readPostmasterPid(dataDir),
    async createDatabase(label) {
      databases += 1
      const name = `bench_${databases}_${label.replace(/[^a-z0-9]+/gi, '_').toLowerCase()}`.slice(0, 63)
      await admin.unsafe(`create database ${name}`)
      return cluster.url(name)
    },
    async dropDatabase(url) {
      const name = new URL(url).pathname.slice(1)
      await admin.unsafe(`drop database if exists ${name} with (force)`)
    },
    async checkpoint() {
      await admin.unsafe('checkpoint')
    },
    async describe() {
      const [row] = await admin<{ version: string }[]>`select version()`
      const settings: Record<string, string> = {}
      for (const name of REPORTED_SETTINGS) {
        const [value] = await admin.unsafe<{ setting: string }[]>(`select current_setting('${name}') as setting`)
        settings[name] = value?.setting ?? '?'
      }
      return { version: row?.version ?? '?', settings, dataDir }
    },
    async stop() {
      await admin.end({ timeout: 5 })
      await cluster.stop()
      await rm(dataDir, { recursive: true, force: true })
    },
  }
}

async function readPostmasterPid(dataDir: string): Promise<number | undefined> {
  try {
    return Number((await readFile(path.join(dataDir, 'postmaster.pid'), 'utf8')).split('\n')[0])
  } catch {
    return undefined
  }
}
