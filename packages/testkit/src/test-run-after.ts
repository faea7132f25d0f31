import { tearDownTestRun } from './test-database.js'

await tearDownTestRun()
