package aliyun

import (
	"strings"

	"github.com/replicatord/replicatord/internal/cloud"
)

// Codes the adapter gives to failures that never reached ECS or whose answer
// could not be read. ECS codes are passed through unchanged.
const (
	// CodeTimeout: no complete answer within the read timeout (the SDK's own
	// name for it).
	CodeTimeout = "SDK.TimeoutError"
	// CodeTransport: connection refused, reset, DNS or TLS failure.
	CodeTransport = "SDK.TransportError"
	// CodeInvalidResponse: an answer the adapter could not use: a 2xx that is
	// not the JSON of the action, a success without the id it promised, or an
	// error body the SDK could not parse.
	CodeInvalidResponse = "SDK.InvalidResponse"
	// CodeCredentials: the credential source failed to produce keys at call
	// time (an ECS RAM role or STS refresh failing, for instance).
	CodeCredentials = "SDK.CredentialsError"
	// CodeDryRunOperation is the error ECS returns when a DryRun would have
	// succeeded.
	CodeDryRunOperation = "DryRunOperation"
)

// classes lists every ECS error code in the reference
// (docs/ecs-api.md: common codes, CopyImage,
// CancelCopyImage, DescribeImages, DeleteImage) with what the engine must do
// about it. Codes not listed fall back to the rules in Classify.
//
// The judgement calls, so nobody has to re-derive them:
//   - OperationDenied.ImageCopyConflict ("the same image cannot be copied
//     concurrently, wait until the last copy is completed"),
//     OperationDenied.ImageCopying and ImageIsImporting/ImageIsExporting mean
//     "another operation on this image is running": waiting is the cure and
//     the wait can be long, so they are ClassQuota (wait without spending an
//     attempt) rather than ClassRetryable.
//   - Only image and snapshot ids are ClassNotFound: that class tells the
//     engine "the image is gone". A missing region, KMS key, resource group
//     or access key is a configuration error: ClassPermanent.
//   - SignatureNonceUsed and LastTokenProcessing clear up on a fresh request;
//     UnknownError is the server admitting it does not know: ClassRetryable.
//   - IncorrectImageStatus, InvalidImageName.Duplicated, CancelNotSupported
//     are permanent for the call; the engine reacts to them by code.
var classes = map[string]cloud.Class{
	// Common codes (ECS "Response results" table, plus the gateway ones).
	"IdempotentParameterMismatch":          cloud.ClassPermanent,
	"IllegalTimestamp":                     cloud.ClassPermanent,
	"IncompleteSignature":                  cloud.ClassPermanent,
	"InvalidAccessKeyId.NotFound":          cloud.ClassPermanent,
	"InvalidParameter":                     cloud.ClassPermanent,
	"InvalidParamater":                     cloud.ClassPermanent,
	"MissingParameter":                     cloud.ClassPermanent,
	"SignatureNonceUsed":                   cloud.ClassRetryable,
	"Throttling":                           cloud.ClassThrottled,
	"Throttling.User":                      cloud.ClassThrottled,
	"Throttling.Api":                       cloud.ClassThrottled,
	"Rejected.Throttling":                  cloud.ClassThrottled,
	"UnsupportedParameter":                 cloud.ClassPermanent,
	"UnknownError":                         cloud.ClassRetryable,
	"Forbidden.AccessKeyDisabled":          cloud.ClassPermanent,
	"Forbidden.RAM":                        cloud.ClassPermanent,
	"Forbidden.RiskControl":                cloud.ClassPermanent,
	"Forbidden.SubUser":                    cloud.ClassPermanent,
	"Forbidden.Unauthorized":               cloud.ClassPermanent,
	"InvalidAction":                        cloud.ClassPermanent,
	"InvalidIdempotenceParameter.Mismatch": cloud.ClassPermanent,
	"LastTokenProcessing":                  cloud.ClassRetryable,
	"UnsupportedHTTPMethod":                cloud.ClassPermanent,
	"RealNameAuthenticationError":          cloud.ClassPermanent,
	"InvalidImageId.NotFound":              cloud.ClassNotFound,
	"InvalidRegionId.NotFound":             cloud.ClassPermanent,
	"InvalidSnapshotId.NotFound":           cloud.ClassNotFound,
	"OperationConflict":                    cloud.ClassRetryable,
	"InternalError":                        cloud.ClassRetryable,
	"ServiceUnavailable":                   cloud.ClassRetryable,
	"ServiceUnavailable.RegionMaintaining": cloud.ClassRetryable,
	"SignatureDoesNotMatch":                cloud.ClassPermanent,
	"InvalidTimeStamp.Expired":             cloud.ClassPermanent,
	CodeDryRunOperation:                    cloud.ClassPermanent,

	// CopyImage.
	"InvalidDescription.Malformed":                   cloud.ClassPermanent,
	"SourceRegion.NotFound":                          cloud.ClassPermanent,
	"DestinationRegion.NotFound":                     cloud.ClassPermanent,
	"IncorrectImageStatus":                           cloud.ClassPermanent,
	"InvalidImageName.Duplicated":                    cloud.ClassPermanent,
	"InvalidImageName.Malformed":                     cloud.ClassPermanent,
	"InvalidParameter.EncryptedIllegal":              cloud.ClassPermanent,
	"InvalidEncrypted.NotMatchKmsKeyId":              cloud.ClassPermanent,
	"InvalidEncrypted.NotMatchEncryptAlgorithm":      cloud.ClassPermanent,
	"InvalidEncryptAlgorithm":                        cloud.ClassPermanent,
	"InvalidParameter.KmsNotEnabled":                 cloud.ClassPermanent,
	"OperationDenied.CommunityImage":                 cloud.ClassPermanent,
	"OperationDenied.ImageCopyConflict":              cloud.ClassQuota,
	"Account.Arrearage":                              cloud.ClassPermanent,
	"InvalidAliUid.IsNull":                           cloud.ClassPermanent,
	"Forbbiden":                                      cloud.ClassPermanent,
	"QuotaExceed.Image":                              cloud.ClassQuota,
	"QuotaExceed.Snapshot":                           cloud.ClassQuota,
	"OperationDenied.ImageCopying":                   cloud.ClassQuota,
	"RegionNotSupportCopy":                           cloud.ClassPermanent,
	"InvalidSnapshot.TooOld":                         cloud.ClassPermanent,
	"OperationDenied":                                cloud.ClassPermanent,
	"IncorrectDestinationRegion":                     cloud.ClassPermanent,
	"OperationDeined.EncryptedSnapshot":              cloud.ClassPermanent,
	"OperationDenied.EncryptSnapshotAcrossRegion":    cloud.ClassPermanent,
	"OperationDenied.SameRegionOnly":                 cloud.ClassPermanent,
	"OperationDenied.NotPublished":                   cloud.ClassPermanent,
	"OperationDenied.NotAuthorized":                  cloud.ClassPermanent,
	"InvalidParameter.KMSKeyId.KMSUnauthorized":      cloud.ClassPermanent,
	"InvalidParameter.KMSKeyId.CMKNotEnabled":        cloud.ClassPermanent,
	"InvalidParameter.KMSKeyId.CMKUnauthorized":      cloud.ClassPermanent,
	"OperationDenied.KmsServiceUnauthorized":         cloud.ClassPermanent,
	"InvalidParameter.DataEncryptedKeyCreateFailed":  cloud.ClassPermanent,
	"InvalidRegion.NotSupport":                       cloud.ClassPermanent,
	"UserNotInTheWhiteList":                          cloud.ClassPermanent,
	"InvalidRegionId.NotSupportEncryptAlgorithm":     cloud.ClassPermanent,
	"InvalidEncrypted.NotMatchDiskDefaultEncryption": cloud.ClassPermanent,
	"OperationDenied.NonCompliantDestinationRegion":  cloud.ClassPermanent,
	"SizeExceed.Image":                               cloud.ClassPermanent,
	"InvalidOperation.VhdImageUnsupported":           cloud.ClassPermanent,
	"InvalidOperation.CloudBoxImageCopyUnsupported":  cloud.ClassPermanent,
	"InvalidParameter.KMSKeyId.NotFound":             cloud.ClassPermanent,
	"InvalidResourceGroup.NotFound":                  cloud.ClassPermanent,
	"InvalidOperation.Conflict":                      cloud.ClassRetryable,
	"ImageCreatedNotFromCopy":                        cloud.ClassPermanent, // CancelCopyImage
	"CancelNotSupported":                             cloud.ClassPermanent, // CancelCopyImage
	"InvalidImageOwnerAlias.ValueNotSupported":       cloud.ClassPermanent, // DescribeImages from here
	"InvalidParamter":                                cloud.ClassPermanent,
	"InvalidTag.Mismatch":                            cloud.ClassPermanent,
	"InvalidTagCount":                                cloud.ClassPermanent,
	"InvalidInstanceType.ValueNotSupported":          cloud.ClassPermanent,
	"InvalidFilterValue.NetworkType":                 cloud.ClassPermanent,
	"InvalidOperation.ImageOwnerIdUnsupported":       cloud.ClassPermanent,
	"InvalidImageOwnerAlias.PublicImageUnsupported":  cloud.ClassPermanent,
	"CurrentAccount.NotSupportPublicImage":           cloud.ClassPermanent,
	"InvalidFilterKey.NotFound":                      cloud.ClassPermanent,
	"InvalidFilterValue":                             cloud.ClassPermanent,
	"InvalidUsage":                                   cloud.ClassPermanent,
	"InvalidOSType":                                  cloud.ClassPermanent,
	"InvalidArchitecture":                            cloud.ClassPermanent,
	"ImageUsingByInstance":                           cloud.ClassPermanent, // DeleteImage from here
	"ImageUseShared":                                 cloud.ClassPermanent,
	"ImageIsImporting":                               cloud.ClassQuota,
	"ImageIsExporting":                               cloud.ClassQuota,
	"ImageIsPublic":                                  cloud.ClassPermanent,

	// Other image APIs (TagResources, ModifyImageSharePermission).
	"InvalidResourceId.NotFound": cloud.ClassNotFound,
	// At most 50 accounts per image: waiting will not free a share.
	"QuotaExceed.ShareImageUser": cloud.ClassPermanent,

	// The adapter's own codes.
	CodeTimeout:         cloud.ClassRetryable,
	CodeTransport:       cloud.ClassRetryable,
	CodeInvalidResponse: cloud.ClassRetryable,
	CodeCredentials:     cloud.ClassRetryable,
	// The SDK's names for the same things.
	"SDK.JsonUnmarshalError": cloud.ClassRetryable,
	"SDK.ServerUnreachable":  cloud.ClassRetryable,
}

// Classify says what the engine should do about an ECS failure with this
// code and HTTP status. Known codes come from the table above; an unknown
// code is throttling if it says so, a full quota if it is a QuotaExceed.*,
// retryable if the status is 5xx (or it names an internal error or an
// unavailable service), throttled on 429, and permanent otherwise.
func Classify(code string, httpStatus int) cloud.Class {
	if c, ok := classes[code]; ok {
		return c
	}
	switch {
	case strings.HasPrefix(code, "Throttling"), strings.HasSuffix(code, ".Throttling"):
		return cloud.ClassThrottled
	case strings.HasPrefix(code, "QuotaExceed."):
		return cloud.ClassQuota
	case strings.HasPrefix(code, "ServiceUnavailable"), strings.HasPrefix(code, "InternalError"):
		return cloud.ClassRetryable
	case httpStatus == 429:
		return cloud.ClassThrottled
	case httpStatus >= 500:
		return cloud.ClassRetryable
	}
	return cloud.ClassPermanent
}
