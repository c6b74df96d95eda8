// The fleet harness: real Debian hosts as systemd containers on this machine, for tests and rehearsals.
// Internal: not exported from the package's lib/index.ts.
export type { CommandResult } from './bounded-command';
export type { DebianImage, DebianImageOptions } from './debian-image';
export { DEFAULT_IMAGE_CACHE, ensureDebianImage, FLEET_IMAGE_PACKAGES } from './debian-image';
export type { FleetOptions, FleetTimings } from './fleet';
export { Fleet, fleetPrerequisites } from './fleet';
export type { FleetDisk, FleetDiskSpec, FleetHostSpec } from './fleet-host';
export { FleetHost } from './fleet-host';
export type { VmDisk, VmDiskSpec, VmHostSpec, VmKernel } from './vm-host';
export { imageKernel, nvmeDiskPath, VmHost } from './vm-host';
export { assertFleetAddress, FLEET_RANGE, FleetNetwork } from './fleet-network';
export { cleanupEarlierRuns, DEFAULT_STATE_DIR } from './fleet-state';
export type { TerraformCommandResult, TerraformPlanResult, TerraformWorkspaceOptions } from './terraform-apply';
export { mapNullResourceToTerraformData, resourceSeconds, TerraformWorkspace } from './terraform-apply';
export type { ChangeOptions, ChangeReport, DisruptionOptions, LoadOptions, LoadReport, RehearsalOptions, RehearsalStatus, ServiceChangeReport } from './rehearsal';
export { Rehearsal } from './rehearsal';
export type { FailedStep } from './apply-diagnosis';
export { diagnoseApply, failedSteps } from './apply-diagnosis';
export type { StackHost } from './stack-address-map';
export { fleetHostNumbers, mapStackOntoFleet, stackHosts, unmappedAddresses } from './stack-address-map';
