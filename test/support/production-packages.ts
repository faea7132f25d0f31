import { existsSync, readdirSync, readFileSync, realpathSync } from 'node:fs'
import path from 'node:path'

export interface InstalledPackage {
  name: string
  version: string
  /** Real path of the package's folder. */
  dir: string
  /** Its `engines.node`, if it declares one. */
  node?: string
}

export interface ProductionPackages {
  /** Every package the app loads at run time, sorted by name and version. */
  reachable: InstalledPackage[]
  /** Dependencies (not optional ones) that are declared but not installed: `dependant -> name`. */
  missing: string[]
}

interface Manifest {
  name?: string
  version?: string
  engines?: { node?: string }
  dependencies?: Record<string, string>
  optionalDependencies?: Record<string, string>
  peerDependencies?: Record<string, string>
  peerDependenciesMeta?: Record<string, { optional?: boolean }>
}

/**
 * The packages an app folder (package.json and node_modules, like the images' /app or a workspace
 * service) loads at run time: its dependencies, theirs, and so on, each found where Node would find
 * it. devDependencies are never followed; optional dependencies and optional peers count only
 * where installed.
 */
export function productionPackages(appDir: string): ProductionPackages {
  const seen = new Map<string, InstalledPackage>()
  const missing: string[] = []
  const visit = (dir: string) => {
    if (seen.has(dir)) return
    const manifest = readManifest(dir)
    seen.set(dir, describe(dir, manifest))
    for (const { name, optional } of runtimeDependencies(manifest)) {
      const found = resolvePackage(dir, name)
      if (found) visit(found)
      else if (!optional) missing.push(`${manifest.name ?? dir} -> ${name}`)
    }
  }
  visit(realpathSync(appDir))
  seen.delete(realpathSync(appDir))
  return { reachable: sortPackages([...seen.values()]), missing }
}

/** Every package installed in a pnpm node_modules folder (its `.pnpm` virtual store). */
export function installedPackages(nodeModules: string): InstalledPackage[] {
  const store = path.join(nodeModules, '.pnpm')
  const packages: InstalledPackage[] = []
  for (const key of readdirSync(store, { withFileTypes: true })) {
    if (!key.isDirectory() || key.name === 'node_modules') continue
    const inKey = path.join(store, key.name, 'node_modules')
    // The key's own package is the one real folder in its node_modules; the rest link to its deps.
    for (const entry of readdirSync(inKey, { withFileTypes: true })) {
      const dirs = entry.name.startsWith('@')
        ? readdirSync(path.join(inKey, entry.name), { withFileTypes: true })
            .filter((e) => e.isDirectory())
            .map((e) => path.join(inKey, entry.name, e.name))
        : entry.isDirectory()
          ? [path.join(inKey, entry.name)]
          : []
      for (const dir of dirs) packages.push(describe(realpathSync(dir), readManifest(dir)))
    }
  }
  return sortPackages(packages)
}

/** `name@version`, the form listings show. */
export const packageId = (p: InstalledPackage) => `${p.name}@${p.version}`

function runtimeDependencies(manifest: Manifest): { name: string; optional: boolean }[] {
  const optionalPeer = (name: string) => manifest.peerDependenciesMeta?.[name]?.optional === true
  // An optional peer may be named in peerDependenciesMeta alone (debug's supports-color): the
  // package loads it when it is there, and pnpm links it when the workspace has it.
  const peers = new Set([
    ...Object.keys(manifest.peerDependencies ?? {}),
    ...Object.keys(manifest.peerDependenciesMeta ?? {}),
  ])
  return [
    ...Object.keys(manifest.dependencies ?? {}).map((name) => ({ name, optional: false })),
    ...Object.keys(manifest.optionalDependencies ?? {}).map((name) => ({ name, optional: true })),
    ...[...peers].map((name) => ({ name, optional: optionalPeer(name) })),
  ]
}

/** Node's lookup: `<ancestor>/node_modules/<name>` for each ancestor not itself a node_modules folder. */
function resolvePackage(fromDir: string, name: string): string | undefined {
  for (let dir = fromDir; ; dir = path.dirname(dir)) {
    if (path.basename(dir) !== 'node_modules') {
      const candidate = path.join(dir, 'node_modules', name)
      if (existsSync(path.join(candidate, 'package.json'))) return realpathSync(candidate)
    }
    if (path.dirname(dir) === dir) return undefined
  }
}

function readManifest(dir: string): Manifest {
  return JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as Manifest
}

function describe(dir: string, manifest: Manifest): InstalledPackage {
  const described: InstalledPackage = {
    name: manifest.name ?? path.basename(dir),
    version: manifest.version ?? '0.0.0',
    dir,
  }
  if (manifest.engines?.node) described.node = manifest.engines.node
  return described
}

function sortPackages(packages: InstalledPackage[]): InstalledPackage[] {
  return packages.sort((a, b) => packageId(a).localeCompare(packageId(b)))
}
