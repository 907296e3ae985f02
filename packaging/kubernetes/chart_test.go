package kubernetes

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "write nginx-shipper.yaml from the chart")

const chartDir = "chart/nginx-shipper"

// helm finds the helm binary .ci/deps installs into .tools/.
func helm(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("NGINX_SHIPPER_TOOLS"), "../../.tools"} {
		if p == "" {
			continue
		}
		if bin := filepath.Join(p, "helm"); isExec(bin) {
			return bin
		}
	}
	if bin, err := exec.LookPath("helm"); err == nil {
		return bin
	}
	if os.Getenv("NGINX_SHIPPER_REQUIRE_E2E") != "" {
		t.Fatal("helm not found (bash .ci/deps installs it into .tools/)")
	}
	t.Skip("helm not found: run bash .ci/deps (it installs helm into .tools/)")
	return ""
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode()&0o111 != 0
}

func run(t *testing.T, bin string, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	// helm keeps no state we need; keep it out of $HOME.
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home, "HELM_CONFIG_HOME="+home, "HELM_DATA_HOME="+home)
	err := cmd.Run()
	return out.String(), errb.String(), err
}

func render(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, errOut, err := run(t, bin, append([]string{"template", "nginx-shipper", chartDir, "--namespace", "nginx-shipper"}, args...)...)
	if err != nil {
		t.Fatalf("helm template %v: %v\n%s", args, err, errOut)
	}
	return out
}

// strict decodes one YAML document into v; unknown fields are errors.
func strict(doc []byte, v any) error {
	j, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// The Prometheus operator's kinds, with the fields the chart writes (their
// module is large; these mirror monitoring.coreos.com/v1).
type (
	relabel struct {
		SourceLabels []string `json:"sourceLabels,omitempty"`
		TargetLabel  string   `json:"targetLabel,omitempty"`
	}
	endpoint struct {
		Port        string    `json:"port"`
		Path        string    `json:"path"`
		Interval    string    `json:"interval"`
		Relabelings []relabel `json:"relabelings"`
	}
	monitorSpec struct {
		Selector            metav1.LabelSelector          `json:"selector"`
		NamespaceSelector   struct{ MatchNames []string } `json:"namespaceSelector"`
		Endpoints           []endpoint                    `json:"endpoints,omitempty"`
		PodMetricsEndpoints []endpoint                    `json:"podMetricsEndpoints,omitempty"`
	}
	monitor struct {
		metav1.TypeMeta   `json:",inline"`
		metav1.ObjectMeta `json:"metadata"`
		Spec              monitorSpec `json:"spec"`
	}
)

// objects is a rendered chart, decoded.
type objects struct {
	ds       *appsv1.DaemonSet
	cm       *corev1.ConfigMap
	sa       *corev1.ServiceAccount
	svc      *corev1.Service
	pc       *schedulingv1.PriorityClass
	ns       *corev1.Namespace
	monitors []*monitor
	kinds    []string
}

func decodeAll(t *testing.T, out string) objects {
	t.Helper()
	var o objects
	for _, doc := range strings.Split(out, "\n---") {
		doc = strings.TrimPrefix(strings.TrimSpace(doc), "---")
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			t.Fatalf("not YAML: %v\n%s", err, doc)
		}
		if tm.Kind == "" {
			continue // comments only
		}
		var v any
		switch tm.APIVersion + " " + tm.Kind {
		case "apps/v1 DaemonSet":
			o.ds = &appsv1.DaemonSet{}
			v = o.ds
		case "v1 ConfigMap":
			o.cm = &corev1.ConfigMap{}
			v = o.cm
		case "v1 ServiceAccount":
			o.sa = &corev1.ServiceAccount{}
			v = o.sa
		case "v1 Service":
			o.svc = &corev1.Service{}
			v = o.svc
		case "v1 Namespace":
			o.ns = &corev1.Namespace{}
			v = o.ns
		case "scheduling.k8s.io/v1 PriorityClass":
			o.pc = &schedulingv1.PriorityClass{}
			v = o.pc
		case "monitoring.coreos.com/v1 ServiceMonitor", "monitoring.coreos.com/v1 PodMonitor":
			m := &monitor{}
			o.monitors = append(o.monitors, m)
			v = m
		default:
			t.Fatalf("unexpected object %s %s", tm.APIVersion, tm.Kind)
		}
		if err := strict([]byte(doc), v); err != nil {
			t.Fatalf("%s: %v\n%s", tm.Kind, err, doc)
		}
		o.kinds = append(o.kinds, tm.Kind)
	}
	return o
}

