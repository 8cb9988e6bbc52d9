package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/replicatord/replicatord/internal/transport/transporttest"
)

// secretMount lays files out as the kubelet mounts a Secret: each name is a
// symlink into ..data, itself a symlink to a generation directory; an
// update writes a new generation and renames a new ..data over the old.
type secretMount struct {
	t   *testing.T
	dir string
	gen int
}

func newSecretMount(t *testing.T, files map[string][]byte) *secretMount {
	m := &secretMount{t: t, dir: t.TempDir()}
	m.update(files)
	for name := range files {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(m.dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

func (m *secretMount) path(name string) string { return filepath.Join(m.dir, name) }

func (m *secretMount) update(files map[string][]byte) {
	m.t.Helper()
	m.gen++
	gen := fmt.Sprintf("..2026_12_01_gen%d", m.gen)
	if err := os.Mkdir(filepath.Join(m.dir, gen), 0o700); err != nil {
		m.t.Fatal(err)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(m.dir, gen, name), data, 0o600); err != nil {
			m.t.Fatal(err)
		}
	}
	tmp := filepath.Join(m.dir, "..data_tmp")
	if err := os.Symlink(gen, tmp); err != nil {
		m.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(m.dir, "..data")); err != nil {
		m.t.Fatal(err)
	}
}

func secretFiles(t *testing.T, ca *transporttest.CA, token string) map[string][]byte {
	t.Helper()
	p := ca.Issue(t)
	read := func(path string) []byte {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	return map[string][]byte{"tls.crt": read(p.CertFile), "tls.key": read(p.KeyFile), "tokens": []byte(token + "\n")}
}

// TestRotateCertificateAndTokenFile rotates the daemon's certificate (to
// one of another CA) and its token file the way cert-manager and the
// kubelet do, while a replctl watch is open: new connections need the new
// CA and token, the old token is refused, and the open Watch stream goes
// on delivering without reconnecting. No restart.
func TestRotateCertificateAndTokenFile(t *testing.T) {
	const tokenA, tokenB = "e2e-token-A-0123456789abcdef", "e2e-token-B-0123456789abcdef"
	e := newEnv(t)
	ca1, ca2 := transporttest.NewCA(t), transporttest.NewCA(t)
	sec := newSecretMount(t, secretFiles(t, ca1, tokenA))
	addr := freePort(t)
	e.startDaemon("--listen", addr, "--tls-cert", sec.path("tls.crt"), "--tls-key", sec.path("tls.key"), "--token-file", sec.path("tokens"))
	oldClient := []string{"--cacert", ca1.CertFile, "--token", tokenA}
	newClient := []string{"--cacert", ca2.CertFile, "--token", tokenB}
	copyJob := func(client []string, region string) string {
		t.Helper()
		out, code := e.ctlAt(addr, nil, append(client, "copy", imgAlinux, "--from", source, "--to", region, "--detach", "-o", "json")...)
		if code != 0 {
			t.Fatalf("replctl copy to %s: exit %d: %s", region, code, out)
		}
		for id := range jobsIn(t, out) {
			return id
		}
		t.Fatalf("replctl copy printed no job: %s", out)
		return ""
	}

	first := copyJob(oldClient, "cn-beijing")
	watch := start(t, "replctl", nil, append([]string{"--address", addr}, append(oldClient, "watch", "-o", "json")...)...)
	watch.waitFor("the first job on the open watch", 60*time.Second, func(l string) bool { _, ok := jobsIn(t, l)[first]; return ok })

	sec.update(secretFiles(t, ca2, tokenB))

	// The daemon looks at its files at most every 10 s.
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, code := e.ctlAt(addr, nil, append(newClient, "jobs", "-o", "json")...)
		if code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the rotated certificate and token are not accepted after 60 s: exit %d: %s", code, out)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if out, code := e.ctlAt(addr, nil, "--cacert", ca2.CertFile, "--token", tokenA, "jobs"); code != 10+codeUnauthenticated {
		t.Errorf("the removed token after rotation: exit %d, %q; want %d (Unauthenticated)", code, out, 10+codeUnauthenticated)
	}
	if out, code := e.ctlAt(addr, nil, append(oldClient, "jobs")...); code == 0 {
		t.Errorf("a client trusting only the old CA still connects after rotation: %q", out)
	}

	// The watch opened before the rotation still delivers, on the same
	// stream: a reconnect would need the old CA and token, which no longer
	// work.
	second := copyJob(newClient, "cn-shanghai")
	watch.waitFor("the second job on the watch opened before the rotation", 60*time.Second, func(l string) bool { _, ok := jobsIn(t, l)[second]; return ok })
	select {
	case <-watch.done:
		t.Fatalf("the watch ended: %s", watch.output())
	default:
	}
	if out := watch.output(); strings.Contains(out, "reconnecting") || strings.Contains(out, "connection lost") {
		t.Errorf("the watch reconnected instead of keeping its stream:\n%s", out)
	}
	logs := e.daemon.output()
	for _, want := range []string{"reloaded tls from disk", "reloaded tokens from disk"} {
		if !strings.Contains(logs, want) {
			t.Errorf("daemon log lacks %q", want)
		}
	}
	for _, secret := range []string{tokenA, tokenB} {
		if strings.Contains(logs, secret) {
			t.Errorf("the daemon logged a bearer token")
		}
	}
}
