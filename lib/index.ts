export * from './vds-node';
export * from './cloud-init/cloud-config';
export * from './cloud-init/apply-time-secrets';
export * from './zookeeper-ensemble';
export * from './health-check';
export * from './smartstack-service';
export * from './haproxy-sidecar';
export * from './validation-error';