// agentConfig is the part of the rendered TOML the test checks.
type agentConfig struct {
	Agent struct {
		Hostname      string `toml:"hostname"`
		DataDir       string `toml:"data_dir"`
		MetricsListen string `toml:"metrics_listen"`
		MemoryLimit   int64  `toml:"memory_limit"`
	} `toml:"agent"`
	Inputs []struct {
		Paths        []string `toml:"paths"`
		Exclude      []string `toml:"exclude"`
		Container    string   `toml:"container"`
		Format       string   `toml:"format"`
		StderrFormat string   `toml:"stderr_format"`
	} `toml:"inputs"`
	Sinks map[string]map[string]any `toml:"sinks"`
}

func checkDaemonSet(t *testing.T, o objects) agentConfig {
	t.Helper()
	if o.ds == nil || o.cm == nil {
		t.Fatalf("no DaemonSet or ConfigMap in %v", o.kinds)
	}
	spec := o.ds.Spec.Template.Spec
	if len(spec.Containers) != 1 {
		t.Fatalf("%d containers", len(spec.Containers))
	}
	c := spec.Containers[0]
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m
	}
	vols := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		vols[v.Name] = v
	}
	if m, v := mounts["varlog"], vols["varlog"]; !m.ReadOnly || m.MountPath != "/var/log" || v.HostPath == nil || v.HostPath.Path != "/var/log" {
		t.Errorf("/var/log: mount %+v volume %+v, want the host's /var/log read-only", m, v.HostPath)
	}
	if m, v := mounts["data"], vols["data"]; m.ReadOnly || m.MountPath != "/var/lib/nginx-shipper" || v.HostPath == nil || v.HostPath.Type == nil || *v.HostPath.Type != corev1.HostPathDirectoryOrCreate {
		t.Errorf("data dir: mount %+v volume %+v, want a writable DirectoryOrCreate hostPath", m, v.HostPath)
	}
	if m, v := mounts["config"], vols["config"]; !m.ReadOnly || v.ConfigMap == nil || v.ConfigMap.Name != o.cm.Name {
		t.Errorf("config: mount %+v volume %+v", m, v.ConfigMap)
	}
	var node bool
	for _, e := range c.Env {
		if e.Name == "NODE_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "spec.nodeName" {
			node = true
		}
	}
	if !node {
		t.Error("no NODE_NAME from spec.nodeName")
	}
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("liveness %+v", c.LivenessProbe)
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("readiness %+v", c.ReadinessProbe)
	}
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 {
		t.Errorf("security context %+v", sc)
	}
	if len(spec.Tolerations) == 0 {
		t.Error("no tolerations: the agent would not run on tainted nodes")
	}
	if spec.PriorityClassName == "" {
		t.Error("no priority class")
	}
	if o.pc != nil && o.pc.Name != spec.PriorityClassName {
		t.Errorf("priority class %q, the pods use %q", o.pc.Name, spec.PriorityClassName)
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Error("the service account token is mounted; the agent never calls the API")
	}
	if o.ds.Spec.Template.Annotations["checksum/config"] == "" {
		t.Error("no config checksum: a changed ConfigMap would not roll the agents")
	}
	if !strings.Contains(c.Image, "nginx-shipper:") {
		t.Errorf("image %q", c.Image)
	}

	// The configuration: the agent's memory_limit below the container's.
	text := o.cm.Data["nginx-shipper.toml"]
	var cfg agentConfig
	if _, err := toml.Decode(text, &cfg); err != nil {
		t.Fatalf("the ConfigMap's TOML: %v\n%s", err, text)
	}
	lim, ok := c.Resources.Limits[corev1.ResourceMemory]
	if !ok {
		t.Fatal("no memory limit")
	}
	if cfg.Agent.MemoryLimit <= 16<<20 || cfg.Agent.MemoryLimit >= lim.Value() {
		t.Errorf("memory_limit %d, container limit %s (%d): want below it", cfg.Agent.MemoryLimit, lim.String(), lim.Value())
	}
	if cfg.Agent.Hostname != "${NODE_NAME}" || cfg.Agent.DataDir != mounts["data"].MountPath {
		t.Errorf("agent: %+v", cfg.Agent)
	}
	if port := c.Ports[0].ContainerPort; !strings.HasSuffix(cfg.Agent.MetricsListen, fmt.Sprintf(":%d", port)) || strings.HasPrefix(cfg.Agent.MetricsListen, "127.") {
		t.Errorf("metrics_listen %q, probes on port %d of the pod's IP", cfg.Agent.MetricsListen, port)
	}
	if len(cfg.Inputs) == 0 || len(cfg.Sinks) == 0 {
		t.Errorf("inputs %d, sinks %d", len(cfg.Inputs), len(cfg.Sinks))
	}
	validate(t, text)
	return cfg
}

