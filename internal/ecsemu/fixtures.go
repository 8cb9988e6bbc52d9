package ecsemu

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"

	"gopkg.in/yaml.v3"
)

//go:embed demo_images.yaml
var demoYAML []byte

// fixtureFile is the YAML layout of a fixture file: {images: [...]}.
type fixtureFile struct {
	Images []FixtureImage `yaml:"images"`
}

// DemoImages returns the embedded demo set: a dozen custom images of one
// account, mostly in cn-hangzhou.
func DemoImages() []FixtureImage {
	imgs, err := parseFixtures(demoYAML)
	if err != nil {
		// The demo file is part of the binary and covered by tests.
		panic("ecsemu: embedded demo_images.yaml is invalid: " + err.Error())
	}
	return imgs
}

// LoadFixtures reads a YAML fixture file (the layout of demo_images.yaml)
// and validates every image.
func LoadFixtures(path string) ([]FixtureImage, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("fixture file: %w", err)
	}
	imgs, err := parseFixtures(data)
	if err != nil {
		return nil, fmt.Errorf("fixture file %s: %w", path, err)
	}
	return imgs, nil
}

func parseFixtures(data []byte) ([]FixtureImage, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f fixtureFile
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty file; want a top-level images: list")
		}
		return nil, err
	}
	if err := validateFixtures(f.Images); err != nil {
		return nil, err
	}
	if f.Images == nil {
		f.Images = []FixtureImage{}
	}
	return f.Images, nil
}

var (
	imageIDRe   = regexp.MustCompile(`^m-[0-9a-z]{20}$`)
	fixtureStat = map[string]bool{"Available": true, "UnAvailable": true, "Creating": true, "Waiting": true, "CreateFailed": true, "Deprecated": true}
)

// validateFixtures checks every image and reports the first problem with
// its position.
func validateFixtures(imgs []FixtureImage) error {
	ids := map[string]bool{}
	names := map[string]bool{}
	for i, im := range imgs {
		where := fmt.Sprintf("image %d (%s)", i+1, im.ID)
		switch {
		case findRegion(im.Region) == nil:
			return fmt.Errorf("%s: unknown region %q", where, im.Region)
		case !imageIDRe.MatchString(im.ID):
			return fmt.Errorf("%s: id must be m- followed by 20 lowercase letters or digits", where)
		case ids[im.ID]:
			return fmt.Errorf("%s: duplicate id", where)
		case im.SizeGiB <= 0 || im.SizeGiB > 65536:
			return fmt.Errorf("%s: sizeGiB %d is not between 1 and 65536", where, im.SizeGiB)
		case !fixtureStat[im.Status]:
			return fmt.Errorf("%s: status %q is not one of Available, UnAvailable, Creating, Waiting, CreateFailed, Deprecated", where, im.Status)
		case im.CreationTime.IsZero():
			return fmt.Errorf("%s: creationTime is required", where)
		}
		if err := checkImageName(im.Name); err != nil {
			return fmt.Errorf("%s: name: %s", where, err.Message)
		}
		if len(im.Tags) > maxTagsPerResource {
			return fmt.Errorf("%s: more than %d tags", where, maxTagsPerResource)
		}
		for k, v := range im.Tags {
			if err := checkTag(k, v); err != nil {
				return fmt.Errorf("%s: tag %q: %s", where, k, err.Message)
			}
		}
		if names[im.Region+"/"+im.Name] {
			return fmt.Errorf("%s: name %q is already used in %s", where, im.Name, im.Region)
		}
		names[im.Region+"/"+im.Name] = true
		ids[im.ID] = true
	}
	return nil
}
