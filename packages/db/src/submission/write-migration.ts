import { readdir, readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { migrationsFolder } from '../migrate.js'
import { submissionFunctionsSql } from './sql.js'

// `pnpm db:submission [file]`: writes the SQL submission functions, as the rules generate them now,
// into `file`, a migration drizzle-kit prepared for it (`pnpm db:generate --custom --name=...`); by
// default into the latest migration that holds them already.

const [given] = process.argv.slice(2)
const file = given ?? (await latestSubmissionMigration())
await writeFile(file, submissionFunctionsSql())
console.log(`wrote the submission functions to ${path.relative(process.cwd(), file)}`)

async function latestSubmissionMigration(): Promise<string> {
  const files = (await readdir(migrationsFolder)).filter((f) => f.endsWith('.sql')).sort()
  for (const name of files.reverse()) {
    const file = path.join(migrationsFolder, name)
    if ((await readFile(file, 'utf8')).includes('pnpm db:submission')) return file
  }
  throw new Error('no migration holds the submission functions yet: name the one to write')
}
