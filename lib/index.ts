export * from './vds-node';
export * from './cloud-init/cloud-config';
export * from './zookeeper-ensemble';
