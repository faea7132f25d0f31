import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import path from 'node:path'
import t from 'tap'
import { repoRoot } from '../support/processes.js'

// The README names files and functions; each must exist, or the README has drifted from the code (a
// renamed query, a test file gone). Paths are checked on disk; a test file named alone, somewhere
// in the tree; an identifier in backticks (camelCase or snake_case, a call or a field), in the
// source.

const readme = readFileSync(path.join(repoRoot, 'README.md'), 'utf8')

function filesUnder(dir: string, keep: (file: string) => boolean): string[] {
  const found: string[] = []
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'dist' || name.startsWith('.')) continue
    const file = path.join(dir, name)
    if (statSync(file).isDirectory()) found.push(...filesUnder(file, keep))
    else if (keep(file)) found.push(file)
  }
  return found
}

const sourceDirs = ['packages', 'services', 'test', 'bench/src', 'deploy'].map((dir) => path.join(repoRoot, dir))
const sources = sourceDirs.flatMap((dir) => filesUnder(dir, (file) => /\.(ts|js|sql|yaml|html)$/.test(file)))
const sourceText = sources.map((file) => readFileSync(file, 'utf8')).join('\n')
const testFiles = new Set(sources.filter((file) => file.endsWith('.test.ts')).map((file) => path.basename(file)))

t.test('every path the README names exists', async (t) => {
  const paths = new Set(
    // Not after a slash: /docs/json is a URL path, not a folder.
    [...readme.matchAll(/(?<![/\w])(?:packages|services|test|docs|deploy|bench|patches)\/[\w./-]*[\w/]/g)].map(
      ([p]) => p,
    ),
  )
  t.ok(paths.size > 20, `${paths.size} paths`)
  t.same(
    [...paths].filter((p) => !existsSync(path.join(repoRoot, p))),
    [],
  )
})

t.test('every test file the README names alone exists', async (t) => {
  const named = new Set([...readme.matchAll(/`([\w.-]+\.test\.ts)`/g)].map(([, name]) => name as string))
  t.ok(named.size > 10, `${named.size} test files`)
  t.same(
    [...named].filter((name) => !testFiles.has(name)),
    [],
  )
})

/** Names the README gives of other software's settings, not of this code. */
const OTHER_SOFTWARE = new Set(['max_prepared_statements'])

t.test('every function or field the README names in backticks is in the source', async (t) => {
  const identifiers = new Set(
    [...readme.matchAll(/`([a-z][A-Za-z0-9]*(?:_[a-z0-9]+)*)(?:\(\))?`/g)]
      .map(([, name]) => name as string)
      .filter((name) => /[A-Z_]/.test(name) && !OTHER_SOFTWARE.has(name)),
  )
  t.ok(identifiers.size > 25, `${identifiers.size} identifiers`)
  t.same(
    [...identifiers].filter((name) => !new RegExp(`\\b${name}\\b`).test(sourceText)),
    [],
  )
})