// validate runs the agent's own validate on the rendered configuration,
// with the binary make build leaves in bin/ (make test builds it first).
func validate(t *testing.T, text string) {
	t.Helper()
	bin := "../../bin/nginx-shipper"
	if !isExec(bin) {
		t.Log("bin/nginx-shipper not built: the rendered configuration is not validated by the agent")
		return
	}
	p := filepath.Join(t.TempDir(), "nginx-shipper.toml")
	os.WriteFile(p, []byte(text), 0o644)
	cmd := exec.Command(bin, "validate", "-c", p)
	cmd.Env = append(os.Environ(), "NODE_NAME=node-1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("nginx-shipper validate of the rendered configuration: %v\n%s\n%s", err, out, text)
	}
}

func matchAny(globs []string, path string) bool {
	for _, g := range globs {
		if ok, _ := filepath.Match(g, path); ok {
			return true
		}
	}
	return false
}

func TestChart(t *testing.T) {
	bin := helm(t)
	sets, _ := filepath.Glob("values/*.yaml")
	if len(sets) < 3 {
		t.Fatalf("value sets: %v", sets)
	}
	for _, set := range sets {
		t.Run(filepath.Base(set), func(t *testing.T) {
			if out, errOut, err := run(t, bin, "lint", "--strict", chartDir, "-f", set); err != nil {
				t.Fatalf("helm lint: %v\n%s%s", err, out, errOut)
			}
			o := decodeAll(t, render(t, bin, "-f", set))
			cfg := checkDaemonSet(t, o)
			c := o.ds.Spec.Template.Spec.Containers[0]
			switch filepath.Base(set) {
			case "kafka.yaml":
				if len(cfg.Inputs) != 1 || cfg.Inputs[0].Container != "cri" || cfg.Inputs[0].StderrFormat != "error" ||
					!matchAny(cfg.Inputs[0].Paths, "/var/log/pods/ingress-nginx_ingress-nginx-controller-7d9f8b6c5-x2x7q_0b5c9a3e/controller/0.log") ||
					matchAny(cfg.Inputs[0].Paths, "/var/log/pods/ingress-nginx_ingress-nginx-admission-create-abc_0b5c/create/0.log") {
					t.Errorf("ingress-nginx input: %+v", cfg.Inputs)
				}
				if !slices.Contains(cfg.Inputs[0].Exclude, "*.gz") || !slices.Contains(cfg.Inputs[0].Exclude, "*.tmp") {
					t.Errorf("exclude %v: kubelet's .gz and .tmp must never be read as text", cfg.Inputs[0].Exclude)
				}
				if _, ok := cfg.Sinks["s3"]; ok || len(o.monitors) != 0 || o.svc != nil || len(c.EnvFrom) != 0 {
					t.Errorf("disabled things rendered: sinks %v, monitors %d, service %v, envFrom %v", cfg.Sinks, len(o.monitors), o.svc != nil, c.EnvFrom)
				}
			case "s3-nginx.yaml":
				if len(cfg.Inputs) != 2 || !matchAny(cfg.Inputs[1].Paths, "/var/log/pods/blog_web-5f6d_uid/proxy/3.log") || matchAny(cfg.Inputs[1].Paths, "/var/log/pods/other_web-5f6d_uid/nginx/0.log") {
					t.Errorf("nginx input: %+v", cfg.Inputs)
				}
				if len(c.EnvFrom) != 1 || c.EnvFrom[0].SecretRef == nil || c.EnvFrom[0].SecretRef.Name != "nginx-shipper-aws" {
					t.Errorf("credentials: envFrom %+v", c.EnvFrom)
				}
				if len(o.monitors) != 1 || o.monitors[0].Kind != "PodMonitor" || o.monitors[0].Labels["release"] != "prometheus" || o.monitors[0].Spec.PodMetricsEndpoints[0].Port != "metrics" {
					t.Errorf("monitors: %+v", o.monitors)
				}
				if want := resource.MustParse("1Gi"); cfg.Agent.MemoryLimit != want.Value()*3/4 {
					t.Errorf("memory_limit %d, want 75%% of 1Gi", cfg.Agent.MemoryLimit)
				}
			case "both-docker.yaml":
				if len(cfg.Inputs) != 1 || cfg.Inputs[0].Container != "docker" || len(cfg.Sinks) != 2 {
					t.Errorf("inputs %+v sinks %v", cfg.Inputs, cfg.Sinks)
				}
				if o.pc != nil || o.ds.Spec.Template.Spec.PriorityClassName != "system-node-critical" {
					t.Errorf("priority class: %v %q", o.pc != nil, o.ds.Spec.Template.Spec.PriorityClassName)
				}
				if len(o.monitors) != 1 || o.monitors[0].Kind != "ServiceMonitor" || o.svc == nil || o.svc.Spec.Ports[0].TargetPort.StrVal != "metrics" {
					t.Errorf("ServiceMonitor and its Service: %+v %+v", o.monitors, o.svc)
				}
				if c.Image != "registry.example.com/nginx-shipper:1.2.3" {
					t.Errorf("image %q", c.Image)
				}
			}
		})
	}
}

