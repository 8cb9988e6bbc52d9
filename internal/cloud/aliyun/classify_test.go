package aliyun

import (
	"testing"

	"github.com/replicatord/replicatord/internal/cloud"
)

// TestClassifyReferenceCodes lists every error code of the ECS reference
// (docs/ecs-api.md), table by table, with the HTTP status
// the reference gives it and the class the engine needs. The expectations
// are written out here, not derived from the table in classify.go, so a
// change to either shows up.
func TestClassifyReferenceCodes(t *testing.T) {
	const (
		perm  = cloud.ClassPermanent
		retry = cloud.ClassRetryable
		thr   = cloud.ClassThrottled
		quota = cloud.ClassQuota
		nf    = cloud.ClassNotFound
	)
	cases := []struct {
		table  string
		status int
		code   string
		want   cloud.Class
	}{
		// §1 common error codes.
		{"common", 400, "IdempotentParameterMismatch", perm},
		{"common", 400, "IllegalTimestamp", perm},
		{"common", 400, "IncompleteSignature", perm},
		{"common", 400, "InvalidAccessKeyId.NotFound", perm},
		{"common", 404, "InvalidAccessKeyId.NotFound", perm}, // KMS docs say 404: still a credentials problem
		{"common", 400, "InvalidParameter", perm},
		{"common", 400, "InvalidParamater", perm},
		{"common", 400, "MissingParameter", perm},
		{"common", 400, "SignatureNonceUsed", retry},
		{"common", 400, "Throttling", thr},
		{"common", 400, "UnsupportedParameter", perm},
		{"common", 400, "UnknownError", retry},
		{"common", 403, "Forbidden.AccessKeyDisabled", perm},
		{"common", 403, "Forbidden.RAM", perm},
		{"common", 403, "Forbidden.RiskControl", perm},
		{"common", 403, "Forbidden.SubUser", perm},
		{"common", 403, "Forbidden.Unauthorized", perm},
		{"common", 403, "InvalidAction", perm},
		{"common", 403, "InvalidIdempotenceParameter.Mismatch", perm},
		{"common", 403, "LastTokenProcessing", retry},
		{"common", 403, "UnsupportedHTTPMethod", perm},
		{"common", 403, "RealNameAuthenticationError", perm},
		{"common", 404, "InvalidImageId.NotFound", nf},
		{"common", 404, "InvalidRegionId.NotFound", perm},
		{"common", 404, "InvalidSnapshotId.NotFound", nf},
		{"common", 409, "OperationConflict", retry},
		{"common", 500, "InternalError", retry},
		{"common", 503, "ServiceUnavailable", retry},
		{"common", 503, "ServiceUnavailable.RegionMaintaining", retry},
		{"common", 400, "SignatureDoesNotMatch", perm},
		{"common", 400, "Throttling.User", thr},
		{"common", 400, "Throttling.Api", thr},
		{"common", 400, "InvalidTimeStamp.Expired", perm},
		{"common", 400, "Rejected.Throttling", thr},

		// §2 CopyImage.
		{"CopyImage", 400, "InvalidDescription.Malformed", perm},
		{"CopyImage", 400, "SourceRegion.NotFound", perm},
		{"CopyImage", 400, "DestinationRegion.NotFound", perm},
		{"CopyImage", 400, "IncorrectImageStatus", perm},
		{"CopyImage", 400, "InvalidSnapshotId.NotFound", nf},
		{"CopyImage", 400, "InvalidImageName.Duplicated", perm},
		{"CopyImage", 400, "InvalidImageName.Malformed", perm},
		{"CopyImage", 400, "InvalidParameter.EncryptedIllegal", perm},
		{"CopyImage", 400, "InvalidEncrypted.NotMatchKmsKeyId", perm},
		{"CopyImage", 400, "InvalidEncrypted.NotMatchEncryptAlgorithm", perm},
		{"CopyImage", 400, "InvalidEncryptAlgorithm", perm},
		{"CopyImage", 400, "InvalidParameter.KmsNotEnabled", perm},
		{"CopyImage", 400, "OperationDenied.CommunityImage", perm},
		{"CopyImage", 400, "OperationDenied.ImageCopyConflict", quota},
		{"CopyImage", 400, "Account.Arrearage", perm},
		{"CopyImage", 401, "InvalidAliUid.IsNull", perm},
		{"CopyImage", 403, "Forbbiden", perm},
		{"CopyImage", 403, "QuotaExceed.Image", quota},
		{"CopyImage", 403, "QuotaExceed.Snapshot", quota},
		{"CopyImage", 403, "OperationDenied.ImageCopying", quota},
		{"CopyImage", 403, "RegionNotSupportCopy", perm},
		{"CopyImage", 403, "InvalidSnapshot.TooOld", perm},
		{"CopyImage", 403, "OperationDenied", perm},
		{"CopyImage", 403, "IncorrectDestinationRegion", perm},
		{"CopyImage", 403, "OperationDeined.EncryptedSnapshot", perm},
		{"CopyImage", 403, "OperationDenied.EncryptSnapshotAcrossRegion", perm},
		{"CopyImage", 403, "OperationDenied.SameRegionOnly", perm},
		{"CopyImage", 403, "OperationDenied.NotPublished", perm},
		{"CopyImage", 403, "OperationDenied.NotAuthorized", perm},
		{"CopyImage", 403, "InvalidParameter.KMSKeyId.KMSUnauthorized", perm},
		{"CopyImage", 403, "InvalidParameter.KMSKeyId.CMKNotEnabled", perm},
		{"CopyImage", 403, "InvalidParameter.KMSKeyId.CMKUnauthorized", perm},
		{"CopyImage", 403, "OperationDenied.KmsServiceUnauthorized", perm},
		{"CopyImage", 403, "InvalidParameter.DataEncryptedKeyCreateFailed", perm},
		{"CopyImage", 403, "InvalidRegion.NotSupport", perm},
		{"CopyImage", 403, "UserNotInTheWhiteList", perm},
		{"CopyImage", 403, "InvalidRegionId.NotSupportEncryptAlgorithm", perm},
		{"CopyImage", 403, "InvalidEncrypted.NotMatchDiskDefaultEncryption", perm},
		{"CopyImage", 403, "OperationDenied.NonCompliantDestinationRegion", perm},
		{"CopyImage", 403, "SizeExceed.Image", perm},
		{"CopyImage", 403, "InvalidOperation.VhdImageUnsupported", perm},
		{"CopyImage", 403, "InvalidOperation.CloudBoxImageCopyUnsupported", perm},
		{"CopyImage", 404, "InvalidImageId.NotFound", nf},
		{"CopyImage", 400, "InvalidImageId.NotFound", nf}, // older docs
		{"CopyImage", 404, "InvalidParameter.KMSKeyId.NotFound", perm},
		{"CopyImage", 404, "InvalidResourceGroup.NotFound", perm},
		{"CopyImage", 409, "InvalidOperation.Conflict", retry},
		{"CopyImage", 500, "InternalError", retry},
		{"CopyImage", 400, "DryRunOperation", perm},

		// §3 CancelCopyImage.
		{"CancelCopyImage", 400, "ImageCreatedNotFromCopy", perm},
		{"CancelCopyImage", 400, "IncorrectImageStatus", perm},
		{"CancelCopyImage", 400, "CancelNotSupported", perm},
		{"CancelCopyImage", 400, "InvalidDescription.Malformed", perm},
		{"CancelCopyImage", 404, "InvalidRegionId.NotFound", perm},
		{"CancelCopyImage", 404, "InvalidImageId.NotFound", nf},
		{"CancelCopyImage", 500, "InternalError", retry},
		{"CancelCopyImage", 400, "MissingParameter", perm},

		// §4 DescribeImages.
		{"DescribeImages", 400, "InvalidImageOwnerAlias.ValueNotSupported", perm},
		{"DescribeImages", 400, "InvalidParamter", perm},
		{"DescribeImages", 400, "InvalidTag.Mismatch", perm},
		{"DescribeImages", 400, "InvalidTagCount", perm},
		{"DescribeImages", 400, "InvalidInstanceType.ValueNotSupported", perm},
		{"DescribeImages", 400, "InvalidFilterValue.NetworkType", perm},
		{"DescribeImages", 400, "InvalidOperation.ImageOwnerIdUnsupported", perm},
		{"DescribeImages", 400, "InvalidImageOwnerAlias.PublicImageUnsupported", perm},
		{"DescribeImages", 403, "CurrentAccount.NotSupportPublicImage", perm},
		{"DescribeImages", 404, "InvalidFilterKey.NotFound", perm},
		{"DescribeImages", 404, "InvalidFilterValue", perm},
		{"DescribeImages", 404, "InvalidUsage", perm},
		{"DescribeImages", 404, "InvalidOSType", perm},
		{"DescribeImages", 404, "InvalidArchitecture", perm},
		{"DescribeImages", 500, "InternalError", retry},

		// §4 DeleteImage.
		{"DeleteImage", 403, "ImageUsingByInstance", perm},
		{"DeleteImage", 403, "ImageUseShared", perm},
		{"DeleteImage", 403, "OperationDenied.ImageCopying", quota},
		{"DeleteImage", 403, "ImageIsImporting", quota},
		{"DeleteImage", 403, "ImageIsExporting", quota},
		{"DeleteImage", 403, "ImageIsPublic", perm},
		{"DeleteImage", 404, "InvalidImageId.NotFound", nf},

		// Other image APIs, as the emulator answers them.
		{"TagResources", 404, "InvalidResourceId.NotFound", nf},
		{"ModifyImageSharePermission", 403, "QuotaExceed.ShareImageUser", perm},

		// The adapter's own codes and the SDK's.
		{"adapter", 0, CodeTimeout, retry},
		{"adapter", 0, CodeTransport, retry},
		{"adapter", 200, CodeInvalidResponse, retry},
		{"adapter", 0, CodeCredentials, retry},
		{"adapter", 0, "SDK.JsonUnmarshalError", retry},
		{"adapter", 400, "SDK.ClientError", perm},
	}
	for _, c := range cases {
		if got := Classify(c.code, c.status); got != c.want {
			t.Errorf("%s: Classify(%q, %d) = %v, want %v", c.table, c.code, c.status, got, c.want)
		}
	}

	// Every code the classification table knows must be in this test, so
	// that nothing is classified without a written expectation.
	tested := map[string]bool{}
	for _, c := range cases {
		tested[c.code] = true
	}
	for code := range classes {
		if !tested[code] && code != "SDK.ServerUnreachable" {
			t.Errorf("code %q is in the classification table but not in this test", code)
		}
	}
}

