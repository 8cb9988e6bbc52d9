package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/replicatord/replicatord/internal/policy"
)

const chartDir = "../deploy/helm/replicatord"

// k8sObject is the part of a rendered manifest the tests read.
type k8sObject struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name        string            `yaml:"name"`
		Annotations map[string]string `yaml:"annotations"`
	} `yaml:"metadata"`
	Data map[string]string `yaml:"data"`
	Spec struct {
		Replicas *int `yaml:"replicas"`
		Template struct {
			Spec podSpec `yaml:"spec"`
		} `yaml:"template"`
		VolumeClaimTemplates []struct {
			Metadata struct {
				Name string `yaml:"name"`
			} `yaml:"metadata"`
		} `yaml:"volumeClaimTemplates"`
		PolicyTypes []string         `yaml:"policyTypes"`
		Egress      []map[string]any `yaml:"egress"`
	} `yaml:"spec"`
}

type podSpec struct {
	AutomountServiceAccountToken *bool `yaml:"automountServiceAccountToken"`
	SecurityContext              struct {
		RunAsNonRoot   *bool `yaml:"runAsNonRoot"`
		RunAsUser      int   `yaml:"runAsUser"`
		SeccompProfile struct {
			Type string `yaml:"type"`
		} `yaml:"seccompProfile"`
	} `yaml:"securityContext"`
	Containers []container `yaml:"containers"`
	Volumes    []struct {
		Name      string         `yaml:"name"`
		Secret    map[string]any `yaml:"secret"`
		Projected struct {
			Sources []struct {
				ServiceAccountToken struct {
					Audience string `yaml:"audience"`
					Path     string `yaml:"path"`
				} `yaml:"serviceAccountToken"`
			} `yaml:"sources"`
		} `yaml:"projected"`
	} `yaml:"volumes"`
}

type container struct {
	Args  []string `yaml:"args"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	Env []struct {
		Name  string `yaml:"name"`
		Value string `yaml:"value"`
	} `yaml:"env"`
	StartupProbe    probe `yaml:"startupProbe"`
	LivenessProbe   probe `yaml:"livenessProbe"`
	ReadinessProbe  probe `yaml:"readinessProbe"`
	SecurityContext struct {
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
		Capabilities             struct {
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
		SeccompProfile struct {
			Type string `yaml:"type"`
		} `yaml:"seccompProfile"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
}

type probe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
}

// renderChart runs helm template with the given --set values and returns
// the manifests by kind (the first of each kind, and all of them).
func renderChart(t *testing.T, helm string, set ...string) map[string]k8sObject {
	t.Helper()
	args := []string{"template", "replicatord", chartDir, "--kube-version", "1.30.0"}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	out, err := exec.Command(helm, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("helm %v: %v\n%s", args, err, out)
	}
	objs := map[string]k8sObject{}
	dec := yaml.NewDecoder(bytes.NewReader(out))
	for {
		var o k8sObject
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("rendered chart is not YAML: %v\n%s", err, out)
		}
		if o.Kind == "" {
			continue
		}
		if _, dup := objs[o.Kind]; !dup {
			objs[o.Kind] = o
		}
	}
	return objs
}

// renderedConfig writes the ConfigMap's replicatord.yaml to a file and
// loads it with the daemon's own parser.
func renderedConfig(t *testing.T, objs map[string]k8sObject) (*policy.File, string) {
	t.Helper()
	text, ok := objs["ConfigMap"].Data["replicatord.yaml"]
	if !ok {
		t.Fatalf("no ConfigMap with replicatord.yaml")
	}
	f, err := policy.Parse("replicatord.yaml", []byte(text))
	if err != nil {
		t.Fatalf("the chart's config does not load:\n%v\n%s", err, text)
	}
	return f, text
}

func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%q: %v", addr, err)
	}
	n, _ := strconv.Atoi(p)
	return n
}

func mountPath(c container, volume string) string {
	for _, m := range c.VolumeMounts {
		if m.Name == volume {
			return m.MountPath
		}
	}
	return ""
}

