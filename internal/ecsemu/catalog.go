package ecsemu

import (
	"strings"
	"time"
)

// The catalogue: the images an account sees besides its own. Public
// (system) images exist in every region and are named, and identified, as
// ECS names them (ubuntu_22_04_x64_20G_alibase_20240130.vhd); images other
// accounts shared with this one (ImageOwnerAlias others) and marketplace
// images sit in a few regions. The catalogue is built from the tables below
// at start, is the same in every run, is read-only (nothing may copy,
// modify, tag or delete it) and is not part of the state file.

// Accounts of the catalogue.
const (
	systemOwnerID int64 = 1                // ECS shows system images with a fixed alias; the id is not documented
	sharingOwner  int64 = 1098765432109876 // the account that shared images with ours
)

// systemImage is one public image family member, present in every region.
type systemImage struct {
	name                   string // also the image id
	osName, osNameEn       string
	osType, platform, arch string
	bootMode, family       string
	sizeGiB                int64
	created                string // YYYYMMDD as in the name
	noCloudinit, nonRootOK bool
}

// systemImages follow the naming of ECS public images:
// <os>_<version>_<arch>_<size>G_[<variant>_]alibase_<date>.vhd.
var systemImages = []systemImage{
	{"aliyun_3_x64_20G_alibase_20240528.vhd", "Alibaba Cloud Linux 3.2104 LTS 64位", "Alibaba Cloud Linux 3.2104 LTS 64 bit", "linux", "Aliyun", "x86_64", "UEFI-Preferred", "acs:alibaba_cloud_linux_3_2104_lts_x64", 40, "20240528", false, true},
	{"aliyun_3_arm64_20G_alibase_20240528.vhd", "Alibaba Cloud Linux 3.2104 LTS 64位 ARM版", "Alibaba Cloud Linux 3.2104 LTS 64 bit ARM Edition", "linux", "Aliyun", "arm64", "UEFI", "acs:alibaba_cloud_linux_3_2104_lts_arm64", 40, "20240528", false, true},
	{"aliyun_3_x64_20G_uefi_alibase_20240528.vhd", "Alibaba Cloud Linux 3.2104 LTS 64位 UEFI版", "Alibaba Cloud Linux 3.2104 LTS 64 bit UEFI Edition", "linux", "Aliyun", "x86_64", "UEFI", "acs:alibaba_cloud_linux_3_2104_lts_x64_uefi", 40, "20240528", false, true},
	{"aliyun_2_1903_x64_20G_alibase_20240628.vhd", "Alibaba Cloud Linux 2.1903 LTS 64位", "Alibaba Cloud Linux 2.1903 LTS 64 bit", "linux", "Aliyun", "x86_64", "BIOS", "acs:alibaba_cloud_linux_2_1903_lts_x64", 40, "20240628", false, false},
	{"ubuntu_24_04_x64_20G_alibase_20240812.vhd", "Ubuntu  24.04 64位", "Ubuntu  24.04 64 bit", "linux", "Ubuntu", "x86_64", "UEFI-Preferred", "acs:ubuntu_24_04_x64", 20, "20240812", false, true},
	{"ubuntu_22_04_x64_20G_alibase_20240130.vhd", "Ubuntu  22.04 64位", "Ubuntu  22.04 64 bit", "linux", "Ubuntu", "x86_64", "UEFI-Preferred", "acs:ubuntu_22_04_x64", 20, "20240130", false, true},
	{"ubuntu_22_04_arm64_20G_alibase_20240130.vhd", "Ubuntu  22.04 64位 ARM版", "Ubuntu  22.04 64 bit ARM Edition", "linux", "Ubuntu", "arm64", "UEFI", "acs:ubuntu_22_04_arm64", 20, "20240130", false, true},
	{"ubuntu_20_04_x64_20G_alibase_20240508.vhd", "Ubuntu  20.04 64位", "Ubuntu  20.04 64 bit", "linux", "Ubuntu", "x86_64", "BIOS", "acs:ubuntu_20_04_x64", 20, "20240508", false, true},
	{"debian_12_6_x64_20G_alibase_20240711.vhd", "Debian  12.6 64位", "Debian  12.6 64 bit", "linux", "Debian", "x86_64", "UEFI-Preferred", "acs:debian_12_x64", 20, "20240711", false, true},
	{"debian_11_9_x64_20G_alibase_20240507.vhd", "Debian  11.9 64位", "Debian  11.9 64 bit", "linux", "Debian", "x86_64", "BIOS", "acs:debian_11_x64", 20, "20240507", false, true},
	{"centos_7_9_x64_20G_alibase_20240628.vhd", "CentOS  7.9 64位", "CentOS  7.9 64 bit", "linux", "CentOS", "x86_64", "BIOS", "acs:centos_7_9_x64", 20, "20240628", false, false},
	{"centos_stream_9_x64_20G_alibase_20240612.vhd", "CentOS Stream 9 64位", "CentOS Stream 9 64 bit", "linux", "CentOS Stream", "x86_64", "UEFI-Preferred", "acs:centos_stream_9_x64", 20, "20240612", false, true},
	{"rockylinux_9_4_x64_20G_alibase_20240709.vhd", "Rocky Linux 9.4 64位", "Rocky Linux 9.4 64 bit", "linux", "Rocky Linux", "x86_64", "UEFI-Preferred", "acs:rockylinux_9_x64", 20, "20240709", false, true},
	{"almalinux_9_4_x64_20G_alibase_20240704.vhd", "AlmaLinux 9.4 64位", "AlmaLinux 9.4 64 bit", "linux", "AlmaLinux", "x86_64", "UEFI-Preferred", "acs:almalinux_9_x64", 20, "20240704", false, true},
	{"anolisos_8_9_x64_20G_rhck_alibase_20240221.vhd", "Anolis OS 8.9 RHCK 64位", "Anolis OS 8.9 RHCK 64 bit", "linux", "Anolis", "x86_64", "UEFI-Preferred", "acs:anolis_8_9_rhck_x64", 20, "20240221", false, true},
	{"opensuse_15_5_x64_20G_alibase_20240205.vhd", "openSUSE  15.5 64位", "openSUSE  15.5 64 bit", "linux", "OpenSUSE", "x86_64", "BIOS", "acs:opensuse_15_x64", 20, "20240205", false, true},
	{"freebsd_14_0_x64_30G_alibase_20240110.vhd", "FreeBSD  14.0 64位", "FreeBSD  14.0 64 bit", "linux", "Freebsd", "x86_64", "BIOS", "acs:freebsd_14_x64", 30, "20240110", true, false},
	{"fedora_39_x64_20G_alibase_20231222.vhd", "Fedora  39 64位", "Fedora  39 64 bit", "linux", "Fedora", "x86_64", "UEFI-Preferred", "acs:fedora_39_x64", 20, "20231222", false, true},
	{"win2022_21H2_x64_dtc_zh-cn_40G_alibase_20240617.vhd", "Windows Server  2022 数据中心版 64位中文版", "Windows Server  2022 DataCenter Edition 64bit Chinese Edition", "windows", "Windows Server 2022", "x86_64", "BIOS", "acs:windows_server_2022_datacenter_zh-cn", 40, "20240617", true, false},
	{"win2022_21H2_x64_dtc_en-us_40G_alibase_20240617.vhd", "Windows Server  2022 数据中心版 64位英文版", "Windows Server  2022 DataCenter Edition 64bit English Edition", "windows", "Windows Server 2022", "x86_64", "BIOS", "acs:windows_server_2022_datacenter_en-us", 40, "20240617", true, false},
	{"win2019_1809_x64_dtc_zh-cn_40G_alibase_20240617.vhd", "Windows Server  2019 数据中心版 64位中文版", "Windows Server  2019 DataCenter Edition 64bit Chinese Edition", "windows", "Windows Server 2019", "x86_64", "BIOS", "acs:windows_server_2019_datacenter_zh-cn", 40, "20240617", true, false},
	{"win2016_1607_x64_dtc_en-us_40G_alibase_20240617.vhd", "Windows Server  2016 数据中心版 64位英文版", "Windows Server  2016 DataCenter Edition 64bit English Edition", "windows", "Windows Server 2016", "x86_64", "BIOS", "acs:windows_server_2016_datacenter_en-us", 40, "20240617", true, false},
}

