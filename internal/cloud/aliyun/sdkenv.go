package aliyun

import "strings"

// SDKDebugVar is the environment variable the SDK reads for its debug
// output: with "sdk" among its comma-separated values, the SDK prints every
// request and response (the AccessKeyId and signature included) to stdout.
// The SDK reads it once, when its packages are initialised, so a program
// must remove it before it starts (see StripSDKDebug).
const SDKDebugVar = "DEBUG"

// sdkDebugFlag is the value of SDKDebugVar that the SDK's packages check
// (utils.Init("sdk") in sdk/client.go, sdk/auth, sdk/endpoints, sdk/errors).
const sdkDebugFlag = "sdk"

// StripSDKDebug returns environ ("KEY=value" entries, as os.Environ) with
// the "sdk" value removed from SDKDebugVar (the variable dropped if nothing
// else is left in it), and whether anything was removed. Other DEBUG values
// are kept: they are another program's.
func StripSDKDebug(environ []string) ([]string, bool) {
	out := make([]string, 0, len(environ))
	stripped := false
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k != SDKDebugVar {
			out = append(out, kv)
			continue
		}
		var keep []string
		for _, part := range strings.Split(v, ",") {
			if part == sdkDebugFlag {
				stripped = true
				continue
			}
			keep = append(keep, part)
		}
		if rest := strings.Join(keep, ","); rest != "" || !stripped {
			out = append(out, k+"="+rest)
		}
	}
	return out, stripped
}
