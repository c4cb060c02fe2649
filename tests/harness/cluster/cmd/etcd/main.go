// etcd for the harness cluster: go.etcd.io/etcd/server/v3 has no main package of its own
// that builds as a module dependency, so this is the one etcd's own main calls.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
