import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { Ajv } from 'ajv'
import t from 'tap'
import { parse } from 'yaml'

// No Docker engine runs where the tests do, so the deployment files are checked statically: against
// the Compose specification's schema, and against what `pnpm build` and `pnpm deploy` produce.

const root = fileURLToPath(new URL('../../../', import.meta.url))
const read = (file: string) => readFileSync(path.join(root, file), 'utf8')

interface DependsOn {
  condition: string
}

interface Service {
  build?: { context: string; dockerfile: string }
  image?: string
  command?: string[]
  container_name?: string
  ports?: unknown[]
  depends_on?: Record<string, DependsOn>
  healthcheck?: { test: string[] }
  volumes?: string[]
  init?: boolean
  restart?: string
  stop_grace_period?: string
}

const compose = parse(read('docker-compose.yml')) as { services: Record<string, Service>; volumes?: Record<string, unknown> }
const services = compose.services

t.test('docker-compose.yml is valid under the Compose specification', async (t) => {
  // The Compose specification's JSON schema, as the dclint package ships it (kept current there).
  const dclint = path.dirname(createRequire(import.meta.url).resolve('dclint/package.json'))
  const schema = JSON.parse(readFileSync(path.join(dclint, 'schemas/compose.schema.json'), 'utf8')) as object
  // strict: false because the schema is not ours to lint (it uses union types, for one).
  const validate = new Ajv({ allErrors: true, strict: false, validateSchema: false }).compile(schema)
  validate(parse(read('docker-compose.yml')))
  t.same(validate.errors ?? [], [])
})

t.test('the worker can be scaled: no container name and no published ports', async (t) => {
  t.equal(services.worker?.container_name, undefined)
  t.equal(services.worker?.ports, undefined)
})

t.test('the migration waits for a healthy PostgreSQL, the api and workers also for the migration', async (t) => {
  const healthy = { condition: 'service_healthy' }
  const migrated = { condition: 'service_completed_successfully' }
  t.same(services.postgres?.depends_on, undefined)
  t.same(services.migrate?.depends_on, { postgres: healthy })
  t.same(services.api?.depends_on, { postgres: healthy, migrate: migrated })
  t.same(services.worker?.depends_on, { postgres: healthy, migrate: migrated })
})

t.test('PostgreSQL reports health with pg_isready and keeps its data in a named volume', async (t) => {
  const postgres = services.postgres!
  t.match(postgres.image, /^postgres:17/)
  t.ok(postgres.healthcheck?.test.includes('pg_isready'))
  const volume = postgres.volumes?.[0]?.split(':')[0]
  t.ok(volume && compose.volumes && volume in compose.volumes, `${volume} is a named volume`)
})

t.test('the api reports readiness through /ready using node, which the slim image has', async (t) => {
  const test = services.api?.healthcheck?.test ?? []
  t.same(test.slice(0, 2), ['CMD', 'node'])
  t.match(test.join(' '), /\/ready\b/)
})

t.test('the api and the worker run under an init, restart unless stopped, the worker outwaits its shutdown', async (t) => {
  for (const name of ['api', 'worker']) {
    t.equal(services[name]?.init, true, `${name} runs under an init`)
    t.equal(services[name]?.restart, 'unless-stopped', `${name} restarts unless stopped`)
  }
  const workerShutdownTimeoutMs = 10_000
  t.ok(seconds(services.worker?.stop_grace_period ?? '10s') * 1000 > workerShutdownTimeoutMs)
})

for (const dockerfile of ['Dockerfile.api', 'Dockerfile.worker']) {
  t.test(`${dockerfile} deploys its service and runs node as a non-root user, in exec form`, async (t) => {
    const stages = parseDockerfile(read(dockerfile))
    const build = stages.slice(0, -1).flat()
    const final = stages.at(-1)!
    const svc = dockerfile.split('.')[1]
    t.ok(build.some((i) => i.keyword === 'RUN' && i.args.includes(`pnpm deploy --legacy --filter @postgres-queue/${svc} --prod`)))
    t.ok(final.some((i) => i.keyword === 'ENV' && /\bNODE_ENV=production\b/.test(i.args)))
    const user = final.findLast((i) => i.keyword === 'USER')?.args
    t.ok(user && !/^(root|0)(:|$)/.test(user), `final stage runs as ${user}`)
    t.same(imageCommand(dockerfile), ['node', 'dist/main.js'])
  })
}