func bptr(b *bool) bool { return b != nil && *b }

// The chart renders a restricted pod whose probes are the daemon's HTTP
// endpoints on the port its config listens on, with the store on the
// claim, and its config loads with the daemon's parser.
func TestChartRendersRestrictedPodWithTheDaemonsProbes(t *testing.T) {
	helm := opsTool(t, "HELM", "helm")
	objs := renderChart(t, helm)
	for _, kind := range []string{"StatefulSet", "ConfigMap", "ServiceAccount", "Service", "NetworkPolicy"} {
		if _, ok := objs[kind]; !ok {
			t.Errorf("no %s rendered", kind)
		}
	}
	ss := objs["StatefulSet"]
	if ss.Spec.Replicas == nil || *ss.Spec.Replicas != 1 {
		t.Errorf("replicas %v, want 1", ss.Spec.Replicas)
	}
	pod := ss.Spec.Template.Spec
	if !bptr(pod.SecurityContext.RunAsNonRoot) || pod.SecurityContext.RunAsUser != 65532 || pod.SecurityContext.SeccompProfile.Type != "RuntimeDefault" {
		t.Errorf("pod securityContext %+v, want runAsNonRoot, uid 65532, seccomp RuntimeDefault", pod.SecurityContext)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Errorf("the service account token is mounted; the daemon never calls the Kubernetes API")
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	sc := c.SecurityContext
	if !bptr(sc.ReadOnlyRootFilesystem) || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		!bptr(sc.RunAsNonRoot) || !slices.Equal(sc.Capabilities.Drop, []string{"ALL"}) || sc.SeccompProfile.Type != "RuntimeDefault" {
		t.Errorf("container securityContext %+v is not restricted", sc)
	}

	f, _ := renderedConfig(t, objs)
	metricsPort := portOf(t, f.Daemon.MetricsListen)
	var named int
	for _, p := range c.Ports {
		if p.Name == "metrics" {
			named = p.ContainerPort
		}
	}
	if named != metricsPort {
		t.Errorf("port \"metrics\" is %d, the daemon's metrics_listen %q", named, f.Daemon.MetricsListen)
	}
	for name, pr := range map[string]struct {
		probe probe
		path  string
	}{"startup": {c.StartupProbe, "/healthz"}, "liveness": {c.LivenessProbe, "/healthz"}, "readiness": {c.ReadinessProbe, "/readyz"}} {
		if pr.probe.HTTPGet.Path != pr.path || fmt.Sprint(pr.probe.HTTPGet.Port) != "metrics" {
			t.Errorf("%s probe %+v, want GET %s on port metrics", name, pr.probe.HTTPGet, pr.path)
		}
	}
	if len(ss.Spec.VolumeClaimTemplates) != 1 || mountPath(c, ss.Spec.VolumeClaimTemplates[0].Metadata.Name) != f.Daemon.DataDir {
		t.Errorf("the claim is not mounted at the daemon's data_dir %s", f.Daemon.DataDir)
	}
	if sock := strings.TrimPrefix(f.Daemon.Listen, "unix://"); filepath.Dir(sock) != mountPath(c, "run") {
		t.Errorf("socket %s is not in the run volume (%s)", sock, mountPath(c, "run"))
	}
	var cfgArg string
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--config="); ok {
			cfgArg = v
		}
	}
	if filepath.Dir(cfgArg) != mountPath(c, "config") {
		t.Errorf("--config=%s is not in the config volume (%s)", cfgArg, mountPath(c, "config"))
	}
	if !slices.Contains(objs["NetworkPolicy"].Spec.PolicyTypes, "Egress") {
		t.Errorf("the NetworkPolicy does not restrict egress")
	}
}