// extraImage is a shared or marketplace image in one region.
type extraImage struct {
	region, id, name string
	alias            string // others or marketplace
	os               osInfo
	sizeGiB          int64
	created          time.Time
	productCode      string
	supplier         string
	description      string
}

var (
	ubuntuOS  = osInfo{"Ubuntu  22.04 64位", "Ubuntu  22.04 64 bit", "linux", "Ubuntu", "x86_64"}
	alinuxOS  = osInfo{"Alibaba Cloud Linux 3.2104 LTS 64位", "Alibaba Cloud Linux 3.2104 LTS 64 bit", "linux", "Aliyun", "x86_64"}
	centosOS  = osInfo{"CentOS  7.9 64位", "CentOS  7.9 64 bit", "linux", "CentOS", "x86_64"}
	windowsOS = osInfo{"Windows Server  2022 数据中心版 64位中文版", "Windows Server  2022 DataCenter Edition 64bit Chinese Edition", "windows", "Windows Server 2022", "x86_64"}
)

var extraImages = []extraImage{
	// Shared with this account by a partner account.
	{"cn-hangzhou", "m-bp1s8h4r3d0i6m4g2e1s", "partner-hardened-ubuntu-22.04-20261020", "others", ubuntuOS, 40, time.Date(2026, 10, 20, 2, 0, 0, 0, time.UTC), "", "", "Hardened Ubuntu shared by the security team's account"},
	{"cn-hangzhou", "m-bp1s8h4r3d0i6m4g2e2t", "partner-build-agent-20261105", "others", alinuxOS, 60, time.Date(2026, 11, 5, 8, 30, 0, 0, time.UTC), "", "", "Build agent shared by the tools account"},
	{"cn-beijing", "m-2zes8h4r3d0i6m4g2e3u", "partner-hardened-ubuntu-22.04-20261020", "others", ubuntuOS, 40, time.Date(2026, 10, 20, 2, 5, 0, 0, time.UTC), "", "", "Hardened Ubuntu shared by the security team's account"},
	{"ap-southeast-1", "m-t4ns8h4r3d0i6m4g2e4v", "partner-hardened-ubuntu-22.04-20261020", "others", ubuntuOS, 40, time.Date(2026, 10, 20, 2, 10, 0, 0, time.UTC), "", "", "Hardened Ubuntu shared by the security team's account"},
	// Alibaba Cloud Marketplace images.
	{"cn-hangzhou", "m-bp1mk7p2l4c6e8t0a2b4", "LAMP-PHP8.2-Ubuntu22.04", "marketplace", ubuntuOS, 40, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), "cmjj00012345", "Example Web Stack Ltd.", "LAMP stack (Apache, MySQL, PHP 8.2) on Ubuntu 22.04"},
	{"cn-hangzhou", "m-bp1mk7p2l4c6e8t0a2b5", "BT-Panel-8.0-CentOS7.9", "marketplace", centosOS, 40, time.Date(2025, 12, 12, 0, 0, 0, 0, time.UTC), "cmjj00067890", "Example Panel Co.", "Server control panel on CentOS 7.9"},
	{"cn-shanghai", "m-uf6mk7p2l4c6e8t0a2b6", "LAMP-PHP8.2-Ubuntu22.04", "marketplace", ubuntuOS, 40, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), "cmjj00012345", "Example Web Stack Ltd.", "LAMP stack (Apache, MySQL, PHP 8.2) on Ubuntu 22.04"},
	{"ap-southeast-1", "m-t4nmk7p2l4c6e8t0a2b7", "SQLServer2019-Std-WinServer2022", "marketplace", windowsOS, 80, time.Date(2026, 6, 6, 0, 0, 0, 0, time.UTC), "cmjj00054321", "Example Database Inc.", "SQL Server 2019 Standard on Windows Server 2022"},
}

