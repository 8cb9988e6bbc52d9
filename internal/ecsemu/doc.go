// Package ecsemu emulates the part of the Alibaba Cloud ECS RPC API
// (version 2014-05-26) that replicates custom images across regions:
// CopyImage, DescribeImages, CancelCopyImage, DeleteImage, DescribeRegions,
// image tagging, attributes and sharing; and of STS (2015-04-01):
// AssumeRole, AssumeRoleWithOIDC, GetCallerIdentity. It is built from the
// API reference pages (cmd/ecsemu/README.md lists, per behaviour, the page
// or the public client test it follows) and never imports the Alibaba SDK,
// so that the SDK-based adapter is checked against an independent reading of
// the protocol rather than against itself.
//
// # Design
//
// An Emulator is an http.Handler. Every request passes the same pipeline:
// parse (query and form body merged, "+" is a space, repeated keys refused),
// authenticate (signature v1.0, HMAC-SHA1 over every parameter except
// Signature; key secret+"&", the secret of a long-term key or of an STS
// session whose SecurityToken must come along and be unexpired; nonce
// replay and ±15 minute timestamp checks), route by Version (ECS or STS)
// and Action, throttle (token bucket per action and access key, with
// x-acs-retry-after), inject faults (seeded), then run the action under one
// mutex, and, with a state file, write the state before answering. Errors
// are a body with string RequestId, HostId (the Host called), Code, Message
// and Recommend and a non-2xx status taken from the reference; JSON, or XML
// when Format=XML.
//
// The images an account sees are its own (fixtures, copies; mutable,
// persisted) and the catalogue (public images in every region, images
// shared by another account, marketplace images; built at start from
// tables, read-only, never persisted). DescribeImages filters both.
//
// Copies are not driven by a ticker. Each destination region keeps a FIFO
// queue of copy tasks; when the queue changes (a copy is submitted or
// cancelled) the start and end time of every task is recomputed from the
// arrival times, the durations fixed at submit, and the CopySlotsPerRegion
// slots. A read then only compares the clock with those times, so status,
// Progress and RemainTime are exact with the fake clock and need no
// background goroutine. The projection never rewrites the past: a task's
// start depends only on the tasks ahead of it, and a cancellation at time t
// only frees a slot from t on.
//
// Randomness (CancelNotSupported, faults, generated ids) comes from separate
// generators seeded from Config.Seed, so one kind of draw does not shift
// another and a sequential run replays exactly. A copy's fate (whether it
// ends CreateFailed, and when) is drawn from the seed, its source, its
// destination and its attempt alone (Emulator.fate), so every client that
// sends the same copies meets the same failures, in whatever order.
//
// Choices the reference leaves open, made here:
//   - ClientToken: the same token with the same parameters returns the same
//     ImageId for as long as that image exists (including after it became
//     Available or CreateFailed). Once the copy was cancelled or deleted the
//     token is forgotten and a new copy is made. The same token with other
//     parameters answers IdempotentParameterMismatch.
//   - A copy without DestinationImageName takes the source's name when that
//     name is free in the destination, otherwise "<source name>-copy-<id>".
//   - DescribeImages ImageName is a case-sensitive substring match (ECS calls
//     it fuzzy); an exact name therefore always finds its image.
//   - Same-region CopyImage is refused (IncorrectDestinationRegion) unless
//     Encrypted=true, which ECS uses for re-encrypting copies.
//   - Snapshot storage: every image that exists holds snapshots the size of
//     its disks, except CreateFailed copies, whose snapshots never completed.
//   - ModifyImageSharePermission ignores AddAccount.N/RemoveAccount.N above
//     N=10, as the reference documents.
//   - Catalogue images cannot be changed; changing one answers
//     InvalidImageId.NotFound (ECS documents no single code for it), and
//     copying a public image too. Shared-in images copy within their
//     region only (OperationDenied.SameRegionOnly), marketplace images not
//     at all (OperationDenied.NotAuthorized).
//   - OIDC tokens are checked for shape, expiry, issuer and audience, not
//     for their signature (the emulator has no identity provider's keys).
//   - The state file does not keep nonces, counters or the random
//     generators; they start again from the seed.
package ecsemu