// TLS, tokens and RRSA: the flags point into the mounted Secrets, the
// ServiceAccount carries the webhook's annotation, and the three RRSA
// variables name the projected token.
func TestChartTLSTokensAndRRSA(t *testing.T) {
	helm := opsTool(t, "HELM", "helm")
	objs := renderChart(t, helm,
		"grpc.tls.secretName=tls", "grpc.tls.clientCA=true", "grpc.tokens.secretName=tok",
		"rrsa.roleName=replicatord", "rrsa.roleArn=acs:ram::1:role/replicatord", "rrsa.oidcProviderArn=acs:ram::1:oidc-provider/ack-rrsa-c1")
	if got := objs["ServiceAccount"].Metadata.Annotations["pod-identity.alibabacloud.com/role-name"]; got != "replicatord" {
		t.Errorf("ServiceAccount role-name annotation %q, want replicatord", got)
	}
	f, _ := renderedConfig(t, objs)
	if !strings.HasPrefix(f.Daemon.Listen, "0.0.0.0:") {
		t.Errorf("with TLS the daemon listens on %q, want TCP", f.Daemon.Listen)
	}
	c := objs["StatefulSet"].Spec.Template.Spec.Containers[0]
	tls, tokens := mountPath(c, "tls"), mountPath(c, "tokens")
	for _, want := range []string{"--tls-cert=" + tls + "/tls.crt", "--tls-key=" + tls + "/tls.key", "--tls-client-ca=" + tls + "/ca.crt", "--token-file=" + tokens + "/tokens"} {
		if !slices.Contains(c.Args, want) {
			t.Errorf("args %v lack %s", c.Args, want)
		}
	}
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	if env["ALIBABA_CLOUD_ROLE_ARN"] != "acs:ram::1:role/replicatord" || env["ALIBABA_CLOUD_OIDC_PROVIDER_ARN"] != "acs:ram::1:oidc-provider/ack-rrsa-c1" {
		t.Errorf("RRSA env %v", env)
	}
	var tokenPath string
	for _, v := range objs["StatefulSet"].Spec.Template.Spec.Volumes {
		if v.Name == "rrsa-token" && len(v.Projected.Sources) == 1 {
			if v.Projected.Sources[0].ServiceAccountToken.Audience != "sts.aliyuncs.com" {
				t.Errorf("RRSA token audience %q, want sts.aliyuncs.com", v.Projected.Sources[0].ServiceAccountToken.Audience)
			}
			tokenPath = mountPath(c, "rrsa-token") + "/" + v.Projected.Sources[0].ServiceAccountToken.Path
		}
	}
	if tokenPath == "" || env["ALIBABA_CLOUD_OIDC_TOKEN_FILE"] != tokenPath {
		t.Errorf("ALIBABA_CLOUD_OIDC_TOKEN_FILE %q, the projected token is at %q", env["ALIBABA_CLOUD_OIDC_TOKEN_FILE"], tokenPath)
	}
}

// Values that would break the store or the daemon are refused at render
// time with the reason.
func TestChartRefusesBadValues(t *testing.T) {
	helm := opsTool(t, "HELM", "helm")
	for set, want := range map[string]string{
		"replicas=2":              "bbolt store is one file",
		"store.backend=etcd":      "needs store.etcd.endpoints",
		"store.backend=zookeeper": "/store/backend",
		"store.backend=etcd,store.etcd.endpoints[0]=http://e:2379,store.etcd.insecure=true,store.etcd.tlsSecretName=t": "choose one",
		"grpc.tokens.secretName=tok":                "needs grpc.tls.secretName",
		"config.daemon.data_dir=/x":                 "config.daemon is set by the chart",
		"rrsa.roleArn=acs:ram::1:role/r":            "needs rrsa.oidcProviderArn",
		"credentials.secretName=ak,rrsa.roleName=r": "choose one",
		// values.schema.json: a misspelt key or a bad value is named.
		"replica=2":         "additional properties 'replica' not allowed",
		"log.level=verbose": "/log/level",
		"grpc.port=70000":   "/grpc/port",
	} {
		out, err := exec.Command(helm, "template", "replicatord", chartDir, "--kube-version", "1.30.0", "--set", set).CombinedOutput()
		if err == nil || !strings.Contains(string(out), want) {
			t.Errorf("--set %s: err %v, output %q; want a refusal saying %q", set, err, out, want)
		}
	}
}

