import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { Ajv } from 'ajv'
import semver from 'semver'
import t from 'tap'
import { parse } from 'yaml'
import { productionPackages } from '../support/production-packages.js'

// The deployment files, checked statically: against the Compose specification's schema, and against
// what `pnpm build` and `pnpm deploy` produce. test/docker/compose.test.ts runs them for real where
// a Docker engine can run.

const root = fileURLToPath(new URL('../../', import.meta.url))
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
  environment?: Record<string, string | number>
  init?: boolean
  restart?: string
  stop_grace_period?: string
}

const composeText = read('docker-compose.yml')
const compose = parse(composeText) as {
  name?: string
  services: Record<string, Service>
  volumes?: Record<string, unknown>
}
const services = compose.services
const dockerfiles = ['Dockerfile.api', 'Dockerfile.worker']
/** Shutdown timeouts the services apply to themselves (the api's main.ts, WORKER_SHUTDOWN_TIMEOUT_MS). */
const ownShutdownMs = { api: 10_000, worker: 10_000 }

t.test('docker-compose.yml is valid under the Compose specification', async (t) => {
  // The Compose specification's JSON schema, as the dclint package ships it (kept current there).
  const dclint = path.dirname(createRequire(import.meta.url).resolve('dclint/package.json'))
  const schema = JSON.parse(readFileSync(path.join(dclint, 'schemas/compose.schema.json'), 'utf8')) as object
  // strict: false because the schema is not ours to lint (it uses union types, for one).
  const validate = new Ajv({ allErrors: true, strict: false, validateSchema: false }).compile(schema)
  validate(parse(read('docker-compose.yml')))
  t.same(validate.errors ?? [], [])
})

