// Package aliyun implements cloud.Provider on the Alibaba Cloud ECS API
// through the official Go SDK (github.com/aliyun/alibaba-cloud-sdk-go). It
// is the only package of replicatord that imports the SDK.
//
// The SDK (v1.63) has four traits this package is built around:
//
//   - An SDK client is not safe for concurrent use (its timeout and
//     transport set-up race). The Provider keeps a pool of
//     Config.MaxConcurrency clients and runs one call per client at a time;
//     they share one http.Transport, wrapped so the SDK never rewrites it.
//   - Timeouts are "sticky": a client's next call inherits the previous
//     call's per-API timeout. Every client and every request gets explicit
//     connect and read timeouts; a request's read timeout is also cut to the
//     time left before the caller's context deadline.
//   - The SDK has no context. Each call runs in its own goroutine; the
//     caller's context cancels the HTTP exchange (the transport wrapper puts
//     it on the request) and the caller returns ctx.Err() at once.
//   - AutoRetry stays off: retrying, backing off and throttling are the
//     scheduler's job, driven by the Class of each error.
//
// Every failure of an API call is a *cloud.Error carrying ECS's code,
// message and RequestId with a Class from Classify, which knows every code
// in the ECS reference. Failures that never reached ECS get the adapter's own
// codes (CodeTimeout, CodeTransport, CodeInvalidResponse, CodeCredentials).
// Invalid arguments are rejected before any call with errdefs.Invalid.
// Messages never carry the access key secret or the STS token: URLs are
// dropped from transport errors, signature dumps are cut, and every secret the
// credential source produced is scrubbed from what remains.
//
// Messages also show access key ids as their last four characters, and
// drop the query of any URL they quote (the SDK's STS providers quote the
// whole signed AssumeRole URL, which could be replayed).
//
// Credentials come from the SDK's own providers: static keys from Config,
// an AssumeRole (RamRoleArn or OIDC/RRSA), or, when they are zero, the SDK's
// default chain (environment, OIDC, CLI profile in every mode the SDK reads,
// credentials file, ECS RAM role, credentials URI). After a failure the
// chain is built afresh: the SDK's would only ask its last provider again,
// so a daemon retrying at start would never find a profile or metadata
// service that appeared later. The SDK's providers renew temporary keys at
// the first call with 180 s or less left; github.com/aliyun/credentials-go
// was considered and not taken: it renews the same way, hard-codes the same
// metadata host and adds only interactive modes (CloudSSO, OAuth, External).
// New does not resolve the credentials (a metadata service or STS may be
// down at start and answer later); CheckCredentials does, and every call
// does, failing with CodeCredentials (retryable).
//
// Every request names its endpoint and scheme itself (Config.Endpoints for
// its region, else Config.Endpoint, else ECS's documented
// ecs.<region>.aliyuncs.com or, with NetworkVPC, ecs-vpc.<region>.aliyuncs.com),
// so the SDK's endpoint tables and location service never pick where a
// signed request goes. A host without a scheme is HTTPS; plain HTTP needs an
// http:// URL and Insecure. The SDK's DEBUG=sdk output (every request, with
// the AccessKeyId) is read at package init: StripSDKDebug is for a program
// that starts itself again without it.
//
// CopyImage sends ClientToken and DryRun, which this SDK's request struct
// predates, as extra query parameters; they are signed like every other.
package aliyun
