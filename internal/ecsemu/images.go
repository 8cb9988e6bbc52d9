package ecsemu

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ownerID is the account every emulated image belongs to.
const ownerID int64 = 1234567890123456

// disk is one snapshot of an image.
type disk struct {
	SnapshotID string
	SizeGiB    int64
	Device     string
	Type       string
}

// image is a custom image in one region. A copy's status comes from its
// task; any other image has a fixed status.
type image struct {
	ID              string
	Region          string
	Name            string
	Description     string
	Family          string
	ResourceGroupID string
	SizeGiB         int64
	CreationTime    time.Time
	Tags            map[string]string
	Disks           []disk
	Encrypted       bool
	KMSKeyID        string
	os              osInfo
	fixedStatus     string
	copy            *copyTask
	shared          map[string]time.Time // account id -> when shared
	meta            imageMeta
}

// imageMeta are the catalogue attributes of an image; the zero value is a
// custom image of the account (self), BIOS boot, usable by instances.
type imageMeta struct {
	// OwnerAlias is "" (self), "system", "others" or "marketplace".
	OwnerAlias string `json:"ownerAlias,omitempty" yaml:"ownerAlias"`
	// OwnerID is the owning account; 0 = the emulated account.
	OwnerID      int64  `json:"ownerId,omitempty" yaml:"ownerId"`
	BootMode     string `json:"bootMode,omitempty" yaml:"bootMode"` // "" = BIOS
	ProductCode  string `json:"productCode,omitempty" yaml:"productCode"`
	SupplierName string `json:"supplierName,omitempty" yaml:"supplierName"`
	ImageVersion string `json:"imageVersion,omitempty" yaml:"imageVersion"`
	// NoIoOptimized and NoCloudinit invert the support flags, which are
	// true for almost every image.
	NoIoOptimized bool `json:"noIoOptimized,omitempty" yaml:"noIoOptimized"`
	NoCloudinit   bool `json:"noCloudinit,omitempty" yaml:"noCloudinit"`
	// Public marks an image shared with everyone: system and marketplace
	// images, and community images (ModifyImageSharePermission IsPublic).
	Public bool `json:"public,omitempty" yaml:"public"`
	// Usage is "instance" when instances run the image, else "" (none).
	Usage        string `json:"usage,omitempty" yaml:"usage"`
	NonRootLogin bool   `json:"nonRootLogin,omitempty" yaml:"nonRootLogin"`
	// Deprecated is set by ModifyImageAttribute Status=Deprecated: an
	// Available image then shows Deprecated.
	Deprecated bool `json:"deprecated,omitempty" yaml:"deprecated"`
}

func (m imageMeta) validate() error {
	switch m.OwnerAlias {
	case "", "system", "others", "marketplace":
	default:
		return fmt.Errorf("ownerAlias %q is not system, others or marketplace", m.OwnerAlias)
	}
	switch m.Usage {
	case "", "none", "instance":
	default:
		return fmt.Errorf("usage %q is not instance or none", m.Usage)
	}
	switch m.BootMode {
	case "", "BIOS", "UEFI", "UEFI-Preferred":
	default:
		return fmt.Errorf("bootMode %q is not BIOS, UEFI or UEFI-Preferred", m.BootMode)
	}
	if m.OwnerAlias == "marketplace" && m.ProductCode == "" {
		return fmt.Errorf("a marketplace image needs a productCode")
	}
	return nil
}

// alias is the ImageOwnerAlias of the image.
func (m imageMeta) alias() string {
	if m.OwnerAlias == "" {
		return "self"
	}
	return m.OwnerAlias
}

// own reports an image of the account, which it may copy, share, modify
// and delete.
func (m imageMeta) own() bool { return m.OwnerAlias == "" }

// status is the ECS status of the image at now.
func (im *image) status(now time.Time) string {
	s := im.fixedStatus
	if im.copy != nil {
		s = im.copy.status(now)
	}
	if s == "Available" && im.meta.Deprecated {
		return "Deprecated"
	}
	return s
}

