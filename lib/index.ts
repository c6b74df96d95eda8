export * from './vds-node';
export * from './cloud-init/cloud-config';
export * from './cloud-init/apply-time-secrets';
export * from './zookeeper-ensemble';
export * from './model/health-check';
export * from './smartstack-service';
export * from './haproxy-sidecar';
export * from './model/validation-error';
