import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { closeDb, countOrdersByStatus, createDb, sql } from '@postgres-queue/db'
import { createTestDatabase, makeOrder, readmeCodeBlock, waitFor } from '@postgres-queue/testkit'
import t from 'tap'
import { repoRoot, startService, stopService } from '../support/processes.js'

// The packages as a team gets them: packed, installed with npm into a project outside the
// workspace, and run as the README's "Use it from your own project" shows, against a real
// PostgreSQL. Nothing is published from here: the README's package names stand for the tarballs.

const run = promisify(execFile)
t.setTimeout(300_000)

const PACKAGES = {
  '@postgres-queue/runtime': 'packages/runtime',
  '@postgres-queue/db': 'packages/db',
  '@postgres-queue/worker': 'services/worker',
}

t.test("from the packed packages, the README's own worker processes orders with its own table", async (t) => {
  const scratch = await mkdtemp(path.join(os.tmpdir(), 'postgres-queue-install-'))
  t.teardown(() => rm(scratch, { recursive: true, force: true }))
  const tarballs: Record<string, string> = {}
  for (const [name, dir] of Object.entries(PACKAGES)) {
    const { stdout } = await run('pnpm', ['pack', '--pack-destination', scratch], { cwd: path.join(repoRoot, dir) })
    tarballs[name] = stdout.trim().split('\n').at(-1) as string
    const manifest = await run('tar', ['-xzOf', tarballs[name], 'package/package.json'])
    t.notMatch(manifest.stdout, 'workspace:', `${name}: no workspace: range left`)
  }

  // The README's commands, with the tarballs for the names (and the runtime they depend on).
  const install = (await readmeCodeBlock('sh', 'npm install @postgres-queue/worker')).replace(
    'npm install @postgres-queue/worker @postgres-queue/db',
    `npm install --no-audit --no-fund ${Object.values(tarballs).join(' ')}`,
  )
  await run('bash', ['-euo', 'pipefail', '-c', install], { cwd: scratch, maxBuffer: 16 * 1024 * 1024 })
  const driver = await readFile(path.join(scratch, 'node_modules/@postgres-queue/db/dist/driver.js'), 'utf8')
  t.match(driver, 'closedError', 'the installed driver is the patched postgres.js')
  await writeFile(
    path.join(scratch, 'worker.js'),
    await readmeCodeBlock('js', 'await runWorker(process.env, processor)'),
  )

  const url = await createTestDatabase(t)
  const db = createDb(url)
  t.teardown(() => closeDb(db))
  await db.execute(sql`create table public.shipments (order_id bigint primary key)`)
  const worker = startService(
    'own-worker',
    ['worker.js'],
    { DATABASE_URL: url, WORKER_CRON: '* * * * * *' },
    { cwd: scratch },
  )
  t.teardown(() => stopService(worker))
  await worker.waitForLine((l) => l.msg === 'worker started', 60_000)

  // Queued from the project too, in a transaction of its own, with the installed submitOrders.
  const orders = JSON.stringify(Array.from({ length: 100 }, () => makeOrder()))
  await run(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `import postgres from 'postgres'
       import { submitOrders } from '@postgres-queue/db'
       const sql = postgres(process.env.DATABASE_URL)
       await sql.begin((tx) => submitOrders(tx, ${orders}))
       await sql.end()`,
    ],
    { cwd: scratch, env: { ...process.env, DATABASE_URL: url } },
  )
  await waitFor(async () => (await countOrdersByStatus(db)).completed === 100, {
    message: 'every order completed by the installed worker',
    timeoutMs: 30_000,
  })
  const [shipments] = await db.execute<{ rows: number; orders: number }>(
    sql`select count(*)::int as rows, count(distinct order_id)::int as orders from public.shipments`,
  )
  t.same(shipments, { rows: 100, orders: 100 }, "one row of the team's own per order")
  t.ok(
    worker.lines.some((l) => l.msg === 'shipping'),
    "the processor's own log line",
  )
})
