export { VolumeService, ANONYMOUS_LABEL, labelsMatch, type Volume, type CreateVolumeRequest, type VolumeUsage } from './service';
export { LocalDriver } from './local';
