export { type Cluster, type ClusterOptions, freePort, startCluster, stopCluster } from './postgres-cluster.js'