// With store.backend etcd the chart runs 3 replicas by default without a
// volume claim, names each member after its pod, passes the etcd
// credentials and TLS Secrets, lets the pods reach etcd, and writes a
// store section the daemon's own parser accepts.
func TestChartEtcdBackend(t *testing.T) {
	helm := opsTool(t, "HELM", "helm")
	objs := renderChart(t, helm, "store.backend=etcd", "store.etcd.endpoints[0]=https://etcd-0.etcd:2379",
		"store.etcd.credentialsSecretName=etcd-auth", "store.etcd.tlsSecretName=etcd-tls", "store.etcd.leaseTTL=3s", "store.etcd.maxTxnOps=512")
	sts := objs["StatefulSet"]
	if sts.Spec.Replicas == nil || *sts.Spec.Replicas != 3 {
		t.Errorf("replicas = %v, want 3 by default with etcd", sts.Spec.Replicas)
	}
	if len(sts.Spec.VolumeClaimTemplates) != 0 {
		t.Errorf("a volume claim with etcd: %+v", sts.Spec.VolumeClaimTemplates)
	}
	f, text := renderedConfig(t, objs)
	if f.Store.Backend != policy.BackendEtcd || len(f.Store.Etcd.Endpoints) != 1 || f.Store.Etcd.LeaseTTL != 3*time.Second ||
		f.Store.Etcd.MaxTxnOps != 512 || f.Store.Etcd.TLS.CAFile != "/etc/replicatord/etcd-tls/ca.crt" || f.Store.Etcd.TLS.CertFile != "" || f.Store.Etcd.Insecure {
		t.Errorf("store = %+v\n%s", f.Store, text)
	}
	c := sts.Spec.Template.Spec.Containers[0]
	hasEnv := false
	for _, e := range c.Env {
		hasEnv = hasEnv || e.Name == "REPLICATORD_MEMBER_ID"
	}
	if !hasEnv {
		t.Errorf("no REPLICATORD_MEMBER_ID in the pod's env: %+v", c.Env)
	}
	mounted := false
	for _, m := range c.VolumeMounts {
		mounted = mounted || (m.Name == "etcd-tls" && m.MountPath == "/etc/replicatord/etcd-tls")
	}
	if !mounted {
		t.Errorf("the etcd TLS Secret is not mounted: %+v", c.VolumeMounts)
	}
	if np := fmt.Sprint(objs["NetworkPolicy"].Spec.Egress); !strings.Contains(np, "2379") {
		t.Errorf("the NetworkPolicy lets no traffic to etcd's port: %s", np)
	}
	// More replicas with etcd are fine; with bbolt they are refused.
	if sts := renderChart(t, helm, "store.backend=etcd", "store.etcd.endpoints[0]=https://e:2379", "replicas=2")["StatefulSet"]; *sts.Spec.Replicas != 2 {
		t.Errorf("replicas=2 with etcd rendered %d", *sts.Spec.Replicas)
	}
	if sts := renderChart(t, helm)["StatefulSet"]; *sts.Spec.Replicas != 1 || len(sts.Spec.VolumeClaimTemplates) != 1 {
		t.Errorf("bbolt default: replicas %d, claims %d; want 1 and 1", *sts.Spec.Replicas, len(sts.Spec.VolumeClaimTemplates))
	}
}