t.test('docker-compose 1.29 accepts the file too: no top-level name', async (t) => {
  t.equal(compose.name, undefined)
  t.notMatch(composeText, /^name:/m)
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

t.test('PostgreSQL reports health with pg_isready over TCP and keeps its data in a named volume', async (t) => {
  const postgres = services.postgres!
  t.match(postgres.image, /^postgres:17/)
  const test = postgres.healthcheck?.test ?? []
  t.ok(test.includes('pg_isready'))
  // The image's init-time server listens on the socket only: a socket probe passes before the real server is up.
  t.equal(test[test.indexOf('-h') + 1], '127.0.0.1', 'pg_isready -h 127.0.0.1')
  const volume = postgres.volumes?.[0]?.split(':')[0]
  t.ok(volume && compose.volumes && volume in compose.volumes, `${volume} is a named volume`)
})

t.test('the application connects as a role of its own, which an init script makes, not as the superuser', async (t) => {
  const postgres = services.postgres!
  const superuser = String(postgres.environment?.POSTGRES_USER)
  for (const name of ['migrate', 'api', 'worker']) {
    const url = new URL(String(services[name]?.environment?.DATABASE_URL).replace(/\$\{[^}]*\}/g, 'x'))
    t.equal(url.username, 'postgres_queue', `${name} logs in as postgres_queue`)
    t.not(url.username, superuser, `${name} is not ${superuser}`)
    t.equal(url.pathname, '/postgres_queue', `${name} uses the database postgres_queue`)
  }
  const init = postgres.volumes?.find((v) => v.split(':')[1]?.startsWith('/docker-entrypoint-initdb.d/'))
  const script = init?.split(':')[0] ?? ''
  t.ok(script && existsSync(path.join(root, script)), `${script} is mounted into /docker-entrypoint-initdb.d`)
  const sql = script ? read(script) : ''
  t.match(sql, /create role postgres_queue login password :'password'\s+nosuperuser nocreatedb nocreaterole/)
  t.match(sql, /create database postgres_queue owner postgres_queue/)
})

t.test('the api reports readiness through /ready using node, which the slim image has', async (t) => {
  const test = services.api?.healthcheck?.test ?? []
  t.same(test.slice(0, 2), ['CMD', 'node'])
  t.match(test.join(' '), /\/ready\b/)
})

t.test('the worker reports health through its metrics port, using node', async (t) => {
  const test = services.worker?.healthcheck?.test ?? []
  t.same(test.slice(0, 2), ['CMD', 'node'])
  t.match(test.join(' '), /process\.env\.METRICS_PORT \+ '\/metrics'/)
  t.ok(services.worker?.environment?.METRICS_PORT, 'METRICS_PORT is set')
})

t.test(
  'the api and the worker run under an init, restart unless stopped, and outwait their own shutdown',
  async (t) => {
    for (const name of ['api', 'worker'] as const) {
      t.equal(services[name]?.init, true, `${name} runs under an init`)
      t.equal(services[name]?.restart, 'unless-stopped', `${name} restarts unless stopped`)
      // Compose's default grace is 10 s: no more than either service may take.
      const graceMs = seconds(services[name]?.stop_grace_period ?? '10s') * 1000
      t.ok(graceMs > ownShutdownMs[name], `${name}: ${graceMs} ms of grace for its ${ownShutdownMs[name]} ms`)
    }
  },
)

t.test('one image for the worker and the migration, under one name', async (t) => {
  t.ok(services.worker?.image, 'the worker names its image')
  t.equal(services.migrate?.image, services.worker?.image, 'the migration runs the same image')
  // docker-compose 1.29 gets each service's image in start order, the migration's first: the
  // migration must be able to build it (building it twice costs a cache lookup).
  t.same(services.migrate?.build, services.worker?.build, 'from the same build')
  t.not(services.api?.image, services.worker?.image)
  const built = new Set(Object.values(services).flatMap((s) => (s.build ? [s.build.dockerfile] : [])))
  t.same([...built].sort(), dockerfiles, 'two Dockerfiles, two images')
})

t.test("the two Dockerfiles build in the same steps, so the second build reuses the first one's layers", async (t) => {
  const buildStage = (dockerfile: string) => {
    const text = read(dockerfile)
    return text.slice(text.indexOf('FROM '), text.indexOf('RUN pnpm --config.inject-workspace-packages=true deploy'))
  }
  t.ok(buildStage('Dockerfile.api').length > 200)
  t.equal(buildStage('Dockerfile.api'), buildStage('Dockerfile.worker'))
})

for (const dockerfile of dockerfiles) {
  t.test(`${dockerfile}: dependencies come from the lockfile in a layer of their own, before the source`, async (t) => {
    const build = parseDockerfile(read(dockerfile))[0]!
    const at = (predicate: (i: Instruction) => boolean) => build.findIndex(predicate)
    const fetch = at((i) => i.keyword === 'RUN' && i.args === 'pnpm fetch')
    const source = at((i) => i.keyword === 'COPY' && i.args === '. .')
    t.ok(fetch > 0 && source > fetch, 'pnpm fetch runs before the source is copied')
    const copiedBefore = build
      .slice(0, fetch)
      .filter((i) => i.keyword === 'COPY')
      .flatMap((i) => i.args.split(/\s+/).slice(0, -1))
    t.same(copiedBefore.sort(), ['.pnpmfile.cjs', 'patches/', 'pnpm-lock.yaml', 'pnpm-workspace.yaml'])
    const install = build.find((i) => i.keyword === 'RUN' && i.args.startsWith('pnpm install'))?.args ?? ''
    t.match(install, /--frozen-lockfile --offline/, 'the install reads the fetched store only')
  })

  t.test(`${dockerfile} deploys its service and runs node as a non-root user, in exec form`, async (t) => {
    const stages = parseDockerfile(read(dockerfile))
    const build = stages.slice(0, -1).flat()
    const final = stages.at(-1)!
    const svc = dockerfile.split('.')[1]
    t.ok(
      build.some(
        (i) =>
          i.keyword === 'RUN' &&
          i.args ===
            `pnpm --config.inject-workspace-packages=true deploy --offline --filter @postgres-queue/${svc} --prod /out`,
      ),
    )
    t.ok(final.some((i) => i.keyword === 'ENV' && /\bNODE_ENV=production\b/.test(i.args)))
    const user = final.findLast((i) => i.keyword === 'USER')?.args
    t.ok(user && !/^(root|0)(:|$)/.test(user), `final stage runs as ${user}`)
    t.same(imageCommand(dockerfile), ['node', '--enable-source-maps', 'dist/main.js'])
  })
}

t.test('the images install the pnpm version that package.json pins', async (t) => {
  const pinned = (JSON.parse(read('package.json')) as { packageManager: string }).packageManager
  for (const dockerfile of dockerfiles) {
    t.match(read(dockerfile), `npm install -g ${pinned}`, dockerfile)
  }
})

t.test('every stage runs Node 24, the current LTS', async (t) => {
  for (const dockerfile of dockerfiles) {
    const froms = parseDockerfile(read(dockerfile)).map((stage) => stage[0]!.args.split(/\s+/)[0])
    t.same(froms, ['node:24-bookworm-slim', 'node:24-bookworm-slim'], dockerfile)
  }
})

t.test(
  "each service's engines admit the images' Node and promise no more than its production dependencies",
  async (t) => {
    for (const svc of ['api', 'worker']) {
      const dir = path.join(root, 'services', svc)
      const engines = (JSON.parse(read(`services/${svc}/package.json`)) as { engines?: { node?: string } }).engines
        ?.node
      t.ok(engines && semver.satisfies('24.0.0', engines), `${svc}: engines ${engines} admit Node 24`)
      const { reachable } = productionPackages(dir)
      t.ok(reachable.length > 20, `${svc}: ${reachable.length} production packages`)
      const narrower = reachable.filter(
        (p) => p.node && engines && !semver.subset(engines, p.node, { includePrerelease: false }),
      )
      t.same(
        narrower.map((p) => `${p.name}@${p.version} wants ${p.node}`),
        [],
        `${svc}: every production dependency supports whatever ${engines} admits`,
      )
    }
  },
)

t.test('every command a container runs names a file the build makes and pnpm deploy ships', async (t) => {
  const packages = workspacePackages()
  for (const [name, service] of Object.entries(services)) {
    const build = service.build
    if (!build) continue
    const svc = path.basename(build.dockerfile).split('.')[1]!
    const command = service.command ?? imageCommand(build.dockerfile)
    // node, its flags, then the file it runs.
    const file = command.slice(1).find((arg) => !arg.startsWith('-')) ?? ''
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
  const ignored = read('.dockerignore')
    .split('\n')
    .map((line) => line.trim())
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
  const cmd =
    parseDockerfile(read(dockerfile))
      .at(-1)
      ?.findLast((i) => i.keyword === 'CMD')?.args ?? ''
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
      if (existsSync(manifest))
        packages.set((JSON.parse(readFileSync(manifest, 'utf8')) as { name: string }).name, `${parent}/${dir}`)
    }
  }
  return packages
}

/** A Compose duration such as `30s` or `1m30s`, in seconds. */
function seconds(duration: string): number {
  const units: Record<string, number> = { h: 3600, m: 60, s: 1, ms: 0.001 }
  let total = 0
  for (const [, amount, unit] of duration.matchAll(/(\d+(?:\.\d+)?)(ms|h|m|s)/g))
    total += Number(amount) * units[unit!]!
  return total
}
