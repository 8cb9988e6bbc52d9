package ecsemu_test

import (
	"testing"

	"github.com/replicatord/replicatord/internal/ecsemu"
)

func TestDeprecateAndRestoreAnImage(t *testing.T) {
	r := newRig(t, func(c *ecsemu.Config) { c.NoCatalog = true })
	c := r.c
	c.ok("ModifyImageAttribute", "RegionId", "cn-hangzhou", "ImageId", demoAlinux, "Status", "Deprecated")
	if got := c.statusOf("cn-hangzhou", demoAlinux); got != "Deprecated" {
		t.Fatalf("status %q, want Deprecated", got)
	}
	// Hidden from the default listing, listed with Status=Deprecated.
	if m := c.ok("DescribeImages", "RegionId", "cn-hangzhou", "ImageId", demoAlinux); len(images(m)) != 0 {
		t.Fatal("a deprecated image is in the default listing")
	}
	if m := c.ok("DescribeImages", "RegionId", "cn-hangzhou", "ImageId", demoAlinux, "Status", "Deprecated"); len(images(m)) != 1 {
		t.Fatal("Status=Deprecated does not list it")
	}
	// Deprecated images cannot be copied or shared, but can be deleted.
	c.fails(400, "IncorrectImageStatus", "CopyImage", "RegionId", "cn-hangzhou", "ImageId", demoAlinux, "DestinationRegionId", "cn-beijing")
	c.fails(400, "IncorrectImageStatus", "ModifyImageSharePermission", "RegionId", "cn-hangzhou", "ImageId", demoAlinux, "AddAccount.1", "1234")
	// Restored, it copies again.
	c.ok("ModifyImageAttribute", "RegionId", "cn-hangzhou", "ImageId", demoAlinux, "Status", "Available")
	c.copyImage("cn-hangzhou", demoAlinux, "cn-beijing")
	// The fixture that starts Deprecated can be restored too, and deleted.
	const legacy = "m-bp1v5b3n1m9k7j5h3g1f"
	c.ok("ModifyImageAttribute", "RegionId", "cn-hangzhou", "ImageId", legacy, "Status", "Available")
	if got := c.statusOf("cn-hangzhou", legacy); got != "Available" {
		t.Fatalf("restored legacy image is %q", got)
	}
	c.ok("ModifyImageAttribute", "RegionId", "cn-hangzhou", "ImageId", legacy, "Status", "Deprecated")
	c.ok("DeleteImage", "RegionId", "cn-hangzhou", "ImageId", legacy)
	if got := c.statusOf("cn-hangzhou", legacy); got != "" {
		t.Fatalf("deleted deprecated image is %q", got)
	}
	c.fails(400, "InvalidParameter", "ModifyImageAttribute", "RegionId", "cn-hangzhou", "ImageId", demoAlinux, "Status", "Retired")
	c.fails(400, "IncorrectImageStatus", "ModifyImageAttribute", "RegionId", "cn-hangzhou", "ImageId", demoBuilding, "Status", "Deprecated")
}

func TestBootModeAndCommunityImages(t *testing.T) {
	r := newRig(t, func(c *ecsemu.Config) { c.NoCatalog = true })
	c := r.c
	if c.describe("cn-hangzhou", demoUbuntu)["BootMode"] != "BIOS" {
		t.Fatal("default BootMode is not BIOS")
	}
	c.ok("ModifyImageAttribute", "RegionId", "cn-hangzhou", "ImageId", demoUbuntu, "BootMode", "UEFI")
	if got := c.describe("cn-hangzhou", demoUbuntu)["BootMode"]; got != "UEFI" {
		t.Fatalf("BootMode %v after setting UEFI", got)
	}
	c.fails(400, "InvalidParameter", "ModifyImageAttribute", "RegionId", "cn-hangzhou", "ImageId", demoUbuntu, "BootMode", "Legacy")

	// IsPublic=true publishes a community image: listed with IsPublic,
	// not copyable, not shareable with accounts, not deletable until made
	// private again.
	c.ok("ModifyImageSharePermission", "RegionId", "cn-hangzhou", "ImageId", demoAlinux, "IsPublic", "true")
	if got := c.describe("cn-hangzhou", demoAlinux)["IsPublic"]; got != true {
		t.Fatalf("IsPublic %v", got)
	}
	if m := c.ok("DescribeImages", "RegionId", "cn-hangzhou", "IsPublic", "true"); len(images(m)) != 1 {
		t.Fatalf("IsPublic=true lists %d images", len(images(m)))
	}
	c.fails(400, "OperationDenied.CommunityImage", "CopyImage", "RegionId", "cn-hangzhou", "ImageId", demoAlinux, "DestinationRegionId", "cn-beijing")
	c.fails(400, "OperationDenied.CommunityImage", "ModifyImageSharePermission", "RegionId", "cn-hangzhou", "ImageId", demoAlinux, "AddAccount.1", "1234")
	c.fails(403, "ImageIsPublic", "DeleteImage", "RegionId", "cn-hangzhou", "ImageId", demoAlinux)
	c.ok("ModifyImageSharePermission", "RegionId", "cn-hangzhou", "ImageId", demoAlinux, "IsPublic", "false")
	c.copyImage("cn-hangzhou", demoAlinux, "cn-beijing")
	c.fails(400, "InvalidParameter", "ModifyImageSharePermission", "RegionId", "cn-hangzhou", "ImageId", demoAlinux, "IsPublic", "sometimes")
}
