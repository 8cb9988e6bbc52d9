// Package transport is how replicatord's gRPC API is exposed and reached:
// listeners, TLS, bearer tokens, limits and the interceptors every call goes
// through. cmd/replicatord builds its servers from ServerConfig and replctl
// its connections from ClientConfig, so both ends agree on one set of rules:
//
//   - A unix socket is the local admin door. It is created 0600 from the
//     first instant (bound inside a private 0700 directory, chmodded, then
//     renamed into place, so there is no window in which another user can
//     connect and no process-wide umask juggling). A stale socket left by a
//     killed daemon is removed only after a dial proves nothing listens on
//     it; a live one is "in use by a running daemon".
//   - TCP needs TLS 1.2 or later unless Insecure is set explicitly, and then
//     ServerConfig.Warnings reports a loud warning, which ServerOptions logs
//     at WARN. A ClientCA turns on mutual TLS (tls.RequireAndVerifyClientCert).
//     Reflection is on by default on the socket and off on TCP
//     (ServerConfig.ReflectionEnabled; the caller registers it).
//   - Bearer tokens, when a token file is configured, are required on every
//     unary and streaming call except the grpc.health.v1 service (probes such
//     as kubelet's or grpc-health-probe must work without a secret; health
//     reveals nothing but SERVING/NOT_SERVING). Tokens are compared through
//     SHA-256 digests with crypto/subtle, so neither content nor length
//     leaks through timing. Tokens are only ever exchanged over TLS or the
//     unix socket: the server refuses a token file on plaintext TCP, and the
//     client refuses to send one there (its PerRPCCredentials require
//     transport security, which grpc enforces per connection; the unix
//     socket counts as secure through grpc's local credentials).
//   - Certificates, the client CA and the token file are reloaded when their
//     contents change, without a restart (reload.go). There is no watcher
//     goroutine and no fsnotify dependency: a TLS handshake
//     (tls.Config.GetConfigForClient) or an authenticated call checks the
//     files at most once per ReloadInterval by hashing their contents,
//     which sees the kubelet's symlink swap of a mounted Secret as well as
//     a rewrite in place, where inotify on the file itself would lose track
//     after the first swap. Open connections keep the material they were
//     made with, so streams survive a rotation; a new call is authorised
//     against the tokens current when it starts. Files that fail to load
//     keep the previous material, are logged at ERROR once per content and
//     reported through ServerConfig.OnReload (a metric in the daemon).
//   - Every call is logged when it fails or is slow (method, code, duration,
//     peer), never with its metadata, so a token cannot reach the logs. A
//     panicking handler becomes codes.Internal for the caller and an error
//     log with the stack for the operator.
//   - Handlers, auth and recover return internal/errdefs errors; one unary
//     and one stream interceptor, just inside the logging one, convert them
//     to gRPC statuses with errgrpc.ToGRPC, so the code follows the error's
//     class and the message is the handler's, and nothing else builds a
//     status.
//
// One ServerConfig describes one endpoint. A daemon that serves both the
// socket and TCP runs two grpc.Server values over the same services, because
// transport credentials belong to a grpc.Server, not to a listener.
package transport
