package ecsemu

// actionFunc runs one API action with Emulator.mu held. It returns the
// success body (with RequestId) or an ECS error.
type actionFunc func(e *Emulator, c *call) (any, *apiError)

// actions are the emulated API actions by name.
var actions map[string]actionFunc

func init() {
	actions = map[string]actionFunc{
		"CopyImage":                    copyImage,
		"CancelCopyImage":              cancelCopyImage,
		"DeleteImage":                  deleteImage,
		"DescribeImages":               describeImages,
		"DescribeRegions":              describeRegions,
		"TagResources":                 tagResources,
		"UntagResources":               untagResources,
		"ListTagResources":             listTagResources,
		"ModifyImageAttribute":         modifyImageAttribute,
		"ModifyImageSharePermission":   modifyImageSharePermission,
		"DescribeImageSharePermission": describeImageSharePermission,
	}
}

// Actions lists the emulated API actions.
func Actions() []string { return sortedKeys(actions) }

// requestIDBody is the answer of actions that return only a RequestId.
type requestIDBody struct {
	RequestId string
}

// imageIn returns the image with that id in that region, or nil.
func (e *Emulator) imageIn(regionID, id string) *image {
	if im := e.images[id]; im != nil && im.Region == regionID {
		return im
	}
	return nil
}

// nameTaken reports whether an image other than except uses name in a region.
func (e *Emulator) nameTaken(regionID, name string, except *image) bool {
	for _, im := range e.byRegion[regionID] {
		if im != except && im.Name == name {
			return true
		}
	}
	return false
}

// countIn returns how many images a region holds.
func (e *Emulator) countIn(regionID string) int {
	return len(e.byRegion[regionID])
}
