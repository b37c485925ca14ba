import { StorageClass } from '@aws-sdk/client-s3';
import { S3_STORAGE_CLASSES } from '../../src/storage/drivers/s3-storage-settings';

// The settings list the storage classes themselves so that the S3 SDK is loaded only when an S3 location is used;
// this keeps the list equal to the SDK's, less the classes whose objects cannot be read without a restore request.
describe('S3 storage classes accepted in settings', () => {
  it("are the SDK's StorageClass values except GLACIER and DEEP_ARCHIVE", () => {
    const expected = Object.values(StorageClass).filter((c) => c !== 'GLACIER' && c !== 'DEEP_ARCHIVE');
    expect([...S3_STORAGE_CLASSES].sort()).toEqual([...expected].sort());
  });
});