// The rendered pod runs: the real daemon started with the chart's args and
// config (paths moved under a temp dir, the simulated cloud) answers the
// chart's probes on the chart's port, and turns ready.
func TestChartPodStartsAndPassesItsProbes(t *testing.T) {
	helm := opsTool(t, "HELM", "helm")
	port := portOf(t, freePort(t))
	objs := renderChart(t, helm, "config.cloud.provider=simulated", fmt.Sprintf("metrics.port=%d", port))
	_, text := renderedConfig(t, objs)
	c := objs["StatefulSet"].Spec.Template.Spec.Containers[0]

	root := t.TempDir()
	move := func(p string) string { return filepath.Join(root, p) }
	// The pod's volumes, as directories.
	for _, m := range c.VolumeMounts {
		if err := os.MkdirAll(move(m.MountPath), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	text = strings.ReplaceAll(text, "/var/lib/replicatord", move("/var/lib/replicatord"))
	text = strings.ReplaceAll(text, "/run/replicatord", move("/run/replicatord"))
	// Loopback only in a test.
	text = strings.ReplaceAll(text, "0.0.0.0:", "127.0.0.1:")
	var args []string
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--config="); ok {
			if err := os.WriteFile(move(v), []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			a = "--config=" + move(v)
		}
		args = append(args, a)
	}
	d := start(t, "replicatord", nil, args...)
	t.Cleanup(func() { d.stop() })

	get := func(p probe) int {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d%s", port, p.HTTPGet.Path))
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	deadline := time.Now().Add(60 * time.Second)
	for get(c.ReadinessProbe) != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatalf("readiness probe %s not 200 within 60 s; daemon output:\n%s", c.ReadinessProbe.HTTPGet.Path, d.output())
		}
		time.Sleep(200 * time.Millisecond) // poll a real process
	}
	if code := get(c.LivenessProbe); code != http.StatusOK {
		t.Errorf("liveness probe %s = %d", c.LivenessProbe.HTTPGet.Path, code)
	}
	if code := get(c.StartupProbe); code != http.StatusOK {
		t.Errorf("startup probe %s = %d", c.StartupProbe.HTTPGet.Path, code)
	}
	if _, err := os.Stat(filepath.Join(move("/var/lib/replicatord"), "state.db")); err != nil {
		t.Errorf("the store is not in the claim's mount: %v", err)
	}
	if code := d.stop(); code != 0 {
		t.Errorf("daemon exit %d on SIGTERM:\n%s", code, d.output())
	}
}

// The chart's PrometheusRule carries the alert rules CI checks with
// promtool: its copy of them is identical to deploy/prometheus/alerts.yaml.
func TestChartPrometheusRuleIsTheCheckedRules(t *testing.T) {
	want, err := os.ReadFile("../deploy/prometheus/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(chartDir + "/files/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("deploy/helm/replicatord/files/alerts.yaml differs from deploy/prometheus/alerts.yaml: cp deploy/prometheus/alerts.yaml deploy/helm/replicatord/files/")
	}
	helm := opsTool(t, "HELM", "helm")
	out, err := exec.Command(helm, "template", "replicatord", chartDir, "--kube-version", "1.30.0",
		"--set", "metrics.prometheusRule.enabled=true", "--show-only", "templates/prometheusrule.yaml").CombinedOutput()
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, out)
	}
	var rule struct {
		Kind string     `yaml:"kind"`
		Spec alertRules `yaml:"spec"`
	}
	if err := yaml.Unmarshal(out, &rule); err != nil {
		t.Fatalf("rendered PrometheusRule: %v\n%s", err, out)
	}
	checked, _ := loadAlertRules(t)
	var gotNames, wantNames []string
	for _, g := range rule.Spec.Groups {
		for _, r := range g.Rules {
			gotNames = append(gotNames, r.Alert+": "+r.Expr)
		}
	}
	for _, g := range checked.Groups {
		for _, r := range g.Rules {
			wantNames = append(wantNames, r.Alert+": "+r.Expr)
		}
	}
	if rule.Kind != "PrometheusRule" || !slices.Equal(gotNames, wantNames) {
		t.Errorf("PrometheusRule %s has %v, want %v", rule.Kind, gotNames, wantNames)
	}
}