// buildCatalog returns the catalogue images by region.
func buildCatalog() map[string][]*image {
	cat := map[string][]*image{}
	for _, r := range regions {
		for i, s := range systemImages {
			created, err := time.Parse("20060102", s.created)
			if err != nil {
				panic("ecsemu: bad date in the system image table: " + s.name)
			}
			im := &image{
				ID: s.name, Region: r.ID, Name: s.name, Family: s.family, SizeGiB: s.sizeGiB,
				Description:  "",
				CreationTime: created.Add(time.Duration(i) * time.Minute),
				Tags:         map[string]string{},
				os:           osInfo{s.osName, s.osNameEn, s.osType, s.platform, s.arch},
				fixedStatus:  "Available",
				meta: imageMeta{OwnerAlias: "system", OwnerID: systemOwnerID, BootMode: s.bootMode, NoCloudinit: s.noCloudinit,
					NonRootLogin: s.nonRootOK, Public: true, Usage: "instance",
					ImageVersion: s.created, SupplierName: ""},
			}
			im.Disks = []disk{{SnapshotID: "", SizeGiB: s.sizeGiB, Device: "/dev/xvda", Type: "system"}}
			cat[r.ID] = append(cat[r.ID], im)
		}
	}
	for _, x := range extraImages {
		if findRegion(x.region) == nil {
			panic("ecsemu: catalogue image in unknown region " + x.region)
		}
		im := &image{
			ID: x.id, Region: x.region, Name: x.name, Description: x.description, SizeGiB: x.sizeGiB,
			CreationTime: x.created, Tags: map[string]string{}, os: x.os, fixedStatus: "Available",
			meta: imageMeta{OwnerAlias: x.alias, OwnerID: sharingOwner, ProductCode: x.productCode, SupplierName: x.supplier, Usage: "none"},
		}
		if x.alias == "marketplace" {
			im.meta.OwnerID = 0 // marketplace images show no owner account
			im.meta.Public = true
		}
		im.Disks = []disk{{SnapshotID: "s-" + strings.TrimPrefix(x.id, "m-"), SizeGiB: x.sizeGiB, Device: "/dev/xvda", Type: "system"}}
		cat[x.region] = append(cat[x.region], im)
	}
	return cat
}

// catalogImage returns the catalogue image with that id in a region, or nil.
func (e *Emulator) catalogImage(regionID, id string) *image {
	for _, im := range e.catalog[regionID] {
		if im.ID == id {
			return im
		}
	}
	return nil
}

// CatalogSize is how many catalogue images a region holds, for tools.
func CatalogSize(regionID string) (system, others, marketplace int) {
	for _, x := range extraImages {
		if x.region != regionID {
			continue
		}
		switch x.alias {
		case "others":
			others++
		case "marketplace":
			marketplace++
		}
	}
	if findRegion(regionID) != nil {
		system = len(systemImages)
	}
	return system, others, marketplace
}