// inFlight reports a copy still Waiting or Creating.
func (im *image) inFlight(now time.Time) bool {
	s := im.status(now)
	return s == "Waiting" || s == "Creating"
}

// osInfo are the OS fields of DescribeImages, guessed from the name.
type osInfo struct {
	Name, NameEn, Type, Platform, Arch string
}

func guessOS(name string) osInfo {
	n := strings.ToLower(name)
	switch {
	case strings.Contains(n, "windows"):
		return osInfo{"Windows Server 2022 数据中心版 64位中文版", "Windows Server 2022 Datacenter 64-bit", "windows", "Windows Server 2022", "x86_64"}
	case strings.Contains(n, "ubuntu-24"):
		return osInfo{"Ubuntu 24.04 64位", "Ubuntu 24.04 64 bit", "linux", "Ubuntu", "x86_64"}
	case strings.Contains(n, "ubuntu"):
		return osInfo{"Ubuntu 22.04 64位", "Ubuntu 22.04 64 bit", "linux", "Ubuntu", "x86_64"}
	case strings.Contains(n, "rocky"):
		return osInfo{"Rocky Linux 9.4 64位", "Rocky Linux 9.4 64 bit", "linux", "Rocky Linux", "x86_64"}
	case strings.Contains(n, "centos"):
		return osInfo{"CentOS 7.9 64位", "CentOS 7.9 64 bit", "linux", "CentOS", "x86_64"}
	default:
		return osInfo{"Alibaba Cloud Linux 3.2104 LTS 64位", "Alibaba Cloud Linux 3.2104 LTS 64 bit", "linux", "Aliyun", "x86_64"}
	}
}

// JSON shapes, spelled as the SDK structs expect (case-sensitive).
type (
	imageJSON struct {
		ImageId                 string
		ImageName               string
		ImageFamily             string
		ImageVersion            string
		Description             string
		Status                  string
		Progress                string
		Size                    int64
		CreationTime            string
		ImageOwnerAlias         string
		ImageOwnerId            int64
		IsCopied                bool
		IsSelfShared            string
		IsPublic                bool
		IsSubscribed            bool
		IsSupportIoOptimized    bool
		IsSupportCloudinit      bool
		LoginAsNonRootSupported bool
		OSName                  string
		OSNameEn                string
		OSType                  string
		Platform                string
		Architecture            string
		BootMode                string
		Usage                   string
		ProductCode             string
		ResourceGroupId         string
		SupplierName            string
		Tags                    tagsJSON
		DiskDeviceMappings      diskMappingsJSON
		Features                featuresJSON
		DetectionOptions        detectionJSON
	}
	featuresJSON struct {
		NvmeSupport string
	}
	detectionJSON struct {
		Status string
		Items  struct {
			Item []struct{ Name, Value, RiskLevel, RiskCode string }
		}
	}
	tagsJSON struct {
		Tag []tagJSON
	}
	tagJSON struct {
		TagKey   string
		TagValue string
	}
	diskMappingsJSON struct {
		DiskDeviceMapping []diskJSON
	}
	diskJSON struct {
		SnapshotId      string
		Size            string
		Device          string
		Type            string
		Format          string
		ImportOSSBucket string
		ImportOSSObject string
		Progress        string
		RemainTime      int64
		DiskImageSize   int64
		Encrypted       bool
	}
)

