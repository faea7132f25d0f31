import { DEFAULT_SCHEMA } from './client.js'
import { migrateDatabase } from './migrate.js'

// The `migrate` one-shot of docker compose and `pnpm db:migrate`.
const url = process.env.DATABASE_URL
if (!url) {
  console.error('DATABASE_URL is required: the PostgreSQL database to migrate')
  process.exit(2)
}
const schema = process.env.DATABASE_SCHEMA || undefined
await migrateDatabase(url, { schema })
console.log(JSON.stringify({ level: 30, time: new Date().toISOString(), msg: 'database migrated', schema: schema ?? DEFAULT_SCHEMA }))