// TestClassifyUnknownCodes covers the fallback rules for codes ECS may add.
func TestClassifyUnknownCodes(t *testing.T) {
	cases := []struct {
		code   string
		status int
		want   cloud.Class
	}{
		{"Some.NewThing", 500, cloud.ClassRetryable},
		{"Some.NewThing", 502, cloud.ClassRetryable},
		{"Some.NewThing", 503, cloud.ClassRetryable},
		{"Some.NewThing", 400, cloud.ClassPermanent},
		{"Some.NewThing", 403, cloud.ClassPermanent},
		{"Some.NewThing", 404, cloud.ClassPermanent},
		{"Some.NewThing", 0, cloud.ClassPermanent},
		{"Throttling.Something", 400, cloud.ClassThrottled},
		{"Gateway.Throttling", 400, cloud.ClassThrottled},
		{"QuotaExceed.Family", 403, cloud.ClassQuota},
		{"ServiceUnavailable.Other", 400, cloud.ClassRetryable},
		{"InternalError.Dependency", 400, cloud.ClassRetryable},
		{"TooMany", 429, cloud.ClassThrottled},
		{"502", 502, cloud.ClassRetryable}, // a non-JSON 502 gets its status as code
		{"404", 404, cloud.ClassPermanent},
		{"", 504, cloud.ClassRetryable},
		// A known code wins over the status.
		{"InternalError", 400, cloud.ClassRetryable},
		{"IncorrectImageStatus", 500, cloud.ClassPermanent},
	}
	for _, c := range cases {
		if got := Classify(c.code, c.status); got != c.want {
			t.Errorf("Classify(%q, %d) = %v, want %v", c.code, c.status, got, c.want)
		}
	}
}
