import { setUpTestRun } from './test-database.js'

await setUpTestRun(process.env)
