// Command etcd is etcd's own server, v3.7.3, built from the Go module proxy
// for the e2e tests and local HA runs (make tools puts it in tools/bin/etcd).
// `go install go.etcd.io/etcd/server/v3@v3.7.3` refuses (that module has
// replace directives), so this module requires it and calls its main. It is
// its own module, pinned with the versions the daemon's go.mod uses, so
// that etcd's server dependencies touch neither go.mod nor tools/go.mod.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