// RRSA without the webhook, as the chart wires it: the pod's rendered
// environment (role ARN, OIDC provider ARN, the projected token's path) is
// all the credential the daemon has, and it assumes the role with
// AssumeRoleWithOIDC at ecsemu's STS and serves.
func TestChartRRSAPodAssumesItsRole(t *testing.T) {
	helm := opsTool(t, "HELM", "helm")
	const (
		role     = "acs:ram::1234567890123456:role/replicatord"
		provider = "acs:ram::1234567890123456:oidc-provider/ack-rrsa-chart"
		issuer   = "https://oidc-ack.example/chart"
	)
	dir := t.TempDir()
	certFile, keyFile := selfSigned(t, dir)
	emu := start(t, "ecsemu", credsEnv(), "--listen", "127.0.0.1:0", "--time-scale", "60", "--seed", "7",
		"--tls-cert", certFile, "--tls-key", keyFile,
		"--sts-oidc-provider-arn", provider, "--sts-oidc-issuer", issuer, "--sts-oidc-audience", "sts.aliyuncs.com")
	line := emu.waitLine("listening on https://", 30*time.Second)
	endpoint := strings.Fields(line[strings.Index(line, "https://"):])[0]

	port := portOf(t, freePort(t))
	objs := renderChart(t, helm,
		"rrsa.roleArn="+role, "rrsa.oidcProviderArn="+provider,
		"config.cloud.endpoint="+endpoint, fmt.Sprintf("metrics.port=%d", port),
		// The test's STS is ecsemu, and its certificate is self-signed.
		"extraEnv[0].name=ALIBABA_CLOUD_STS_ENDPOINT", "extraEnv[0].value="+strings.TrimPrefix(endpoint, "https://"),
		"extraEnv[1].name=SSL_CERT_FILE", "extraEnv[1].value="+certFile)
	_, text := renderedConfig(t, objs)
	pod := objs["StatefulSet"].Spec.Template.Spec
	c := pod.Containers[0]

	root := filepath.Join(dir, "pod")
	move := func(p string) string { return filepath.Join(root, p) }
	for _, m := range c.VolumeMounts {
		if err := os.MkdirAll(move(m.MountPath), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// The kubelet's projected service-account token, as ecsemu's STS
	// expects it (issuer, audience sts.aliyuncs.com).
	enc := base64.RawURLEncoding.EncodeToString
	claims, _ := json.Marshal(map[string]any{"iss": issuer, "aud": "sts.aliyuncs.com", "sub": "system:serviceaccount:replicatord:replicatord",
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()})
	var env []string
	for _, e := range c.Env {
		v := e.Value
		if e.Name == "ALIBABA_CLOUD_OIDC_TOKEN_FILE" {
			v = move(v)
			if err := os.WriteFile(v, []byte(enc([]byte(`{"alg":"RS256","kid":"chart"}`))+"."+enc(claims)+"."+enc([]byte("sig"))), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		env = append(env, e.Name+"="+v)
	}
	// No access key at all: the pod has none.
	env = append(env, "ALIBABA_CLOUD_ACCESS_KEY_ID=", "ALIBABA_CLOUD_ACCESS_KEY_SECRET=")

	text = strings.ReplaceAll(text, "/var/lib/replicatord", move("/var/lib/replicatord"))
	text = strings.ReplaceAll(text, "/run/replicatord", move("/run/replicatord"))
	text = strings.ReplaceAll(text, "0.0.0.0:", "127.0.0.1:")
	var args []string
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--config="); ok {
			if err := os.WriteFile(move(v), []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			a = "--config=" + move(v)
		}
		args = append(args, a)
	}
	d := start(t, "replicatord", env, args...)
	t.Cleanup(func() { d.stop() })
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, body := probeGet(t, fmt.Sprintf("http://127.0.0.1:%d%s", port, c.ReadinessProbe.HTTPGet.Path))
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readiness %d %q within 60 s; daemon output:\n%s", code, body, d.output())
		}
		time.Sleep(200 * time.Millisecond) // poll a real process
	}

	pem, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	admin := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	resp, err := admin.Get(endpoint + "/_ecsemu/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s stsStats
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	if n := s.Calls["AssumeRoleWithOIDC"]["200"]; n < 1 {
		t.Errorf("AssumeRoleWithOIDC answered 200 %d times, want >= 1 (calls %v)", n, s.Calls)
	}
	if n := s.Calls["DescribeRegions"]["200"]; n < 1 {
		t.Errorf("DescribeRegions (signed with the role's session keys) answered 200 %d times, want >= 1 (calls %v)", n, s.Calls)
	}
}
