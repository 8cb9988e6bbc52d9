// Package cloud is the engine's view of the image API of a cloud: the
// Provider interface and the error taxonomy of its failures. The only
// implementation, internal/cloud/aliyun, speaks the ECS API through the
// Alibaba Cloud SDK; in simulated mode it talks to the in-process emulator
// over real HTTP, so the engine never knows the difference.
package cloud

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/replicatord/replicatord/internal/errdefs"
)

// Image statuses as ECS spells them.
const (
	StatusWaiting      = "Waiting"
	StatusCreating     = "Creating"
	StatusAvailable    = "Available"
	StatusCreateFailed = "CreateFailed"
	StatusUnAvailable  = "UnAvailable"
	StatusDeprecated   = "Deprecated"
)

// AllStatuses is the Status filter that shows copies in every state.
var AllStatuses = []string{StatusWaiting, StatusCreating, StatusAvailable, StatusCreateFailed, StatusUnAvailable}

// ECS actions, as ECS spells them. The names key the scheduler's token
// buckets (one per action, internal/ratelimit), label the metrics and name
// the action of a cloud Error, so every package uses these constants.
const (
	ActionCopyImage                  = "CopyImage"
	ActionDescribeImages             = "DescribeImages"
	ActionCancelCopyImage            = "CancelCopyImage"
	ActionDeleteImage                = "DeleteImage"
	ActionDescribeRegions            = "DescribeRegions"
	ActionTagResources               = "TagResources"
	ActionModifyImageAttribute       = "ModifyImageAttribute"
	ActionModifyImageSharePermission = "ModifyImageSharePermission"
)

// MaxIDsPerDescribe is how many image ids one DescribeImages call takes.
const MaxIDsPerDescribe = 100

// Image is a custom image in one region.
type Image struct {
	ID              string
	Region          string
	Name            string
	Description     string
	Status          string
	ProgressPercent int32
	// RemainTime is ECS's estimate of the time left for a copy.
	RemainTime   time.Duration
	SizeGiB      int64
	IsCopied     bool
	CreationTime time.Time
	Family       string
	Tags         map[string]string
	SnapshotIDs  []string
}

// CopyRequest is one CopyImage call.
type CopyRequest struct {
	SourceRegion      string
	SourceImageID     string
	DestinationRegion string
	Name              string
	Description       string
	Encrypted         bool
	KMSKeyID          string
	ResourceGroupID   string
	Tags              map[string]string
	// ClientToken makes the call idempotent: the same token returns the
	// same copy.
	ClientToken string
	DryRun      bool
}

// ImageQuery selects images in one region for DescribeImages. The provider
// fetches every page.
type ImageQuery struct {
	Region string
	// At most MaxIDsPerDescribe ids.
	IDs []string
	// Statuses to include; ECS shows only Available ones when empty.
	Statuses []string
	// Name matches the image name as ECS does (fuzzy).
	Name string
	// Tags that must all be present.
	Tags map[string]string
	// OwnerAlias: self, system, others, marketplace; all but marketplace when empty.
	OwnerAlias string
}

// Region is a region the account can use.
type Region struct {
	ID        string
	LocalName string
	Status    string
}

// Provider is the image API of a cloud account. Implementations are safe
// for concurrent use and do not retry: the scheduler owns retries.
type Provider interface {
	CopyImage(ctx context.Context, req CopyRequest) (imageID string, err error)
	DescribeImages(ctx context.Context, q ImageQuery) ([]Image, error)
	CancelCopyImage(ctx context.Context, region, imageID string) error
	DeleteImage(ctx context.Context, region, imageID string) error
	DescribeRegions(ctx context.Context) ([]Region, error)
	TagImages(ctx context.Context, region string, imageIDs []string, tags map[string]string) error
	SetImageFamily(ctx context.Context, region, imageID, family string) error
	ShareImage(ctx context.Context, region, imageID string, accounts []string) error
	// UnshareImage stops sharing; ECS refuses to delete a shared image.
	UnshareImage(ctx context.Context, region, imageID string, accounts []string) error
}

// Class says what the engine should do about a failed call.
type Class int

const (
	// ClassPermanent: retrying the same call cannot help (bad parameter,
	// size, compliance, KMS, permission). The job fails with the code.
	ClassPermanent Class = iota
	// ClassRetryable: a transient failure (5xx, timeout, conflict); retry
	// the job with backoff.
	ClassRetryable
	// ClassThrottled: flow control; slow down the whole action.
	ClassThrottled
	// ClassQuota: a quota is full (images per region, concurrent copies);
	// wait and retry later without counting it as an attempt.
	ClassQuota
	// ClassNotFound: the resource does not exist.
	ClassNotFound
)

func (c Class) String() string {
	switch c {
	case ClassRetryable:
		return "retryable"
	case ClassThrottled:
		return "throttled"
	case ClassQuota:
		return "quota"
	case ClassNotFound:
		return "not-found"
	}
	return "permanent"
}

// Error is a failed cloud call, with the cloud's own code, message and
// request id kept for the user.
type Error struct {
	Action     string
	Region     string
	Code       string
	Message    string
	RequestID  string
	HTTPStatus int
	Class      Class
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%s in %s: %s", e.Action, e.Region, e.Code)
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.RequestID != "" {
		s += " (RequestId " + e.RequestID + ")"
	}
	return s
}

// Unwrap maps the class into the project's taxonomy.
func (e *Error) Unwrap() error {
	switch e.Class {
	case ClassRetryable:
		return errdefs.ErrUnavailable
	case ClassThrottled, ClassQuota:
		return errdefs.ErrResourceExhausted
	case ClassNotFound:
		return errdefs.ErrNotFound
	}
	return errdefs.ErrFailedPrecondition
}

// ClassOf returns the class of err: the Error's class, ClassRetryable for a
// deadline or an unclassified transport failure, ClassPermanent otherwise.
func ClassOf(err error) Class {
	var ce *Error
	if errors.As(err, &ce) {
		return ce.Class
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, errdefs.ErrUnavailable) {
		return ClassRetryable
	}
	return ClassPermanent
}

// CodeOf returns the cloud error code of err, or "".
func CodeOf(err error) string {
	var ce *Error
	if errors.As(err, &ce) {
		return ce.Code
	}
	return ""
}

// ECS error codes the engine acts on by name.
const (
	CodeImageCopyConflict  = "OperationDenied.ImageCopyConflict"
	CodeCancelNotSupported = "CancelNotSupported"
	CodeIncorrectStatus    = "IncorrectImageStatus"
	CodeNotFromCopy        = "ImageCreatedNotFromCopy"
)