// render is the DescribeImages view of the image at now.
func (im *image) render(now time.Time) imageJSON {
	status := im.status(now)
	pct, remain := 100, time.Duration(0)
	switch {
	case im.copy != nil:
		pct, remain = im.copy.progress(now)
	case status == "Creating" || status == "Waiting" || status == "CreateFailed":
		pct = 0
	}
	progress := strconv.Itoa(pct) + "%"
	remainSec := int64((remain + time.Second - 1) / time.Second)
	j := imageJSON{
		ImageId:                 im.ID,
		ImageName:               im.Name,
		ImageFamily:             im.Family,
		Description:             im.Description,
		Status:                  status,
		Progress:                progress,
		Size:                    im.SizeGiB,
		CreationTime:            im.CreationTime.UTC().Format(timestampForm),
		ImageOwnerAlias:         im.meta.alias(),
		ImageOwnerId:            im.ownerID(),
		IsCopied:                im.copy != nil,
		IsSelfShared:            strconv.FormatBool(len(im.shared) > 0),
		IsPublic:                im.meta.Public,
		IsSupportIoOptimized:    !im.meta.NoIoOptimized,
		IsSupportCloudinit:      !im.meta.NoCloudinit,
		LoginAsNonRootSupported: im.meta.NonRootLogin,
		ImageVersion:            im.meta.ImageVersion,
		ProductCode:             im.meta.ProductCode,
		SupplierName:            im.meta.SupplierName,
		IsSubscribed:            false,
		OSName:                  im.os.Name,
		OSNameEn:                im.os.NameEn,
		OSType:                  im.os.Type,
		Platform:                im.os.Platform,
		Architecture:            im.os.Arch,
		BootMode:                im.bootMode(),
		Usage:                   im.usage(),
		ResourceGroupId:         im.ResourceGroupID,
		Tags:                    tagsJSON{Tag: sortedTags(im.Tags)},
		DiskDeviceMappings:      diskMappingsJSON{DiskDeviceMapping: []diskJSON{}},
		Features:                featuresJSON{NvmeSupport: im.nvme()},
	}
	// Image check (DetectionOptions) has not run on any emulated image.
	j.DetectionOptions.Status = "Unchecked"
	j.DetectionOptions.Items.Item = []struct{ Name, Value, RiskLevel, RiskCode string }{}
	for _, d := range im.Disks {
		j.DiskDeviceMappings.DiskDeviceMapping = append(j.DiskDeviceMappings.DiskDeviceMapping, diskJSON{
			SnapshotId:    d.SnapshotID,
			Size:          strconv.FormatInt(d.SizeGiB, 10),
			Device:        d.Device,
			Type:          d.Type,
			Format:        "",
			Progress:      progress,
			RemainTime:    remainSec,
			DiskImageSize: d.SizeGiB,
			Encrypted:     im.Encrypted,
		})
	}
	return j
}

func (im *image) ownerID() int64 {
	switch {
	case im.meta.OwnerID != 0:
		return im.meta.OwnerID
	case im.meta.OwnerAlias == "marketplace":
		return 0
	}
	return ownerID
}

func (im *image) bootMode() string {
	if im.meta.BootMode == "" {
		return "BIOS"
	}
	return im.meta.BootMode
}

func (im *image) usage() string {
	if im.meta.Usage == "" {
		return "none"
	}
	return im.meta.Usage
}

// nvme is "supported" for the UEFI images of the catalogue (the newer
// builds), "unsupported" otherwise.
func (im *image) nvme() string {
	if im.meta.BootMode == "UEFI" || im.meta.BootMode == "UEFI-Preferred" {
		return "supported"
	}
	return "unsupported"
}

func sortedTags(tags map[string]string) []tagJSON {
	out := make([]tagJSON, 0, len(tags))
	for k, v := range tags {
		out = append(out, tagJSON{TagKey: k, TagValue: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].TagKey < out[j].TagKey })
	return out
}

// snapshotGiB is the snapshot storage the image holds: nothing for a copy
// that failed (its snapshots never completed), else the size of its disks.
func (im *image) snapshotGiB(now time.Time) int64 {
	if im.copy != nil && im.status(now) == "CreateFailed" {
		return 0
	}
	var n int64
	for _, d := range im.Disks {
		n += d.SizeGiB
	}
	return n
}