func TestChartRefusesWhatCannotRun(t *testing.T) {
	bin := helm(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "sinks: enable sinks.kafka and/or sinks.s3"},
		{[]string{"-f", "values/kafka.yaml", "--set", "inputs.ingressNginx.enabled=false"}, "inputs: enable"},
		{[]string{"-f", "values/kafka.yaml", "--set", "resources.limits.memory=lots"}, "resources.limits.memory"},
	} {
		_, errOut, err := run(t, bin, append([]string{"template", "x", chartDir}, tc.args...)...)
		if err == nil || !strings.Contains(errOut, tc.want) {
			t.Errorf("helm template %v: err %v, stderr %q; want it to fail with %q", tc.args, err, errOut, tc.want)
		}
	}
}

// TestManifest: nginx-shipper.yaml, the plain manifest for kubectl apply,
// is the chart rendered with values/kafka.yaml plus its Namespace (go test
// -update writes it).
func TestManifest(t *testing.T) {
	bin := helm(t)
	want := "# nginx-shipper as a DaemonSet, for kubectl apply -f. Rendered from the Helm chart\n" +
		"# (chart/nginx-shipper) with values/kafka.yaml: set the brokers in the ConfigMap\n" +
		"# first. Regenerate: go test ./packaging/kubernetes -run TestManifest -update\n" +
		"---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: nginx-shipper\n" +
		render(t, bin, "-f", "values/kafka.yaml")
	if *update {
		if err := os.WriteFile("nginx-shipper.yaml", []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile("nginx-shipper.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatal("nginx-shipper.yaml is not the chart's rendering: go test ./packaging/kubernetes -run TestManifest -update")
	}
	o := decodeAll(t, string(got))
	if o.ns == nil || o.ns.Name != o.ds.Namespace {
		t.Errorf("namespace %+v, DaemonSet in %q", o.ns, o.ds.Namespace)
	}
	checkDaemonSet(t, o)
}
