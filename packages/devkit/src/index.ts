export { createEffectsTable, effectCounts, recordEffect } from './effects.js'
export { makeOrder } from './fixtures.js'
export { type Cluster, type ClusterOptions, freePort, startCluster, stopCluster } from './postgres-cluster.js'
export { createTestDatabase, startPrivateCluster } from './test-database.js'