t.test('the images install the pnpm version that package.json pins', async (t) => {
  const pinned = (JSON.parse(read('package.json')) as { packageManager: string }).packageManager
  for (const dockerfile of ['Dockerfile.api', 'Dockerfile.worker']) {
    t.match(read(dockerfile), `npm install -g ${pinned}`, dockerfile)
  }
})

t.test('every command a container runs names a file the build makes and pnpm deploy ships', async (t) => {
  const packages = workspacePackages()
  for (const [name, service] of Object.entries(services)) {
    if (!service.build) continue
    const svc = path.basename(service.build.dockerfile).split('.')[1]!
    const command = service.command ?? imageCommand(service.build.dockerfile)
    const file = command[1]!
    // In the image, /app is `pnpm deploy`'s copy of the service and node_modules/<pkg> a workspace package.
    const [, dependency, inDependency] = /^node_modules\/(@[^/]+\/[^/]+)\/(.+)$/.exec(file) ?? []
    const dir = packages.get(dependency ?? `@postgres-queue/${svc}`)
    const inPackage = inDependency ?? file
    t.ok(dir, `${name}: ${file} belongs to a workspace package`)
    if (!dir) continue
    t.ok(existsSync(path.join(root, dir, inPackage)), `${name}: ${dir}/${inPackage} exists after pnpm build`)
    const files = (JSON.parse(read(`${dir}/package.json`)) as { files?: string[] }).files
    t.ok(files?.includes(inPackage.split('/')[0]!), `${name}: ${dir}/package.json "files" ships ${inPackage}`)
  }
})

t.test('the Docker build context leaves out local builds, dependencies and data', async (t) => {
  const ignored = read('.dockerignore').split('\n').map((line) => line.trim())
  for (const pattern of ['**/node_modules', '**/dist', '**/*.tsbuildinfo', '.data', '.git']) {
    t.ok(ignored.includes(pattern), pattern)
  }
})

interface Instruction {
  keyword: string
  args: string
}

/** Instructions grouped by stage (one per FROM), comments dropped and continuation lines joined. */
function parseDockerfile(text: string): Instruction[][] {
  const stages: Instruction[][] = []
  for (const line of text.replace(/\\\n/g, ' ').split('\n')) {
    const trimmed = line.trim()
    if (trimmed === '' || trimmed.startsWith('#')) continue
    const [keyword = '', ...rest] = trimmed.split(/\s+/)
    const instruction = { keyword: keyword.toUpperCase(), args: rest.join(' ') }
    if (instruction.keyword === 'FROM') stages.push([])
    stages.at(-1)?.push(instruction)
  }
  return stages
}

/** The final stage's CMD, which must be exec form (JSON): shell form would put a shell in front of node. */
function imageCommand(dockerfile: string): string[] {
  const cmd = parseDockerfile(read(dockerfile)).at(-1)?.findLast((i) => i.keyword === 'CMD')?.args ?? ''
  try {
    return JSON.parse(cmd) as string[]
  } catch {
    throw new Error(`${dockerfile}: CMD ${cmd} is not in exec form`)
  }
}

/** Workspace package name to its folder, relative to the repository root. */
function workspacePackages(): Map<string, string> {
  const packages = new Map<string, string>()
  for (const parent of ['packages', 'services']) {
    for (const dir of readdirSync(path.join(root, parent))) {
      const manifest = path.join(root, parent, dir, 'package.json')
      if (existsSync(manifest)) packages.set((JSON.parse(readFileSync(manifest, 'utf8')) as { name: string }).name, `${parent}/${dir}`)
    }
  }
  return packages
}

/** A Compose duration such as `30s` or `1m30s`, in seconds. */
function seconds(duration: string): number {
  const units: Record<string, number> = { h: 3600, m: 60, s: 1, ms: 0.001 }
  let total = 0
  for (const [, amount, unit] of duration.matchAll(/(\d+(?:\.\d+)?)(ms|h|m|s)/g)) total += Number(amount) * units[unit!]!
  return total
}
